#!/usr/bin/env python3
"""What each assignment store costs mod_decision at the server level.

Starts the distribution's httpd (event MPM, no access log) with the built
module and the sample bucketing file, once per store -- DecisionStore none,
memory (shared memory), dbm:FILE (apr_dbm's default type), dbm:sdbm:FILE,
dbm:gdbm:FILE and redis:// (a real redis-server on loopback that this script
starts and stops) -- and runs wrk against POST /v2/campaigns with the
rotating 10 000 visitors of bench/httpd_vs_static.py. Each measurement is
preceded by a fill (--fill seconds of the same load in the first round, 4 s
for the memory store, whose shared memory is new at each start) and a
warm-up run of the same load, so the figures are those of returning
visitors: one load per request and no save (their assignments are already
stored). --new-visitors measures the other extreme instead: every
request is a visitor never seen, so every request also saves.

Rounds go through every store in turn (httpd restarted for each; the DBM
files and Redis keep their data), and the best rate of each store is kept,
so a noisy neighbour on the machine hurts every store alike. Prints the
rates, p99 latencies and each store's cost relative to none. Not a test:
figures depend on the machine; compare runs made together.

    python3 bench/stores.py [--duration 10] [--rounds 2] [--warmup 4]
                            [--stores none,memory,dbm,sdbm,gdbm,redis] [--new-visitors]
"""
import argparse
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import SAMPLE_BUCKETING, Httpd, RedisServer, make_world_readable_dir  # noqa: E402
from httpd_vs_static import TUNING, WRK_SCRIPT, median, wrk  # noqa: E402

# Every request a new visitor: a per-thread random prefix and a counter.
NEW_VISITORS_SCRIPT = """
local n = 0
local prefix
init = function()
  prefix = tostring(math.random(1, 1000000000)) .. "-" .. tostring(os.time())
end
request = function()
  n = n + 1
  return wrk.format("POST", "/v2/campaigns?sendContextEvent=false",
    {["Content-Type"] = "application/json"},
    '{"visitor_id":"new-' .. prefix .. '-' .. n .. '","context":{"isVIP":true,"age":30},'
    .. '"trigger_hit":false}')
end
"""

TARGETS = {"memory": 5.0, "dbm": 5.0, "sdbm": 5.0, "gdbm": 5.0, "redis": 15.0}


def store_uris(rundir, redis):
    dbm_dir = os.path.join(rundir, "dbm")
    os.makedirs(dbm_dir, exist_ok=True)
    os.chmod(dbm_dir, 0o777)  # the children (User www-data) write the files
    return {
        "none": "none",
        "memory": "memory?size=16000000",
        "dbm": "dbm:%s/default" % dbm_dir,
        "sdbm": "dbm:sdbm:%s/sdbm" % dbm_dir,
        "gdbm": "dbm:gdbm:%s/gdbm" % dbm_dir,
        "redis": redis.uri if redis else None,
    }


def server_body(mpm, uri):
    return (TUNING[mpm] +
            "DecisionEnvironment bench\nDecisionBucketingFile %s\nDecisionStore %s\n"
            "<Location /v2>\n  SetHandler decision\n</Location>\n" % (SAMPLE_BUCKETING, uri))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=4, help="seconds of load before each run")
    ap.add_argument("--fill", type=int, default=30,
                    help="seconds of load that store the visitors first (a Berkeley DB or gdbm "
                         "save costs 1-2 ms: 10 000 of them take 15-20 s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--mpm", default="event", choices=sorted(TUNING))
    ap.add_argument("--stores", default="none,memory,dbm,sdbm,gdbm,redis")
    ap.add_argument("--new-visitors", action="store_true",
                    help="every request a new visitor (a save each) instead of returning ones")
    args = ap.parse_args()
    # stopped by SIGTERM: still stop httpd and redis-server (the finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    stores = args.stores.split(",")
    if "none" not in stores:
        stores.insert(0, "none")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: install the Debian package wrk")
    if "redis" in stores and not shutil.which("redis-server"):
        print("redis-server not found: the Redis store is not measured")
        stores.remove("redis")

    rundir = make_world_readable_dir("dc-bench-stores-")
    redis = None
    results = {name: [] for name in stores}
    try:
        script = os.path.join(rundir, "campaigns.lua")
        with open(script, "w") as f:
            f.write(NEW_VISITORS_SCRIPT if args.new_visitors else WRK_SCRIPT % "false")
        if "redis" in stores:
            redis_dir = os.path.join(rundir, "redis")
            os.mkdir(redis_dir)
            redis = RedisServer(redis_dir).start()
        uris = store_uris(rundir, redis)
        for round_no in range(args.rounds):
            for name in stores:
                server_dir = os.path.join(rundir, "%s-%d" % (name, round_no))
                os.mkdir(server_dir)
                os.chmod(server_dir, 0o755)
                h = Httpd(server_dir, server_body(args.mpm, uris[name]), mpm=args.mpm,
                          log_level="decision:warn", access_log=False)
                h.start()
                try:
                    if name == "memory":  # its shared memory is new at each start
                        wrk(h, "", args.threads, args.connections, 4, script)
                    elif round_no == 0 and name != "none" and not args.new_visitors:
                        wrk(h, "", args.threads, args.connections, args.fill, script)
                    if args.warmup > 0:
                        wrk(h, "", args.threads, args.connections, args.warmup, script)
                    results[name].append(wrk(h, "", args.threads, args.connections,
                                             args.duration, script))
                finally:
                    h.stop()
                errors = [line for line in h.log().splitlines() if "DC1030" in line or
                          "DC1033" in line]
                if errors:
                    print("%s round %d: %d store lines in the log, e.g. %s" % (
                        name, round_no + 1, len(errors), errors[0]))
    finally:
        if redis:
            redis.stop()
        shutil.rmtree(rundir, ignore_errors=True)

    print("wrk -t%d -c%d -d%ds, %s MPM, %s, best of %d rounds (warm-up %d s before each)" % (
        args.threads, args.connections, args.duration, args.mpm,
        "a new visitor per request" if args.new_visitors else "10 000 returning visitors",
        args.rounds, args.warmup))
    base = max(results["none"])[0]
    base_cpu = median([r[3] for r in results["none"]])
    print("(cost: by rate, best round against best round; rounds' median: each round's rate "
          "against none's in that round; by CPU: the server's CPU per request, median of the "
          "rounds; redis-server's own CPU is not counted)")
    for name in stores:
        rate, p99, non2xx, _ = max(results[name])
        cpu = median([r[3] for r in results[name]])
        cost = 100.0 * (base - rate) / base
        cpu_cost = 100.0 * (1.0 - base_cpu / cpu)
        # each round against none's run of the same round: neighbours that come and go
        # between rounds move both
        paired = median([100.0 * (n[0] - r[0]) / n[0] for n, r in zip(results["none"],
                                                                      results[name])])
        target = TARGETS.get(name)
        verdict = "" if target is None or args.new_visitors else (
            "  (target <= %.0f %%: %s)" % (target, "met" if cost <= target else "NOT met"))
        print("%-8s %-40s %7.0f req/s  p99 %6.2f ms  %5.1f us CPU/req  non-2xx %d  cost %5.1f %% "
              "(rounds' median %5.1f %%, by CPU %5.1f %%)%s" % (
                  name, uris[name][:40], rate, p99, cpu, non2xx, cost, paired, cpu_cost,
                  verdict))


if __name__ == "__main__":
    main()

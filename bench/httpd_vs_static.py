#!/usr/bin/env python3
"""mod_decision's request rate next to httpd serving a small static file.

Starts the distribution's httpd (event MPM, no access log) three times with
the built module and the sample bucketing file: the main server, a twin
configured alike, and one with DecisionMetrics off. wrk (-t2 -c64 by
default) then runs in rounds, one variant after another (each round starting
one variant further along): a 20-byte static file, mod_status's handler
(/server-status?auto, httpd's own in-memory handler: what the MPM alone costs
a request, and its tail) and POST /v2/campaigns (a rotating set of 10 000
visitors, trigger_hit false) on the main server, the same requests on the
server without metrics, and trigger_hit true on the twin (every answer's
events spooled, a shipper delivering them to a file sink; the twin's CPU is
read once its spool has drained, so the shipping counts). For each it prints
the best rate, p99 (best and median of the rounds) and the server's own CPU
per request (utime + stime of the httpd processes), and the ratios: to the
static file, the cost of events, the cost of metrics.

Then pairs of servers are loaded at once (half the connections each), so both
see the same neighbours: metrics off against on, events off against on, and
two servers configured alike, whose difference is this machine's noise floor
for the other two. Not a test: figures depend on the machine; compare runs
made together.

    python3 bench/httpd_vs_static.py [--duration 10] [--rounds 2] [--mpm event]
                                     [--keepalive-on-worker]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import (SAMPLE_BUCKETING, Httpd, http_request, make_htdocs,  # noqa: E402
                     make_world_readable_dir)

WRK_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v2/campaigns?sendContextEvent=false",
    {["Content-Type"] = "application/json"},
    '{"visitor_id":"v' .. (n %% 10000) .. '","context":{"isVIP":true,"age":30},"trigger_hit":%s}')
end
"""

TUNING = {
    "event": "ServerLimit 2\nStartServers 2\nThreadsPerChild 64\nMaxRequestWorkers 128\n"
             "MinSpareThreads 64\nMaxSpareThreads 128\n",
    "worker": "ServerLimit 2\nStartServers 2\nThreadsPerChild 64\nMaxRequestWorkers 128\n"
              "MinSpareThreads 64\nMaxSpareThreads 128\n",
    "prefork": "StartServers 64\nMinSpareServers 64\nMaxSpareServers 80\nServerLimit 80\n"
               "MaxRequestWorkers 80\n",
}


def server_pids(server):
    with open(server.pidfile) as f:
        parent = f.read().strip()
    pids = [parent]
    for task in os.listdir("/proc/%s/task" % parent):
        try:
            with open("/proc/%s/task/%s/children" % (parent, task)) as f:
                pids += f.read().split()
        except OSError:
            pass
    return pids


def server_cpu_seconds(server):
    """utime + stime of an httpd's parent and children: the server's own CPU,
    which neighbours on a shared machine do not inflate the way they move rates."""
    ticks = 0
    for pid in server_pids(server):
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks / float(os.sysconf("SC_CLK_TCK"))


def server_context_switches(server):
    """Voluntary and involuntary context switches of every thread of the server: how often
    a request's path went to sleep and woke (hand-offs between threads, waits)."""
    total = 0
    for pid in server_pids(server):
        try:
            tasks = os.listdir("/proc/%s/task" % pid)
        except OSError:
            continue
        for task in tasks:
            try:
                with open("/proc/%s/task/%s/status" % (pid, task)) as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches",
                                            "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return total


def wrk_start(server, path, threads, conns, duration, script=None):
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    if script:
        args += ["-s", script]
    cpu0 = server_cpu_seconds(server)
    cs0 = server_context_switches(server)
    return server, (cpu0, cs0), subprocess.Popen(args + [server.base_url + path],
                                                 stdout=subprocess.PIPE, text=True)


def spool_drained(spool_dir, limit=30.0):
    """Waits (bounded) until a spool holds no segment: its shipper's work for a load is part
    of what events cost, and left running it would steal the next measurement's CPU."""
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if not any(name.startswith("seg-") and not name.endswith(".progress")
                       for name in os.listdir(spool_dir)):
                return
        except OSError:
            return
        time.sleep(0.2)


def wrk_finish(started, duration, settle=None):
    """(requests/s, p99 ms, non-2xx, server CPU µs per request, server context switches per
    request); settle() runs before the server's CPU is read."""
    server, (cpu0, cs0), proc = started
    out = proc.communicate(timeout=duration + 60)[0]
    cs = server_context_switches(server) - cs0
    if settle:
        settle()
    cpu = server_cpu_seconds(server) - cpu0
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (rate, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0,
            1e6 * cpu / max(requests, 1), cs / float(max(requests, 1)))


def wrk(server, path, threads, conns, duration, script=None, settle=None):
    return wrk_finish(wrk_start(server, path, threads, conns, duration, script), duration,
                      settle)


def load_together(a, b, threads, conns, duration):
    """Loads two servers at once, half the connections each: both see the same neighbours
    and share the cores alike, so the difference of their CPU per request is steadier than
    that of rates measured one after the other. a and b are (server, path, script, settle)."""
    started = [wrk_start(server, path, max(1, threads // 2), max(1, conns // 2), duration, lua)
               for server, path, lua, _ in (a, b)]
    return [wrk_finish(x, duration, settle) for x, (_, _, _, settle) in zip(started, (a, b))]


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--mpm", default="event", choices=sorted(TUNING))
    ap.add_argument("--keepalive-on-worker", action="store_true",
                    help="DecisionKeepAliveOnWorker On in every server (event MPM)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: install the Debian package wrk")

    rundir = make_world_readable_dir("dc-bench-")
    try:
        htdocs = make_htdocs(rundir, {"static.txt": "a small static file\n"})
        script = os.path.join(rundir, "campaigns.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT % "false")
        hits_script = os.path.join(rundir, "campaigns-hits.lua")
        with open(hits_script, "w") as f:
            f.write(WRK_SCRIPT % "true")
        events = os.path.join(rundir, "events")
        os.mkdir(events)
        os.chmod(events, 0o777)
        body = (TUNING[args.mpm] +
                ("DecisionKeepAliveOnWorker On\n" if args.keepalive_on_worker else "") +
                "DocumentRoot %s\n<Directory %s>\n  Require all granted\n</Directory>\n"
                "<Location /server-status>\n  SetHandler server-status\n</Location>\n"
                "DecisionEnvironment bench\nDecisionBucketingFile %s\n"
                "DecisionSpool %s/spool\nDecisionCollector file:%s\n"
                "<Location /v2>\n  SetHandler decision\n</Location>\n"
                % (htdocs, htdocs, SAMPLE_BUCKETING, rundir, events))
        h = Httpd(rundir, body, mpm=args.mpm, log_level="decision:warn", access_log=False,
                  extra_modules=("status",))
        # the same server without metrics, idle while the other is measured; a twin below
        # takes every trigger_hit:true load
        quiet_dir = make_world_readable_dir("dc-bench-nometrics-")
        quiet_events = os.path.join(quiet_dir, "events")
        os.mkdir(quiet_events)
        os.chmod(quiet_events, 0o777)
        quiet_body = body.replace("DecisionSpool %s/spool" % rundir,
                                  "DecisionSpool %s/spool" % quiet_dir)
        quiet_body = quiet_body.replace("file:%s" % events, "file:%s" % quiet_events)
        quiet = Httpd(quiet_dir, quiet_body + "DecisionMetrics off\n", mpm=args.mpm,
                      log_level="decision:warn", access_log=False, extra_modules=("status",))
        twin_dir = make_world_readable_dir("dc-bench-twin-")
        twin_events = os.path.join(twin_dir, "events")
        os.mkdir(twin_events)
        os.chmod(twin_events, 0o777)
        twin_body = body.replace("DecisionSpool %s/spool" % rundir, "DecisionSpool %s/spool" % twin_dir)
        twin_body = twin_body.replace("file:%s" % events, "file:%s" % twin_events)
        twin = Httpd(twin_dir, twin_body, mpm=args.mpm, log_level="decision:warn",
                     access_log=False, extra_modules=("status",))
        h.start()
        quiet.start()
        twin.start()
        try:
            static, status, module, hits, no_metrics = [], [], [], [], []
            # Only the twin ever gets trigger_hit:true, so no shipper backlog runs
            # in a server measured without events; its CPU includes the shipping.
            drained = lambda: spool_drained(os.path.join(twin_dir, "spool"))  # noqa: E731
            plan = [(no_metrics, quiet, "", script, None), (static, h, "/static.txt", None, None),
                    (status, h, "/server-status?auto", None, None),
                    (module, h, "", script, None), (hits, twin, "", hits_script, drained)]
            for n in range(args.rounds):
                # each round starts one further along, so no variant always runs first
                for i in range(len(plan)):
                    runs, server, path, lua, settle = plan[(i + n) % len(plan)]
                    runs.append(wrk(server, path, args.threads, args.connections, args.duration,
                                    lua, settle))
            pairs = {"metrics": [], "events": [], "nothing": []}
            for n in range(args.rounds):
                # metrics: the same requests to a server with and one without;
                # events: trigger_hit false to one server, true to its twin
                # nothing: the same requests to two servers configured alike, the
                # noise floor of this machine for the other two
                for name, a, b in (("metrics", (quiet, "", script, None), (h, "", script, None)),
                                   ("events", (h, "", script, None),
                                    (twin, "", hits_script, drained)),
                                   ("nothing", (h, "", script, None), (twin, "", script, None))):
                    if n % 2:
                        b_run, a_run = load_together(b, a, args.threads, args.connections, args.duration)
                    else:
                        a_run, b_run = load_together(a, b, args.threads, args.connections, args.duration)
                    pairs[name].append((a_run, b_run))
            # whether the twin's rings kept up: a full ring sends a request to the slower path
            _, _, data = http_request(twin.base_url, "/v2/metrics", None, method="GET")
            twin_hits = json.loads(data)["hits"]
        finally:
            h.stop()
            quiet.stop()
            twin.stop()
            batches = 0
            for name in os.listdir(twin_events):
                with open(os.path.join(twin_events, name)) as f:
                    batches += sum(1 for _ in f)
            shutil.rmtree(quiet_dir, ignore_errors=True)
            shutil.rmtree(twin_dir, ignore_errors=True)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    s = max(static)
    m = max(module)
    e = max(hits)
    q = max(no_metrics)
    print("wrk -t%d -c%d -d%ds, %s MPM%s, best of %d rounds (server CPU per request: median)" % (
        args.threads, args.connections, args.duration, args.mpm,
        " + DecisionKeepAliveOnWorker" if args.keepalive_on_worker else "", args.rounds))
    rows = [("static file", static, ""), ("mod_status handler", status, ""),
            ("POST /v2/campaigns", module, ""),
            ("  with trigger_hit", hits, "; events spooled, shipped to a file"),
            ("  metrics off", no_metrics, "")]
    for name, runs, note in rows:
        best = max(runs)
        print("%-20s %8.0f req/s  p99 %6.2f ms (median of rounds %6.2f)  %6.1f us CPU/request  "
              "%4.2f context switches/request  (non-2xx: %d%s)" % (
                  name, best[0], best[1], median([r[1] for r in runs]),
                  median([r[3] for r in runs]), median([r[4] for r in runs]), best[2], note))
    print("event batches at the file sink when stopped: %d" % batches)
    print("hits spooled by the twin: %d; requests whose hits found the ring full: %d" % (
        twin_hits["accepted"], twin_hits["ring_full_requests"]))

    def rate_cost(base, other):  # how much slower `other` is than `base`, by rate
        best = 100.0 * (max(base)[0] - max(other)[0]) / max(base)[0]
        paired = median([100.0 * (a[0] - b[0]) / a[0] for a, b in zip(base, other)])
        return best, paired

    def cpu_cost(base, other):  # the extra CPU per request of `other`, as a share of its rate
        return 100.0 * (1.0 - median([r[3] for r in base]) / median([r[3] for r in other]))

    ratio = 100.0 * max(module)[0] / max(static)[0]
    paired = median([100.0 * a[0] / b[0] for a, b in zip(module, static)])
    print("ratio to static     %6.1f %%  (median of the rounds' own: %.1f %%)" % (ratio, paired))
    for name, base, other in (("events", module, hits), ("metrics", no_metrics, module)):
        best, paired = rate_cost(base, other)
        print("cost of %-10s  %6.1f %% of the rate  (median of the rounds' own: %.1f %%; "
              "by server CPU per request: %.1f %%)" % (name, best, paired,
                                                       cpu_cost(base, other)))
    print("paired (two servers loaded at once, -t%d -c%d each; %d rounds):" % (
        max(1, args.threads // 2), max(1, args.connections // 2), args.rounds))
    for name in ("metrics", "events", "nothing"):
        by_cpu = [100.0 * (1.0 - a[3] / b[3]) for a, b in pairs[name]]
        by_rate = [100.0 * (a[0] - b[0]) / a[0] for a, b in pairs[name]]
        print("  cost of %-8s  %5.1f %% by server CPU per request, %5.1f %% by rate "
              "(medians; rounds by CPU: %s)" % (name, median(by_cpu), median(by_rate),
                                                " ".join("%.1f" % x for x in by_cpu)))
    print("API p99             %6.2f ms best, %.2f ms median of the rounds" % (
        min(r[1] for r in module), median([r[1] for r in module])))
    print("p99 with events     %6.2f ms median of the rounds: %.2f x the API's without" % (
        median([r[1] for r in hits]),
        median([r[1] for r in hits]) / max(median([r[1] for r in module]), 1e-9)))

if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""mod_decision's request rate next to httpd serving a small static file.

Starts the distribution's httpd (event MPM, no access log) with the built
module and the sample bucketing file, then runs wrk (-t2 -c64 by default)
alternately against a 20-byte static file, POST /v2/campaigns (a rotating
set of 10 000 visitors) with trigger_hit false, and the same with
trigger_hit true (every answer's events go to the spool, a shipper delivers
them to a file sink), and the first again on a twin server with
DecisionMetrics off; prints the rates, the ratios (to the static file, the
cost of events, the cost of metrics) and the p99 latencies. The best of the rounds is kept for each, so a noisy neighbour on
the machine hurts both figures alike. Not a test: figures depend on the
machine; compare runs made together.

    python3 bench/httpd_vs_static.py [--duration 10] [--rounds 2] [--mpm event]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import SAMPLE_BUCKETING, Httpd, make_htdocs, make_world_readable_dir  # noqa: E402

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


def wrk(url, threads, conns, duration, script=None):
    args = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--mpm", default="event", choices=sorted(TUNING))
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
                "DocumentRoot %s\n<Directory %s>\n  Require all granted\n</Directory>\n"
                "DecisionEnvironment bench\nDecisionBucketingFile %s\n"
                "DecisionSpool %s/spool\nDecisionCollector file:%s\n"
                "<Location /v2>\n  SetHandler decision\n</Location>\n"
                % (htdocs, htdocs, SAMPLE_BUCKETING, rundir, events))
        h = Httpd(rundir, body, mpm=args.mpm, log_level="decision:warn", access_log=False)
        # the same server without metrics, idle while the other is measured
        quiet_dir = make_world_readable_dir("dc-bench-nometrics-")
        quiet_events = os.path.join(quiet_dir, "events")
        os.mkdir(quiet_events)
        os.chmod(quiet_events, 0o777)
        quiet_body = body.replace("DecisionSpool %s/spool" % rundir,
                                  "DecisionSpool %s/spool" % quiet_dir)
        quiet_body = quiet_body.replace("file:%s" % events, "file:%s" % quiet_events)
        quiet = Httpd(quiet_dir, quiet_body + "DecisionMetrics off\n", mpm=args.mpm,
                      log_level="decision:warn", access_log=False)
        h.start()
        quiet.start()
        try:
            static, module, hits, no_metrics = [], [], [], []
            for _ in range(args.rounds):
                no_metrics.append(wrk(quiet.base_url, args.threads, args.connections,
                                      args.duration, script))
                static.append(wrk(h.base_url + "/static.txt", args.threads, args.connections,
                                  args.duration))
                module.append(wrk(h.base_url, args.threads, args.connections, args.duration,
                                  script))
                hits.append(wrk(h.base_url, args.threads, args.connections, args.duration,
                                hits_script))
        finally:
            h.stop()
            quiet.stop()
            shutil.rmtree(quiet_dir, ignore_errors=True)
        batches = 0
        for name in os.listdir(events):
            with open(os.path.join(events, name)) as f:
                batches += sum(1 for _ in f)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    s = max(static)
    m = max(module)
    e = max(hits)
    q = max(no_metrics)
    print("wrk -t%d -c%d -d%ds, %s MPM, best of %d rounds" % (
        args.threads, args.connections, args.duration, args.mpm, args.rounds))
    print("static file         %9.0f req/s  p99 %6.2f ms" % (s[0], s[1]))
    print("POST /v2/campaigns  %9.0f req/s  p99 %6.2f ms  (non-2xx: %d)" % (m[0], m[1], m[2]))
    print("  with trigger_hit   %9.0f req/s  p99 %6.2f ms  (non-2xx: %d; events spooled, "
          "shipped to a file)" % (e[0], e[1], e[2]))
    print("  metrics off        %9.0f req/s  p99 %6.2f ms  (non-2xx: %d)" % (q[0], q[1], q[2]))
    print("event batches at the file sink when stopped: %d" % batches)
    print("ratio to static     %9.1f %%" % (100.0 * m[0] / s[0]))
    print("cost of events      %9.1f %% of the rate" % (100.0 * (m[0] - e[0]) / m[0]))
    print("cost of metrics     %9.1f %% of the rate" % (100.0 * (q[0] - m[0]) / q[0]))


if __name__ == "__main__":
    main()

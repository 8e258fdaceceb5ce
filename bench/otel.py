#!/usr/bin/env python3
"""What OpenTelemetry tracing costs mod_decision at the server level.

Two httpd servers (event MPM, no access log, the sample bucketing file, no
store) side by side: one without OpenTelemetry, one tracing every request
(OTEL_TRACES_SAMPLER=always_on, gzip, the default batching) to an OTLP sink on
loopback that answers 200 without decoding. Each round loads both at once with
wrk (half the connections each: same neighbours, same cores), POST
/v2/campaigns for 10 000 returning visitors, and reads each server's CPU per
request. Prints each round and the medians: the ratio of the traced server's
rate to the other's, and the CPU per request it adds (the exporter threads'
encoding, gzip and HTTP included: they run in the children). Not a test:
figures depend on the machine; compare runs made together.

    /usr/bin/python3 bench/otel.py [--duration 10] [--rounds 3] [--warmup 3]   (make bench-otel-httpd)
"""
import argparse
import os
import shutil
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from harness import SAMPLE_BUCKETING, Httpd, make_world_readable_dir  # noqa: E402
from httpd_vs_static import TUNING, WRK_SCRIPT, load_together, median  # noqa: E402
from otlp_receiver import OtlpReceiver  # noqa: E402


def body(otel_endpoint=None):
    text = (TUNING["event"] + "DecisionEnvironment bench\nDecisionBucketingFile %s\n"
            "<Location /v2>\n  SetHandler decision\n</Location>\n" % SAMPLE_BUCKETING)
    if otel_endpoint:
        text += ("DecisionOTelEndpoint %s\nDecisionOTelSampler always_on\n"
                 "DecisionOTelCompression gzip\nDecisionOTelMetricsExporter none\n" % otel_endpoint)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    if not shutil.which("wrk"):
        sys.exit("wrk not found: install the Debian package wrk")
    rundir = make_world_readable_dir("dc-bench-otel-")
    sink = OtlpReceiver(decode=False).start()
    servers = []
    try:
        script = os.path.join(rundir, "campaigns.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT % "false")
        for name, endpoint in (("off", None), ("on", sink.url)):
            d = os.path.join(rundir, name)
            os.mkdir(d)
            os.chmod(d, 0o755)
            servers.append(Httpd(d, body(endpoint), log_level="decision:warn",
                                 access_log=False).start())
        off, on = servers
        rounds = []
        if args.warmup:
            load_together((off, "", script, None), (on, "", script, None), args.threads,
                          args.connections, args.warmup)
        for r in range(args.rounds):
            a, b = load_together((off, "", script, None), (on, "", script, None), args.threads,
                                 args.connections, args.duration)
            rounds.append((a, b))
            print("round %d: off %7.0f req/s p99 %6.2f ms %5.1f us CPU/req | on %7.0f req/s "
                  "p99 %6.2f ms %5.1f us CPU/req | non-2xx %d/%d" % (
                      r + 1, a[0], a[1], a[3], b[0], b[1], b[3], a[2], b[2]))
        print("exported %d requests to the sink" % sink.answered.get(200, 0))
    finally:
        for h in servers:
            h.stop()
        sink.stop()
        shutil.rmtree(rundir, ignore_errors=True)
    ratio = median([b[0] / a[0] for a, b in rounds])
    extra = median([b[3] - a[3] for a, b in rounds])
    print("wrk -t%d -c%d -d%ds, both servers loaded at once, %d rounds: tracing on / off rate "
          "ratio %.3f (median), CPU added %.2f us per request (median; the exporter threads "
          "included)" % (args.threads, args.connections, args.duration, args.rounds, ratio, extra))


if __name__ == "__main__":
    main()

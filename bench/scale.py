#!/usr/bin/env python3
"""The figures of a big bucketing file in one run (doc/performance.md, "A 1,000-campaign file").

    bench/scale.py [--campaigns 1000] [--rounds 5] [--seconds 1] [--swaps 6] [--threads 4]
                   [--shared-config SIZE|Off] [--quick]

1. bench/bench_engine on the 5-campaign sample, its generated 200-campaign file and a
   --campaigns file of tests/gen_bucketing.py's scale profile (with that profile's visitors):
   decisions per second of thread CPU time and load (parse + snapshot) in ms of CPU, best
   and median of --rounds.
2. httpd (event MPM) with the module on that file, next to one on the sample file: each
   child's Rss / Pss / Private_Dirty (/proc/PID/smaps_rollup), medians over children,
   before any swap (the parent's snapshot shared copy-on-write) and after --swaps swaps.
3. The swaps under a keep-alive load of --threads connections: requests, failures, answers
   that came from no single file, and how long each swap took to show on fresh connections.

Run from a built tree (`make bench-scale` builds what it needs). --quick is the profile
tests/integration/test_scale.py runs so that this script cannot rot: short rounds, 2 swaps;
its timings mean nothing. Prints "scale: NAME VALUE" lines at the end for scripts.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import scale  # noqa: E402
from harness import make_world_readable_dir  # noqa: E402


def engine(build_dir, files_dir, n_campaigns, rounds, seconds):
    d = os.path.join(files_dir, "engine")
    path, visitors = scale.gen_bucketing.write_case(d, 1, 4096, n_campaigns, profile="scale")
    cmd = [os.path.join(build_dir, "bench", "bench_engine"), "-r", str(rounds), "-t", str(seconds),
           os.path.join(TOP, "conf", "sample-bucketing.json"), "200", path, visitors]
    print("$ " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    print(out, end="", flush=True)
    rates = [float(x) for x in re.findall(r"decisions/s of CPU: best (\d+)", out)]
    loads = [float(x) for x in re.findall(r"load \(parse \+ snapshot\), ms of CPU: best ([\d.]+)", out)]
    return rates, loads


def fmt_mem(m):
    return "Rss %6.1f MB  Pss %6.1f MB  Private_Dirty %6.1f MB" % (
        m["Rss"] / 1024, m["Pss"] / 1024, m["Private_Dirty"] / 1024)


def server_run(files_dir, n_campaigns, swaps, threads, shared_config=None):
    files, bodies, live = scale.make_live(files_dir, n_campaigns, n_visitors=400)
    dirs = [make_world_readable_dir("dc-scale-bench-") for _ in range(2)]
    base = big = None
    try:
        base = scale.start(None, dirs[0], scale.SAMPLE)
        big = scale.start(None, dirs[1], live, extra="DecisionSharedConfigSize %s\n" % shared_config
                          if shared_config else "")
        scale.warm_children(base, bodies)
        scale.warm_children(big, bodies)
        mem_base = scale.summary(scale.children_memory(base))
        mem_initial = scale.summary(scale.children_memory(big))
        result = scale.swap_under_load(big, live, files, bodies, swaps=swaps, threads=threads)
        time.sleep(1.2)  # the swapped-out snapshot's grace period
        scale.warm_children(big, bodies)
        mem_after = scale.summary(scale.children_memory(big))
    finally:
        for h in (big, base):
            if h:
                h.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    return mem_base, mem_initial, mem_after, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--campaigns", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--swaps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--shared-config", metavar="SIZE|Off",
                    help="DecisionSharedConfigSize of the big file's server (default: the module's)")
    ap.add_argument("--quick", action="store_true", help="the CI profile: runs, figures meaningless")
    ap.add_argument("--build-dir", default=os.environ.get("DC_BUILD_DIR", TOP))
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.swaps = 1, 0.1, 2

    files_dir = make_world_readable_dir("dc-scale-files-")  # children re-read the file as User
    try:
        print("== engine (bench/bench_engine, CPU time of its thread)", flush=True)
        rates, loads = engine(a.build_dir, files_dir, a.campaigns, a.rounds, a.seconds)
        print("\n== httpd (event MPM), %d campaigns, %d swaps under %d keep-alive connections%s"
              % (a.campaigns, a.swaps, a.threads,
                 ", DecisionSharedConfigSize " + a.shared_config if a.shared_config else ""),
              flush=True)
        base, initial, after, result = server_run(files_dir, a.campaigns, a.swaps, a.threads,
                                                  a.shared_config)
    finally:
        shutil.rmtree(files_dir, ignore_errors=True)
    print("children on the sample file:     " + fmt_mem(base))
    print("children on the big file:        " + fmt_mem(initial))
    print("  after %d swaps:                 " % a.swaps + fmt_mem(after))
    growth_initial = (initial["Private_Dirty"] - base["Private_Dirty"]) / 1024
    growth_after = (after["Private_Dirty"] - base["Private_Dirty"]) / 1024
    print("private memory per child over the sample's: %.1f MB before a swap, %.1f MB after"
          % (growth_initial, growth_after))
    print("swaps under load: %d requests, %d failed, %d answers from no single file; "
          "a swap showed in %s s" % (result["requests"], len(result["failures"]),
                                     result["answers_from_no_single_file"],
                                     ", ".join("%.1f" % t for t in result["swap_seconds"])))
    for f in result["failures"][:5]:
        print("  failure: %r" % f)
    print("scale: engine_best_decisions_per_s %s" % " ".join("%.0f" % r for r in rates))
    print("scale: load_best_ms %s" % " ".join("%.1f" % x for x in loads))
    print("scale: private_growth_mb %.1f %.1f" % (growth_initial, growth_after))
    print("scale: swap_requests %d" % result["requests"])
    print("scale: swap_failures %d" % len(result["failures"]))
    print("scale: mixed_answers %d" % result["answers_from_no_single_file"])
    return 1 if result["failures"] or result["answers_from_no_single_file"] else 0


if __name__ == "__main__":
    sys.exit(main())

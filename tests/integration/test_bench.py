"""The benchmarks' quick profile: bench/ scripts run for a second or two, so
they cannot rot between the runs that measure (doc/performance.md). What is
asserted is what does not depend on the machine: every request answered
2xx, every spooled event shipped, every figure printed. No timing is.
"""
import os
import re
import subprocess

from harness import BUILD, REPO, SAMPLE_BUCKETING


def bench_api():
    subprocess.run(["make", "-s", "-C", BUILD, "bench/bench_api"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(BUILD, "bench", "bench_api")


def test_events_bench_spools_and_ships_every_record_every_way():
    # records: an untimed round first, then two rounds of 3000 with events
    for options in ("write=ring", "write=ring,ring-bytes=64k", "write=map", "write=pwrite",
                    "fsync=always"):
        r = subprocess.run([bench_api(), SAMPLE_BUCKETING, "3000", "2", "memory", "events",
                            options], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert len(re.findall(r"^round \d: trigger_hit false +\d+ req/s, true \(spooled\) +\d+",
                              r.stdout, re.M)) == 2, r.stdout
        assert re.search(r"building and spooling the hits costs -?\d+ ns", r.stdout), r.stdout
        shipped = re.search(r"shipping (\d+) records \((\d+) hits\) to a file sink: \d+ ns.*; "
                            r"(\d+) hits delivered", r.stdout)
        assert shipped and int(shipped.group(1)) == 9000 and int(shipped.group(2)) >= 9000, \
            r.stdout
        assert shipped.group(3) == shipped.group(2), r.stdout  # every spooled hit shipped
        assert re.search(r"the spool's background thread .*: -?\d+ ns", r.stdout), r.stdout
        # a ring too small for this rate sends records to the segment path, and says how many
        full = re.search(r"the ring was full for (\d+) of the rounds' (\d+) records", r.stdout)
        if full:
            assert "ring" in options and 0 < int(full.group(1)) <= int(full.group(2)) == 6000, \
                r.stdout
        assert "skipped" not in r.stderr and "DC107" not in r.stderr, r.stderr


def test_httpd_bench_runs_every_variant_without_an_error():
    r = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench", "httpd_vs_static.py"),
                        "--rounds", "1", "--duration", "1", "--connections", "16"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for row in ("static file", "mod_status handler", "POST /v2/campaigns", "with trigger_hit",
                "metrics off"):
        line = re.search(r"^ *%s +\d+ req/s .*\(non-2xx: (\d+)" % re.escape(row), r.stdout,
                         re.M)
        assert line and line.group(1) == "0", (row, r.stdout)
    batches = re.search(r"event batches at the file sink when stopped: (\d+)", r.stdout)
    assert batches and int(batches.group(1)) > 0, r.stdout
    twin = re.search(r"hits spooled by the twin: (\d+); requests whose hits found the ring full: "
                     r"(\d+)", r.stdout)
    assert twin and 0 <= int(twin.group(2)) <= int(twin.group(1)) and int(twin.group(1)) > 0, \
        r.stdout
    for figure in ("ratio to static", "cost of events", "cost of metrics", "cost of nothing",
                   "API p99", "p99 with events"):
        assert figure in r.stdout, (figure, r.stdout)


def test_same_answers_tells_builds_apart_and_alike(tmp_path):
    script = os.path.join(REPO, "bench", "same_answers.sh")
    fcgi = os.path.join(BUILD, "fcgi", "decision-fcgi")
    # "another build" whose answers differ only where a store is used
    other = tmp_path / "other-build"
    other.write_text('#!/bin/sh\n"%s" "$@"\ncase "$*" in *"--store memory"*) echo;; esac\n' % fcgi)
    other.chmod(0o755)
    env = dict(os.environ, SAME_ANSWERS_CASES="diff:1:0 scale:1:50")
    same = subprocess.run(["sh", script, fcgi, fcgi, "40"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.strip().splitlines()[-1] == "16 compared, 0 different", same.stdout
    apart = subprocess.run(["sh", script, fcgi, str(other), "40"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert apart.returncode == 1, apart.stdout + apart.stderr
    lines = apart.stdout.strip().splitlines()
    assert lines[-1] == "16 compared, 8 different", apart.stdout
    assert all("store memory" in line for line in lines[:-1]), apart.stdout

"""A 1,000-campaign bucketing file (tests/gen_bucketing.py --profile scale) in a real httpd:
config swaps under a keep-alive load fail no request and every answer comes from one file,
the new one once the swap is seen; and the children's memory stays bounded, before a swap
(the parent's snapshot shared copy-on-write) and after (the poller's parse, in shared memory
every child maps: DecisionSharedConfigSize). A file too big for the shared memory is parsed
by each child; children that exit give their references to shared snapshots back.
bench/scale.py runs the same code longer and prints the figures (doc/performance.md)."""

import os
import re
import shutil
import time

import pytest

import scale
from harness import APACHE_BIN, MODULE_SO, Httpd, _sanitizer_preload, make_world_readable_dir, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(APACHE_BIN),
                                reason="no %s: install the Debian package apache2" % APACHE_BIN)

# Under ASan (the sanitizer pass of tests/run) freed memory sits in the quarantine and every
# allocation has its redzones: the memory bounds are checked in the normal pass only.
SANITIZED = bool(_sanitizer_preload(MODULE_SO))


@pytest.fixture
def rundirs():
    made = []

    def make():
        made.append(make_world_readable_dir("dc-scale-"))
        return made[-1]
    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers():
    """Starts httpd instances; stops them at the end and checks no child crashed."""
    started = []

    def start(rundir, body, **kw):
        started.append(Httpd(rundir, body, **kw))
        return started[-1].start()
    yield start
    for h in started:
        h.stop()
    for h in started:
        assert "exit signal" not in h.log(), h.log()[-3000:]
        assert h.sanitizer_reports() == ""


def private_growth(big, base):
    """Median Private_Dirty of big's children minus base's, kB."""
    return scale.summary(big)["Private_Dirty"] - scale.summary(base)["Private_Dirty"]


def test_thousand_campaigns_swapped_under_load(rundirs, servers):
    files_dir = rundirs()
    files, bodies, live = scale.make_live(files_dir, 1000, n_visitors=200)

    base = scale.start(servers, rundirs(), scale.SAMPLE)
    h = scale.start(servers, rundirs(), live)
    scale.warm_children(base, bodies)
    scale.warm_children(h, bodies)
    ids = scale.campaign_ids(files[0])
    assert scale.serving(h, ids, bodies)

    # Before any swap the children share the parent's snapshot: what they hold of their own
    # is what serving a request dirtied (measured 0.4-1 MB; the bound is 4 MB).
    mem_base, mem_big = scale.children_memory(base), scale.children_memory(h)
    assert mem_big and mem_base
    assert SANITIZED or private_growth(mem_big, mem_base) <= 4096, (mem_big, mem_base)

    result = scale.swap_under_load(h, live, files, bodies, swaps=4, threads=4, settle=0.3)
    assert result["failures"] == [], result["failures"][:5]
    assert result["requests"] > 100, result
    assert result["answers_from_no_single_file"] == 0, result
    assert scale.serving(h, scale.campaign_ids(files[0]), bodies)  # 4 swaps: back to the first

    # After a swap the children serve the snapshot the poller parsed into shared memory
    # (about 8 MB for this 1.6 MB file, once for all of them; each child parsed its own
    # before, 13 MB of its own: doc/performance.md, "A 1,000-campaign file").
    time.sleep(1.2)  # dc_slot's grace period: then the child watchdog releases the old one
    scale.warm_children(h, bodies)
    log = h.log()
    assert "not shared" not in log, log[-3000:]
    assert ", shared)" in log, log[-3000:]
    grown = private_growth(scale.children_memory(h), mem_base)
    assert SANITIZED or grown <= 4096, grown


def last_generation(log):
    found = re.findall(r"generation (\d+) published to every child", log)
    return int(found[-1]) if found else 0


def test_a_file_too_big_for_the_shared_memory_is_parsed_by_each_child(rundirs, servers):
    files_dir = rundirs()
    files, bodies, live = scale.make_live(files_dir, 1000, n_visitors=100)
    h = scale.start(servers, rundirs(), live, extra="DecisionSharedConfigSize 1M\n")
    result = scale.swap_under_load(h, live, files, bodies, swaps=2, threads=2, settle=0.2)
    assert result["failures"] == [] and result["answers_from_no_single_file"] == 0, result
    log = h.log()
    assert "not shared, each child parses its own copy: the snapshot of this file" in log, log[-3000:]
    assert "(raise DecisionSharedConfigSize)" in log
    assert ", shared)" not in log


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_children_that_exit_give_their_shared_snapshots_back(rundirs, servers, mpm):
    """More swaps than the shared memory has slots, while children exit after a few
    connections (and idle ones have none): every swap is still shared."""
    files_dir = rundirs()
    files, bodies, live = scale.make_live(files_dir, 40, n_visitors=40)
    h = scale.start(servers, rundirs(), live, mpm=mpm, extra="MaxConnectionsPerChild 6\n")
    ids = [scale.campaign_ids(p) for p in files]
    for n in range(6):
        new = (n + 1) % len(files)
        scale.install(files[new], live)
        wait_until(lambda: scale.serving(h, ids[new], bodies), timeout=30, interval=0.2,
                   what="answers from file %d after swap %d" % (new, n + 1))
        generation = last_generation(h.log())
        wait_until(lambda: "(generation %d, shared)" % generation in h.log(), timeout=10,
                   interval=0.2, what="a child serving generation %d shared" % generation)
    assert "not shared" not in h.log(), h.log()[-3000:]


def test_bench_scale_quick_profile_runs():
    """bench/scale.py's CI profile: it runs end to end and prints its figures; only what is no
    timing is asserted (no failed request, no mixed answer, the shared snapshot's bound)."""
    import subprocess
    import sys
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.environ.get("DC_BUILD_DIR", top)
    # bench programs are EXTRA_PROGRAMS: `make` alone does not build them
    subprocess.run(["make", "-s", "-C", build, "bench/bench_engine"], check=True, timeout=300)
    p = subprocess.run([sys.executable, os.path.join(top, "bench", "scale.py"), "--quick"],
                       capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    figures = {line.split()[1]: line.split()[2:] for line in p.stdout.splitlines()
               if line.startswith("scale: ")}
    assert len(figures["engine_best_decisions_per_s"]) == 3, p.stdout
    assert all(float(x) > 0 for x in figures["engine_best_decisions_per_s"] + figures["load_best_ms"])
    assert figures["swap_failures"] == ["0"] and figures["mixed_answers"] == ["0"], p.stdout
    assert int(figures["swap_requests"][0]) > 0
    assert float(figures["private_growth_mb"][0]) <= 4.0, p.stdout

"""Events end to end: decision-fcgi eval --spool writes each request's hits to
the spool before answering, decision-fcgi ship delivers them to the stand-in
collector (tests/standin.py). What is checked: the collector's format field by
field, delivery of every event (counted by spool id) across a collector
outage, retries on 500/429/slow answers, 400 into the dead-letter folder, a
kill -9 in the middle of a stream, the disk bound, and the file sink.
"""
import glob
import shutil
import json
import os
import signal
import subprocess
import time
import zlib

import pytest

from harness import DECISION_FCGI, SAMPLE_BUCKETING, Proc, free_port, run_eval, wait_until
from standin import StandIn

ENV = "env_test"


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = 0x82F63B78 ^ (c >> 1) if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), the checksum of DC2 records; "123456789" -> 0xE3069283."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def spool_records(spool):
    """Reads every segment of a spool with an independent parser of the
    record format: [(id, received_ms, qt_base, hit dict)], checking each crc."""
    out = []
    for path in sorted(glob.glob(os.path.join(spool, "seg-*"))):
        if path.endswith(".progress"):
            continue
        with open(path, "rb") as f:
            data = f.read().rstrip(b"\0")  # a live .open segment is allocated ahead
        for line in data.split(b"\n"):
            if not line:
                continue
            line = line.lstrip(b"\0")  # a range reserved by a killed writer, never filled
            assert line[:4] in (b"DC2 ", b"DC1 "), line[:40]
            length, crc = int(line[4:12], 16), int(line[13:21], 16)
            payload = line[22:]
            check = crc32c if line[:4] == b"DC2 " else zlib.crc32
            if len(payload) != length or check(payload) != crc:
                continue  # torn
            n, rest = payload.split(b" ", 1)
            for _ in range(int(n)):
                hid, received, qt_base, hlen, rest = rest.split(b" ", 4)
                hit, rest = rest[:int(hlen)], rest[int(hlen) + 1:]
                out.append((hid.decode(), int(received), int(qt_base), json.loads(hit)))
    return out


def ready_segments(spool):
    return glob.glob(os.path.join(spool, "seg-*.ready"))


def eval_spool(lines, spool, query="sendContextEvent=true", path=None, options=None):
    extra = ["--spool", str(spool), "--env-id", ENV, "--query", query]
    if path:
        extra += ["--path", path]
    if options:
        extra += ["--spool-options", options]
    rc, out, err = run_eval(lines, extra=extra)
    assert rc == 0, err
    assert len(out) == len(lines)
    return [json.loads(l) for l in out], err


def ship(spool, collector, *extra, timeout=60):
    args = [DECISION_FCGI, "ship", "--spool", str(spool), "--collector", collector, "--once",
            "--backoff-min", "50", "--backoff-max", "300"] + list(extra)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def visitor(i, **more):
    body = {"visitor_id": "vis-%03d" % i, "context": {"isVIP": True, "age": 30},
            "trigger_hit": True}
    body.update(more)
    return body


@pytest.fixture
def collector():
    s = StandIn().start()
    yield s
    s.stop()


def test_hits_arrive_in_the_collector_format(tmp_path, collector):
    spool = tmp_path / "spool"
    answers, _ = eval_spool([visitor(i) for i in range(3)], spool)
    activation = {"cid": ENV, "vid": "vis-act", "aid": "anon-act", "caid": "vg_ab",
                  "vaid": "v_ab_red", "qt": 100, "qa": True}
    eval_spool([activation], spool, path="/v2/activate")
    time.sleep(0.05)  # so qt is measurably > 0
    r = ship(spool, collector.collector_url)
    assert r.returncode == 0, r.stderr
    assert not ready_segments(spool)

    assert len(collector.received) >= 1
    for path, headers, body in collector.received:
        doc = json.loads(body)
        assert list(doc) == ["t", "ds", "h", "cv"]
        assert doc["t"] == "BATCH" and doc["ds"] == "APP"
        assert set(doc["cv"]) == {"0", "1", "2"} and doc["cv"]["0"] == "runner, self-hosted"
        assert 1 <= len(doc["h"]) <= 50
        assert "Content-Type" not in headers  # as the decision-api posts
        ids = headers["X-Decision-Hit-Ids"].split(",")
        assert len(ids) == len(doc["h"]) == len(set(ids))

    hits = collector.hits()
    expected = []
    for ans in answers:
        vid = ans["visitorId"]
        expected.append({"t": "SEGMENT", "cid": ENV, "vid": vid, "cuid": vid,
                         "s": {"isVIP": "true", "age": "30"}})
        for c in ans["campaigns"]:
            expected.append({"t": "CAMPAIGN", "cid": ENV, "vid": vid, "cuid": vid,
                             "caid": c["variationGroupId"], "vaid": c["variation"]["id"],
                             "qa": False})
    expected.append({"t": "CAMPAIGN", "cid": ENV, "vid": "anon-act", "cuid": "vis-act",
                     "caid": "vg_ab", "vaid": "v_ab_red", "qa": True})
    assert len(hits) == len(expected)
    for got, want in zip(hits, expected):
        qt = got.pop("qt")
        assert isinstance(qt, int) and 0 <= qt < 60000
        assert got == want
    assert hits[-1:] and json.loads(collector.received[-1][2])["h"][-1]["qt"] >= 100


def test_collector_down_then_up_delivers_every_event(tmp_path):
    spool = tmp_path / "spool"
    eval_spool([visitor(i) for i in range(40)], spool)
    ids = [r[0] for r in spool_records(spool)]
    assert len(ids) > 100 and len(ids) == len(set(ids))

    port = free_port()
    url = "http://127.0.0.1:%d/collect" % port
    shipper = Proc([DECISION_FCGI, "ship", "--spool", str(spool), "--collector", url,
                    "--backoff-min", "100", "--backoff-max", "400", "--log-level", "info"],
                   str(tmp_path / "ship.log"))
    standin = None
    try:
        time.sleep(1.5)
        assert shipper.alive()
        assert ready_segments(spool), "nothing may be deleted while the collector is down"
        standin = StandIn(port).start()
        wait_until(lambda: set(ids) <= set(standin.hit_ids()), timeout=20,
                   what="every event delivered")
        wait_until(lambda: not ready_segments(spool), timeout=10, what="spool emptied")
    finally:
        rc = shipper.stop()
        if standin:
            standin.stop()
    log = shipper.output()
    assert rc == 0, log
    assert "DC10725" in log  # the start-up test said the collector does not answer
    assert "state retrying" in log and "state ok" in log
    assert "0 dead letter(s)" in log


def test_500_429_and_slow_answers_are_retried(tmp_path, collector):
    spool = tmp_path / "spool"
    eval_spool([visitor(i) for i in range(4)], spool)
    ids = [r[0] for r in spool_records(spool)]
    collector.configure_collector(script=[500, 429, {"status": 200, "delay": 2.5}, 503])
    r = ship(spool, collector.collector_url, "--request-timeout", "1000", "--batch-hits", "10")
    assert r.returncode == 0, r.stderr
    statuses = [s for _, s, _ in collector.collector_requests]
    # the slow 200 is recorded when its delay ends, after the retry that followed it
    assert sorted(statuses[:4]) == [200, 429, 500, 503]
    assert all(s == 200 for s in statuses[4:])
    # all four were attempts at the same first batch: nothing after it went out meanwhile,
    # and the one the shipper gave up on (slow) was sent again: at least once
    assert len({h for _, _, h in collector.collector_requests[:4]}) == 1
    assert set(ids) <= set(collector.hit_ids())
    assert "4 retries" in r.stderr and "0 dead letter(s)" in r.stderr
    assert not ready_segments(spool)


def test_400_goes_to_the_dead_letter_folder_and_is_not_retried(tmp_path, collector):
    spool = tmp_path / "spool"
    eval_spool([visitor(i) for i in range(3)], spool, query="sendContextEvent=false")
    records = spool_records(spool)
    assert len(records) > 8
    collector.configure_collector(script=[400])
    r = ship(spool, collector.collector_url, "--batch-hits", "4")
    assert r.returncode == 0, r.stderr
    later_batches = (len(records) - 4 + 3) // 4
    assert [s for _, s, _ in collector.collector_requests] == [400] + [200] * later_batches
    assert "DC10728" in r.stderr and "1 dead letter(s)" in r.stderr
    dead = glob.glob(os.path.join(spool, "dead-letter", "*.jsonl"))
    assert len(dead) == 1
    with open(dead[0]) as f:
        lines = f.read().splitlines()
    assert len(lines) == 1
    batch = json.loads(lines[0])
    assert batch["t"] == "BATCH" and len(batch["h"]) == 4
    assert [h["caid"] for h in batch["h"]] == [r[3]["caid"] for r in records[:4]]
    assert len(collector.hits()) == len(records) - 4
    assert not ready_segments(spool)


def test_kill_9_mid_stream_loses_no_answered_event(tmp_path, collector):
    spool = tmp_path / "spool"
    p = subprocess.Popen([DECISION_FCGI, "eval", "--bucketing", SAMPLE_BUCKETING, "--spool",
                          str(spool), "--env-id", ENV, "--spool-options", "fsync=never"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    answered = []
    try:
        for i in range(60):
            p.stdin.write(json.dumps(visitor(i)) + "\n")
            p.stdin.flush()
            if i < 50:
                answer = json.loads(p.stdout.readline())
                answered.append(answer["visitorId"])
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    assert len(answered) == 50
    # its records are in its ring (a tmpfs file linked from the spool) and in
    # the segment the ring was written to
    rings = glob.glob(os.path.join(spool, "ring-*.link"))
    assert rings, "the killed process left its ring"
    ring_file = os.readlink(rings[0])
    assert os.path.exists(ring_file)

    r = ship(spool, collector.collector_url, "--log-level", "info")
    assert r.returncode == 0, r.stderr
    assert "DC10717" in r.stderr or "DC10701" in r.stderr  # saved its ring, adopted its segment
    delivered = {h["cuid"] for h in collector.hits()}
    assert set(answered) <= delivered
    assert len(collector.hit_ids()) == len(set(collector.hit_ids()))  # and each once
    assert not glob.glob(os.path.join(spool, "seg-*"))
    assert not glob.glob(os.path.join(spool, "ring-*")) and not os.path.exists(ring_file)


def test_shipper_killed_mid_segment_resumes_after_the_acknowledged_batches(tmp_path, collector):
    spool = tmp_path / "spool"
    eval_spool([visitor(i) for i in range(6)], spool)
    ids = [r[0] for r in spool_records(spool)]
    assert len(ids) > 16
    # two batches acknowledged, the third hangs until the shipper is killed
    collector.configure_collector(script=[200, 200, {"status": 200, "delay": 20}])
    shipper = Proc([DECISION_FCGI, "ship", "--spool", str(spool), "--collector",
                    collector.collector_url, "--batch-hits", "4", "--request-timeout", "30000"],
                   str(tmp_path / "ship.log"))
    try:
        wait_until(lambda: len(collector.received) == 2, timeout=10, what="two batches")
        wait_until(lambda: glob.glob(os.path.join(spool, "*.progress")), timeout=5,
                   what="a progress file")
        time.sleep(0.3)
        shipper.send_signal(signal.SIGKILL)
    finally:
        shipper.stop()
    assert collector.hit_ids() == ids[:8]

    r = ship(spool, collector.collector_url, "--batch-hits", "4")
    assert r.returncode == 0, r.stderr
    got = collector.hit_ids()
    assert got[:8] == ids[:8] and got[8:] == ids[8:]  # resumed at hit 9, in order, once
    assert not glob.glob(os.path.join(spool, "seg-*"))


@pytest.mark.parametrize("on_full", ["refuse", "drop-oldest"])
def test_disk_bound_keeps_answering_decisions(tmp_path, collector, on_full):
    spool = tmp_path / "spool"
    answers, err = eval_spool([visitor(i) for i in range(100)], spool,
                              options="max-bytes=8k,segment-bytes=2k,on-full=" + on_full)
    assert all(a["campaigns"] for a in answers)  # decisions still answered
    total = sum(os.path.getsize(f) for f in glob.glob(os.path.join(spool, "seg-*")))
    assert total <= 8 * 1024
    summary = [l for l in err.splitlines() if l.startswith("spool:")][-1]
    accepted, refused, dropped = (int(w) for w in summary.replace(",", " ").split()
                                  if w.isdigit())
    if on_full == "refuse":
        assert refused > 50 and dropped == 0 and accepted + refused == 100
        assert err.count("DC10705") == 1  # once per streak
        # an activation is nothing but its event: refused, it says so (503, retry later)
        activation = {"cid": ENV, "batch": [{"vid": "v%d" % i, "caid": "vg_ab",
                                             "vaid": "v_ab_red"} for i in range(20)]}
        answers_act, _ = eval_spool([activation], spool, path="/v2/activate",
                                    options="max-bytes=8k,segment-bytes=2k")
        assert "could not be stored" in answers_act[0]["message"]
    else:
        assert refused == 0 and dropped > 50 and accepted == 100
        assert "DC10704" in err
    r = ship(spool, collector.collector_url)
    assert r.returncode == 0, r.stderr
    delivered = {h["cuid"] for h in collector.hits()}
    assert len(delivered) == accepted - dropped
    if on_full == "drop-oldest":
        assert "vis-099" in delivered and "vis-000" not in delivered
    else:
        assert "vis-000" in delivered and "vis-099" not in delivered


def test_file_sink_writes_batches_as_json_lines(tmp_path):
    spool, out = tmp_path / "spool", tmp_path / "out"
    eval_spool([visitor(i) for i in range(12)], spool)
    n = len(spool_records(spool))
    r = ship(spool, "file:" + str(out))
    assert r.returncode == 0, r.stderr
    files = glob.glob(os.path.join(out, "events-*.jsonl"))
    assert len(files) == 1
    with open(files[0]) as f:
        batches = [json.loads(l) for l in f]
    assert all(b["t"] == "BATCH" and len(b["h"]) <= 50 for b in batches)
    assert sum(len(b["h"]) for b in batches) == n
    assert not ready_segments(spool)


def test_bad_settings_are_clear_errors(tmp_path):
    r = ship(tmp_path / "spool", "ftp://example.com")
    assert r.returncode == 2 and "expected http://, https://, file:/dir, s3://" in r.stderr
    r = ship(tmp_path / "spool", "file:relative/dir")
    assert r.returncode == 2 and "absolute path" in r.stderr
    rc, out, err = run_eval([visitor(1)], extra=["--spool", str(tmp_path / "s"),
                                                 "--spool-options", "fsync=sometimes"])
    assert rc == 1 and "fsync" in err


def count_syncs(tmp_path, options, lines):
    """The fdatasync/fsync calls decision-fcgi eval makes for lines spooled with options
    (counted by strace, following the spool's background thread)."""
    spool = tmp_path / ("spool-" + options.replace("=", "-"))
    trace = tmp_path / ("trace-" + options.replace("=", "-"))
    body = "".join(json.dumps(visitor(i)) + "\n" for i in range(lines))
    env = dict(os.environ)
    # LeakSanitizer cannot run under ptrace; the other suites check leaks
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fdatasync,fsync", "-o", str(trace),
                        DECISION_FCGI, "eval", "--bucketing", SAMPLE_BUCKETING, "--spool",
                        str(spool), "--env-id", ENV, "--spool-options", options],
                       input=body, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == lines
    assert len(spool_records(spool)) >= lines  # every line produced a hit
    with open(trace) as f:
        return sum(1 for l in f if "fdatasync(" in l or "fsync(" in l)


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_fsync_policy_is_what_the_settings_say(tmp_path):
    lines = 40
    always = count_syncs(tmp_path, "fsync=always", lines)
    never = count_syncs(tmp_path, "fsync=never", lines)
    interval = count_syncs(tmp_path, "fsync=60000ms", lines)
    assert always >= lines       # one per record, before its answer
    assert never == 0
    assert interval < lines // 4  # within a minute: only the syncs that close the segment

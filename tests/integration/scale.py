"""A big bucketing file in a real httpd: the child processes' memory and config swaps under
load. Shared by tests/integration/test_scale.py (a quick run, asserted) and bench/scale.py
(longer runs, printed); the files come from tests/gen_bucketing.py's scale profile.
"""

import http.client
import json
import os
import sys
import threading
import time

from harness import SAMPLE_BUCKETING, Httpd, http_request, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gen_bucketing  # noqa: E402

ENV = "env-scale"
SMAPS_FIELDS = ("Rss", "Pss", "Private_Dirty", "Private_Clean", "Shared_Clean", "Shared_Dirty")


def make_files(directory, n_campaigns=1000, seeds=(1, 2), n_visitors=400):
    """Bucketing files of n_campaigns for each seed (campaign ids differ between seeds) and the
    first seed's visitors (request bodies). Returns ([paths], [bodies])."""
    paths = []
    for seed in seeds:
        d = os.path.join(directory, "seed%d" % seed)
        path, visitors = gen_bucketing.write_case(d, seed, n_visitors, n_campaigns, profile="scale")
        os.chmod(path, 0o644)
        paths.append(path)
        if seed == seeds[0]:
            with open(visitors) as f:
                bodies = [line.strip() for line in f if line.strip()]
    return paths, bodies


def make_live(directory, n_campaigns=1000, n_visitors=400):
    """make_files, and live.json in directory, the file a server reads, a copy of the first:
    (files, bodies, live)."""
    files, bodies = make_files(directory, n_campaigns, n_visitors=n_visitors)
    live = os.path.join(directory, "live.json")
    install(files[0], live)
    return files, bodies, live


def install(src, live_path):
    """Replaces live_path by a copy of src at once: a reader sees the old file or the new one."""
    tmp = live_path + ".tmp"
    with open(src, "rb") as f, open(tmp, "wb") as dst:
        dst.write(f.read())
    os.chmod(tmp, 0o644)
    os.replace(tmp, live_path)


def campaign_ids(path):
    with open(path) as f:
        return {c["id"] for c in json.load(f)["campaigns"]}


def server_body(bucketing_path, poll=1, extra=""):
    return ("DecisionEnvironment %s\nDecisionBucketingFile %s\nDecisionPollInterval %d\n%s"
            "<Location /v2>\n  SetHandler decision\n</Location>\n"
            % (ENV, bucketing_path, poll, extra))


def smaps_rollup(pid):
    """kB of each SMAPS_FIELDS of a process (/proc/PID/smaps_rollup), or None if it is gone."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].rstrip(":") in SMAPS_FIELDS:
                    out[parts[0].rstrip(":")] = int(parts[1])
    except (OSError, ValueError):
        return None
    return out


def children_memory(h):
    """{pid: smaps} of the server's children that serve requests."""
    mem = {}
    for pid in h.children():
        m = smaps_rollup(pid)
        if m:
            mem[pid] = m
    return mem


def median(values):
    v = sorted(values)
    n = len(v)
    return (v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2) if n else 0


def summary(mem):
    """Median over children of each field, kB."""
    return {k: median([m[k] for m in mem.values()]) for k in SMAPS_FIELDS}


def warm_children(h, bodies, rounds=40):
    """Requests on fresh connections, so that every child has decided (and touched its pages)."""
    for i in range(rounds):
        status, _, data = http_request(h.base_url, "/v2/campaigns", bodies[i % len(bodies)])
        assert status == 200, data[:300]


def answer_ids(data):
    return {c["id"] for c in json.loads(data)["campaigns"]}


def serving(h, ids, bodies, tries=8):
    """Whether `tries` fresh connections (spread over the children) all answer from the file
    whose campaign ids are `ids`."""
    for i in range(tries):
        status, _, data = http_request(h.base_url, "/v2/campaigns", bodies[i % len(bodies)])
        if status != 200 or not answer_ids(data) <= ids:
            return False
    return True


class Load:
    """Threads posting visitors on keep-alive connections until stopped; every answer that is
    not a 200 with a JSON body, and every connection error, is a failure."""

    def __init__(self, port, bodies, threads=4):
        self.port = port
        self.bodies = bodies
        self.n_threads = threads
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.failures = []
        self.seen = []  # (time, set of campaign ids) samples
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def _run(self, k):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = k
        while not self.stop_flag.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += self.n_threads
            try:
                conn.request("POST", "/v2/campaigns", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status == 200
                ids = answer_ids(data) if ok else None
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            except Exception as e:  # noqa: BLE001 - every kind of failure counts
                ok, data, ids = False, repr(e).encode(), None
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self.lock:
                self.requests += 1
                if not ok:
                    self.failures.append(data[:200])
                elif i % 16 < self.n_threads:
                    self.seen.append((time.monotonic(), ids))
        conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=60)


def swap_under_load(h, live_path, files, bodies, swaps=4, threads=4, settle=0.5, timeout=30):
    """Replaces live_path by files[1], files[0], ... `swaps` times while Load runs; after each,
    waits until fresh connections get the new file's answers. Returns a dict of figures."""
    ids = [campaign_ids(p) for p in files]
    times = []
    with Load(h.port, bodies, threads) as load:
        time.sleep(settle)
        for n in range(swaps):
            new = (n + 1) % len(files)
            t0 = time.monotonic()
            install(files[new], live_path)
            wait_until(lambda: serving(h, ids[new], bodies), timeout=timeout, interval=0.2,
                       what="answers from file %d after swap %d" % (new, n + 1))
            times.append(time.monotonic() - t0)
            time.sleep(settle)
    mixed = [s for _, s in load.seen if not any(s <= i for i in ids)]
    return {"requests": load.requests, "failures": load.failures, "swaps": swaps,
            "swap_seconds": times, "answers_from_no_single_file": len(mixed),
            "samples": len(load.seen)}


def start(servers_or_none, rundir, bucketing_path, mpm="event", extra=""):
    body = server_body(bucketing_path, extra=extra)
    if servers_or_none:
        return servers_or_none(rundir, body, mpm=mpm)
    return Httpd(rundir, body, mpm=mpm, access_log=False).start()


SAMPLE = SAMPLE_BUCKETING

"""Sticky assignments through the engine rules, with real stores behind
`decision-fcgi eval`: every DBM type this apr-util has (real files), Redis
(a real redis-server on a free loopback port), DynamoDB (dynalite from npm, see
test_dynamo.py) and the memcached store plugin (a real memcached). The memcached
plugin also runs the same suite behind httpd (prefork and event MPMs) and
decision-fcgi as a FastCGI responder: a front end serves one bucketing file and is
restarted on the next when a test changes it.

Each persistent store keeps what one eval run decided for the next run, so a
test can change the bucketing file between runs, the way an operator changes
allocations in the Flagship platform. Every rule is also run once against
`none`, to show the test would fail without the store.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from dynalite import TEST_KEY, Dynalite, clean_aws_env
from harness import (DECISION_FCGI, EvalProcess, Httpd, MemcachedServer, RedisServer, fcgi_call,
                     free_port, http_request, make_world_readable_dir, run_eval, wait_until)

ALL_USERS = {"targetingGroups": [{"targetings": [
    {"operator": "EQUALS", "key": "fs_all_users", "value": ""}]}]}
DBM_TYPES = ["default", "gdbm", "sdbm", "db"]


def campaign(cid, variations, ctype="ab"):
    """A campaign for everyone with one variation group; variations = [(id, allocation)]."""
    return {"id": cid, "name": cid, "type": ctype, "bucketRanges": [{"r": [0, 100]}],
            "variationGroups": [{"id": "vg_" + cid, "name": cid, "targeting": ALL_USERS,
                                 "variations": [{"id": vid, "name": vid, "allocation": alloc,
                                                 "modifications": {"type": "FLAG",
                                                                   "value": {cid: vid}}}
                                                for vid, alloc in variations]}]}


def write_bucketing(path, campaigns, xpc=False, one_visitor_one_test=False):
    path.write_text(json.dumps({"panic": False, "campaigns": campaigns,
                                "accountSettings": {"enabledXPC": xpc,
                                                    "enabled1V1T": one_visitor_one_test}}))
    return str(path)


def variations_of(answer):
    """{campaign id: variation id} of a normal-mode answer."""
    assert "campaigns" in answer, answer
    return {c["id"]: c["variation"]["id"] for c in answer["campaigns"]}


QUERY = "sendContextEvent=false&mode=normal"  # what eval asks by default


class Front(str):
    """A store URI served by a front end other than eval (what `decide` runs): one
    server per bucketing file a test uses, all sharing the store, all stopped at once
    at the end (stopping httpd takes a while; in parallel it is paid once)."""

    def __new__(cls, uri, kind):
        self = str.__new__(cls, uri)
        self.kind = kind
        self.rundir = make_world_readable_dir("dc-front-")
        self.servers = {}  # (bucketing, env id) -> httpd or decision-fcgi process
        return self

    def _serve(self, bucketing, env_id):
        key = (bucketing, env_id)
        if key in self.servers:
            return self.servers[key]
        rundir = os.path.join(self.rundir, str(len(self.servers)))
        os.mkdir(rundir)
        os.chmod(rundir, 0o755)
        local = os.path.join(rundir, "bucketing.json")
        with open(bucketing) as src, open(local, "w") as dst:
            dst.write(src.read())
        os.chmod(local, 0o644)
        if self.kind == "fcgi":
            port = free_port()
            env = {k: v for k, v in os.environ.items()
                   if k in ("PATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
            env.update(BUCKETING_FILE=local, STORE=str(self))
            if env_id:
                env["ENV_ID"] = env_id
            log_path = os.path.join(rundir, "fcgi.log")
            proc = subprocess.Popen(
                [DECISION_FCGI, "--listen", "127.0.0.1:%d" % port, "--threads", "4"],
                stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            proc.address = ("127.0.0.1", port)
            proc.log_path = log_path

            def accepts():
                assert proc.poll() is None, open(log_path).read()
                try:
                    socket.create_connection(proc.address, timeout=0.2).close()
                    return True
                except OSError:
                    return False
            wait_until(accepts, what="decision-fcgi listening")
            self.servers[key] = proc
        else:
            body = ("%sDecisionBucketingFile %s\nDecisionStore %s\n"
                    "<Location /v2>\n  SetHandler decision\n</Location>\n" %
                    ("DecisionEnvironment %s\n" % env_id if env_id else "", local, self))
            self.servers[key] = Httpd(rundir, body, mpm=self.kind.split("-")[1]).start()
        return self.servers[key]

    def decide(self, bucketing, bodies, extra):
        extra = extra or []
        env_id = extra[extra.index("--env-id") + 1] if "--env-id" in extra else None
        path = extra[extra.index("--path") + 1] if "--path" in extra else "/v2/campaigns"
        server = self._serve(bucketing, env_id)
        answers = []
        for body in bodies:
            data = json.dumps(body).encode()
            if self.kind == "fcgi":
                status, _, out = fcgi_call(server.address, "POST", path, data, QUERY)
            else:
                status, _, out = http_request(server.base_url, path + "?" + QUERY, data)
            assert status in (200, 204), (status, out)
            answers.append(json.loads(out) if status == 200 else {})
        return answers

    def stop(self):
        servers, self.servers = list(self.servers.values()), {}
        for server in servers:  # all at once, then wait for each
            if self.kind == "fcgi":
                server.terminate()
            elif server.pid():
                os.kill(server.pid(), signal.SIGTERM)
        for server in servers:
            if self.kind == "fcgi":
                assert server.wait(timeout=15) == 0, open(server.log_path).read()
            else:
                server.stop()
                assert server.sanitizer_reports() == ""
                assert "exit signal" not in server.log(), server.log()[-3000:]
        shutil.rmtree(self.rundir, ignore_errors=True)


def decide(store, bucketing, bodies, extra=None):
    if isinstance(store, Front):
        return store.decide(bucketing, bodies, extra)
    rc, out, err = run_eval(bodies, bucketing=bucketing, store=store, extra=extra)
    assert rc == 0, err
    assert len(out) == len(bodies), err
    return [json.loads(line) for line in out]


def dbm_available(tmp_path, dbm_type):
    rc, _, err = run_eval([], store="dbm:%s:%s" % (dbm_type, tmp_path / ("probe-" + dbm_type)))
    return rc == 0


@pytest.fixture(params=["dbm:" + t for t in DBM_TYPES] +
                ["redis", "dynamo", "memcached", "memcached-via-httpd-prefork",
                 "memcached-via-httpd-event", "memcached-via-fcgi"])
def store(request, tmp_path, monkeypatch):
    """A store URI that outlives one eval run (or one front end's run)."""
    if request.param == "dynamo":
        clean_aws_env(monkeypatch, tmp_path, AWS_ACCESS_KEY_ID=TEST_KEY[0],
                      AWS_SECRET_ACCESS_KEY=TEST_KEY[1])
        server = Dynalite(tmp_path).start()
        server.create_table()
        yield server.uri()
        server.stop()
        return
    if request.param == "redis":
        server = RedisServer(tmp_path).start()
        yield server.uri
        server.stop()
        return
    if request.param.startswith("memcached"):
        server = MemcachedServer(tmp_path).start()
        front = None
        if "-via-" in request.param:
            front = Front(server.uri(), request.param.split("-via-")[1])
        try:
            yield front if front is not None else server.uri()
        finally:
            if front is not None:
                front.stop()
            server.stop()
        return
    dbm_type = request.param.split(":")[1]
    if not dbm_available(tmp_path, dbm_type):
        pytest.skip("DBM type %s is not available in this apr-util" % dbm_type)
    yield "dbm:%s:%s" % (dbm_type, tmp_path / "assignments")


VISITORS = [{"visitor_id": "visitor-%d" % i, "trigger_hit": False} for i in range(10)]


def test_assignment_kept_after_allocations_change(store, tmp_path):
    before = write_bucketing(tmp_path / "before.json", [campaign("c1", [("a", 100), ("b", 0)])])
    after = write_bucketing(tmp_path / "after.json", [campaign("c1", [("a", 0), ("b", 100)])])
    assert all(variations_of(d) == {"c1": "a"} for d in decide(store, before, VISITORS))
    assert all(variations_of(d) == {"c1": "a"} for d in decide(store, after, VISITORS))
    # new visitors follow the new allocation; without a store nobody is sticky
    new = [{"visitor_id": "newcomer"}]
    assert variations_of(decide(store, after, new)[0]) == {"c1": "b"}
    assert all(variations_of(d) == {"c1": "b"} for d in decide("none", after, VISITORS))


def test_deleted_variation_skips_the_campaign(store, tmp_path):
    before = write_bucketing(tmp_path / "before.json",
                             [campaign("c1", [("a", 100), ("b", 0)]),
                              campaign("c2", [("x", 50), ("y", 50)], ctype="toggle")])
    after = write_bucketing(tmp_path / "after.json",
                            [campaign("c1", [("b", 50), ("c", 50)]),
                             campaign("c2", [("x", 50), ("y", 50)], ctype="toggle")])
    first = decide(store, before, VISITORS)
    assert all(variations_of(d)["c1"] == "a" for d in first)
    second = decide(store, after, VISITORS)
    for a, b in zip(first, second):
        # the visitor is not re-bucketed into c1; the other campaign is untouched
        assert variations_of(b) == {"c2": variations_of(a)["c2"]}
    assert "c1" in variations_of(decide(store, after, [{"visitor_id": "newcomer"}])[0])


def test_experience_continuity_with_anonymous_id(store, tmp_path):
    before = write_bucketing(tmp_path / "before.json", [campaign("c1", [("a", 100), ("b", 0)])],
                             xpc=True)
    after = write_bucketing(tmp_path / "after.json", [campaign("c1", [("a", 0), ("b", 100)])],
                            xpc=True)
    no_xpc = write_bucketing(tmp_path / "no-xpc.json", [campaign("c1", [("a", 0), ("b", 100)])])
    # anonymous visit, then the visitor logs in: the anonymous id's variation follows them
    assert variations_of(decide(store, before, [{"visitor_id": "anon-1"}])[0]) == {"c1": "a"}
    logged_in = {"visitor_id": "user-1", "anonymous_id": "anon-1"}
    assert variations_of(decide(store, after, [logged_in])[0]) == {"c1": "a"}
    # ... and it was copied to the visitor id
    assert variations_of(decide(store, after, [{"visitor_id": "user-1"}])[0]) == {"c1": "a"}
    # without XPC the anonymous id is not consulted
    assert variations_of(decide(store, no_xpc, [{"visitor_id": "user-2",
                                                 "anonymous_id": "anon-1"}])[0]) == {"c1": "b"}


def test_one_visitor_one_test(store, tmp_path):
    c1 = campaign("c1", [("a", 50), ("b", 50)])
    c2 = campaign("c2", [("x", 50), ("y", 50)])
    first_c1 = write_bucketing(tmp_path / "c1-first.json", [c1, c2], one_visitor_one_test=True)
    first_c2 = write_bucketing(tmp_path / "c2-first.json", [c2, c1], one_visitor_one_test=True)
    seen = decide(store, first_c1, [{"visitor_id": "v-1v1t", "trigger_hit": True}])[0]
    assert list(variations_of(seen)) == ["c1"]  # at most one "ab" campaign per answer
    # the activated AB test stays the visitor's only one, whatever the file order now
    again = decide(store, first_c2, [{"visitor_id": "v-1v1t", "trigger_hit": True}])[0]
    assert variations_of(again) == variations_of(seen)
    assert list(variations_of(decide(store, first_c2, [{"visitor_id": "v-other"}])[0])) == ["c2"]


def test_activate_marks_the_assignment_activated(store, tmp_path):
    bucketing = write_bucketing(tmp_path / "b.json",
                                [campaign("c1", [("a", 50), ("b", 50)]),
                                 campaign("c2", [("x", 50), ("y", 50)])],
                                one_visitor_one_test=True)
    extra = ["--env-id", "envA"]
    # seen without a hit: not activated, so 1V1T does not pin it yet
    seen = variations_of(decide(store, bucketing, [{"visitor_id": "v-act", "trigger_hit": False}],
                                extra)[0])
    assert list(seen) == ["c1"]
    activation = {"cid": "envA", "vid": "v-act", "caid": "vg_c2", "vaid": "y"}
    assert decide(store, bucketing, [activation], extra + ["--path", "/v2/activate"]) == [{}]
    # the activated c2 now wins over c1, which comes first in the file
    answer = decide(store, bucketing, [{"visitor_id": "v-act", "trigger_hit": False}], extra)[0]
    assert variations_of(answer) == {"c2": "y"}


# ---- Redis-specific: the decision-api's layout and outages ----

@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_reads_and_writes_the_decision_api_layout(redis, tmp_path):
    bucketing = write_bucketing(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    redis.cli("HSET", "from-decision-api", "vg_c1", '{"VariationID":"b","Activated":true}',
              "ts", "1700000000000")
    assert variations_of(decide(redis.uri, bucketing,
                                [{"visitor_id": "from-decision-api"}])[0]) == {"c1": "b"}
    decide(redis.uri + "?prefix=envA%3A", bucketing, [{"visitor_id": "ours", "trigger_hit": True}])
    fields = redis.cli("HGETALL", "envA:ours").split("\n")
    assert fields[0] == "vg_c1"
    assert json.loads(fields[1])["Activated"] is True
    assert fields[2] == "ts" and abs(int(fields[3]) - time.time() * 1000) < 60000
    assert 0 < int(redis.cli("TTL", "envA:ours")) <= 7776000


def test_redis_down_answers_from_hashing_and_recovers(redis, tmp_path):
    bucketing = write_bucketing(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)]),
                                                      campaign("c2", [("x", 30), ("y", 70)],
                                                               ctype="toggle")])
    bodies = [{"visitor_id": "out-%d" % i} for i in range(40)]
    hashed = [variations_of(d) for d in decide("none", bucketing, bodies)]
    ev = EvalProcess(redis.uri + "?max_backoff_ms=200", bucketing=bucketing)
    try:
        assert [variations_of(ev.ask(b)) for b in bodies[:10]] == hashed[:10]
        assert redis.cli("EXISTS", "out-0").strip() == "1"
        redis.stop()
        start = time.monotonic()
        answers = [variations_of(ev.ask(b, timeout=2)) for b in bodies[10:30]]
        assert answers == hashed[10:30]
        assert time.monotonic() - start < 5  # no request waits on the dead Redis
        redis.start()  # same port
        deadline = time.monotonic() + 15
        i = 30
        while True:
            body = {"visitor_id": "after-%d" % i}
            assert "c1" in variations_of(ev.ask(body))
            if redis.cli("EXISTS", body["visitor_id"]).strip() == "1":
                break
            assert time.monotonic() < deadline, "the store did not reconnect"
            time.sleep(0.05)
            i += 1
    finally:
        rc, err = ev.close()
    assert rc == 0, err
    assert err.count("DC10801") == 1, err  # the outage was logged once: store degraded


def test_stalled_redis_costs_at_most_the_timeout(redis, tmp_path):
    import signal
    bucketing = write_bucketing(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    bodies = [{"visitor_id": "stall-%d" % i} for i in range(20)]
    hashed = [variations_of(d) for d in decide("none", bucketing, bodies)]
    ev = EvalProcess(redis.uri + "?timeout_ms=50", bucketing=bucketing)
    try:
        ev.ask(bodies[0])
        redis.proc.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        answers = [variations_of(ev.ask(b, timeout=2)) for b in bodies]
        assert time.monotonic() - start < 3
        assert answers == hashed
    finally:
        redis.proc.send_signal(signal.SIGCONT)
        rc, err = ev.close()
    assert rc == 0, err

"""mod_decision in the distribution's Apache httpd (event, worker, prefork).

Every test starts a real /usr/sbin/apache2 from a generated configuration on a
free loopback port (User/Group www-data when run as root) with the built
mod_decision.so. Only the remote config CDN is the stand-in (tests/standin.py).
Answers are compared with `decision-fcgi eval` on the same input: both front
ends stand on the same dc_api_handle(), so they must say the same.
"""
import copy
import http.client
import json
import warnings
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from harness import (APACHE_BIN, MODULE_SO, MPMS, SAMPLE_BUCKETING, Httpd, RedisServer,
                     http_request,
                     free_port, make_htdocs, make_world_readable_dir, run_eval, wait_until)
from standin import StandIn

try:  # the suite every front end shares (tests/integration/endpoints.py)
    import endpoints
except ImportError:
    endpoints = None

pytestmark = pytest.mark.skipif(not os.path.exists(APACHE_BIN),
                                reason="no %s: install the Debian package apache2" % APACHE_BIN)

ENV = "env-http"
VIP = {"visitor_id": "bob", "context": {"isVIP": True}, "trigger_hit": False}


def sample():
    with open(SAMPLE_BUCKETING) as f:
        return json.load(f)


def with_vip_discount(doc, discount):
    doc = copy.deepcopy(doc)
    for c in doc["campaigns"]:
        if c["id"] == "c_vip":
            variation = c["variation_groups"][0]["variations"][0]
            variation["modifications"]["value"]["discount"] = discount
    return doc


def with_ab_allocation(doc, ref, red, padding=0):
    doc = copy.deepcopy(doc)
    for c in doc["campaigns"]:
        if c["id"] == "c_ab":
            ref_v, red_v = c["variation_groups"][0]["variations"]
            ref_v["allocation"], red_v["allocation"] = ref, red
    doc["_padding"] = " " * padding  # a different size, whatever the file system's mtime grain
    return doc


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, 0o644)


@pytest.fixture
def rundir():
    d = make_world_readable_dir("dc-httpd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers():
    """Starts httpd instances; stops them and checks their logs at the end."""
    started = []

    def start(rundir, body, **kw):
        h = Httpd(rundir, body, **kw)
        started.append(h)
        return h.start()

    yield start
    for h in started:
        h.stop()
    for h in started:
        log = h.log()
        crashes = [l for l in log.splitlines()
                   if "exit signal" in l and "exit signal Killed" not in l]
        if crashes:
            ours, theirs = h.crashes_in_our_code()
            if not theirs:
                ours = ours or ["(no core)"]
            assert not ours, log[-3000:] + "\n" + "\n".join(ours)
            for stack in theirs:
                warnings.warn("an httpd child crashed outside mod_decision:\n" + stack[:3000])
        assert h.sanitizer_reports() == ""


def location(extra=""):
    return "<Location /v2>\n  SetHandler decision\n%s</Location>\n" % extra


def sample_conf(extra_server="", extra_location=""):
    return ("DecisionEnvironment %s\nDecisionBucketingFile %s\n%s\n" %
            (ENV, SAMPLE_BUCKETING, extra_server)) + location(extra_location)


def post(base, path, body, headers=None, method="POST"):
    status, hdrs, data = http_request(base, path, body, method=method, headers=headers)
    return status, hdrs, data


# --- every endpoint answers as decision-fcgi eval does -------------------------

CASES = [
    # (path, query, body)
    ("/v2/campaigns", "sendContextEvent=false", VIP),
    ("/v2/campaigns", "sendContextEvent=false&mode=simple", VIP),
    ("/v2/campaigns", "sendContextEvent=false&mode=full", {"visitor_id": "eve", "context": {
        "age": 30, "country": "FR"}, "trigger_hit": False}),
    ("/v2/campaigns", "exposeAllKeys=true", {"visitor_id": "v7", "context": {}}),
    ("/v2/campaigns/c_ab", None, {"visitor_id": "v1", "context": {}}),
    ("/v2/campaigns/ab-button", None, {"visitor_id": "v2", "context": {}}),
    ("/v2/campaigns/nope", None, {"visitor_id": "v2", "context": {}}),
    ("/v2/flags", None, {"visitor_id": "carol", "context": {"isVIP": True}}),
    ("/v2/%s/campaigns" % ENV, None, VIP),
    ("/v2/activate", None, {"cid": ENV, "vid": "bob", "caid": "vg_ab", "vaid": "v_ab_red"}),
    ("/v2/activate", None, {"vid": "bob"}),
    ("/v2/campaigns", None, "not json"),
    ("/v2/campaigns", None, {"visitor_id": 5}),
    ("/v2/campaigns", None, {"visitor_id": "a", "bogus": 1}),
    ("/v2/campaigns", "mode=weird", VIP),
]


def eval_answer(path, query, body):
    extra = ["--path", path, "--env-id", ENV]
    if query:
        extra += ["--query", query]
    rc, out, err = run_eval([body if isinstance(body, str) else json.dumps(body)],
                            extra=extra)
    assert rc == 0, err
    return json.loads(out[0])


@pytest.mark.parametrize("mpm", MPMS)
def test_every_endpoint_answers_as_eval_does(mpm, rundir, servers):
    h = servers(rundir, sample_conf(), mpm=mpm)
    for path, query, body in CASES:
        url = path + ("?" + query if query else "")
        status, hdrs, data = post(h.base_url, url, body)
        expected = eval_answer(path, query, body)
        got = json.loads(data) if data else {}
        assert got == expected, (url, body, status)
        if status != 204:
            assert hdrs["content-type"] == "application/json"
        assert hdrs["access-control-allow-origin"] == "*" or status == 404
    # statuses eval cannot show
    assert post(h.base_url, "/v2/campaigns", VIP)[0] == 200
    assert post(h.base_url, "/v2/activate", CASES[9][2])[0] == 204
    assert post(h.base_url, "/v2/campaigns", "not json")[0] == 400
    assert post(h.base_url, "/v2/nothing-here", VIP)[0] == 404
    status, hdrs, data = post(h.base_url, "/v2/campaigns", None, method="GET")
    assert status == 405 and hdrs["allow"] == "POST, OPTIONS" and "message" in json.loads(data)
    status, hdrs, data = post(h.base_url, "/v2/campaigns", None, method="OPTIONS",
                              headers={"Origin": "https://app.example",
                                       "Access-Control-Request-Method": "POST"})
    assert status == 204 and data == b""
    assert hdrs["access-control-allow-origin"] == "*"
    assert "X-Api-Key" in hdrs["access-control-allow-headers"]
    # chunked bodies are read like any other
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
    conn.putrequest("POST", "/v2/campaigns?sendContextEvent=false")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    raw = json.dumps(VIP).encode()
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read()) == eval_answer("/v2/campaigns", "sendContextEvent=false", VIP)
    conn.close()


@pytest.mark.parametrize("mpm", MPMS)
@pytest.mark.parametrize("api_key", [None, "k3y"])
def test_shared_endpoint_suite(mpm, api_key, rundir, servers):
    if endpoints is None:
        pytest.skip("tests/integration/endpoints.py is not in this tree yet")
    conf = "DecisionEnvironment %s\nDecisionBucketingFile %s\n" % (endpoints.ENV_ID,
                                                                   SAMPLE_BUCKETING)
    if api_key:
        conf += "DecisionApiKey %s\nDecisionRequireApiKey on\n" % api_key
    h = servers(rundir, conf + location(), mpm=mpm)
    endpoints.check_all_endpoints(h.base_url, api_key=api_key)
    # mounted under a prefix, as the suite allows
    h.stop()
    h2 = servers(rundir, conf + "<Location /some/prefix/v2>\n  SetHandler decision\n"
                 "</Location>\n", mpm=mpm, port=h.port)
    endpoints.check_all_endpoints(h2.base_url + "/some/prefix", api_key=api_key)


def test_body_size_limit_cors_options_and_api_key(rundir, servers):
    h = servers(rundir, sample_conf(
        "DecisionMaxBodySize 200\nDecisionApiKey s3cret\nDecisionRequireApiKey on\n"
        "DecisionCORSOrigins https://a.example\n"))
    key = {"X-API-Key": "s3cret"}
    status, hdrs, data = post(h.base_url, "/v2/campaigns", VIP)
    assert status == 401 and "API key" in json.loads(data)["message"]
    assert post(h.base_url, "/v2/campaigns", VIP, {"X-API-Key": "s3creT"})[0] == 401
    assert post(h.base_url, "/v2/campaigns", VIP, {"Authorization": "Bearer nope"})[0] == 401
    assert post(h.base_url, "/v2/campaigns", VIP, key)[0] == 200
    assert post(h.base_url, "/v2/campaigns", VIP, {"Authorization": "Bearer s3cret"})[0] == 200
    status, hdrs, _ = post(h.base_url, "/v2/campaigns", VIP, key)
    assert hdrs["access-control-allow-origin"] == "https://a.example"
    big = {"visitor_id": "x" * 300, "context": {}}
    status, _, data = post(h.base_url, "/v2/campaigns", big, key)
    assert status == 413 and "too large" in json.loads(data)["message"]
    # exactly at the limit is accepted
    body = json.dumps({"visitor_id": "y", "context": {"k": ""}})
    body = body.replace('""', '"' + "z" * (200 - len(body)) + '"')
    assert len(body) == 200
    assert post(h.base_url, "/v2/campaigns", body, key)[0] == 200
    assert "s3cret" not in h.log()  # LogLevel decision:debug, and still never the key


def test_cors_off_lets_options_reach_the_api(rundir, servers):
    h = servers(rundir, sample_conf("DecisionCORS off\n"))
    status, hdrs, _ = post(h.base_url, "/v2/campaigns", VIP)
    assert status == 200 and "access-control-allow-origin" not in hdrs
    assert post(h.base_url, "/v2/campaigns", None, method="OPTIONS")[0] == 405


def test_decision_locations_skip_the_file_system_walk(rundir, servers):
    """A decision <Location> maps to no file: <Directory> rules of the document root do not reach
    it, while the <Location>'s own access control does."""
    htdocs = make_htdocs(rundir, {"static.txt": "static\n"})
    h = servers(rundir, "DocumentRoot %s\n<Directory %s>\n  Require all denied\n</Directory>\n"
                % (htdocs, htdocs) + sample_conf() +
                "<Location /closed>\n  SetHandler decision\n  Require all denied\n</Location>\n")
    assert http_request(h.base_url, "/static.txt", None, method="GET")[0] == 403
    status, _, data = post(h.base_url, "/v2/campaigns", VIP)
    assert status == 200 and json.loads(data)["visitorId"] == "bob"
    assert post(h.base_url, "/closed/v2/campaigns", VIP)[0] == 403


def test_vhosts_serve_their_own_environment(rundir, servers):
    other = os.path.join(rundir, "other.json")
    write_json(other, with_vip_discount(sample(), 0.5))
    port = free_port()
    body = ("DecisionEnvironment main-env\nDecisionBucketingFile %s\n%s"
            "<VirtualHost 127.0.0.1:%d>\n  ServerName a.test\n</VirtualHost>\n"
            "<VirtualHost 127.0.0.1:%d>\n  ServerName b.test\n  DecisionEnvironment env-b\n"
            "  DecisionBucketingFile %s\n  DecisionApiKey kb\n  DecisionRequireApiKey on\n"
            "</VirtualHost>\n" % (SAMPLE_BUCKETING, location(), port, port, other))
    h = servers(rundir, body, port=port)

    def discount(host, headers=None):
        hdrs = {"Host": host}
        hdrs.update(headers or {})
        status, _, data = post(h.base_url, "/v2/flags", VIP, hdrs)
        return status, json.loads(data)

    status, flags = discount("a.test")
    assert status == 200 and flags["discount"]["value"] == 0.15
    assert discount("b.test")[0] == 401
    status, flags = discount("b.test", {"X-API-Key": "kb"})
    assert status == 200 and flags["discount"]["value"] == 0.5
    assert post(h.base_url, "/v2/env-b/campaigns", VIP,
                {"Host": "b.test", "X-API-Key": "kb"})[0] == 200
    assert post(h.base_url, "/v2/main-env/campaigns", VIP,
                {"Host": "b.test", "X-API-Key": "kb"})[0] == 404


def test_export_hands_flags_to_the_next_handler(rundir, servers):
    htdocs = make_htdocs(rundir, {"page.txt": "hello\n"})
    body = sample_conf() + (
        "DocumentRoot %s\n<Directory %s>\n  Require all granted\n</Directory>\n"
        "<Location /page.txt>\n  DecisionExport on\n  DecisionVisitorCookie vid\n"
        "  DecisionVisitorHeader X-Visitor\n"
        "  Header set X-Flags \"%%{DECISION_FLAGS}e\"\n"
        "  Header set X-Vid \"%%{DECISION_VISITOR_ID}e\"\n</Location>\n" % (htdocs, htdocs))
    h = servers(rundir, body, extra_modules=["headers"])
    expected = eval_answer("/v2/flags", None, {"visitor_id": "carol", "context": {}})
    status, hdrs, data = post(h.base_url, "/page.txt", None, method="GET",
                              headers={"Cookie": "a=b; vid=carol"})
    assert status == 200 and data == b"hello\n"
    assert hdrs["x-vid"] == "carol"
    assert json.loads(hdrs["x-flags"]) == expected
    status, hdrs, _ = post(h.base_url, "/page.txt", None, method="GET",
                           headers={"X-Visitor": "carol"})
    assert json.loads(hdrs["x-flags"]) == expected
    status, hdrs, _ = post(h.base_url, "/page.txt", None, method="GET")
    assert status == 200 and hdrs.get("x-flags", "(null)") == "(null)"


# --- the poller and the last-known-good file -----------------------------------

def vip_discounts(base, n=8):
    """The VIP discount n fresh connections see (spread over children)."""
    out = set()
    for _ in range(n):
        status, _, data = post(base, "/v2/flags", VIP)
        out.add(json.loads(data)["discount"]["value"] if status == 200 else status)
    return out


@pytest.fixture
def cdn():
    s = StandIn().start()
    yield s
    s.stop()


def poll_conf(cdn, lkg, interval=1):
    return ("DecisionEnvironment %s\nDecisionBucketingURL %s\nDecisionPollInterval %d\n"
            "DecisionLastKnownGood %s\n" % (ENV, cdn.bucketing_url(ENV), interval, lkg)
            ) + location()


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_poller_follows_the_cdn_and_keeps_the_last_good_config(mpm, rundir, servers, cdn):
    lkg = os.path.join(rundir, "lkg", "bucketing.json")
    os.mkdir(os.path.dirname(lkg))
    if os.getuid() == 0:
        shutil.chown(os.path.dirname(lkg), "www-data", "www-data")
    cdn.set_bucketing(ENV, with_vip_discount(sample(), 0.25))
    h = servers(rundir, poll_conf(cdn, lkg), mpm=mpm)
    wait_until(lambda: vip_discounts(h.base_url) == {0.25}, timeout=15, what="first fetch")
    with open(lkg) as f:
        assert json.load(f) == with_vip_discount(sample(), 0.25)

    # unchanged: conditional GETs answered 304
    time.sleep(2.5)
    conditional = [r for r in cdn.cdn_requests if r[2] == 304]
    assert conditional, cdn.cdn_requests
    assert all(r[1].get("If-None-Match") for r in conditional)

    # changed: every child serves the new file within one interval (plus a re-read)
    cdn.set_bucketing(ENV, with_vip_discount(sample(), 0.5))
    t0 = time.monotonic()
    wait_until(lambda: vip_discounts(h.base_url) == {0.5}, timeout=10, interval=0.1,
               what="new config")
    assert time.monotonic() - t0 < 3.5  # one 1 s interval, plus the checks' own requests

    # 500s and garbage keep the current config
    cdn.cdn_status = 500
    time.sleep(2.5)
    assert vip_discounts(h.base_url) == {0.5}
    cdn.cdn_status = None
    cdn.cdn_garbage = True
    time.sleep(2.5)
    assert vip_discounts(h.base_url) == {0.5}
    with open(lkg) as f:
        assert json.load(f)["campaigns"] == with_vip_discount(sample(), 0.5)["campaigns"]
    cdn.cdn_garbage = False
    statuses = [r[2] for r in cdn.cdn_requests]
    assert 500 in statuses and 200 in statuses
    assert "DC10423" in h.log()
    # one failure streak (500s, then garbage): one warning, then one line when it recovers
    wait_until(lambda: "DC10601" in h.log(), timeout=5, what="recovery logged")
    warnings = [l for l in h.log().splitlines() if "DC10602" in l and "[decision:warn]" in l]
    assert len(warnings) == 1, warnings


def test_starts_from_last_known_good_with_the_cdn_down(rundir, servers, cdn):
    lkg = os.path.join(rundir, "lkg", "bucketing.json")
    os.mkdir(os.path.dirname(lkg))
    if os.getuid() == 0:
        shutil.chown(os.path.dirname(lkg), "www-data", "www-data")
    # nothing anywhere: 503 until the CDN answers, then served
    cdn.cdn_status = 503
    h = servers(rundir, poll_conf(cdn, lkg))
    status, _, data = post(h.base_url, "/v2/campaigns", VIP)
    assert status == 503 and "message" in json.loads(data)
    cdn.set_bucketing(ENV, with_vip_discount(sample(), 0.75))
    cdn.cdn_status = None
    wait_until(lambda: vip_discounts(h.base_url) == {0.75}, timeout=10, what="recovery")
    wait_until(lambda: os.path.exists(lkg), timeout=5, what="last-known-good file")
    h.stop()

    # CDN down at start: the first request already has the last good config
    cdn.cdn_status = 503
    h2 = servers(rundir, poll_conf(cdn, lkg), port=h.port)
    assert vip_discounts(h2.base_url) == {0.75}
    time.sleep(2.5)
    assert vip_discounts(h2.base_url) == {0.75}
    assert [r for r in cdn.cdn_requests if r[2] == 503]


def test_default_last_known_good_is_writable_by_the_children(rundir, servers, cdn):
    cdn.set_bucketing(ENV, with_vip_discount(sample(), 0.25))
    body = ("DecisionEnvironment %s\nDecisionBucketingURL %s\nDecisionPollInterval 1\n" %
            (ENV, cdn.bucketing_url(ENV))) + location()
    h = servers(rundir, body, mpm="worker")
    wait_until(lambda: vip_discounts(h.base_url) == {0.25}, timeout=15, what="first fetch")
    lkg_dir = os.path.join(rundir, "decision")
    files = wait_until(lambda: [f for f in os.listdir(lkg_dir) if f.endswith(".json")],
                       timeout=5, what="default last-known-good file")
    assert files[0].startswith(ENV + "-")
    cdn.set_bucketing(ENV, with_vip_discount(sample(), 0.5))
    wait_until(lambda: vip_discounts(h.base_url) == {0.5}, timeout=10, what="second config")
    with open(os.path.join(lkg_dir, files[0])) as f:
        assert json.load(f) == with_vip_discount(sample(), 0.5)


# --- the memory store, shared by every child ----------------------------------

def store_backend_built(scheme):
    """Whether this build's dc_store_open() knows the scheme (dbm and redis are common/'s)."""
    uri = {"dbm": "dbm:/nonexistent-dir/x", "redis": "redis://127.0.0.1:1/0"}[scheme]
    rc, _, err = run_eval(["{}"], store=uri)
    return "unknown store" not in err


@pytest.mark.parametrize("backend", ["memory", "memory+fcntl", "memory+sysvsem", "dbm", "redis"])
def test_store_is_shared_across_prefork_children(backend, rundir, servers, tmp_path):
    if backend in ("dbm", "redis") and not store_backend_built(backend):
        pytest.skip("this build has no %s store" % backend)
    redis = None
    mutex = ""
    if backend.startswith("memory"):
        uri = "memory?size=4000000"
        if "+" in backend:  # the lock file or semaphore must be usable by the children
            mutex = "Mutex %s%s decision-store\n" % (
                backend.split("+")[1], ":" + rundir if "fcntl" in backend else "")
    elif backend == "dbm":
        uri = "dbm:%s/assignments" % rundir  # created by the parent, as root when root
    else:
        redis = RedisServer(tmp_path).start()
        uri = redis.uri
    path = os.path.join(rundir, "bucketing.json")
    write_json(path, with_ab_allocation(sample(), 100, 0))
    body = ("LogFormat \"%%P %%{X-Probe}i %%>s\" probes\nCustomLog %s/probes.log probes\n"
            "KeepAliveTimeout 60\n"
            "DecisionEnvironment %s\nDecisionBucketingFile %s\nDecisionPollInterval 1\n"
            "DecisionStore %s\n%s" % (rundir, ENV, path, uri, mutex)) + location()
    try:
        shared_assignments_check(rundir, servers, body)
    finally:
        if redis:
            redis.stop()


def test_redis_client_cache_serves_returning_visitors(rundir, servers, tmp_path):
    """A returning visitor costs no Redis round trip, and a change another server
    (here the decision-api's layout written by redis-cli) makes shows at once."""
    redis = RedisServer(tmp_path).start()
    try:
        path = os.path.join(rundir, "bucketing.json")
        write_json(path, with_ab_allocation(sample(), 100, 0))
        body = ("DecisionEnvironment %s\nDecisionBucketingFile %s\nDecisionStore %s\n"
                % (ENV, path, redis.uri)) + location()
        h = servers(rundir, body, mpm="event")
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)  # one child

        def variation():
            status, _, data = http_request(None, "/v2/campaigns/c_ab",
                                           {"visitor_id": "returning"}, conn=conn)
            assert status == 200, data
            return json.loads(data)["variation"]["id"]

        def hgetall_calls():
            stats = redis.cli("INFO", "commandstats")
            for line in stats.splitlines():
                if line.startswith("cmdstat_hgetall:"):
                    return int(line.split("calls=")[1].split(",")[0])
            return 0

        assert [variation() for _ in range(5)] == ["v_ab_ref"] * 5
        before = hgetall_calls()
        assert [variation() for _ in range(50)] == ["v_ab_ref"] * 50
        assert hgetall_calls() == before
        status, _, data = http_request(None, "/v2/ready", None, method="GET", conn=conn)
        assert "client-side cache on" in json.loads(data)["store"]["detail"], data  # this child

        redis.cli("HSET", "returning", "vg_ab", '{"VariationID":"v_ab_red","Activated":false}')
        wait_until(lambda: variation() == "v_ab_red", timeout=2, interval=0.01,
                   what="the write made elsewhere")
        assert [variation() for _ in range(20)] == ["v_ab_red"] * 20
    finally:
        redis.stop()


@pytest.mark.parametrize("on", [False, True])
def test_keepalive_on_worker(on, rundir, servers):
    """DecisionKeepAliveOnWorker: under the event MPM a connection that asked for a decision
    waits for its next request on its worker thread ("K" in the scoreboard), not in the
    listener; off, the event MPM's own way is kept."""
    body = ("DecisionEnvironment %s\nDecisionBucketingFile %s\n%s"
            "<Location /server-status>\n  SetHandler server-status\n</Location>\n"
            % (ENV, SAMPLE_BUCKETING, "DecisionKeepAliveOnWorker On\n" if on else "")) + location()
    h = servers(rundir, body, mpm="event", extra_modules=["status"])
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
    expected = None
    for _ in range(3):
        status, _, data = http_request(None, "/v2/campaigns", VIP, conn=conn)
        assert status == 200, data
        assert expected in (None, data)
        expected = data

    def workers_in_keepalive():
        _, _, page = http_request(h.base_url, "/server-status?auto", None, method="GET",
                                  headers={"Connection": "close"})
        return page.decode().split("Scoreboard: ")[1].split("\n")[0].count("K")
    if on:
        wait_until(lambda: workers_in_keepalive() >= 1, timeout=5, interval=0.05,
                   what="the kept-alive connection on its worker")
        assert all(workers_in_keepalive() >= 1 for _ in range(5))  # and it stays there
    else:
        # the listener holds it: no worker waits ("K"), but for the instant a worker
        # takes to hand it over (a worker preempted then may show it once)
        samples = []
        for _ in range(10):
            samples.append(workers_in_keepalive())
            time.sleep(0.05)
        assert samples.count(0) >= 8, samples
    for _ in range(3):  # and it goes on answering
        assert http_request(None, "/v2/campaigns", VIP, conn=conn)[2] == expected


def shared_assignments_check(rundir, servers, body):
    path = os.path.join(rundir, "bucketing.json")
    h = servers(rundir, body, mpm="prefork")
    # one kept-alive connection per prefork child: four connections, four children
    conns = [http.client.HTTPConnection("127.0.0.1", h.port, timeout=10) for _ in range(4)]

    def variation(i, vid):
        status, _, data = http_request(None, "/v2/campaigns/c_ab", {"visitor_id": vid},
                                       headers={"X-Probe": str(i)}, conn=conns[i])
        assert status == 200, data
        return json.loads(data)["variation"]["id"]

    try:
        for i in range(4):
            variation(i, "warm-up")
        old = ["sticky-%d" % n for n in range(10)]
        assert [variation(0, v) for v in old] == ["v_ab_ref"] * 10

        write_json(path, with_ab_allocation(sample(), 0, 100, padding=8))
        for i in range(4):
            fresh = iter("fresh-%d-%d" % (i, n) for n in range(1000))
            wait_until(lambda: variation(i, next(fresh)) == "v_ab_red", timeout=10,
                       interval=0.2, what="child %d on the new file" % i)
        # the hash now says red; the shared store says what child 0 assigned
        for i in (1, 2, 3):
            assert [variation(i, v) for v in old] == ["v_ab_ref"] * 10
    finally:
        for c in conns:
            c.close()
    pids = {}
    with open(os.path.join(rundir, "probes.log")) as f:
        for line in f:
            pid, probe, _ = line.split()
            pids.setdefault(probe, set()).add(int(pid))
    assert all(len(p) == 1 for p in pids.values()), pids
    assert len(set.union(*pids.values())) == 4, pids


# --- lifecycle ---------------------------------------------------------------

def parent_resources(h):
    """Shared mappings and open descriptors of the httpd parent: a segment or mutex leaked
    per generation shows as one more of either after each restart."""
    pid = h.pid()
    with open("/proc/%d/maps" % pid) as f:
        shared = sum(1 for line in f if "/dev/zero" in line or "SYSV" in line or
                     "/dev/shm/" in line)
    return shared, len(os.listdir("/proc/%d/fd" % pid))


def under_load(base, action, clients=4):
    """Runs action() while clients loop on POST /v2/campaigns; returns every outcome."""
    stop, lock, results = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=load, args=(base, stop, results, lock))
               for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        action()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return results


def load(base, stop, results, lock):
    body = json.dumps(VIP)
    while not stop.is_set():
        try:
            status, _, data = http_request(base, "/v2/campaigns", body,
                                           headers={"Connection": "close"}, timeout=20)
            outcome = True if status == 200 and json.loads(data)["visitorId"] == "bob" else (
                "answer", status, data[:200])
        except (OSError, http.client.HTTPException) as e:  # dropped: what this test looks for
            outcome = ("dropped", repr(e))
        with lock:
            results.append(outcome)


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_graceful_under_load_drops_nothing_and_restarts_leak_nothing(mpm, rundir, servers):
    h = servers(rundir, sample_conf("DecisionStore memory\n"), mpm=mpm)
    before = parent_resources(h)

    def graceful_restarts():
        time.sleep(1.0)
        for _ in range(3):
            h.graceful()
            time.sleep(1.5)

    results = under_load(h.base_url, graceful_restarts)
    failures = [r for r in results if r is not True]
    assert len(results) > 100, len(results)
    assert failures == [], failures[:5]
    assert h.log().count("DC10404") >= 4  # one set of services per generation

    # hard restarts under the same load: httpd aborts what is in flight at that instant,
    # and serves again right after
    def hard_restarts():
        for _ in range(2):
            time.sleep(1.0)
            h.restart()
        time.sleep(1.5)

    results = under_load(h.base_url, hard_restarts)
    failures = [r for r in results if r is not True]
    # never a wrong answer; a few connections cut (a retry can meet another dying child)
    assert all(f[0] == "dropped" for f in failures), failures[:10]
    assert len(failures) <= 20, failures[:10]
    assert results[-1] is True and len(results) > 50
    # five generations later, the parent holds what it held after the first
    wait_until(lambda: parent_resources(h) == before, timeout=10,
               what="no shared memory or descriptor left from older generations")
    h.stop()
    assert "[decision:emerg]" not in h.log() and "[decision:crit]" not in h.log()


def test_graceful_with_connections_kept_on_workers(rundir, servers):
    """DecisionKeepAliveOnWorker holds each kept-alive connection on a thread: graceful
    restarts under such load answer every request. A reused connection that a stopping
    child has closed is retried once on a new one, as HTTP clients do; a new connection
    that gets no answer, or any wrong answer, is a failure."""
    h = servers(rundir, sample_conf("DecisionStore memory\nDecisionKeepAliveOnWorker On\n"),
                mpm="event")
    stop, lock, results = threading.Event(), threading.Lock(), []
    body = json.dumps(VIP)

    def client():
        conn = None
        while not stop.is_set():
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=20)
            try:
                conn.request("POST", "/v2/campaigns", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                outcome = True if resp.status == 200 and json.loads(data)["visitorId"] == "bob" \
                    else ("answer", resp.status, data[:200])
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                conn = None
                if reused:
                    continue  # closed while idle by a stopping child: send it again
                outcome = ("dropped", repr(e))
            except (OSError, http.client.HTTPException) as e:
                outcome = ("dropped", repr(e))
                conn.close()
                conn = None
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        for _ in range(3):
            h.graceful()
            time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    failures = [r for r in results if r is not True]
    assert len(results) > 100, len(results)
    assert failures == [], failures[:5]
    assert h.log().count("DC10404") >= 4  # the new generations served


# --- configtest refuses what cannot work ---------------------------------------

BAD_CONFIGS = [
    ("DecisionPollInterval soon", "DecisionPollInterval"),
    ("DecisionPollInterval 0", "DecisionPollInterval"),
    ("DecisionMaxBodySize -5", "DecisionMaxBodySize"),
    ("DecisionMaxBodySize 10k", "DecisionMaxBodySize"),
    ("DecisionStore bogus://x", "DecisionStore"),
    ("DecisionStore memory?size=tiny", "DecisionStore"),
    ("DecisionStore memory?colour=red", "DecisionStore"),
    ("DecisionStore dbm:", "DecisionStore"),
    ("DecisionBucketingURL ftp://cdn.example/x.json", "DecisionBucketingURL"),
    ("DecisionEnvironment a/b", "DecisionEnvironment"),
    ("DecisionCORS maybe", "DecisionCORS"),
    ("DecisionRequireApiKey on", "DecisionRequireApiKey"),
    ("DecisionBucketingURL none", "DecisionBucketingURL"),
    ("DecisionBucketingFile {bad}", "DecisionBucketingFile"),
    ("DecisionBucketingFile {missing}", "DecisionBucketingFile"),
]


def test_configtest_names_the_bad_directive(rundir):
    bad = os.path.join(rundir, "bad.json")
    with open(bad, "w") as f:
        f.write('{"campaigns":[{"id":"c","bucketRanges":[{"r":[1]}]}]}')
    h = Httpd(rundir, sample_conf())
    rc, out = h.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    listing = h._ctl("-L").stdout  # every directive, with its one-line description
    for name in ["Environment", "ApiKey", "BucketingURL", "BucketingFile", "PollInterval",
                 "Store", "LastKnownGood", "CORS", "CORSOrigins", "RequireApiKey",
                 "MaxBodySize", "Export", "VisitorCookie", "VisitorHeader"]:
        assert "\nDecision%s (mod_decision.c)\n\t" % name in listing, name
    for line, directive in BAD_CONFIGS:
        line = line.format(bad=bad, missing=os.path.join(rundir, "missing.json"))
        h.write_config(("DecisionEnvironment %s\n%s\n" % (ENV, line)) + location())
        rc, out = h.configtest()
        assert rc != 0, (line, out)
        assert directive in out, (line, out)
    assert "campaigns[0].bucketRanges[0].r" in Httpd(rundir, "DecisionBucketingFile %s\n" % bad
                                                     ).configtest()[1]
    # a store URI with a password is never echoed
    uris = ["rediz://u:hunter2@127.0.0.1/0"]
    if store_backend_built("redis"):  # then common/ parses (and masks) redis URIs
        uris.append("redis://u:hunter2@127.0.0.1:6379/0?bogus=1")
    for uri in uris:
        h.write_config(sample_conf("DecisionStore %s\n" % uri))
        rc, out = h.configtest()
        assert rc != 0 and "DecisionStore" in out, out
        assert "hunter2" not in out, out


def test_shipped_configurations_pass_configtest(rundir):
    """conf/httpd-standalone.conf and the Debian decision.load + decision.conf, as shipped
    except for the module and sample paths (this tree's, not the installed ones)."""
    conf_dir = os.path.join(os.path.dirname(SAMPLE_BUCKETING))
    with open(os.path.join(conf_dir, "httpd-standalone.conf")) as f:
        text = f.read()
    text = (text.replace("/usr/lib/apache2/modules/mod_decision.so", MODULE_SO)
                .replace("/usr/share/doc/mod_decision/sample-bucketing.json", SAMPLE_BUCKETING)
                .replace("/tmp/mod_decision-run", rundir))
    path = os.path.join(rundir, "standalone.conf")
    with open(path, "w") as f:
        f.write(text)
    h = Httpd(rundir, "")
    p = subprocess.run([APACHE_BIN, "-f", path, "-t"], capture_output=True, text=True, timeout=60,
                       env=h.env)
    assert p.returncode == 0, p.stdout + p.stderr

    with open(os.path.join(conf_dir, "decision.load")) as f:
        load = f.read().replace("/usr/lib/apache2/modules/mod_decision.so", MODULE_SO)
    assert "Depends" not in load  # the memory store needs no socache module
    with open(os.path.join(conf_dir, "decision.conf")) as f:
        snippet = f.read()
    text = h.config_text().replace("LoadModule decision_module %s\n" % MODULE_SO, "")
    with open(h.conf, "w") as f:
        f.write(text + load + snippet + "DecisionBucketingFile %s\n" % SAMPLE_BUCKETING)
    rc, out = h.configtest()
    assert rc == 0, out


# --- metrics, health and the status page ---------------------------------------

def expvar(base, headers=None):
    status, _, data = post(base, "/v2/metrics", None, method="GET", headers=headers)
    assert status == 200, data
    return json.loads(data)


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_metrics_are_summed_over_children_and_survive_graceful(mpm, rundir, servers, cdn):
    cdn.set_bucketing(ENV, sample())
    body = ("DecisionEnvironment %s\nDecisionBucketingURL %s\nDecisionPollInterval 1\n"
            "DecisionStore memory\n" % (ENV, cdn.bucketing_url(ENV)) + location() + "<Location /metrics>\n  SetHandler decision\n</Location>\n"
            "<Location /decision-status>\n  SetHandler decision-status\n</Location>\n")
    h = servers(rundir, body, mpm=mpm)
    wait_until(lambda: post(h.base_url, "/v2/campaigns", VIP)[0] == 200, timeout=15,
               what="first fetch")
    base = expvar(h.base_url)["handlers.campaigns.requests.2xx"]
    for n in range(20):  # fresh connections: spread over the children
        assert post(h.base_url, "/v2/campaigns", {"visitor_id": "m%d" % n})[0] == 200
    m = expvar(h.base_url)
    assert m["handlers.campaigns.requests.2xx"] == base + 20
    assert m["cmdline"][0] == APACHE_BIN
    # the poller's status, seen from whichever child answers
    wait_until(lambda: all(json.loads(post(h.base_url, "/v2/ready", None, method="GET")[2])
                           ["config"]["source"]["fetches"] >= 1 for _ in range(6)),
               timeout=10, what="the poller's status in every child")
    status, hdrs, data = post(h.base_url, "/v2/ready", None, method="GET")
    ready = json.loads(data)
    assert status == 200 and ready["store"]["backend"] == "shm", ready
    status, hdrs, data = post(h.base_url, "/metrics", None, method="GET")
    assert status == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
    assert ('decision_requests_total{endpoint="campaigns",status="2xx"} %d' % (base + 20)
            ).encode() in data
    status, hdrs, data = post(h.base_url, "/decision-status", None, method="GET")
    assert status == 200 and hdrs["content-type"].startswith("text/html")
    assert b"c_vip" in data or b"VIP toggle" in data

    h.graceful()
    wait_until(lambda: post(h.base_url, "/v2/campaigns", VIP)[0] == 200, timeout=15,
               what="serving after graceful")
    assert expvar(h.base_url)["handlers.campaigns.requests.2xx"] >= base + 21


def test_metrics_off_and_status_page_behind_the_api_key(rundir, servers):
    body = sample_conf("DecisionMetrics off\nDecisionPrometheusPath none\n"
                       "DecisionApiKey k\nDecisionRequireApiKey on\n") + (
        "<Location /decision-status>\n  SetHandler decision-status\n</Location>\n")
    h = servers(rundir, body)
    key = {"X-API-Key": "k"}
    assert post(h.base_url, "/v2/campaigns", VIP, key)[0] == 200
    assert expvar(h.base_url, key)["handlers.campaigns.requests.2xx"] == 0
    assert post(h.base_url, "/decision-status", None, method="GET")[0] == 401
    assert post(h.base_url, "/decision-status", None, method="GET", headers=key)[0] == 200
    assert post(h.base_url, "/v2/metrics", None, method="GET")[0] == 401
    assert post(h.base_url, "/v2/health", None, method="GET")[0] == 200  # liveness: no key


@pytest.mark.skipif(os.getuid() != 0, reason="the children run as the same user otherwise")
def test_unwritable_last_known_good_directory_is_reported_at_start(rundir, servers, cdn):
    cdn.set_bucketing(ENV, sample())
    h = servers(rundir, poll_conf(cdn, os.path.join(rundir, "lkg.json")))  # rundir is root's
    assert "DC10407" in h.log() and "cannot write" in h.log()


# --- events: every child spools, one child ships ------------------------------

def campaign_hits(cdn):
    return [h for h in cdn.hits() if h.get("t") == "CAMPAIGN"]


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_events_are_spooled_by_every_child_and_shipped_once(mpm, rundir, servers, cdn):
    spool = os.path.join(rundir, "spool")
    body = sample_conf("DecisionSpool %s\nDecisionSpoolOptions segment-age=1s\n"
                       "DecisionCollector %s\n" % (spool, cdn.collector_url))
    h = servers(rundir, body, mpm=mpm)

    def activate(vids):
        for vid in vids:  # fresh connections: spread over the children
            status, _, data = post(h.base_url, "/v2/activate", {
                "cid": ENV, "vid": vid, "caid": "vg_ab", "vaid": "v_ab_red"})
            assert status == 204, data

    first = ["ev-%d" % n for n in range(12)]
    activate(first)
    wait_until(lambda: {x["vid"] for x in campaign_hits(cdn)} >= set(first), timeout=20,
               what="every activation at the collector")

    # the collector down: nothing lost, delivered when it is back
    cdn.collector_default = 503
    later = ["late-%d" % n for n in range(6)]
    activate(later)
    time.sleep(3)
    assert not {x["vid"] for x in campaign_hits(cdn)} & set(later)
    assert any(r[1] == 503 for r in cdn.collector_requests)
    cdn.collector_default = 200
    wait_until(lambda: {x["vid"] for x in campaign_hits(cdn)} >= set(later), timeout=90,
               interval=0.5, what="the held events after the outage")

    # kill -9 of every child while the collector is down: their segments are adopted
    cdn.collector_default = 503
    killed = ["killed-%d" % n for n in range(6)]
    activate(killed)
    for pid in h.children():
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    cdn.collector_default = 200
    wait_until(lambda: {x["vid"] for x in campaign_hits(cdn)} >= set(killed), timeout=90,
               interval=0.5, what="the events of killed children")

    # a graceful restart loses nothing either
    after = ["grace-%d" % n for n in range(6)]
    activate(after)
    h.graceful()
    wait_until(lambda: {x["vid"] for x in campaign_hits(cdn)} >= set(after), timeout=30,
               what="events spooled just before a graceful restart")
    m = expvar(h.base_url)
    assert "spool" in m, sorted(m)
    log = h.log()
    assert "DC10432" in log  # one child ships
    if os.getuid() == 0:
        assert os.stat(spool).st_uid == shutil._get_uid("www-data")


def test_a_full_ring_loses_nothing_and_is_counted(rundir, servers, cdn):
    """A record over a quarter of its process's ring (a batch of 200 activations, a 64 KiB
    ring) is written to the segment by the request itself: delivered all the same, and
    counted where an operator looks (Prometheus and /v2/metrics)."""
    spool = os.path.join(rundir, "spool")
    body = sample_conf("DecisionSpool %s\nDecisionSpoolOptions segment-age=1s,ring-bytes=64k\n"
                       "DecisionCollector %s\n" % (spool, cdn.collector_url)) + (
        "<Location /metrics>\n  SetHandler decision\n</Location>\n")
    h = servers(rundir, body)
    vids = ["ring-full-visitor-%03d" % n for n in range(200)]
    status, _, data = post(h.base_url, "/v2/activate", {"cid": ENV, "batch": [
        {"vid": v, "caid": "vg_ab", "vaid": "v_ab_red"} for v in vids]})
    assert status == 204, data
    status, _, data = post(h.base_url, "/v2/activate", {
        "cid": ENV, "vid": "ring-small", "caid": "vg_ab", "vaid": "v_ab_red"})
    assert status == 204, data
    wait_until(lambda: {x["vid"] for x in campaign_hits(cdn)} >= set(vids) | {"ring-small"},
               timeout=30, what="the big record's and the small one's hits at the collector")
    status, _, data = post(h.base_url, "/metrics", None, method="GET")
    assert status == 200 and b"\ndecision_spool_ring_full_total 1\n" in data, data
    assert b'\ndecision_hits_total{result="accepted"} 201\n' in data, data
    hits = expvar(h.base_url)["hits"]
    assert hits == {"accepted": 201, "refused": 0, "ring_full_requests": 1}, hits


def test_shipping_goes_on_when_the_shipping_child_exits(rundir, servers, cdn):
    """Children retire after a few connections, the one that ships (and polls) among them:
    another child takes the background work over, every time (mod_watchdog's singleton,
    with httpd's default pthread mutex, was in some runs never taken over after its child exited)."""
    spool = os.path.join(rundir, "spool")
    body = sample_conf("DecisionSpool %s\nDecisionSpoolOptions segment-age=1s\n"
                       "DecisionCollector %s\nMaxConnectionsPerChild 3\n" % (spool, cdn.collector_url))
    h = servers(rundir, body, mpm="prefork")
    for rnd in range(4):
        vids = ["r%d-%d" % (rnd, n) for n in range(10)]
        for vid in vids:  # fresh connections: every child retires, the shipper too
            status, _, data = post(h.base_url, "/v2/activate", {
                "cid": ENV, "vid": vid, "caid": "vg_ab", "vaid": "v_ab_red"})
            assert status == 204, data
        wait_until(lambda: {x["vid"] for x in campaign_hits(cdn)} >= set(vids), timeout=30,
                   interval=0.3, what="round %d's activations at the collector" % rnd)
    elected = set(re.findall(r"\[pid (\d+):tid \d+\][^\n]*DC10449", h.log()))
    assert len(elected) >= 2, h.log()[-3000:]


def test_bad_event_settings_fail_configtest(rundir):
    h = Httpd(rundir, "")
    for line, directive in [("DecisionSpoolOptions fsync=sometimes", "DecisionSpoolOptions"),
                            ("DecisionCollector gopher://x", "DecisionCollector")]:
        h.write_config(sample_conf(line + "\n"))
        rc, out = h.configtest()
        assert rc != 0 and directive in out, (line, out)
    two = os.path.join(rundir, "spool")
    port = h.port
    h.write_config(sample_conf("DecisionSpool %s\n" % two) +
                   "<VirtualHost 127.0.0.1:%d>\n  ServerName b.test\n  DecisionEnvironment b\n"
                   "  DecisionSpool %s\n</VirtualHost>\n" % (port, two))
    rc, out = h.configtest()
    assert rc != 0 and "DecisionSpool" in out and "another configuration" in out, out

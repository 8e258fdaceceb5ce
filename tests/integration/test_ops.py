"""Operations (issue 7) and events under faults (issue 6), the same checks on
both front ends: the httpd module (a real Apache httpd, prefork, so that
several children answer) and decision-fcgi (listening itself, with several
threads, behind a real nginx so that a browser can reach it).

Each test starts its front end through FrontEnd(kind, ...), which turns one
set of settings (config source, API key, store URI, spool, log level) into
httpd directives or decision-fcgi environment variables, and gives the test
one HTTP base URL, every log the front end wrote, and a way to kill -9 the
processes that answer requests. Only the remote SaaS (config CDN, event
collector) is the stand-in; Redis is a real redis-server with requirepass.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

import prom_parse
from harness import (APACHE_BIN, DECISION_FCGI, SAMPLE_BUCKETING, Httpd, Proc, RedisServer,
                     check_status_page_in_chromium, chromium_binary, free_port, http_request,
                     make_world_readable_dir, wait_port, wait_until)
from standin import StandIn

ENV = "env_ops"
KINDS = ["httpd", "fcgi"]
STATUS_PATH = "/decision-status"
VIP = {"visitor_id": "bob", "context": {"isVIP": True}, "trigger_hit": False}


def fcgi_env_clean():
    """The test's environment without anything decision-fcgi would read as a setting."""
    prefixes = ("ENV_ID", "API_KEY", "CACHE_", "CORS_", "LOG_", "BUCKETING_", "STORE", "THREADS",
                "LISTEN", "CONFIG_FILE", "POLLING_INTERVAL", "MAX_BODY_SIZE", "REQUIRE_API_KEY",
                "LAST_KNOWN_GOOD", "SHUTDOWN_TIMEOUT", "METRICS_", "EVENTS_", "ADDRESS",
                "SWAGGER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class FrontEnd:
    """One front end with the given settings; see the file's comment.

    cdn: a StandIn to poll (with lkg, the last-known-good path) instead of the sample file.
    key_mode: with api_key, "on" or "decisions" (DecisionRequireApiKey / REQUIRE_API_KEY).
    """

    def __init__(self, kind, workdir, api_key=None, store=None, cdn=None, lkg=None,
                 spool=None, spool_options=None, collector=None, debug=False, threads=4,
                 status_access=None, info=False, json_logs=False, as_nobody=False,
                 key_mode="on", swagger_ui=None):
        self.kind, self.workdir = kind, workdir
        self.api_key = api_key
        self.killed = 0
        if kind == "httpd":
            lines = ["DecisionEnvironment %s" % ENV]
            if cdn:
                lines += ["DecisionBucketingURL %s" % cdn.bucketing_url(ENV),
                          "DecisionPollInterval 1", "DecisionLastKnownGood %s" % lkg]
            else:
                lines += ["DecisionBucketingFile %s" % SAMPLE_BUCKETING]
            if api_key:
                lines += ["DecisionApiKey %s" % api_key, "DecisionRequireApiKey %s" % key_mode]
            if store:
                lines += ["DecisionStore %s" % store]
            if spool:
                lines += ["DecisionSpool %s" % spool]
            if spool_options:
                lines += ["DecisionSpoolOptions %s" % spool_options]
            if collector:
                lines += ["DecisionCollector %s" % collector]
            if swagger_ui:
                lines += ["DecisionSwaggerUI %s" % swagger_ui]
            for loc in ("/v2", "/metrics", "/iserver"):
                lines += ["<Location %s>" % loc, "  SetHandler decision", "</Location>"]
            lines += ["<Location %s>" % STATUS_PATH, "  SetHandler decision-status",
                      status_access or "", "</Location>"]
            self.httpd = Httpd(workdir, "\n".join(lines) + "\n", mpm="prefork",
                               extra_modules=["authz_host"] if status_access else [],
                               log_level="debug" if debug else "decision:info")
            self.httpd.start()
            self.base_url = self.httpd.base_url
        else:
            env = {"ENV_ID": ENV, "METRICS_STATUS_PATH": STATUS_PATH,
                   "LOG_LEVEL": "debug" if debug else "info" if info else "warning", "SHUTDOWN_TIMEOUT": "2s"}
            if cdn:
                env.update(BUCKETING_URL=cdn.bucketing_url(ENV), POLLING_INTERVAL="1s",
                           LAST_KNOWN_GOOD=lkg)
            else:
                env.update(BUCKETING_FILE=SAMPLE_BUCKETING)
            if json_logs:
                env.update(LOG_FORMAT="json")
            if api_key:
                env.update(API_KEY=api_key,
                           REQUIRE_API_KEY="true" if key_mode == "on" else key_mode)
            if store:
                env.update(STORE=store)
            if spool:
                env.update(EVENTS_SPOOL_DIR=spool)
            if spool_options:
                env.update(EVENTS_SPOOL_OPTIONS=spool_options)
            if collector:
                env.update(EVENTS_COLLECTOR=collector)
            if swagger_ui:
                env.update(SWAGGER_UI_URL=swagger_ui)
            self.env = dict(fcgi_env_clean(), **env)
            self.threads = threads
            self.preexec = None
            if as_nobody and os.getuid() == 0:  # so that file permissions apply to it
                def drop():
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                self.preexec = drop
            self.fcgi_port = free_port()
            self.fcgi_logs = []
            self.fcgi = None
            self.start_responder()
            self.nginx_port = free_port()
            conf = os.path.join(workdir, "nginx.conf")
            with open(conf, "w") as f:
                f.write("daemon off;\nworker_processes 1;\npid %(d)s/nginx.pid;\n"
                        "error_log %(d)s/nginx-error.log;\nevents { worker_connections 256; }\n"
                        "http {\n  access_log off;\n  client_body_temp_path %(d)s/body;\n"
                        "  fastcgi_temp_path %(d)s/fcgi;\n  proxy_temp_path %(d)s/proxy;\n"
                        "  uwsgi_temp_path %(d)s/uwsgi;\n  scgi_temp_path %(d)s/scgi;\n"
                        "  server {\n    listen 127.0.0.1:%(port)d;\n"
                        "    client_max_body_size 2m;  # decision-fcgi answers the 413 itself\n"
                        "    location / {\n"
                        "      include /etc/nginx/fastcgi_params;\n"
                        "      fastcgi_pass 127.0.0.1:%(fcgi)d;\n    }\n  }\n}\n"
                        % {"d": workdir, "port": self.nginx_port, "fcgi": self.fcgi_port})
            self.nginx = Proc(["nginx", "-p", workdir, "-c", conf],
                              os.path.join(workdir, "nginx.log"))
            try:
                wait_port(self.nginx_port)
            except TimeoutError:
                self.nginx.stop()
                raise AssertionError(self.nginx.output())
            self.base_url = "http://127.0.0.1:%d" % self.nginx_port

    # -- decision-fcgi's own process
    def start_responder(self):
        log = os.path.join(self.workdir, "decision-fcgi-%d.log" % len(self.fcgi_logs))
        self.fcgi_logs.append(log)
        self.fcgi = subprocess.Popen(
            [DECISION_FCGI, "--listen", "127.0.0.1:%d" % self.fcgi_port, "--threads",
             str(self.threads)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
            preexec_fn=self.preexec)
        wait_until(lambda: self._fcgi_accepts() or self.fcgi.poll() is not None,
                   what="decision-fcgi listening")
        assert self.fcgi.poll() is None, self.log()

    def _fcgi_accepts(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.fcgi_port), timeout=0.2):
                return True
        except OSError:
            return False

    # -- what the tests use
    def auth(self):
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def get(self, path, headers=None, auth=True):
        h = dict(self.auth() if auth else {}, **(headers or {}))
        return http_request(self.base_url, path, method="GET", headers=h)

    def post(self, path, body, auth=True):
        return http_request(self.base_url, path, body, headers=self.auth() if auth else {})

    def kill_servers(self):
        """kill -9 of what answers requests: every httpd child (the parent forks new
        ones), or the decision-fcgi process (started again by restart_after_kill)."""
        if self.kind == "httpd":
            pids = self.httpd.children()
            assert pids
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        else:
            self.fcgi.kill()
            self.fcgi.wait(timeout=10)
        self.killed += 1

    def restart_after_kill(self):
        if self.kind == "fcgi":
            self.start_responder()

    def log(self):
        if self.kind == "httpd":
            return self.httpd.log()
        out = ""
        for path in self.fcgi_logs + [os.path.join(self.workdir, "nginx-error.log")]:
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out += f.read()
        return out

    def stop(self):
        if self.kind == "httpd":
            self.httpd.stop()
            assert self.httpd.sanitizer_reports() == ""
            return
        self.nginx.stop()
        if self.fcgi.poll() is None:
            self.fcgi.send_signal(signal.SIGTERM)
            try:
                self.fcgi.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.fcgi.kill()
                self.fcgi.wait(timeout=5)
            assert self.fcgi.returncode == 0, self.log()[-3000:]
        for needle in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert needle not in self.log(), self.log()[-3000:]


@pytest.fixture
def workdir():
    d = make_world_readable_dir("dc-ops-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def front(workdir):
    """front(kind, **settings) starts a FrontEnd; all are stopped at the end."""
    started = []

    def start(kind, **kw):
        if kind == "httpd" and not os.path.exists(APACHE_BIN):
            pytest.skip("no %s: install the Debian package apache2" % APACHE_BIN)
        f = FrontEnd(kind, workdir, **kw)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


@pytest.fixture
def standin():
    s = StandIn().start()
    yield s
    s.stop()


def children_writable_dir(workdir, name):
    """A directory httpd's children (www-data when run as root) can write."""
    d = os.path.join(workdir, name)
    os.mkdir(d)
    if os.getuid() == 0:
        shutil.chown(d, "www-data", "www-data")
    return d


def sample():
    with open(SAMPLE_BUCKETING) as f:
        return json.load(f)


def log_lines(text, needle):
    return [l for l in text.splitlines() if needle in l]


# ---- readiness -----------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_ready_is_503_with_a_reason_until_the_first_config(kind, front, workdir, standin):
    standin.cdn_status = 500  # and no last-known-good file
    lkg = os.path.join(children_writable_dir(workdir, "lkg"), "bucketing.json")
    f = front(kind, cdn=standin, lkg=lkg, info=True)
    seen = []

    def not_ready_because_of_the_cdn():
        status, hdrs, body = f.get("/v2/ready")
        assert status == 503 and hdrs["content-type"].startswith("application/json"), body
        doc = json.loads(body)
        seen.append(doc["reason"])  # first, in httpd: waiting for the watchdog's first fetch
        assert doc["reason"] and doc["status"] == "not_ready", doc
        return "500" in doc["reason"]
    wait_until(not_ready_because_of_the_cdn, timeout=15, interval=0.2,
               what="the CDN's 500 as the reason (%s)" % seen)
    assert f.get("/v2/health")[0] == 200  # alive all the same
    assert f.post("/v2/campaigns", VIP)[0] >= 500  # no decision without a config

    standin.set_bucketing(ENV, sample())
    standin.cdn_status = None
    wait_until(lambda: all(f.get("/v2/ready")[0] == 200 for _ in range(4)), timeout=30,
               interval=0.3, what="ready once the CDN serves")
    doc = json.loads(f.get("/v2/ready")[2])
    assert doc["status"] == "ready" and doc["config"]["loaded"] is True, doc
    first_digest = doc["config"]["digest"]
    fams = prom_parse.parse(f.get("/metrics")[2].decode())
    assert prom_parse.value(fams, "decision_config_fetches_total", result="error") >= 1
    assert f.post("/v2/campaigns", VIP)[0] == 200
    assert os.path.exists(lkg)

    # one line per config change, whatever the number of polls and requests
    for n in range(10):
        assert f.post("/v2/campaigns", {"visitor_id": "r%d" % n})[0] == 200
    time.sleep(2.5)  # two more polls, answered 304
    assert len(log_lines(f.log(), "DC10604")) == 1, f.log()[-3000:]
    changed = sample()
    changed["campaigns"] = changed["campaigns"][:2]
    standin.set_bucketing(ENV, changed)
    wait_until(lambda: len(log_lines(f.log(), "DC10604")) == 2, timeout=15,
               what="the change logged")
    # config.generation counts one process's loads (a prefork child forked after the change has
    # loaded once): what every process must show is the new file
    wait_until(lambda: all(json.loads(f.get("/v2/ready")[2])["config"]["campaigns"] == 2
                           for _ in range(4)), timeout=10, what="the new config everywhere")
    doc = json.loads(f.get("/v2/ready")[2])
    assert doc["config"]["generation"] >= 1 and doc["config"]["digest"] != first_digest, doc
    time.sleep(2.5)
    assert len(log_lines(f.log(), "DC10604")) == 2, f.log()[-3000:]


# ---- metrics -------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_metrics_count_exactly_over_http_and_promtool_accepts_them(kind, front):
    f = front(kind, api_key="ops-key", threads=3)
    before = json.loads(f.get("/v2/metrics")[2])
    log_before = len(f.log().splitlines())
    visitors = ["met-%02d" % n for n in range(30)]
    results = []

    def client(vids):  # fresh connections: spread over httpd's children / fcgi's threads
        for vid in vids:
            results.append(f.post("/v2/campaigns", {"visitor_id": vid, "context": {}})[0])
            results.append(f.post("/v2/campaigns", {"visitor_id": vid, "context": {}})[0])
        results.append(f.post("/v2/campaigns", "not json")[0])

    threads = [threading.Thread(target=client, args=(visitors[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [200] * 60 + [400] * 3
    assert f.post("/v2/campaigns", VIP, auth=False)[0] == 401

    status, hdrs, body = f.get("/v2/metrics")
    assert status == 200 and hdrs["content-type"].startswith("application/json")
    m = json.loads(body)
    for key, delta in (("handlers.campaigns.requests.2xx", 60),
                       ("handlers.campaigns.requests.4xx", 4),  # the 3 bad bodies, the 401
                       ("handlers.campaigns.requests.total", 64)):
        assert m[key] - before[key] == delta, (key, m[key], before[key])
    assert 0 < m["handlers.campaigns.response_time.p50"] <= m["handlers.campaigns.response_time.p99"]
    if kind == "httpd":  # the counts are the sum of several children's slots
        served = {pid for pid, url, st in f.httpd.access_pids() if url == "/v2/campaigns"}
        assert len(served) >= 2, served

    status, hdrs, body = f.get("/metrics")
    assert status == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
    fams = prom_parse.parse(body.decode())
    assert prom_parse.value(fams, "decision_requests_total", endpoint="campaigns",
                            status="2xx") == m["handlers.campaigns.requests.2xx"]
    assert prom_parse.value(fams, "decision_request_duration_seconds",
                            "decision_request_duration_seconds_count",
                            endpoint="campaigns") == m["handlers.campaigns.requests.total"]
    assert prom_parse.value(fams, "decision_config_loaded") == 1
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=60)
        assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
    assert f.get("/metrics", auth=False)[0] == 401

    # distinct visitors of the last 30 minutes: the 30 above (and bob, refused, is not one)
    status, _, body = f.get("/iserver/nsessions")
    assert status == 200, body
    n = json.loads(body)
    assert n["nsessions"] == 30 and n["window_seconds"] == 1800, n

    # the status page is behind the key too
    assert f.get(STATUS_PATH, auth=False)[0] == 401
    status, hdrs, body = f.get(STATUS_PATH)
    assert status == 200 and hdrs["content-type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>") and b"<script" not in body  # no JavaScript
    # never a line per request at the default levels
    assert len(f.log().splitlines()) - log_before < 5, f.log()[-3000:]
    assert not any(v in f.log() for v in visitors)


def test_status_page_behind_httpd_access_control(front):
    f = front("httpd", status_access="  Require ip 127.0.0.2")
    assert f.get(STATUS_PATH)[0] == 403
    assert f.get("/v2/health")[0] == 200


# ---- the status page in a browser -------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_status_page_renders_in_chromium_through_the_front_end(kind, front, tmp_path):
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (Debian package chromium)")
    f = front(kind)
    for n in range(40):
        assert f.post("/v2/campaigns", {"visitor_id": "page-%d" % n, "context": {}})[0] == 200
    dom = check_status_page_in_chromium(f.base_url + STATUS_PATH, tmp_path,
                                        ("c_ab", "c_vip", "c_geo"))
    assert "Campaigns (5)" in dom


# ---- logs ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_debug_logs_carry_no_secret(kind, front, workdir):
    key, password = "Ky-9f3e1d2c", "Pw-7a6b5c4d"
    redis = RedisServer(workdir, password=password).start()
    try:
        store = "redis://default:%s@127.0.0.1:%d/0" % (password, redis.port)
        f = front(kind, api_key=key, store=store, debug=True)
        for n in range(5):
            assert f.post("/v2/campaigns", {"visitor_id": "sec-%d" % n})[0] == 200
        assert f.get("/v2/metrics")[0] == 200
        assert f.get(STATUS_PATH)[0] == 200
        assert http_request(f.base_url, "/v2/campaigns", VIP,
                            headers={"X-API-Key": key[:-1]})[0] == 401  # a near miss
        assert redis.cli("DBSIZE").strip() not in ("", "0")  # the store was reached
        m = json.loads(f.get("/v2/metrics")[2])
        assert m["store"]["backend"] == "redis" and m["store"]["state"] == "ok", m["store"]
        ops = m["store"]["operations"]
        assert sum(v["count"] for k, v in ops.items() if k.startswith("redis.")) >= 1, ops
        # redis restarted with another password: the front end's errors name no password
        redis.stop()
        redis2 = RedisServer(workdir, port=redis.port, password="other-" + password).start()
        try:
            for n in range(3):
                assert f.post("/v2/campaigns", {"visitor_id": "deg-%d" % n})[0] == 200

            def degraded():  # decisions still answered; the store's state says degraded
                assert f.post("/v2/campaigns", {"visitor_id": "deg-x"})[0] == 200
                return json.loads(f.get("/v2/ready")[2])["store"]["state"] == "degraded"
            wait_until(degraded, timeout=15, interval=0.2, what="the store reported degraded")
        finally:
            redis2.stop()
        log = f.log()
        assert ("level=debug" if kind == "fcgi" else ":debug]") in log  # really at debug
        # one line for the store's change of state, however many processes / threads saw it
        assert len(log_lines(log, "DC10801")) == 1, log_lines(log, "DC10801")
        for secret in (key, password, key[:-1]):
            assert secret not in log, [l for l in log.splitlines() if secret in l][:3]
    finally:
        redis.stop()


def test_fcgi_json_logs_are_one_object_per_line(front, workdir):
    f = front("fcgi", debug=True, json_logs=True, api_key="json-key")
    for n in range(3):
        assert f.post("/v2/campaigns", {"visitor_id": "js-%d" % n})[0] == 200
    assert f.post("/v2/campaigns", {"visitor_id": "js-x"}, auth=False)[0] == 401
    f.stop()
    with open(f.fcgi_logs[0]) as log:
        lines = log.read().splitlines()
    docs = [json.loads(l) for l in lines]  # every line, or this fails
    assert len(docs) >= 5
    levels = {d["level"] for d in docs}
    assert "info" in levels and levels <= {"trace", "debug", "info", "warning", "error", "fatal",
                                           "panic"}, levels
    assert all(isinstance(d["msg"], str) and d["msg"][:2] == "DC" for d in docs), docs
    assert any(d["msg"].startswith("DC10505") for d in docs)  # the start line
    assert "json-key" not in "".join(lines)


# ---- events under faults ---------------------------------------------------------

def activation(vid):
    return {"cid": ENV, "vid": vid, "caid": "vg_ab", "vaid": "v_ab_red"}


def spool_bytes(spool):
    return sum(os.path.getsize(os.path.join(spool, n)) for n in os.listdir(spool)
               if n.startswith("seg-"))


def delivered_vids(standin):
    return {h.get("vid") for h in standin.hits() if h.get("t") == "CAMPAIGN"}


@pytest.mark.parametrize("kind", KINDS)
def test_events_reach_the_collector_in_its_format(kind, front, workdir, standin):
    spool = children_writable_dir(workdir, "spool")
    f = front(kind, spool=spool, spool_options="segment-age=1s",
              collector=standin.collector_url)
    expected = []
    for i in range(3):
        vid = "fmt-%d" % i
        status, _, data = f.post("/v2/campaigns?sendContextEvent=true", {
            "visitor_id": vid, "context": {"isVIP": True, "age": 30}, "trigger_hit": True})
        assert status == 200, data
        expected.append({"t": "SEGMENT", "cid": ENV, "vid": vid, "cuid": vid,
                         "s": {"isVIP": "true", "age": "30"}})
        for c in json.loads(data)["campaigns"]:
            expected.append({"t": "CAMPAIGN", "cid": ENV, "vid": vid, "cuid": vid,
                             "caid": c["variationGroupId"], "vaid": c["variation"]["id"],
                             "qa": False})
    # visitor_consent false: the campaign hits, not the context (SEGMENT) hit; nor without context
    for vid, body in (("noconsent", {"visitor_consent": False, "context": {"isVIP": True}}),
                      ("nocontext", {"context": {}})):
        status, _, data = f.post("/v2/campaigns?sendContextEvent=true",
                                 dict(body, visitor_id=vid, trigger_hit=True))
        assert status == 200, data
        campaigns = json.loads(data)["campaigns"]
        assert campaigns
        for c in campaigns:
            expected.append({"t": "CAMPAIGN", "cid": ENV, "vid": vid, "cuid": vid,
                             "caid": c["variationGroupId"], "vaid": c["variation"]["id"],
                             "qa": False})
    # no event: trigger_hit false, and the context event off
    assert f.post("/v2/campaigns?sendContextEvent=false", {
        "visitor_id": "quiet", "context": {"isVIP": True}, "trigger_hit": False})[0] == 200
    assert f.post("/v2/activate", {"cid": ENV, "vid": "act", "aid": "anon-act", "caid": "vg_ab",
                                   "vaid": "v_ab_red", "qt": 100, "qa": True})[0] == 204
    expected.append({"t": "CAMPAIGN", "cid": ENV, "vid": "anon-act", "cuid": "act",
                     "caid": "vg_ab", "vaid": "v_ab_red", "qa": True})
    assert f.post("/v2/activate", {"cid": ENV, "batch": [
        {"vid": "b1", "caid": "vg_ab", "vaid": "v_ab_red"},
        {"vid": "b2", "aid": "anon-b2", "cid": "other", "caid": "vg_ab", "vaid": "v_ab_ref"}]}
    )[0] == 204
    expected += [{"t": "CAMPAIGN", "cid": ENV, "vid": "b1", "cuid": "b1", "caid": "vg_ab",
                  "vaid": "v_ab_red", "qa": False},
                 {"t": "CAMPAIGN", "cid": ENV, "vid": "anon-b2", "cuid": "b2", "caid": "vg_ab",
                  "vaid": "v_ab_ref", "qa": False}]
    wait_until(lambda: len(standin.hits()) >= len(expected), timeout=30, interval=0.3,
               what="%d hits at the collector" % len(expected))
    time.sleep(1.5)  # nothing more comes
    hits = standin.hits()
    for h in hits:
        qt = h.pop("qt")
        assert isinstance(qt, int) and 0 <= qt < 60000, h
        if h["vid"] == "anon-act":
            assert qt >= 100
    key = lambda h: json.dumps(h, sort_keys=True)  # children's segments go in any order
    assert sorted(hits, key=key) == sorted(expected, key=key)
    for path, headers, body in standin.received:
        doc = json.loads(body)
        assert list(doc) == ["t", "ds", "h", "cv"] and doc["t"] == "BATCH" and doc["ds"] == "APP"
        assert len(headers["X-Decision-Hit-Ids"].split(",")) == len(doc["h"])


@pytest.mark.parametrize("kind", KINDS)
def test_an_unwritable_file_sink_is_reported_at_start(kind, front, workdir):
    spool = os.path.join(workdir, "spool")
    os.mkdir(spool)
    os.chmod(spool, 0o777)
    sink = os.path.join(workdir, "sink")
    os.mkdir(sink)
    os.chmod(sink, 0o555)  # root's, and not writable by httpd's children nor decision-fcgi
    f = front(kind, spool=spool, spool_options="segment-age=1s", collector="file:" + sink,
              as_nobody=True)
    wait_until(lambda: "DC10724" in f.log(), timeout=15, what="the sink's start-up test")
    assert f.post("/v2/activate", activation("sink-1"))[0] == 204  # in the spool, waiting
    assert f.post("/v2/campaigns", VIP)[0] == 200

    def failing():
        sp = json.loads(f.get("/v2/metrics")[2])["spool"]
        return sp["state"] == "degraded" and sp["last_error"]
    wait_until(failing, timeout=15, interval=0.3, what="the spool figures say why")
    assert not os.listdir(sink)
    # written from the children's rings to segments within their 100 ms
    wait_until(lambda: [n for n in os.listdir(spool) if n.startswith("seg-")], timeout=5,
               what="the events in a segment")


@pytest.mark.parametrize("kind", KINDS)
def test_kill_9_in_the_middle_of_a_load_loses_no_answered_event(kind, front, workdir, standin):
    spool = children_writable_dir(workdir, "spool")
    standin.collector_default = 503  # down until after the kill: the events wait on disk
    f = front(kind, spool=spool, spool_options="segment-age=1s,fsync=never",
              collector=standin.collector_url, info=True)
    answered, lock = [], threading.Lock()
    stop = threading.Event()

    def load(worker):
        n = 0
        deadline = time.time() + 30
        while not stop.is_set() and time.time() < deadline:
            vid = "k9-%d-%d" % (worker, n)
            n += 1
            try:
                status = f.post("/v2/activate", activation(vid))[0]
            except OSError:
                continue  # the connection died with the server: not answered
            if status == 204:
                with lock:
                    answered.append(vid)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answered) >= 40, timeout=20, what="load under way")
        f.kill_servers()
        f.restart_after_kill()
        at_kill = len(answered)
        wait_until(lambda: len(answered) >= at_kill + 30, timeout=20, what="answers after the kill")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert f.killed == 1
    assert not delivered_vids(standin) and any(r[1] == 503 for r in standin.collector_requests)
    standin.collector_default = 200
    wait_until(lambda: delivered_vids(standin) >= set(answered), timeout=60, interval=0.5,
               what="every answered event delivered (%d answered)" % len(answered))
    # the killed processes' rings saved, their open segments adopted
    assert "DC10717" in f.log() or "DC10701" in f.log()


@pytest.mark.parametrize("kind", KINDS)
def test_disk_bound_refuses_events_and_keeps_answering_decisions(kind, front, workdir,
                                                                 standin):
    standin.collector_default = 503  # nothing drains the spool
    spool = children_writable_dir(workdir, "spool")
    f = front(kind, spool=spool, spool_options="max-bytes=8k,segment-bytes=2k,on-full=refuse",
              collector=standin.collector_url, info=True)
    for n in range(120):
        status, _, body = f.post("/v2/campaigns?sendContextEvent=true", {
            "visitor_id": "full-%03d" % n, "context": {"isVIP": True}, "trigger_hit": True})
        assert status == 200 and json.loads(body)["campaigns"], body  # decisions answered
    # each process bounds the directory by a scan at most once a second plus its own
    # writes (dc_spool.h): several httpd children can overshoot by a second's writes each
    processes = len({a[0] for a in f.httpd.access_pids()}) if kind == "httpd" else 1
    assert processes >= 1
    assert spool_bytes(spool) <= 8 * 1024 * processes
    time.sleep(1.2)
    for n in range(20):
        assert f.post("/v2/campaigns?sendContextEvent=true", {
            "visitor_id": "more-%03d" % n, "context": {}, "trigger_hit": True})[0] == 200
    full = spool_bytes(spool)
    assert full >= 8 * 1024 - 2048  # it did fill up
    time.sleep(1.2)
    for n in range(20):
        assert f.post("/v2/campaigns?sendContextEvent=true", {
            "visitor_id": "over-%03d" % n, "context": {}, "trigger_hit": True})[0] == 200
    assert spool_bytes(spool) == full  # once every process has seen the bound, nothing more
    # an activation is nothing but its event: refused, it says so (503, retry later)
    batch = {"cid": ENV, "batch": [{"vid": "refused-%d" % i, "caid": "vg_ab", "vaid": "v_ab_red"}
                                   for i in range(20)]}
    status, _, body = f.post("/v2/activate", batch)
    assert status == 503 and b"could not be stored" in body, body
    m = json.loads(f.get("/v2/metrics")[2])
    assert m["spool"]["state"] == "degraded", m["spool"]
    # one line per spool state change in each process that appends: refusing (warn),
    # accepting again (info; a smaller record can fit again), never a line per event
    changes = {}
    for line in f.log().splitlines():
        code = "DC10705" if "DC10705" in line else "DC10707" if "DC10707" in line else None
        if code:
            pid = re.search(r"\[pid (\d+)", line) if kind == "httpd" else None
            changes.setdefault(pid.group(1) if pid else "-", []).append(code)
    assert changes and len(changes) <= processes, changes
    for seq in changes.values():
        assert seq == ["DC10705", "DC10707"] * (len(seq) // 2) + ["DC10705"] * (len(seq) % 2), changes
        assert len(seq) < 10, changes
    # the collector back: what was accepted is delivered
    standin.collector_default = 200
    wait_until(lambda: any(h.get("vid", "").startswith("full-") for h in standin.hits()),
               timeout=60, interval=0.5, what="the accepted events delivered")

    def delivered_and_retried():  # the one shipper's figures, whichever process answers
        sp = json.loads(f.get("/v2/metrics")[2])["spool"]
        return sp["delivered"] > 0 and sp["retried"] > 0
    wait_until(delivered_and_retried, timeout=30, interval=0.5, what="shipper figures")
    # the shipper logs its state changes, not every failed attempt
    shipper = [c for l in f.log().splitlines() for c in ("DC10720", "DC10721", "DC10722")
               if c in l]
    assert shipper and shipper.count("DC10721") <= shipper.count("DC10720") + 1, shipper
    assert len(shipper) < 6, shipper

"""OpenTelemetry: traces and metrics over OTLP/HTTP from both front ends.

A real receiver (tests/otlp_receiver.py) decodes every export with the official
generated classes (python3-opentelemetry-proto) and the tests check the spans
and metrics field by field: ids continued from a sent traceparent, attributes of
the HTTP semantic conventions and ours, child spans of a Redis store, the
resource from OTEL_RESOURCE_ATTRIBUTES, gzip, histograms whose buckets sum to
their counts. Then what must not hurt: the receiver down, slow, or answering
500/429 under load (no request fails, drops are counted, export resumes), and
spans flushed on SIGTERM of decision-fcgi and on a graceful restart of httpd.
"""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import endpoints
from harness import (DECISION_FCGI, SAMPLE_BUCKETING, Httpd, RedisServer, http_request,
                     make_world_readable_dir, wait_until)
from otlp_receiver import OtlpReceiver, attrs
from test_fcgi import (BASE_ENV, Responder, check_config, start_nginx,  # noqa: F401 (fixture)
                       workdir)

ENV_ID = endpoints.ENV_ID
POST = '{"visitor_id":"v%d","context":{"isVIP":true},"trigger_hit":false}'
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def receiver():
    r = OtlpReceiver().start()
    yield r
    r.stop()


def otel_env(receiver, **extra):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
           "OTEL_SERVICE_NAME": "decision-test",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,team=growth%20lab",
           "OTEL_BSP_SCHEDULE_DELAY": "200",
           "OTEL_METRIC_EXPORT_INTERVAL": "500"}
    env.update(extra)
    return env


def hexid(b):
    return b.hex()


def server_spans(spans):
    return [s for s in spans if s[2].kind == 2]


def check_server_span(res, scope, span, method, route, status, path=None):
    """The fields every server span has, whatever the front end."""
    assert res["service.name"] == "decision-test"
    assert res["deployment.environment"] == "ci"
    assert res["team"] == "growth lab"          # percent-decoded
    assert res["telemetry.sdk.language"] == "c"
    assert scope.name == "mod_decision"
    a = attrs(span.attributes)
    assert span.name == "%s %s" % (method, route)
    assert a["http.request.method"] == method
    assert a["http.route"] == route
    assert a["url.path"] == (path or route)
    assert a["http.response.status_code"] == status
    assert a["server.address"]
    assert a["decision.env_id"] == ENV_ID
    assert len(span.trace_id) == 16 and any(span.trace_id)
    assert len(span.span_id) == 8 and any(span.span_id)
    assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano
    assert abs(span.start_time_unix_nano / 1e9 - time.time()) < 300
    assert span.flags & 0x1 and span.flags & 0x100
    return a


def exercise(base_url, headers=None):
    """One request per decision route, the first with a W3C parent; their answers."""
    tp = {"traceparent": "00-%s-%s-01" % (TRACE_ID, PARENT_ID), "tracestate": "vendor=abc,x=1"}
    out = []
    out.append(http_request(base_url, "/v2/campaigns", POST % 1, headers=dict(tp, **(headers or {}))))
    out.append(http_request(base_url, "/v2/flags", POST % 2, headers=headers))
    out.append(http_request(base_url, "/v2/campaigns/c1", POST % 3, headers=headers))
    out.append(http_request(base_url, "/v2/activate",
                            '{"cid":"%s","vid":"v4","caid":"x","vaid":"y"}' % ENV_ID,
                            headers=headers))
    # probes are not traced; a request refused by the sampler's parent flag is not either
    http_request(base_url, "/v2/health", method="GET")
    http_request(base_url, "/v2/flags", POST % 5,
                 headers={"traceparent": "00-%s-%s-00" % ("ab" * 16, "cd" * 8)})
    return out


def check_exercise(receiver):
    spans = receiver.wait_spans(lambda s: len(server_spans(s)) >= 4)
    time.sleep(0.5)  # anything that should not be there has had time to arrive
    spans = server_spans(receiver.spans())
    assert len(spans) == 4, [s[2].name for s in spans]
    by_route = {attrs(s[2].attributes)["http.route"]: s for s in spans}
    res, scope, span = by_route["/v2/campaigns"]
    a = check_server_span(res, scope, span, "POST", "/v2/campaigns", 200)
    assert hexid(span.trace_id) == TRACE_ID         # the caller's trace continued
    assert hexid(span.parent_span_id) == PARENT_ID  # as a child of its span
    assert span.trace_state == "vendor=abc,x=1"
    assert span.flags & 0x200                       # the parent is remote
    assert a["decision.campaigns"] >= 1
    assert a["decision.store"] == "none" and a["decision.store.result"] == "skipped"
    for route in ("/v2/flags", "/v2/activate"):
        res, scope, span = by_route[route]
        check_server_span(res, scope, span, "POST", route, 200 if route == "/v2/flags" else 204)
        assert hexid(span.trace_id) != TRACE_ID and not span.parent_span_id  # a new trace
    res, scope, span = by_route["/v2/campaigns/{id}"]
    check_server_span(res, scope, span, "POST", "/v2/campaigns/{id}", 
                      attrs(span.attributes)["http.response.status_code"], path="/v2/campaigns/c1")
    assert not receiver.errors, receiver.errors


def check_metrics(receiver, requests_at_least):
    wait_until(lambda: "decision.requests" in receiver.metrics(), timeout=20, what="metrics")
    wait_until(lambda: sum(p.as_int for p in receiver.metrics()["decision.requests"][1].sum.data_points)
               >= requests_at_least, timeout=20, what="metrics with the requests")
    m = receiver.metrics()
    res, req = m["decision.requests"]
    assert res["service.name"] == "decision-test" and res["deployment.environment"] == "ci"
    assert req.sum.aggregation_temporality == 2 and req.sum.is_monotonic  # cumulative
    two = [p for p in req.sum.data_points
           if attrs(p.attributes) == {"endpoint": "campaigns", "status": "2xx"}]
    assert two and two[0].as_int >= 1
    _, dur = m["decision.request.duration"]
    assert dur.unit == "s" and dur.histogram.aggregation_temporality == 2
    for p in dur.histogram.data_points:
        assert len(p.bucket_counts) == len(p.explicit_bounds) + 1
        assert sum(p.bucket_counts) == p.count
        assert list(p.explicit_bounds) == sorted(p.explicit_bounds)
        assert p.start_time_unix_nano <= p.time_unix_nano
    camp = [p for p in dur.histogram.data_points if attrs(p.attributes)["endpoint"] == "campaigns"]
    assert camp[0].count >= 1 and camp[0].sum > 0
    assert m["decision.config.loaded"][1].gauge.data_points[0].as_int == 1
    _, ring_full = m["decision.spool.ring_full"]
    assert ring_full.sum.is_monotonic and [p.as_int for p in ring_full.sum.data_points] == [0]
    assert "decision.otel.spans" in m


# ---- decision-fcgi behind nginx ------------------------------------------------

def test_fcgi_behind_nginx_traces_and_metrics(workdir, receiver):
    responder = Responder(workdir, env=otel_env(receiver, OTEL_EXPORTER_OTLP_COMPRESSION="gzip"))
    proc, port = start_nginx(workdir, responder)
    try:
        answers = exercise("http://127.0.0.1:%d" % port)
        assert [a[0] for a in answers][:2] == [200, 200]
        check_exercise(receiver)
        # gzip was asked for: every request came compressed
        assert all(raw[:2] == b"\x1f\x8b" for _, _, raw, _ in receiver.requests)
        check_metrics(receiver, 4)
        _, _, body = http_request("http://127.0.0.1:%d" % port, "/v2/metrics", method="GET")
        fig = json.loads(body)["otel"]
        assert fig["enabled"] and fig["spans_exported"] >= 4 and fig["spans_dropped"] == 0
    finally:
        proc.stop()
        assert responder.stop() == 0, responder.output()


@pytest.mark.parametrize("env,needle", [
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER: \"sometimes\" is not supported"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
     "OTEL_TRACES_SAMPLER_ARG: \"2\" is not a ratio"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: "),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\""),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT: \"10s\""),
    ({"OTEL_RESOURCE_ATTRIBUTES": "a=1,b"}, "OTEL_RESOURCE_ATTRIBUTES: "),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "-5"}, "OTEL_METRIC_EXPORT_INTERVAL: "),
])
def test_fcgi_bad_values_fail_naming_the_setting(env, needle):
    rc, err = check_config(dict(BASE_ENV, **env))
    assert rc != 0 and needle in err, err


def test_fcgi_otel_from_yaml(workdir, receiver):
    path = os.path.join(workdir, "decision.yaml")
    with open(path, "w") as f:
        f.write("otel:\n  exporter_otlp_endpoint: %s\n  service_name: decision-test\n"
                "  resource_attributes: deployment.environment=ci,team=growth%%20lab\n"
                "  bsp_schedule_delay: 100\n  metrics_exporter: none\n" % receiver.url)
    responder = Responder(workdir, args=["--config", path])
    try:
        assert responder.call("POST", "/v2/flags", POST % 1, headers={"Host": "decide.example"})[0] == 200
        spans = receiver.wait_spans(lambda s: len(s) >= 1)
        check_server_span(*spans[0], "POST", "/v2/flags", 200)
        assert receiver.messages("/v1/metrics") == []  # OTEL_METRICS_EXPORTER=none
    finally:
        assert responder.stop() == 0, responder.output()


def test_fcgi_dbm_store_child_spans(workdir, receiver):
    responder = Responder(workdir, env=otel_env(receiver, STORE="dbm:%s/assignments" % workdir,
                                                OTEL_METRICS_EXPORTER="none"))
    try:
        for _ in range(2):
            assert responder.call("POST", "/v2/campaigns", POST % 9, headers={"Host": "h"})[0] == 200
        spans = receiver.wait_spans(lambda s: len(server_spans(s)) >= 2 and
                                    len([x for x in s if x[2].kind == 1]) >= 3)
        servers = sorted((x[2] for x in server_spans(spans)), key=lambda x: x.start_time_unix_nano)
        assert [attrs(x.attributes)["decision.store.result"] for x in servers] == ["miss", "hit"]
        assert all(attrs(x.attributes)["decision.store"] == "dbm" for x in servers)
        ids = {x.span_id for x in servers}
        for _, _, c in spans:
            if c.kind != 1:
                continue
            a = attrs(c.attributes)
            assert c.name in ("load dbm", "save dbm") and a["db.system.name"] == "dbm"
            assert c.parent_span_id in ids  # a local file: INTERNAL, child of its request
    finally:
        assert responder.stop() == 0, responder.output()


def test_fcgi_reload_keeps_exporting(workdir, receiver):
    # SIGHUP replaces the settings (and their pool) the tracer was made from
    responder = Responder(workdir, env=otel_env(receiver, OTEL_METRIC_EXPORT_INTERVAL="200"))
    try:
        for _ in range(3):
            responder.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        assert responder.call("POST", "/v2/flags", POST % 1, headers={"Host": "h"})[0] == 200
        spans = receiver.wait_spans(lambda s: len(s) >= 1)
        check_server_span(*spans[0], "POST", "/v2/flags", 200)
        n = len(receiver.messages("/v1/metrics"))
        wait_until(lambda: len(receiver.messages("/v1/metrics")) > n + 2, timeout=20,
                   what="metrics after the reloads")
        res = receiver.metrics()["decision.requests"][0]
        assert res["service.name"] == "decision-test" and res["decision.env_id"] == ENV_ID
    finally:
        assert responder.stop() == 0, responder.output()


# ---- httpd ---------------------------------------------------------------------

@pytest.fixture
def rundir():
    import shutil
    d = make_world_readable_dir("dc-otel-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def otel_httpd(rundir, receiver, mpm="event", directives="", env=None, store=None):
    """httpd with the module, OTel set by directives, resource attributes from the environment."""
    body = ("DecisionEnvironment %s\nDecisionBucketingFile %s\n" % (ENV_ID, SAMPLE_BUCKETING) +
            ("DecisionStore %s\n" % store if store else "") +
            "DecisionOTelEndpoint %s\nDecisionOTelServiceName decision-test\n"
            "DecisionOTelScheduleDelay 200\nDecisionOTelMetricInterval 500\n" % receiver.url +
            directives +
            "<Location /v2>\n  SetHandler decision\n</Location>\n"
            "<Location /metrics>\n  SetHandler decision\n</Location>\n")
    h = Httpd(rundir, body, mpm=mpm)
    # not given by a directive: read from httpd's environment, as an SDK would
    h.env["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=ci,team=growth%20lab"
    h.env.update(env or {})
    return h


def stop_httpd(h):
    h.stop()
    assert h.sanitizer_reports() == ""
    assert "exit signal" not in h.log(), h.log()[-3000:] + h.crash_backtraces()


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_httpd_traces_and_metrics(rundir, receiver, mpm):
    h = otel_httpd(rundir, receiver, mpm=mpm).start()
    try:
        exercise(h.base_url)
        check_exercise(receiver)
        span = [s for _, _, s in server_spans(receiver.spans())][0]
        a = attrs(span.attributes)
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == h.port
        check_metrics(receiver, 4)
        _, _, body = http_request(h.base_url, "/v2/metrics", method="GET")
        fig = json.loads(body)["otel"]
        assert fig["enabled"] and fig["spans_exported"] >= 4 and fig["spans_dropped"] == 0
        _, _, prom = http_request(h.base_url, "/metrics", method="GET")
        assert b'decision_otel_spans_total{result="exported"}' in prom
        # OFREP evaluations are decision requests too
        status = http_request(h.base_url, "/v2/ofrep/v1/evaluate/flags/btnColor",
                              '{"context":{"targetingKey":"v1","isVIP":true}}')[0]
        spans = receiver.wait_spans(lambda s: any(
            attrs(x[2].attributes).get("http.route") == "/ofrep/v1/evaluate/flags/{key}"
            for x in s))
        span = [x[2] for x in spans if attrs(x[2].attributes).get("http.route") ==
                "/ofrep/v1/evaluate/flags/{key}"][0]
        a = attrs(span.attributes)
        assert span.name == "POST /ofrep/v1/evaluate/flags/{key}"
        assert a["url.path"] == "/v2/ofrep/v1/evaluate/flags/btnColor"
        assert a["http.response.status_code"] == status and a["decision.campaigns"] >= 0
        # the exposition with the exporter's families is still one promtool accepts
        p = subprocess.run(["promtool", "check", "metrics"], input=prom, capture_output=True,
                           timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        stop_httpd(h)


def test_httpd_redis_store_child_spans(rundir, receiver):
    redis = RedisServer(rundir).start()
    h = otel_httpd(rundir, receiver, store=redis.uri).start()
    try:
        for i in range(2):  # the second request of a visitor finds what the first saved
            assert http_request(h.base_url, "/v2/campaigns", POST % 7)[0] == 200
        spans = receiver.wait_spans(lambda s: len(server_spans(s)) >= 2 and
                                    len([x for x in s if x[2].kind == 3]) >= 3)
        servers = sorted(server_spans(spans), key=lambda s: s[2].start_time_unix_nano)
        clients = [s for _, _, s in spans if s.kind == 3]
        first, second = servers[0][2], servers[1][2]
        assert attrs(first.attributes)["decision.store"] == "redis"
        assert attrs(first.attributes)["decision.store.result"] == "miss"
        assert attrs(second.attributes)["decision.store.result"] == "hit"
        for c in clients:
            a = attrs(c.attributes)
            assert a["db.system.name"] == "redis" and a["db.operation.name"] in ("load", "save")
            parent = first if c.parent_span_id == first.span_id else second
            assert c.trace_id == parent.trace_id and c.parent_span_id == parent.span_id
            assert parent.start_time_unix_nano <= c.start_time_unix_nano
            assert c.end_time_unix_nano <= parent.end_time_unix_nano
            assert c.name == "%s redis" % a["db.operation.name"]
        # the redis store is down: the server span says degraded, the child span is an error
        redis.stop()
        assert http_request(h.base_url, "/v2/campaigns", POST % 8)[0] == 200
        spans = receiver.wait_spans(lambda s: any(
            attrs(x[2].attributes).get("decision.store.result") == "degraded"
            and x[2].kind == 2 for x in s))
        assert any(x[2].kind == 3 and x[2].status.code == 2 for x in spans)
    finally:
        stop_httpd(h)
        redis.stop()


@pytest.mark.parametrize("directive,value,needle", [
    ("DecisionOTelSampler", "sometimes", "DecisionOTelSampler (OTEL_TRACES_SAMPLER)"),
    ("DecisionOTelSamplerArg", "1.5", "DecisionOTelSamplerArg (OTEL_TRACES_SAMPLER_ARG)"),
    ("DecisionOTelEndpoint", "ftp://x", "DecisionOTelEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT)"),
    ("DecisionOTelCompression", "brotli", "DecisionOTelCompression"),
    ("DecisionOTelHeaders", "novalue", "DecisionOTelHeaders"),
])
def test_httpd_bad_values_fail_configtest(rundir, receiver, directive, value, needle):
    h = otel_httpd(rundir, receiver, directives="%s %s\nDecisionOTelSampler traceidratio\n"
                   % (directive, value) if directive == "DecisionOTelSamplerArg"
                   else "%s %s\n" % (directive, value))
    rc, out = h.configtest()
    assert rc != 0 and needle in out, out


def test_httpd_bad_environment_value_fails_configtest(rundir, receiver):
    h = otel_httpd(rundir, receiver, env={"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"})
    rc, out = h.configtest()
    assert rc != 0 and "OTEL_EXPORTER_OTLP_TIMEOUT" in out and "environment" in out, out


# ---- the collector down, slow, refusing: requests never notice ---------------------

def load(base_url, n, threads=8):
    """n decision requests from a few threads; (statuses, latencies in seconds)."""
    import http.client
    statuses, latencies, lock = [], [], threading.Lock()

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", int(base_url.rsplit(":", 1)[1]), timeout=10)
        for i in range(k, n, threads):
            t = time.monotonic()
            status = http_request(base_url, "/v2/campaigns", POST % i, conn=conn)[0]
            with lock:
                statuses.append(status)
                latencies.append(time.monotonic() - t)
        conn.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    return statuses, sorted(latencies)


def otel_figures(base_url):
    return json.loads(http_request(base_url, "/v2/metrics", method="GET")[2])["otel"]


def check_outage(base_url, receiver):
    """Down, then slow, then 500 and 429, under load: every request answered at once;
    spans dropped and failures counted; export resumes when the receiver is back."""
    port = receiver.port
    receiver.stop()                                        # down: connection refused
    statuses, lat = load(base_url, 400)
    assert statuses == [200] * 400
    wait_until(lambda: otel_figures(base_url)["spans_dropped"] > 0, timeout=20,
               what="spans dropped while the collector is down")
    assert otel_figures(base_url)["span_export_failures"] > 0

    receiver.start()                                      # back on the same port, but slow
    assert receiver.port == port
    receiver.delay = 2.0
    statuses, lat = load(base_url, 200)
    assert statuses == [200] * 200
    # nobody waited for the collector (each export takes 2 s and times out)
    assert lat[int(len(lat) * 0.99)] < 1.0, lat[-5:]

    for code in (500, 429):
        receiver.delay = 0
        receiver.status = code
        failures = otel_figures(base_url)["span_export_failures"]
        statuses, lat = load(base_url, 200)
        assert statuses == [200] * 200
        wait_until(lambda: receiver.answered.get(code, 0) > 0, timeout=20, what="a %d" % code)
        wait_until(lambda: otel_figures(base_url)["span_export_failures"] > failures, timeout=20,
                   what="failures counted")

    receiver.status = 200                                  # healthy again: export resumes
    # (the queue may still be full of spans being retried: a new one is dropped until
    # it drains, so a traced request is sent every half second until one arrives)
    exported = otel_figures(base_url)["spans_exported"]
    deadline = time.time() + 40
    seen = False
    while not seen and time.time() < deadline:
        tid = os.urandom(16).hex()
        assert http_request(base_url, "/v2/campaigns", POST % 1,
                            headers={"traceparent": "00-%s-%s-01" % (tid, "34" * 8)})[0] == 200
        time.sleep(0.5)
        seen = any(x[2].trace_id.hex() == tid for x in receiver.spans())
    assert seen, "export never resumed: %s" % otel_figures(base_url)
    assert otel_figures(base_url)["spans_exported"] > exported
    assert not receiver.errors, receiver.errors


OUTAGE_ENV = {"OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32",
              "OTEL_EXPORTER_OTLP_TIMEOUT": "500", "OTEL_BSP_SCHEDULE_DELAY": "100",
              "OTEL_METRICS_EXPORTER": "none"}


def test_fcgi_collector_outage_costs_requests_nothing(workdir, receiver):
    responder = Responder(workdir, env=otel_env(receiver, **OUTAGE_ENV))
    proc, port = start_nginx(workdir, responder)
    try:
        check_outage("http://127.0.0.1:%d" % port, receiver)
    finally:
        proc.stop()
        assert responder.stop() == 0, responder.output()


def test_httpd_collector_outage_costs_requests_nothing(rundir, receiver):
    h = otel_httpd(rundir, receiver, env=OUTAGE_ENV).start()
    try:
        check_outage(h.base_url, receiver)
    finally:
        stop_httpd(h)


# ---- spans that ended leave a process that exits ------------------------------------

def test_fcgi_sigterm_exports_spans_before_exit(workdir, receiver):
    # the exporter would wait 10 minutes: only the flush at exit sends them
    responder = Responder(workdir, env=otel_env(receiver, OTEL_BSP_SCHEDULE_DELAY="600000",
                                                OTEL_METRICS_EXPORTER="none"))
    proc, port = start_nginx(workdir, responder)
    try:
        statuses, _ = load("http://127.0.0.1:%d" % port, 50, threads=4)
        assert statuses == [200] * 50
        time.sleep(0.3)
        assert receiver.spans() == []
    finally:
        proc.stop()
        assert responder.stop() == 0, responder.output()
    assert len(server_spans(receiver.spans())) == 50


def test_httpd_stop_exports_spans(rundir, receiver):
    h = otel_httpd(rundir, receiver, directives="DecisionOTelMetricsExporter none\n",
                   env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    h.write_config(h.body.replace("DecisionOTelScheduleDelay 200\n", ""))
    h.start()
    try:
        statuses, _ = load(h.base_url, 30, threads=3)
        assert statuses == [200] * 30
    finally:
        stop_httpd(h)  # SIGTERM to the parent: the children exit and flush
    assert len(server_spans(receiver.spans())) == 30


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_httpd_graceful_restart_exports_spans_of_old_children(rundir, receiver, mpm):
    h = otel_httpd(rundir, receiver, mpm=mpm, directives="DecisionOTelMetricsExporter none\n",
                   env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    h.write_config(h.body.replace("DecisionOTelScheduleDelay 200\n", ""))
    h.start()
    try:
        statuses, _ = load(h.base_url, 40, threads=4)
        assert statuses == [200] * 40
        time.sleep(0.3)
        assert receiver.spans() == []
        h.graceful()
        receiver.wait_spans(lambda s: len(server_spans(s)) >= 40, timeout=30)
        assert len(server_spans(receiver.spans())) == 40
    finally:
        stop_httpd(h)

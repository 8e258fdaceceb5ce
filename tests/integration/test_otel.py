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
import threading
import time

import pytest

import endpoints
from harness import (DECISION_FCGI, SAMPLE_BUCKETING, Httpd, RedisServer, http_request,
                     make_world_readable_dir, wait_until)
from otlp_receiver import OtlpReceiver, attrs
from test_fcgi import Responder, clean_env, start_nginx, workdir  # noqa: F401 (fixture)

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

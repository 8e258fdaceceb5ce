"""Metrics, readiness and the status page, through decision-fcgi eval (which
serves every line through dc_api with a metrics region of one slot, then
one GET of --report), checked with promtool, a strict parser of our own,
and a real headless Chromium for the status page.

The front ends (httpd module, FastCGI responder) wire the same common/ code;
their suites check it over HTTP.
"""
import json
import shutil
import subprocess

import pytest

import prom_parse
from harness import (DECISION_FCGI, SAMPLE_BUCKETING, check_status_page_in_chromium,
                     chromium_binary)

CAMPAIGN_IDS = ("c_ab", "c_vip", "c_geo")


def eval_report(lines, report, extra=(), store="memory"):
    """Runs eval over lines, then GETs report; returns (per-line bodies, report body, stderr)."""
    args = [DECISION_FCGI, "eval", "--bucketing", SAMPLE_BUCKETING, "--store", store,
            "--report", report] + list(extra)
    p = subprocess.run(args, input="".join(l + "\n" for l in lines), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("\n", len(lines))
    return out[:len(lines)], out[len(lines)] if len(out) > len(lines) else "", p.stderr


def visitor_lines(n, vip_every=3):
    return [json.dumps({"visitor_id": "visitor-%d" % i, "context": {"isVIP": i % vip_every == 0},
                        "trigger_hit": False}) for i in range(n)]


def test_flagship_metrics_count_every_request():
    lines = visitor_lines(40) + ["not json"] * 3 + ['{"visitor_id":"visitor-1","bogus":1}']
    bodies, report, _ = eval_report(lines, "/v2/metrics")
    assert all(b.startswith("{") for b in bodies)
    # expvar's layout: one key per line, sorted
    assert report.startswith("{\n") and report.endswith("\n}\n")
    keys = [l.split('": ', 1)[0][1:] for l in report.strip("{}\n").split(",\n")]
    assert keys == sorted(keys)
    m = json.loads(report)
    assert m["cmdline"][0] == "eval"
    assert m["handlers.campaigns.requests.2xx"] == 40
    assert m["handlers.campaigns.requests.4xx"] == 4
    assert m["handlers.campaigns.requests.total"] == 44
    assert m["handlers.campaigns.errors"] == 0
    for name in ("activate", "campaign", "campaigns", "flags", "metrics"):
        for q in ("p50", "p90", "p95", "p99"):
            assert isinstance(m["handlers.%s.response_time.%s" % (name, q)], (int, float))
    assert 0 < m["handlers.campaigns.response_time.p50"] <= m["handlers.campaigns.response_time.p99"]
    assert m["handlers.flags.response_time.p50"] == 0  # never called
    assert m["visitors"]["distinct_30m"] == 40
    assert m["config"]["loaded"] is True and m["config"]["campaigns"] == 5
    assert m["store"]["backend"] == "memory" and m["store"]["state"] == "ok"
    assert m["store"]["operations"]["memory.load"]["count"] >= 40


def test_metrics_route_counts_other_methods_and_endpoints():
    # the flags endpoint with GET: a 405 counted under flags
    _, report, _ = eval_report(['{"visitor_id":"a"}'] * 5, "/v2/metrics",
                               extra=["--path", "/v2/flags", "--method", "GET"])
    m = json.loads(report)
    assert m["handlers.flags.requests.4xx"] == 5
    assert m["handlers.flags.requests.2xx"] == 0


def test_prometheus_output_parses_strictly():
    lines = visitor_lines(25)
    _, report, _ = eval_report(lines, "/metrics")
    fams = prom_parse.parse(report)
    assert prom_parse.value(fams, "decision_requests_total", endpoint="campaigns", status="2xx") == 25
    assert prom_parse.value(fams, "decision_request_duration_seconds",
                            "decision_request_duration_seconds_count", endpoint="campaigns") == 25
    assert prom_parse.value(fams, "decision_request_duration_seconds",
                            "decision_request_duration_seconds_bucket", endpoint="campaigns",
                            le="+Inf") == 25
    assert prom_parse.value(fams, "decision_config_loaded") == 1
    assert prom_parse.value(fams, "decision_store_up", backend="memory") == 1
    assert prom_parse.value(fams, "decision_visitors") == 25
    assert fams["decision_request_duration_seconds"]["type"] == "histogram"
    # the smallest bucket is 10 microseconds, the largest 10 seconds
    les = [s[1]["le"] for s in fams["decision_request_duration_seconds"]["samples"]
           if s[0].endswith("_bucket") and s[1]["endpoint"] == "campaigns"]
    assert les[0] == "0.00001" and les[-2] == "10" and les[-1] == "+Inf"


def test_the_strict_parser_refuses_what_it_should():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\n"
    prom_parse.parse(good)
    for bad in (good.replace("# HELP a_total x\n", ""),                 # no HELP
                good + "a_total{k=\"v\"} 2\n",                           # same series twice
                good.replace('"v"', '"a\\qb"'),                          # bad escape
                good.replace(" 1\n", " one\n"),                          # bad value
                good[:-1],                                              # no final newline
                good + "# HELP b x\n# TYPE b gauge\nb 1\na_total{k=\"w\"} 1\n",  # not contiguous
                "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                "h_sum 1\nh_count 1\n"):                                # decreasing buckets
        with pytest.raises(prom_parse.PromParseError):
            prom_parse.parse(bad)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
def test_promtool_accepts_the_exposition():
    _, report, _ = eval_report(visitor_lines(10), "/metrics")
    p = subprocess.run(["promtool", "check", "metrics"], input=report, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "" and p.stderr.strip() == "", p.stdout + p.stderr


def test_ready_and_health_and_nsessions():
    _, report, _ = eval_report([], "/v2/ready")
    r = json.loads(report)
    assert r["status"] == "ready" and r["config"]["generation"] == 1
    _, report, _ = eval_report([], "/v2/health")
    assert json.loads(report)["status"] == "ok"
    _, report, _ = eval_report(visitor_lines(30) * 2, "/iserver/nsessions")
    n = json.loads(report)
    assert n["nsessions"] == 30 and n["window_seconds"] == 1800


def test_status_page_renders_in_chromium(tmp_path):
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (Debian package chromium)")
    _, html, _ = eval_report(visitor_lines(120), "/decision-status")
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    page = tmp_path / "status.html"
    page.write_text(html)
    dom = check_status_page_in_chromium(page.as_uri(), tmp_path, CAMPAIGN_IDS)
    assert "Campaigns (5)" in dom

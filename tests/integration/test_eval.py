"""decision-fcgi eval: the command-line evaluator (scripting, support, tests)."""
import json
import os
import subprocess

import pytest

from harness import DECISION_FCGI, FIXTURES, SAMPLE_BUCKETING, run_eval


def test_reference_examples_on_sample_file():
    with open(os.path.join(FIXTURES, "reference-examples.json")) as f:
        examples = [e for e in json.load(f) if e["path"] == "/v2/campaigns"]
    assert len(examples) >= 3
    for ex in examples:
        mode = dict(p.split("=") for p in ex["query"].split("&") if p).get("mode", "normal")
        rc, out, err = run_eval([ex["body"]], mode=mode)
        assert rc == 0, err
        assert json.loads(out[0]) == ex["expected"]


def test_one_line_per_request_and_errors_stay_on_their_line():
    lines = ['{"visitor_id":"v1","trigger_hit":false}', "not json", '{"visitor_id":5}',
             '{"visitor_id":"a","bogus":1}', "", '{"visitor_id":"v2","context":{"isVIP":true}}']
    rc, out, err = run_eval(lines)
    assert rc == 0, err
    assert len(out) == len(lines)
    docs = [json.loads(l) for l in out]
    assert docs[0]["visitorId"] == "v1"
    for d in docs[1:5]:
        assert "message" in d
    assert "unknown field" in docs[3]["message"]
    assert any(c["id"] == "c_vip" for c in docs[5]["campaigns"])


@pytest.mark.parametrize("mode,keys", [("simple", {"campaignsVariation", "mergedModifications"}),
                                       ("normal", {"visitorId", "campaigns"}),
                                       ("full", {"visitorId", "campaigns", "campaignsVariation",
                                                 "mergedModifications"})])
def test_modes(mode, keys):
    rc, out, _ = run_eval(['{"visitor_id":"bob","context":{"isVIP":true}}'], mode=mode)
    assert rc == 0
    assert set(json.loads(out[0])) == keys


def test_memory_store_keeps_assignments_across_lines(tmp_path):
    # 1V1T on: once activated, the visitor keeps the AB test it saw
    with open(os.path.join(FIXTURES, "vectors.json")) as f:
        env2 = json.load(f)["http_fixture_envs"]["env2.json"]
    path = tmp_path / "env2.json"
    path.write_text(json.dumps(env2))
    body = '{"visitor_id":"p5","context":{},"trigger_hit":true}'
    rc, out, err = run_eval([body, body], bucketing=str(path), mode="simple", store="memory")
    assert rc == 0, err
    first, second = (json.loads(l) for l in out)
    assert first == second
    ab = [c for c in first["campaignsVariation"] if c["campaignId"] in ("c_nulls", "c_untracked")]
    assert len(ab) == 1


def test_oversized_line_is_413_and_next_line_still_served():
    big = '{"visitor_id":"' + "x" * (2 * 1024 * 1024) + '"}'
    rc, out, _ = run_eval([big, '{"visitor_id":"v1"}'])
    assert rc == 0
    assert "too large" in json.loads(out[0])["message"]
    assert json.loads(out[1])["visitorId"] == "v1"


def test_bad_bucketing_file_exits_1_with_the_json_path(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"campaigns":[{"id":"c","bucketRanges":[{"r":[1]}]}]}')
    rc, out, err = run_eval(['{}'], bucketing=str(bad))
    assert rc == 1
    assert out == []
    assert "campaigns[0].bucketRanges[0].r" in err
    rc, _, err = run_eval(['{}'], bucketing=str(tmp_path / "missing.json"))
    assert rc == 1 and "cannot open" in err


def test_usage_errors_exit_2():
    for args in (["eval"], ["eval", "--bucketing", SAMPLE_BUCKETING, "--mode", "weird"],
                 ["eval", "--bucketing", SAMPLE_BUCKETING, "stray"]):
        p = subprocess.run([DECISION_FCGI] + args, input="", capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, args
        assert "usage" in p.stderr or "unknown" in p.stderr


def test_bad_store_uri_exits_1():
    rc, _, err = run_eval(['{}'], store="carrier-pigeon://x")
    assert rc == 1 and "unknown store" in err

"""Differential test: `decision-fcgi eval` against the official Flagship JS SDK 5.2.0
in BUCKETING mode, on generated bucketing files and visitors.

Run:  /usr/bin/python3 -m pytest tests/diff -q
Env:  DECISION_FCGI=/path/to/decision-fcgi   (default: <repo>/fcgi/decision-fcgi)

For every visitor the ordered list of (campaignId, variationGroupId, variationId) must be
the same on both sides.  See doc/tests.md for what is compared and why the generator
(gen_bucketing.py) stays away from the known SDK/server differences.
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # tests/gen_bucketing.py, shared with bench/
import gen_bucketing  # noqa: E402

# (seed, number of campaigns or None for the generator's 10-20).  The last cases have few
# campaigns so that many visitors get an empty answer, which must agree as well.
CASES = [(101, None), (202, None), (303, None), (404, None), (505, 2), (606, 2)]
N_VISITORS = 1500
DEFAULT_BINARY = REPO / "fcgi" / "decision-fcgi"
SDK_MARKER = HERE / "node_modules" / "@flagship.io" / "js-sdk" / "package.json"


def _ensure_sdk():
    """npm ci in tests/diff when node_modules is missing (skip only when npm is absent)."""
    npm = shutil.which("npm")
    node = shutil.which("node")
    if not SDK_MARKER.exists():
        if npm is None:
            pytest.skip("npm not found on PATH: cannot install @flagship.io/js-sdk 5.2.0 for the "
                        "differential test (install nodejs + npm, then re-run)")
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert proc.returncode == 0, "npm ci failed in %s:\n%s" % (HERE, proc.stdout[-4000:])
    assert node is not None, "node not found on PATH (npm is there but node is not)"
    version = json.loads(SDK_MARKER.read_text())["version"]
    assert version == "5.2.0", "tests/diff/node_modules holds js-sdk %s, expected 5.2.0: run npm ci" % version
    return node


def _decision_tuples_sdk(rec):
    return [(c["campaignId"], c["variationGroupId"], c["variationId"]) for c in rec["campaigns"]]


def _decision_tuples_ours(resp):
    return [(c["id"], c["variationGroupId"], (c.get("variation") or {}).get("id")) for c in resp.get("campaigns") or []]


@pytest.fixture(scope="module")
def sdk_cases(tmp_path_factory):
    """Generate every case and decide it with the JS SDK (once per module)."""
    node = _ensure_sdk()
    root = tmp_path_factory.mktemp("diff_jssdk")
    cases = []
    for seed, n_campaigns in CASES:
        d = root / ("seed%d" % seed)
        bucketing, visitors = gen_bucketing.write_case(str(d), seed, N_VISITORS, n_campaigns)
        t0 = time.monotonic()
        proc = subprocess.run([node, str(HERE / "sdk_decide.mjs"), bucketing, visitors],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 0, "sdk_decide.mjs failed (seed %d):\n%s" % (seed, proc.stderr[-4000:])
        stats = None
        for line in proc.stderr.splitlines():
            if line.startswith('{"sdk_decide_stats"'):
                stats = json.loads(line)["sdk_decide_stats"]
        requests = Path(visitors).read_text().splitlines()
        decisions = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
        assert len(decisions) == len(requests), "seed %d: SDK answered %d of %d visitors" % (
            seed, len(decisions), len(requests))
        cases.append({"seed": seed, "n_campaigns": n_campaigns, "bucketing": bucketing, "visitors": visitors,
                      "requests": requests, "sdk": decisions, "stats": stats, "sdk_seconds": elapsed})
    return cases


def _repro(case):
    extra = " --campaigns %d" % case["n_campaigns"] if case["n_campaigns"] else ""
    return ("python3 tests/gen_bucketing.py --seed %d --visitors %d%s --out-dir /tmp/case%d"
            % (case["seed"], N_VISITORS, extra, case["seed"]))


def test_sdk_side_is_sound_and_not_vacuous(sdk_cases):
    """The SDK decided every visitor without error, made no network traffic, and the data
    exercises the engine: most visitors get campaigns, some get none, many variations are hit."""
    total = with_campaign = 0
    variations = collections.Counter()
    campaigns_per_visitor = collections.Counter()
    for case in sdk_cases:
        errors = [r for r in case["sdk"] if r.get("error")]
        assert not errors, "seed %d: the SDK could not decide %d visitors (generator constraint broken?), " \
            "first: %s\nrepro: %s" % (case["seed"], len(errors), errors[0], _repro(case))
        st = case["stats"]
        assert st is not None, "sdk_decide.mjs printed no stats line"
        # The SDK always tries to GET the CDN bucketing file at start, even with initialBucketing:
        # seeing it refused proves the network guard is in the path.
        assert st["blocked_network"] >= 1, "network guard saw no request: %s" % st
        assert all("cdn.flagship.io" in b for b in st["blocked_sample"]), \
            "unexpected outbound attempts (refused): %s" % st["blocked_sample"]
        for r in case["sdk"]:
            t = _decision_tuples_sdk(r)
            total += 1
            with_campaign += bool(t)
            campaigns_per_visitor[len(t)] += 1
            variations.update(t)
    assert total == len(CASES) * N_VISITORS
    assert with_campaign >= 0.5 * total, "only %d/%d visitors got a campaign" % (with_campaign, total)
    assert campaigns_per_visitor[0] >= 50, "too few visitors with no campaign: %s" % campaigns_per_visitor
    assert len(campaigns_per_visitor) >= 5, "campaign counts per visitor too uniform: %s" % campaigns_per_visitor
    assert len(variations) >= 60, "only %d distinct variations were hit" % len(variations)
    multi = [k for k, n in variations.items() if n >= 10]
    assert len(multi) >= 40, "only %d variations hit 10+ times" % len(multi)


def _binary():
    env = os.environ.get("DECISION_FCGI")
    if env:
        p = Path(env)
        assert p.is_file() and os.access(p, os.X_OK), "DECISION_FCGI=%s is not an executable file" % env
        return p
    if not (DEFAULT_BINARY.is_file() and os.access(DEFAULT_BINARY, os.X_OK)):
        pytest.skip("decision-fcgi not built (%s missing) and DECISION_FCGI not set: build it first, "
                    "or set DECISION_FCGI" % DEFAULT_BINARY)
    return DEFAULT_BINARY


def _describe_diff(want, got, got_vid, vid):
    """Per campaign: what the SDK decided vs what we decided (None = campaign not served)."""
    parts = []
    if got_vid != vid:
        parts.append("visitorId %r != %r" % (got_vid, vid))
    w = {c[0]: c[1:] for c in want}
    g = {c[0]: c[1:] for c in got}
    for cid in list(dict.fromkeys([c[0] for c in want] + [c[0] for c in got])):
        if w.get(cid) != g.get(cid):
            parts.append("campaign %s: sdk (vg, var)=%s ours=%s" % (cid, w.get(cid), g.get(cid)))
    if not parts and [c[0] for c in want] != [c[0] for c in got]:
        parts.append("campaign order differs")
    if len(want) != len(set(c[0] for c in want)) or len(got) != len(set(c[0] for c in got)):
        parts.append("a campaign id appears twice")
    return "; ".join(parts)


def test_decisions_match_js_sdk(sdk_cases):
    binary = _binary()
    report = []
    n_mismatch = n_total = 0
    for case in sdk_cases:
        proc = subprocess.run([str(binary), "eval", "--bucketing", case["bucketing"]],
                              input="\n".join(case["requests"]) + "\n",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert proc.returncode == 0, "seed %d: %s eval exited %d:\n%s\nrepro: %s" % (
            case["seed"], binary, proc.returncode, proc.stderr[-4000:], _repro(case))
        ours = [l for l in proc.stdout.splitlines() if l.strip()]
        assert len(ours) == len(case["requests"]), "seed %d: decision-fcgi answered %d lines for %d visitors" % (
            case["seed"], len(ours), len(case["requests"]))
        for req, sdk_rec, line in zip(case["requests"], case["sdk"], ours):
            n_total += 1
            resp = json.loads(line)
            vid = json.loads(req)["visitor_id"]
            want = _decision_tuples_sdk(sdk_rec)
            got = _decision_tuples_ours(resp)
            if resp.get("visitorId") != vid or got != want:
                n_mismatch += 1
                if len(report) < 10:
                    report.append(
                        "seed %d visitor %r\n  request: %s\n  differs: %s\n  JS SDK : %s\n  ours   : %s\n"
                        "  ours raw: %s\n  repro: %s"
                        % (case["seed"], vid, req, _describe_diff(want, got, resp.get("visitorId"), vid),
                           want, got, line[:1500], _repro(case)))
    assert n_mismatch == 0, "%d of %d visitors disagree with the JS SDK 5.2.0 (first %d shown):\n\n%s" % (
        n_mismatch, n_total, len(report), "\n\n".join(report))

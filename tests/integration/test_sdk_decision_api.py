"""The official Flagship JS SDK (@flagship.io/js-sdk 5.2.0) in DECISION_API mode against both
front ends: httpd with the module (prefork) and decision-fcgi behind nginx, each polling the
stand-in CDN, with a memory store, an event spool shipping to the stand-in collector, and
`DecisionRequireApiKey decisions` / `REQUIRE_API_KEY=decisions`.

The SDK is the copy tests/diff installs with `npm ci` (tests/diff/package-lock.json); the
driver is tests/diff/sdk_decision_api.mjs. The SDK is configured the way a site would:
`decisionMode: DECISION_API, decisionApiUrl: 'http://HOST/v2/'`. Its flags (value and every
metadata field) must equal what /v2/flags answers for the same body, for visitors who match a
targeting and who do not, one who authenticates and unauthenticates (XPC on), one without
consent, and every visitor once the file is in panic mode. No SDK log line at warning or
error level may appear.

Activations: the SDK posts them to Flagship's hosted https://decision.flagship.io/v2/activate
whatever decisionApiUrl says. The driver's fetch hook redirects that URL to the server under
test. THIS IS A HARNESS DEVICE, NOT A USER OPTION: a site's SDK sends its activations to
Flagship's cloud (see README "Flagship SDKs"). The hook lets the test check that the server
takes the SDK's activation format (batch, `aid: null`, `qt`) without the API key, and that
each one reaches the spool, /v2/metrics and the collector.
"""
import json
import os
import subprocess
import sys

import pytest

from harness import DECISION_FCGI, REPO, SAMPLE_BUCKETING, Httpd, run_eval, wait_until
# workdir and standin are test_ops' fixtures, used here too
from test_ops import ENV, FrontEnd, children_writable_dir, fcgi_env_clean, standin, workdir  # noqa: F401

DIFF = os.path.join(REPO, "tests", "diff")
sys.path.insert(0, DIFF)
from test_diff_jssdk import _ensure_sdk  # noqa: E402  (npm ci of the pinned SDK)

DRIVER = os.path.join(DIFF, "sdk_decision_api.mjs")
KEY = "sdk-test-key"

# What the SDK's visitors do (see the driver for the ops).
STEPS = [
    {"op": "new", "v": "vip", "visitorId": "vip-1",
     "context": {"isVIP": True, "age": 30, "country": "FR"}},
    {"op": "fetch", "v": "vip"},
    {"op": "expose", "v": "vip", "keys": ["vipFeature", "btnColor"]},
    {"op": "new", "v": "plain", "visitorId": "plain-7", "context": {"isVIP": False, "age": 12}},
    {"op": "fetch", "v": "plain"},
    {"op": "expose", "v": "plain", "keys": ["banner"]},
    {"op": "new", "v": "xpc", "visitorId": "anon-42", "context": {"email": "x@beta.example"}},
    {"op": "fetch", "v": "xpc"},
    {"op": "authenticate", "v": "xpc", "visitorId": "user-42"},
    {"op": "fetch", "v": "xpc"},
    {"op": "expose", "v": "xpc", "keys": ["btnColor"]},
    {"op": "unauthenticate", "v": "xpc"},
    {"op": "fetch", "v": "xpc"},
    {"op": "new", "v": "shy", "visitorId": "shy-3", "context": {"isVIP": True},
     "hasConsented": False},
    {"op": "fetch", "v": "shy"},
    {"op": "expose", "v": "shy", "keys": ["vipFeature"]},
]
PANIC_STEPS = [
    {"op": "new", "v": "vip", "visitorId": "vip-1", "context": {"isVIP": True}},
    {"op": "fetch", "v": "vip"},
    {"op": "new", "v": "late", "visitorId": "late-9", "context": {}},
    {"op": "fetch", "v": "late"},
]
# /v2/flags metadata name -> the SDK's FSFlagMetadata name
META = {"campaignId": "campaignId", "campaignName": "campaignName", "slug": "slug",
        "type": "campaignType", "variationGroupId": "variationGroupId",
        "variationGroupName": "variationGroupName", "variationId": "variationId",
        "variationName": "variationName", "reference": "isReference"}


def xpc_sample():
    with open(SAMPLE_BUCKETING) as f:
        doc = json.load(f)
    doc["accountSettings"] = dict(doc.get("accountSettings") or {}, enabledXPC=True)
    return doc


def run_driver(node, workdir, base_url, steps, name):
    scenario = {"envId": ENV, "apiKey": KEY, "decisionApiUrl": base_url + "/v2/",
                "activateUrl": base_url + "/v2/activate", "steps": steps}
    path = os.path.join(workdir, "%s.json" % name)
    with open(path, "w") as f:
        json.dump(scenario, f)
    p = subprocess.run([node, DRIVER, path], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout)


def sdk_view(reference):
    """/v2/flags' answer as the SDK's flags should read it (the panic body: no flag)."""
    if reference.get("panic") is True:
        return {}
    return {key: {"value": f["value"],
                  "metadata": {ours: f["metadata"].get(theirs) for theirs, ours in META.items()}}
            for key, f in reference.items()}


def check_run(out, base_url):
    """What every run must show: each fetch = one decision request, answered 200, whose
    flags the SDK reads exactly as /v2/flags gives them; no network beyond the hook; no
    SDK warning or error."""
    assert out["blocked"] == [], "the SDK tried to leave loopback: %s" % out["blocked"]
    for r in out["requests"]:
        assert r["to"] != "refused", r
        if r["url"].startswith(base_url):
            assert r["method"] == "POST" and r["status"] == 200, r
            assert r["url"] == base_url + "/v2/%s/campaigns?exposeAllKeys=true&extras[]=accountSettings" % ENV
            assert r["headers"]["x-api-key"] == KEY and r["headers"]["x-sdk-client"], r
    for snap in out["snapshots"]:
        assert snap["decisionRequests"] == 1, snap
        assert snap["reference"]["status"] == 200, snap
        assert snap["flags"] == sdk_view(snap["reference"]["body"]), \
            "step %d (%s): the SDK's flags differ from /v2/flags\nSDK:  %s\nours: %s" % (
                snap["step"], snap["visitorId"], json.dumps(snap["flags"], sort_keys=True),
                json.dumps(sdk_view(snap["reference"]["body"]), sort_keys=True))
    assert out["logs"] == [], "the SDK logged warnings or errors: %s" % json.dumps(out["logs"], indent=1)


def activations_2xx(front):
    status, _, body = front.get("/v2/metrics")
    assert status == 200
    return json.loads(body)["handlers.activate.requests.2xx"]


@pytest.mark.parametrize("kind", ["httpd", "fcgi"])
def test_js_sdk_decision_api(kind, workdir, standin):
    node = _ensure_sdk()
    standin.set_bucketing(ENV, xpc_sample())
    spool = children_writable_dir(workdir, "spool")
    front = FrontEnd(kind, workdir, api_key=KEY, key_mode="decisions", store="memory",
                     cdn=standin, lkg=os.path.join(children_writable_dir(workdir, "lkg"), "b.json"),
                     spool=spool, spool_options="fsync=never,segment-age=1s",
                     collector=standin.collector_url)
    try:
        wait_until(lambda: front.get("/v2/ready")[0] == 200, timeout=30, what="ready")
        base = front.base_url
        # the key mode through the front end: decisions need the key, activations do not
        assert front.post("/v2/%s/campaigns" % ENV, {"visitorId": "k"}, auth=False)[0] == 401
        assert front.get("/v2/metrics", auth=False)[0] == 401
        assert front.post("/v2/activate", {"cid": ENV, "vid": "k"}, auth=False)[0] == 400
        keyless = {"cid": ENV, "vid": "keyless-1", "caid": "vg_ab", "vaid": "v_ab_ref"}
        assert front.post("/v2/activate", keyless, auth=False)[0] == 204
        before = activations_2xx(front)

        out = run_driver(node, workdir, base, STEPS, "visitors")
        check_run(out, base)
        snaps = {(s["v"], s["step"]): s for s in out["snapshots"]}
        flags = {k[0]: s["flags"] for k, s in snaps.items() if k[0] != "xpc"}
        # not vacuous: targeting matched and not
        assert flags["vip"]["vipFeature"]["value"] is True
        assert flags["vip"]["banner"]["value"] == "eu-adult"
        assert "vipFeature" not in flags["plain"] and flags["plain"]["banner"]["value"] == "default"
        assert flags["shy"]["vipFeature"]["value"] is True
        xpc = [s for s in out["snapshots"] if s["v"] == "xpc"]
        assert [(s["visitorId"], s["anonymousId"]) for s in xpc] == \
            [("anon-42", None), ("user-42", "anon-42"), ("anon-42", None)]
        assert all(s["flags"]["banner"]["value"] == "eu-adult" for s in xpc)
        # XPC: once authenticated, user-42 keeps anon-42's variation, not its own hash's
        rc, lines, _ = run_eval([{"visitor_id": v} for v in ("anon-42", "user-42")],
                                mode="normal", extra=["--path", "/v2/flags"])
        own = [json.loads(l)["btnColor"]["metadata"]["variationId"] for l in lines]
        assert rc == 0 and own[0] != own[1], own
        assert [s["flags"]["btnColor"]["metadata"]["variationId"] for s in xpc] == [own[0]] * 3
        bodies = [r["body"] for r in out["requests"] if r["url"].startswith(base + "/v2/")
                  and "/campaigns" in r["url"]]
        assert bodies[3]["visitorId"] == "user-42" and bodies[3]["anonymousId"] == "anon-42"
        assert [b["visitor_consent"] for b in bodies] == [True, True, True, True, True, False]

        # activations: redirected by the hook (harness device), answered 204 (the JS SDK sends
        # the key there too; the keyless one above is what `decisions` is for)
        acts = [r for r in out["requests"] if r["url"].endswith("/v2/activate")]
        assert all(r["url"] == "https://decision.flagship.io/v2/activate" and
                   r["to"] == base + "/v2/activate" and r["status"] == 204 and
                   r["headers"]["x-api-key"] == KEY for r in acts), acts
        sent = [item for r in acts for item in r["body"]["batch"]]
        # the SDK sends no activation for a visitor without consent (shy-3)
        exposures = [(e["visitorId"], e["anonymousId"], e["variationGroupId"], e["variationId"])
                     for e in out["exposed"] if e["v"] != "shy"]
        assert [e["v"] for e in out["exposed"]].count("shy") == 1
        assert sorted((h["vid"], h.get("aid"), h["caid"], h["vaid"]) for h in sent) == \
            sorted(exposures)
        assert len(exposures) == 4
        wait_until(lambda: activations_2xx(front) - before == len(acts),
                   timeout=10, what="activations counted")

        def campaign_hits():
            return sorted((h["vid"], h["cuid"], h["caid"], h["vaid"]) for h in standin.hits()
                          if h.get("t") == "CAMPAIGN")
        expected = sorted([(aid or vid, vid, caid, vaid) for vid, aid, caid, vaid in exposures] +
                          [("keyless-1", "keyless-1", "vg_ab", "v_ab_ref")])
        wait_until(lambda: campaign_hits() == expected, timeout=30, interval=0.3,
                   what="the SDK's activations at the collector")
        # where the rest went: the CDN's account settings, the consent hits (Flagship's cloud)
        answered = sorted({r["url"].split("?")[0] for r in out["requests"]
                           if r["to"] == "answered by the test hook"})
        assert "https://cdn.flagship.io/%s/accountSettings.json" % ENV in answered, answered
        assert all(u.startswith(("https://cdn.flagship.io/", "https://events.flagship.io",
                                 "https://ariane.abtasty.com")) for u in answered), answered

        # panic: the SDK serves no flag, as /v2/flags
        standin.set_bucketing(ENV, dict(xpc_sample(), panic=True))
        wait_until(lambda: json.loads(front.post("/v2/campaigns", {"visitor_id": "p"})[2])
                   .get("panic") is True, timeout=30, what="panic file served")
        out = run_driver(node, workdir, base, PANIC_STEPS, "panic")
        check_run(out, base)
        for snap in out["snapshots"]:
            assert snap["reference"]["body"]["panic"] is True and snap["flags"] == {}, snap
            assert snap["flagsStatus"]["status"] == "PANIC", snap
    finally:
        front.stop()


def test_key_mode_settings_refused_and_named(workdir):
    """`decisions` without a key is refused by both front ends, naming the setting; a
    misspelt value too."""
    env = dict(fcgi_env_clean(), ENV_ID=ENV, BUCKETING_FILE=SAMPLE_BUCKETING,
               REQUIRE_API_KEY="decisions")
    p = subprocess.run([DECISION_FCGI, "--check"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "REQUIRE_API_KEY (environment) is decisions but API_KEY is " \
        "not set" in p.stderr, p.stderr
    env.update(API_KEY="k", REQUIRE_API_KEY="activations")
    p = subprocess.run([DECISION_FCGI, "--check"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "expected true, false or decisions" in p.stderr, p.stderr
    env.update(REQUIRE_API_KEY="decisions")
    p = subprocess.run([DECISION_FCGI, "--check"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr

    base = "DecisionEnvironment %s\nDecisionBucketingFile %s\n" % (ENV, SAMPLE_BUCKETING)
    h = Httpd(workdir, base + "DecisionRequireApiKey decisions\n")
    rc, text = h.configtest()
    assert rc != 0 and "DecisionRequireApiKey decisions needs a DecisionApiKey" in text, text
    h.write_config(base + "DecisionApiKey k\nDecisionRequireApiKey sometimes\n")
    rc, text = h.configtest()
    assert rc != 0 and "expected on, off or decisions" in text, text
    h.write_config(base + "DecisionApiKey k\nDecisionRequireApiKey decisions\n")
    rc, text = h.configtest()
    assert rc == 0, text

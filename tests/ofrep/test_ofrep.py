"""OFREP (OpenFeature Remote Evaluation Protocol) with the official OpenFeature providers.

Both front ends: httpd with the module (<Location /ofrep>, tests/integration/harness.py) and
decision-fcgi behind nginx (conf/nginx-decision-fcgi.conf, its /ofrep/ location). On each,
providers.mjs runs @openfeature/server-sdk + @openfeature/ofrep-provider (one flag per
request) and @openfeature/web-sdk + @openfeature/ofrep-web-provider (the bulk route, its ETag
revalidation and polling), pinned in package.json / package-lock.json and installed here by
`npm ci`. Then the OFREP bulk answer is compared with /v2/flags for the generated visitors of
tests/diff (decision-fcgi eval, one process per route).

Run:  /usr/bin/python3 -m pytest tests/ofrep -q
"""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, ".."))

import gen_bucketing  # noqa: E402
import test_fcgi as fcgi_front  # noqa: E402
from harness import (DECISION_FCGI, Httpd, http_request, make_world_readable_dir,  # noqa: E402
                     wait_until)

MARKERS = ["@openfeature/ofrep-provider", "@openfeature/ofrep-web-provider",
           "@openfeature/server-sdk", "@openfeature/web-sdk"]
ENV_ID = "ofrep-env"

# A campaign per reason: a targeted toggle with a flag of each type, an A/B test, a perso
# for everyone.
CONFIG = {
    "panic": False,
    "accountSettings": {"enabledXPC": False, "enabled1V1T": False},
    "campaigns": [
        {"id": "c_vip", "name": "VIP", "type": "toggle", "bucketRanges": [{"r": [0, 100]}],
         "variationGroups": [{
             "id": "vg_vip", "name": "vip",
             "targeting": {"targetingGroups": [{"targetings": [
                 {"operator": "EQUALS", "key": "plan", "value": "vip"}]}]},
             "variations": [{"id": "v_vip", "name": "On", "allocation": 100, "modifications": {
                 "type": "FLAG", "value": {"vipOn": True, "vipTitle": "Gold",
                                           "vipDiscount": 0.25,
                                           "vipLimits": {"max": 3, "tags": ["a", "b"]}}}}]}]},
        {"id": "c_ab", "name": "AB", "type": "ab", "bucketRanges": [{"r": [0, 100]}],
         "variationGroups": [{
             "id": "vg_ab",
             "targeting": {"targetingGroups": [{"targetings": [
                 {"operator": "EQUALS", "key": "fs_all_users", "value": ""}]}]},
             "variations": [
                 {"id": "v_a", "name": "A", "reference": True, "allocation": 50,
                  "modifications": {"type": "FLAG", "value": {"color": "blue"}}},
                 {"id": "v_b", "name": "B", "allocation": 50,
                  "modifications": {"type": "FLAG", "value": {"color": "red"}}}]}]},
    ],
}


def _node():
    """node, with the pinned providers installed by npm ci (installed once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed (tests/run installs Debian's nodejs and npm)"
    if not all(os.path.exists(os.path.join(HERE, "node_modules", m, "package.json"))
               for m in MARKERS):
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        assert p.returncode == 0, "npm ci failed in %s:\n%s" % (HERE, p.stdout[-4000:])
    return node


def write_config(path, title="Gold"):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["campaigns"][0]["variationGroups"][0]["variations"][0]["modifications"]["value"][
        "vipTitle"] = title
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def run_server_provider(base_url, api_key=None):
    p = subprocess.run([_node(), os.path.join(HERE, "providers.mjs"), "server", base_url] +
                       ([api_key] if api_key else []),
                       capture_output=True, text=True, timeout=120, cwd=HERE)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.splitlines()[-1])


def run_web_provider(base_url, change):
    """Runs the web provider; calls change() when it has seen a 304, returns its result."""
    proc = subprocess.Popen([_node(), os.path.join(HERE, "providers.mjs"), "web", base_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", line + proc.stderr.read()[-4000:]
        change()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.splitlines()[-1])


def check_server_provider(r):
    m, u = r["matched"], r["unmatched"]
    assert m["bool"]["value"] is True and m["bool"]["reason"] == "TARGETING_MATCH"
    assert m["bool"]["variant"] == "v_vip" and m["bool"]["errorCode"] is None
    assert m["bool"]["flagMetadata"]["campaignId"] == "c_vip"
    assert m["bool"]["flagMetadata"]["type"] == "toggle"
    assert m["bool"]["flagMetadata"]["variationGroupId"] == "vg_vip"
    assert m["bool"]["flagMetadata"]["variationName"] == "On"
    assert m["bool"]["flagMetadata"]["reference"] is False
    assert m["string"]["value"] == "Gold"
    assert m["number"]["value"] == 0.25
    assert m["object"]["value"] == {"max": 3, "tags": ["a", "b"]}
    for key in ("bool", "string", "number", "object"):
        assert m[key]["errorCode"] is None, m[key]
        # the unmatched visitor gets the code's default, as Flagship gives him no such flag
        assert u[key]["errorCode"] == "FLAG_NOT_FOUND", u[key]
    assert (u["bool"]["value"], u["string"]["value"], u["number"]["value"]) == (False, "none", -1)
    assert u["object"]["value"] == {"fallback": True}
    for who in (m, u):
        assert who["missing"]["value"] is True and who["missing"]["errorCode"] == "FLAG_NOT_FOUND"


def check_web_provider(r):
    m, u = r["matched"], r["unmatched"]
    assert (m["bool"]["value"], m["string"]["value"], m["number"]["value"]) == (True, "Gold", 0.25)
    assert m["object"]["value"] == {"max": 3, "tags": ["a", "b"]}
    assert m["bool"]["reason"] == "TARGETING_MATCH" and m["bool"]["variant"] == "v_vip"
    assert m["missing"]["errorCode"] == "FLAG_NOT_FOUND" and m["missing"]["value"] is True
    assert u["bool"]["errorCode"] == "FLAG_NOT_FOUND" and u["bool"]["value"] is False
    assert u["string"]["value"] == "none"
    # polls carried the ETag and were answered 304 until the file changed
    reqs = r["requests"]
    assert r["revalidated"] >= 1, reqs
    assert all(q["etag"] for q in reqs if q["status"] in (200, 304)), reqs
    assert any(q["ifNoneMatch"] and q["status"] == 304 and q["etag"] == q["ifNoneMatch"]
               for q in reqs), reqs
    # then a new configuration: a 200 with another ETag, the new value, the provider's event
    assert r["afterChange"]["value"] == "Platinum", r["afterChange"]
    assert r["changedEvents"] >= 1
    changed = [i for i, q in enumerate(reqs) if q["status"] == 200 and q["ifNoneMatch"]]
    assert changed and reqs[changed[0]]["etag"] != reqs[changed[0]]["ifNoneMatch"], reqs


def check_front_end(base_url, config_path, wait_new_config):
    check_server_provider(run_server_provider(base_url))

    def change():
        write_config(config_path, "Platinum")
        wait_new_config()
    check_web_provider(run_web_provider(base_url, change))


def single(base_url, path, body, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    status, headers, data = http_request(base_url, path, body, headers=h)
    return status, headers, json.loads(data) if data else None


def title_is(base_url, prefix, want):
    def check():
        s, _, body = single(base_url, prefix + "/ofrep/v1/evaluate/flags/vipTitle",
                            {"context": {"targetingKey": "x", "plan": "vip"}})
        return s == 200 and body["value"] == want
    return check


@contextlib.contextmanager
def httpd_serving(directives):
    """httpd with the module serving a fresh bucketing file under /v2 and /ofrep; yields
    (httpd, its run directory, the file's path)."""
    rundir = make_world_readable_dir("dc-ofrep-")
    config = os.path.join(rundir, "bucketing.json")
    write_config(config)
    httpd = Httpd(rundir, body=(
        "DecisionEnvironment %s\nDecisionBucketingFile %s\n%s\n"
        "<Location /v2>\n  SetHandler decision\n</Location>\n"
        "<Location /ofrep>\n  SetHandler decision\n</Location>\n") % (
            ENV_ID, config, directives.replace("{d}", rundir)))
    httpd.start()
    try:
        yield httpd, rundir, config
    finally:
        httpd.stop()
        reports = httpd.sanitizer_reports()
        shutil.rmtree(rundir, ignore_errors=True)
    assert "AddressSanitizer" not in reports and "runtime error" not in reports, reports


def test_httpd_with_the_official_providers():
    with httpd_serving("DecisionPollInterval 1\nDecisionStore memory") as (httpd, _, config):
        url = httpd.base_url
        wait = lambda: wait_until(title_is(url, "", "Platinum"), timeout=30, what="new config")
        check_front_end(url, config, wait)
        # the same routes under the API's own mount (a provider's baseUrl http://host/v2)
        s, _, body = single(url, "/v2/ofrep/v1/evaluate/flags/vipOn",
                            {"context": {"targetingKey": "x", "plan": "vip"}})
        assert s == 200 and body["value"] is True
        s, _, body = single(url, "/ofrep/v1/evaluate/flags/vipOn", {"context": {}})
        assert s == 400 and body["errorCode"] == "TARGETING_KEY_MISSING"
        s, _, body = single(url, "/ofrep/v1/evaluate/flags/vipOn", "{")
        assert s == 400 and body["errorCode"] == "PARSE_ERROR"


def test_httpd_api_key_401_403_and_activation_hits():
    with httpd_serving("DecisionApiKey k1\nDecisionRequireApiKey on\nDecisionOFREPActivate on\n"
                       "DecisionSpool {d}/spool\nDecisionCollector file:{d}/out") as (httpd, rundir,
                                                                                    _):
        url = httpd.base_url
        vip = {"context": {"targetingKey": "hit-1", "plan": "vip"}}
        assert single(url, "/ofrep/v1/evaluate/flags", vip)[0] == 401
        assert single(url, "/ofrep/v1/evaluate/flags", vip, {"X-API-Key": "no"})[0] == 403
        assert single(url, "/ofrep/v1/evaluate/flags", vip,
                      {"Authorization": "Bearer no"})[0] == 403
        r = run_server_provider(url, "k1")
        assert r["matched"]["bool"]["value"] is True
        # DecisionOFREPActivate on: the evaluation of one flag is an exposure to its campaign
        s, _, _ = single(url, "/ofrep/v1/evaluate/flags/vipOn", vip, {"X-API-Key": "k1"})
        assert s == 200

        def spooled():  # in the spool, or already shipped to the file collector
            text = ""
            for root, _, files in list(os.walk(os.path.join(rundir, "spool"))) + list(
                    os.walk(os.path.join(rundir, "out"))):
                for name in files:
                    try:
                        with open(os.path.join(root, name), "rb") as f:
                            text += f.read().decode("utf-8", "replace")
                    except OSError:  # shipped and removed meanwhile
                        pass
            return text
        wait_until(lambda: '"vid":"hit-1"' in spooled(), timeout=20, what="the activation hit")
        assert '"caid":"vg_vip"' in spooled()


def test_fcgi_behind_nginx_with_the_official_providers():
    workdir = make_world_readable_dir("dc-ofrep-fcgi-")
    config = os.path.join(workdir, "bucketing.json")
    write_config(config)
    responder = fcgi_front.Responder(workdir, env={"ENV_ID": ENV_ID, "BUCKETING_FILE": config,
                                                   "POLLING_INTERVAL": "1s"})
    proc = None
    try:
        proc, port = fcgi_front.start_nginx(workdir, responder)
        url = "http://127.0.0.1:%d" % port
        wait = lambda: wait_until(title_is(url, "", "Platinum"), timeout=30, what="new config")
        check_front_end(url, config, wait)
        # under the /v2 location too
        assert title_is(url, "/v2", "Platinum")()
        s, h, _ = single(url, "/ofrep/v1/evaluate/flags",
                         {"context": {"targetingKey": "x", "plan": "vip"}})
        s2, _, _ = single(url, "/ofrep/v1/evaluate/flags",
                          {"context": {"targetingKey": "x", "plan": "vip"}},
                          {"If-None-Match": h["etag"]})
        assert (s, s2) == (200, 304)
    finally:
        if proc:
            proc.stop()
        assert responder.stop() == 0, responder.output()
        fcgi_front.assert_no_sanitizer_report(responder.output())
        shutil.rmtree(workdir, ignore_errors=True)


# ---- agreement with /v2/flags on generated visitors ----------------------------------------

CASES = [(101, None), (202, None), (505, 2)]
N_VISITORS = 1500


def _eval(bucketing, path, lines):
    p = subprocess.run([DECISION_FCGI, "eval", "--bucketing", bucketing, "--path", path],
                       input="".join(json.dumps(l) + "\n" for l in lines), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    out = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert len(out) == len(lines)
    return out


def test_bulk_agrees_with_v2_flags_on_generated_visitors(tmp_path):
    compared = with_value = 0
    for seed, n_campaigns in CASES:
        bucketing, visitors = gen_bucketing.write_case(str(tmp_path / str(seed)), seed,
                                                       N_VISITORS, n_campaigns)
        with open(visitors) as f:
            reqs = [json.loads(l) for l in f if l.strip()]
        ofrep = []
        for r in reqs:
            assert "targetingKey" not in r["context"] and "anonymousId" not in r["context"]
            ofrep.append({"context": dict(r["context"], targetingKey=r["visitor_id"])})
        v2 = _eval(bucketing, "/v2/flags", reqs)
        of = _eval(bucketing, "/ofrep/v1/evaluate/flags", ofrep)
        for req, want, got in zip(reqs, v2, of):
            mine = {f["key"]: (f.get("value"), f["variant"], f["metadata"]["campaignId"])
                    for f in got["flags"]}
            theirs = {k: (v["value"], v["metadata"]["variationId"], v["metadata"]["campaignId"])
                      for k, v in want.items()}
            assert mine == theirs, "visitor %s (seed %d)" % (req["visitor_id"], seed)
            for f in got["flags"]:
                assert f["reason"] in ("TARGETING_MATCH", "SPLIT", "STATIC", "DEFAULT")
                assert ("value" in f) == (f["reason"] != "DEFAULT")
                with_value += "value" in f
            compared += 1
    assert compared == len(CASES) * N_VISITORS
    assert with_value > N_VISITORS, "too few flag values to compare: %d" % with_value

"""The dynamo:// store against dynalite (a DynamoDB-compatible server from npm, pinned in
tests/cloud/dynalite), with items cross-checked by boto3 (Debian's python3-boto3) in both
directions, the AWS credential chain against a stand-in whose proxy verifies every
request's SigV4 signature with botocore, and DynamoDB stopped and stalled under load
behind a real httpd.

The sticky-assignment rules (allocation change, deleted variation, XPC, 1V1T, activate)
run on dynamo:// in test_stores.py.
"""
import concurrent.futures
import json
import os
import signal
import threading
import time

import pytest

from dynalite import TABLE, TEST_KEY, AwsStandin, Dynalite, clean_aws_env
from harness import EvalProcess, Httpd, http_request, run_eval
from test_stores import campaign, variations_of, write_bucketing

ENV = "env-dyn"


def bucketing_file(path, campaigns):
    result = write_bucketing(path, campaigns)
    os.chmod(result, 0o644)  # httpd's children read it
    return result


@pytest.fixture
def dynamo(tmp_path, monkeypatch):
    clean_aws_env(monkeypatch, tmp_path, AWS_ACCESS_KEY_ID=TEST_KEY[0],
                  AWS_SECRET_ACCESS_KEY=TEST_KEY[1])
    server = Dynalite(tmp_path).start()
    server.create_table()
    yield server
    server.stop()


def decide(uri, bucketing, bodies, extra=None):
    rc, out, err = run_eval(bodies, bucketing=bucketing, store=uri,
                            extra=["--env-id", ENV] + (extra or []))
    assert rc == 0, err
    assert len(out) == len(bodies), err
    return [json.loads(line) for line in out], err


def test_reads_items_the_decision_api_wrote(dynamo, tmp_path):
    """An item in the decision-api's layout, written with boto3, decides for us."""
    b = bucketing_file(tmp_path / "b.json",
                       [campaign("c1", [("a", 100), ("b", 0)]),
                        campaign("c2", [("x", 100), ("y", 0)], ctype="toggle")])
    c = dynamo.client()
    c.put_item(TableName=TABLE, Item={"id": {"S": ENV + ".from-api"}, "vg_c1": {"S": "b:1"},
                                      "vg_c2": {"S": "y"}, "d": {"N": "1812312353"}})
    answers, _ = decide(dynamo.uri(), b, [{"visitor_id": "from-api", "trigger_hit": False},
                                          {"visitor_id": "someone-else", "trigger_hit": False}])
    assert variations_of(answers[0]) == {"c1": "b", "c2": "y"}
    assert variations_of(answers[1]) == {"c1": "a", "c2": "x"}
    # another key attribute and separator, as CACHE_OPTIONS_DYNAMOPKFIELD/…PKSEPARATOR set them
    dynamo.create_table("other-table", pk="pk")
    c.put_item(TableName="other-table", Item={"pk": {"S": ENV + "#v9"}, "vg_c1": {"S": "b"}})
    answers, _ = decide(dynamo.uri("other-table", "&pk_field=pk&pk_separator=%23"), b,
                        [{"visitor_id": "v9", "trigger_hit": False}])
    assert variations_of(answers[0])["c1"] == "b"


def test_writes_items_the_decision_api_reads(dynamo, tmp_path):
    """What we save is exactly the decision-api's item: key env.visitor, "<variation>[:1]", d."""
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 100), ("b", 0)]),
                                             campaign("c2", [("x", 100), ("y", 0)])])
    decide(dynamo.uri(), b, [{"visitor_id": "seen", "trigger_hit": False},
                             {"visitor_id": "hit", "trigger_hit": True}])
    c = dynamo.client()
    seen = c.get_item(TableName=TABLE, Key={"id": {"S": ENV + ".seen"}})["Item"]
    hit = c.get_item(TableName=TABLE, Key={"id": {"S": ENV + ".hit"}})["Item"]
    assert set(seen) == {"id", "d", "vg_c1", "vg_c2"}, seen
    assert seen["vg_c1"] == {"S": "a"} and seen["vg_c2"] == {"S": "x"}
    assert hit["vg_c1"] == {"S": "a:1"} and hit["vg_c2"] == {"S": "x:1"}
    six_months = 181 * 86400
    assert abs(int(hit["d"]["N"]) - (time.time() + six_months)) < 4 * 86400, hit["d"]
    # a save merges: an attribute another server wrote stays
    c.update_item(TableName=TABLE, Key={"id": {"S": ENV + ".seen"}},
                  UpdateExpression="SET vg_other = :v",
                  ExpressionAttributeValues={":v": {"S": "o"}})
    decide(dynamo.uri(), b, [{"visitor_id": "seen", "trigger_hit": True}])
    seen = c.get_item(TableName=TABLE, Key={"id": {"S": ENV + ".seen"}})["Item"]
    assert seen["vg_other"] == {"S": "o"} and seen["vg_c1"] == {"S": "a:1"}


def test_metrics_count_dynamo_operations(dynamo, tmp_path):
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    rc, out, err = run_eval([{"visitor_id": "m-1", "trigger_hit": True}], bucketing=b,
                            store=dynamo.uri(), extra=["--env-id", ENV, "--report", "/metrics"])
    assert rc == 0, err
    text = "\n".join(out)
    assert 'decision_store_operations_total{backend="dynamo",op="load"} 1' in text, text
    assert 'decision_store_operations_total{backend="dynamo",op="save"} 1' in text, text
    assert 'decision_store_errors_total{backend="dynamo",op="load"} 0' in text, text


# ---- credentials: every request's signature checked by botocore ----

def signed_run(tmp_path, dynamo, standin, visitors):
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    answers, err = decide("dynamo://%s?region=eu-west-1&endpoint=%s" % (TABLE, standin.url), b,
                          [{"visitor_id": v, "trigger_hit": True} for v in visitors])
    return answers, err


def test_credentials_from_environment_and_profile(dynamo, tmp_path, monkeypatch):
    standin = AwsStandin(tmp_path, dynamo.port, static=TEST_KEY).start()
    try:
        _, err = signed_run(tmp_path, dynamo, standin, ["env-1", "env-2"])
        assert "DC10801" not in err, err
        assert standin.stats()["ok"] == 4  # a load and a save each

        # the shared files: AWS_PROFILE picks a section of AWS_SHARED_CREDENTIALS_FILE
        creds = tmp_path / "credentials"
        creds.write_text("[default]\naws_access_key_id = WRONG\naws_secret_access_key = x\n"
                         "[team]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % TEST_KEY)
        clean_aws_env(monkeypatch, tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(creds),
                      AWS_PROFILE="team")
        _, err = signed_run(tmp_path, dynamo, standin, ["profile-1"])
        assert "DC10801" not in err, err
        stats = standin.stats()
        assert stats["ok"] == 6 and stats["bad_signature"] == 0, stats

        # a wrong secret: refused by the signature check, decided from the hash, logged once
        clean_aws_env(monkeypatch, tmp_path, AWS_ACCESS_KEY_ID=TEST_KEY[0],
                      AWS_SECRET_ACCESS_KEY="not-the-secret")
        answers, err = signed_run(tmp_path, dynamo, standin, ["bad-1", "bad-2"])
        assert all("c1" in variations_of(a) for a in answers)
        assert standin.stats()["bad_signature"] >= 1
        assert err.count("DC10801") == 1 and "InvalidSignatureException" in err, err
        assert "not-the-secret" not in err
    finally:
        standin.stop()
    c = dynamo.client()
    assert "Item" in c.get_item(TableName=TABLE, Key={"id": {"S": ENV + ".profile-1"}})
    assert "Item" not in c.get_item(TableName=TABLE, Key={"id": {"S": ENV + ".bad-1"}})


@pytest.mark.parametrize("source", ["container", "imds"])
def test_expiring_credentials_refreshed_without_a_failed_request(source, dynamo, tmp_path,
                                                                 monkeypatch):
    """Credentials that live 2 s, from the container endpoint (with its authorization
    token) or IMDSv2: refreshed in the background, no request ever signed with expired
    ones, every save written."""
    standin = AwsStandin(tmp_path, dynamo.port, lifetime=2, auth_token="Bearer tok").start()
    if source == "container":
        clean_aws_env(monkeypatch, tmp_path,
                      AWS_CONTAINER_CREDENTIALS_FULL_URI=standin.url + "/creds",
                      AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer tok")
    else:
        clean_aws_env(monkeypatch, tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=standin.url)
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    ev = EvalProcess("dynamo://%s?region=eu-west-1&endpoint=%s" % (TABLE, standin.url),
                     bucketing=b, extra=["--env-id", ENV])
    visitors = []
    try:
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            v = "rot-%d" % len(visitors)
            assert "c1" in variations_of(ev.ask({"visitor_id": v, "trigger_hit": True}))
            visitors.append(v)
            time.sleep(0.02)
    finally:
        rc, err = ev.close()
        stats = standin.stats()
        standin.stop()
    assert rc == 0, err
    assert "DC10801" not in err and "DC11350" not in err, err
    assert stats["expired"] == 0 and stats["bad_signature"] == 0 and stats["bad_token"] == 0, stats
    assert stats["unknown_key"] == 0, stats
    assert len(stats["keys_used"]) >= 3, stats  # at least two refreshes were used
    assert stats["ok"] == 2 * len(visitors), (stats, len(visitors))
    # one thread's kept-alive connection carries its requests (a few more for metadata calls)
    assert stats["connections"] <= len(stats["keys_used"]) + 3, stats
    c = dynamo.client()
    for v in visitors[:: max(1, len(visitors) // 20)]:
        assert "Item" in c.get_item(TableName=TABLE, Key={"id": {"S": ENV + "." + v}}), v


def test_saves_made_during_an_outage_are_replayed(dynamo, tmp_path):
    """Saves that found DynamoDB down are written when it answers again, only into attributes
    the items lack (what another server wrote meanwhile wins); the outage is logged once."""
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)]),
                                             campaign("c2", [("x", 50), ("y", 50)])])
    ev = EvalProcess(dynamo.uri(options="&max_backoff_ms=200"), bucketing=b,
                     extra=["--env-id", ENV])
    queued = ["q-%d" % i for i in range(5)]
    try:
        ev.ask({"visitor_id": "before", "trigger_hit": True})
        dynamo.stop()
        answers = {v: variations_of(ev.ask({"visitor_id": v, "trigger_hit": True}, timeout=3))
                   for v in queued}
        dynamo.start()
        # meanwhile another server assigned q-0's c1 differently: that must stay
        dynamo.client().put_item(TableName=TABLE, Item={"id": {"S": ENV + ".q-0"},
                                                        "vg_c1": {"S": "other:1"}})
        deadline = time.monotonic() + 15
        c = dynamo.client()
        while "Item" not in c.get_item(TableName=TABLE, Key={"id": {"S": ENV + ".q-4"}}):
            assert time.monotonic() < deadline, "the queued saves were not replayed"
            ev.ask({"visitor_id": "after-%f" % time.monotonic(), "trigger_hit": True})
            time.sleep(0.1)
    finally:
        rc, err = ev.close()
    assert rc == 0, err
    for v in queued:
        item = c.get_item(TableName=TABLE, Key={"id": {"S": ENV + "." + v}})["Item"]
        if v == "q-0":
            assert item["vg_c1"] == {"S": "other:1"}, item  # not overwritten by the replay
        else:
            assert item["vg_c1"] == {"S": answers[v]["c1"] + ":1"}, item
        assert item["vg_c2"] == {"S": answers[v]["c2"] + ":1"}, item
    assert err.count("DC10801") == 1, err  # logged once (eval logs warnings only)


# ---- outages under load, behind a real httpd ----

def test_stopped_and_stalled_under_load(dynamo, tmp_path):
    """httpd with DecisionStore dynamo://, 4 client threads: DynamoDB stalled (SIGSTOP) then
    stopped, then back; no request fails, the outage is logged once, stickiness resumes and
    the saves made during the outage are written once it is back."""
    rundir = tmp_path / "httpd"
    rundir.mkdir()
    os.chmod(str(tmp_path), 0o755)
    os.chmod(str(rundir), 0o777)
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    hashed = {}
    uri = dynamo.uri(options="&get_timeout_ms=200&timeout_ms=200&max_backoff_ms=500")
    body = ("DecisionEnvironment %s\nDecisionBucketingFile %s\nDecisionStore %s\n"
            "<Location /v2>\n  SetHandler decision\n</Location>\n" % (ENV, b, uri))
    h = Httpd(str(rundir), body, mpm="event")
    h.start()
    failures, counts = [], {"n": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def client(k):
        i = 0
        while not stop.is_set():
            vid = "load-%d-%d" % (k, i)
            try:
                status, _, data = http_request(h.base_url, "/v2/campaigns",
                                               {"visitor_id": vid, "trigger_hit": True},
                                               timeout=5)
                ok = status == 200 and "c1" in variations_of(json.loads(data))
            except Exception as e:  # noqa: BLE001 - every kind of failure counts
                ok, data = False, repr(e)
            with lock:
                counts["n"] += 1
                if not ok:
                    failures.append((vid, data))
                else:
                    hashed[vid] = variations_of(json.loads(data))["c1"]
            i += 1

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client, k) for k in range(4)]
            time.sleep(0.8)
            dynamo.proc.send_signal(signal.SIGSTOP)  # stalled: every call would time out
            time.sleep(1.5)
            dynamo.proc.send_signal(signal.SIGCONT)
            time.sleep(0.4)
            dynamo.stop()  # down: connections refused
            during_outage = counts["n"]
            time.sleep(1.5)
            during_outage = counts["n"] - during_outage
            dynamo.start()  # same port, same data
            time.sleep(2.0)
            stop.set()
            for f in futures:
                f.result()
        log = h.log()
    finally:
        stop.set()
        h.stop()
    assert h.sanitizer_reports() == ""
    assert not failures, failures[:5]
    assert during_outage > 20, during_outage  # requests were served while it was down
    assert log.count("DC10801") >= 1 and "DC10802" in log, log[-3000:]
    # every visitor decided before the outage is in the table, and so are the last ones
    c = dynamo.client()
    last = sorted(hashed, key=lambda v: int(v.split("-")[2]))[-1]
    item = c.get_item(TableName=TABLE, Key={"id": {"S": ENV + "." + last}}).get("Item")
    assert item and item["vg_c1"]["S"] == hashed[last] + ":1", (last, item)
    # and what the engine decides from an item is what it decided then (stickiness)
    first = "load-0-0"
    item = c.get_item(TableName=TABLE, Key={"id": {"S": ENV + "." + first}}).get("Item")
    assert item and item["vg_c1"]["S"] == hashed[first] + ":1", item


def test_decision_fcgi_with_the_decision_api_settings(dynamo, tmp_path):
    """decision-fcgi (CGI mode) configured only by the decision-api's names: CACHE_TYPE=dynamo,
    CACHE_OPTIONS_DYNAMO*, the AWS variables; the item lands where the decision-api puts it."""
    from test_fcgi import ENV_ID, run_cgi
    dynamo.create_table("assignments-prod", pk="visitorKey")
    env = {"CACHE_TYPE": "dynamo", "CACHE_OPTIONS_DYNAMOTABLENAME": "assignments-prod",
           "CACHE_OPTIONS_DYNAMOPKFIELD": "visitorKey", "CACHE_OPTIONS_DYNAMOPKSEPARATOR": "|",
           "CACHE_OPTIONS_DYNAMOGETTIMEOUT": "500ms", "AWS_REGION": "eu-west-1",
           "AWS_ENDPOINT_URL_DYNAMODB": dynamo.endpoint}
    rc, head, body, err = run_cgi(env, b'{"visitor_id":"cgi-visitor","trigger_hit":true}')
    assert rc == 0 and head.startswith("Status: 200"), (head, err)
    answer = {c["variationGroupId"]: c["variation"]["id"] for c in json.loads(body)["campaigns"]}
    item = dynamo.client().get_item(TableName="assignments-prod",
                                    Key={"visitorKey": {"S": ENV_ID + "|cgi-visitor"}})["Item"]
    stored = {k: v["S"] for k, v in item.items() if k not in ("visitorKey", "d")}
    assert stored and all(stored[vg] == vid + ":1" for vg, vid in answer.items() if vg in stored)
    assert "DC10801" not in err, err


def test_httpd_prefork_children_refresh_their_own_credentials(dynamo, tmp_path, monkeypatch):
    """httpd prefork: each child (forked after the store opened in the parent) signs with
    container credentials that live 2 s, refreshed by a thread of its own; every request
    answers 200, no request is signed with expired credentials, the store never degrades."""
    standin = AwsStandin(tmp_path, dynamo.port, lifetime=2, auth_token="Bearer tok").start()
    clean_aws_env(monkeypatch, tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=standin.url + "/creds",
                  AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer tok")
    rundir = tmp_path / "httpd"
    rundir.mkdir()
    os.chmod(str(tmp_path), 0o755)
    os.chmod(str(rundir), 0o777)
    b = bucketing_file(tmp_path / "b.json", [campaign("c1", [("a", 50), ("b", 50)])])
    body = ("DecisionEnvironment %s\nDecisionBucketingFile %s\n"
            "DecisionStore dynamo://%s?region=eu-west-1&endpoint=%s\n"
            "<Location /v2>\n  SetHandler decision\n</Location>\n" % (ENV, b, TABLE, standin.url))
    h = Httpd(str(rundir), body, mpm="prefork")
    h.start()
    failures, n = [], 0
    try:
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            status, _, data = http_request(h.base_url, "/v2/campaigns",
                                           {"visitor_id": "pf-%d" % n, "trigger_hit": True})
            if status != 200:
                failures.append(data)
            n += 1
        log = h.log()
    finally:
        h.stop()
        stats = standin.stats()
        standin.stop()
    assert h.sanitizer_reports() == ""
    assert not failures, failures[:3]
    assert "DC10801" not in log and "DC11350" not in log, log[-3000:]
    assert stats["expired"] == 0 and stats["bad_signature"] == 0 and stats["unknown_key"] == 0, \
        stats
    assert stats["ok"] == 2 * n and len(stats["keys_used"]) >= 2, (stats, n)

"""The endpoint suite shared by every front end (decision-fcgi behind lighttpd,
caddy, nginx, Apache mod_proxy_fcgi and Apache CGI, and the httpd module).

Every check takes the base URL the API is mounted under (for example
"http://127.0.0.1:8080" or "http://127.0.0.1:8080/some/prefix"; the API lives
at BASE/v2/...) and talks HTTP to it. Decision answers are compared, as parsed
JSON, with what `decision-fcgi eval` says for the same body, route and query on
the same bucketing file, so the front end is tested for faithful transport and
the engine is trusted from its own suites.

What the server under test must be configured with (the defaults of the
checks): the bucketing file conf/sample-bucketing.json, env id ENV_ID below,
CORS on with origins "*", no sticky store or one whose answers do not change
the sample's decisions (the sample has 1V1T off), MAX_BODY_SIZE as passed
(default 1 MiB) and, when api_key is given, the API key required.

    from endpoints import check_all_endpoints
    check_all_endpoints("http://127.0.0.1:%d" % port, api_key="secret")
"""
import http.client
import json
import urllib.parse

from harness import SAMPLE_BUCKETING, run_eval

ENV_ID = "env_sample"
DEFAULT_MAX_BODY_SIZE = 1024 * 1024

VISITORS = [
    {"visitor_id": "v1", "context": {}, "trigger_hit": False},
    {"visitor_id": "bob", "context": {"isVIP": True, "age": 30, "country": "fr",
                                      "app_version": "2.3.1", "platform": "ios"},
     "trigger_hit": False},
    {"visitorId": "alice", "context": {"email": "a@beta.example"}, "triggerHit": False},
    {"visitor_id": "visitor-5", "context": {"age": "30"}, "trigger_hit": False},
]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:300])


def request(base_url, method, path, body=None, headers=None, timeout=30):
    """One HTTP request to BASE + path (path starts with "/v2"); any status is returned."""
    url = urllib.parse.urlsplit(base_url.rstrip("/") + path)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    target = url.path + ("?" + url.query if url.query else "")
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    try:
        conn.request(method, target, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def _auth(api_key):
    return {"X-API-Key": api_key} if api_key else {}


def expected(bodies, path="/v2/campaigns", query=None, mode="normal", env_id=ENV_ID,
             bucketing=SAMPLE_BUCKETING):
    """What decision-fcgi eval answers for these bodies (parsed JSON, one per body)."""
    extra = ["--path", path, "--env-id", env_id]
    if query is not None:
        extra += ["--query", query]
    rc, out, err = run_eval(bodies, bucketing=bucketing, mode=mode, extra=extra)
    assert rc == 0, err
    assert len(out) == len(bodies), (out, err)
    return [json.loads(line) for line in out]


def _decide(base_url, path, body, api_key, query=None):
    target = path + ("?" + query if query else "")
    r = request(base_url, "POST", target, body, _auth(api_key))
    if r.status == 204:
        assert r.body == b"", r
        return r, {}
    assert r.headers.get("content-type", "").startswith("application/json"), r
    return r, r.json()


def check_campaigns_modes(base_url, api_key=None, env_id=ENV_ID):
    """POST /v2/campaigns in each mode (and the default), with exposeAllKeys and extras."""
    for query, mode in [(None, "normal"), ("mode=simple", "simple"), ("mode=normal", "normal"),
                        ("mode=full", "full"), ("mode=full&exposeAllKeys=false", "full"),
                        ("mode=normal&extras[]=accountSettings", "normal")]:
        eval_query = "sendContextEvent=false" + ("&" + query if query else "")
        want = expected(VISITORS, "/v2/campaigns", eval_query, mode, env_id)
        for body, w in zip(VISITORS, want):
            r, got = _decide(base_url, "/v2/campaigns", body, api_key, query)
            assert r.status == 200, (query, r)
            assert got == w, (query, body, got, w)


def check_single_campaign(base_url, api_key=None, env_id=ENV_ID):
    """POST /v2/campaigns/{id} and /{slug}: a match (200), no match (204), no such campaign (400)."""
    for ref in ["c_ab", "ab-button", "c_vip", "nope"]:
        path = "/v2/campaigns/" + ref
        bodies = VISITORS[:2]
        want = expected(bodies, path, "", "normal", env_id)
        for body, w in zip(bodies, want):
            r, got = _decide(base_url, path, body, api_key)
            if r.status == 204:
                assert w == {}, (path, body, w)
            else:
                assert r.status == (400 if "message" in w else 200), (path, r)
                assert got == w, (path, body, got, w)
    # c_ab serves everyone: both spellings of the reference answer 200 with the campaign
    r, got = _decide(base_url, "/v2/campaigns/ab-button", VISITORS[0], api_key)
    assert r.status == 200 and got["id"] == "c_ab", r
    r, got = _decide(base_url, "/v2/campaigns/c_vip", VISITORS[0], api_key)
    assert r.status == 204, r
    r, got = _decide(base_url, "/v2/campaigns/nope", VISITORS[0], api_key)
    assert r.status == 400 and "nope" in got["message"], r


def check_flags(base_url, api_key=None, env_id=ENV_ID):
    """POST /v2/flags."""
    want = expected(VISITORS, "/v2/flags", "", "normal", env_id)
    for body, w in zip(VISITORS, want):
        r, got = _decide(base_url, "/v2/flags", body, api_key)
        assert r.status == 200, r
        assert got == w, (body, got, w)
    assert "vipFeature" in want[1]


def check_env_campaigns(base_url, api_key=None, env_id=ENV_ID):
    """POST /v2/{envId}/campaigns (what SDKs call): same answers; another env is 404."""
    want = expected(VISITORS, "/v2/campaigns", "sendContextEvent=false", "normal", env_id)
    for body, w in zip(VISITORS, want):
        r, got = _decide(base_url, "/v2/%s/campaigns" % env_id, body, api_key)
        assert r.status == 200, r
        assert got == w
    r, got = _decide(base_url, "/v2/%s/flags" % env_id, VISITORS[1], api_key)
    assert r.status == 200 and got == expected([VISITORS[1]], "/v2/flags", "", "normal", env_id)[0]
    r = request(base_url, "POST", "/v2/not_%s/campaigns" % env_id, VISITORS[0], _auth(api_key))
    assert r.status == 404, r
    assert "message" in r.json()


def check_activate(base_url, api_key=None, env_id=ENV_ID, valid_only=False):
    """POST /v2/activate: single and batch are 204; invalid ones are 400 naming the fields.
    valid_only: send only bodies the OpenAPI document calls valid (through a validating proxy)."""
    single = {"cid": env_id, "vid": "v1", "caid": "vg_ab", "vaid": "v_ab_red"}
    r = request(base_url, "POST", "/v2/activate", single, _auth(api_key))
    assert r.status == 204 and r.body == b"", r
    batch = {"cid": env_id, "batch": [{"vid": "v1", "caid": "vg_ab", "vaid": "v_ab_red"},
                                      {"vid": "v2", "aid": "anon2", "caid": "vg_vip",
                                       "vaid": "v_vip_on", "qt": 12}]}
    r = request(base_url, "POST", "/v2/activate", batch, _auth(api_key))
    assert r.status == 204, r
    if not valid_only:
        r = request(base_url, "POST", "/v2/activate", {}, _auth(api_key))
        assert r.status == 400, r
        doc = r.json()
        assert set(doc["errors"]) == {"caid", "cid", "vaid", "vid"}, doc
    r = request(base_url, "POST", "/v2/activate", dict(single, cid="other"), _auth(api_key))
    assert r.status == 400 and r.json()["errors"] == {"cid": "Invalid cid."}, r


def check_errors(base_url, api_key=None, max_body_size=DEFAULT_MAX_BODY_SIZE, valid_only=False):
    """400 bad JSON / unknown field / bad mode, 404 unknown route, 405 + Allow, 413 too large.
    valid_only: only the 413 (a body the document calls valid, but too large)."""
    auth = _auth(api_key)
    for body, needle in [("not json", "syntax error"), ('{"visitor_id":5}', "expected a string"),
                         ('{"visitor_id":"a","bogus":1}', "unknown field")]:
        r = request(base_url, "POST", "/v2/campaigns", body, auth)
        assert r.status == 400, (body, r)
        assert r.headers["content-type"].startswith("application/json"), r
        assert needle in r.json()["message"], (body, r)
    r = request(base_url, "POST", "/v2/campaigns?mode=bogus", VISITORS[0], auth)
    assert r.status == 400 and "message" in r.json(), r
    r = request(base_url, "POST", "/v2/nope", VISITORS[0], auth)
    assert r.status == 404 and r.json()["message"] == "not found", r
    for method in ["GET", "PUT", "DELETE"]:
        r = request(base_url, method, "/v2/campaigns", None if method == "GET" else "{}", auth)
        assert r.status == 405, (method, r)
        assert "POST" in r.headers.get("allow", ""), r
        assert "message" in r.json()
    check_too_large(base_url, api_key, max_body_size)


def check_too_large(base_url, api_key=None, max_body_size=DEFAULT_MAX_BODY_SIZE):
    """413 for a body over the limit, and the service is still fine after that."""
    auth = _auth(api_key)
    big = '{"visitor_id":"' + "x" * (max_body_size + 16) + '"}'
    r = request(base_url, "POST", "/v2/campaigns", big, auth)
    assert r.status == 413, r
    assert "too large" in r.json()["message"], r
    # the service is still fine after that
    r, got = _decide(base_url, "/v2/campaigns", VISITORS[0], api_key)
    assert r.status == 200 and got["visitorId"] == "v1"


def _refused_by_the_web_server(r):
    """lighttpd refuses a query with %00 or bytes that are not UTF-8 itself (400 and its own HTML
    page, server.http-parseopts): the request never reaches the API."""
    if r.headers.get("content-type", "").startswith("application/json"):
        return False
    assert r.status == 400 and r.headers.get("content-type", "").startswith("text/html"), r
    return True


def check_hostile_queries(base_url, api_key=None):
    """A decoded NUL in a query name or value is refused (not read as the end of the value), and
    an echoed byte that is not UTF-8 comes back as U+FFFD: every answer is UTF-8 JSON."""
    auth = _auth(api_key)
    for query in ["mode=%00%ff", "mode=simple%00x", "mode%00=full", "exposeAllKeys=true%00"]:
        r = request(base_url, "POST", "/v2/campaigns?" + query, VISITORS[0], auth)
        assert r.status == 400, (query, r)
        if _refused_by_the_web_server(r):
            continue
        assert "NUL" in json.loads(r.body.decode("utf-8", "strict"))["message"], (query, r)
    for query in ["mode=%ff", "mode=%c3%28", "mode=%e2%82"]:
        r = request(base_url, "POST", "/v2/campaigns?" + query, VISITORS[0], auth)
        assert r.status == 400, (query, r)
        if _refused_by_the_web_server(r):
            continue
        message = json.loads(r.body.decode("utf-8", "strict"))["message"]
        assert message.startswith("unknown mode") and "\ufffd" in message, (query, r)


def check_cors(base_url, api_key=None, origins="*", valid_only=False):
    """CORS headers on answers and errors; OPTIONS preflight is 204 without an API key."""
    r = request(base_url, "POST", "/v2/campaigns", VISITORS[0],
                dict(_auth(api_key), Origin="https://shop.example"))
    assert r.status == 200, r
    assert r.headers.get("access-control-allow-origin") == origins, r
    assert "X-Api-Key" in r.headers.get("access-control-allow-headers", ""), r
    for path in ["/v2/campaigns", "/v2/flags", "/v2/activate", "/v2/campaigns/c_ab"]:
        r = request(base_url, "OPTIONS", path, None,
                    {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
        assert r.status == 204, (path, r)
        assert r.headers.get("access-control-allow-origin") == origins, r
        assert "POST" in r.headers.get("access-control-allow-methods", ""), r
        assert r.body == b""
    if not valid_only:
        r = request(base_url, "POST", "/v2/campaigns", "not json", _auth(api_key))
        assert r.status == 400 and r.headers.get("access-control-allow-origin") == origins, r


def check_api_key(base_url, api_key, valid_only=False):
    """401 without or with a wrong key; X-API-Key and Authorization: Bearer both work."""
    for headers in [{}, {"X-API-Key": api_key + "x"}, {"Authorization": "Bearer nope"},
                    {"X-API-Key": ""}]:
        r = request(base_url, "POST", "/v2/campaigns", VISITORS[0], headers)
        assert r.status == 401, (headers, r)
        assert "API key" in r.json()["message"], r
        assert api_key.encode() not in r.body
    body = {"cid": "e", "vid": "v", "caid": "c", "vaid": "a"} if valid_only else {}
    r = request(base_url, "POST", "/v2/activate", body, {})
    assert r.status == 401, r
    for headers in [{"X-API-Key": api_key}, {"Authorization": "Bearer " + api_key}]:
        r = request(base_url, "POST", "/v2/campaigns", VISITORS[0], headers)
        assert r.status == 200, (headers, r)


def check_all_endpoints(base_url, api_key=None, env_id=ENV_ID,
                        max_body_size=DEFAULT_MAX_BODY_SIZE, cors_origins="*", valid_only=False):
    """Every check above; api_key: the server requires this key (None: no key required).

    valid_only: send only requests that common/openapi.yaml calls valid (for a run through a
    proxy that refuses the others itself, such as Prism with --errors); answers of every
    documented status are still asked for (204, 400, 401, 404, 413)."""
    check_campaigns_modes(base_url, api_key, env_id)
    check_single_campaign(base_url, api_key, env_id)
    check_flags(base_url, api_key, env_id)
    check_env_campaigns(base_url, api_key, env_id)
    check_activate(base_url, api_key, env_id, valid_only)
    if valid_only:
        check_too_large(base_url, api_key, max_body_size)
    else:
        check_errors(base_url, api_key, max_body_size)
        check_hostile_queries(base_url, api_key)
    check_cors(base_url, api_key, cors_origins, valid_only)
    if api_key:
        check_api_key(base_url, api_key, valid_only)


def check_health_and_metrics(base_url, api_key=None):
    """GET /v2/health (open), /v2/ready and /v2/metrics (API key when required): the decisions
    made through this front end are counted (call after check_all_endpoints or other traffic)."""
    auth = _auth(api_key)
    r = request(base_url, "GET", "/v2/health")
    assert r.status == 200 and r.json()["status"] == "ok", r
    r = request(base_url, "GET", "/v2/ready", headers=auth)
    assert r.status == 200 and r.json()["config"]["loaded"] is True, r
    before = request(base_url, "GET", "/v2/metrics", headers=auth)
    assert before.status == 200, before
    assert before.headers["content-type"].startswith("application/json"), before
    for _ in range(5):
        _decide(base_url, "/v2/campaigns", VISITORS[0], api_key)
    after = request(base_url, "GET", "/v2/metrics", headers=auth).json()
    key = "handlers.campaigns.requests.2xx"
    assert after[key] >= before.json()[key] + 5, (before.json()[key], after[key])
    assert after["handlers.campaigns.response_time.p99"] >= 0
    assert after["config"]["loaded"] is True
    if api_key:
        r = request(base_url, "GET", "/v2/metrics")
        assert r.status == 401, r
        r = request(base_url, "GET", "/v2/ready")
        assert r.status == 401, r

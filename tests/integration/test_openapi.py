"""The API described (issue 12): common/openapi.yaml as both front ends serve it at
/v2/swagger/doc.json, checked against what they answer, with tools nobody here wrote:

- @apidevtools/swagger-parser (npm) validates the served document;
- Stoplight Prism (npm) in proxy mode with --errors stands in front of each front end while
  the shared endpoint suite (endpoints.py) runs through it: every request and answer that
  passes is validated against the document, and a violation becomes an error answer that
  fails the suite;
- a property run (Debian's python3-hypothesis + python3-jsonschema, in the spirit of
  Schemathesis) generates valid and invalid parameters, bodies and keys from the document's
  own schemas for every operation and checks: no 5xx, a documented status, a documented
  content type, a body valid against its schema, the documented headers present;
- headless Chromium renders /v2/swagger/index.html: every route on the page, no console error
  (the page is sent with a strict Content-Security-Policy, so a script or inline style would
  be one); and, with the Swagger UI setting, the real Swagger UI (npm swagger-ui-dist) renders
  every route of doc.json.

Front ends: the httpd module (prefork) and decision-fcgi behind nginx (test_ops.FrontEnd).

Profiles: DC_OPENAPI_EXAMPLES examples per operation and front end (default 15, the CI
profile, about 20 s for both front ends; 300 is the long run of doc/openapi.md, about 2 minutes
per front end).
"""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from jsonschema import Draft202012Validator, RefResolver

import endpoints
from harness import CHROMIUM_FLAGS, Proc, chromium_binary, free_port, http_request, wait_port
from test_ops import ENV, front, workdir  # noqa: F401  (fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(os.path.dirname(HERE), "openapi")
KINDS = ["httpd", "fcgi"]
KEY = "oa-key-7"
EXAMPLES = int(os.environ.get("DC_OPENAPI_EXAMPLES", "15"))
METHODS = ["get", "head", "post", "put", "patch", "delete", "options"]
# any character a URL or a JSON text can carry (not a lone surrogate, which has no UTF-8)
CHARS = st.characters(blacklist_categories=("Cs",))
OFREP = "/v2/ofrep/v1/evaluate"  # the OFREP routes under the API's /v2 mount, as documented
OFREP_FLAGS = ["btnColor", "btnSize", "vipFeature", "discount", "banner", "showPrices", "checkout",
               "debugPanel", "nope"]


@pytest.fixture(scope="module")
def tools():
    """npm ci in tests/openapi when node_modules is missing; the paths of node and prism."""
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm and node, "node and npm are needed (Debian packages nodejs npm, see tests/run)"
    prism = os.path.join(TOOLS, "node_modules", ".bin", "prism")
    ui = os.path.join(TOOLS, "node_modules", "swagger-ui-dist", "package.json")
    if not os.path.exists(prism) or not os.path.exists(ui):
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TOOLS,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert p.returncode == 0, "npm ci failed in %s:\n%s" % (TOOLS, p.stdout[-4000:])
    with open(os.path.join(TOOLS, "node_modules", "@stoplight", "prism-cli", "package.json")) as f:
        assert json.load(f)["version"] == "5.14.2", "stale tests/openapi/node_modules: run npm ci"
    with open(ui) as f:
        assert json.load(f)["version"] == "5.36.0", "stale tests/openapi/node_modules: run npm ci"
    return node, prism


def fetch_doc(f):
    status, headers, body = f.get("/v2/swagger/doc.json")
    assert status == 200 and headers["content-type"].startswith("application/json"), body[:300]
    return json.loads(body)


# ---- the document, served -------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_served_document_is_valid_openapi(kind, front, tools, workdir):
    f = front(kind, api_key=KEY)
    doc = fetch_doc(f)
    host = urllib.parse.urlsplit(f.base_url).netloc
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"][0]["url"] == "http://" + host, doc["servers"]
    path = os.path.join(workdir, "doc-%s.json" % kind)
    with open(path, "w") as out:
        json.dump(doc, out)
    node, _ = tools
    p = subprocess.run([node, os.path.join(TOOLS, "validate.cjs"), path], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    summary = json.loads(p.stdout)
    assert summary["openapi"] == "3.1.0" and summary["operations"] >= 30, summary
    # what the page, the redirect and the key rule say
    assert f.get("/v2/swagger/doc.json", auth=False)[0] == 401
    status, headers, _ = f.get("/v2/swagger/")
    assert status == 301 and headers["location"] == "/v2/swagger/index.html", headers
    status, headers, body = f.get("/v2/swagger/index.html")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert b"<script" not in body


# ---- Prism in front of the server -----------------------------------------------

class Prism:
    def __init__(self, prism, doc, upstream, workdir):
        self.port = free_port()
        doc = dict(doc, servers=[{"url": "http://127.0.0.1:%d" % self.port}])
        path = os.path.join(workdir, "prism-doc-%d.json" % self.port)
        with open(path, "w") as out:
            json.dump(doc, out)
        self.log = os.path.join(workdir, "prism-%d.log" % self.port)
        self.proc = Proc([prism, "proxy", path, upstream, "--errors", "--cors=false",
                          "--host", "127.0.0.1", "--port", str(self.port)], self.log)
        try:
            wait_port(self.port, timeout=60)
        except TimeoutError:
            self.proc.stop()
            raise AssertionError(self.proc.output())
        self.base_url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_endpoint_suite_through_prism(kind, front, tools, workdir):
    f = front(kind, api_key=KEY)
    prism = Prism(tools[1], fetch_doc(f), f.base_url, workdir)
    try:
        endpoints.check_all_endpoints(prism.base_url, api_key=KEY, env_id=ENV, valid_only=True)
        endpoints.check_health_and_metrics(prism.base_url, api_key=KEY)
        for path in ["/v2/swagger/doc.json", "/v2/swagger/index.html", "/v2/swagger/reference.css",
                     "/iserver/nsessions", "/metrics"]:
            status, headers, body = http_request(prism.base_url, path, method="GET",
                                                 headers={"X-API-Key": KEY})
            assert status == 200, (path, status, body[:500])
        # the OFREP routes as providers call them (valid requests: Prism answers the others 422)
        vip = json.dumps({"context": {"targetingKey": "v1", "isVIP": True}})
        as_json = {"Content-Type": "application/json"}  # as the providers send it
        for path, headers, want in [("/flags/vipFeature", {"X-API-Key": KEY}, 200),
                                    ("/flags/btnColor", {"Authorization": "Bearer " + KEY}, 200),
                                    ("/flags/nope", {"X-API-Key": KEY}, 404),
                                    ("/flags/vipFeature", {}, 401),
                                    ("/flags/vipFeature", {"X-API-Key": "wrong"}, 403),
                                    ("/flags", {"X-API-Key": KEY}, 200)]:
            status, answer, body = http_request(prism.base_url, OFREP + path, vip,
                                                headers=dict(headers, **as_json))
            assert status == want, (path, status, body[:500])
        status, _, _ = http_request(prism.base_url, OFREP + "/flags", vip,
                                    headers=dict(as_json, **{"X-API-Key": KEY,
                                                          "If-None-Match": answer["etag"]}))
        assert status == 304, status
        status, _, body = http_request(prism.base_url, OFREP + "/flags/vipFeature",
                                       json.dumps({"context": {}}),
                                       headers=dict(as_json, **{"X-API-Key": KEY}))
        assert status == 422 and b"targetingKey" in body, body[:500]
        # (not /v2/swagger/: Prism's fetch follows the 301 and validates the page as its answer;
        # the redirect is checked directly in test_served_document_is_valid_openapi)
        # Prism itself refuses what the document calls invalid, before the server sees it
        status, _, body = http_request(prism.base_url, "/v2/campaigns?mode=bogus",
                                       {"visitor_id": "v"}, headers={"X-API-Key": KEY})
        assert status == 422 and b"mode" in body, body[:500]
    finally:
        prism.stop()
    with open(prism.log, errors="replace") as log:
        text = log.read()
    # forwarded answers that did not match the document are logged as violations
    violations = [l for l in text.splitlines()
                  if "Violation" in l and "mode" not in l and "targetingKey" not in l]
    assert not violations, "\n".join(violations[:20])
    assert "upstream call" in text.lower() or "forward" in text.lower(), text[-2000:]


# ---- the property run -----------------------------------------------------------

class Spec:
    """The served document, its operations, and schema → strategy."""

    def __init__(self, doc):
        self.doc = doc
        self.resolver = RefResolver.from_schema(doc)

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            obj = self.resolver.resolve(obj["$ref"])[1]
        return obj

    def validator(self, schema):
        return Draft202012Validator(schema, resolver=self.resolver)

    def operations(self):
        """(path, method, operation), the path item's parameters added to the operation's."""
        for path, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    op = dict(item[method])
                    op["parameters"] = item.get("parameters", []) + op.get("parameters", [])
                    yield path, method, op

    # -- valid instances of a schema
    def values(self, schema, depth=0):
        schema = self.deref(schema)
        if schema is True or schema == {}:
            scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(CHARS, max_size=5)
            return st.recursive(scalars,
                                lambda inner: st.lists(inner, max_size=2) |
                                st.dictionaries(st.text(CHARS, max_size=4), inner, max_size=2),
                                max_leaves=4)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.values(s, depth + 1) for s in schema[key]]).filter(
                    self.validator(schema).is_valid)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items()
                      if k not in ("allOf", "unevaluatedProperties")}
            props = {}
            for part in [self.deref(s) for s in schema["allOf"]] + [merged]:
                props.update(part.get("properties", {}))
            merged["properties"] = props
            merged["additionalProperties"] = False
            return self.values(merged, depth + 1)
        types = schema.get("type", "object" if "properties" in schema else None)
        if isinstance(types, list):
            return st.one_of([self.values(dict(schema, type=t), depth) for t in types])
        if types == "null":
            return st.none()
        if types == "boolean":
            return st.booleans()
        if types == "integer":
            return st.integers(schema.get("minimum", -10**6), 10**6)
        if types == "number":
            return st.floats(schema.get("minimum", -1e6), 1e6, allow_nan=False)
        if types == "string":
            return st.text(CHARS, min_size=schema.get("minLength", 0), max_size=12)
        if types == "array":
            return st.lists(self.values(schema.get("items", {}), depth + 1),
                            min_size=schema.get("minItems", 0),
                            max_size=min(schema.get("maxItems", 3), 3))
        if types == "object" or types is None:
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            fixed = {k: self.values(v, depth + 1) for k, v in props.items() if k in required}
            optional = {k: self.values(v, depth + 1) for k, v in props.items() if k not in required}
            base = st.fixed_dictionaries(fixed, optional=optional)
            extra = schema.get("additionalProperties", True)
            if isinstance(extra, dict) and not props and depth < 4:
                base = st.dictionaries(st.text(CHARS, min_size=1, max_size=6),
                                       self.values(extra, depth + 1), max_size=3)
            return base.filter(self.validator(schema).is_valid)
        return st.none()


def mutate(value):
    """Strategies for an invalid variant of a JSON value that was valid."""
    wrong = st.sampled_from([5, "x", True, None, [1], {"k": 1}])
    options = [st.just(b"not json"), st.just(b""), st.just(b"\xff\xfe{"), st.just(b"[1,2]"),
               st.binary(max_size=20)]
    if isinstance(value, dict):
        options.append(st.text(CHARS, min_size=1, max_size=8).filter(lambda k: k not in value)
                       .map(lambda k: dict(value, **{k: 1})))
        if value:
            keys = sorted(value)
            options.append(st.tuples(st.sampled_from(keys), wrong)
                           .map(lambda kv: dict(value, **{kv[0]: kv[1]})))
            options.append(st.sampled_from(keys).map(
                lambda k: {x: y for x, y in value.items() if x != k}))
    return st.one_of(options).map(lambda v: v if isinstance(v, bytes) else json.dumps(v).encode())


def check_answer(spec, op, method, status, headers, body, what):
    """The answer is one the document describes."""
    assert status < 500, (what, status, body[:500])
    responses = op["responses"]
    assert str(status) in responses, (what, status, sorted(responses), body[:500])
    resp = spec.deref(responses[str(status)])
    for name, header in resp.get("headers", {}).items():
        if spec.deref(header).get("required"):
            assert name.lower() in headers, (what, status, name, headers)
    content = resp.get("content")
    if not content or method == "head":
        assert body == b"" or not content, (what, status, body[:300])
        return
    ctype = headers.get("content-type", "").split(";")[0].strip()
    assert ctype in content, (what, status, ctype, sorted(content))
    schema = content[ctype].get("schema")
    if ctype == "application/json" and schema is not None:
        doc = json.loads(body.decode("utf-8", "strict"))
        errors = sorted(spec.validator(schema).iter_errors(doc), key=str)
        assert not errors, (what, status, str(errors[0])[:1500], body[:500])


def request_strategy(spec, path, method, op):
    """(path, query, headers, body, valid) for one operation."""
    params = [spec.deref(p) for p in op.get("parameters", [])]

    def path_value(p):
        if p["name"] == "envId":
            return st.sampled_from([ENV, ENV, "env_other"])
        if p["name"] == "flagKey":  # the sample configuration's flags (conf/sample-bucketing.json)
            return st.sampled_from(OFREP_FLAGS) | \
                st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
                        min_size=1, max_size=8)
        # httpd's core answers an encoded NUL or slash in a path itself (404 HTML) before any
        # module runs (AllowEncodedSlashes): not ours to describe (doc/openapi.md)
        return st.sampled_from(["c_ab", "ab-button", "c_vip", "c_geo", "nope"]) | \
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
                    min_size=1, max_size=8)

    path_params = st.fixed_dictionaries({p["name"]: path_value(p) for p in params
                                         if p["in"] == "path"})
    query_valid = st.fixed_dictionaries({}, optional={p["name"]: spec.values(p["schema"])
                                                      for p in params if p["in"] == "query"})
    query_any = st.dictionaries(st.sampled_from([p["name"] for p in params if p["in"] == "query"]
                                                or ["x"]), st.text(CHARS, max_size=6), max_size=3)
    keys = st.sampled_from([{"X-API-Key": KEY}, {"Authorization": "Bearer " + KEY}, {},
                            {"X-API-Key": "wrong"}])
    body = st.just(None)
    if "requestBody" in op:
        schema = spec.deref(op["requestBody"])["content"]["application/json"]["schema"]
        valid = spec.values(schema)
        validator = spec.validator(schema)

        def invalid(data):
            try:
                return not validator.is_valid(json.loads(data.decode("utf-8")))
            except ValueError:
                return True
        body = st.one_of(valid.map(lambda v: (json.dumps(v).encode(), True)),
                         valid.flatmap(mutate).filter(invalid).map(lambda b: (b, False)))
    return st.tuples(path_params, st.one_of(query_valid, query_any), keys, body)


def fill(path, values):
    for name, value in values.items():
        path = path.replace("{%s}" % name, urllib.parse.quote(value, safe=""))
    return path


def run_properties(f, spec):
    ops = list(spec.operations())
    assert len(ops) >= 30
    seen = {}  # (method, path) -> statuses answered
    for path, method, op in ops:
        if path == "/v2/swagger/swagger-initializer.js":
            pass  # 404 here (no Swagger UI configured): documented, checked like the rest
        strategy = request_strategy(spec, path, method, op)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def one(case):
            path_params, query, auth, body = case
            target = fill(path, path_params)
            if query:
                target += "?" + urllib.parse.urlencode(query)
            payload = body[0] if body else None
            status, headers, data = http_request(f.base_url, target, payload, method=method.upper(),
                                                 headers=auth, timeout=30)
            what = (method, target, auth, payload[:200] if payload else None)
            check_answer(spec, op, method, status, headers, data, what)
            seen.setdefault((method, path), set()).add(status)
            if body and not body[1] and auth and status not in (401, 413):
                assert 400 <= status < 500, what  # an invalid body is refused
        one()
    # the OFREP operations answer their main statuses whatever the run drew (checked as above)
    single = spec.doc["paths"][OFREP + "/flags/{flagKey}"]["post"]
    for key, body, want in [("btnColor", {"context": {"targetingKey": "v1"}}, 200),
                            ("vipFeature", {"context": {"targetingKey": "v1", "isVIP": True}}, 200),
                            ("vipFeature", {"context": {"targetingKey": "v1"}}, 404),
                            ("nope", {"context": {"targetingKey": "v1"}}, 404),
                            ("btnColor", {"context": {"targetingKey": 7}}, 400),
                            ("btnColor", {"context": {}}, 400), ("btnColor", "{", 400)]:
        status, headers, data = http_request(f.base_url, OFREP + "/flags/" + key, body,
                                             headers={"X-API-Key": KEY})
        check_answer(spec, single, "post", status, headers, data, (key, body))
        assert status == want, (key, body, status, data[:300])
        seen.setdefault(("post", OFREP + "/flags/{flagKey}"), set()).add(status)
    assert all(seen.get((m, p)) for p, m, _ in ops), "an operation was not exercised"
    # a method no route documents: 405 with Allow, as components.responses.MethodNotAllowed says
    mna = {"405": spec.doc["components"]["responses"]["MethodNotAllowed"]}
    ofrep_mna = {"405": spec.doc["components"]["responses"]["OfrepMethodNotAllowed"]}
    for path, method in [("/v2/campaigns", "GET"), ("/v2/flags", "DELETE"), ("/v2/metrics", "POST"),
                         ("/v2/swagger/doc.json", "PUT"), (OFREP + "/flags", "GET"),
                         (OFREP + "/flags/btnColor", "PUT")]:
        status, headers, data = http_request(f.base_url, path, "{}", method=method,
                                             headers={"X-API-Key": KEY})
        check_answer(spec, {"responses": ofrep_mna if "/ofrep/" in path else mna},
                     method.lower(), status, headers, data, (method, path))
    # the bulk route's If-None-Match (a header the run does not generate): 304 as documented
    bulk = spec.doc["paths"][OFREP + "/flags"]["post"]
    body = json.dumps({"context": {"targetingKey": "v1", "isVIP": True}})
    status, headers, data = http_request(f.base_url, OFREP + "/flags", body,
                                         headers={"X-API-Key": KEY})
    check_answer(spec, bulk, "post", status, headers, data, "bulk")
    assert status == 200, data[:300]
    for tag in [headers["etag"], "W/" + headers["etag"], '"x", ' + headers["etag"], "*"]:
        status, headers2, data = http_request(f.base_url, OFREP + "/flags", body,
                                              headers={"X-API-Key": KEY, "If-None-Match": tag})
        check_answer(spec, bulk, "post", status, headers2, data, ("bulk", tag))
        assert status == 304 and headers2["etag"] == headers["etag"], (tag, status, headers2)


@pytest.mark.parametrize("kind", KINDS)
def test_property_run_against_the_document(kind, front, workdir):
    f = front(kind, api_key=KEY)
    spec = Spec(fetch_doc(f))
    run_properties(f, spec)


# ---- the page in a browser --------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_reference_page_renders_in_chromium(kind, front, workdir):
    browser = chromium_binary()
    assert browser, "chromium is not installed (Debian package chromium, see tests/run)"
    f = front(kind)
    doc = fetch_doc(f)
    url = f.base_url + "/v2/swagger/index.html"
    p = subprocess.run([browser] + CHROMIUM_FLAGS +
                       ["--user-data-dir=" + tempfile.mkdtemp(dir=str(workdir)),
                        "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert 'id="routes"' in dom, dom[:500]
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                anchor = "op-%s-%s" % (method, "".join(c if c.isalnum() else "-" for c in path))
                assert 'id="%s"' % anchor in dom, (method, path)
                assert "<code>%s</code>" % path.replace("&", "&amp;") in dom, path
    for name in doc["components"]["schemas"]:
        assert 'id="schema-%s"' % name in dom, name
    console = [l for l in p.stderr.splitlines()
               if "CONSOLE" in l or "Content Security Policy" in l or "Refused to" in l]
    assert not console, "\n".join(console[:20])
    if kind != "httpd":
        return  # the same bytes: one screenshot is enough
    # the style sheet applied (under the page's CSP): a screenshot is not black on white only
    from PIL import Image
    shot = os.path.join(str(workdir), "swagger-%s.png" % kind)
    p = subprocess.run([browser] + CHROMIUM_FLAGS +
                       ["--user-data-dir=" + tempfile.mkdtemp(dir=str(workdir)),
                        "--screenshot=" + shot, "--window-size=1200,900", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and os.path.exists(shot), p.stderr[-2000:]
    pixels = Image.open(shot).convert("RGB").getdata()
    colored = sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 40)
    assert colored > 500, "the method badges did not render (%d coloured pixels)" % colored


@pytest.mark.parametrize("kind", KINDS)
def test_swagger_ui_setting_points_the_page_at_it(kind, front):
    f = front(kind, swagger_ui="/static/swagger-ui/")
    status, headers, body = f.get("/v2/swagger/index.html")
    assert status == 200, body[:300]
    assert b'<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>' in body, body
    assert b'href="/static/swagger-ui/swagger-ui.css"' in body
    status, headers, body = f.get("/v2/swagger/swagger-initializer.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b'url: "doc.json"' in body


@pytest.mark.parametrize("kind", ["httpd"])
def test_swagger_ui_renders_the_document_in_chromium(kind, front, tools, workdir):
    """With the setting, the page loads the real Swagger UI (npm swagger-ui-dist, served by a
    static server of its own) and that renders every route of doc.json."""
    browser = chromium_binary()
    assert browser, "chromium is not installed (Debian package chromium, see tests/run)"
    port = free_port()
    static = Proc(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port),
                   "--directory", os.path.join(TOOLS, "node_modules", "swagger-ui-dist")],
                  os.path.join(str(workdir), "static.log"))
    try:
        wait_port(port)
        f = front(kind, swagger_ui="http://127.0.0.1:%d/" % port)
        doc = fetch_doc(f)
        p = subprocess.run([browser] + CHROMIUM_FLAGS +
                           ["--user-data-dir=" + tempfile.mkdtemp(dir=str(workdir)),
                            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
                            "--dump-dom", f.base_url + "/v2/swagger/index.html"],
                           capture_output=True, text=True, timeout=120)
    finally:
        static.stop()
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert "swagger-ui" in dom and "opblock" in dom, dom[:2000]
    for path in doc["paths"]:
        assert 'data-path="%s"' % path in dom, path
    errors = [l for l in p.stderr.splitlines() if "CONSOLE" in l and "rror" in l]
    assert not errors, "\n".join(errors[:20])

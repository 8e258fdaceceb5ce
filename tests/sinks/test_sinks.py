"""Event sinks on object storage, end to end, against real API-compatible
servers from npm (pinned in package.json / package-lock.json, installed by
`npm ci` here on first use): s3rver for S3, Azurite (Microsoft's emulator)
for Azure Blob. Each is started on a free loopback port with a temporary
directory and stopped by PID.

What is checked, and with what:
  * S3: objects named PREFIX/YYYY/MM/DD/HH/<server>-<seq>.jsonl.gz by the hour
    of their first event, gzipped JSON lines, one hit per line with its spool
    id; read back with boto3 (Debian's python3-boto3), ETag = MD5 of the body;
  * Azure: the same read back by azure_client.py (plain HTTP, its own Shared
    Key signing and service SAS), the stored Content-MD5 = MD5 of the body;
    authorisation by account key (connection string) and by SAS;
  * the start-up test write's failures named in the log: bad credentials,
    missing bucket or container, a SAS without write permission, none at all;
    the events stay in the spool;
  * decision-fcgi serving under load, killed with SIGKILL and restarted, the
    storage stopped for a while and started again: every event of an
    answered request is in the objects at least once (counted by hit id),
    and the sink's figures are in /metrics.
"""
import base64
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse

import boto3
import pytest

import azure_client
import prom_parse
from harness import (DECISION_FCGI, SAMPLE_BUCKETING, Httpd, Proc, fcgi_call, free_port,
                     http_request, make_world_readable_dir, wait_port, wait_until)
from test_events import ENV, eval_spool, ready_segments, spool_records, visitor

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "node_modules", ".bin")
S3_KEYS = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
           "AWS_EC2_METADATA_DISABLED": "true"}
KEY_RE = re.compile(r"^(?P<prefix>.*?)/?(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<h>\d\d)/"
                    r"(?P<server>[A-Za-z0-9._-]+?)-(?P<seq>\d{13}-\d+-\d+-[0-9a-f]{8}"
                    r"(-o\d+-\d+)?)\.jsonl\.gz$")


def clean_env(extra=None):
    """Our environment without cloud settings that could leak into a test."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "AZURE_", "EVENTS_", "CACHE_", "ENV_ID"))}
    env["HOME"] = "/nonexistent"  # no ~/.aws of the person running the tests
    env.update(extra or {})
    return env


@pytest.fixture(scope="module", autouse=True)
def npm_servers():
    """npm ci in tests/sinks when node_modules is missing. CI installs npm
    (tests/run); without it this suite fails rather than skips."""
    if not (os.path.exists(os.path.join(BIN, "s3rver")) and
            os.path.exists(os.path.join(BIN, "azurite-blob"))):
        npm = shutil.which("npm")
        assert npm, "npm is not installed: apt-get install nodejs npm"
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name, version in (("s3rver", "3.7.1"), ("azurite", "3.35.0")):
        with open(os.path.join(HERE, "node_modules", name, "package.json")) as f:
            assert json.load(f)["version"] == version, "run npm ci in tests/sinks"


class S3rver:
    def __init__(self, tmp, bucket="events"):
        self.dir, self.bucket, self.port, self.proc = str(tmp / "s3rver"), bucket, free_port(), None
        os.makedirs(self.dir, exist_ok=True)
        self.log = str(tmp / "s3rver.log")

    def start(self):
        self.proc = Proc([os.path.join(BIN, "s3rver"), "-d", self.dir, "-a", "127.0.0.1",
                          "-p", str(self.port), "--silent", "--configure-bucket", self.bucket],
                         self.log)
        wait_port(self.port, timeout=30)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def uri(self, prefix, **options):
        q = dict({"endpoint": self.endpoint, "region": "us-east-1"}, **options)
        return "s3://%s/%s?%s" % (self.bucket, prefix, urllib.parse.urlencode(q))

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="S3RVER",
                            aws_secret_access_key="S3RVER", region_name="us-east-1")

    def objects(self, prefix):
        """{key: (head, body bytes)} of the bucket under prefix, read with boto3."""
        c, out = self.client(), {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                 Prefix=prefix):
            for o in page.get("Contents", []):
                try:
                    got = c.get_object(Bucket=self.bucket, Key=o["Key"])
                except c.exceptions.NoSuchKey:
                    continue  # deleted since listed: the sink's write probe
                out[o["Key"]] = (got, got["Body"].read())
        return out


class Azurite:
    def __init__(self, tmp):
        self.dir, self.port, self.proc = str(tmp / "azurite"), free_port(), None
        os.makedirs(self.dir, exist_ok=True)
        self.log = str(tmp / "azurite.log")

    def start(self):
        self.proc = Proc([os.path.join(BIN, "azurite-blob"), "--blobHost", "127.0.0.1",
                          "--blobPort", str(self.port), "--location", self.dir, "--silent",
                          "--disableTelemetry"], self.log)
        wait_port(self.port, timeout=60)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def client(self):
        return azure_client.BlobClient("127.0.0.1", self.port)

    @property
    def endpoint(self):
        return self.client().endpoint

    def connection_string(self):
        return "UseDevelopmentStorage=true;BlobEndpoint=%s" % self.endpoint

    def objects(self, container, prefix):
        c, out = self.client(), {}
        for name in c.list_blobs(container):
            got = c.get_blob(container, name, missing_ok=True) if name.startswith(prefix) else None
            if got is not None:  # None: deleted since listed, the sink's write probe
                out[name] = got
        return out


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    s = S3rver(tmp_path_factory.mktemp("s3")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def azure(tmp_path_factory):
    a = Azurite(tmp_path_factory.mktemp("azure")).start()
    a.client().create_container("events")
    yield a
    a.stop()


def ship(spool, collector, env, *extra, timeout=60):
    args = [DECISION_FCGI, "ship", "--spool", str(spool), "--collector", collector, "--once",
            "--backoff-min", "50", "--backoff-max", "300", "--log-level", "info"] + list(extra)
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       env=clean_env(env))
    assert "Sanitizer" not in r.stderr, r.stderr
    return r


def lines_of(objects):
    """Every JSON line of every object: [(key, hit dict)], checking each key's name."""
    out = []
    for key, body in objects:
        m = KEY_RE.match(key)
        assert m, key
        hits = [json.loads(l) for l in gzip.decompress(body).decode().splitlines()]
        assert hits, key
        # named by the hour (UTC) of its first event
        first = time.gmtime(hits[0]["ts"] / 1000)
        assert (int(m["y"]), int(m["m"]), int(m["d"]), int(m["h"])) == \
            (first.tm_year, first.tm_mon, first.tm_mday, first.tm_hour), key
        out += [(key, h) for h in hits]
    return out


def check_hits_are_the_spool(records, lines):
    """Each spooled hit exactly once, as the collector format plus qt, ts, hit_id."""
    by_id = {h["hit_id"]: h for _, h in lines}
    assert len(by_id) == len(lines) == len(records)
    for hid, received, _, hit in records:
        got = dict(by_id[hid])
        assert got.pop("hit_id") == hid and got.pop("ts") == received
        assert isinstance(got.pop("qt"), int)
        assert got == hit


def test_s3_objects_are_gzipped_json_lines_named_by_hour(tmp_path, s3):
    spool = tmp_path / "spool"
    eval_spool([visitor(i) for i in range(30)], spool)
    records = spool_records(spool)
    assert len(records) > 60
    r = ship(spool, s3.uri("app/one", server="web-1"), S3_KEYS)
    assert r.returncode == 0, r.stderr
    assert "DC10735" in r.stderr  # the start-up test write
    assert not ready_segments(spool), "acknowledged segments are deleted"

    objects = s3.objects("app/one/")
    assert objects and not [k for k in objects if "_probe" in k], "the probe is deleted"
    for key, (head, body) in objects.items():
        assert KEY_RE.match(key)["server"] == "web-1"
        assert head["ContentType"] == "application/gzip"
        assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    check_hits_are_the_spool(records, lines_of((k, b) for k, (_, b) in objects.items()))


def test_azure_objects_with_shared_key_and_with_sas(tmp_path, azure):
    spool = tmp_path / "spool"
    eval_spool([visitor(i) for i in range(20)], spool)
    records = spool_records(spool)
    r = ship(spool, "azblob://devstoreaccount1/events/key", {
        "AZURE_STORAGE_CONNECTION_STRING": azure.connection_string()})
    assert r.returncode == 0, r.stderr
    assert "DC10735" in r.stderr and not ready_segments(spool)
    objects = azure.objects("events", "key/")
    assert objects and not [k for k in objects if "_probe" in k]
    for key, (headers, body) in objects.items():
        headers = {k.lower(): v for k, v in headers.items()}
        assert headers["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
        assert headers["content-type"] == "application/gzip"
    check_hits_are_the_spool(records, lines_of((k, b) for k, (_, b) in objects.items()))

    # a SAS that may create and write but not delete: uploads work, the probe stays (warned)
    spool2 = tmp_path / "spool2"
    eval_spool([visitor(i) for i in range(5)], spool2)
    records2 = spool_records(spool2)
    sas = azure.client().sas("events", "cw")
    uri = "azblob://devstoreaccount1/events/sas?%s" % urllib.parse.urlencode(
        {"endpoint": azure.endpoint, "sas": sas})
    r = ship(spool2, uri, {})
    assert r.returncode == 0, r.stderr
    assert "DC10734" in r.stderr and "may not delete" in r.stderr
    sig = urllib.parse.parse_qs(sas)["sig"][0]
    assert "sas=***" in r.stderr and sig not in r.stderr and urllib.parse.quote(sig) not in r.stderr
    objects = azure.objects("events", "sas/")
    assert [k for k in objects if "_probe" in k]
    check_hits_are_the_spool(records2, lines_of((k, b) for k, (_, b) in objects.items()
                                                if "_probe" not in k))


def test_start_up_test_write_names_what_failed(tmp_path, s3, azure):
    spool = tmp_path / "spool"
    eval_spool([visitor(1)], spool)
    before = sorted(ready_segments(spool))
    sas_read_only = azure.client().sas("events", "r")
    # (s3rver checks the access key id but not SigV4 signatures nor Content-MD5;
    # Azurite checks both Shared Key signatures and Content-MD5)
    cases = [
        (s3.uri("x"), dict(S3_KEYS, AWS_ACCESS_KEY_ID="AKIAUNKNOWN"),
         ["credentials: HTTP 403 InvalidAccessKeyId", "does not accept the credentials",
          "from the environment"]),
        (s3.uri("x").replace("s3://events/", "s3://no-such-bucket/"), S3_KEYS,
         ["bucket/container: HTTP 404 NoSuchBucket", "the bucket no-such-bucket does not exist"]),
        (s3.uri("x"), {"AWS_EC2_METADATA_DISABLED": "true"},
         ["credentials: no AWS credentials", "no usable credentials"]),
        ("azblob://devstoreaccount1/missing?endpoint=" + azure.endpoint,
         {"AZURE_STORAGE_CONNECTION_STRING": azure.connection_string()},
         ["bucket/container: HTTP 404 ContainerNotFound",
          "container missing of account devstoreaccount1 does not exist"]),
        ("azblob://devstoreaccount1/events?endpoint=" + azure.endpoint,
         {"AZURE_STORAGE_SAS_TOKEN": sas_read_only},
         ["permission: HTTP 403 AuthorizationPermissionMismatch", "may not write objects"]),
        ("azblob://devstoreaccount1/events?endpoint=" + azure.endpoint, {},
         ["credentials: no credentials", "AZURE_STORAGE_KEY"]),
        # a wrong account key: Azurite answers AuthorizationFailure where Azure says
        # AuthenticationFailed, so the line names the code and the key's origin
        ("azblob://devstoreaccount1/events?endpoint=%s&key=%s" % (
            azure.endpoint, urllib.parse.quote(base64.b64encode(b"x" * 64).decode())), {},
         ["HTTP 403 AuthorizationFailure", "account key from key= in the URI"]),
    ]
    for uri, env, needles in cases:
        r = ship(spool, uri, env, "--deadline", "1")
        assert r.returncode != 0, (uri, r.stderr)
        line = [l for l in r.stderr.splitlines() if "DC10733" in l]
        assert line, (uri, r.stderr)
        for needle in needles:
            assert needle in line[0], (needle, line[0])
        assert "events stay in the spool" in line[0]
        assert sorted(ready_segments(spool)) == before, "nothing is deleted on a failure"


def test_collector_setting_is_checked_with_secrets_hidden(tmp_path):
    def check(collector):
        env = clean_env({"ENV_ID": ENV, "BUCKETING_FILE": SAMPLE_BUCKETING,
                         "EVENTS_SPOOL_DIR": str(tmp_path / "s"), "EVENTS_COLLECTOR": collector})
        return subprocess.run([DECISION_FCGI, "--check"], env=env, capture_output=True,
                              text=True, timeout=30)

    assert check("s3://events/app?region=eu-west-3&interval=2s").returncode == 0
    assert check("azblob://acct1/events/app?key=c2VjcmV0").returncode == 0
    r = check("azblob://acct1/Bad_Container?key=c2VjcmV0")
    assert r.returncode == 2 and "container" in r.stderr
    assert "c2VjcmV0" not in r.stderr and "key=***" in r.stderr
    r = check("s3://events/app?colour=blue")
    assert r.returncode == 2 and 'unknown option "colour"' in r.stderr


class Server:
    """decision-fcgi --listen with a spool and an object store sink."""

    def __init__(self, tmp, env):
        self.port = free_port()
        self.log = str(tmp / ("decision-fcgi-%d.log" % self.port))
        self.proc = Proc([DECISION_FCGI, "--listen", "127.0.0.1:%d" % self.port, "--threads",
                          "4"], self.log, env=env)
        wait_until(self._accepts, timeout=30, what="decision-fcgi listening")

    def _accepts(self):
        assert self.proc.alive(), self.proc.output()
        try:
            wait_port(self.port, timeout=0.2)
            return True
        except TimeoutError:
            return False

    def decide(self, i):
        body = json.dumps({"visitor_id": "vis-%04d" % i, "context": {"isVIP": True},
                           "trigger_hit": True})
        status, _, out = fcgi_call(("127.0.0.1", self.port), "POST", "/v2/campaigns", body)
        assert status == 200, out
        return json.loads(out)

    def metrics(self):
        status, _, out = fcgi_call(("127.0.0.1", self.port), "GET", "/metrics")
        assert status == 200
        return out.decode()


def expected_hits(answers):
    """(vid, caid, vaid) of every CAMPAIGN hit an answered request produced."""
    return {(a["visitorId"], c["variationGroupId"], c["variation"]["id"])
            for a in answers for c in a["campaigns"]}


@pytest.mark.parametrize("backend", ["s3", "azblob"])
def test_killed_server_and_storage_outage_lose_no_acknowledged_event(tmp_path, request, backend):
    store = request.getfixturevalue("s3" if backend == "s3" else "azure")
    prefix = "run-%s" % backend
    if backend == "s3":
        collector = store.uri(prefix, interval="300ms", server="srv")
        creds = S3_KEYS

        def objects():
            return {k: b for k, (_, b) in store.objects(prefix + "/").items()}
    else:
        collector = "azblob://devstoreaccount1/events/%s?interval=300ms&server=srv" % prefix
        creds = {"AZURE_STORAGE_CONNECTION_STRING": store.connection_string()}

        def objects():
            return {k: b for k, (_, b) in store.objects("events", prefix + "/").items()}
    spool = tmp_path / "spool"
    env = clean_env(dict(creds, ENV_ID=ENV, BUCKETING_FILE=SAMPLE_BUCKETING,
                         EVENTS_SPOOL_DIR=str(spool),
                         EVENTS_SPOOL_OPTIONS="segment-age=300ms",
                         METRICS_STATUS_PATH="/v2/status",
                         EVENTS_COLLECTOR=collector))
    answers, seen = [], {}
    server = Server(tmp_path, env)
    try:
        answers += [server.decide(i) for i in range(0, 40)]
        wait_until(objects, timeout=20, what="a first object")
        answers += [server.decide(i) for i in range(40, 60)]
        server.proc.send_signal(signal.SIGKILL)  # its open segment stays behind
        server.proc.stop()
        server = Server(tmp_path, env)           # adopts it
        answers += [server.decide(i) for i in range(60, 80)]

        seen.update(objects())
        store.stop()                             # the storage goes away for a while
        answers += [server.decide(i) for i in range(80, 120)]
        time.sleep(2)
        assert ready_segments(spool), "nothing is deleted while the storage is down"
        metrics = server.metrics()
        assert re.search(r'decision_sink_errors_total\{backend="%s",op="send"\} [1-9]' % backend,
                         metrics)
        store.start()

        answers += [server.decide(i) for i in range(120, 140)]
        want = expected_hits(answers)

        def delivered():
            seen.update(objects())
            got = {(h["vid"], h["caid"], h["vaid"]) for _, h in lines_of(seen.items())
                   if h["t"] == "CAMPAIGN"}
            return want <= got
        wait_until(delivered, timeout=60, interval=0.5, what="every answered event uploaded")
        metrics = server.metrics()
        sends = re.search(r'decision_sink_operations_total\{backend="%s",op="send"\} (\d+)'
                          % backend, metrics)
        assert sends and int(sends.group(1)) >= 2
        families = prom_parse.parse(metrics)  # strict: histograms whole, types, help
        assert prom_parse.value(families, "decision_sink_sent_bytes_total", backend=backend) > 0
        assert prom_parse.value(families, "decision_sink_operation_duration_seconds",
                                "decision_sink_operation_duration_seconds_count",
                                backend=backend, op="send") == int(sends.group(1))
        p = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
        status, _, page = fcgi_call(("127.0.0.1", server.port), "GET", "/v2/status")
        assert status == 200 and re.search(rb"%s: \d+ sends \(\d+ failed" % backend.encode(),
                                           page), page[-3000:]
        assert server.proc.stop() == 0
    finally:
        server.proc.stop()
    log = open(server.log).read()
    assert "state retrying" in log and "state ok" in log

    seen.update(objects())
    lines = lines_of(seen.items())
    assert expected_hits(answers) <= {(h["vid"], h["caid"], h["vaid"]) for _, h in lines
                                      if h["t"] == "CAMPAIGN"}
    # at least once: a copy can come from the kill (an object acknowledged, its segments
    # not yet deleted); within an object each hit is there once
    for key in seen:
        in_key = [h["hit_id"] for k, h in lines if k == key]
        assert len(in_key) == len(set(in_key)), key
    assert not ready_segments(spool) and not glob.glob(os.path.join(spool, "seg-*.open"))


def test_httpd_ships_to_azure_from_its_watchdog_child(azure):
    """The module's shipper (one child, mod_watchdog) on the same sink, the account
    key in the URI: masked in every line of the error log."""
    rundir = make_world_readable_dir("dc-sinks-httpd-")
    azure_client_key = azure_client.DEV_KEY
    uri = "azblob://devstoreaccount1/events/httpd?%s" % urllib.parse.urlencode(
        {"endpoint": azure.endpoint, "key": azure_client_key, "interval": "300ms"})
    body = ("DecisionEnvironment %s\nDecisionBucketingFile %s\n"
            "DecisionSpool %s\nDecisionSpoolOptions segment-age=300ms\nDecisionCollector %s\n"
            "<Location /v2>\n  SetHandler decision\n</Location>\n" % (
                ENV, SAMPLE_BUCKETING, os.path.join(rundir, "spool"), uri))
    h = Httpd(rundir, body, mpm="event")
    try:
        h.start()
        vids = ["httpd-%d" % n for n in range(10)]
        for vid in vids:
            status, _, data = http_request(h.base_url, "/v2/activate", {
                "cid": ENV, "vid": vid, "caid": "vg_ab", "vaid": "v_ab_red"})
            assert status == 204, data

        def uploaded():
            objects = azure.objects("events", "httpd/")
            return {h2["vid"] for _, h2 in lines_of((k, b) for k, (_, b) in objects.items())}
        wait_until(lambda: set(vids) <= uploaded(), timeout=30, interval=0.5,
                   what="the activations in Azure")
        # the shipping child's figures, through shared memory, from whichever child answers
        status, _, data = http_request(h.base_url, "/v2/metrics", None, method="GET")
        assert status == 200
        sink = json.loads(data)["spool"]["sink"]
        assert sink["backend"] == "azblob" and sink["send"]["operations"] >= 2, sink
        assert sink["delete"]["operations"] == 1 and sink["sent_bytes"] > 0, sink
        log = h.log()
        assert "DC10735" in log  # the start-up test write, from the shipping child
        assert azure_client_key not in log and urllib.parse.quote(azure_client_key) not in log
    finally:
        h.stop()
        assert h.sanitizer_reports() == ""
        shutil.rmtree(rundir, ignore_errors=True)


def test_s3_requests_carry_a_sigv4_signature_botocore_agrees_with(tmp_path):
    """s3rver does not check SigV4 signatures: a recording server takes the
    requests instead, and botocore (the AWS SDK's own signer) recomputes each
    one's signature from what arrived."""
    import http.server
    import threading
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    seen = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def _take(self):
            n = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, dict(self.headers.items()),
                         self.rfile.read(n)))
            self.send_response(200 if self.command == "PUT" else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_PUT = do_DELETE = _take

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        spool = tmp_path / "spool"
        eval_spool([visitor(i) for i in range(3)], spool)
        uri = "s3://events/sig v4?%s" % urllib.parse.urlencode(
            {"endpoint": "http://127.0.0.1:%d" % srv.server_address[1], "region": "eu-west-3"})
        r = ship(spool, uri, dict(S3_KEYS, AWS_SESSION_TOKEN="tok/en=="))
        assert r.returncode == 0, r.stderr
    finally:
        srv.shutdown()
    assert [m for m, _, _, _ in seen] == ["PUT", "DELETE", "PUT"]  # probe put, its delete, data
    for method, path, headers, body in seen:
        auth = headers["Authorization"]
        m = re.match(r"AWS4-HMAC-SHA256 Credential=S3RVER/(\d{8})/eu-west-3/s3/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$", auth)
        assert m, auth
        signed = m.group(2).split(";")
        assert {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"} <= set(signed)
        assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
        if method == "PUT":
            assert "content-md5" in signed
            assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
            assert path.startswith("/events/sig%20v4/")
        lower = {k.lower(): v for k, v in headers.items()}
        req = AWSRequest(method=method, url="http://%s%s" % (lower["host"], path), data=body,
                         headers={k: lower[k] for k in signed})
        req.context["timestamp"] = lower["x-amz-date"]
        signer = S3SigV4Auth(Credentials("S3RVER", "S3RVER", "tok/en=="), "s3", "eu-west-3")
        canonical = signer.canonical_request(req)
        want = signer.signature(signer.string_to_sign(req, canonical), req)
        assert m.group(3) == want, canonical

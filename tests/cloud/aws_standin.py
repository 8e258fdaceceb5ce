#!/usr/bin/python3
"""A loopback stand-in for the AWS pieces around a DynamoDB-compatible server.

One HTTP server that plays:
  * the ECS/EKS container credentials endpoint (GET /creds, checking the
    Authorization token when --auth-token is given);
  * EC2 IMDSv2 (PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/[ROLE]);
  * a SigV4-checking proxy for everything else: each request's signature is
    recomputed with botocore's signer (the official AWS SDK for Python) from
    the credentials this stand-in issued (or --static AK:SK), the request is
    refused (403, as AWS does) when the key is unknown, the token does not
    match, the credentials have expired or the signature is wrong, and
    forwarded to --upstream (dynalite) otherwise.
Both credential sources issue temporary credentials that expire after
--lifetime seconds, with a new key id each time. GET /_stats answers the
counts as JSON (with the number of TCP connections accepted, to see keep-alive).
"""
import argparse
import datetime
import http.client
import http.server
import json
import secrets
import threading
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

IMDS_TOKEN = "imds-" + secrets.token_hex(8)


def aws_error(name, message=None):
    doc = {"__type": "com.amazon.coral.service#" + name}
    if message:
        doc["message"] = message
    return json.dumps(doc)
ROLE = "decision-test-role"


class State:
    def __init__(self, lifetime, static):
        self.lock = threading.Lock()
        self.lifetime = lifetime
        self.keys = {}  # access key id -> (secret, token or None, expires epoch or None)
        self.stats = {"issued": 0, "ok": 0, "expired": 0, "unknown_key": 0,
                      "bad_signature": 0, "bad_token": 0, "unsigned": 0, "keys_used": [],
                      "connections": 0}
        if static:
            ak, sk = static.split(":", 1)
            self.keys[ak] = (sk, None, None)

    def issue(self):
        with self.lock:
            self.stats["issued"] += 1
            ak = "ASIATEST%06d" % self.stats["issued"]
            sk = secrets.token_urlsafe(30)
            token = secrets.token_urlsafe(60)
            expires = time.time() + self.lifetime
            self.keys[ak] = (sk, token, expires)
        exp = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
        return {"AccessKeyId": ak, "SecretAccessKey": sk, "Token": token,
                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def count(self, what, key=None):
        with self.lock:
            self.stats[what] += 1
            if key and key not in self.stats["keys_used"]:
                self.stats["keys_used"].append(key)


def parse_authorization(value):
    # AWS4-HMAC-SHA256 Credential=AK/20261206/us-east-1/dynamodb/aws4_request,
    #   SignedHeaders=host;x-amz-date, Signature=hex
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    parts = {}
    for item in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    try:
        ak, date, region, service, _ = parts["Credential"].split("/")
        return ak, date, region, service, parts["SignedHeaders"].split(";"), parts["Signature"]
    except (KeyError, ValueError):
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    upstream = None
    auth_token = None

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.state.count("connections")  # one handler per TCP connection (keep-alive)

    def reply(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self):
        self.body()
        if self.path == "/latest/api/token" and self.headers.get(
                "X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, IMDS_TOKEN, "text/plain")
        self.reply(400, "{}")

    def do_GET(self):
        if self.path == "/_stats":
            with self.state.lock:
                return self.reply(200, json.dumps(self.state.stats))
        if self.path == "/creds":
            if self.auth_token and self.headers.get("Authorization") != self.auth_token:
                return self.reply(401, '{"message":"bad authorization token"}')
            return self.reply(200, json.dumps(self.state.issue()))
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                return self.reply(401, "", "text/plain")
            role = self.path[len("/latest/meta-data/iam/security-credentials/"):]
            if not role:
                return self.reply(200, ROLE, "text/plain")
            if role != ROLE:
                return self.reply(404, "", "text/plain")
            doc = dict(self.state.issue(), Code="Success", Type="AWS-HMAC",
                       LastUpdated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            return self.reply(200, json.dumps(doc))
        self.reply(404, "{}")

    def do_POST(self):
        body = self.body()
        auth = parse_authorization(self.headers.get("Authorization"))
        if not auth:
            self.state.count("unsigned")
            return self.reply(403, aws_error("MissingAuthenticationTokenException"))
        ak, date, region, service, signed, signature = auth
        with self.state.lock:
            known = self.state.keys.get(ak)
        if not known:
            self.state.count("unknown_key")
            return self.reply(400, aws_error("UnrecognizedClientException"))
        sk, token, expires = known
        if expires is not None and time.time() > expires:
            self.state.count("expired", ak)
            return self.reply(400, aws_error("ExpiredTokenException"))
        if token is not None and self.headers.get("X-Amz-Security-Token") != token:
            self.state.count("bad_token", ak)
            return self.reply(403, aws_error("InvalidSignatureException"))
        headers = {h: self.headers.get(h) for h in signed}
        if any(v is None for v in headers.values()):
            self.state.count("bad_signature", ak)
            return self.reply(403, aws_error("InvalidSignatureException",
                                             "a signed header was not sent"))
        req = AWSRequest(method="POST", url="http://%s%s" % (self.headers.get("Host"), self.path),
                         data=body, headers=headers)
        req.context["timestamp"] = self.headers.get("X-Amz-Date")
        signer = SigV4Auth(Credentials(ak, sk, token), service, region)
        expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
        if expected != signature:
            self.state.count("bad_signature", ak)
            return self.reply(403, aws_error("InvalidSignatureException"))
        self.state.count("ok", ak)
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request("POST", self.path, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            self.reply(resp.status, data, resp.getheader("Content-Type") or "application/json")
        except OSError as e:
            self.reply(502, json.dumps({"message": str(e)}))
        finally:
            conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", default="127.0.0.1:8000")
    ap.add_argument("--lifetime", type=float, default=3600)
    ap.add_argument("--static", help="AK:SK also accepted by the proxy")
    ap.add_argument("--auth-token")
    args = ap.parse_args()
    host, _, port = args.upstream.rpartition(":")
    Handler.state = State(args.lifetime, args.static)
    Handler.upstream = (host, int(port))
    Handler.auth_token = args.auth_token
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

"""The local stand-in for the remote Flagship platform: a config CDN and an
event collector on 127.0.0.1, recording what they receive.

CDN:       GET /{env_id}/bucketing.json serves the file set with set_bucketing();
           answers 304 to a matching If-None-Match / If-Modified-Since; can be
           told to fail (status), serve garbage, or stall (delay).
Collector: POST / (any path) records the body; answers the next entry of a
           script (default 200), optionally after a delay. A script entry is a
           status, or {"status": 200, "delay": seconds} for one slow answer.

Used in-process (StandIn(...).start()) by the pytest suites, or standalone:
    python3 tests/standin.py --port 8999 --bucketing conf/sample-bucketing.json
Standalone, it is steered over HTTP (for the C unit tests):
    PUT  /_standin/bucketing/{env_id}   body = the file to serve
    POST /_standin/cdn                  {"status": 500 | null, "garbage": bool, "delay": seconds}
    GET  /_standin/cdn-requests         [[path, If-None-Match, If-Modified-Since, status], ...]
    POST /_standin/collector            {"script": [500, 429, {"status": 200, "delay": 3}],
                                         "default": 200, "delay": seconds, "reset": bool}
    GET  /_standin/hits                 every hit of the accepted batches, in order
    GET  /_standin/collector-requests   [[path, status, X-Decision-Hit-Ids], ...]
"""
import argparse
import email.utils
import hashlib
import http.server
import json
import threading
import time


class StandIn:
    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.files = {}          # env_id -> (bytes, etag, last_modified)
        self.cdn_status = None   # force a status for CDN requests
        self.cdn_garbage = False
        self.cdn_delay = 0.0
        self.cdn_requests = []   # (path, headers dict, status)
        self.collector_script = []  # statuses to answer, consumed in order
        self.collector_default = 200
        self.collector_delay = 0.0
        self.received = []       # (path, headers dict, body bytes) of accepted posts
        self.collector_requests = []  # (path, status, hit ids header) of every post
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/_standin/"):
                    return standin._control(self)
                standin._cdn(self)

            def do_PUT(self):
                standin._control(self)

            def do_HEAD(self):
                standin._cdn(self)

            def do_POST(self):
                if self.path.startswith("/_standin/"):
                    return standin._control(self)
                standin._collect(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = None

    # --- control -----------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def bucketing_url(self, env_id):
        return "%s/%s/bucketing.json" % (self.base_url, env_id)

    @property
    def collector_url(self):
        return self.base_url + "/collect"

    def set_bucketing(self, env_id, doc):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        etag = '"%s"' % hashlib.sha1(body).hexdigest()[:16]
        lm = email.utils.formatdate(time.time(), usegmt=True)
        with self.lock:
            self.files[env_id] = (body, etag, lm)

    def script_collector(self, *statuses):
        with self.lock:
            self.collector_script.extend(statuses)

    def configure_collector(self, script=None, default=None, delay=None, reset=False):
        with self.lock:
            if reset:
                self.collector_script = []
                self.received = []
                self.collector_requests = []
            if script is not None:
                self.collector_script.extend(script)
            if default is not None:
                self.collector_default = int(default)
            if delay is not None:
                self.collector_delay = float(delay)

    def hit_ids(self):
        """The X-Decision-Hit-Ids of every accepted batch, flattened, in order."""
        with self.lock:
            headers = [hd for _, hd, _ in self.received]
        out = []
        for hd in headers:
            value = hd.get("X-Decision-Hit-Ids") or ""
            out.extend(i for i in value.split(",") if i)
        return out

    def hits(self):
        """Every hit received in accepted batches, in order."""
        out = []
        with self.lock:
            bodies = [b for _, _, b in self.received]
        for body in bodies:
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            out.extend(doc.get("h", []) if isinstance(doc, dict) else [])
        return out

    # --- handlers ----------------------------------------------------------
    def _cdn(self, h):
        if self.cdn_delay:
            time.sleep(self.cdn_delay)
        env_id = h.path.split("?")[0].strip("/").split("/")[0]
        with self.lock:
            entry = self.files.get(env_id)
            status = self.cdn_status
            garbage = self.cdn_garbage
        headers = dict(h.headers.items())
        if status:
            self.cdn_requests.append((h.path, headers, status))
            return h._send(status, b'{"error":"forced"}', {"Content-Type": "application/json"})
        if entry is None:
            self.cdn_requests.append((h.path, headers, 404))
            return h._send(404, b"not found")
        body, etag, lm = entry
        if garbage:
            self.cdn_requests.append((h.path, headers, 200))
            return h._send(200, b"{not json at all", {"Content-Type": "application/json"})
        if h.headers.get("If-None-Match") == etag or (
                h.headers.get("If-Modified-Since") == lm and not h.headers.get("If-None-Match")):
            self.cdn_requests.append((h.path, headers, 304))
            return h._send(304, b"", {"ETag": etag, "Last-Modified": lm})
        self.cdn_requests.append((h.path, headers, 200))
        h._send(200, body, {"Content-Type": "application/json", "ETag": etag,
                            "Last-Modified": lm, "Cache-Control": "max-age=30"})

    def _control(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if h.command == "PUT" and h.path.startswith("/_standin/bucketing/"):
            self.set_bucketing(h.path[len("/_standin/bucketing/"):], body)
        elif h.command == "POST" and h.path == "/_standin/cdn":
            doc = json.loads(body or b"{}")
            with self.lock:
                self.cdn_status = doc.get("status")
                self.cdn_garbage = bool(doc.get("garbage"))
                self.cdn_delay = float(doc.get("delay") or 0)
        elif h.command == "GET" and h.path == "/_standin/cdn-requests":
            with self.lock:
                rows = [[p, hd.get("If-None-Match"), hd.get("If-Modified-Since"), st]
                        for p, hd, st in self.cdn_requests]
            return h._send(200, json.dumps(rows).encode(), {"Content-Type": "application/json"})
        elif h.command == "POST" and h.path == "/_standin/collector":
            doc = json.loads(body or b"{}")
            self.configure_collector(doc.get("script"), doc.get("default"), doc.get("delay"),
                                     bool(doc.get("reset")))
        elif h.command == "GET" and h.path == "/_standin/hits":
            return h._send(200, json.dumps(self.hits()).encode(),
                           {"Content-Type": "application/json"})
        elif h.command == "GET" and h.path == "/_standin/collector-requests":
            with self.lock:
                rows = [list(r) for r in self.collector_requests]
            return h._send(200, json.dumps(rows).encode(), {"Content-Type": "application/json"})
        else:
            return h._send(404, b"unknown control path")
        h._send(204)

    def _collect(self, h):
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self.lock:
            entry = self.collector_script.pop(0) if self.collector_script else self.collector_default
            delay = self.collector_delay
        if isinstance(entry, dict):
            status = int(entry.get("status", 200))
            delay = float(entry.get("delay", delay) or 0)
        else:
            status = int(entry)
        if delay:
            time.sleep(delay)
        with self.lock:
            self.collector_requests.append((h.path, status, h.headers.get("X-Decision-Hit-Ids")))
            if 200 <= status < 300:
                self.received.append((h.path, dict(h.headers.items()), body))
        h._send(status, b"{}" if status < 300 else b'{"error":"stand-in"}',
                {"Content-Type": "application/json"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--env-id", default="env")
    ap.add_argument("--bucketing")
    args = ap.parse_args()
    s = StandIn(args.port)
    if args.bucketing:
        with open(args.bucketing, "rb") as f:
            s.set_bucketing(args.env_id, f.read())
    s.start()
    print("stand-in listening on %s" % s.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()


if __name__ == "__main__":
    main()

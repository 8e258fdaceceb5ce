"""A real OTLP/HTTP receiver for the tests: decodes what it gets with the official
generated classes (Debian's python3-opentelemetry-proto) and keeps it.

    r = OtlpReceiver().start()
    ... point OTEL_EXPORTER_OTLP_ENDPOINT at r.url ...
    spans = r.spans()              # [(resource attributes dict, scope, Span)]
    r.status = 503                 # answer every request with 503 from now on
    r.delay = 2.0                  # or answer slowly
    r.stop()                       # down: connections are refused until start() again

Every request is checked as a collector would: the path (/v1/traces, /v1/metrics),
Content-Type application/x-protobuf, Content-Encoding gzip when the body says so
(the gzip magic), a body that decodes; what fails is kept in .errors.
"""
import gzip
import http.server
import threading
import time

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def attrs(kvs):
    """A repeated KeyValue as a dict of Python values."""
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


class OtlpReceiver:
    def __init__(self, port=None, decode=True):
        self.port = port
        self.decode = decode     # False: a sink that only counts (bench/otel.py)
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        self.requests = []   # (path, headers dict, raw body, decoded message or None)
        self.errors = []
        self.answered = {}   # status -> count
        self.server = None
        self.thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                msg, err = (receiver._decode(self.path, headers, raw) if receiver.decode
                            else (None, None))
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.status
                with receiver.lock:
                    if receiver.decode:
                        receiver.requests.append((self.path, headers, raw, msg))
                    receiver.answered[status] = receiver.answered.get(status, 0) + 1
                    if err:
                        receiver.errors.append(err)
                body = b""
                if status == 200 and msg is not None:
                    resp = (trace_service_pb2.ExportTraceServiceResponse()
                            if self.path == "/v1/traces"
                            else metrics_service_pb2.ExportMetricsServiceResponse())
                    body = resp.SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the exporter gave up waiting (its timeout): what the test wants

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _decode(self, path, headers, raw):
        if headers.get("content-type") != "application/x-protobuf":
            return None, "%s: Content-Type %r" % (path, headers.get("content-type"))
        if raw[:2] == b"\x1f\x8b":
            if headers.get("content-encoding") != "gzip":
                return None, "%s: gzip body without Content-Encoding: gzip" % path
            raw = gzip.decompress(raw)
        elif headers.get("content-encoding"):
            return None, "%s: Content-Encoding %r on a plain body" % (
                path, headers["content-encoding"])
        if path == "/v1/traces":
            msg = trace_service_pb2.ExportTraceServiceRequest()
        elif path == "/v1/metrics":
            msg = metrics_service_pb2.ExportMetricsServiceRequest()
        else:
            return None, "unexpected path %s" % path
        try:
            msg.ParseFromString(raw)
        except Exception as e:  # the official decoder refused it
            return None, "%s: does not decode: %s" % (path, e)
        return msg, None

    # ---- what was received ---------------------------------------------------

    def messages(self, path):
        with self.lock:
            return [(h, m) for p, h, _, m in self.requests if p == path and m is not None]

    def spans(self):
        out = []
        for _, msg in self.messages("/v1/traces"):
            for rs in msg.resource_spans:
                res = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append((res, ss.scope, span))
        return out

    def metrics(self):
        """The last metrics request's metrics by name: (resource attrs, Metric)."""
        msgs = self.messages("/v1/metrics")
        if not msgs:
            return {}
        out = {}
        for rm in msgs[-1][1].resource_metrics:
            res = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = (res, m)
        return out

    def wait_spans(self, predicate, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            spans = self.spans()
            if predicate(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError("spans never matched; got %d: %s" % (
            len(self.spans()), [s.name for _, _, s in self.spans()][:20]))

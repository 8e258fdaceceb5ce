"""A small Azure Blob client for the tests, on plain HTTP (http.client), with
its own Shared Key signing and SAS generation (Python's hmac/hashlib), so what
the server stored is read back by code that shares nothing with ours."""
import base64
import datetime
import email.utils
import hashlib
import hmac
import http.client
import urllib.parse
import xml.etree.ElementTree as ET

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")
VERSION = "2021-08-06"


class BlobClient:
    def __init__(self, host, port, account=DEV_ACCOUNT, key=DEV_KEY):
        self.host, self.port, self.account, self.key = host, port, account, key

    @property
    def endpoint(self):
        return "http://%s:%d/%s" % (self.host, self.port, self.account)

    def _sign(self, method, path, query, headers):
        std = ["Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",
               "Content-Type", "Date", "If-Modified-Since", "If-Match", "If-None-Match",
               "If-Unmodified-Since", "Range"]
        low = {k.lower(): v for k, v in headers.items()}
        parts = [method]
        for name in std:
            v = low.get(name.lower(), "")
            if name == "Content-Length" and v == "0":
                v = ""
            parts.append(v)
        canon_headers = "".join("%s:%s\n" % (k, low[k]) for k in sorted(low)
                                if k.startswith("x-ms-"))
        resource = "/%s%s" % (self.account, path)
        for k, v in sorted((k.lower(), v) for k, v in query.items()):
            resource += "\n%s:%s" % (k, v)
        sts = "\n".join(parts) + "\n" + canon_headers + resource
        mac = hmac.new(base64.b64decode(self.key), sts.encode(), hashlib.sha256).digest()
        return "SharedKey %s:%s" % (self.account, base64.b64encode(mac).decode())

    def request(self, method, container, blob="", query=None, body=b"", headers=None):
        query = dict(query or {})
        path = "/%s/%s" % (self.account, container) + ("/" + urllib.parse.quote(blob) if blob else "")
        h = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": VERSION,
             "Content-Length": str(len(body))}
        h.update(headers or {})
        h["Authorization"] = self._sign(method, path, query, h)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            url = path + ("?" + urllib.parse.urlencode(query) if query else "")
            conn.request(method, url, body=body, headers=h)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def create_container(self, name):
        status, _, body = self.request("PUT", name, query={"restype": "container"})
        assert status in (201, 409), (status, body)

    def list_blobs(self, container):
        names, marker = [], None
        while True:
            q = {"restype": "container", "comp": "list"}
            if marker:
                q["marker"] = marker
            status, _, body = self.request("GET", container, query=q)
            assert status == 200, (status, body)
            root = ET.fromstring(body)
            names += [b.findtext("Name") for b in root.iter("Blob")]
            marker = root.findtext("NextMarker")
            if not marker:
                return names

    def get_blob(self, container, name, missing_ok=False):
        """(headers, body); None for a blob that is gone when missing_ok."""
        status, headers, body = self.request("GET", container, name)
        if status == 404 and missing_ok:
            return None
        assert status == 200, (status, body)
        return headers, body

    def sas(self, container, permissions, hours=1):
        """A service SAS for the container (version 2021-08-06 string-to-sign)."""
        expiry = (datetime.datetime.utcnow() + datetime.timedelta(hours=hours)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        resource = "/blob/%s/%s" % (self.account, container)
        fields = [permissions, "", expiry, resource, "", "", "http", VERSION, "c", "", "",
                  "", "", "", "", ""]
        sts = "\n".join(fields)
        sig = base64.b64encode(hmac.new(base64.b64decode(self.key), sts.encode(),
                                        hashlib.sha256).digest()).decode()
        return urllib.parse.urlencode({"sv": VERSION, "sr": "c", "sp": permissions,
                                       "se": expiry, "spr": "http", "sig": sig})

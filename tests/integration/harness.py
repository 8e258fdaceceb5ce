"""Shared helpers for the integration tests: real servers on 127.0.0.1, free
ports, temporary directories, processes stopped by PID, bounded waits.

Only the remote SaaS is replaced (tests/standin.py). Everything else is the
real thing: httpd with the built module, redis-server, lighttpd, caddy, nginx.
"""
import os
import re
import signal
import socket
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DC_BUILD_DIR", REPO)
FIXTURES = os.path.join(REPO, "tests", "fixtures")
SAMPLE_BUCKETING = os.path.join(REPO, "conf", "sample-bucketing.json")
DECISION_FCGI = os.environ.get("DECISION_FCGI", os.path.join(BUILD, "fcgi", "decision-fcgi"))
MODULE_SO = os.environ.get("DC_MODULE_SO", os.path.join(BUILD, "mod_decision", ".libs", "mod_decision.so"))


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    """Waits until something accepts on host:port; raises after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listens on %s:%d after %.1fs" % (host, port, timeout))


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls predicate() until it is truthy; returns its value or raises."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("%s not reached after %.1fs" % (what, timeout))


class Proc:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, args, log_path, env=None, cwd=None, stdin=None):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                      env=full_env, cwd=cwd, stdin=stdin or subprocess.DEVNULL,
                                      start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """SIGTERM, then SIGKILL after timeout; returns the exit code."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self.log.close()
        return self.popen.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


# kernel wait channels of an httpd child's main thread that has finished starting: in accept
# (prefork), epoll (prefork with several listeners), the accept mutex, or reading the pipe of
# death (worker, event)
_WAITING_FOR_WORK = ("accept", "epoll", "ep_poll", "pipe", "futex", "flock", "lock")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stop_pidfile(pidfile, timeout=15.0):
    """Stops a daemon (httpd) by the PID in its pid file, waiting for it to go."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class RedisServer:
    """A real redis-server on a free loopback port in a temporary directory."""

    def __init__(self, tmpdir, port=None, password=None):
        self.tmpdir = str(tmpdir)
        self.port = port or free_port()
        self.password = password
        self.proc = None

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.tmpdir]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = Proc(args, os.path.join(self.tmpdir, "redis-%d.log" % self.port))
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def cli(self, *args):
        cmd = ["redis-cli", "-p", str(self.port)]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10).stdout

    @property
    def uri(self):
        return "redis://127.0.0.1:%d/0" % self.port


MEMCACHED_PLUGIN = os.environ.get(
    "DC_MEMCACHED_PLUGIN", os.path.join(BUILD, "stores", "memcached", ".libs", "store_memcached.so"))


class MemcachedServer:
    """Debian's memcached on a free loopback port (UDP off), stopped by its PID."""

    def __init__(self, tmpdir, port=None):
        self.tmpdir = str(tmpdir)
        self.port = port or free_port()
        self.proc = None

    def start(self):
        args = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "16"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # memcached refuses to run as root otherwise
        self.proc = Proc(args, os.path.join(self.tmpdir, "memcached-%d.log" % self.port))
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)  # a paused one would not die of SIGTERM
            self.proc.stop()
            self.proc = None

    def get(self, key):
        """The value of key (text protocol), or None."""
        import socket
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"get " + key.encode() + b"\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"VALUE "):
            return None
        return data.split(b"\r\n", 1)[1].rsplit(b"\r\nEND\r\n", 1)[0].decode()

    def uri(self, options=""):
        assert os.path.exists(MEMCACHED_PLUGIN), (
            "%s is missing: configure did not find libmemcached (apt-get install "
            "libmemcached-dev)" % MEMCACHED_PLUGIN)
        return "plugin:%s?servers=127.0.0.1:%d%s" % (MEMCACHED_PLUGIN, self.port,
                                                    "&" + options if options else "")


def run_eval(lines, bucketing=SAMPLE_BUCKETING, mode="normal", store="none", extra=None,
             timeout=60):
    """Runs decision-fcgi eval over request bodies; returns (exit code, output lines, stderr)."""
    import json
    args = [DECISION_FCGI, "eval", "--bucketing", bucketing, "--mode", mode, "--store", store]
    if extra:
        args += extra
    body = "".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines)
    p = subprocess.run(args, input=body, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout.splitlines(), p.stderr


# --- Apache httpd with the built module ---------------------------------------

APACHE_BIN = os.environ.get("APACHE_BIN", "/usr/sbin/apache2")
APACHE_MODULES = os.environ.get("APACHE_MODULES", "/usr/lib/apache2/modules")
MPMS = ("event", "worker", "prefork")

MPM_TUNING = {
    # small pools, so a test sees several children and restarts are quick
    "prefork": "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nServerLimit 8\n"
               "MaxRequestWorkers 8\n",
    "worker": "StartServers 2\nServerLimit 4\nThreadsPerChild 8\nMaxRequestWorkers 32\n"
              "MinSpareThreads 8\nMaxSpareThreads 32\n",
    "event": "StartServers 2\nServerLimit 4\nThreadsPerChild 8\nMaxRequestWorkers 32\n"
             "MinSpareThreads 8\nMaxSpareThreads 32\n",
}


def _apache_builtin_modules():
    out = subprocess.run([APACHE_BIN, "-l"], capture_output=True, text=True, timeout=30).stdout
    return {line.strip() for line in out.splitlines() if line.strip().endswith(".c")}


def _sanitizer_preload(module_so):
    """The sanitizer runtimes a module built with -fsanitize needs preloaded into httpd."""
    try:
        out = subprocess.run(["ldd", module_so], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return ""
    libs = []
    for line in out.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and ("libasan" in parts[0] or "libubsan" in parts[0]):
            path = parts[1].split("(")[0].strip()
            if path:
                libs.append(path)
    return ":".join(libs)


def make_world_readable_dir(prefix):
    """A temporary directory the httpd children (User www-data) can enter and read."""
    import tempfile
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


class Httpd:
    """The distribution's httpd on a free loopback port with the built module.

    The whole configuration is generated in rundir (pid file, error log,
    DefaultRuntimeDir, access log "%P %U %>s" so tests can tell children apart).
    `body` is appended inside the main server; `extra_modules` are loaded from
    the distribution's module directory. Stopped by the PID in its pid file.
    """

    def __init__(self, rundir, body="", mpm="event", port=None, extra_modules=(),
                 log_level="decision:debug", access_log=True):
        self.rundir = str(rundir)
        self.mpm = mpm
        self.port = port or free_port()
        self.body = body
        self.extra_modules = list(extra_modules)
        self.log_level = log_level
        self.with_access_log = access_log
        self.conf = os.path.join(self.rundir, "httpd.conf")
        self.pidfile = os.path.join(self.rundir, "httpd.pid")
        self.error_log = os.path.join(self.rundir, "error.log")
        self.access_log = os.path.join(self.rundir, "access.log")
        self.asan_log = os.path.join(self.rundir, "sanitizer")
        # a crashed child leaves a core here, for crash_backtraces()
        self.core_dir = os.path.join(self.rundir, "cores")
        os.makedirs(self.core_dir, exist_ok=True)
        os.chmod(self.core_dir, 0o1777)
        self.env = dict(os.environ)
        preload = self.sanitized = _sanitizer_preload(MODULE_SO)
        if preload:
            # httpd itself is not instrumented: its own leaks at exit are not ours
            self.env["LD_PRELOAD"] = preload
            self.env["ASAN_OPTIONS"] = "detect_leaks=0:disable_coredump=0:log_path=%s" % self.asan_log
            self.env["UBSAN_OPTIONS"] = "print_stacktrace=1:log_path=%s" % self.asan_log
        self.write_config()

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def config_text(self, body=None):
        builtin = _apache_builtin_modules()
        lines = [
            "ServerRoot %s" % self.rundir,
            "DefaultRuntimeDir %s" % self.rundir,
            "PidFile %s" % self.pidfile,
            "ErrorLog %s" % self.error_log,
            "LogLevel warn %s" % self.log_level,
            "Listen 127.0.0.1:%d" % self.port,
            "ServerName 127.0.0.1",
            "LogFormat \"%P %U %>s\" pids",
            "CustomLog %s pids" % self.access_log if self.with_access_log else "",
            "KeepAlive On",
            "MaxKeepAliveRequests 0",
            "Timeout 20",
            "GracefulShutdownTimeout 15",
            "CoreDumpDirectory %s" % self.core_dir,
        ]
        if os.getuid() == 0:
            lines += ["User www-data", "Group www-data"]
        mods = [("mpm_%s_module" % self.mpm, "mod_mpm_%s.so" % self.mpm),
                ("authz_core_module", "mod_authz_core.so"),
                ("watchdog_module", "mod_watchdog.so")]
        mods += [("%s_module" % m, "mod_%s.so" % m) for m in self.extra_modules]
        for name, so in mods:
            if "mod_%s.c" % name[:-len("_module")] in builtin:
                continue
            lines.append("LoadModule %s %s/%s" % (name, APACHE_MODULES, so))
        lines.append("LoadModule decision_module %s" % MODULE_SO)
        lines.append(MPM_TUNING[self.mpm])
        lines.append(self.body if body is None else body)
        return "\n".join(lines) + "\n"

    def write_config(self, body=None):
        if body is not None:
            self.body = body
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def _ctl(self, *args, timeout=60):
        def allow_cores():
            import resource
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return subprocess.run([APACHE_BIN, "-f", self.conf] + list(args), capture_output=True,
                              text=True, timeout=timeout, env=self.env, preexec_fn=allow_cores)

    def crashes_in_our_code(self):
        """The backtraces of crashed children whose crashing thread ran our code.

        A child that died of a signal left a core (CoreDumpDirectory). Its
        crashing thread's stack tells whose crash it was: a frame in
        mod_decision or libdecision makes it ours. httpd's own event MPM can
        fault in its main thread when a stop reaches a child that is still
        starting (seen under ASan, where children start slowly); such a crash,
        with none of our frames on its stack, is reported, not failed on.
        Without a core there is nothing to tell by: that counts as ours."""
        ours, theirs = [], []
        for text in re.split(r"(?m)^== ", self.crash_backtraces())[1:]:
            current = re.search(r"\[Current thread is (\d+)", text)
            stack = text
            if current:
                m = re.search(r"^Thread %s \(.*?(?=^Thread \d+ \(|\Z)" % current.group(1), text,
                              re.S | re.M)
                stack = m.group(0) if m else text
            mine = re.search(r"mod_decision|libdecision|\bdc_[a-z_]+ \(|\bdecision_[a-z_]+ \(", stack)
            (ours if mine else theirs).append(stack)
        return ours, theirs

    def crash_backtraces(self):
        """gdb backtraces of every core a crashed child left (empty when none)."""
        out = []
        for name in sorted(os.listdir(self.core_dir)):
            core = os.path.join(self.core_dir, name)
            try:
                bt = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all bt 30",
                                     APACHE_BIN, core], capture_output=True, text=True,
                                    timeout=120).stdout
            except (OSError, subprocess.TimeoutExpired) as e:
                bt = "cannot run gdb: %s" % e
            out.append("== %s\n%s" % (core, bt[-12000:]))
        return "\n".join(out)

    def configtest(self):
        """(exit code, stdout + stderr) of `apache2 -t`."""
        p = self._ctl("-t")
        return p.returncode, p.stdout + p.stderr

    def start(self, wait=True):
        p = self._ctl("-k", "start")
        if p.returncode != 0:
            raise RuntimeError("httpd did not start (%d): %s%s\n%s" % (
                p.returncode, p.stdout, p.stderr, self.log()))
        if wait:
            wait_port(self.port, timeout=20)
            wait_until(lambda: self.pid() is not None, timeout=10, what="httpd pid file")
        return self

    def pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def children(self):
        """PIDs of the current children of the parent."""
        pid = self.pid()
        if pid is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True, timeout=10).stdout
        return [int(x) for x in out.split()]

    def graceful(self):
        p = self._ctl("-k", "graceful")
        assert p.returncode == 0, p.stdout + p.stderr

    def restart(self):
        p = self._ctl("-k", "restart")
        assert p.returncode == 0, p.stdout + p.stderr

    def settled(self):
        """Whether every child is past its start: its main thread waits for work, or it
        has served for a while.

        httpd's children run their whole start (initgroups, every module's child_init)
        with SIGTERM's handler already set, and that handler destroys the child's pool
        and exits from inside the signal: a stop that lands while a child is starting
        can interrupt malloc and abort that child ("free(): corrupted unsorted chunks"
        in initgroups, seen with the prefork MPM just after a graceful restart). That is
        httpd's, not the module's; the tests stop a server that has finished starting."""
        pid = self.pid()
        if pid is None:
            return True
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        served_for = 8.0 if self.sanitized else 2.0
        for kid in self.children():
            try:
                with open("/proc/%d/wchan" % kid) as f:
                    wchan = f.read()
                with open("/proc/%d/stat" % kid) as f:
                    started = int(f.read().rsplit(")", 1)[1].split()[19]) / _CLOCK_TICKS
            except (OSError, ValueError, IndexError):
                continue  # gone
            if not any(w in wchan for w in _WAITING_FOR_WORK) and uptime - started < served_for:
                return False
        return True

    def stop(self):
        try:
            wait_until(self.settled, timeout=20 if self.sanitized else 5, interval=0.02,
                       what="httpd's children past their start")
        except TimeoutError:
            pass  # stopped all the same
        stop_pidfile(self.pidfile, timeout=20)

    def log(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def access_pids(self):
        """[(pid, path, status)] from the access log, in order."""
        out = []
        try:
            with open(self.access_log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3:
                        out.append((int(parts[0]), parts[1], int(parts[2])))
        except OSError:
            pass
        return out

    def sanitizer_reports(self):
        """Text of every ASan/UBSan report the processes wrote (empty when clean)."""
        out = []
        d = os.path.dirname(self.asan_log)
        for name in sorted(os.listdir(d)):
            if name.startswith(os.path.basename(self.asan_log) + "."):
                with open(os.path.join(d, name), errors="replace") as f:
                    out.append(f.read())
        return "\n".join(out)


def http_request(base_url, path, body=None, method="POST", headers=None, timeout=10, conn=None):
    """One HTTP request; returns (status, {lower-case header: value}, body bytes).

    With conn (an http.client.HTTPConnection) the request reuses that connection."""
    import http.client
    import json
    from urllib.parse import urlsplit
    own = conn is None
    if own:
        u = urlsplit(base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


def make_htdocs(rundir, files):
    """rundir/htdocs holding {name: text}, readable by the httpd children; returns its path."""
    htdocs = os.path.join(str(rundir), "htdocs")
    os.makedirs(htdocs, exist_ok=True)
    os.chmod(htdocs, 0o755)
    for name, text in files.items():
        path = os.path.join(htdocs, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    return htdocs

# ---- FastCGI ---------------------------------------------------------------
# A minimal FastCGI client (the responder role, one request per connection),
# to talk to decision-fcgi without a web server in between: for tests that
# need to hold a request half-sent (shutdown while in flight).

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = 1, 3, 4, 5, 6, 7


def _fcgi_record(rtype, content, request_id=1):
    import struct
    out = b""
    while True:
        chunk, content = content[:65535], content[65535:]
        pad = (8 - len(chunk) % 8) % 8
        out += struct.pack(">BBHHBB", 1, rtype, request_id, len(chunk), pad, 0) + chunk + b"\0" * pad
        if not content:
            return out


def _fcgi_nv(name, value):
    import struct
    name, value = name.encode(), value.encode()

    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


class FcgiRequest:
    """One FastCGI request over its own connection; send in parts, then read()."""

    def __init__(self, address, timeout=30.0, keep_conn=False):
        import struct
        self.keep_conn = keep_conn
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.sock.sendall(_fcgi_record(FCGI_BEGIN_REQUEST,
                                       struct.pack(">HB5x", 1, 1 if keep_conn else 0)))

    def send_params(self, params):
        data = b"".join(_fcgi_nv(k, v) for k, v in params.items())
        self.sock.sendall(_fcgi_record(FCGI_PARAMS, data) + _fcgi_record(FCGI_PARAMS, b""))

    def send_stdin(self, data, end=True):
        if data:
            self.sock.sendall(_fcgi_record(FCGI_STDIN, data))
        if end:
            self.sock.sendall(_fcgi_record(FCGI_STDIN, b""))

    def read(self):
        """Returns (status, headers dict lower-cased, body bytes) of the CGI response."""
        import struct
        buf, stdout = b"", b""
        while True:
            while len(buf) < 8 or len(buf) < 8 + struct.unpack(">H", buf[4:6])[0] + buf[6]:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("FastCGI connection closed before FCGI_END_REQUEST")
                buf += chunk
            _, rtype, _, clen, pad = struct.unpack(">BBHHB", buf[:7])
            content, buf = buf[8:8 + clen], buf[8 + clen + pad:]
            if rtype == FCGI_STDOUT:
                stdout += content
            elif rtype == FCGI_END_REQUEST:
                break
        if not self.keep_conn:
            self.sock.close()
        head, _, body = stdout.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        status = int(headers.get("status", "200").split()[0])
        return status, headers, body


def fcgi_params(method, path, body=b"", query="", headers=None):
    """CGI/1.1 variables as a web server would send them for a request to path."""
    params = {"REQUEST_METHOD": method, "SCRIPT_NAME": path, "PATH_INFO": "",
              "REQUEST_URI": path + ("?" + query if query else ""), "QUERY_STRING": query,
              "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
              "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
              "REMOTE_ADDR": "127.0.0.1"}
    for k, v in (headers or {}).items():
        params["HTTP_" + k.upper().replace("-", "_")] = v
    return params


def fcgi_call(address, method, path, body=b"", query="", headers=None, timeout=30.0):
    """One whole FastCGI request; returns (status, headers, body)."""
    if isinstance(body, str):
        body = body.encode()
    r = FcgiRequest(address, timeout)
    r.send_params(fcgi_params(method, path, body, query, headers))
    r.send_stdin(body)
    return r.read()

class EvalProcess:
    """A long-running `decision-fcgi eval`: one request line in, one answer line out, so a
    test can change the world (stop Redis, edit files) between two decisions of one process."""

    def __init__(self, store, bucketing=SAMPLE_BUCKETING, mode="normal", extra=None):
        # eval writes through stdio, block-buffered on a pipe: stdbuf makes it line-buffered
        # (the sanitizer runtime then is not first in the preload list, which is harmless here)
        args = ["stdbuf", "-oL", DECISION_FCGI, "eval", "--bucketing", bucketing, "--mode", mode,
                "--store", store]
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "verify_asan_link_order=0"]))
        self.popen = subprocess.Popen(args + (extra or []), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                      start_new_session=True)

    def ask(self, body, timeout=10.0):
        """Sends one request body (dict or str); returns the parsed answer, raising on timeout."""
        import json
        import select
        line = body if isinstance(body, str) else json.dumps(body)
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("eval gave no answer within %.1fs" % timeout)
        answer = self.popen.stdout.readline()
        if not answer:
            raise RuntimeError("eval exited: %s" % self.popen.stderr.read().decode("utf-8", "replace"))
        return json.loads(answer)

    def close(self, timeout=10.0):
        """Ends input and waits; returns (exit code, stderr text)."""
        self.popen.stdin.close()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        err = self.popen.stderr.read().decode("utf-8", "replace")
        self.popen.stdout.close()
        self.popen.stderr.close()
        return self.popen.returncode, err


# ---- the status page in a real browser ----------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# the fill of the request-rate bars of dc_status's chart
CHART_BLUE = (0x3b, 0x6f, 0xb6)


def chromium_binary():
    """Debian's chromium, or None."""
    import shutil
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def check_status_page_in_chromium(url, workdir, campaign_ids):
    """Renders url (http:// or file://) in headless Chromium: the screenshot must not be blank
    and must show the chart's bars; the DOM must list campaign_ids and the SVG chart.
    Returns the DOM."""
    import tempfile
    from PIL import Image

    browser = chromium_binary()
    shot = os.path.join(str(workdir), "status-%d.png" % free_port())
    p = subprocess.run([browser] + CHROMIUM_FLAGS +
                       ["--user-data-dir=" + tempfile.mkdtemp(dir=str(workdir)),
                        "--screenshot=" + shot, "--window-size=1200,900", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and os.path.exists(shot), p.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 900)
    pixels = list(img.getdata())
    non_white = sum(1 for px in pixels if px != (255, 255, 255))
    chart = sum(1 for r, g, b in pixels if abs(r - CHART_BLUE[0]) < 12 and
                abs(g - CHART_BLUE[1]) < 12 and abs(b - CHART_BLUE[2]) < 12)
    assert non_white > 0.02 * len(pixels), "the page looks blank (%d non-white pixels)" % non_white
    assert chart > 100, "the request-rate bars did not render (%d pixels)" % chart
    p = subprocess.run([browser] + CHROMIUM_FLAGS +
                       ["--user-data-dir=" + tempfile.mkdtemp(dir=str(workdir)), "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    for cid in campaign_ids:
        assert ">%s<" % cid in dom, cid
    assert "<svg" in dom and 'id="requests"' in dom
    return dom

"""decision-fcgi under systemd: socket activation, the units, the shipper unit's command.

Socket activation follows sd_listen_fds(3)'s convention.

A socket unit holds the listening socket and passes it as fd 3 with
LISTEN_FDS=1 and LISTEN_PID=<the service's pid>. The test plays systemd: it
holds a listening socket itself and starts the responder with that socket on
fd 3 and those variables (set by `sh -c 'LISTEN_PID=$$ exec ...'`, as the pid
is only known after the fork), and it runs the responder under systemd's own
`systemd-socket-activate`. What must hold: requests are answered on the passed
socket; a stop leaves it listening (it is the unit's, not ours), with what
arrived meanwhile answered by the next instance; variables meant for another
process are ignored; more than one socket, or a descriptor that is not a
listening stream socket, is refused with a log line. Then conf/systemd's units
pass `systemd-analyze verify`, and `decision-fcgi ship` takes its spool and
collector from the responder's settings, as decision-fcgi-ship.service needs.
"""
import os
import signal
import socket
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import (DECISION_FCGI, FCGI_BEGIN_REQUEST, SAMPLE_BUCKETING, FcgiRequest,
                     _fcgi_record, fcgi_call, fcgi_params, free_port, wait_until)

ENV = {"PATH": "/usr/bin:/bin", "ENV_ID": "env-sa", "BUCKETING_FILE": SAMPLE_BUCKETING,
       "LOG_LEVEL": "info", "SHUTDOWN_TIMEOUT": "5s"}
# under the sanitizer pass of tests/run, its options (a report changes the exit status)
ENV.update({k: v for k, v in os.environ.items() if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")})
BODY = b'{"visitor_id":"v1","context":{"isVIP":true},"trigger_hit":false}'
PROCS = []


@pytest.fixture(autouse=True)
def reap():
    yield
    while PROCS:
        p = PROCS.pop()
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def listening_socket(backlog=64):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def activate(tmp_path, fd3, extra_env=None, listen_fds="1", listen_pid="$$", args=(), name="r"):
    """The responder as systemd starts it for a socket unit: fd3 on descriptor 3."""
    env = dict(ENV, LISTEN_FDS=listen_fds, **(extra_env or {}))
    log = open(str(tmp_path / ("%s.log" % name)), "ab")

    def put_on_fd3():
        if fd3 is not None:
            os.dup2(fd3, 3)

    p = subprocess.Popen(["/bin/sh", "-c", 'LISTEN_PID=%s exec "$@"' % listen_pid, "sh",
                          DECISION_FCGI] + list(args),
                         env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         pass_fds=(3,) if fd3 is not None else (), preexec_fn=put_on_fd3,
                         start_new_session=True)
    PROCS.append(p)
    return p


def log_of(tmp_path, name="r"):
    return (tmp_path / ("%s.log" % name)).read_text(errors="replace")


def decide(address):
    status, headers, body = fcgi_call(address, "POST", "/v2/campaigns", BODY)
    assert status == 200, body
    assert b"c_vip" in body
    return body


def stop(p, sig=signal.SIGTERM):
    p.send_signal(sig)
    return p.wait(timeout=20)


def test_serves_the_passed_socket_and_leaves_it_listening_for_the_next_instance(tmp_path):
    sock = listening_socket()
    address = sock.getsockname()
    first = activate(tmp_path, sock.fileno(), name="first")
    wait_until(lambda: "DC10534" in log_of(tmp_path, "first") or first.poll() is not None,
               timeout=20, what="the responder ready")
    assert first.poll() is None, log_of(tmp_path, "first")
    assert "socket passed by systemd" in log_of(tmp_path, "first")
    # several threads waiting in poll() on one socket: every connection answered once
    with ThreadPoolExecutor(8) as pool:
        assert len(list(pool.map(lambda _: decide(address), range(80)))) == 80
    assert stop(first) == 0, log_of(tmp_path, "first")
    assert "DC10538" in log_of(tmp_path, "first")  # stopped cleanly, every thread joined

    # The socket is still ours (the "unit's"): a request sent while no instance runs is
    # queued by the kernel and answered by the next one.
    pending = FcgiRequest(address, timeout=30)
    pending.send_params(fcgi_params("POST", "/v2/campaigns", BODY))
    pending.send_stdin(BODY)
    second = activate(tmp_path, sock.fileno(), name="second")
    status, _, body = pending.read()
    assert status == 200 and b"c_vip" in body
    decide(address)
    assert stop(second) == 0, log_of(tmp_path, "second")
    sock.close()


def test_reload_and_keep_alive_connections_on_the_passed_socket(tmp_path):
    sock = listening_socket()
    address = sock.getsockname()
    p = activate(tmp_path, sock.fileno(), extra_env={"THREADS": "2"})
    wait_until(lambda: "DC10534" in log_of(tmp_path) or p.poll() is not None, timeout=20,
               what="the responder ready")
    # a kept-alive FastCGI connection (nginx fastcgi_keep_conn) serves several requests
    r = FcgiRequest(address, keep_conn=True)
    for i in range(3):
        if i:
            r.sock.sendall(_fcgi_record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 1)))
        r.send_params(fcgi_params("POST", "/v2/campaigns", BODY))
        r.send_stdin(BODY)
        status, _, body = r.read()
        assert status == 200 and b"c_vip" in body
    r.sock.close()
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: "DC10535" in log_of(tmp_path), timeout=20, what="the reload")
    decide(address)
    assert stop(p) == 0, log_of(tmp_path)
    sock.close()


def test_systemd_socket_activate_runs_it(tmp_path):
    """systemd's own tool for socket activation (what a .socket unit does, in one command)."""
    port = free_port()
    log = open(str(tmp_path / "r.log"), "ab")
    p = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port] +
                         ["-E%s=%s" % kv for kv in ENV.items() if kv[0] != "PATH"] +
                         [DECISION_FCGI],
                         env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)

    def answers():
        try:
            return decide(("127.0.0.1", port))
        except OSError:
            return None
    wait_until(answers, timeout=20, what="an answer through systemd-socket-activate")
    assert stop(p) == 0, log_of(tmp_path)
    assert "socket passed by systemd" in log_of(tmp_path)


def test_the_passed_socket_wins_over_LISTEN(tmp_path):
    sock = listening_socket()
    other = free_port()
    p = activate(tmp_path, sock.fileno(), extra_env={"LISTEN": "127.0.0.1:%d" % other})
    wait_until(lambda: "DC10534" in log_of(tmp_path) or p.poll() is not None, timeout=20,
               what="the responder ready")
    decide(sock.getsockname())
    assert "DC10546" in log_of(tmp_path)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", other), timeout=1).close()
    assert stop(p) == 0
    sock.close()


def test_variables_meant_for_another_process_are_ignored(tmp_path):
    # LISTEN_PID is not ours: fd 3 is not used; with --listen it serves there
    sock = listening_socket()
    port = free_port()
    p = activate(tmp_path, sock.fileno(), listen_pid="1", args=["--listen", "127.0.0.1:%d" % port])
    wait_until(lambda: "DC10534" in log_of(tmp_path) or p.poll() is not None, timeout=20,
               what="the responder ready")
    decide(("127.0.0.1", port))
    assert "socket passed by systemd" not in log_of(tmp_path)
    assert stop(p) == 0
    # and without --listen it is not a FastCGI process at all
    q = activate(tmp_path, sock.fileno(), listen_pid="1", name="q")
    assert q.wait(timeout=20) == 2
    assert "not started by a web server" in log_of(tmp_path, "q")
    sock.close()


@pytest.mark.parametrize("case", ["two sockets", "connected socket", "regular file", "no number"])
def test_unusable_passed_descriptors_are_refused(tmp_path, case):
    sock = listening_socket()
    listen_fds, fd3, tag = "1", sock.fileno(), "DC10544"
    if case == "two sockets":
        listen_fds, tag = "2", "DC10543"
    elif case == "no number":
        listen_fds, tag = "one", "DC10543"
    elif case == "connected socket":
        conn = socket.create_connection(sock.getsockname())
        fd3 = conn.fileno()
    else:
        f = open(str(tmp_path / "file"), "w")
        fd3 = f.fileno()
    p = activate(tmp_path, fd3, listen_fds=listen_fds)
    assert p.wait(timeout=20) == 2, log_of(tmp_path)
    assert tag in log_of(tmp_path)
    sock.close()


# ---- the units of conf/systemd (installed by the decision-fcgi package) -----------------------




def test_the_units_verify_clean(tmp_path):
    """`systemd-analyze verify` on conf/systemd's units, pointed at the built program (the
    installed ones, with their man page, are verified by test_debian.py)."""
    from harness import REPO
    names = ["decision-fcgi.service", "decision-fcgi.socket", "decision-fcgi-ship.service"]
    for name in names:
        with open(os.path.join(REPO, "conf", "systemd", name)) as f:
            text = f.read()
        (tmp_path / name).write_text(text.replace("/usr/bin/decision-fcgi", DECISION_FCGI))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                       [str(tmp_path / n) for n in names], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
    service = (tmp_path / "decision-fcgi.service").read_text()
    for needle in ("ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                   "ReadWritePaths=/var/lib/decision /var/spool/decision",
                   "EnvironmentFile=-/etc/default/decision-fcgi",
                   "ExecReload=/bin/kill -HUP $MAINPID"):
        assert needle in service


def test_ship_takes_the_spool_and_collector_from_the_responders_settings(tmp_path):
    """decision-fcgi-ship.service runs `decision-fcgi ship` with only the environment file."""
    spool, sink = tmp_path / "spool", tmp_path / "sink"
    sink.mkdir()
    p = subprocess.run([DECISION_FCGI, "eval", "--bucketing", SAMPLE_BUCKETING, "--spool",
                        str(spool)], input=BODY.replace(b"false", b"true") + b"\n",
                       capture_output=True, timeout=60, env=ENV)
    assert p.returncode == 0, p.stderr
    env = dict(ENV, EVENTS_SPOOL_DIR=str(spool), EVENTS_COLLECTOR="file:%s" % sink)
    p = subprocess.run([DECISION_FCGI, "ship", "--once", "--deadline", "30"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    delivered = "".join((sink / n).read_text() for n in os.listdir(sink))
    assert '"vid":"v1"' in delivered.replace(" ", "")
    # without either, --spool is still required
    p = subprocess.run([DECISION_FCGI, "ship", "--once"], env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "usage" in p.stderr

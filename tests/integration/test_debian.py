"""The Debian packages, built, installed, used and purged the way an administrator does.

`dpkg-buildpackage -us -uc -b` on a copy of the tree (so the build's own tree
stays as it is), lintian on the result (its output kept in build-lintian.log;
no error, and every warning listed with its reason in doc/debian.md), then
`apt-get install ./*.deb` on this machine:

- libapache2-mod-decision: `a2enmod decision`, `apache2ctl configtest`, and
  the distribution's whole configuration (/etc/apache2, copied only to listen
  on a free loopback port instead of 80) started with the packaged sample file,
  answering a decision;
- decision-fcgi: the `decision` system user and its directories, the units
  clean under `systemd-analyze verify`, the responder run under its units'
  conditions (User=decision, EnvironmentFile=/etc/default/decision-fcgi, the
  socket unit's socket passed as LISTEN_FDS, ExecReload's SIGHUP), events
  spooled in /var/spool/decision and delivered by the shipper unit's command;
- purge leaves no file behind that the packages created.

Needs root (apt, a2enmod); CI runs as root. The packages are purged at the end
whatever happens. DC_DEB_DIR=DIR uses the .debs already built in DIR.
"""
import glob
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request

import pytest

from harness import REPO, fcgi_call, free_port, wait_until

PACKAGES = ("libapache2-mod-decision", "decision-fcgi")
LINTIAN_LOG = os.path.join(REPO, "build-lintian.log")
DEBIAN_DOC = os.path.join(REPO, "doc", "debian.md")
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]
VIP = {"visitor_id": "v1", "context": {"isVIP": True}, "trigger_hit": False}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="installs packages: needs root (CI is)")


def sh(*args, check=True, timeout=600, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert p.returncode == 0, "%s: %d\n%s\n%s" % (" ".join(args), p.returncode, p.stdout,
                                                       p.stderr)
    return p


def configure_ac_version():
    with open(os.path.join(REPO, "configure.ac")) as f:
        m = re.search(r"AC_INIT\(\[[^\]]*\],\s*\[([^\]]+)\]", f.read())
    assert m
    return m.group(1)


def test_the_changelog_version_is_configure_ac_version():
    version = sh("dpkg-parsechangelog", "-l", os.path.join(REPO, "debian", "changelog"),
                 "-S", "Version").stdout.strip()
    upstream = re.sub(r"-[^-]+$", "", version.split(":", 1)[-1])
    assert upstream == configure_ac_version(), (
        "debian/changelog says %s, configure.ac %s: add a changelog entry (dch -v %s-1)"
        % (version, configure_ac_version(), configure_ac_version()))


# ---- build ------------------------------------------------------------------------------------

def source_copy(dest):
    """The tree's source files (what git tracks, and new files it does not ignore)."""
    files = sh("git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
               "--exclude-standard").stdout.split("\0")
    for name in filter(None, files):
        src = os.path.join(REPO, name)
        if not os.path.lexists(src):
            continue  # deleted in the working tree
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)


@pytest.fixture(scope="module")
def debs():
    if os.environ.get("DC_DEB_DIR"):
        out = os.environ["DC_DEB_DIR"]
    else:
        out = tempfile.mkdtemp(prefix="dc-deb-")
        src = os.path.join(out, "mod-decision-%s" % configure_ac_version())
        source_copy(src)
        # The unit suites ran on this tree already (tests/run): nocheck. No debug symbols
        # packages: nothing installs them here.
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=%d"
                   % (os.cpu_count() or 2))
        p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                           capture_output=True, text=True, timeout=1800)
        with open(os.path.join(REPO, "build-debian.log"), "w") as f:
            f.write(p.stdout + p.stderr)
        assert p.returncode == 0, (p.stdout + p.stderr)[-6000:]
    found = {name: glob.glob(os.path.join(out, "%s_*.deb" % name)) for name in PACKAGES}
    for name, paths in found.items():
        assert len(paths) == 1, "%s: %s" % (name, paths)
    yield out, {name: paths[0] for name, paths in found.items()}
    if not os.environ.get("DC_DEB_DIR"):
        shutil.rmtree(out, ignore_errors=True)


def documented_lintian_tags():
    """Tags doc/debian.md lists under its lintian section (`tag`: why it stays)."""
    with open(DEBIAN_DOC) as f:
        text = f.read()
    m = re.search(r"^## Lintian\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, "doc/debian.md has no '## Lintian' section"
    return set(re.findall(r"^- `([a-z0-9-]+)`", m.group(1), re.M))


def test_lintian_finds_no_error_and_every_warning_is_documented(debs):
    out, paths = debs
    changes = glob.glob(os.path.join(out, "*.changes"))
    assert len(changes) == 1
    p = sh("lintian", "--tag-display-limit", "0", changes[0], check=False)
    report = p.stdout + p.stderr
    with open(LINTIAN_LOG, "w") as f:
        f.write(report)
    print(report)
    errors = [l for l in report.splitlines() if l.startswith("E:")]
    assert not errors, report
    warned = set(re.findall(r"^W: [^:]+: ([a-z0-9-]+)", report, re.M))
    undocumented = warned - documented_lintian_tags()
    assert not undocumented, "lintian warnings not in doc/debian.md: %s\n%s" % (
        sorted(undocumented), report)


# ---- install ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(debs):
    if os.geteuid() != 0:
        pytest.skip("installs packages: needs root (CI is)")
    _, paths = debs
    sh(*APT, "install", *paths.values(), env=APT_ENV)
    files = {}
    for name in PACKAGES:
        files[name] = [l for l in sh("dpkg", "-L", name).stdout.splitlines() if l.strip()]
    yield files
    left = [n for n in PACKAGES if sh("dpkg-query", "-W", "-f", "${db:Status-Status}", n,
                                       check=False).stdout.strip() not in ("", "not-installed")]
    if left:  # a test failed before test_purge_leaves_nothing_behind
        sh(*APT, "purge", *left, env=APT_ENV, check=False)


@needs_root
def test_a2enmod_and_configtest(installed):
    # dh_apache2 enabled it on install; off and on again, as an administrator would
    assert os.path.islink("/etc/apache2/mods-enabled/decision.load")
    sh("a2dismod", "-q", "decision")
    assert not os.path.lexists("/etc/apache2/mods-enabled/decision.load")
    sh("a2enmod", "-q", "decision")
    for name in ("decision.load", "decision.conf"):
        link = "/etc/apache2/mods-enabled/" + name
        assert os.path.realpath(link) == "/etc/apache2/mods-available/" + name
    p = sh("apache2ctl", "configtest")
    assert "Syntax OK" in p.stdout + p.stderr
    assert "decision_module (shared)" in sh("apache2ctl", "-M").stdout


def post(port, body):
    req = urllib.request.Request("http://127.0.0.1:%d/v2/campaigns" % port,
                                 data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@needs_root
def test_the_packaged_httpd_configuration_answers_a_decision(installed, tmp_path):
    """/etc/apache2 as installed (apache2.conf, envvars, mods-enabled with decision), copied
    only to listen on a free loopback port and to keep its run files in a temporary directory."""
    top = tempfile.mkdtemp(prefix="dc-apache-")
    os.chmod(top, 0o755)
    confdir = os.path.join(top, "apache2")
    shutil.copytree("/etc/apache2", confdir, symlinks=True)
    port = free_port()
    with open(os.path.join(confdir, "ports.conf"), "w") as f:
        f.write("Listen 127.0.0.1:%d\n" % port)
    for site in os.listdir(os.path.join(confdir, "sites-enabled")):
        os.unlink(os.path.join(confdir, "sites-enabled", site))
    sample = "/usr/share/doc/libapache2-mod-decision/examples/sample-bucketing.json"
    assert os.path.isfile(sample)
    with open(os.path.join(confdir, "sites-enabled", "decision.conf"), "w") as f:
        f.write("ServerName 127.0.0.1\nDecisionEnvironment pkg-test\n"
                "DecisionBucketingFile %s\n<Location /v2>\n    SetHandler decision\n"
                "</Location>\n" % sample)
    run = os.path.join(top, "run")
    with open(os.path.join(confdir, "envvars"), "a") as f:
        f.write("export APACHE_RUN_DIR=%s\nexport APACHE_PID_FILE=%s/apache2.pid\n"
                "export APACHE_LOCK_DIR=%s/lock\nexport APACHE_LOG_DIR=%s/log\n"
                % (run, run, top, top))
    os.makedirs(os.path.join(top, "log"))
    env = dict(os.environ, APACHE_CONFDIR=confdir)
    try:
        sh("apache2ctl", "configtest", env=env)
        sh("apache2ctl", "start", env=env)
        status, doc = wait_until(lambda: _try_post(port), timeout=30, what="httpd answering")
        assert status == 200
        assert any(c["id"] == "c_vip" for c in doc["campaigns"])
    finally:
        sh("apache2ctl", "stop", env=env, check=False)
        pidfile = os.path.join(run, "apache2.pid")
        wait_until(lambda: not os.path.exists(pidfile), timeout=30, what="httpd stopped")
        shutil.rmtree(top, ignore_errors=True)


def _try_post(port):
    try:
        return post(port, VIP)
    except OSError:
        return None


@needs_root
def test_the_decision_user_owns_its_directories(installed):
    user = pwd.getpwnam("decision")
    assert user.pw_uid < 1000 and user.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    assert grp.getgrgid(user.pw_gid).gr_name == "decision"
    for d in ("/var/lib/decision", "/var/spool/decision"):
        st = os.stat(d)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (user.pw_uid, user.pw_gid, 0o750), d


@needs_root
def test_the_units_verify_clean(installed):
    units = ["/lib/systemd/system/%s" % u for u in
             ("decision-fcgi.service", "decision-fcgi.socket", "decision-fcgi-ship.service")]
    p = sh("systemd-analyze", "verify", *units, check=False)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


def unit(name):
    """A unit file's [Section] Key=value pairs, {key: [values]}."""
    keys = {}
    with open("/lib/systemd/system/" + name) as f:
        for line in f:
            m = re.match(r"^(\w+)=(.*)$", line.strip())
            if m:
                keys.setdefault(m.group(1), []).append(m.group(2))
    return keys


def environment_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def as_unit(service, extra_env, fd3=None, args=()):
    """The service's ExecStart (plus args) as its unit runs it: User=, Group=,
    EnvironmentFile=, UMask=, and with fd3 the socket unit's socket (LISTEN_FDS)."""
    keys = unit(service)
    user, group = keys["User"][0], keys["Group"][0]
    env_file = keys["EnvironmentFile"][0].lstrip("-")
    env = dict(environment_file(env_file), PATH="/usr/bin:/bin", **extra_env)
    cmd = keys["ExecStart"][0].split() + list(args)
    wrapper = ["setpriv", "--reuid", user, "--regid", group, "--init-groups", "--"]
    if fd3 is not None:
        env["LISTEN_FDS"] = "1"
        wrapper = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + wrapper

    def prepare():
        os.umask(int(keys["UMask"][0], 8))
        if fd3 is not None:
            os.dup2(fd3, 3)
    return subprocess.Popen(wrapper + cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=(3,) if fd3 is not None else (), preexec_fn=prepare,
                            start_new_session=True)


@needs_root
def test_the_responder_under_its_socket_unit(installed, tmp_path):
    socket_unit = unit("decision-fcgi.socket")
    listen = socket_unit["ListenStream"][0]
    host, _, unit_port = listen.rpartition(":")
    assert host == "127.0.0.1" and socket_unit.get("Accept", ["no"])[0] == "no"
    # the unit's address, on a free port (its own port may be taken on this machine)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, free_port()))
    sock.listen(128)
    address = sock.getsockname()
    sink = "/var/lib/decision/test-sink"
    os.makedirs(sink)
    shutil.chown(sink, "decision", "decision")
    sample = "/usr/share/doc/decision-fcgi/examples/sample-bucketing.json"
    env = {"ENV_ID": "pkg-test", "BUCKETING_FILE": sample, "LOG_LEVEL": "info",
           "EVENTS_SHIPPER": "false"}
    p = as_unit("decision-fcgi.service", env, fd3=sock.fileno())
    try:
        body = json.dumps(dict(VIP, trigger_hit=True))

        def answers():
            try:
                return fcgi_call(address, "POST", "/v2/campaigns", body, timeout=5)
            except OSError:
                return None
        status, _, answer = wait_until(answers, timeout=30, what="the responder answering")
        assert status == 200 and b"c_vip" in answer
        # ExecReload: SIGHUP re-reads the settings
        os.kill(p.pid, signal.SIGHUP)
        status, _, _ = fcgi_call(address, "POST", "/v2/campaigns", body)
        assert status == 200
        os.kill(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0, out
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate(timeout=10)
        sock.close()
    log = out.decode(errors="replace")
    assert "socket passed by systemd" in log and "DC10535" in log, log
    # the events are in the spool (EVENTS_SPOOL_DIR of /etc/default/decision-fcgi), the
    # decision user's; the shipper unit's command (plus --once) delivers them
    spooled = os.listdir("/var/spool/decision")
    assert any(n.startswith("seg-") for n in spooled), spooled
    ship = as_unit("decision-fcgi-ship.service", {"EVENTS_COLLECTOR": "file:" + sink},
                   args=["--once", "--deadline", "30"])
    out, _ = ship.communicate(timeout=60)
    assert ship.returncode == 0, out
    delivered = "".join(open(os.path.join(sink, n)).read() for n in os.listdir(sink))
    assert '"vid":"v1"' in delivered.replace(" ", ""), delivered


@needs_root
def test_purge_leaves_nothing_behind(installed):
    sh(*APT, "purge", *PACKAGES, env=APT_ENV)
    for name in PACKAGES:
        assert sh("dpkg-query", "-W", "-f", "${db:Status-Status}", name,
                  check=False).stdout.strip() in ("", "not-installed")
    shared = {"/", "/etc", "/lib", "/usr", "/usr/bin", "/usr/lib", "/usr/share", "/usr/share/doc",
              "/usr/share/man", "/usr/share/man/man8", "/etc/default", "/etc/apache2",
              "/etc/apache2/mods-available", "/lib/systemd", "/lib/systemd/system",
              "/usr/lib/apache2", "/usr/lib/apache2/modules", "/."}
    left = [path for files in installed.values() for path in files
            if path not in shared and os.path.lexists(path)]
    assert not left, left
    created = ["/var/lib/decision", "/var/spool/decision", "/etc/default/decision-fcgi",
               "/etc/apache2/mods-enabled/decision.load", "/etc/apache2/mods-enabled/decision.conf",
               "/etc/apache2/mods-available/decision.conf"]
    created += glob.glob("/var/lib/systemd/deb-systemd-helper-*/*decision*")
    created += glob.glob("/var/lib/systemd/deb-systemd-helper-*/*/*decision*")
    created += glob.glob("/etc/systemd/system/*/decision-fcgi*")
    created += glob.glob("/var/lib/apache2/module/*/decision")
    assert not [p for p in created if os.path.lexists(p)]

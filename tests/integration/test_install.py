"""What README promises a new user: `make install` lays the files where apxs and
$(bindir) say, the installed module loads in the distribution's httpd, and
`./conf/demo` serves decisions on loopback and cleans up when stopped."""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest

from harness import (BUILD, MODULE_SO, REPO, SAMPLE_BUCKETING, Httpd, Proc, free_port,
                     make_world_readable_dir, run_eval, wait_until)


def apxs(var):
    return subprocess.run(["apxs", "-q", var], capture_output=True, text=True,
                          check=True).stdout.strip()


def configured(var):
    """A variable as configure set it in the build's Makefile (bindir, apachemoddir)."""
    with open(os.path.join(BUILD, "Makefile")) as f:
        for line in f:
            m = re.match(r"^%s = (.*)$" % re.escape(var), line)
            if m:
                return m.group(1).strip()
    raise KeyError(var)


def test_make_install_puts_the_module_and_responder_where_they_belong(tmp_path):
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-s", "-C", BUILD, "install", "DESTDIR=%s" % dest],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    moddir = configured("apachemoddir")
    assert moddir == apxs("LIBEXECDIR")
    module = str(dest) + moddir + "/mod_decision.so"
    assert os.path.isfile(module)
    assert not os.path.exists(str(dest) + moddir + "/mod_decision.la")
    prefix = configured("prefix")
    bindir = configured("bindir").replace("${exec_prefix}", configured("exec_prefix")) \
        .replace("${prefix}", prefix)
    responder = str(dest) + bindir + "/decision-fcgi"
    assert os.access(responder, os.X_OK)
    help_text = subprocess.run([responder, "--help"], capture_output=True, text=True, timeout=30)
    assert help_text.returncode == 0
    assert "ENV_ID" in help_text.stdout + help_text.stderr

    # the installed module is one httpd accepts, with its directives
    rundir = make_world_readable_dir("dc-install-")
    try:
        h = Httpd(rundir, "DecisionEnvironment install-test\nDecisionBucketingFile %s\n"
                  "<Location /v2>\n  SetHandler decision\n</Location>\n" % SAMPLE_BUCKETING)
        text = h.config_text()
        assert MODULE_SO in text
        with open(h.conf, "w") as f:
            f.write(text.replace(MODULE_SO, module))
        code, out = h.configtest()
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    assert code == 0, out
    assert "Syntax OK" in out


def post(port, path, body):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.skipif(os.geteuid() != 0, reason="the demo runs httpd as www-data, which needs root")
def test_demo_serves_the_sample_file_and_cleans_up(tmp_path):
    port = free_port()
    demo = Proc([os.path.join(REPO, "conf", "demo")], str(tmp_path / "demo.log"),
                env={"DC_SKIP_APT": "1", "DC_DEMO_PORT": str(port)}, cwd=REPO)
    try:
        def answers():
            try:
                return post(port, "/v2/campaigns", {"visitor_id": "v1", "trigger_hit": False,
                                                    "context": {"isVIP": True}})
            except OSError:
                return None

        status, doc = wait_until(answers, timeout=240, interval=0.2, what="the demo answering")
        assert status == 200
        rc, out, err = run_eval([{"visitor_id": "v1", "trigger_hit": False,
                                  "context": {"isVIP": True}}])
        assert rc == 0, err
        assert doc == json.loads(out[0])
        assert any(c["id"] == "c_vip" for c in doc["campaigns"])
    finally:
        # what Ctrl-C does: SIGINT to the whole foreground group (the script and httpd)
        if demo.alive():
            os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        code = demo.stop()
        log = demo.output()
    run_dir = re.search(r"config in (\S+);", log)
    assert run_dir, log
    assert code in (0, 130), log
    # the demo's httpd is gone and its temporary directory removed
    wait_until(lambda: not os.path.exists(run_dir.group(1)), timeout=20, what="demo cleanup")
    with pytest.raises(OSError):
        post(port, "/v2/campaigns", {"visitor_id": "v1"})


def configure_copy(tmp_path):
    """A copy of what ./configure needs, so the build's own tree is left alone."""
    src = tmp_path / "src"
    (src / "common").mkdir(parents=True)
    for name in ("configure", "config.h.in", "Makefile.in"):
        shutil.copy2(os.path.join(REPO, name), src / name)
    shutil.copytree(os.path.join(REPO, "build-aux"), src / "build-aux")
    shutil.copy2(os.path.join(REPO, "common", "dc_engine.c"), src / "common" / "dc_engine.c")
    return src


def pkgconfig_without(tmp_path, hidden):
    """A pkg-config search directory with every .pc file of the system but `hidden`."""
    d = tmp_path / "pc"
    d.mkdir()
    path = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for directory in path.split(":"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name.endswith(".pc") and name != hidden + ".pc" and not (d / name).exists():
                os.symlink(os.path.join(directory, name), d / name)
    return str(d)


@pytest.mark.parametrize("hidden,package", [
    ("apr-1", "libapr1-dev"), ("apr-util-1", "libaprutil1-dev"), ("jansson", "libjansson-dev"),
    ("libcurl", "libcurl4-openssl-dev"), ("hiredis", "libhiredis-dev"), ("yaml-0.1", "libyaml-dev"),
    ("zlib", "zlib1g-dev"),
    ("fcgiapp.h", "libfcgi-dev"), ("apxs", "apache2-dev")])
def test_configure_names_the_debian_package_of_a_missing_dependency(tmp_path, hidden, package):
    src = configure_copy(tmp_path)
    env = dict(os.environ)
    args = ["./configure", "-q"]
    if hidden == "fcgiapp.h":
        env["ac_cv_header_fcgiapp_h"] = "no"
    elif hidden == "apxs":
        args.append("--with-apxs=%s" % (tmp_path / "no-apxs"))
    else:
        env["PKG_CONFIG_LIBDIR"] = pkgconfig_without(tmp_path, hidden)
    p = subprocess.run(args, cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0, p.stdout
    assert "install the Debian package %s" % package in p.stderr, p.stderr[-2000:]
    # and with nothing hidden, the same copy configures
    if hidden == "apr-1":
        env.pop("PKG_CONFIG_LIBDIR")
        ok = subprocess.run(["./configure", "-q"], cwd=src, env=env, capture_output=True,
                            text=True, timeout=300)
        assert ok.returncode == 0, ok.stderr[-2000:]

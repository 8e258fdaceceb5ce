"""Store plugins (doc/store-plugins.md): the loader's refusals, each with its
message, in eval, decision-fcgi --check and httpd's configtest; the memcached
plugin killed and stalled under load behind httpd with no failed request, its
saves made during the outage replayed, its metrics under its own name; and the
example plugin compiled against the INSTALLED header with nothing but
`pkg-config --cflags decision-store-plugin`.

The shared sticky-assignment suite runs on the memcached plugin in
test_stores.py (eval, httpd prefork and event, decision-fcgi)."""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from harness import (BUILD, DECISION_FCGI, MEMCACHED_PLUGIN, REPO, SAMPLE_BUCKETING, Httpd,
                     MemcachedServer, http_request, make_world_readable_dir, run_eval, wait_until)

HEADER_DIR = os.path.join(REPO, "common")


def apr_cflags():
    return subprocess.run(["pkg-config", "--cflags", "apr-1"], capture_output=True, text=True,
                          check=True).stdout.split()


def build_plugin(tmp_path, name, source, cflags=None):
    """A shared object from source; cflags default to the tree's header."""
    src = tmp_path / (name + ".c")
    src.write_text(source)
    so = str(tmp_path / (name + ".so"))
    flags = cflags if cflags is not None else ["-I" + HEADER_DIR] + apr_cflags()
    p = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                        "-o", so, str(src)] + flags, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    os.chmod(so, 0o755)
    os.chmod(str(tmp_path), 0o755)
    return so


NO_SYMBOL = "int not_a_store(void) { return 42; }\n"

OTHER_ABI = """#include <decision/store_plugin.h>
static int o(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *a, char *e, size_t n)
{ (void)s; (void)p; (void)a; (void)e; (void)n; return 0; }
static dc_store_status_e l(dc_store_t *s, apr_pool_t *p, const char *e, const char *i, size_t n,
                          dc_assignments_t *out)
{ (void)s; (void)p; (void)e; (void)i; (void)n; (void)out; return DC_STORE_NOT_FOUND; }
static dc_store_status_e v(dc_store_t *s, apr_pool_t *p, const char *e, const char *i, size_t n,
                          const dc_assignments_t *c, int64_t t)
{ (void)s; (void)p; (void)e; (void)i; (void)n; (void)c; (void)t; return DC_STORE_OK; }
static const dc_store_provider_t provider = {.name = "future", .open = o, .load = l, .save = v};
DC_STORE_PLUGIN_EXPORT const dc_store_plugin_t decision_store_plugin = {
    .abi_version = DC_STORE_PLUGIN_ABI + 1, .provider = &provider};
"""


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """(store URI, what the refusal must say) for each way a plugin is refused."""
    d = tmp_path_factory.mktemp("plugins")
    no_symbol = build_plugin(d, "no_symbol", NO_SYMBOL)
    other_abi = build_plugin(d, "other_abi", OTHER_ABI)
    assert os.path.exists(MEMCACHED_PLUGIN), "configure did not find libmemcached"
    return [
        ("plugin:%s/missing.so" % d, r"store plugin \S+/missing\.so: cannot load it: .*No such "
                                     r"file or directory"),
        ("plugin:" + no_symbol, r"store plugin \S+/no_symbol\.so: no symbol "
                                r"\"decision_store_plugin\" in it: not a store plugin"),
        ("plugin:" + other_abi, r"store plugin \S+/other_abi\.so was built for store plugin ABI 2, "
                                r"this server has ABI 1: rebuild it"),
        ("plugin:%s?servers=127.0.0.1:1&tll=60" % MEMCACHED_PLUGIN,
         r"store plugin memcached \(\S+\): unknown option \"tll\" \(servers, ttl, timeout_ms, "
         r"prefix\)"),
    ]


def test_eval_refuses_each_bad_plugin_with_its_message(refused):
    for uri, message in refused:
        rc, out, err = run_eval(["{}"], store=uri)
        assert rc == 1 and out == [], (uri, err)
        assert re.search(message, err), (uri, err)


def test_decision_fcgi_check_refuses_each_bad_plugin(refused):
    for uri, message in refused:
        env = {"PATH": os.environ["PATH"], "BUCKETING_FILE": SAMPLE_BUCKETING, "STORE": uri}
        p = subprocess.run([DECISION_FCGI, "--check"], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (uri, p.stdout, p.stderr)
        assert re.search("STORE: " + message, p.stderr), (uri, p.stderr)


def test_httpd_configtest_refuses_each_bad_plugin(refused):
    rundir = make_world_readable_dir("dc-plugin-")
    try:
        for uri, message in refused:
            h = Httpd(rundir, "DecisionBucketingFile %s\nDecisionStore %s\n" % (SAMPLE_BUCKETING,
                                                                               uri))
            h.write_config()
            rc, out = h.configtest()
            assert rc != 0, (uri, out)
            assert re.search("DecisionStore: " + message, out), (uri, out)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def test_secret_options_are_masked_where_the_uri_is_shown(tmp_path):
    so = build_plugin(tmp_path, "any_options",
                      OTHER_ABI.replace("DC_STORE_PLUGIN_ABI + 1", "DC_STORE_PLUGIN_ABI"))
    uri = "plugin:%s?host=db1&api_key=hunter2&password=p%%40ss&timeout_ms=20" % so
    rc, out, err = run_eval(["{}"], store=uri, extra=["--report", "/v2/metrics"])
    assert rc == 0, err
    store = json.loads("\n".join(out[1:]))["store"]
    assert store["backend"] == "future", store
    assert store["uri"] == "plugin:%s?host=db1&api_key=***&password=***&timeout_ms=20" % so, store
    assert "hunter2" not in err and "p@ss" not in err


def prom_value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    return None


def test_memcached_metrics_carry_the_plugins_name(tmp_path):
    mc = MemcachedServer(tmp_path).start()
    try:
        lines = [{"visitor_id": "m-%d" % i} for i in range(5)] * 2
        rc, out, err = run_eval(lines, store=mc.uri(), extra=["--report", "/metrics"])
        assert rc == 0, err
        report = "\n".join(out[len(lines):])
        assert prom_value(report, 'decision_store_operations_total{backend="memcached",'
                                  'op="load"}') >= 10, report
        assert prom_value(report, 'decision_store_operations_total{backend="memcached",'
                                  'op="save"}') == 5, report
        assert prom_value(report, 'decision_store_errors_total{backend="memcached",'
                                  'op="load"}') == 0, report
        assert 'decision_store_operation_duration_seconds_count{backend="memcached",op="load"}' \
            in report
        assert prom_value(report, 'decision_store_up{backend="memcached"}') == 1, report
        assert json.loads(mc.get("/m-0"))["Assignments"], "the record is the DBM store's format"
    finally:
        mc.stop()


def test_memcached_killed_and_stalled_under_load_fails_no_request(tmp_path):
    """Eight clients against httpd (event MPM) while memcached is killed, restarted,
    stopped with SIGSTOP and continued: every request answers 200, a stalled call
    costs at most about its timeout, saves made during the outage reach memcached
    once it is back, and the outage is logged once each way."""
    mc = MemcachedServer(tmp_path).start()
    rundir = make_world_readable_dir("dc-plugin-")
    h = Httpd(rundir, "DecisionEnvironment envL\nDecisionBucketingFile %s\nDecisionStore %s\n"
                      "<Location /v2>\n  SetHandler decision\n</Location>\n" % (
                          SAMPLE_BUCKETING, mc.uri("timeout_ms=50&max_backoff_ms=300")),
              mpm="event")
    results, stop = [], threading.Event()
    lock = threading.Lock()

    def client(n):
        i = 0
        while not stop.is_set():
            vid = "load-%d-%d" % (n, i)
            start = time.monotonic()
            try:
                status, _, _ = http_request(h.base_url, "/v2/campaigns", {"visitor_id": vid},
                                            timeout=10)
            except OSError as e:
                status = repr(e)
            with lock:
                results.append((vid, start, time.monotonic(), status))
            i += 1

    h.start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.7)
        killed = time.monotonic()
        mc.stop()
        time.sleep(1.0)
        mc.start()  # same port, empty
        back = time.monotonic()
        time.sleep(1.0)
        mc.proc.send_signal(signal.SIGSTOP)
        stalled = time.monotonic()
        time.sleep(1.0)
        mc.proc.send_signal(signal.SIGCONT)
        continued = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    try:
        failed = [r for r in results if r[3] != 200]
        assert not failed, failed[:5]
        assert len(results) > 200, len(results)
        during_stall = [r[2] - r[1] for r in results if stalled < r[1] and r[2] < continued]
        assert during_stall and max(during_stall) < 1.0, max(during_stall or [0])
        # saves made while memcached was dead were replayed once it was back
        outage = [r[0] for r in results if killed + 0.1 < r[1] and r[2] < back - 0.1]
        assert outage
        wait_until(lambda: any(mc.get("envL/" + vid) for vid in outage), timeout=10,
                   what="a save from the outage replayed")
        # and the store serves new visitors again
        vid = "after-%d" % time.time()
        assert http_request(h.base_url, "/v2/campaigns", {"visitor_id": vid})[0] == 200
        wait_until(lambda: mc.get("envL/" + vid), timeout=10, what="a save after recovery")
        log = h.log()
        assert log.count("DC10801") >= 1 and log.count("DC10802") >= 1, log[-3000:]
        assert "DC10362" in log, log[-3000:]  # the replay's line
    finally:
        h.stop()
        mc.stop()
        log, sanitizer = h.log(), h.sanitizer_reports()
        shutil.rmtree(rundir, ignore_errors=True)
    assert "exit signal" not in log, log[-3000:]
    assert sanitizer == ""


def test_example_plugin_builds_against_the_installed_header(tmp_path):
    """make install lays out the interface and the memcached plugin; the example of
    doc/store-plugins.md compiles with only the installed pkg-config file's flags,
    and eval serves it."""
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-s", "-C", BUILD, "install", "DESTDIR=%s" % dest],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    pcs = glob.glob(str(dest) + "/**/pkgconfig/decision-store-plugin.pc", recursive=True)
    assert len(pcs) == 1, pcs
    headers = glob.glob(str(dest) + "/**/include/decision/store_plugin.h", recursive=True)
    assert len(headers) == 1, headers
    plugins = glob.glob(str(dest) + "/**/mod_decision/store_memcached.so", recursive=True)
    assert len(plugins) == 1 and not glob.glob(str(dest) + "/**/store_memcached.la",
                                               recursive=True), plugins
    # the interface alone into a prefix of its own, as a plugin author's machine has it
    prefix = tmp_path / "prefix"
    p = subprocess.run(["make", "-s", "-C", BUILD, "install-decisionincludeHEADERS",
                        "install-data-local", "prefix=%s" % prefix],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    env.pop("PKG_CONFIG_LIBDIR", None)
    cflags = subprocess.run(["pkg-config", "--cflags", "decision-store-plugin"], env=env,
                            capture_output=True, text=True, check=True).stdout.split()
    assert "-I%s/include" % prefix in cflags, cflags
    assert not any(HEADER_DIR in f for f in cflags)
    with open(os.path.join(REPO, "stores", "example", "store_example.c")) as f:
        source = f.read()
    so = build_plugin(tmp_path, "store_example", source, cflags=cflags)

    lines = [{"visitor_id": "ex-%d" % (i % 4)} for i in range(8)]
    rc, out, err = run_eval(lines, store="plugin:%s?buckets=64" % so,
                            extra=["--report", "/metrics"])
    assert rc == 0, err
    report = "\n".join(out[len(lines):])
    # the first four visitors were saved, the last four found what was saved
    assert prom_value(report, 'decision_store_operations_total{backend="example",'
                              'op="save"}') == 4, report
    assert prom_value(report, 'decision_store_errors_total{backend="example",'
                              'op="load"}') == 0, report
    answers = [json.loads(line) for line in out[:len(lines)]]
    assert answers[:4] == answers[4:]
    rc, out, err = run_eval(["{}"], store="plugin:%s?bucket=1" % so)
    assert rc == 1 and 'store plugin example (%s): unknown option or bad value "bucket"' % so \
        in err, err

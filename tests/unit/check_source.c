/*
 * dc_source against the real stand-in CDN (tests/standin.py, started here on a
 * free loopback port and stopped by PID): conditional GETs and 304s, errors
 * and garbage that keep the current config, the size bound, the
 * last-known-good file, and a local file that changes on disk.
 */
#include "dc_source.h"
#include "dc_test.h"

#include <apr_strings.h>
#include <curl/curl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dc_test_standin_t standin;
static char tmpdir[] = "/tmp/dc-check-source-XXXXXX";

static void standin_start(void)
{
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    dc_test_standin_start(&standin);
}

static void standin_stop(void)
{
    char cmd[128];

    dc_test_standin_stop(&standin);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* One control request to the stand-in; returns the body (static buffer). */
static const char *control(const char *method, const char *path, const char *body, size_t len)
{
    static char last[65536];
    char *out = dc_test_standin_control(&standin, method, path, body, len);

    apr_cpystrn(last, out ? out : "", sizeof(last));
    free(out);
    return last;
}

static void serve_file(const char *env, const char *path)
{
    FILE *f = fopen(path, "rb");
    static char data[1 << 20];
    size_t n;
    char where[128];

    ck_assert_ptr_nonnull(f);
    n = fread(data, 1, sizeof(data), f);
    fclose(f);
    snprintf(where, sizeof(where), "/_standin/bucketing/%s", env);
    control("PUT", where, data, n);
}

static void serve_bytes(const char *env, const char *data)
{
    char where[128];

    snprintf(where, sizeof(where), "/_standin/bucketing/%s", env);
    control("PUT", where, data, strlen(data));
}

static void cdn_mode(const char *json)
{
    control("POST", "/_standin/cdn", json, strlen(json));
}

static dc_source_t *url_source(apr_pool_t *p, const char *env, const char *lkg)
{
    dc_source_options_t o;
    char err[256];
    dc_source_t *s;

    memset(&o, 0, sizeof(o));
    o.url = apr_psprintf(p, "%s/%s/bucketing.json", standin.base_url, env);
    o.last_known_good = lkg;
    s = dc_source_create(p, &o, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static const char *MINIMAL =
    "{\"campaigns\":[{\"id\":\"c1\",\"type\":\"toggle\",\"bucketRanges\":[{\"r\":[0,100]}],"
    "\"variationGroups\":[{\"id\":\"g1\",\"targeting\":{\"targetingGroups\":[{\"targetings\":"
    "[{\"operator\":\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}]}]},\"variations\":"
    "[{\"id\":\"v1\",\"allocation\":100,\"modifications\":{\"type\":\"FLAG\",\"value\":"
    "{\"f\":1}}}]}]}]}";

START_TEST(test_conditional_get_and_last_known_good)
{
    apr_pool_t *p;
    dc_source_t *s, *again;
    dc_config_t *cfg, *first;
    dc_source_status_t st;
    char err[256];
    const char *lkg;
    struct stat sb;

    apr_pool_create(&p, NULL);
    lkg = apr_psprintf(p, "%s/lkg-1.json", tmpdir);
    serve_file("env1", DC_SAMPLE_BUCKETING);
    s = url_source(p, "env1", lkg);
    ck_assert_int_eq(dc_source_load_initial(s, &cfg, err, sizeof(err)), -1); /* nothing yet */

    ck_assert_int_eq(dc_source_refresh(s, &first), DC_SOURCE_CHANGED);
    ck_assert_uint_eq(first->n_campaigns, 5);
    ck_assert_int_eq(stat(lkg, &sb), 0);
    ck_assert_int_eq((int)sb.st_size, (int)first->source_len);

    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_UNCHANGED);
    ck_assert_ptr_null(cfg);
    /* the second GET carried the validator and got a 304 */
    ck_assert_ptr_nonnull(strstr(control("GET", "/_standin/cdn-requests", NULL, 0), ", 304]"));
    dc_source_status(s, &st);
    ck_assert_str_eq(st.origin, "url");
    ck_assert_str_eq(st.digest, first->digest);
    ck_assert_uint_eq(st.changes, 1);
    ck_assert_uint_eq(st.not_modified, 1);

    /* a restart serves the last-known-good file before any fetch */
    again = url_source(p, "env1", lkg);
    ck_assert_int_eq(dc_source_load_initial(again, &cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg->digest, first->digest);
    dc_source_status(again, &st);
    ck_assert_str_eq(st.origin, "last-known-good");
    dc_config_unref(cfg);

    /* a new file on the CDN is a change */
    serve_bytes("env1", MINIMAL);
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_CHANGED);
    ck_assert_uint_eq(cfg->n_campaigns, 1);
    ck_assert_str_ne(cfg->digest, first->digest);
    dc_config_unref(cfg);
    dc_config_unref(first);
    dc_source_destroy(s);
    dc_source_destroy(again);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_failures_keep_the_current_config)
{
    apr_pool_t *p;
    dc_source_t *s;
    dc_config_t *cfg;
    dc_source_status_t st;
    const char *lkg;
    struct stat before, after;

    apr_pool_create(&p, NULL);
    lkg = apr_psprintf(p, "%s/lkg-2.json", tmpdir);
    serve_file("env2", DC_SAMPLE_BUCKETING);
    s = url_source(p, "env2", lkg);
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_CHANGED);
    dc_config_unref(cfg);
    ck_assert_int_eq(stat(lkg, &before), 0);

    cdn_mode("{\"status\":500}");
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    ck_assert_ptr_null(cfg);
    dc_source_status(s, &st);
    ck_assert_uint_eq(st.failures_in_a_row, 1);
    ck_assert_ptr_nonnull(strstr(st.last_error, "HTTP status 500"));

    cdn_mode("{\"garbage\":true}");
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    dc_source_status(s, &st);
    ck_assert_uint_eq(st.failures_in_a_row, 2);
    ck_assert_ptr_nonnull(strstr(st.last_error, "invalid bucketing file"));

    /* a valid JSON document that is not a bucketing file is rejected with its path */
    cdn_mode("{}");
    serve_bytes("env2", "{\"campaigns\":[{\"id\":5}]}");
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    dc_source_status(s, &st);
    ck_assert_ptr_nonnull(strstr(st.last_error, "campaigns[0]"));
    ck_assert_int_eq(stat(lkg, &after), 0);
    ck_assert_int_eq((int)after.st_size, (int)before.st_size); /* not overwritten */

    serve_file("env2", DC_SAMPLE_BUCKETING);
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_UNCHANGED); /* same ETag: 304 */
    dc_source_status(s, &st);
    ck_assert_uint_eq(st.failures_in_a_row, 0);
    ck_assert_str_eq(st.last_error, "");
    ck_assert_uint_eq(st.errors, 3);
    dc_source_destroy(s);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_size_bound_and_unreachable_host)
{
    apr_pool_t *p;
    dc_source_options_t o;
    dc_source_t *s;
    dc_config_t *cfg;
    dc_source_status_t st;
    char err[256];

    apr_pool_create(&p, NULL);
    serve_file("env3", DC_SAMPLE_BUCKETING);
    memset(&o, 0, sizeof(o));
    o.url = apr_psprintf(p, "%s/env3/bucketing.json", standin.base_url);
    o.max_size = 100;
    s = dc_source_create(p, &o, err, sizeof(err));
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    dc_source_status(s, &st);
    ck_assert_ptr_nonnull(strstr(st.last_error, "larger than 100 bytes"));
    dc_source_destroy(s);

    o.url = apr_psprintf(p, "http://127.0.0.1:%d/env3/bucketing.json", dc_test_free_port());
    o.max_size = 0;
    o.connect_timeout_ms = 500;
    s = dc_source_create(p, &o, err, sizeof(err));
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    dc_source_status(s, &st);
    ck_assert_str_ne(st.last_error, "");
    dc_source_destroy(s);

    /* an unwritable last-known-good file: the new config is not taken either */
    o.url = apr_psprintf(p, "%s/env3/bucketing.json", standin.base_url);
    o.last_known_good = apr_psprintf(p, "%s/no/such/dir/lkg.json", tmpdir);
    s = dc_source_create(p, &o, err, sizeof(err));
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    dc_source_status(s, &st);
    ck_assert_ptr_nonnull(strstr(st.last_error, "cannot write"));
    dc_source_destroy(s);
    apr_pool_destroy(p);
}
END_TEST

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    fputs(data, f);
    fclose(f);
}

START_TEST(test_local_file_is_re_read_when_it_changes)
{
    apr_pool_t *p;
    dc_source_options_t o;
    dc_source_t *s;
    dc_config_t *cfg;
    dc_source_status_t st;
    char err[256];
    const char *path;

    apr_pool_create(&p, NULL);
    path = apr_psprintf(p, "%s/local.json", tmpdir);
    write_file(path, MINIMAL);
    memset(&o, 0, sizeof(o));
    o.file = path;
    s = dc_source_create(p, &o, err, sizeof(err));
    ck_assert_int_eq(dc_source_load_initial(s, &cfg, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg->n_campaigns, 1);
    dc_config_unref(cfg);
    dc_source_status(s, &st);
    ck_assert_str_eq(st.origin, "file");
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_UNCHANGED);

    write_file(path, "{\"campaigns\":[]}");
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_CHANGED);
    ck_assert_uint_eq(cfg->n_campaigns, 0);
    dc_config_unref(cfg);

    write_file(path, "{\"campaigns\":[{\"id\":\"c\",\"variationGroups\":7}]}");
    ck_assert_int_eq(dc_source_refresh(s, &cfg), DC_SOURCE_FAILED);
    dc_source_status(s, &st);
    ck_assert_ptr_nonnull(strstr(st.last_error, "variationGroups"));
    dc_source_destroy(s);
    apr_pool_destroy(p);
}
END_TEST

START_TEST(test_bad_options)
{
    apr_pool_t *p;
    dc_source_options_t o;
    char err[256];

    apr_pool_create(&p, NULL);
    memset(&o, 0, sizeof(o));
    ck_assert_ptr_null(dc_source_create(p, &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "no bucketing source"));
    o.url = "ftp://example.invalid/x.json";
    ck_assert_ptr_null(dc_source_create(p, &o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "http://"));
    apr_pool_destroy(p);
}
END_TEST

static Suite *source_suite(void)
{
    Suite *s = suite_create("source");
    TCase *tc = tcase_create("standin");

    tcase_add_unchecked_fixture(tc, standin_start, standin_stop);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_conditional_get_and_last_known_good);
    tcase_add_test(tc, test_failures_keep_the_current_config);
    tcase_add_test(tc, test_size_bound_and_unreachable_host);
    tcase_add_test(tc, test_local_file_is_re_read_when_it_changes);
    tcase_add_test(tc, test_bad_options);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(source_suite)

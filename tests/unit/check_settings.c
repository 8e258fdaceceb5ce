/*
 * dc_settings and dc_store_uri_from_flagship: Go durations, booleans, sizes, the
 * environment and YAML sources and their priority, every error named, secrets
 * never in a message, and the decision-api's cache settings as store URIs.
 */
#include "dc_test.h"

#include "dc_settings.h"
#include "dc_store.h"

#include <apr_strings.h>
#include <string.h>

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* Whether any error of s contains needle. */
static int has_error(const dc_settings_t *s, const char *needle)
{
    for (int i = 0; i < s->errors->nelts; i++)
        if (strstr(APR_ARRAY_IDX(s->errors, i, const char *), needle))
            return 1;
    return 0;
}

static const char *table_get(void *baton, const char *name)
{
    return apr_table_get(baton, name);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *write_file(const char *text)
{
    char *path = apr_psprintf(pool, "/tmp/dc-check-settings-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(go_durations)
{
    static const struct {
        const char *text;
        apr_interval_time_t us;
    } ok[] = {{"1m", 60000000},       {"30s", 30000000}, {"1h30m", 5400000000LL},
              {"1.5s", 1500000},      {"500ms", 500000}, {"2h45m10s", 9910000000LL},
              {"100us", 100},         {"0", 0},          {"1m0.5s", 60500000},
              {"2160h", 7776000000000LL}};
    static const char *const bad[] = {"", "10", "1x", "s", "1m 2s", "--1s", "1e3s", ".s", "m1"};
    apr_interval_time_t d;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(dc_parse_go_duration(ok[i].text, &d) == 0, "%s", ok[i].text);
        ck_assert_msg(d == ok[i].us, "%s: %lld", ok[i].text, (long long)d);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(dc_parse_go_duration(bad[i], &d) < 0, "%s accepted", bad[i]);
}
END_TEST

START_TEST(booleans)
{
    int b;

    ck_assert_int_eq(dc_parse_bool("TRUE", &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(dc_parse_bool("0", &b), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(dc_parse_bool("off", &b), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_lt(dc_parse_bool("maybe", &b), 0);
    ck_assert_int_lt(dc_parse_bool("", &b), 0);
}
END_TEST

START_TEST(defaults)
{
    dc_settings_t *s = dc_settings_create(pool);
    dc_api_options_t opt;

    dc_settings_set(s, "ENV_ID", "env1", "test");
    ck_assert_int_eq(dc_settings_finish(s), 0);
    ck_assert_str_eq(s->bucketing_url, "https://cdn.flagship.io/env1/bucketing.json");
    ck_assert_int_eq(s->polling_interval, apr_time_from_sec(60));
    ck_assert_int_eq(s->cors_enabled, 1);
    ck_assert_str_eq(s->store_uri, "none");
    ck_assert_int_eq(s->log_level, DC_LOG_WARN);
    ck_assert_int_eq(s->max_body_size, 1024 * 1024);
    ck_assert_int_eq(s->metrics_enabled, 1);
    ck_assert_str_eq(s->prometheus_path, "/metrics");
    ck_assert_ptr_null(s->status_path);
    ck_assert_ptr_null(s->spool_dir);
    ck_assert_int_eq(s->shipper_enabled, 1);
    dc_settings_api_options(s, &opt);
    ck_assert_str_eq(opt.prometheus_path, "/metrics");
    ck_assert_str_eq(opt.env_id, "env1");
    ck_assert_str_eq(opt.cors_origins, "*");
    ck_assert_int_eq(opt.require_api_key, 0);
    ck_assert_int_eq(opt.ofrep_activate, 0);
    ck_assert(strstr(opt.cors_headers, "If-None-Match") != NULL); /* OFREP's revalidation */

    /* OFREP evaluations send activation hits only when asked */
    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "env1", "test");
    dc_settings_set(s, "ofrep.activate", "on", "test");
    ck_assert_int_eq(dc_settings_finish(s), 0);
    dc_settings_api_options(s, &opt);
    ck_assert_int_eq(opt.ofrep_activate, 1);
    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "env1", "test");
    dc_settings_set(s, "OFREP_ACTIVATE", "sometimes", "test");
    ck_assert_int_eq(dc_settings_finish(s), -1);
}
END_TEST

START_TEST(file_alone_means_no_cdn)
{
    dc_settings_t *s = dc_settings_create(pool);

    dc_settings_set(s, "BUCKETING_FILE", "/x.json", "test");
    ck_assert_int_eq(dc_settings_finish(s), 0);
    ck_assert_ptr_null(s->bucketing_url);
    s = dc_settings_create(pool);
    ck_assert_int_lt(dc_settings_finish(s), 0);
    ck_assert(has_error(s, "ENV_ID: missing"));
    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "BUCKETING_URL", "none", "test");
    ck_assert_int_lt(dc_settings_finish(s), 0);
    ck_assert(has_error(s, "no bucketing file to serve"));
}
END_TEST

START_TEST(environment_and_typos)
{
    const char *env[] = {"ENV_ID=e2", "CORS_ENABLED=false", "MAX_BODY_SIZE=64k",
                         "POLLING_INTERVAL=2m", "PATH=/usr/bin", "LOGNAME=root",
                         "CORS_ORIGINS=*", "THREADS=", "LOG_DIR=/var/log", NULL};
    dc_settings_t *s = dc_settings_create(pool);

    ck_assert_int_lt(dc_settings_load_env(s, env), 0);
    ck_assert(has_error(s, "unknown setting CORS_ORIGINS (did you mean CORS_ALLOWED_ORIGINS?)"));
    ck_assert_int_eq(s->errors->nelts, 1); /* PATH, LOGNAME, LOG_DIR are not ours */
    s = dc_settings_create(pool);
    env[6] = "LOG_DIR=/var/log";
    env[8] = NULL;
    ck_assert_int_eq(dc_settings_load_env(s, env), 0);
    ck_assert_int_eq(dc_settings_finish(s), 0);
    ck_assert_int_eq(s->cors_enabled, 0);
    ck_assert_int_eq(s->max_body_size, 65536);
    ck_assert_int_eq(s->polling_interval, apr_time_from_sec(120));
    ck_assert_int_eq(s->threads, 0); /* empty is unset */
}
END_TEST

START_TEST(yaml_nested_and_env_wins)
{
    const char *path = write_file("env_id: from-file\n"
                                  "polling_interval: 45s\n"
                                  "cors:\n  enabled: no\n  allowed_origins: https://f.example\n"
                                  "log:\n  level: debug\n  format: json\n"
                                  "cache:\n  type: redis\n  options:\n"
                                  "    redisHost: \"10.0.0.5:6380\"\n    REDISDB: 3\n"
                                  "    redisTtl: 1h\n    redisPassword: p@ss/word\n");
    const char *env[] = {"ENV_ID=from-env", NULL};
    dc_settings_t *s = dc_settings_create(pool);

    ck_assert_int_eq(dc_settings_load_yaml(s, path), 0);
    ck_assert_int_eq(dc_settings_load_env(s, env), 0);
    ck_assert_int_eq(dc_settings_finish(s), 0);
    ck_assert_str_eq(s->env_id, "from-env");
    ck_assert_int_eq(s->polling_interval, apr_time_from_sec(45));
    ck_assert_int_eq(s->cors_enabled, 0);
    ck_assert_str_eq(s->cors_allowed_origins, "https://f.example");
    ck_assert_int_eq(s->log_level, DC_LOG_DEBUG);
    ck_assert_int_eq(s->log_format, DC_LOG_FORMAT_JSON);
    ck_assert_msg(strncmp(s->store_uri, "redis://:", 9) == 0, "%s", s->store_uri);
    ck_assert_msg(ends_with(s->store_uri, "@10.0.0.5:6380/3?ttl=3600"), "%s", s->store_uri);
    unlink(path);
}
END_TEST

START_TEST(yaml_errors)
{
    const char *path = write_file("env_id: e\ncors:\n  enabeld: true\nlog: debug\n"
                                  "polling_interval: [1, 2]\nbogus:\n  deep: 1\n");
    dc_settings_t *s = dc_settings_create(pool);

    ck_assert_int_lt(dc_settings_load_yaml(s, path), 0);
    ck_assert(has_error(s, ":3: unknown key \"cors.enabeld\" (did you mean cors.enabled?)"));
    ck_assert(has_error(s, ":4: unknown key \"log\""));
    ck_assert(has_error(s, ":5: polling_interval: expected a single value"));
    ck_assert(has_error(s, ":6: unknown key \"bogus\""));
    unlink(path);

    /* an alias is walked where it is used, under that key */
    path = write_file("cors: &c {enabled: true}\nlog: *c\n");
    s = dc_settings_create(pool);
    ck_assert_int_lt(dc_settings_load_yaml(s, path), 0);
    ck_assert(has_error(s, "unknown key \"log.enabled\""));
    unlink(path);

    path = write_file("env_id: [unclosed\n");
    s = dc_settings_create(pool);
    ck_assert_int_lt(dc_settings_load_yaml(s, path), 0);
    ck_assert(has_error(s, "YAML"));
    unlink(path);

    path = write_file("");
    s = dc_settings_create(pool);
    ck_assert_int_eq(dc_settings_load_yaml(s, path), 0); /* an empty file is no settings */
    unlink(path);
}
END_TEST

START_TEST(bad_values_all_named_secrets_hidden)
{
    dc_settings_t *s = dc_settings_create(pool);

    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "CORS_ENABLED", "sure", "environment");
    dc_settings_set(s, "POLLING_INTERVAL", "500ms", "environment");
    dc_settings_set(s, "LOG_FORMAT", "xml", "environment");
    dc_settings_set(s, "THREADS", "many", "environment");
    dc_settings_set(s, "MAX_BODY_SIZE", "0", "environment");
    dc_settings_set(s, "REQUIRE_API_KEY", "1", "environment");
    dc_settings_set(s, "STORE", "redis://u:hunter2@h:1", "environment");
    dc_settings_set(s, "CACHE_TYPE", "memory", "environment");
    dc_settings_set(s, "ADDRESS", ":8080", "environment");
    ck_assert_int_lt(dc_settings_finish(s), 0);
    ck_assert(has_error(s, "CORS_ENABLED (environment): expected true or false, not \"sure\""));
    ck_assert(has_error(s, "POLLING_INTERVAL (environment): expected a Go duration"));
    ck_assert(has_error(s, "LOG_FORMAT (environment)"));
    ck_assert(has_error(s, "THREADS (environment)"));
    ck_assert(has_error(s, "MAX_BODY_SIZE (environment)"));
    ck_assert(has_error(s, "REQUIRE_API_KEY (environment) is on but API_KEY is not set"));
    ck_assert(has_error(s, "both set"));
    ck_assert(!has_error(s, "hunter2"));
    ck_assert_int_eq(s->warnings->nelts, 1); /* ADDRESS: known, unused */
    ck_assert_int_lt(dc_settings_set(s, "NOPE", "1", "test"), 0);
}
END_TEST

START_TEST(api_key_modes)
{
    static const struct {
        const char *text;
        dc_api_key_mode_e mode;
    } ok[] = {{"decisions", DC_API_KEY_DECISIONS}, {"DECISIONS", DC_API_KEY_DECISIONS},
              {"true", DC_API_KEY_ALL},           {"on", DC_API_KEY_ALL},
              {"1", DC_API_KEY_ALL},              {"false", DC_API_KEY_OFF},
              {"off", DC_API_KEY_OFF}};
    dc_api_key_mode_e mode;
    dc_api_options_t opt;
    dc_settings_t *s;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_int_eq(dc_parse_api_key_mode(ok[i].text, &mode), 0);
        ck_assert_int_eq(mode, ok[i].mode);
    }
    ck_assert_int_lt(dc_parse_api_key_mode("decision", &mode), 0);
    ck_assert_int_lt(dc_parse_api_key_mode("", &mode), 0);

    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "API_KEY", "k", "test");
    dc_settings_set(s, "require_api_key", "decisions", "f.yaml:2");
    ck_assert_int_eq(dc_settings_finish(s), 0);
    dc_settings_api_options(s, &opt);
    ck_assert_int_eq(opt.require_api_key, DC_API_KEY_DECISIONS);

    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "REQUIRE_API_KEY", "decisions", "environment");
    ck_assert_int_lt(dc_settings_finish(s), 0);
    ck_assert(has_error(s, "REQUIRE_API_KEY (environment) is decisions but API_KEY is not set"));

    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "API_KEY", "k", "test");
    dc_settings_set(s, "REQUIRE_API_KEY", "activations", "environment");
    ck_assert_int_lt(dc_settings_finish(s), 0);
    ck_assert(has_error(s, "REQUIRE_API_KEY (environment): expected true, false or decisions, "
                           "not \"activations\""));
}
END_TEST

/* SWAGGER_UI_URL / swagger.ui_url reach the API options; a value that is no URL is refused. */
START_TEST(swagger_ui_url)
{
    dc_settings_t *s = dc_settings_create(pool);
    dc_api_options_t opt;

    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "BUCKETING_FILE", "/nonexistent.json", "test");
    dc_settings_set(s, "swagger.ui_url", "/swagger-ui", "file.yaml:3");
    ck_assert_int_eq(dc_settings_finish(s), 0);
    dc_settings_api_options(s, &opt);
    ck_assert_str_eq(opt.swagger_ui, "/swagger-ui");

    s = dc_settings_create(pool);
    dc_settings_set(s, "ENV_ID", "e", "test");
    dc_settings_set(s, "BUCKETING_FILE", "/nonexistent.json", "test");
    dc_settings_set(s, "SWAGGER_UI_URL", "/ui\"><script>", "environment");
    ck_assert_int_lt(dc_settings_finish(s), 0);
    ck_assert(has_error(s, "SWAGGER_UI_URL (environment): expected a path"));
}
END_TEST

/* What any implementation of the mapping must do (the stores work has one too). */
START_TEST(flagship_cache_mapping)
{
    apr_table_t *o = apr_table_make(pool, 4);
    char err[256];
    const char *uri;

    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)), "none");
    apr_table_set(o, "CACHE_TYPE", "memory");
    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)), "memory");
    apr_table_set(o, "CACHE_TYPE", "redis");
    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)),
                     "redis://localhost:6379/0?ttl=7776000");
    apr_table_set(o, "CACHE_OPTIONS_REDISHOST", "cache.internal:6380");
    apr_table_set(o, "CACHE_OPTIONS_REDISUSERNAME", "app");
    apr_table_set(o, "CACHE_OPTIONS_REDISPASSWORD", "p@ss/word");
    apr_table_set(o, "CACHE_OPTIONS_REDISTLS", "true");
    apr_table_set(o, "CACHE_OPTIONS_REDISDB", "2");
    apr_table_set(o, "CACHE_OPTIONS_REDISTTL", "1h");
    uri = dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err));
    ck_assert_ptr_nonnull(uri);
    ck_assert_msg(strncmp(uri, "rediss://app:", 13) == 0, "%s", uri);
    ck_assert_msg(ends_with(uri, "@cache.internal:6380/2?ttl=3600"), "%s", uri);
    ck_assert_ptr_null(strstr(uri, "p@ss/")); /* escaped into the userinfo */
    apr_table_set(o, "CACHE_OPTIONS_REDISTTL", "forever");
    ck_assert_ptr_null(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "REDISTTL"));
    ck_assert_ptr_null(strstr(err, "p@ss"));
    apr_table_set(o, "CACHE_OPTIONS_REDISTTL", "1h");
    apr_table_set(o, "CACHE_OPTIONS_REDISDB", "zero");
    ck_assert_ptr_null(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "REDISDB"));
    apr_table_set(o, "CACHE_OPTIONS_REDISDB", "0");
    apr_table_set(o, "CACHE_OPTIONS_REDISHOST", "h/x");
    ck_assert_ptr_null(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "REDISHOST"));
    apr_table_clear(o);
    apr_table_set(o, "CACHE_TYPE", "local");
    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)),
                     "dbm:cache_data");
    apr_table_set(o, "CACHE_OPTIONS_DBPATH", "/nonexistent/assignments.db");
    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)),
                     "dbm:/nonexistent/assignments.db");
    apr_table_set(o, "CACHE_TYPE", "dynamo");
    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)),
                     "dynamo://visitor-assignments?pk_field=id&pk_separator=.&get_timeout_ms=1000");
    apr_table_set(o, "CACHE_OPTIONS_DYNAMOTABLENAME", "prod.assignments");
    apr_table_set(o, "CACHE_OPTIONS_DYNAMOPKSEPARATOR", "#");
    apr_table_set(o, "CACHE_OPTIONS_DYNAMOPKFIELD", "pk");
    apr_table_set(o, "CACHE_OPTIONS_DYNAMOGETTIMEOUT", "250ms");
    ck_assert_str_eq(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)),
                     "dynamo://prod.assignments?pk_field=pk&pk_separator=%23&get_timeout_ms=250");
    apr_table_set(o, "CACHE_OPTIONS_DYNAMOGETTIMEOUT", "1000");
    ck_assert_ptr_null(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "CACHE_OPTIONS_DYNAMOGETTIMEOUT"));
    apr_table_set(o, "CACHE_TYPE", "mongo");
    ck_assert_ptr_null(dc_store_uri_from_flagship(pool, table_get, o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "not supported"));
}
END_TEST

static Suite *settings_suite(void)
{
    Suite *s = suite_create("settings");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, go_durations);
    tcase_add_test(tc, booleans);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, file_alone_means_no_cdn);
    tcase_add_test(tc, environment_and_typos);
    tcase_add_test(tc, yaml_nested_and_env_wins);
    tcase_add_test(tc, yaml_errors);
    tcase_add_test(tc, bad_values_all_named_secrets_hidden);
    tcase_add_test(tc, api_key_modes);
    tcase_add_test(tc, flagship_cache_mapping);
    tcase_add_test(tc, swagger_ui_url);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(settings_suite)

/*
 * The HTTP-agnostic API, driven directly: the decision-api's recorded
 * exchanges (vectors.json http_observed) replayed in order against one
 * service with a memory store, the spec's reference examples on the sample
 * file, and our own error handling (405, 401, 413, 404, CORS).
 */
#include "dc_test.h"

#include "dc_api.h"
#include "dc_buf.h"
#include "dc_config.h"
#include "dc_hits.h"
#include "dc_openapi.h"

#include <apr_strings.h>
#include <inttypes.h>
#include <string.h>

static apr_pool_t *pool;
static dc_service_t svc;

static void setup(void)
{
    char err[256];

    apr_pool_create(&pool, NULL);
    ck_assert_int_eq(dc_service_init(&svc, pool), 0);
    svc.opt.env_id = "env_r";
    svc.store = dc_store_open(pool, "memory", err, sizeof(err));
    ck_assert_ptr_nonnull(svc.store);
}

static void teardown(void)
{
    dc_store_close(svc.store);
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(pool);
}

static void publish_json(const json_t *doc)
{
    char *text = json_dumps(doc, 0);
    dc_config_t *cfg;
    dc_config_error_t err;

    ck_assert_msg(dc_config_parse(text, strlen(text), &cfg, &err) == 0, "%s: %s", err.path,
                  err.text);
    free(text);
    dc_slot_publish(&svc.slot, cfg);
}

/* Publishes one of the fixture environments of vectors.json. */
static void publish_fixture(const char *name)
{
    json_t *v = dc_test_vectors();

    publish_json(json_object_get(json_object_get(v, "http_fixture_envs"), name));
    json_decref(v);
}

static void call(const char *method, const char *target, const char *body, dc_response_t *resp)
{
    dc_request_t req;
    const char *q = strchr(target, '?');

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = q ? apr_pstrndup(pool, target, (apr_size_t)(q - target)) : target;
    req.query = q ? q + 1 : NULL;
    req.body = body ? body : "";
    req.body_len = body ? strlen(body) : 0;
    req.received = apr_time_now();
    dc_api_handle(&svc, pool, &req, resp);
}

static json_t *parse_body(const dc_response_t *resp)
{
    json_error_t err;
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, &err);

    ck_assert_msg(doc != NULL, "response is not JSON: %.*s", (int)resp->body_len, resp->body);
    return doc;
}

/* Where we answer differently from the decision-api on purpose (spec FLAGSHIP.md §8). */
static const struct {
    const char *name_prefix;
    int status;
} deviations[] = {
    {"GET not allowed", 405},                /* 405 + Allow instead of 400 */
    {"OPTIONS preflight", 204},              /* 204 instead of 200 */
    {"unknown mode", 400},                   /* a JSON error instead of 200 {} */
    {"activate: method not checked", 405},   /* /v2/activate answers POST only */
};

static int expected_status(const char *name, int upstream)
{
    for (size_t i = 0; i < sizeof(deviations) / sizeof(deviations[0]); i++)
        if (strncmp(name, deviations[i].name_prefix, strlen(deviations[i].name_prefix)) == 0)
            return deviations[i].status;
    return upstream;
}

START_TEST(observed_exchanges)
{
    json_t *v = dc_test_vectors();
    json_t *envs = json_object_get(v, "http_fixture_envs");
    json_t *cases = json_object_get(json_object_get(v, "http_observed"), "cases"), *c;
    size_t i, compared = 0;

    json_array_foreach(cases, i, c)
    {
        json_t *req, *want;
        const char *name, *body;
        dc_response_t resp;
        int want_status;

        if (json_object_get(c, "set_env")) {
            publish_json(json_object_get(envs, json_string_value(json_object_get(c, "set_env"))));
            continue;
        }
        name = json_string_value(json_object_get(c, "name"));
        req = json_object_get(c, "request");
        want = json_object_get(c, "response");
        body = json_string_value(json_object_get(req, "body"));
        call(json_string_value(json_object_get(req, "method")),
             json_string_value(json_object_get(req, "path")), body, &resp);
        want_status = expected_status(name, (int)json_integer_value(json_object_get(want, "status")));
        ck_assert_msg(resp.status == want_status, "%s: status %d, want %d (%.*s)", name,
                      resp.status, want_status, (int)resp.body_len, resp.body);
        if (want_status == 200 &&
            (strcmp(json_string_value(json_object_get(want, "content_type")),
                    "application/json") == 0 ||
             strncmp(name, "panic mode", 10) == 0)) {
            json_t *got = parse_body(&resp);
            json_t *exp = json_loads(json_string_value(json_object_get(want, "body")), 0, NULL);

            ck_assert_ptr_nonnull(exp);
            if (!json_equal(got, exp)) {
                char *g = json_dumps(got, JSON_SORT_KEYS), *e = json_dumps(exp, JSON_SORT_KEYS);

                ck_abort_msg("%s:\n got  %s\n want %s", name, g, e);
            }
            json_decref(got);
            json_decref(exp);
            compared++;
        } else if (want_status == 200) {
            /* format_response: raw body and its content type */
            ck_assert_str_eq(resp.content_type,
                             json_string_value(json_object_get(want, "content_type")));
            ck_assert_int_eq((int)resp.body_len,
                             (int)strlen(json_string_value(json_object_get(want, "body"))));
            ck_assert(memcmp(resp.body, json_string_value(json_object_get(want, "body")),
                             resp.body_len) == 0);
        } else if (want_status >= 400) {
            json_t *got = parse_body(&resp);

            ck_assert_msg(json_is_string(json_object_get(got, "message")), "%s: no message", name);
            ck_assert_str_eq(resp.content_type, "application/json");
            json_decref(got);
        } else {
            ck_assert_int_eq((int)resp.body_len, 0);
        }
    }
    ck_assert_uint_ge(compared, 15);
    json_decref(v);
}
END_TEST

START_TEST(error_messages)
{
    dc_response_t resp;
    json_t *got;

    publish_fixture("env1.json");
    call("POST", "/v2/campaigns", "{\"visitor_id\":\"a\",\"bogus\":1}", &resp);
    got = parse_body(&resp);
    ck_assert_int_eq(resp.status, 400);
    ck_assert_str_eq(json_string_value(json_object_get(got, "message")),
                     "json body is not valid. unknown field \"bogus\"");
    json_decref(got);

    call("POST", "/v2/campaigns/nope", "{\"visitor_id\":\"a\"}", &resp);
    got = parse_body(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(got, "message")),
                     "The campaign nope is paused or doesn\xe2\x80\x99t exist. Verify your customId "
                     "or campaignId.");
    json_decref(got);

    /* the index of a refused batch item, printed by APR's own format (it has no %zu) */
    call("POST", "/v2/activate",
         "{\"cid\":\"env_r\",\"batch\":[{\"vid\":\"v\",\"caid\":\"vg\",\"vaid\":\"a\"},"
         "7]}",
         &resp);
    got = parse_body(&resp);
    ck_assert_int_eq(resp.status, 400);
    ck_assert_msg(strncmp(json_string_value(json_object_get(got, "message")), "batch[1]: ", 10) == 0,
                  "%s", json_string_value(json_object_get(got, "message")));
    json_decref(got);

    call("POST", "/v2/campaigns", "{\"visitor_id\":5}", &resp);
    ck_assert_int_eq(resp.status, 400);
    ck_assert(strstr(resp.body, "syntax error in body json request. Must be a valid json : ") != NULL);

    call("POST", "/v2/campaigns", "[1,2]", &resp);
    ck_assert_int_eq(resp.status, 400);
    call("POST", "/v2/campaigns", "{\"visitor_id\":\"a\",\"visitorId\":\"b\"}", &resp);
    ck_assert_int_eq(resp.status, 400);
    ck_assert(strstr(resp.body, "duplicate field") != NULL);
    call("POST", "/v2/campaigns", "{\"context\":[1]}", &resp);
    ck_assert_int_eq(resp.status, 400);

    call("DELETE", "/v2/flags", "", &resp);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_str_eq(apr_table_get(resp.headers, "Allow"), "POST, OPTIONS");

    call("POST", "/v2/activate", "{\"cid\":\"env_r\",\"vid\":\"v\",\"caid\":\"vg\"}", &resp);
    ck_assert_int_eq(resp.status, 400);
    got = parse_body(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "errors"), "vaid")),
                     "Field is mandatory.");
    json_decref(got);

    call("POST", "/nothing/here", "{}", &resp);
    ck_assert_int_eq(resp.status, 404);
    ck_assert_str_eq(resp.content_type, "application/json");
}
END_TEST

START_TEST(limits_and_auth)
{
    dc_response_t resp;
    dc_request_t req;
    char *big;

    publish_fixture("env1.json");
    svc.opt.max_body_size = 64;
    big = apr_palloc(pool, 200);
    memset(big, ' ', 199);
    big[0] = '{';
    big[198] = '}';
    big[199] = '\0';
    call("POST", "/v2/campaigns", big, &resp);
    ck_assert_int_eq(resp.status, 413);
    svc.opt.max_body_size = DC_DEFAULT_MAX_BODY_SIZE;

    svc.opt.require_api_key = 1;
    svc.opt.api_key = "s3cret";
    call("POST", "/v2/campaigns", "{}", &resp);
    ck_assert_int_eq(resp.status, 401);
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/v2/campaigns";
    req.body = "{}";
    req.body_len = 2;
    req.x_api_key = "s3cre";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 401);
    req.x_api_key = "s3cret";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    req.x_api_key = NULL;
    req.authorization = "Bearer s3cret";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    /* preflight needs no key */
    req.method = "OPTIONS";
    req.authorization = NULL;
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 204);
    ck_assert_str_eq(apr_table_get(resp.headers, "Access-Control-Allow-Origin"), "*");
    svc.opt.require_api_key = 0;

    /* CORS off: no headers, OPTIONS is a method like any other */
    svc.opt.cors_enabled = 0;
    call("OPTIONS", "/v2/campaigns", NULL, &resp);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_ptr_null(apr_table_get(resp.headers, "Access-Control-Allow-Origin"));
}
END_TEST

/* DC_API_KEY_DECISIONS: the key for every route but /v2/activate (Flagship
 * SDKs post activations without one), whose body is still validated. */
START_TEST(key_for_decisions_only)
{
    static const char *const keyed[][2] = {
        {"POST", "/v2/campaigns"}, {"POST", "/v2/flags"}, {"POST", "/v2/env_r/campaigns"},
        {"POST", "/v2/campaigns/c1"}, {"GET", "/v2/metrics"}, {"GET", "/v2/ready"},
        {"GET", "/iserver/nsessions"}, {"GET", "/metrics"}};
    /* what the JS SDK 5.2 posts, x-api-key aside */
    const char *sdk_batch = "{\"cid\":\"env_r\",\"batch\":[{\"vid\":\"sdk-1\",\"vaid\":\"v1\","
                            "\"caid\":\"vg1\",\"aid\":null,\"qt\":3}]}";
    dc_response_t resp;
    dc_request_t req;

    publish_fixture("env1.json");
    svc.opt.require_api_key = DC_API_KEY_DECISIONS;
    svc.opt.api_key = "s3cret";
    for (size_t i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++) {
        call(keyed[i][0], keyed[i][1], *keyed[i][0] == 'P' ? "{\"visitor_id\":\"v\"}" : NULL,
             &resp);
        ck_assert_msg(resp.status == 401, "%s %s: %d", keyed[i][0], keyed[i][1], resp.status);
        ck_assert_str_eq(apr_table_get(resp.headers, "WWW-Authenticate"), "Bearer");
    }
    call("GET", "/v2/health", NULL, &resp);
    ck_assert_int_eq(resp.status, 200);

    /* activations: no key needed, validated as ever */
    call("POST", "/v2/activate", sdk_batch, &resp);
    ck_assert_int_eq(resp.status, 204);
    call("POST", "/v2/activate", "{\"cid\":\"env_r\",\"vid\":\"v\",\"caid\":\"vg\",\"vaid\":\"a\"}",
         &resp);
    ck_assert_int_eq(resp.status, 204);
    call("POST", "/v2/activate", "{\"cid\":\"env_r\",\"vid\":\"v\",\"caid\":\"vg\"}", &resp);
    ck_assert_int_eq(resp.status, 400);
    call("POST", "/v2/activate", "{\"cid\":\"other\",\"vid\":\"v\",\"caid\":\"vg\",\"vaid\":\"a\"}",
         &resp);
    ck_assert_int_eq(resp.status, 400);
    call("GET", "/v2/activate", NULL, &resp);
    ck_assert_int_eq(resp.status, 405);

    /* a decision with the key, and a wrong key on an activation is no worse than none */
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/v2/flags";
    req.body = "{\"visitor_id\":\"v\"}";
    req.body_len = strlen(req.body);
    req.x_api_key = "s3cret";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    req.path = "/v2/activate";
    req.body = sdk_batch;
    req.body_len = strlen(sdk_batch);
    req.x_api_key = "wrong";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 204);

    /* DC_API_KEY_ALL still closes /v2/activate */
    svc.opt.require_api_key = DC_API_KEY_ALL;
    call("POST", "/v2/activate", sdk_batch, &resp);
    ck_assert_int_eq(resp.status, 401);
    ck_assert_str_eq(dc_api_key_mode_describe(DC_API_KEY_DECISIONS),
                     "required except on /v2/activate");
    svc.opt.require_api_key = DC_API_KEY_OFF;
}
END_TEST

START_TEST(sdk_cloud_path)
{
    dc_response_t resp;
    json_t *got;

    publish_fixture("env2.json");
    call("POST", "/v2/env_r/campaigns?exposeAllKeys=true&extras[]=accountSettings",
         "{\"visitorId\":\"sdk-1\",\"context\":{},\"trigger_hit\":false}", &resp);
    ck_assert_int_eq(resp.status, 200);
    got = parse_body(&resp);
    ck_assert(json_is_true(json_object_get(
        json_object_get(json_object_get(got, "extras"), "accountSettings"), "enabled1V1T")));
    ck_assert_uint_gt(json_array_size(json_object_get(got, "campaigns")), 0);
    json_decref(got);
    call("POST", "/v2/other_env/campaigns", "{}", &resp);
    ck_assert_int_eq(resp.status, 404);
}
END_TEST

START_TEST(no_config_yet)
{
    dc_response_t resp;

    call("POST", "/v2/campaigns", "{}", &resp);
    ck_assert_int_eq(resp.status, 503);
}
END_TEST

/* Hostile query strings and paths: a decoded NUL is refused, never read as the end of the
 * value, and every echo of caller input is valid UTF-8 JSON (jansson refuses anything else). */
START_TEST(hostile_input)
{
    static const struct {
        const char *target;
        int status;
        const char *needle;
    } cases[] = {
        {"/v2/campaigns?mode=%00%ff", 400, "NUL"},
        {"/v2/campaigns?mode=simple%00x", 400, "NUL"},
        {"/v2/campaigns?mode%00x=full", 400, "NUL"},
        {"/v2/campaigns?exposeAllKeys=true%00", 400, "NUL"},
        {"/v2/campaigns?other=%00", 400, "NUL"},
        {"/v2/campaigns?mode=%ff", 400, "unknown mode \"\xef\xbf\xbd\""},
        {"/v2/campaigns?mode=%c3%28%e2%82", 400, "unknown mode"},
        {"/v2/campaigns/c%00x", 400, "NUL"},
        {"/v2/campaigns/%ff%fe", 400, "The campaign \xef\xbf\xbd\xef\xbf\xbd is paused"},
        {"/v2/env_r%00/campaigns", 400, "NUL"},
        {"/v2/%ff/campaigns", 404, "environment \xef\xbf\xbd is not"},
        {"/v2/campaigns?mode=simple", 200, NULL},
    };
    dc_response_t resp;

    publish_fixture("env1.json");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *got;

        call("POST", cases[i].target, "{\"visitor_id\":\"a\"}", &resp);
        ck_assert_msg(resp.status == cases[i].status, "%s: %d", cases[i].target, resp.status);
        got = parse_body(&resp);
        if (cases[i].needle)
            ck_assert_msg(strstr(json_string_value(json_object_get(got, "message")),
                                 cases[i].needle) != NULL,
                          "%s: %.*s", cases[i].target, (int)resp.body_len, resp.body);
        json_decref(got);
    }
    /* raw bytes that are not UTF-8 in the body: the syntax error quoting them is UTF-8 */
    call("POST", "/v2/campaigns", "\xff\xfe{", &resp);
    ck_assert_int_eq(resp.status, 400);
    json_decref(parse_body(&resp));
    call("POST", "/v2/activate", "{\"batch\":[{\"vid\":\"\xff\"}]}", &resp);
    ck_assert_int_eq(resp.status, 400);
    json_decref(parse_body(&resp));
}
END_TEST

/* /v2/swagger/: the compiled-in document with servers and the Prometheus path filled in, the
 * page naming every route, the redirect, Swagger UI when configured, the API key rule. */
START_TEST(swagger_routes)
{
    dc_response_t resp;
    dc_request_t req;
    json_t *doc, *paths, *v;
    const char *path;
    char err[128];

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/api/v2/swagger/doc.json";
    req.host = "decide.example:8443";
    req.https = 1;
    req.body = "";
    svc.opt.prometheus_path = "/prom";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, "application/json");
    doc = parse_body(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(doc, "servers"), 0), "url")),
                     "https://decide.example:8443/api");
    paths = json_object_get(doc, "paths");
    ck_assert_ptr_nonnull(json_object_get(paths, "/prom"));
    ck_assert_ptr_null(json_object_get(paths, "/metrics"));
    json_decref(doc);

    /* a Host header that is not a plain host name gives a relative server */
    req.host = "evil.example/\"><script>";
    dc_api_handle(&svc, pool, &req, &resp);
    doc = parse_body(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(doc, "servers"), 0), "url")),
                     "/api");
    json_decref(doc);

    req.path = "/api/v2/swagger/index.html";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(apr_table_get(resp.headers, "Content-Security-Policy"));
    ck_assert(strstr(resp.body, "<script") == NULL);
    doc = dc_openapi_document(&svc, "/");
    json_object_foreach(json_object_get(doc, "paths"), path, v)
    {
        const char *esc = apr_pstrcat(pool, "<code>", path, "</code>", NULL);

        ck_assert_msg(strstr(resp.body, esc) != NULL, "%s is not on the page", path);
    }
    json_decref(doc);

    req.path = "/api/v2/swagger/";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 301);
    ck_assert_str_eq(apr_table_get(resp.headers, "Location"), "/api/v2/swagger/index.html");
    req.path = "/v2/swagger";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_str_eq(apr_table_get(resp.headers, "Location"), "/v2/swagger/index.html");
    req.path = "/v2/swagger/swagger-initializer.js";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 404);
    req.path = "/v2/swagger/other";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 404);

    svc.opt.swagger_ui = "/swagger-ui/";
    req.path = "/v2/swagger/index.html";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert(strstr(resp.body, "src=\"/swagger-ui/swagger-ui-bundle.js\"") != NULL);
    req.path = "/v2/swagger/swagger-initializer.js";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert(strstr(resp.body, "doc.json") != NULL);
    ck_assert(dc_openapi_ui_url_valid("https://cdn.example/swagger-ui"));
    ck_assert(!dc_openapi_ui_url_valid("/ui\"><script>"));
    ck_assert(!dc_openapi_ui_url_valid("javascript:alert(1)"));

    req.method = "POST";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 405);
    req.method = "GET";
    svc.opt.require_api_key = 1;
    svc.opt.api_key = "k";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 401);
    req.x_api_key = "k";
    dc_api_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);

    /* the YAML reader's scalars */
    path = "a: 1\nb: -2.5\nc: '3'\nd: true\ne: ~\nf: 0.1.0\ng: [x, null]\n";
    doc = dc_yaml_to_json(path, strlen(path), err, sizeof(err));
    ck_assert_ptr_nonnull(doc);
    ck_assert(json_is_integer(json_object_get(doc, "a")));
    ck_assert(json_real_value(json_object_get(doc, "b")) == -2.5);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "c")), "3");
    ck_assert(json_is_true(json_object_get(doc, "d")));
    ck_assert(json_is_null(json_object_get(doc, "e")));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "f")), "0.1.0");
    ck_assert(json_is_null(json_array_get(json_object_get(doc, "g"), 1)));
    json_decref(doc);
    ck_assert_ptr_null(dc_yaml_to_json("a: [1\n", 7, err, sizeof(err)));
}
END_TEST

/* The spec's reference examples on conf/sample-bucketing.json. */
START_TEST(reference_examples)
{
    json_t *examples = dc_test_load_json(DC_FIXTURES "/reference-examples.json"), *ex;
    dc_config_t *cfg;
    dc_config_error_t err;
    size_t i;

    ck_assert_int_eq(dc_config_load_file(DC_SAMPLE_BUCKETING, &cfg, &err), 0);
    dc_slot_publish(&svc.slot, cfg);
    json_array_foreach(examples, i, ex)
    {
        const char *path = json_string_value(json_object_get(ex, "path"));
        const char *query = json_string_value(json_object_get(ex, "query"));
        char *body = json_dumps(json_object_get(ex, "body"), 0);
        json_t *expected = json_object_get(ex, "expected");
        dc_response_t resp;

        call("POST", *query ? apr_pstrcat(pool, path, "?", query, NULL) : path, body, &resp);
        free(body);
        ck_assert_int_eq(resp.status, (int)json_integer_value(json_object_get(ex, "status")));
        if (!json_is_null(expected)) {
            json_t *got = parse_body(&resp);

            ck_assert_msg(json_equal(got, expected), "example %zu differs: %.*s", i,
                          (int)resp.body_len, resp.body);
            json_decref(got);
        }
    }
    json_decref(examples);
}
END_TEST

/* dc_fmt_u64/i64 write what printf does, at every length and both ends. */
START_TEST(integers_as_printf_writes_them)
{
    char got[24], want[24];
    uint64_t v = 1;

    for (int k = 0; k <= 20; k++, v *= 10) {
        uint64_t around[] = {v - 1, v, v + 1, v * 7 / 2};

        for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++) {
            size_t n = dc_fmt_u64(got, around[i]);

            snprintf(want, sizeof(want), "%" PRIu64, around[i]);
            ck_assert_uint_eq(n, strlen(want));
            ck_assert_int_eq(memcmp(got, want, n), 0);
            n = dc_fmt_i64(got, -(int64_t)(around[i] % INT64_MAX));
            snprintf(want, sizeof(want), "%" PRId64, -(int64_t)(around[i] % INT64_MAX));
            ck_assert_uint_eq(n, strlen(want));
            ck_assert_int_eq(memcmp(got, want, n), 0);
        }
    }
    ck_assert_uint_eq(dc_fmt_u64(got, UINT64_MAX), 20);
    ck_assert_int_eq(memcmp(got, "18446744073709551615", 20), 0);
    ck_assert_uint_eq(dc_fmt_i64(got, INT64_MIN), 20);
    ck_assert_int_eq(memcmp(got, "-9223372036854775808", 20), 0);
}
END_TEST

/* The escape of one ASCII byte, as the byte-at-a-time rule has it. */
static void put_ascii_escaped(dc_buf_t *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";

    if (c == '"' || c == '\\') {
        dc_buf_putc(b, '\\');
        dc_buf_putc(b, (char)c);
    } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
        dc_buf_putc(b, '\\');
        dc_buf_putc(b, "nrtbf"[strchr("\n\r\t\b\f", c) - "\n\r\t\b\f"]);
    } else if (c < 0x20) {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

        dc_buf_append(b, esc, 6);
    } else {
        dc_buf_putc(b, (char)c);
    }
}

/* dc_json_put_string tests eight bytes at a time where it can: whatever the
 * offset of a byte to escape, or of a multibyte character, the string is the
 * one a byte at a time writes, and jansson reads the input back from it. */
START_TEST(json_strings_the_same_at_every_offset)
{
    static const char *const odd[] = {"\"", "\\", "\n", "\x01", "\x1f", "\x7f", " ", "~",
                                      "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    unsigned seed = 7;

    for (size_t len = 0; len <= 40; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof(odd) / sizeof(odd[0]); k++) {
                char in[64];
                dc_buf_t got, want;
                size_t n = 0, odd_len = strlen(odd[k]);
                json_t *back;

                for (size_t i = 0; i < len; i++) {
                    if (i == at) {
                        memcpy(in + n, odd[k], odd_len);
                        n += odd_len;
                    }
                    seed = seed * 1103515245u + 12345u;
                    in[n++] = (char)('0' + (seed >> 16) % 75); /* '0'..'z', '\\' among them */
                }
                dc_buf_init(&got, pool, 8);
                dc_json_put_string(&got, in, n);
                ck_assert_ptr_nonnull(back = json_loadb(got.data, got.len,
                                                        JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL));
                ck_assert_uint_eq(json_string_length(back), n);
                ck_assert_int_eq(memcmp(json_string_value(back), in, n), 0);
                json_decref(back);
                if (odd_len > 1)
                    continue; /* what follows is for ASCII */
                dc_buf_init(&want, pool, 8);
                dc_buf_putc(&want, '"');
                for (size_t i = 0; i < n; i++)
                    put_ascii_escaped(&want, (unsigned char)in[i]);
                dc_buf_putc(&want, '"');
                ck_assert_uint_eq(got.len, want.len);
                ck_assert_int_eq(memcmp(got.data, want.data, got.len), 0);
            }
        }
    }
}
END_TEST

/* A decision's CAMPAIGN hits, built together, are byte for byte the ones
 * dc_hit_campaign builds one at a time, escapes and all. */
START_TEST(campaign_hits_together_as_one_by_one)
{
    static const char *const ids[][2] = {
        {"c1ndsu87m030114t8uu0", "c1ndta129mp0114nbbe0"},
        {"vg-\"quoted\"", "v\\1"},
        {"vg-\xc3\xa9t\xc3\xa9-and-a-long-tail-past-the-first-guess-of-the-size", "\x01\x02\x03"},
        {"vg-\xff-not-utf8-\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe", "v"},
    };
    enum { N = sizeof(ids) / sizeof(ids[0]) };
    dc_variation_group_t groups[N];
    dc_variation_t variations[N];
    dc_decision_t decisions[N];
    dc_hit_t together[N], alone;
    const char *envs[] = {"env_r", NULL};

    memset(groups, 0, sizeof(groups));
    memset(variations, 0, sizeof(variations));
    for (size_t i = 0; i < N; i++) {
        groups[i].id = ids[i][0];
        groups[i].id_len = strlen(ids[i][0]);
        variations[i].id = ids[i][1];
        variations[i].id_len = strlen(ids[i][1]);
        decisions[i].campaign = NULL;
        decisions[i].group = &groups[i];
        decisions[i].variation = &variations[i];
    }
    for (int e = 0; e < 2; e++) {
        for (int with_cuid = 0; with_cuid < 2; with_cuid++) {
            const char *cuid = with_cuid ? "user \"42\"" : NULL;
            size_t cuid_len = with_cuid ? strlen(cuid) : 0;

            dc_hits_campaigns(pool, together, envs[e], "anon-\xc3\xa9", 7, cuid, cuid_len,
                              decisions, N, 1700000000123);
            for (size_t i = 0; i < N; i++) {
                dc_hit_campaign(pool, &alone, envs[e], "anon-\xc3\xa9", 7, cuid, cuid_len,
                                groups[i].id, groups[i].id_len, variations[i].id,
                                variations[i].id_len, 0, 0, 1700000000123);
                ck_assert_uint_eq(together[i].json_len, alone.json_len);
                ck_assert_str_eq(together[i].json, alone.json); /* NUL-terminated too */
                ck_assert_int_eq(together[i].received_ms, 1700000000123);
                ck_assert_int_eq(together[i].qt_base, 0);
            }
        }
    }
    dc_hits_campaigns(pool, together, "env_r", "v", 1, NULL, 0, decisions, 0, 1); /* none */
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, observed_exchanges);
    tcase_add_test(tc, error_messages);
    tcase_add_test(tc, limits_and_auth);
    tcase_add_test(tc, key_for_decisions_only);
    tcase_add_test(tc, sdk_cloud_path);
    tcase_add_test(tc, no_config_yet);
    tcase_add_test(tc, hostile_input);
    tcase_add_test(tc, swagger_routes);
    tcase_add_test(tc, reference_examples);
    tcase_add_test(tc, integers_as_printf_writes_them);
    tcase_add_test(tc, json_strings_the_same_at_every_offset);
    tcase_add_test(tc, campaign_hits_together_as_one_by_one);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(api_suite)

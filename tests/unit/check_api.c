/*
 * The HTTP-agnostic API, driven directly: the decision-api's recorded
 * exchanges (vectors.json http_observed) replayed in order against one
 * service with a memory store, the spec's reference examples on the sample
 * file, and our own error handling (405, 401, 413, 404, CORS).
 */
#include "dc_test.h"

#include "dc_api.h"
#include "dc_config.h"

#include <apr_strings.h>
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
    tcase_add_test(tc, reference_examples);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(api_suite)

/*
 * The OFREP routes of dc_api, driven directly: request parsing and its
 * OFREP error shapes, the answers of one flag and of the bulk route (values
 * of every type, reasons, metadata), ETag and If-None-Match, panic mode,
 * authentication, the mount under /v2, activation hits only when asked, XPC
 * through the context's anonymousId, and agreement with /v2/flags.
 */
#include "dc_test.h"

#include "dc_api.h"
#include "dc_config.h"

#include <apr_strings.h>
#include <string.h>

static apr_pool_t *pool;
static dc_service_t svc;
static size_t hits_seen;
static char last_hit[1024];

/* A campaign per reason: a targeted toggle (every value type), an A/B test on everyone, a
 * perso for everyone with one variation, and a variation whose flag is null. */
static const char *const config_text =
    "{\"panic\":false,\"accountSettings\":{\"enabledXPC\":%s,\"enabled1V1T\":%s},"
    "\"campaigns\":["
    "{\"id\":\"c_vip\",\"name\":\"VIP\",\"type\":\"toggle\",\"bucketRanges\":[{\"r\":[0,100]}],"
    " \"variationGroups\":[{\"id\":\"vg_vip\",\"targeting\":{\"targetingGroups\":[{\"targetings\":"
    "  [{\"operator\":\"EQUALS\",\"key\":\"plan\",\"value\":\"vip\"}]}]},"
    "  \"variations\":[{\"id\":\"v_vip\",\"name\":\"On\",\"allocation\":100,\"modifications\":"
    "   {\"type\":\"FLAG\",\"value\":{\"vipOn\":true,\"vipTitle\":\"Gold\",\"vipDiscount\":0.25,"
    "    \"vipLimits\":{\"max\":3,\"tags\":[\"a\",\"b\"]}}}}]}]},"
    "{\"id\":\"c_ab\",\"name\":\"AB\",\"type\":\"ab\",\"bucketRanges\":[{\"r\":[0,100]}],"
    " \"variationGroups\":[{\"id\":\"vg_ab\",\"targeting\":{\"targetingGroups\":[{\"targetings\":"
    "  [{\"operator\":\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}]}]},"
    "  \"variations\":["
    "   {\"id\":\"v_ab_a\",\"name\":\"A\",\"reference\":true,\"allocation\":50,\"modifications\":"
    "    {\"type\":\"FLAG\",\"value\":{\"color\":\"blue\",\"onlyA\":1}}},"
    "   {\"id\":\"v_ab_b\",\"name\":\"B\",\"allocation\":50,\"modifications\":"
    "    {\"type\":\"FLAG\",\"value\":{\"color\":\"red\"}}}]}]},"
    "{\"id\":\"c_all\",\"type\":\"perso\",\"bucketRanges\":[{\"r\":[0,100]}],"
    " \"variationGroups\":[{\"id\":\"vg_all\",\"targeting\":{\"targetingGroups\":[{\"targetings\":"
    "  [{\"operator\":\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}]}]},"
    "  \"variations\":[{\"id\":\"v_all\",\"allocation\":100,\"modifications\":"
    "   {\"type\":\"FLAG\",\"value\":{\"banner\":\"hello\",\"nothing\":null}}}]}]}"
    "]}";

static int count_hits(void *baton, apr_pool_t *p, const dc_hit_t *hits, size_t n)
{
    (void)baton;
    (void)p;
    hits_seen += n;
    if (n)
        snprintf(last_hit, sizeof(last_hit), "%.*s", (int)hits[n - 1].json_len, hits[n - 1].json);
    return 0;
}

static void publish_with(int xpc, int panic, int one_test)
{
    char *text = apr_psprintf(pool, config_text, xpc ? "true" : "false",
                              one_test ? "true" : "false");
    dc_config_t *cfg;
    dc_config_error_t err;

    if (panic)
        memcpy(strstr(text, "\"panic\":false"), "\"panic\":true ", 13);
    ck_assert_msg(dc_config_parse(text, strlen(text), &cfg, &err) == 0, "%s: %s", err.path,
                  err.text);
    dc_slot_publish(&svc.slot, cfg);
}

static void publish(int xpc, int panic)
{
    publish_with(xpc, panic, 0);
}

static void setup(void)
{
    char err[256];

    apr_pool_create(&pool, NULL);
    ck_assert_int_eq(dc_service_init(&svc, pool), 0);
    svc.opt.env_id = "env_o";
    svc.store = dc_store_open(pool, "memory", err, sizeof(err));
    ck_assert_ptr_nonnull(svc.store);
    svc.hit_sink = count_hits;
    hits_seen = 0;
    publish(0, 0);
}

static void teardown(void)
{
    dc_store_close(svc.store);
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(pool);
}

typedef struct {
    const char *x_api_key, *authorization, *if_none_match, *method;
} extra_t;

static void call_with(const char *path, const char *body, const extra_t *x, dc_response_t *resp)
{
    dc_request_t req;

    memset(&req, 0, sizeof(req));
    req.method = x && x->method ? x->method : "POST";
    req.path = path;
    req.body = body;
    req.body_len = strlen(body);
    req.received = apr_time_now();
    if (x) {
        req.x_api_key = x->x_api_key;
        req.authorization = x->authorization;
        req.if_none_match = x->if_none_match;
    }
    dc_api_handle(&svc, pool, &req, resp);
}

static json_t *call(const char *path, const char *body, int want_status)
{
    dc_response_t resp;
    json_t *doc;

    call_with(path, body, NULL, &resp);
    ck_assert_msg(resp.status == want_status, "%s %s: status %d, want %d: %.*s", path, body,
                  resp.status, want_status, (int)resp.body_len, resp.body);
    doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    ck_assert_msg(doc != NULL, "not JSON: %.*s", (int)resp.body_len, resp.body);
    return doc;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "(none)";
}

#define FLAG(key) "/ofrep/v1/evaluate/flags/" key
#define BULK "/ofrep/v1/evaluate/flags"
#define VIP "{\"context\":{\"targetingKey\":\"v1\",\"plan\":\"vip\"}}"

START_TEST(values_of_every_type)
{
    json_t *a;

    a = call(FLAG("vipOn"), VIP, 200);
    ck_assert(json_is_true(json_object_get(a, "value")));
    ck_assert_str_eq(str(a, "key"), "vipOn");
    ck_assert_str_eq(str(a, "reason"), "TARGETING_MATCH");
    ck_assert_str_eq(str(a, "variant"), "v_vip");
    ck_assert_str_eq(str(json_object_get(a, "metadata"), "campaignId"), "c_vip");
    ck_assert_str_eq(str(json_object_get(a, "metadata"), "type"), "toggle");
    ck_assert_str_eq(str(json_object_get(a, "metadata"), "variationGroupId"), "vg_vip");
    ck_assert_str_eq(str(json_object_get(a, "metadata"), "variationName"), "On");
    ck_assert(json_is_false(json_object_get(json_object_get(a, "metadata"), "reference")));
    /* metadata values are primitives: names the file lacks are left out, not null */
    ck_assert_ptr_null(json_object_get(json_object_get(a, "metadata"), "slug"));
    json_decref(a);

    a = call(FLAG("vipTitle"), VIP, 200);
    ck_assert_str_eq(str(a, "value"), "Gold");
    json_decref(a);
    a = call(FLAG("vipDiscount"), VIP, 200);
    ck_assert(json_real_value(json_object_get(a, "value")) == 0.25);
    json_decref(a);
    a = call(FLAG("vipLimits"), VIP, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "value"), "max")), 3);
    json_decref(a);

    /* everyone, one variation: STATIC; an A/B split: SPLIT */
    a = call(FLAG("banner"), VIP, 200);
    ck_assert_str_eq(str(a, "value"), "hello");
    ck_assert_str_eq(str(a, "reason"), "STATIC");
    json_decref(a);
    a = call(FLAG("color"), VIP, 200);
    ck_assert_str_eq(str(a, "reason"), "SPLIT");
    ck_assert(strcmp(str(a, "value"), "blue") == 0 || strcmp(str(a, "value"), "red") == 0);
    json_decref(a);
    /* a null value: no "value", DEFAULT (the caller's default applies) */
    a = call(FLAG("nothing"), VIP, 200);
    ck_assert_ptr_null(json_object_get(a, "value"));
    ck_assert_str_eq(str(a, "reason"), "DEFAULT");
    ck_assert_str_eq(str(a, "variant"), "v_all");
    json_decref(a);
}
END_TEST

START_TEST(flag_not_found)
{
    json_t *a;

    /* unmatched visitor: the targeted flag is not his */
    a = call(FLAG("vipOn"), "{\"context\":{\"targetingKey\":\"v1\",\"plan\":\"free\"}}", 404);
    ck_assert_str_eq(str(a, "key"), "vipOn");
    ck_assert_str_eq(str(a, "errorCode"), "FLAG_NOT_FOUND");
    ck_assert_str_eq(str(a, "errorDetails"), "no campaign serves this flag to this visitor");
    json_decref(a);
    a = call(FLAG("missing"), VIP, 404);
    ck_assert_str_eq(str(a, "errorCode"), "FLAG_NOT_FOUND");
    ck_assert_str_eq(str(a, "errorDetails"), "no campaign of the configuration has this flag");
    json_decref(a);
    /* percent-encoded keys are decoded; an empty key is not found */
    a = call(FLAG("vip%4Fn"), VIP, 200);
    ck_assert_str_eq(str(a, "key"), "vipOn");
    json_decref(a);
    a = call(FLAG(""), VIP, 404);
    ck_assert_str_eq(str(a, "errorCode"), "FLAG_NOT_FOUND");
    json_decref(a);
}
END_TEST

START_TEST(request_errors)
{
    static const struct {
        const char *body, *code, *details;
    } cases[] = {
        {"{\"context\":", "PARSE_ERROR", "invalid JSON"},
        {"", "PARSE_ERROR", "invalid JSON"},
        {"[1]", "PARSE_ERROR", "the body must be an object, not array"},
        {"{}", "TARGETING_KEY_MISSING", "the request has no context"},
        {"{\"context\":null}", "TARGETING_KEY_MISSING", "the request has no context"},
        {"{\"context\":{}}", "TARGETING_KEY_MISSING", "context.targetingKey"},
        {"{\"context\":{\"targetingKey\":\"\"}}", "TARGETING_KEY_MISSING", "context.targetingKey"},
        {"{\"context\":{\"targetingKey\":null,\"a\":{\"b\":1}}}", "TARGETING_KEY_MISSING", ""},
        {"{\"context\":[\"v1\"]}", "INVALID_CONTEXT", "context must be an object, not array"},
        {"{\"context\":{\"targetingKey\":7}}", "INVALID_CONTEXT",
         "context.targetingKey must be a string, not number"},
        {"{\"context\":{\"targetingKey\":\"v\",\"anonymousId\":true}}", "INVALID_CONTEXT",
         "context.anonymousId must be a string, not bool"},
        {"{\"context\":{\"targetingKey\":\"v\",\"targetingKey\":\"w\"}}", "PARSE_ERROR",
         "duplicate"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *a = call(FLAG("color"), cases[i].body, 400), *b = call(BULK, cases[i].body, 400);

        ck_assert_str_eq(str(a, "key"), "color");
        ck_assert_msg(strcmp(str(a, "errorCode"), cases[i].code) == 0, "%s: %s", cases[i].body,
                      str(a, "errorCode"));
        ck_assert_msg(strstr(str(a, "errorDetails"), cases[i].details) != NULL, "%s: %s",
                      cases[i].body, str(a, "errorDetails"));
        /* the bulk request's failure has no key */
        ck_assert_ptr_null(json_object_get(b, "key"));
        ck_assert_str_eq(str(b, "errorCode"), cases[i].code);
        json_decref(a);
        json_decref(b);
    }
    ck_assert_uint_eq(hits_seen, 0);
}
END_TEST

START_TEST(fast_and_jansson_paths_agree)
{
    /* unknown top-level members and nested objects send the body to jansson */
    const char *fast = VIP;
    const char *slow = "{\"flagConfigEtag\":\"x\",\"context\":{\"plan\":\"vip\",\"o\":{\"k\":[1]},"
                       "\"targetingKey\":\"v1\"}}";
    json_t *a = call(BULK, fast, 200), *b = call(BULK, slow, 200);

    ck_assert(json_equal(a, b));
    ck_assert_uint_eq(json_array_size(json_object_get(a, "flags")), 8);
    json_decref(a);
    json_decref(b);
}
END_TEST

/* The /v2/flags answer of the same visitor, as {key: {value, variationId}}. */
static json_t *v2_flags(const char *vid, const char *context)
{
    char *body = apr_psprintf(pool, "{\"visitor_id\":\"%s\",\"context\":%s,\"trigger_hit\":false}",
                              vid, context);
    json_t *a = call("/v2/flags", body, 200), *out = json_object();
    const char *key;
    json_t *value;

    json_object_foreach(a, key, value)
        json_object_set_new(
            out, key,
            json_pack("{s:O,s:O}", "value", json_object_get(value, "value"), "variant",
                      json_object_get(json_object_get(value, "metadata"), "variationId")));
    json_decref(a);
    return out;
}

START_TEST(bulk_agrees_with_v2_flags)
{
    for (int i = 0; i < 200; i++) {
        const char *vid = apr_psprintf(pool, "visitor-%d", i);
        const char *context = i % 3 ? "{\"plan\":\"vip\"}" : "{\"plan\":\"free\"}";
        json_t *want = v2_flags(vid, context), *got = json_object(), *a, *f;
        size_t j;

        a = call(BULK, apr_psprintf(pool, "{\"context\":{\"targetingKey\":\"%s\",\"plan\":%s}}",
                                    vid, i % 3 ? "\"vip\"" : "\"free\""),
                 200);
        json_array_foreach(json_object_get(a, "flags"), j, f)
        {
            json_t *value = json_object_get(f, "value");

            json_object_set_new(got, str(f, "key"),
                                json_pack("{s:O,s:O}", "value", value ? value : json_null(),
                                          "variant", json_object_get(f, "variant")));
            /* one flag's route says the same as the bulk route */
            if (i < 20) {
                json_t *one = call(apr_psprintf(pool, BULK "/%s", str(f, "key")),
                                   apr_psprintf(pool, "{\"context\":{\"targetingKey\":\"%s\","
                                                      "\"plan\":%s}}",
                                                vid, i % 3 ? "\"vip\"" : "\"free\""),
                                   200);

                ck_assert(json_equal(one, f));
                json_decref(one);
            }
        }
        ck_assert_msg(json_equal(want, got), "%s: /v2/flags %s, OFREP %s", vid,
                      json_dumps(want, JSON_SORT_KEYS), json_dumps(got, JSON_SORT_KEYS));
        json_decref(want);
        json_decref(got);
        json_decref(a);
    }
}
END_TEST

START_TEST(etag_and_not_modified)
{
    dc_response_t r1, r2, r3;
    extra_t x = {0};
    const char *etag;

    call_with(BULK, VIP, NULL, &r1);
    ck_assert_int_eq(r1.status, 200);
    etag = apr_table_get(r1.headers, "ETag");
    ck_assert_ptr_nonnull(etag);
    ck_assert_int_eq(etag[0], '"');
    ck_assert_str_eq(apr_table_get(r1.headers, "Access-Control-Expose-Headers"), "ETag");
    /* stable for the same configuration and context */
    call_with(BULK, VIP, NULL, &r2);
    ck_assert_str_eq(apr_table_get(r2.headers, "ETag"), etag);

    x.if_none_match = etag;
    call_with(BULK, VIP, &x, &r3);
    ck_assert_int_eq(r3.status, 304);
    ck_assert_uint_eq(r3.body_len, 0);
    ck_assert_ptr_null(r3.content_type);
    ck_assert_str_eq(apr_table_get(r3.headers, "ETag"), etag);
    x.if_none_match = apr_psprintf(pool, "\"other\", W/%s", etag);
    call_with(BULK, VIP, &x, &r3);
    ck_assert_int_eq(r3.status, 304);
    x.if_none_match = "*";
    call_with(BULK, VIP, &x, &r3);
    ck_assert_int_eq(r3.status, 304);
    x.if_none_match = "\"other\"";
    call_with(BULK, VIP, &x, &r3);
    ck_assert_int_eq(r3.status, 200);
    x.if_none_match = "\"unterminated";
    call_with(BULK, VIP, &x, &r3);
    ck_assert_int_eq(r3.status, 200);

    /* another context: another answer, another tag */
    x.if_none_match = etag;
    call_with(BULK, "{\"context\":{\"targetingKey\":\"v1\",\"plan\":\"free\"}}", &x, &r3);
    ck_assert_int_eq(r3.status, 200);
    ck_assert_str_ne(apr_table_get(r3.headers, "ETag"), etag);
    /* a new configuration: a new tag, even for the same answer */
    publish(1, 0);
    call_with(BULK, VIP, &x, &r3);
    ck_assert_int_eq(r3.status, 200);
    ck_assert_str_ne(apr_table_get(r3.headers, "ETag"), etag);
    ck_assert_uint_eq(r3.body_len, r1.body_len);
}
END_TEST

START_TEST(panic_is_disabled)
{
    json_t *a;

    publish(0, 1);
    a = call(FLAG("vipOn"), VIP, 200);
    ck_assert_str_eq(str(a, "reason"), "DISABLED");
    ck_assert_ptr_null(json_object_get(a, "value"));
    json_decref(a);
    a = call(FLAG("missing"), VIP, 404);
    ck_assert_str_eq(str(a, "errorCode"), "FLAG_NOT_FOUND");
    json_decref(a);
    a = call(BULK, VIP, 200);
    /* every key of the configuration, once, sorted */
    ck_assert_uint_eq(json_array_size(json_object_get(a, "flags")), 8);
    ck_assert_str_eq(str(json_array_get(json_object_get(a, "flags"), 0), "key"), "banner");
    ck_assert_str_eq(str(json_array_get(json_object_get(a, "flags"), 0), "reason"), "DISABLED");
    json_decref(a);
}
END_TEST

START_TEST(auth_methods_and_mounts)
{
    dc_response_t r;
    extra_t x = {0};
    json_t *a;

    svc.opt.require_api_key = DC_API_KEY_ALL;
    svc.opt.api_key = "sekret";
    call_with(BULK, VIP, &x, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert(strstr(r.body, "\"errorDetails\"") != NULL);
    x.x_api_key = "wrong";
    call_with(FLAG("color"), VIP, &x, &r);
    ck_assert_int_eq(r.status, 403);
    x.x_api_key = NULL;
    x.authorization = "Bearer wrong";
    call_with(BULK, VIP, &x, &r);
    ck_assert_int_eq(r.status, 403);
    x.authorization = "Bearer sekret";
    call_with(BULK, VIP, &x, &r);
    ck_assert_int_eq(r.status, 200);
    /* "decisions" exempts /v2/activate only: evaluations are decisions */
    svc.opt.require_api_key = DC_API_KEY_DECISIONS;
    call_with(BULK, VIP, NULL, &r);
    ck_assert_int_eq(r.status, 401);
    call_with(BULK, VIP, &x, &r);
    ck_assert_int_eq(r.status, 200);

    x.method = "GET";
    call_with(BULK, VIP, &x, &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(apr_table_get(r.headers, "Allow"), "POST, OPTIONS");
    x.method = "OPTIONS";
    x.authorization = NULL;
    call_with(FLAG("color"), "", &x, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert(strstr(apr_table_get(r.headers, "Access-Control-Allow-Headers"), "If-None-Match"));
    svc.opt.require_api_key = DC_API_KEY_OFF;

    /* under the /v2 mount (baseUrl http://host/v2), and under any prefix */
    a = call("/v2/ofrep/v1/evaluate/flags/banner", VIP, 200);
    ck_assert_str_eq(str(a, "value"), "hello");
    json_decref(a);
    a = call("/api/ofrep/v1/evaluate/flags", VIP, 200);
    json_decref(a);
    ck_assert(dc_api_owns_path("/x/ofrep/v1/evaluate/flags"));
    ck_assert(!dc_api_owns_path("/x/ofrep/v10/evaluate/flags"));
    a = call("/ofrep/v1/configuration", "{}", 404);
    ck_assert_ptr_nonnull(json_object_get(a, "errorDetails"));
    json_decref(a);

    svc.opt.max_body_size = 8;
    call_with(BULK, VIP, NULL, &r);
    ck_assert_int_eq(r.status, 413);
    ck_assert(strstr(r.body, "\"errorDetails\"") != NULL);
}
END_TEST

START_TEST(activation_only_when_asked)
{
    json_t *a;

    a = call(FLAG("vipOn"), VIP, 200);
    json_decref(a);
    a = call(BULK, VIP, 200);
    json_decref(a);
    ck_assert_uint_eq(hits_seen, 0);

    svc.opt.ofrep_activate = 1;
    a = call(FLAG("vipOn"), VIP, 200);
    json_decref(a);
    /* one flag: the hit of the campaign that served it, nothing else */
    ck_assert_uint_eq(hits_seen, 1);
    ck_assert(strstr(last_hit, "\"caid\":\"vg_vip\"") != NULL);
    ck_assert(strstr(last_hit, "\"vaid\":\"v_vip\"") != NULL);
    a = call(FLAG("missing"), VIP, 404);
    json_decref(a);
    ck_assert_uint_eq(hits_seen, 1);
    /* bulk: every campaign the visitor got, as /v2/flags with trigger_hit */
    a = call(BULK, VIP, 200);
    json_decref(a);
    ck_assert_uint_eq(hits_seen, 4);
}
END_TEST

/* Whether the store holds an activated assignment of vid to variation group vg. */
static int activated(const char *vid, const char *vg)
{
    dc_assignments_t a;
    const dc_assignment_t *have;

    ck_assert_int_eq(dc_store_load(svc.store, pool, svc.opt.env_id, vid, strlen(vid), &a),
                     DC_STORE_OK);
    have = dc_assignments_find(&a, vg, strlen(vg));
    return have && have->activated;
}

START_TEST(one_flag_activates_its_campaign_only)
{
    json_t *a;

    /* one visitor one test remembers the "ab" test a visitor saw: evaluating a flag of
     * another campaign must not count as seeing it */
    publish_with(0, 0, 1);
    svc.opt.ofrep_activate = 1;
    a = call(FLAG("vipOn"), VIP, 200);
    json_decref(a);
    ck_assert(activated("v1", "vg_vip"));
    ck_assert(!activated("v1", "vg_ab"));
    a = call(FLAG("color"), VIP, 200);
    json_decref(a);
    ck_assert(activated("v1", "vg_ab"));
    ck_assert_uint_eq(hits_seen, 2);
}
END_TEST

START_TEST(xpc_through_anonymous_id)
{
    const char *anon = "anon-1";
    json_t *a = call(FLAG("color"), "{\"context\":{\"targetingKey\":\"anon-1\"}}", 200);
    const char *anon_variant = apr_pstrdup(pool, str(a, "variant"));
    const char *user = NULL;
    dc_store_t *store = svc.store;

    json_decref(a);
    /* a logged-in id whose own hash gives the other variation (looked for without a store,
     * so that it has no assignment of its own) */
    svc.store = NULL;
    for (int i = 0; i < 100 && !user; i++) {
        const char *id = apr_psprintf(pool, "user-%d", i);

        a = call(FLAG("color"), apr_psprintf(pool, "{\"context\":{\"targetingKey\":\"%s\"}}", id),
                 200);
        if (strcmp(str(a, "variant"), anon_variant) != 0)
            user = id;
        json_decref(a);
    }
    svc.store = store;
    ck_assert_ptr_nonnull(user);
    publish(1, 0);
    a = call(FLAG("color"),
             apr_psprintf(pool, "{\"context\":{\"targetingKey\":\"%s\",\"anonymousId\":\"%s\"}}",
                          user, anon),
             200);
    ck_assert_str_eq(str(a, "variant"), anon_variant);
    json_decref(a);
}
END_TEST

static Suite *ofrep_suite(void)
{
    Suite *s = suite_create("ofrep");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, values_of_every_type);
    tcase_add_test(tc, flag_not_found);
    tcase_add_test(tc, request_errors);
    tcase_add_test(tc, fast_and_jansson_paths_agree);
    tcase_add_test(tc, bulk_agrees_with_v2_flags);
    tcase_add_test(tc, etag_and_not_modified);
    tcase_add_test(tc, panic_is_disabled);
    tcase_add_test(tc, auth_methods_and_mounts);
    tcase_add_test(tc, activation_only_when_asked);
    tcase_add_test(tc, one_flag_activates_its_campaign_only);
    tcase_add_test(tc, xpc_through_anonymous_id);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(ofrep_suite)

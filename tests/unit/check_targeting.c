/* Targeting: every operator vector of the spec, EXISTS rules, whole targetings, semver, case. */
#include "dc_test.h"

#include "dc_config.h"
#include "dc_semver.h"
#include "dc_targeting.h"
#include "dc_unicode.h"

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

static dc_eval_e eval_str(const char *op, const char *t, size_t tlen, const char *c, size_t clen);

static dc_eval_e eval_json(const char *op, const json_t *t, const json_t *c)
{
    dc_value_t tv, cv;

    dc_value_from_json(pool, t, &tv);
    if (c)
        dc_value_from_json(pool, c, &cv);
    return dc_targeting_eval(dc_operator_from_name(op), &tv, c ? &cv : NULL);
}

START_TEST(operator_vectors)
{
    json_t *v = dc_test_vectors(), *list = json_object_get(v, "targeting_operator"), *item;
    size_t i, checked = 0;

    json_array_foreach(list, i, item)
    {
        json_t *match = json_object_get(item, "match"), *error = json_object_get(item, "error");
        const char *op = json_string_value(json_object_get(item, "operator"));
        dc_eval_e got = eval_json(op, json_object_get(item, "targeting_value"),
                                  json_object_get(item, "context_value"));

        if (json_is_null(match) && json_is_null(error)) {
            /* an upstream crash case (SEMVER on ""): ours must simply not match */
            ck_assert_int_ne(got, DC_EVAL_MATCH);
            continue;
        }
        if (json_is_true(error))
            ck_assert_msg(got == DC_EVAL_ERROR, "vector %zu (%s): expected an error, got %d", i, op,
                          got);
        else
            ck_assert_msg(got == (json_is_true(match) ? DC_EVAL_MATCH : DC_EVAL_NO_MATCH),
                          "vector %zu (%s): expected match=%d, got %d", i, op, json_is_true(match),
                          got);
        checked++;
    }
    ck_assert_uint_gt(checked, 140);
    json_decref(v);
}
END_TEST

START_TEST(exists_vectors)
{
    json_t *v = dc_test_vectors(), *list = json_object_get(v, "targeting_exists"), *item;
    size_t i;

    json_array_foreach(list, i, item)
    {
        const char *op = json_string_value(json_object_get(item, "operator"));
        json_t *t = json_object_get(item, "targeting_value");
        int present = json_is_true(json_object_get(item, "context_present"));
        json_t *ctx = json_string("some value");
        dc_eval_e got = eval_json(op, t, present ? ctx : NULL);

        json_decref(ctx);
        if (!present && strcmp(op, "EXISTS") != 0 && strcmp(op, "NOT_EXISTS") != 0) {
            /* an absent key fails its group before any operator runs (the
             * vector's "error" is the library call's; the group outcome is no match) */
            ck_assert_int_ne(got, DC_EVAL_MATCH);
            continue;
        }
        ck_assert_msg(got == (json_is_true(json_object_get(item, "match")) ? DC_EVAL_MATCH
                                                                          : DC_EVAL_NO_MATCH),
                      "exists vector %zu (%s)", i, op);
    }
    json_decref(v);
}
END_TEST

/* Builds a one-group variation group from a {"targetingGroups":[...]} object through the parser. */
static const dc_variation_group_t *group_from(json_t *targeting, dc_config_t **cfg)
{
    json_t *doc = json_pack(
        "{s:[{s:s,s:s,s:[{s:[i,i]}],s:[{s:s,s:O,s:[{s:s,s:i}]}]}]}", "campaigns", "id", "c",
        "type", "ab", "bucketRanges", "r", 0, 100, "variationGroups", "id", "vg", "targeting",
        targeting,
        "variations", "id", "v", "allocation", 100);
    char *text = json_dumps(doc, 0);
    dc_config_error_t err;

    ck_assert_msg(dc_config_parse(text, strlen(text), cfg, &err) == 0, "%s: %s", err.path,
                  err.text);
    free(text);
    json_decref(doc);
    return &(*cfg)->campaigns[0].groups[0];
}

static void context_from(json_t *obj, const char *visitor_id, dc_context_t *ctx,
                         dc_value_t *visitor)
{
    size_t n = json_object_size(obj), i = 0;
    dc_context_entry_t *e = apr_pcalloc(pool, (n + 1) * sizeof(*e));
    const char *key;
    json_t *value;

    json_object_foreach(obj, key, value)
    {
        e[i].key = key;
        e[i].key_len = strlen(key);
        dc_value_from_json(pool, value, &e[i].value);
        i++;
    }
    dc_value_set_string(pool, visitor, visitor_id, strlen(visitor_id));
    ctx->entries = e;
    ctx->n_entries = n;
    ctx->visitor = visitor;
}

START_TEST(whole_vectors)
{
    json_t *v = dc_test_vectors(), *list = json_object_get(v, "targeting_whole"), *item;
    size_t i;

    ck_assert_uint_gt(json_array_size(list), 10);
    json_array_foreach(list, i, item)
    {
        dc_config_t *cfg;
        const dc_variation_group_t *vg = group_from(json_object_get(item, "targeting"), &cfg);
        dc_context_t ctx;
        dc_value_t visitor;
        int want = json_is_true(json_object_get(item, "match"));

        if (json_object_get(item, "provider_context")) {
            /* Third-party provider contexts never reach a self-hosted server:
             * a provider key is always absent here (spec 4.1), so the vector's
             * provider half cannot apply. */
            dc_config_unref(cfg);
            continue;
        }
        context_from(json_object_get(item, "context"),
                     json_string_value(json_object_get(item, "visitor_id")), &ctx, &visitor);
        ck_assert_msg(dc_targeting_match(vg, &ctx) == want, "whole vector %zu (%s): expected %d", i,
                      json_string_value(json_object_get(item, "source")), want);
        dc_config_unref(cfg);
    }
    json_decref(v);
}
END_TEST

/* Every operator × every value kind must answer without crashing, and mismatched kinds are errors. */
START_TEST(operators_by_kind)
{
    static const char *const ops[] = {
        "EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "GREATER_THAN", "LOWER_THAN",
        "GREATER_THAN_OR_EQUALS", "LOWER_THAN_OR_EQUALS", "STARTS_WITH", "ENDS_WITH", "EXISTS",
        "NOT_EXISTS", "SEMVER_EQUALS", "SEMVER_NOT_EQUALS", "SEMVER_GREATER_THAN",
        "SEMVER_LOWER_THAN", "SEMVER_GREATER_THAN_OR_EQUALS", "SEMVER_LOWER_THAN_OR_EQUALS",
        "NULL"};
    json_t *values = json_loads("[\"abc\", \"\", 3, 2.5, true, false, null, [\"abc\", 1], [], {\"k\":1}]",
                                0, NULL);

    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        for (size_t t = 0; t < json_array_size(values); t++) {
            for (size_t c = 0; c < json_array_size(values); c++) {
                json_t *tv = json_array_get(values, t), *cv = json_array_get(values, c);
                dc_eval_e r = eval_json(ops[o], tv, cv);
                int exists_op = strcmp(ops[o], "EXISTS") == 0 || strcmp(ops[o], "NOT_EXISTS") == 0;

                ck_assert(r == DC_EVAL_MATCH || r == DC_EVAL_NO_MATCH || r == DC_EVAL_ERROR);
                if (!exists_op && !json_is_array(tv) && !json_is_array(cv) &&
                    json_typeof(tv) != json_typeof(cv) &&
                    !(json_is_number(tv) && json_is_number(cv)) &&
                    !(json_is_boolean(tv) && json_is_boolean(cv)))
                    ck_assert_msg(r == DC_EVAL_ERROR, "%s %s vs %s: kinds differ, expected error",
                                  ops[o], json_dumps(tv, JSON_ENCODE_ANY),
                                  json_dumps(cv, JSON_ENCODE_ANY));
                (void)eval_json(ops[o], tv, NULL); /* absent key */
            }
        }
    }
    json_decref(values);
}
END_TEST

/* Strings as raw bytes (jansson refuses invalid UTF-8 in json_string). */
static dc_eval_e eval_str(const char *op, const char *t, size_t tlen, const char *c, size_t clen)
{
    dc_value_t tv, cv;

    dc_value_set_string(pool, &tv, t, tlen);
    dc_value_set_string(pool, &cv, c, clen);
    return dc_targeting_eval(dc_operator_from_name(op), &tv, &cv);
}

#define S(x) x, strlen(x)

START_TEST(strings_case_insensitive)
{
    ck_assert_int_eq(eval_str("EQUALS", S("ÉCOLE Straße"), S("école straße")), DC_EVAL_MATCH);
    ck_assert_int_eq(eval_str("NOT_EQUALS", S("ÉCOLE Straße"), S("école straße")),
                     DC_EVAL_NO_MATCH);
    ck_assert_int_eq(eval_str("STARTS_WITH", S("ÉC"), S("école straße")), DC_EVAL_MATCH);
    ck_assert_int_eq(eval_str("CONTAINS", S("LE ST"), S("école straße")), DC_EVAL_MATCH);
    ck_assert_int_eq(eval_str("ENDS_WITH", S("SSE"), S("strasse")), DC_EVAL_MATCH);
    /* final sigma folds to sigma for equality */
    ck_assert_int_eq(eval_str("EQUALS", S("ΟΔΟΣ"), S("οδος")), DC_EVAL_MATCH);
    ck_assert_int_eq(eval_str("EQUALS", S("ΟΔΟΣ"), S("οδοσ")), DC_EVAL_MATCH);
    ck_assert_int_eq(eval_str("EQUALS", S("οδος"), S("ΟΔΟς")), DC_EVAL_MATCH);
    /* invalid UTF-8 is compared bytewise, never a crash */
    ck_assert_int_eq(eval_str("EQUALS", "\xff\xfe", 2, "\xff\xfe", 2), DC_EVAL_MATCH);
    ck_assert_int_eq(eval_str("CONTAINS", "\xc3", 1, "ab\xc3\x28", 4), DC_EVAL_MATCH);
}
END_TEST

START_TEST(semver_rules)
{
    int cmp;
    static const struct {
        const char *a, *b;
        int cmp;
    } order[] = {
        {"2.1", "2.1.0", 0},          {"v2.1.0", "2.1.0", 0},       {"2", "2.0.0", 0},
        {"2.1.0-beta", "2.1.0", -1},  {"1.0.0-alpha", "1.0.0-alpha.1", -1},
        {"1.0.0-alpha.1", "1.0.0-alpha.beta", -1}, {"1.0.0-beta.2", "1.0.0-beta.11", -1},
        {"1.0.0-rc.1", "1.0.0", -1},  {"1.0.0-alpha+001", "1.0.0-alpha+002", 0},
        {"10.0.0", "9.9.9", 1},       {"1.10.0", "1.9.0", 1},
    };
    static const char *const invalid[] = {"", "V1.0.0", "01.0.0", "1.0.0-", "1.2-beta", "1..0",
                                          "1.0.0-01", "abc", "1.0.0+", "v", "1.0.0.0"};

    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        ck_assert_msg(dc_semver_compare(order[i].a, strlen(order[i].a), order[i].b,
                                        strlen(order[i].b), &cmp) == 0,
                      "%s vs %s", order[i].a, order[i].b);
        ck_assert_msg(cmp == order[i].cmp, "%s vs %s: %d", order[i].a, order[i].b, cmp);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        ck_assert_msg(!dc_semver_valid(invalid[i], strlen(invalid[i])), "\"%s\" accepted",
                      invalid[i]);
}
END_TEST

START_TEST(unicode_lower)
{
    char out[64];
    size_t n = dc_utf8_lower("ÀÉÎÕÜ ĀĞİŁ ΑΩ АЯЁ", strlen("ÀÉÎÕÜ ĀĞİŁ ΑΩ АЯЁ"), out, 0);

    out[n] = '\0';
    ck_assert_str_eq(out, "àéîõü āğił αω аяё");
    ck_assert(dc_utf8_is_lower("déjà vu", strlen("déjà vu"), 1));
    ck_assert(!dc_utf8_is_lower("Déjà", strlen("Déjà"), 0));
}
END_TEST

static Suite *targeting_suite(void)
{
    Suite *s = suite_create("targeting");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, operator_vectors);
    tcase_add_test(tc, exists_vectors);
    tcase_add_test(tc, whole_vectors);
    tcase_add_test(tc, operators_by_kind);
    tcase_add_test(tc, strings_case_insensitive);
    tcase_add_test(tc, semver_rules);
    tcase_add_test(tc, unicode_lower);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(targeting_suite)

/*
 * The bucketing-file parser: both key spellings, defaults, the errors that
 * name a JSON path, the warnings that do not reject, and no crash on any
 * truncation or corruption of a real file.
 */
#include "dc_test.h"

#include "dc_config.h"
#include "dc_slot.h"

#include <string.h>

static int parse(const char *text, dc_config_t **cfg, dc_config_error_t *err)
{
    return dc_config_parse(text, strlen(text), cfg, err);
}

static void assert_rejected(const char *text, const char *path, const char *text_part)
{
    dc_config_t *cfg;
    dc_config_error_t err;

    ck_assert_msg(parse(text, &cfg, &err) < 0, "accepted: %s", text);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strcmp(err.path, path) == 0, "path \"%s\", want \"%s\" (%s)", err.path, path,
                  err.text);
    ck_assert_msg(strstr(err.text, text_part) != NULL, "text \"%s\" lacks \"%s\"", err.text,
                  text_part);
}

START_TEST(sample_file)
{
    dc_config_t *cfg;
    dc_config_error_t err;
    const dc_campaign_t *c;

    ck_assert_int_eq(dc_config_load_file(DC_SAMPLE_BUCKETING, &cfg, &err), 0);
    ck_assert_uint_eq(cfg->n_campaigns, 5);
    ck_assert(!cfg->panic && !cfg->enabled_xpc && !cfg->enabled_1v1t);
    c = dc_config_find_campaign(cfg, "ab-button", 9);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->id, "c_ab");
    ck_assert(c->is_ab);
    ck_assert_uint_eq(c->n_ranges, 1);
    ck_assert_uint_eq(c->groups[0].n_variations, 2);
    ck_assert_str_eq(c->groups[0].variations[0].flags[0].key, "btnColor");
    ck_assert_str_eq(c->groups[0].variations[0].flags[0].json, "\"blue\"");
    ck_assert_uint_eq(c->groups[0].n_all_keys, 2);
    ck_assert_ptr_eq(c->groups[0].campaign, c);
    c = dc_config_find_campaign(cfg, "c_semver", 8);
    ck_assert_int_eq(c->groups[0].groups[0].targetings[0].op, DC_OP_SEMVER_GREATER_THAN_OR_EQUALS);
    ck_assert_ptr_null(dc_config_find_campaign(cfg, "nope", 4));
    dc_config_unref(cfg);
}
END_TEST

START_TEST(camel_and_snake)
{
    const char *camel =
        "{\"visitorConsolidation\":true,\"accountSettings\":{\"enabled1V1T\":true},"
        "\"campaigns\":[{\"id\":\"c\",\"type\":\"ab\",\"bucketRanges\":[{\"r\":[0,100]}],"
        "\"variationGroups\":[{\"id\":\"g\",\"targeting\":{\"targetingGroups\":[{\"targetings\":"
        "[{\"operator\":\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}]}]},"
        "\"variations\":[{\"id\":\"v\",\"allocation\":\"100\"}]}]}]}";
    const char *snake =
        "{\"visitor_consolidation\":true,\"account_settings\":{\"enabled_1v1t\":true},"
        "\"campaigns\":[{\"id\":\"c\",\"type\":\"ab\",\"bucket_ranges\":[{\"r\":[0,100]}],"
        "\"variation_groups\":[{\"id\":\"g\",\"targeting\":{\"targeting_groups\":[{\"targetings\":"
        "[{\"operator\":4,\"key\":\"fs_all_users\",\"value\":\"\"}]}]},"
        "\"variations\":[{\"id\":\"v\",\"allocation\":100}]}]}]}";
    const char *docs[] = {camel, snake};

    for (int i = 0; i < 2; i++) {
        dc_config_t *cfg;
        dc_config_error_t err;

        ck_assert_msg(parse(docs[i], &cfg, &err) == 0, "%s: %s", err.path, err.text);
        ck_assert(cfg->xpc && cfg->visitor_consolidation && !cfg->enabled_xpc);
        ck_assert(cfg->enabled_1v1t);
        ck_assert_uint_eq(cfg->campaigns[0].n_ranges, 1);
        ck_assert_uint_eq(cfg->campaigns[0].n_groups, 1);
        ck_assert_uint_eq(cfg->campaigns[0].groups[0].n_groups, 1);
        ck_assert_int_eq(cfg->campaigns[0].groups[0].groups[0].targetings[0].op, DC_OP_EQUALS);
        ck_assert_int_eq(cfg->campaigns[0].groups[0].groups[0].targetings[0].key_kind,
                         DC_KEY_ALL_USERS);
        ck_assert(cfg->campaigns[0].groups[0].variations[0].allocation == 100);
        dc_config_unref(cfg);
    }
}
END_TEST

START_TEST(defaults_and_warnings)
{
    dc_config_t *cfg;
    dc_config_error_t err;

    /* no accountSettings, no campaigns: valid and empty (upstream would crash) */
    ck_assert_int_eq(parse("{}", &cfg, &err), 0);
    ck_assert_uint_eq(cfg->n_campaigns, 0);
    ck_assert(!cfg->xpc && !cfg->enabled_1v1t && !cfg->panic);
    dc_config_unref(cfg);

    /* unknown operator: kept (never matches), counted; unknown keys ignored */
    ck_assert_int_eq(
        parse("{\"future\":1,\"campaigns\":[{\"id\":\"c\",\"variationGroups\":[{\"id\":\"g\","
              "\"targeting\":{\"targetingGroups\":[{\"targetings\":[{\"operator\":\"REGEX\","
              "\"key\":\"k\",\"value\":\"x\"}]}]},\"variations\":[{\"id\":\"v\"}]}]}]}",
              &cfg, &err),
        0);
    ck_assert_uint_eq(cfg->n_unknown_operators, 1);
    ck_assert_int_eq(cfg->campaigns[0].groups[0].groups[0].targetings[0].op, DC_OP_UNKNOWN);
    ck_assert_uint_eq(cfg->campaigns[0].n_ranges, 0);
    dc_config_unref(cfg);

    /* duplicate campaign ids: the first wins; fractional allocation accepted */
    ck_assert_int_eq(parse("{\"campaigns\":[{\"id\":\"c\",\"name\":\"first\"},{\"id\":\"c\","
                           "\"name\":\"second\"},{\"id\":\"d\",\"variationGroups\":[{\"id\":\"g\","
                           "\"variations\":[{\"id\":\"v\",\"allocation\":20.5}]}]}]}",
                           &cfg, &err),
                     0);
    ck_assert_uint_eq(cfg->n_campaigns, 2);
    ck_assert_str_eq(cfg->campaigns[0].name, "first");
    ck_assert(cfg->campaigns[1].groups[0].variations[0].allocation == 20.5);
    ck_assert_ptr_null(cfg->campaigns[0].slug);
    dc_config_unref(cfg);

    /* a variation whose flags are an empty object: no flag (fuzz_config found it sorted
     * with a null pointer, undefined behaviour the sanitizers stop on) */
    ck_assert_int_eq(parse("{\"campaigns\":[{\"id\":\"c\",\"variationGroups\":[{\"id\":\"g\","
                           "\"variations\":[{\"id\":\"v\",\"modifications\":{\"type\":\"FLAG\","
                           "\"value\":{}}}]}]}]}",
                           &cfg, &err),
                     0);
    ck_assert_uint_eq(cfg->campaigns[0].groups[0].variations[0].n_flags, 0);
    dc_config_unref(cfg);
}
END_TEST

START_TEST(rejections_name_the_path)
{
    assert_rejected("[]", "", "expected an object");
    assert_rejected("{\"campaigns\":{}}", "campaigns", "expected an array");
    assert_rejected("{\"panic\":\"yes\"}", "panic", "expected a bool");
    assert_rejected("{\"campaigns\":[{\"name\":\"x\"}]}", "campaigns[0].id", "missing");
    assert_rejected("{\"campaigns\":[{\"id\":\"c\",\"bucketRanges\":[{\"r\":[1]}]}]}",
                    "campaigns[0].bucketRanges[0].r", "two numbers");
    assert_rejected("{\"campaigns\":[{\"id\":\"c\",\"variationGroups\":[{\"id\":\"g\","
                    "\"variations\":[{\"id\":\"a\"},{\"id\":\"b\",\"allocation\":\"x\"}]}]}]}",
                    "campaigns[0].variationGroups[0].variations[1].allocation",
                    "expected a number");
    assert_rejected("{\"campaigns\":[{\"id\":\"c\",\"variation_groups\":[{\"id\":\"g\","
                    "\"variations\":[{\"name\":\"no id\"}]}]}]}",
                    "campaigns[0].variation_groups[0].variations[0].id", "missing");
    assert_rejected("{\"campaigns\":[{\"id\":\"c\",\"variationGroups\":[{\"id\":\"g\","
                    "\"variations\":[{\"id\":\"v\",\"modifications\":{\"type\":\"FLAG\","
                    "\"value\":[1]}}]}]}]}",
                    "campaigns[0].variationGroups[0].variations[0].modifications.value",
                    "expected an object");
    assert_rejected("{\"campaigns\":[{\"id\":\"c\",\"variationGroups\":[{\"id\":\"g\","
                    "\"targeting\":{\"targetingGroups\":[{\"targetings\":[{\"operator\":true}]}]}}]}]}",
                    "campaigns[0].variationGroups[0].targeting.targetingGroups[0].targetings[0]."
                    "operator",
                    "expected an operator");
    assert_rejected("{\"campaigns\":[{\"id\":\"c\",\"slug\":5}]}", "campaigns[0].slug",
                    "expected a string");
    assert_rejected("{\"campaigns\":[", "", "invalid JSON");
}
END_TEST

/* Every prefix of a real file and every single-byte corruption: parse or reject, never crash. */
START_TEST(truncations_and_corruptions)
{
    FILE *f = fopen(DC_SAMPLE_BUCKETING, "rb");
    char buf[8192];
    size_t len;
    unsigned accepted = 0;

    ck_assert_ptr_nonnull(f);
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t cut = 0; cut < len; cut++) {
        dc_config_t *cfg;
        dc_config_error_t err;

        if (dc_config_parse(buf, cut, &cfg, &err) == 0) {
            accepted++;
            dc_config_unref(cfg);
        }
    }
    for (size_t i = 0; i < len; i += 3) {
        static const char subst[] = {'"', '{', ']', '0', 'x', ',', '\0', '\xff'};
        char saved = buf[i];

        for (size_t s = 0; s < sizeof(subst); s++) {
            dc_config_t *cfg;
            dc_config_error_t err;

            buf[i] = subst[s];
            if (dc_config_parse(buf, len, &cfg, &err) == 0)
                dc_config_unref(cfg);
            else
                ck_assert(err.text[0] != '\0');
        }
        buf[i] = saved;
    }
    ck_assert_uint_le(accepted, 2); /* only the whole file (and maybe it with a newline less) */
}
END_TEST

START_TEST(slot_swaps)
{
    dc_slot_t slot;
    apr_pool_t *p;
    dc_config_t *a, *b, *held;
    dc_config_error_t err;

    apr_pool_create(&p, NULL);
    ck_assert_int_eq(dc_slot_init(&slot, p), 0);
    ck_assert_ptr_null(dc_slot_acquire(&slot));
    ck_assert_int_eq(parse("{}", &a, &err), 0);
    ck_assert_int_eq(parse("{\"panic\":true}", &b, &err), 0);
    dc_slot_publish(&slot, a);
    held = dc_slot_acquire(&slot);
    ck_assert_ptr_eq(held, a);
    dc_slot_publish(&slot, b);
    /* the old snapshot stays valid for its holder */
    ck_assert(!held->panic);
    dc_config_unref(held);
    held = dc_slot_acquire(&slot);
    ck_assert(held->panic);
    dc_config_unref(held);
    ck_assert_uint_eq(slot.generation, 2);
    dc_slot_clear(&slot);
    apr_pool_destroy(p);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sample_file);
    tcase_add_test(tc, camel_and_snake);
    tcase_add_test(tc, defaults_and_warnings);
    tcase_add_test(tc, rejections_name_the_path);
    tcase_add_test(tc, truncations_and_corruptions);
    tcase_add_test(tc, slot_swaps);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(config_suite)

/* The campaign index (dc_index.h): which campaigns are candidates, edge cases, and
 * that a campaign left out never matches (candidates are a superset of matches). */
#include "dc_test.h"

#include "dc_config.h"
#include "dc_engine.h"
#include "dc_index.h"
#include "dc_store.h"
#include "dc_targeting.h"

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

#define ALL "{\"operator\":\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}"
#define T(op, key, value) "{\"operator\":\"" op "\",\"key\":\"" key "\",\"value\":" value "}"

/* Campaign "cN" with one variation group whose targeting groups are the given AND lists. */
static const char *campaign(unsigned n, const char *groups)
{
    return apr_psprintf(pool,
                        "{\"id\":\"c%u\",\"type\":\"ab\",\"bucketRanges\":[{\"r\":[0,100]}],"
                        "\"variationGroups\":[{\"id\":\"vg%u\",\"targeting\":{\"targetingGroups\":[%s]},"
                        "\"variations\":[{\"id\":\"v%u\",\"allocation\":100,\"modifications\":"
                        "{\"type\":\"FLAG\",\"value\":{\"k\":%u}}}]}]}",
                        n, n, groups, n, n);
}

static const char *const CAMPAIGNS[] = {
    /* 0 */ "{\"targetings\":[" ALL "]}",
    /* 1 */ "{\"targetings\":[" T("EQUALS", "country", "\"FR\"") "]}",
    /* 2: an AND: indexed by its EQUALS on country */
    "{\"targetings\":[" T("GREATER_THAN", "age", "18") "," T("EQUALS", "country", "[\"de\",\"Fr\"]") "]}",
    /* 3: OR of AND groups, each indexable: country or fs_users */
    "{\"targetings\":[" T("EQUALS", "country", "\"es\"") "]},{\"targetings\":[" T("EQUALS", "fs_users",
                                                                                  "[\"Alice\",\"bob\"]") "]}",
    /* 4: OR where one group cannot be indexed (NOT_EQUALS): everyone */
    "{\"targetings\":[" T("EQUALS", "country", "\"it\"") "]},{\"targetings\":[" T("NOT_EQUALS", "plan",
                                                                                  "\"pro\"") "]}",
    /* 5..9: operators and values the index cannot serve */
    "{\"targetings\":[" T("CONTAINS", "country", "\"f\"") "]}",
    "{\"targetings\":[" T("EQUALS", "age", "30") "]}",
    "{\"targetings\":[" T("EQUALS", "vip", "true") "]}",
    "{\"targetings\":[" T("EQUALS", "country", "[\"fr\",3]") "]}",
    "{\"targetings\":[" T("SEMVER_EQUALS", "version", "\"1.2.3\"") "]}",
    /* 10: fs_users alone, a long list (a sorted set) */
    "{\"targetings\":[" T("EQUALS", "fs_users",
                          "[\"u1\",\"u2\",\"u3\",\"u4\",\"u5\",\"u6\",\"u7\",\"u8\",\"Ünïcode\",\"CASE\"]") "]}",
    /* 11: a key present in some targetings only: plan here, nothing else reads it */
    "{\"targetings\":[" T("EQUALS", "plan", "\"Team\"") "," ALL "]}",
    /* 12: empty targeting groups: never matches, never a candidate */
    "{\"targetings\":[]}",
    /* 13: NOT_EQUALS on a long list (sorted set, not indexable) */
    "{\"targetings\":[" T("NOT_EQUALS", "fs_users",
                          "[\"u1\",\"u2\",\"u3\",\"u4\",\"u5\",\"u6\",\"u7\",\"u8\",\"u9\"]") "]}",
    /* 14: a string EQUALS on a key whose context value may be a number (a type error) */
    "{\"targetings\":[" T("EQUALS", "age", "\"30\"") "]}",
};
#define N_CAMPAIGNS (sizeof(CAMPAIGNS) / sizeof(CAMPAIGNS[0]))

/* Targetings repeated across campaigns, and near-repeats that must stay apart. */
static const char *const REPEATS[] = {
    /* 0, 1: the same; 2: another case */
    "{\"targetings\":[" T("EQUALS", "country", "\"FR\"") "]}",
    "{\"targetings\":[" T("EQUALS", "country", "\"FR\"") "]}",
    "{\"targetings\":[" T("EQUALS", "country", "\"fr\"") "]}",
    /* 3; 4: a string, not a number; 5: another key */
    "{\"targetings\":[" T("GREATER_THAN", "age", "18") "]}",
    "{\"targetings\":[" T("GREATER_THAN", "age", "\"18\"") "]}",
    "{\"targetings\":[" T("GREATER_THAN", "plan", "18") "]}",
    /* 6: 3 and 0 in one AND */
    "{\"targetings\":[" T("GREATER_THAN", "age", "18") "," T("EQUALS", "country", "\"FR\"") "]}",
    /* 7: a miss, then a type error (age a number), in a group; another group matches:
     * the error wins (no match) */
    "{\"targetings\":[" T("EQUALS", "country", "\"de\"") "," T("LOWER_THAN", "age", "\"abc\"") "]},"
    "{\"targetings\":[" ALL "]}",
    /* 8: the same without the error */
    "{\"targetings\":[" T("EQUALS", "country", "\"de\"") "," T("LOWER_THAN", "age", "99") "]},"
    "{\"targetings\":[" ALL "]}",
    /* 9, 10: the same list; 11: its items in another order */
    "{\"targetings\":[" T("EQUALS", "fs_users", "[\"alice\",\"bob\"]") "]}",
    "{\"targetings\":[" T("EQUALS", "fs_users", "[\"alice\",\"bob\"]") "]}",
    "{\"targetings\":[" T("EQUALS", "fs_users", "[\"bob\",\"alice\"]") "]}",
    /* 12, 13: the same two targetings in one AND */
    "{\"targetings\":[" T("EQUALS", "vip", "true") "," T("GREATER_THAN", "age", "18") "]}",
    "{\"targetings\":[" T("EQUALS", "vip", "true") "," T("GREATER_THAN", "age", "18") "]}",
    /* 14: a key absent ends its group before the error after it: 1 when absent */
    "{\"targetings\":[" T("EQUALS", "plan", "\"pro\"") "," T("LOWER_THAN", "age", "\"abc\"") "]},"
    "{\"targetings\":[" ALL "]}",
    /* 15: 3's operator and key, another number */
    "{\"targetings\":[" T("GREATER_THAN", "age", "40") "]}",
    /* 16: an empty group (never matches) before one that may */
    "{\"targetings\":[]},{\"targetings\":[" T("EQUALS", "country", "\"FR\"") "]}",
    /* 17: a miss followed by fs_all_users only, another group matching: nothing to cut */
    "{\"targetings\":[" T("EQUALS", "country", "\"de\"") "," ALL "]},{\"targetings\":[" ALL "]}",
    /* 18: fs_all_users before a type error, and with a miss after it */
    "{\"targetings\":[" ALL "," T("LOWER_THAN", "age", "\"abc\"") "]},"
    "{\"targetings\":[" ALL "," T("EQUALS", "vip", "true") "," T("GREATER_THAN", "age", "18") "]}",
    /* 19: NOT_EQUALS a set with a string twice once folded; 20: EQUALS it on fs_users */
    "{\"targetings\":[" T("NOT_EQUALS", "country", "[\"de\",\"DE\",\"it\"]") "]}",
    "{\"targetings\":[" T("EQUALS", "fs_users", "[\"x\",\"X\",\"y\"]") "]}",
};
#define N_REPEATS (sizeof(REPEATS) / sizeof(REPEATS[0]))

static dc_config_t *load_from(const char *const *groups, size_t n)
{
    char *doc = apr_pstrdup(pool, "{\"campaigns\":[");
    dc_config_t *cfg;
    dc_config_error_t err;

    for (unsigned i = 0; i < n; i++)
        doc = apr_pstrcat(pool, doc, i ? "," : "", campaign(i, groups[i]), NULL);
    doc = apr_pstrcat(pool, doc, "]}", NULL);
    ck_assert_msg(dc_config_parse(doc, strlen(doc), &cfg, &err) == 0, "%s %s", err.path, err.text);
    return cfg;
}

static dc_config_t *load(void)
{
    return load_from(CAMPAIGNS, N_CAMPAIGNS);
}

/* A visitor from a JSON context ("{...}") and an id. */
static dc_context_t *context(const char *id, const char *json)
{
    json_t *obj = json_loads(json, 0, NULL), *value;
    dc_context_t *ctx = apr_pcalloc(pool, sizeof(*ctx));
    dc_context_entry_t *e = apr_pcalloc(pool, (json_object_size(obj) + 1) * sizeof(*e));
    dc_value_t *visitor = apr_pcalloc(pool, sizeof(*visitor));
    const char *key;

    ck_assert_ptr_nonnull(obj);
    json_object_foreach(obj, key, value) {
        e[ctx->n_entries].key = apr_pstrdup(pool, key);
        e[ctx->n_entries].key_len = strlen(key);
        dc_value_from_json(pool, value, &e[ctx->n_entries].value);
        ctx->n_entries++;
    }
    json_decref(obj);
    dc_value_set_string(pool, visitor, id, strlen(id));
    ctx->entries = e;
    ctx->visitor = visitor;
    return ctx;
}

/* The candidates as a string of 0/1 per campaign. */
static const char *candidates(const dc_config_t *cfg, const dc_context_t *ctx)
{
    uint64_t bits[4] = {0};
    char *out = apr_pcalloc(pool, N_CAMPAIGNS + 1);

    ck_assert_uint_le(dc_index_words(cfg->index), 4);
    dc_index_candidates(cfg->index, ctx, bits);
    for (unsigned i = 0; i < N_CAMPAIGNS; i++)
        out[i] = bits[i / 64] >> (i % 64) & 1 ? '1' : '0';
    return out;
}

/*                                       campaign: 012345678901234 */
#define ALWAYS /* 0, 4..9, 13 */                  "100011111100010"

START_TEST(which_campaigns)
{
    dc_config_t *cfg = load();

    ck_assert_uint_eq(cfg->n_campaigns, N_CAMPAIGNS);
    /* no indexed key, an unknown visitor: only the campaigns for everyone */
    ck_assert_str_eq(candidates(cfg, context("zed", "{}")), ALWAYS);
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"age\":30,\"vip\":true}")), ALWAYS);
    ck_assert_uint_eq(dc_index_n_always(cfg->index), 8);
    /* case-insensitive: "fr", "FR" and "fR" all find 1 and 2 */
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"country\":\"fr\"}")), "111011111100010");
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"country\":\"fR\"}")), "111011111100010");
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"country\":\"DE\"}")), "101011111100010");
    /* OR of AND groups: 3 by its country or by its fs_users, the visitor id folded too */
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"country\":\"ES\"}")), "100111111100010");
    ck_assert_str_eq(candidates(cfg, context("ALICE", "{}")), "100111111100010");
    ck_assert_str_eq(candidates(cfg, context("alice2", "{}")), ALWAYS);
    /* fs_users exact (folded) match on the long list, Unicode folding */
    ck_assert_str_eq(candidates(cfg, context("u7", "{}")), "100011111110010");
    ck_assert_str_eq(candidates(cfg, context("üNÏCODE", "{}")), "100011111110010");
    ck_assert_str_eq(candidates(cfg, context("case", "{}")), "100011111110010");
    ck_assert_str_eq(candidates(cfg, context("u", "{}")), ALWAYS);
    /* a key only some targetings read */
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"plan\":\"team\"}")), "100011111101010");
    /* a list in the context: any element; a number where a string is filed: no candidate */
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"country\":[\"x\",\"es\",\"fr\"]}")),
                     "111111111100010");
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"country\":33,\"plan\":true}")), ALWAYS);
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"age\":30}")), ALWAYS);
    ck_assert_str_eq(candidates(cfg, context("zed", "{\"age\":\"30\"}")), "100011111100011");
    dc_config_unref(cfg);
}
END_TEST

/* Every campaign the index leaves out really matches no group, for many contexts; and the
 * sorted sets answer as the list walk does. */
START_TEST(superset_of_matches)
{
    static const char *const countries[] = {NULL, "\"fr\"", "\"FR\"", "\"de\"", "\"es\"", "\"it\"",
                                            "\"zz\"", "33", "[\"fr\"]", "[\"es\",\"it\"]", "[1]", "null"};
    static const char *const plans[] = {NULL, "\"team\"", "\"pro\"", "\"TEAM\"", "false"};
    static const char *const ids[] = {"alice", "Bob", "u3", "CASE", "zed", "ünïcode", ""};
    static const char *const ages[] = {NULL, "30", "\"30\"", "12"};
    dc_config_t *cfg = load();
    size_t checked = 0, left_out = 0;

    for (size_t a = 0; a < sizeof(countries) / sizeof(*countries); a++)
        for (size_t b = 0; b < sizeof(plans) / sizeof(*plans); b++)
            for (size_t c = 0; c < sizeof(ids) / sizeof(*ids); c++)
                for (size_t d = 0; d < sizeof(ages) / sizeof(*ages); d++) {
                    const char *json = apr_psprintf(
                        pool, "{\"version\":\"1.2.3\"%s%s%s%s%s%s}", countries[a] ? ",\"country\":" : "",
                        countries[a] ? countries[a] : "", plans[b] ? ",\"plan\":" : "",
                        plans[b] ? plans[b] : "", ages[d] ? ",\"age\":" : "", ages[d] ? ages[d] : "");
                    dc_context_t *ctx = context(ids[c], json);
                    const char *cand = candidates(cfg, ctx);
                    const dc_value_t *vals[8];
                    dc_lookups_t lk = {.vals = vals};

                    ck_assert_uint_le(dc_index_n_keys(cfg->index), 8);
                    for (size_t k = 0; k < 8; k++)
                        vals[k] = DC_UNRESOLVED;

                    for (size_t i = 0; i < N_CAMPAIGNS; i++) {
                        const dc_variation_group_t *vg = &cfg->campaigns[i].groups[0];

                        /* the keys looked up once give what a lookup per targeting gives */
                        ck_assert_int_eq(dc_targeting_match_cached(vg, ctx, &lk),
                                         dc_targeting_match(vg, ctx));

                        if (cand[i] == '0') {
                            ck_assert_msg(!dc_targeting_match(vg, ctx), "campaign %zu left out for %s %s",
                                          i, ids[c], json);
                            left_out++;
                        }
                        /* the set path against the plain list walk */
                        for (size_t g = 0; g < vg->n_groups; g++)
                            for (size_t t = 0; t < vg->groups[g].n_targetings; t++) {
                                const dc_targeting_t *tg = &vg->groups[g].targetings[t];

                                if (tg->set) {
                                    int walk = dc_targeting_eval(tg->op, &tg->value, ctx->visitor) ==
                                               DC_EVAL_MATCH;
                                    int set = dc_strset_has(tg->set, ctx->visitor->folded,
                                                            ctx->visitor->folded_len) ==
                                              (tg->op == DC_OP_EQUALS);
                                    ck_assert_int_eq(walk, set);
                                }
                            }
                        checked++;
                    }
                }
    ck_assert_uint_gt(left_out, checked / 4);
    dc_config_unref(cfg);
}
END_TEST

/* dc_decide with the index gives, campaign by campaign, what targeting each campaign gives. */
START_TEST(decide_in_file_order)
{
    dc_config_t *cfg = load();
    dc_decision_t decisions[N_CAMPAIGNS];
    dc_outcome_t out = {.decisions = decisions};
    dc_visitor_t v = {0};
    dc_context_t *ctx = context("alice", "{\"country\":\"fr\",\"plan\":\"Team\",\"age\":30}");

    v.context = ctx;
    v.visitor_id = "alice";
    v.visitor_id_len = 5;
    dc_decide(pool, cfg, NULL, NULL, &v, NULL, &out);
    /* 0 all, 1 and 2 country, 3 fs_users, 4 NOT_EQUALS pro, 5 CONTAINS f, 6 age 30,
     * 8 (the list's number is a type error, skipped: "fr" matches), 11 plan, 13 (alice is
     * not in the NOT_EQUALS list); not 7 (no vip), 9 (no version), 10, 12, 14 (a type error) */
    {
        static const unsigned want[] = {0, 1, 2, 3, 4, 5, 6, 8, 11, 13};
        ck_assert_uint_eq(out.n_decisions, sizeof(want) / sizeof(want[0]));
        for (size_t i = 0; i < out.n_decisions; i++)
            ck_assert_str_eq(out.decisions[i].campaign->id, apr_psprintf(pool, "c%u", want[i]));
    }
    dc_config_unref(cfg);
}
END_TEST

/* A key given twice in a context: the first value counts, as dc_context_get() finds it,
 * whether the cache has looked it up yet or not. */
START_TEST(cached_first_entry)
{
    dc_config_t *cfg = load();
    dc_context_entry_t e[3] = {{"plan", 4, {0}}, {"country", 7, {0}}, {"plan", 4, {0}}};
    dc_context_t ctx = {e, 3, NULL};
    const dc_value_t *vals[8];
    dc_lookups_t lk = {.vals = vals};
    const dc_variation_group_t *team = &cfg->campaigns[11].groups[0];
    const dc_variation_group_t *not_pro = &cfg->campaigns[4].groups[0];
    const dc_targeting_t *plan = &team->groups[0].targetings[0];

    dc_value_set_string(pool, &e[0].value, "Team", 4);
    dc_value_set_string(pool, &e[1].value, "fr", 2);
    dc_value_set_string(pool, &e[2].value, "pro", 3);
    /* country, plan, age, vip, version: the context keys targetings read */
    ck_assert_uint_eq(dc_index_n_keys(cfg->index), 5);
    for (size_t k = 0; k < 8; k++)
        vals[k] = DC_UNRESOLVED;
    ck_assert(dc_targeting_match_cached(team, &ctx, &lk));
    ck_assert_ptr_eq(vals[plan->key_id], &e[0].value);
    ck_assert(dc_targeting_match_cached(team, &ctx, &lk)); /* from the cache */
    ck_assert_int_eq(dc_targeting_match_cached(not_pro, &ctx, &lk), dc_targeting_match(not_pro, &ctx));
    ck_assert(dc_targeting_match(not_pro, &ctx)); /* plan "Team" is not "pro" */
    {
        /* the sets' outcomes seeded from the first entry too: "Team", not "pro" */
        uint8_t remembered[64] = {0};
        dc_lookups_t seeded = {.vals = vals, .outcomes = remembered};

        ck_assert_uint_le(dc_index_n_targetings(cfg->index) + dc_index_n_group_targetings(cfg->index),
                          64);
        seeded.matches = remembered + dc_index_n_targetings(cfg->index);
        seeded.by_tid = dc_index_by_tid(cfg->index);
        for (size_t k = 0; k < 8; k++)
            vals[k] = DC_UNRESOLVED;
        dc_index_seed(cfg->index, &ctx, &seeded);
        ck_assert_uint_eq(remembered[plan->tid], DC_OUTCOME_MATCH);
        ck_assert(dc_targeting_match_cached(team, &ctx, &seeded));
        ck_assert(dc_targeting_match_cached(not_pro, &ctx, &seeded));
    }
    dc_config_unref(cfg);
}
END_TEST

static uint32_t tid(const dc_config_t *cfg, size_t campaign, size_t i)
{
    return cfg->campaigns[campaign].groups[0].groups[0].targetings[i].tid;
}

static uint32_t group_id(const dc_config_t *cfg, size_t campaign)
{
    return cfg->campaigns[campaign].groups[0].targeting_id;
}

/* The same key, operator and value: one number; anything else apart. */
START_TEST(repeats_numbered)
{
    dc_config_t *cfg = load_from(REPEATS, N_REPEATS), *plain = load();

    ck_assert_uint_eq(tid(cfg, 0, 0), tid(cfg, 1, 0));
    ck_assert_uint_ne(tid(cfg, 0, 0), tid(cfg, 2, 0));
    ck_assert_uint_ne(tid(cfg, 3, 0), tid(cfg, 4, 0));
    ck_assert_uint_ne(tid(cfg, 3, 0), tid(cfg, 5, 0));
    ck_assert_uint_eq(tid(cfg, 6, 0), tid(cfg, 3, 0));
    ck_assert_uint_eq(tid(cfg, 6, 1), tid(cfg, 0, 0));
    ck_assert_uint_eq(tid(cfg, 9, 0), tid(cfg, 10, 0));
    ck_assert_uint_ne(tid(cfg, 9, 0), tid(cfg, 11, 0));
    ck_assert_uint_eq(tid(cfg, 12, 1), tid(cfg, 3, 0));
    ck_assert_uint_ne(tid(cfg, 15, 0), tid(cfg, 3, 0));
    ck_assert_uint_eq(group_id(cfg, 0), group_id(cfg, 1));
    ck_assert_uint_ne(group_id(cfg, 0), group_id(cfg, 2));
    ck_assert_uint_ne(group_id(cfg, 6), group_id(cfg, 3));
    ck_assert_uint_ne(group_id(cfg, 7), group_id(cfg, 8));
    ck_assert_uint_eq(group_id(cfg, 12), group_id(cfg, 13));
    ck_assert_uint_lt(dc_index_n_targetings(cfg->index), 20);
    ck_assert(dc_index_has_repeats(cfg->index));
    /* the first fixture repeats nothing: its decisions remember nothing */
    ck_assert_uint_eq(dc_index_n_targetings(plain->index), 16);
    ck_assert(!dc_index_has_repeats(plain->index));
    dc_config_unref(cfg);
    dc_config_unref(plain);
}
END_TEST

/* Outcomes remembered across the campaigns of one visitor give what each campaign's own
 * evaluation gives, and dc_decide serves exactly the campaigns that match. */
START_TEST(remembered_outcomes_agree)
{
    static const char *const countries[] = {NULL, "\"FR\"", "\"fr\"", "\"de\"", "3", "[\"de\",\"fr\"]"};
    static const char *const ages[] = {NULL, "30", "12", "\"30\"", "\"abc\""};
    static const char *const vips[] = {NULL, "true", "false"};
    static const char *const ids[] = {"alice", "bob", "carol", "X"};
    dc_config_t *cfg = load_from(REPEATS, N_REPEATS);
    size_t n_matches = 0;

    for (size_t a = 0; a < sizeof(countries) / sizeof(*countries); a++)
        for (size_t b = 0; b < sizeof(ages) / sizeof(*ages); b++)
            for (size_t c = 0; c < sizeof(vips) / sizeof(*vips); c++)
                for (size_t d = 0; d < sizeof(ids) / sizeof(*ids); d++) {
                    const char *json = apr_psprintf(
                        pool, "{\"plan\":\"team\"%s%s%s%s%s%s}", countries[a] ? ",\"country\":" : "",
                        countries[a] ? countries[a] : "", ages[b] ? ",\"age\":" : "",
                        ages[b] ? ages[b] : "", vips[c] ? ",\"vip\":" : "", vips[c] ? vips[c] : "");
                    dc_context_t *ctx = context(ids[d], json);
                    const dc_value_t *vals[8];
                    uint8_t remembered[64] = {0};
                    dc_lookups_t lk = {.vals = vals, .outcomes = remembered};
                    dc_decision_t decisions[N_REPEATS];
                    dc_outcome_t out = {.decisions = decisions};
                    dc_visitor_t v = {0};
                    size_t served = 0;

                    ck_assert_uint_le(dc_index_n_keys(cfg->index), 8);
                    ck_assert_uint_le(dc_index_n_targetings(cfg->index) +
                                          dc_index_n_group_targetings(cfg->index), 64);
                    lk.matches = remembered + dc_index_n_targetings(cfg->index);
                    lk.by_tid = dc_index_by_tid(cfg->index);
                    for (size_t k = 0; k < 8; k++)
                        vals[k] = DC_UNRESOLVED;
                    /* the string sets' outcomes found by one lookup of each key's value */
                    dc_index_seed(cfg->index, ctx, &lk);
                    v.context = ctx;
                    v.visitor_id = ids[d];
                    v.visitor_id_len = strlen(ids[d]);
                    dc_decide(pool, cfg, NULL, NULL, &v, NULL, &out);
                    for (size_t i = 0; i < N_REPEATS; i++) {
                        const dc_variation_group_t *vg = &cfg->campaigns[i].groups[0];
                        int want = dc_targeting_match(vg, ctx);

                        ck_assert_msg(dc_targeting_match_cached(vg, ctx, &lk) == want,
                                      "campaign %zu for %s", i, json);
                        if (want) {
                            ck_assert_uint_lt(served, out.n_decisions);
                            ck_assert_ptr_eq(out.decisions[served].campaign, &cfg->campaigns[i]);
                            served++;
                            n_matches++;
                        }
                    }
                    ck_assert_uint_eq(served, out.n_decisions);
                }
    /* the cut groups: an error after a miss is no match; a key absent before it is */
    ck_assert(!dc_targeting_match(&cfg->campaigns[7].groups[0], context("x", "{\"country\":\"fr\",\"age\":30}")));
    ck_assert(dc_targeting_match(&cfg->campaigns[7].groups[0], context("x", "{\"country\":\"fr\"}")));
    ck_assert(dc_targeting_match(&cfg->campaigns[8].groups[0], context("x", "{\"country\":\"fr\",\"age\":30}")));
    ck_assert(dc_targeting_match(&cfg->campaigns[14].groups[0], context("x", "{\"age\":30}")));
    ck_assert(!dc_targeting_match(&cfg->campaigns[14].groups[0],
                                  context("x", "{\"plan\":\"free\",\"age\":30}")));
    ck_assert_uint_gt(n_matches, 0);
    dc_config_unref(cfg);
}
END_TEST

/* Each bucket's variation, as the snapshot keeps it for hashed groups, is the one the walk
 * over the allocations gives: fractions, sums under and over 100, negative allocations, and
 * more variations than a byte numbers (no table: the walk itself). */
START_TEST(bucket_table_as_the_walk)
{
    static const char *const allocations[] = {
        "50,50", "33.3,33.3,33.4", "10,20", "0,100", "99.5", "100", "60,-20,70", "12.5,0,87.5",
        "150,-100,50", "100,0", "0.5,0.5,0.5", "",
    };
    char *doc = apr_pstrdup(pool, "{\"campaigns\":[");
    dc_config_t *cfg;
    dc_config_error_t err;
    size_t n_tables = 0, n_cases = sizeof(allocations) / sizeof(*allocations);

    for (unsigned i = 0; i <= n_cases; i++) {
        char *variations = apr_pstrdup(pool, "");
        const char *list = i < n_cases ? allocations[i] : NULL;
        unsigned n = 0;

        if (list) { /* the variations of one case */
            for (const char *a = list; *a; n++) {
                size_t len = strcspn(a, ",");

                variations = apr_psprintf(pool, "%s%s{\"id\":\"v%u_%u\",\"allocation\":%.*s,"
                                          "\"modifications\":{\"type\":\"FLAG\",\"value\":{}}}",
                                          variations, n ? "," : "", i, n, (int)len, a);
                a += len + (a[len] == ',');
            }
        } else { /* 300 variations of 1/3 each */
            for (n = 0; n < 300; n++)
                variations = apr_psprintf(pool, "%s%s{\"id\":\"v%u_%u\",\"allocation\":0.33,"
                                          "\"modifications\":{\"type\":\"FLAG\",\"value\":{}}}",
                                          variations, n ? "," : "", i, n);
        }
        doc = apr_psprintf(pool,
                           "%s%s{\"id\":\"c%u\",\"type\":\"ab\",\"bucketRanges\":[{\"r\":[0,100]}],"
                           "\"variationGroups\":[{\"id\":\"vg%u\",\"targeting\":{\"targetingGroups\":"
                           "[{\"targetings\":[" ALL "]}]},\"variations\":[%s]}]}",
                           doc, i ? "," : "", i, i, variations);
    }
    doc = apr_pstrcat(pool, doc, "]}", NULL);
    ck_assert_msg(dc_config_parse(doc, strlen(doc), &cfg, &err) == 0, "%s %s", err.path, err.text);
    ck_assert_uint_eq(cfg->n_campaigns, n_cases + 1);
    for (size_t c = 0; c < cfg->n_campaigns; c++) {
        const dc_variation_group_t *vg = &cfg->campaigns[c].groups[0];

        ck_assert_int_eq(vg->hashed, !(vg->n_variations == 0 ||
                                       (vg->n_variations > 0 && vg->variations[0].allocation > 99)));
        if (!vg->hashed)
            continue;
        if (vg->n_variations >= DC_NO_VARIATION) {
            ck_assert_ptr_null(vg->variation_at);
            continue;
        }
        ck_assert_ptr_nonnull(vg->variation_at);
        n_tables++;
        for (unsigned z = 0; z < 100; z++) {
            const dc_variation_t *want = dc_allocate(vg, z);

            if (vg->variation_at[z] == DC_NO_VARIATION)
                ck_assert_msg(want == NULL, "campaign %zu bucket %u", c, z);
            else
                ck_assert_msg(want == &vg->variations[vg->variation_at[z]], "campaign %zu bucket %u",
                              c, z);
        }
    }
    ck_assert_uint_eq(n_tables, 7); /* 50,50 33.3,... 10,20 0,100 60,-20,70 12.5,0,87.5 0.5,... */
    /* the walk's thresholds, for every group of up to eight variations, hashed or not */
    for (size_t c = 0; c < cfg->n_campaigns; c++) {
        const dc_variation_group_t *vg = &cfg->campaigns[c].groups[0];
        const dc_walk_group_t *w = &dc_index_walk(cfg->index)->groups[c];

        ck_assert_int_eq(!(w->flags & DC_WALK_SLOW), vg->n_variations <= 8 && !vg->id_hash.ncarry);
        if (vg->n_variations > 8)
            continue;
        for (unsigned z = 0; z < 100; z++) {
            const dc_variation_t *want = dc_allocate(vg, z);
            unsigned i = dc_walk_variation(w->thresholds, z);

            ck_assert_msg(want ? i < vg->n_variations && &vg->variations[i] == want : i >= vg->n_variations,
                          "campaign %zu bucket %u: variation %u", c, z, i);
        }
    }
    dc_config_unref(cfg);
}
END_TEST

/* Without a store the walk skips the campaigns the visitor's bucket excludes (their
 * targeting is not evaluated); with one, every candidate is evaluated and the buckets
 * are checked after the loads. For visitors with no assignment the two give the same
 * decisions, 1V1T (one "ab" campaign at most), bucket ranges and allocations included. */
START_TEST(no_store_as_an_empty_store)
{
    static const char *const ranges[] = {"[0,100]", "[0,50]", "[25,75]", "[0,100]", "[10,90]"};
    char *doc = apr_pstrdup(pool, "{\"accountSettings\":{\"enabled1V1T\":true},\"campaigns\":[");
    dc_config_t *cfg;
    dc_config_error_t err;
    char store_err[256];
    dc_store_t *memory = dc_store_open(pool, "memory", store_err, sizeof(store_err));
    size_t n_served = 0;

    ck_assert_msg(memory != NULL, "%s", store_err);
    for (unsigned i = 0; i < 40; i++)
        doc = apr_pstrcat(
            pool, doc, i ? "," : "",
            apr_psprintf(pool,
                         "{\"id\":\"c%u\",\"type\":\"%s\",\"bucketRanges\":[{\"r\":%s}],"
                         "\"variationGroups\":[{\"id\":\"vg%u\",\"targeting\":{\"targetingGroups\":"
                         "[{\"targetings\":[%s]}]},\"variations\":["
                         "{\"id\":\"a%u\",\"allocation\":40,\"modifications\":{\"type\":\"FLAG\",\"value\":{}}},"
                         "{\"id\":\"b%u\",\"allocation\":%u,\"modifications\":{\"type\":\"FLAG\",\"value\":{}}}]}]}",
                         i, i % 3 ? "toggle" : "ab", ranges[i % 5], i,
                         i % 4 ? ALL : T("GREATER_THAN", "age", "18"), i, i, 40 + i % 3 * 10),
            NULL);
    doc = apr_pstrcat(pool, doc, "]}", NULL);
    ck_assert_msg(dc_config_parse(doc, strlen(doc), &cfg, &err) == 0, "%s %s", err.path, err.text);
    for (unsigned k = 0; k < 300; k++) {
        dc_decision_t without[40], with[40];
        dc_outcome_t a = {.decisions = without}, b = {.decisions = with};
        dc_visitor_t v = {0};
        const char *id = apr_psprintf(pool, "visitor-%u", k);

        v.context = context(id, k % 2 ? "{\"age\":30}" : "{\"age\":12}");
        v.visitor_id = id;
        v.visitor_id_len = strlen(id);
        dc_decide(pool, cfg, NULL, NULL, &v, NULL, &a);
        dc_decide(pool, cfg, memory, "env", &v, NULL, &b);
        ck_assert(!a.cache_on && b.cache_on);
        ck_assert_uint_eq(a.n_decisions, b.n_decisions);
        for (size_t i = 0; i < a.n_decisions; i++) {
            ck_assert_ptr_eq(without[i].group, with[i].group);
            ck_assert_ptr_eq(without[i].variation, with[i].variation);
        }
        n_served += a.n_decisions;
    }
    ck_assert_uint_gt(n_served, 300 * 5);
    dc_config_unref(cfg);
}
END_TEST

/* Pieces of the walk's file (walk_as_the_reference): variation group targetings, as the
 * "targetingGroups" array's content. */
static const char *const WALK_TARGETINGS[] = {
    "{\"targetings\":[" ALL "]}",
    "{\"targetings\":[" T("EQUALS", "country", "\"FR\"") "]}",
    "{\"targetings\":[" T("GREATER_THAN", "age", "18") "," T("EQUALS", "country", "[\"de\",\"fr\"]") "]}",
    /* an AND of three: no slots of its own, its program's outcome */
    "{\"targetings\":[" T("GREATER_THAN", "age", "18") "," T("NOT_EQUALS", "country", "\"it\"") ","
    T("SEMVER_GREATER_THAN", "version", "\"1.0.0\"") "]}",
    /* an OR, with a type error in one group (the error wins) */
    "{\"targetings\":[" T("EQUALS", "country", "\"de\"") "]},{\"targetings\":[" T("LOWER_THAN", "age",
                                                                                  "\"abc\"") "]}",
    "{\"targetings\":[" T("EQUALS", "country", "\"de\"") "]},{\"targetings\":[" ALL "]}",
    "", /* no targeting groups: never matches */
    "{\"targetings\":[]}",
    "{\"targetings\":[" T("SEMVER_LOWER_THAN_OR_EQUALS", "version", "\"1.2.3\"") "]}",
    "{\"targetings\":[" T("SEMVER_EQUALS", "version", "\"1.2\"") "," ALL "]}",
    "{\"targetings\":[" T("CONTAINS", "email", "\"@beta\"") "]}",
    "{\"targetings\":[" T("EQUALS", "fs_users", "[\"u1\",\"u7\",\"U9\"]") "]}",
    "{\"targetings\":[" T("NOT_EQUALS", "plan", "\"pro\"") "," T("EQUALS", "vip", "true") "]}",
};

/* Their variations' allocations: below 100, negative, more than eight, none. */
static const char *const WALK_ALLOCATIONS[] = {
    "100", "50,50", "33.3,33.3,33.4", "10,20", "0,100", "60,-20,70", "150,-100,50",
    "10,10,10,10,10,10,10,10,10,10", "", "99.5", "25,0,25,0,50",
};

/* A pseudo-random number below n from *seed (the same file every run). */
static unsigned pick(unsigned *seed, unsigned n)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) % n;
}

/* What dc_decide gives without a store, from the plain functions it was made faster than:
 * each campaign in order, its bucket ranges, its first group dc_targeting_match() takes,
 * dc_allocate() of the group id and visitor id's bucket, one "ab" campaign with 1V1T. */
static size_t reference_decide(const dc_config_t *cfg, const dc_visitor_t *v, const char **chosen)
{
    size_t n = 0;
    int ab_added = 0;

    for (size_t ci = 0; ci < cfg->n_campaigns; ci++) {
        const dc_campaign_t *c = &cfg->campaigns[ci];
        const dc_variation_group_t *vg = NULL;
        const dc_variation_t *var;

        if (!dc_in_bucket_ranges(c, dc_bucket(v->visitor_id, v->visitor_id_len)))
            continue;
        for (size_t g = 0; g < c->n_groups && !vg; g++)
            if (dc_targeting_match(&c->groups[g], v->context))
                vg = &c->groups[g];
        if (!vg || (cfg->enabled_1v1t && c->is_ab && ab_added))
            continue;
        var = dc_allocate(vg, dc_bucket2(vg->id, vg->id_len, v->visitor_id, v->visitor_id_len));
        if (!var)
            continue;
        chosen[n++] = var->id;
        ab_added |= c->is_ab;
    }
    return n;
}

/* The walk (dc_walk_t: the slots, each group's thresholds and hash, the campaigns with more
 * groups than slots, the programs run when an outcome is not known) decides what the plain
 * functions do: up to six variation groups a campaign, ids whose length is and is not a
 * multiple of four, allocations the thresholds cannot say, 1V1T on and off; and the same
 * with a store (the walk's other path). */
START_TEST(walk_as_the_reference)
{
    static const char *const countries[] = {NULL, "\"fr\"", "\"DE\"", "\"it\"", "3"};
    static const char *const ages[] = {NULL, "30", "12", "\"abc\""};
    static const char *const versions[] = {NULL, "\"1.2.3\"", "\"1.2\"", "\"0.9-beta\"", "\"x\"", "2"};
    static const char *const emails[] = {NULL, "\"a@beta.example\"", "\"b@example.com\""};
    char store_err[256];
    dc_store_t *memory = dc_store_open(pool, "memory", store_err, sizeof(store_err));
    size_t n_served = 0, n_slow = 0, n_fast = 0, n_groups_path = 0;

    ck_assert_msg(memory != NULL, "%s", store_err);
    for (int one_test = 0; one_test < 2; one_test++) {
        char *doc = apr_psprintf(pool, "{\"accountSettings\":{\"enabled1V1T\":%s},\"campaigns\":[",
                                 one_test ? "true" : "false");
        unsigned seed = 7;
        dc_config_t *cfg;
        dc_config_error_t err;
        const dc_walk_t *walk;

        for (unsigned ci = 0; ci < 120; ci++) {
            unsigned n_groups = 1 + pick(&seed, 6);
            char *groups = apr_pstrdup(pool, "");

            for (unsigned g = 0; g < n_groups; g++) {
                const char *alloc = WALK_ALLOCATIONS[pick(&seed, sizeof(WALK_ALLOCATIONS) / sizeof(char *))];
                char *variations = apr_pstrdup(pool, "");
                unsigned n = 0;

                for (const char *a = alloc; *a; n++) {
                    size_t len = strcspn(a, ",");

                    variations = apr_psprintf(pool, "%s%s{\"id\":\"v%u_%u_%u\",\"allocation\":%.*s,"
                                              "\"modifications\":{\"type\":\"FLAG\",\"value\":{}}}",
                                              variations, n ? "," : "", ci, g, n, (int)len, a);
                    a += len + (a[len] == ',');
                }
                /* ids of 8 bytes, or 9 to 11: those leave bytes to carry into the visitor's */
                groups = apr_psprintf(pool, "%s%s{\"id\":\"vg%03u_%02u%.*s\",\"targeting\":{\"targetingGroups\":[%s]},"
                                      "\"variations\":[%s]}",
                                      groups, g ? "," : "", ci, g, (int)(pick(&seed, 2) ? 0 : 1 + pick(&seed, 3)), "xyz",
                                      WALK_TARGETINGS[pick(&seed, sizeof(WALK_TARGETINGS) / sizeof(char *))],
                                      variations);
            }
            doc = apr_psprintf(pool, "%s%s{\"id\":\"c%u\",\"type\":\"%s\",\"bucketRanges\":[{\"r\":[%u,%u]}],"
                               "\"variationGroups\":[%s]}",
                               doc, ci ? "," : "", ci, pick(&seed, 3) ? "ab" : "toggle",
                               pick(&seed, 2) ? 0 : 20, pick(&seed, 2) ? 100 : 70, groups);
        }
        doc = apr_pstrcat(pool, doc, "]}", NULL);
        ck_assert_msg(dc_config_parse(doc, strlen(doc), &cfg, &err) == 0, "%s %s", err.path, err.text);
        walk = dc_index_walk(cfg->index);
        for (size_t ci = 0; ci < cfg->n_campaigns; ci++) {
            n_groups_path += (walk->campaigns[ci].flags & DC_WALK_GROUPS) != 0;
            for (size_t g = 0; g < cfg->campaigns[ci].n_groups; g++)
                if (walk->groups[walk->campaigns[ci].first + g].flags & DC_WALK_SLOW)
                    n_slow++;
                else
                    n_fast++;
        }
        for (unsigned k = 0; k < 400; k++) {
            const char *json = apr_psprintf(
                pool, "{\"plan\":\"%s\",\"vip\":%s%s%s%s%s%s%s%s%s}", k % 3 ? "free" : "pro",
                k % 2 ? "true" : "false", countries[k % 5] ? ",\"country\":" : "",
                countries[k % 5] ? countries[k % 5] : "", ages[k / 5 % 4] ? ",\"age\":" : "",
                ages[k / 5 % 4] ? ages[k / 5 % 4] : "", versions[k / 20 % 6] ? ",\"version\":" : "",
                versions[k / 20 % 6] ? versions[k / 20 % 6] : "", emails[k % 3] ? ",\"email\":" : "",
                emails[k % 3] ? emails[k % 3] : "");
            /* ids in fs_users lists, and past DC_HASH_KEY_MAX bytes (hashed whole) */
            const char *id = k % 50 == 49 ? apr_psprintf(pool, "%0300u", k)
                                          : apr_psprintf(pool, k % 7 ? "visitor-%u" : "u%u", k % 7 ? k : k % 10);
            const char *want[120];
            dc_decision_t without[120], with[120];
            dc_outcome_t a = {.decisions = without}, b = {.decisions = with};
            dc_visitor_t v = {0};
            size_t n_want;

            v.context = context(id, json);
            v.visitor_id = id;
            v.visitor_id_len = strlen(id);
            n_want = reference_decide(cfg, &v, want);
            dc_decide(pool, cfg, NULL, NULL, &v, NULL, &a);
            ck_assert_msg(a.n_decisions == n_want, "%zu decisions, %zu wanted for %s %s", a.n_decisions,
                          n_want, id, json);
            for (size_t i = 0; i < n_want; i++)
                ck_assert_msg(strcmp(without[i].variation->id, want[i]) == 0, "%s for %s, %s wanted (%s %s)",
                              without[i].variation->id, without[i].campaign->id, want[i], id, json);
            /* with a store, new visitors: the same (what a store changes is tested elsewhere) */
            if (!one_test) {
                const char *fresh = apr_psprintf(pool, "%s", id);

                v.visitor_id = fresh;
                dc_decide(pool, cfg, memory, apr_psprintf(pool, "env%u", k), &v, NULL, &b);
                ck_assert_uint_eq(b.n_decisions, n_want);
                for (size_t i = 0; i < n_want; i++)
                    ck_assert_str_eq(with[i].variation->id, want[i]);
            }
            n_served += n_want;
        }
        dc_config_unref(cfg);
    }
    /* the file has what the walk must handle */
    ck_assert_uint_gt(n_served, 2 * 400 * 10);
    ck_assert_uint_gt(n_slow, 100);
    ck_assert_uint_gt(n_fast, 100);
    ck_assert_uint_gt(n_groups_path, 10);
}
END_TEST

/* The outcomes of SEMVER_* targetings found from the visitor's version's rank among the
 * file's (dc_index_seed) are those each targeting gives: all six operators, versions equal
 * in order but not in text (1.2 and 1.2.0), pre-releases, a targeting value that is not a
 * version (left to be evaluated), and visitor values that are not versions or strings. */
START_TEST(versions_seeded_as_evaluated)
{
    static const char *const ops[] = {"SEMVER_EQUALS", "SEMVER_NOT_EQUALS", "SEMVER_GREATER_THAN",
                                      "SEMVER_LOWER_THAN", "SEMVER_GREATER_THAN_OR_EQUALS",
                                      "SEMVER_LOWER_THAN_OR_EQUALS"};
    static const char *const values[] = {"\"1.2\"", "\"1.2.0\"", "\"1.2.3-beta\"", "\"1.2.3\"",
                                         "\"1.10.0\"", "\"0.9\"", "\"abc\"", "3"};
    static const char *const visitors[] = {"\"1.2.0\"", "\"1.2\"", "\"1.2.3\"", "\"1.2.3-alpha\"",
                                           "\"1.2.3-beta\"", "\"2.0\"", "\"0.1\"", "\"1.9.9\"",
                                           "\"nope\"", "7", "[\"1.2\"]", NULL};
    const char *groups[sizeof(ops) / sizeof(*ops) * sizeof(values) / sizeof(*values)];
    size_t n = 0, n_seeded = 0, n_left = 0;
    dc_config_t *cfg;

    for (size_t o = 0; o < sizeof(ops) / sizeof(*ops); o++)
        for (size_t i = 0; i < sizeof(values) / sizeof(*values); i++)
            groups[n++] = apr_psprintf(pool, "{\"targetings\":[{\"operator\":\"%s\",\"key\":\"version\","
                                       "\"value\":%s}]}", ops[o], values[i]);
    cfg = load_from(groups, n);
    for (size_t k = 0; k < sizeof(visitors) / sizeof(*visitors); k++) {
        const char *json = visitors[k] ? apr_psprintf(pool, "{\"version\":%s}", visitors[k]) : "{}";
        dc_context_t *ctx = context("x", json);
        const dc_value_t *vals[4], *plain_vals[4];
        uint8_t seeded[256] = {0};
        dc_lookups_t lk = {.vals = vals, .outcomes = seeded}, plain = {.vals = plain_vals};

        ck_assert_uint_le(dc_index_n_keys(cfg->index), 4);
        ck_assert_uint_le(dc_index_n_targetings(cfg->index), sizeof(seeded));
        for (size_t i = 0; i < 4; i++)
            vals[i] = plain_vals[i] = DC_UNRESOLVED;
        dc_index_seed(cfg->index, ctx, &lk);
        for (size_t tid = 0; tid < dc_index_n_targetings(cfg->index); tid++) {
            const dc_targeting_t *t = dc_index_by_tid(cfg->index)[tid];

            if (!seeded[tid]) {
                /* left to be evaluated: a value that is no version, or no string to compare */
                ck_assert(!t->semver || !visitors[k] || visitors[k][0] != '"');
                n_left++;
                continue;
            }
            ck_assert_msg(seeded[tid] == dc_targeting_outcome(t, ctx, &plain), "%s %.*s for %s",
                          dc_operator_name(t->op), (int)t->value.len, t->value.str ? t->value.str : "", json);
            n_seeded++;
        }
    }
    /* 6 operators x 6 versions, for the 9 string values */
    ck_assert_uint_eq(n_seeded, 6 * 6 * 9);
    ck_assert_uint_gt(n_left, 0);
    dc_config_unref(cfg);
}
END_TEST

static Suite *index_suite(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, which_campaigns);
    tcase_add_test(tc, superset_of_matches);
    tcase_add_test(tc, decide_in_file_order);
    tcase_add_test(tc, cached_first_entry);
    tcase_add_test(tc, repeats_numbered);
    tcase_add_test(tc, remembered_outcomes_agree);
    tcase_add_test(tc, no_store_as_an_empty_store);
    tcase_add_test(tc, bucket_table_as_the_walk);
    tcase_add_test(tc, walk_as_the_reference);
    tcase_add_test(tc, versions_seeded_as_evaluated);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(index_suite)

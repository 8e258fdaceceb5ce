#include "dc_targeting.h"
#include "dc_index.h"
#include "dc_semver.h"

#include <string.h>

static int is_and_op(dc_operator_e op)
{
    return op == DC_OP_NOT_EQUALS || op == DC_OP_NOT_CONTAINS;
}

static int is_or_op(dc_operator_e op)
{
    return op == DC_OP_EQUALS || op == DC_OP_CONTAINS;
}

static int bytes_compare(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int contains(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return 1;
    while (hlen >= nlen) {
        const char *p = memchr(hay, needle[0], hlen - nlen + 1);

        if (!p)
            return 0;
        if (memcmp(p, needle, nlen) == 0)
            return 1;
        hlen -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return 0;
}

static dc_eval_e result(int b)
{
    return b ? DC_EVAL_MATCH : DC_EVAL_NO_MATCH;
}

/* A SEMVER_* operator given the comparison of the context's version with the targeting's. */
static dc_eval_e semver_result(dc_operator_e op, int cmp)
{
    return result(dc_semver_op_bits(op) >> (cmp + 1) & 1);
}

static dc_eval_e eval_string(dc_operator_e op, const dc_value_t *t, const dc_value_t *c)
{
    int cmp;

    switch (op) {
    case DC_OP_EQUALS:
    case DC_OP_NOT_EQUALS: {
        int eq = t->folded_len == c->folded_len && memcmp(t->folded, c->folded, t->folded_len) == 0;
        return result(op == DC_OP_EQUALS ? eq : !eq);
    }
    case DC_OP_LOWER_THAN:
        return result(bytes_compare(c->lower, c->lower_len, t->lower, t->lower_len) < 0);
    case DC_OP_LOWER_THAN_OR_EQUALS:
        return result(bytes_compare(c->lower, c->lower_len, t->lower, t->lower_len) <= 0);
    case DC_OP_GREATER_THAN:
        return result(bytes_compare(c->lower, c->lower_len, t->lower, t->lower_len) > 0);
    case DC_OP_GREATER_THAN_OR_EQUALS:
        return result(bytes_compare(c->lower, c->lower_len, t->lower, t->lower_len) >= 0);
    case DC_OP_STARTS_WITH:
        return result(c->lower_len >= t->lower_len &&
                      memcmp(c->lower, t->lower, t->lower_len) == 0);
    case DC_OP_ENDS_WITH:
        return result(c->lower_len >= t->lower_len &&
                      memcmp(c->lower + c->lower_len - t->lower_len, t->lower, t->lower_len) == 0);
    case DC_OP_CONTAINS:
        return result(contains(c->lower, c->lower_len, t->lower, t->lower_len));
    case DC_OP_NOT_CONTAINS:
        return result(!contains(c->lower, c->lower_len, t->lower, t->lower_len));
    case DC_OP_SEMVER_EQUALS:
    case DC_OP_SEMVER_NOT_EQUALS:
    case DC_OP_SEMVER_GREATER_THAN:
    case DC_OP_SEMVER_LOWER_THAN:
    case DC_OP_SEMVER_GREATER_THAN_OR_EQUALS:
    case DC_OP_SEMVER_LOWER_THAN_OR_EQUALS:
        if (dc_semver_compare(c->str, c->len, t->str, t->len, &cmp) < 0)
            return DC_EVAL_NO_MATCH;
        return semver_result(op, cmp);
    default:
        return DC_EVAL_ERROR; /* operator not handled for strings */
    }
}

static dc_eval_e eval_number(dc_operator_e op, double t, double c)
{
    switch (op) {
    case DC_OP_LOWER_THAN: return result(c < t);
    case DC_OP_LOWER_THAN_OR_EQUALS: return result(c <= t);
    case DC_OP_GREATER_THAN: return result(c > t);
    case DC_OP_GREATER_THAN_OR_EQUALS: return result(c >= t);
    case DC_OP_EQUALS: return result(c == t);
    case DC_OP_NOT_EQUALS: return result(c != t);
    default: return DC_EVAL_ERROR;
    }
}

static dc_eval_e eval_bool(dc_operator_e op, int t, int c)
{
    switch (op) {
    case DC_OP_EQUALS: return result(c == t);
    case DC_OP_NOT_EQUALS: return result(c != t);
    default: return DC_EVAL_ERROR;
    }
}

dc_eval_e dc_targeting_eval(dc_operator_e op, const dc_value_t *t, const dc_value_t *c)
{
    int present = c != NULL;

    /* 1. A list in the context: any/every over its elements, errors are plain misses. */
    if (present && c->kind == DC_KIND_LIST) {
        int r = is_and_op(op);

        if (c->n_items > 0 && c->items[0].kind != t->kind)
            return DC_EVAL_ERROR;
        for (size_t i = 0; i < c->n_items; i++) {
            dc_eval_e m = dc_targeting_eval(op, t, &c->items[i]);

            if (m == DC_EVAL_ERROR)
                return DC_EVAL_NO_MATCH;
            if (is_and_op(op))
                r = r && m == DC_EVAL_MATCH;
            else if (is_or_op(op))
                r = r || m == DC_EVAL_MATCH;
        }
        return result(r);
    }

    /* 2. EXISTS / NOT_EXISTS read only presence; a non-bool value counts as false. */
    if (op == DC_OP_EXISTS || op == DC_OP_NOT_EXISTS) {
        int b = t->kind == DC_KIND_BOOL && t->boolean;

        if (op == DC_OP_EXISTS)
            return result((present && b) || (!present && !b));
        return result((!present && b) || (present && !b));
    }
    if (!present)
        return DC_EVAL_NO_MATCH;

    /* 3. No coercion between kinds: a mismatch is an error. */
    if (t->kind != DC_KIND_LIST && t->kind != c->kind)
        return DC_EVAL_ERROR;

    switch (t->kind) {
    case DC_KIND_STRING:
        return eval_string(op, t, c);
    case DC_KIND_NUMBER:
        return eval_number(op, t->number, c->number);
    case DC_KIND_BOOL:
        return eval_bool(op, t->boolean, c->boolean);
    case DC_KIND_LIST: {
        /* 4. A list targeting value: "any of" for EQUALS/CONTAINS, "none of"
         * for NOT_EQUALS/NOT_CONTAINS, never for other operators. */
        int r = is_and_op(op);

        for (size_t i = 0; i < t->n_items; i++) {
            dc_eval_e m = dc_targeting_eval(op, &t->items[i], c);

            if (is_and_op(op))
                r = r && m == DC_EVAL_MATCH;
            else if (is_or_op(op))
                r = r || m == DC_EVAL_MATCH;
        }
        return result(r);
    }
    default:
        return DC_EVAL_NO_MATCH;
    }
}

const dc_value_t *dc_context_get(const dc_context_t *ctx, const char *key, size_t key_len)
{
    for (size_t i = 0; i < ctx->n_entries; i++) {
        const dc_context_entry_t *e = &ctx->entries[i];

        if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return &e->value;
    }
    return NULL;
}

const dc_value_t dc_unresolved;

int dc_targeting_match(const dc_variation_group_t *vg, const dc_context_t *ctx)
{
    dc_lookups_t lk = {0};

    return dc_targeting_match_cached(vg, ctx, &lk);
}

/* A SEMVER_* targeting whose version was parsed at load, on a string: what
 * dc_targeting_eval() gives, with the context's version parsed once. */
static dc_eval_e eval_semver(const dc_targeting_t *t, const dc_value_t *c, dc_lookups_t *lk)
{
    if (lk->semver_of != c) {
        lk->semver_of = c;
        lk->semver_ok = dc_semver_parse(c->str, c->len, &lk->semver) == 0;
    }
    if (!lk->semver_ok)
        return DC_EVAL_NO_MATCH;
    return semver_result(t->op, dc_semver_cmp(&lk->semver, t->semver));
}

int dc_targeting_outcome(const dc_targeting_t *t, const dc_context_t *ctx, dc_lookups_t *lk)
{
    const dc_value_t *c;
    dc_eval_e m;

    switch (t->key_kind) {
    case DC_KEY_USERS:
        c = ctx->visitor;
        break;
    case DC_KEY_PROVIDER:
        c = NULL;
        break;
    default:
        if (!lk->vals)
            c = dc_context_get(ctx, t->key, t->key_len);
        else if ((c = lk->vals[t->key_id]) == DC_UNRESOLVED)
            c = lk->vals[t->key_id] = dc_context_get(ctx, t->key, t->key_len);
    }
    if (!c && t->op != DC_OP_EXISTS && t->op != DC_OP_NOT_EXISTS)
        return DC_OUTCOME_ABSENT;
    if (t->set && c && c->kind == DC_KIND_STRING) /* EQUALS strings: the set */
        m = dc_strset_has(t->set, c->folded, c->folded_len) == (t->op == DC_OP_EQUALS)
                ? DC_EVAL_MATCH
                : DC_EVAL_NO_MATCH;
    else if (t->semver && c && c->kind == DC_KIND_STRING)
        m = eval_semver(t, c, lk);
    else
        m = dc_targeting_eval(t->op, &t->value, c);
    if (m == DC_EVAL_ERROR)
        return DC_OUTCOME_ERROR;
    return m == DC_EVAL_MATCH ? DC_OUTCOME_MATCH : DC_OUTCOME_NO_MATCH;
}

/* The groups (an OR of ANDs). A key absent ends its group; a type error anywhere is no
 * match at all, so to_the_end evaluates each group to its end. Otherwise a group stops at
 * its first miss: an error after it could only turn a match into none, so it is looked for
 * (to the end) only when a group matched. Most groups miss: a country, a platform.
 * dc_targeting_run() is the same walk over a program, with each outcome remembered. */
static int match_groups(const dc_variation_group_t *vg, const dc_context_t *ctx,
                        dc_lookups_t *lk, int to_the_end)
{
    const dc_targeting_group_t *group = vg->groups, *groups_end = group + vg->n_groups;
    int any = 0, cut = 0;

    for (; group < groups_end; group++) {
        const dc_targeting_t *t = group->targetings, *end = t + group->n_targetings;
        int matched = t < end;

        for (; t < end; t++) {
            int o;

            if (t->key_kind == DC_KEY_ALL_USERS)
                continue;
            o = dc_targeting_outcome(t, ctx, lk);
            if (o == DC_OUTCOME_ABSENT) {
                matched = 0;
                break;
            }
            if (o == DC_OUTCOME_ERROR)
                return 0;
            if (o == DC_OUTCOME_NO_MATCH) {
                matched = 0;
                if (!to_the_end) {
                    cut |= t + 1 < end;
                    break;
                }
            }
        }
        any |= matched;
    }
    return any && cut ? match_groups(vg, ctx, lk, 1) : any;
}

int dc_targeting_match_groups(const dc_variation_group_t *vg, const dc_context_t *ctx,
                              dc_lookups_t *lk)
{
    return match_groups(vg, ctx, lk, 0);
}

/* match_groups() over a program: the same outcomes in the same order, and the same cut
 * (whether a group stopped at a miss, into *cut_out).
 * A program is a few words in a row, where match_groups reads a group and a targeting
 * each (their cache lines and the fs_all_users test); the targeting itself is read only
 * the first time its tid is evaluated for the visitor. */
static inline int run(const uint32_t *program, const dc_context_t *ctx, dc_lookups_t *lk,
                      int to_the_end, int *cut_out)
{
    const dc_targeting_t *const *by_tid = lk->by_tid;
    uint8_t *outcomes = lk->outcomes;
    const uint32_t *p = program + 1, *end;
    uint32_t n_groups = program[0];
    int any = 0, cut = 0;

    for (uint32_t g = 0; g < n_groups; g++, p = end) {
        int matched = 1;

        for (end = p + 1 + *p, p++; p < end; p++) {
            int o = outcomes[*p];

            if (o == DC_OUTCOME_UNKNOWN)
                o = outcomes[*p] = (uint8_t)dc_targeting_outcome(by_tid[*p], ctx, lk);
            if (o == DC_OUTCOME_MATCH)
                continue;
            if (o == DC_OUTCOME_ERROR)
                return 0;
            matched = 0;
            if (o == DC_OUTCOME_ABSENT)
                break;
            if (!to_the_end) {
                cut |= p + 1 < end;
                break;
            }
        }
        any |= matched;
    }
    *cut_out = cut;
    return any;
}

int dc_targeting_run(const uint32_t *program, const dc_context_t *ctx, dc_lookups_t *lk)
{
    int cut, any = run(program, ctx, lk, 0, &cut);

    return any && cut ? run(program, ctx, lk, 1, &cut) : any;
}

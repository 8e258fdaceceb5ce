/*
 * dc_targeting: does a visitor match a variation group's targeting?
 *
 * The rules are the Flagship decision-api's, including its quirks, so that
 * our decisions agree with it for the same file, visitor and context (see
 * spec/DECISION-API.md section 4): groups are OR-ed, targetings inside a
 * group AND-ed; fs_all_users is neutral, fs_users compares the visitor id; a
 * missing key fails its group; a type mismatch is an *error* that fails the
 * whole variation group, even if another group matched.
 */
#ifndef DC_TARGETING_H
#define DC_TARGETING_H

#include "dc_config.h"
#include "dc_value.h"

typedef struct {
    const char *key;
    size_t key_len;
    dc_value_t value;
} dc_context_entry_t;

typedef struct {
    const dc_context_entry_t *entries;
    size_t n_entries;
    const dc_value_t *visitor; /* the visitor id as a string value, for fs_users */
} dc_context_t;

typedef enum { DC_EVAL_NO_MATCH = 0, DC_EVAL_MATCH = 1, DC_EVAL_ERROR = -1 } dc_eval_e;

/* One operator on a targeting value T and a context value C (NULL: key absent). */
dc_eval_e dc_targeting_eval(dc_operator_e op, const dc_value_t *t, const dc_value_t *c);

/* 1 when the visitor matches the group's targeting, 0 otherwise (errors included). */
int dc_targeting_match(const dc_variation_group_t *vg, const dc_context_t *ctx);

/* What dc_targeting_match_cached() looks up or parses once per visitor, not
 * once per targeting: each context key's value, and the version a SEMVER_*
 * targeting compares (one remembered: visitors have one app version). */
typedef struct {
    const dc_value_t **vals; /* by key_id (dc_index_n_keys()), each DC_UNRESOLVED at first */
    /* With vals: each distinct targeting's outcome by tid (dc_index_n_targetings()), 0 at
     * first; NULL: none remembered. */
    uint8_t *outcomes;
    /* With outcomes: 1 + each distinct variation group targeting's match, by
     * targeting_id (dc_index_n_group_targetings()), 0 at first. */
    uint8_t *matches;
    /* With matches: the targeting of each tid (dc_index_by_tid()), for the programs. */
    const dc_targeting_t *const *by_tid;
    const dc_value_t *semver_of; /* the context value parsed into semver, NULL: none yet */
    int semver_ok;               /* whether it was a valid version */
    dc_semver_t semver;
} dc_lookups_t;

/* What one targeting gives a visitor, as lk->outcomes remembers it: 0 not known yet, or an
 * outcome of dc_eval_e, or that the key is absent. Every outcome but a match has
 * DC_OUTCOME_MISSED set, and only a match bit 0: an AND of two is a match when the AND of
 * their outcomes has bit 0, and known not to be when their OR has DC_OUTCOME_MISSED. */
enum { DC_OUTCOME_UNKNOWN = 0, DC_OUTCOME_MATCH = 1, DC_OUTCOME_MISSED = 2,
       DC_OUTCOME_NO_MATCH = 2, DC_OUTCOME_ERROR = 6, DC_OUTCOME_ABSENT = 10 };

/* A SEMVER_* operator's outcome as a bit per comparison of the visitor's version with the
 * targeting's: bit 0 when it sorts before, bit 1 the same, bit 2 after. */
static inline unsigned dc_semver_op_bits(dc_operator_e op)
{
    switch (op) {
    case DC_OP_SEMVER_EQUALS: return 2;
    case DC_OP_SEMVER_NOT_EQUALS: return 5;
    case DC_OP_SEMVER_GREATER_THAN: return 4;
    case DC_OP_SEMVER_LOWER_THAN: return 1;
    case DC_OP_SEMVER_GREATER_THAN_OR_EQUALS: return 6;
    default: return 3; /* DC_OP_SEMVER_LOWER_THAN_OR_EQUALS */
    }
}

extern const dc_value_t dc_unresolved;
#define DC_UNRESOLVED (&dc_unresolved)

/* dc_targeting_match_cached()'s evaluation of the groups, without vg->everyone or
 * lk->matches. */
int dc_targeting_match_groups(const dc_variation_group_t *vg, const dc_context_t *ctx,
                              dc_lookups_t *lk);
/* One targeting's DC_OUTCOME_* for the visitor (not remembered: the caller does). */
int dc_targeting_outcome(const dc_targeting_t *t, const dc_context_t *ctx, dc_lookups_t *lk);
/* The same from the variation group's program (dc_index.h), with lk->outcomes and by_tid. */
int dc_targeting_run(const uint32_t *program, const dc_context_t *ctx, dc_lookups_t *lk);

/* dc_targeting_match_cached() of a group that is not for everyone, from its program
 * (dc_variation_group_t.program) and targeting_id. */
static inline int dc_program_match(const uint32_t *p, uint32_t targeting_id,
                                   const dc_variation_group_t *vg, const dc_context_t *ctx,
                                   dc_lookups_t *lk)
{
    uint8_t *m;

    if (!lk->matches)
        return dc_targeting_match_groups(vg, ctx, lk);
    if (p[0] == 1) {
        /* One group (an AND), most often of one targeting: a miss or an error is no match,
         * with nothing to cut, and nothing to remember but the outcomes. */
        for (const uint32_t *t = p + 2, *end = t + p[1]; t < end; t++) {
            unsigned o = lk->outcomes[*t];

            if (o == DC_OUTCOME_UNKNOWN)
                o = lk->outcomes[*t] = (uint8_t)dc_targeting_outcome(lk->by_tid[*t], ctx, lk);
            if (o != DC_OUTCOME_MATCH)
                return 0;
        }
        return 1;
    }
    /* campaigns of a theme (VIPs, an e-mail domain) repeat whole targetings */
    m = &lk->matches[targeting_id];
    if (!*m)
        *m = (uint8_t)(1 + dc_targeting_run(p, ctx, lk));
    return *m - 1;
}

/* dc_targeting_match() with lk, which starts as {.vals, .outcomes, .matches, .by_tid}: every
 * vals[i] DC_UNRESOLVED, every outcomes[i] and matches[i] 0 (outcomes and matches may be
 * NULL, then by_tid too). Inline: dc_decide asks it of every candidate campaign's groups,
 * and most are answered by everyone or by lk->matches, without a call. */
static inline int dc_targeting_match_cached(const dc_variation_group_t *vg,
                                            const dc_context_t *ctx, dc_lookups_t *lk)
{
    return vg->everyone || dc_program_match(vg->program, vg->targeting_id, vg, ctx, lk);
}

const dc_value_t *dc_context_get(const dc_context_t *ctx, const char *key, size_t key_len);

#endif

/*
 * dc_index: which campaigns a visitor's context can possibly match, found
 * without evaluating the targeting of the others.
 *
 * Built once per snapshot (dc_config_parse). A targeting group (an AND) that
 * holds a targeting "EQUALS a string or a list of strings" on a context key,
 * or on fs_users, can only match a visitor whose value for that key (or whose
 * id) folds to one of those strings: the group is filed under each of them.
 * A campaign is filed under the strings of all its groups when every group of
 * every variation group has such a targeting; otherwise (fs_all_users alone,
 * NOT_EQUALS, CONTAINS, numbers, semver, booleans...) it is a candidate for
 * every visitor. Candidates are a superset of the campaigns that match:
 * dc_decide still evaluates the targeting of each one, so decisions are the
 * same as a scan of every campaign, in the file's order.
 *
 * It also gives every EQUALS / NOT_EQUALS on strings a sorted copy of their
 * folded forms, so that a visitor's string is compared by length first, and
 * a long list (fs_users allow lists) by a binary search (dc_strset_has),
 * instead of an evaluation per element; files those sets under their strings
 * too, so that a decision finds the outcome of all of them on a key by one
 * lookup of the visitor's value (dc_index_seed); and a SEMVER_* targeting its version
 * parsed (dc_targeting_t.semver), the versions of a key sorted, so that a decision finds
 * the outcome of every SEMVER_* on it from its visitor's version's rank among them (the
 * tids seeded together numbered side by side: seeding writes ranges); a variation group targeting fs_all_users
 * alone is marked as matching everyone (dc_variation_group_t.everyone); and
 * targetings of the same key, operator and value one number
 * (dc_targeting_t.tid), and variation groups with the same targeting groups
 * one number (dc_variation_group_t.targeting_id), so that a decision
 * evaluates each once (dc_lookups_t.outcomes and .matches); and each variation
 * group that is not for everyone its targeting as a program of those numbers
 * (dc_variation_group_t.program: the number of groups, then each group's
 * number of targetings and their tids; fs_all_users, which is neutral, and
 * groups without targetings, which never match, left out), which a decision
 * walks instead of the groups and targetings themselves when an outcome is not
 * known yet; and the walk itself (dc_walk_t): what a decision reads of each
 * candidate campaign (its groups' outcomes, 32 bytes) and of the group it
 * serves (hash, thresholds, variations, 32 bytes) side by side, so that the
 * several hundred candidates of a big file are decided from a cache line or
 * two each, with few branches that depend on the visitor, instead of the
 * campaign's, the group's and its bucket table's lines.
 */
#ifndef DC_INDEX_H
#define DC_INDEX_H

#include "dc_config.h"
#include "dc_targeting.h"

#include <apr_pools.h>
#include <stdint.h>

/* Builds the index of cfg's campaigns in its arena; also sets the targetings' string sets
 * and versions, and the variation groups' everyone. */
dc_index_t *dc_index_build(dc_arena_t *mem, const dc_config_t *cfg);

/* 64-bit words of a candidate bitmap (one bit per campaign). */
size_t dc_index_words(const dc_index_t *ix);

/* Sets in bits (dc_index_words() words) the campaigns the visitor may match. */
void dc_index_candidates(const dc_index_t *ix, const dc_context_t *ctx, uint64_t *bits);

/* Clears in bits the campaigns whose bucket ranges leave out bucket (0..99). */
void dc_index_in_bucket(const dc_index_t *ix, unsigned bucket, uint64_t *bits);

/* Whether any targeting reads this context key (ix NULL: assume so). */
int dc_index_reads(const dc_index_t *ix, const char *key, size_t key_len);

/* Number of distinct context keys targetings read (dc_targeting_t.key_id < this). */
size_t dc_index_n_keys(const dc_index_t *ix);

/* Number of distinct targetings (dc_targeting_t.tid < this): same key, operator and value. */
size_t dc_index_n_targetings(const dc_index_t *ix);
/* The first targeting of each tid (dc_index_n_targetings() of them), for dc_lookups_t.by_tid. */
const dc_targeting_t *const *dc_index_by_tid(const dc_index_t *ix);
/* Number of distinct variation group targetings (dc_variation_group_t.targeting_id < this). */
size_t dc_index_n_group_targetings(const dc_index_t *ix);

/* Whether any targeting or variation group targeting is repeated (fs_all_users aside):
 * without, remembering outcomes for a decision costs more than it saves (a file of a few
 * campaigns), and dc_decide evaluates each group as it comes. */
int dc_index_has_repeats(const dc_index_t *ix);

/* Sets in lk->outcomes (with lk->vals, as dc_decide starts them) the outcome of every
 * EQUALS / NOT_EQUALS on a string set whose key (or the visitor id) the context holds as a
 * string: found in the set, or not, by one lookup of the value per key, instead of a search
 * of each set. */
void dc_index_seed(const dc_index_t *ix, const dc_context_t *ctx, dc_lookups_t *lk);

/* A variation group as dc_decide serves it (32 bytes, two to a cache line, in the file's
 * order): which variation it gives a bucket, without reading the group itself. */
typedef struct {
    /* Byte i (i < n_variations, at most 8): the first bucket past variation i's, so that
     * bucket z's variation is the number of bytes at or below z (dc_walk_variation); the
     * bytes after them 127. For up to eight variations, this is dc_allocate() for every
     * bucket (walk_thresholds says why). */
    uint64_t thresholds;
    const dc_variation_t *variations;
    uint32_t hash;         /* the allocation hash after the group's id (id_hash.h) */
    uint32_t program;      /* where its program starts in dc_walk_t.programs; 0: everyone */
    uint32_t targeting_id; /* dc_variation_group_t.targeting_id */
    uint16_t id_len;       /* id_hash.len */
    uint8_t n_variations;  /* at most 255 (then DC_WALK_SLOW) */
    uint8_t flags;         /* DC_WALK_SLOW */
} dc_walk_group_t;

/* The variation is dc_allocate()'s of the group itself: an id that leaves bytes to carry
 * into the visitor's (a length not a multiple of 4; Flagship's ids are 20 bytes), an id
 * past 64 KiB, or more variations than the thresholds hold. */
#define DC_WALK_SLOW 1u

/* A campaign as dc_decide selects its variation group (32 bytes, in the file's order):
 * group g (g < 4) matches when the outcomes of both its slots are DC_OUTCOME_MATCH. A slot
 * is a tid, dc_walk_t.always (for what is left of an AND of fewer than two, and for
 * everyone), .never (for no group), or .group_slots + targeting_id: the outcome of a
 * variation group targeting that is more than an AND of two (the program's, once run). So
 * a decision knows which group is the first that matches from eight bytes, without a
 * branch on each group. */
typedef struct {
    uint16_t slots[4][2];
    uint32_t first;    /* its first group in dc_walk_t.groups */
    uint32_t n_groups; /* up to 4 in slots; more: DC_WALK_GROUPS */
    uint8_t flags;     /* DC_WALK_AB, DC_WALK_GROUPS */
    uint8_t unused[7];
} dc_walk_campaign_t;

#define DC_WALK_AB 1u     /* the campaign's type is "ab" (one visitor one test) */
#define DC_WALK_GROUPS 2u /* no slots (more than four groups, slots past 16 bits, or no
                           * outcome remembered: dc_index_has_repeats): each group's program is
                           * run in turn, as dc_targeting_match_cached() */

typedef struct {
    const dc_walk_campaign_t *campaigns;    /* as cfg->campaigns */
    const dc_walk_group_t *groups;          /* every campaign's, in the file's order */
    const dc_variation_group_t *const *vgs; /* the same groups themselves */
    const uint32_t *programs; /* the programs (dc_variation_group_t.program) in one array */
    /* The outcomes a decision keeps (dc_lookups_t.outcomes): the tids', then always and never,
     * then group_slots + each targeting_id's; n_outcomes in all. */
    uint32_t always, never, group_slots;
    size_t n_outcomes;
} dc_walk_t;

const dc_walk_t *dc_index_walk(const dc_index_t *ix);

/* The variation of bucket z (0..99) in a group's thresholds: n_variations or more for none.
 * The eight bytes compared at once: each lane's 0x80 + z - threshold keeps its high bit
 * exactly when z >= threshold, and never borrows from the next (both are below 128). */
static inline unsigned dc_walk_variation(uint64_t thresholds, unsigned z)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t at_or_below = ((ones * z) | highs) - thresholds;

    return (unsigned)((((at_or_below & highs) >> 7) * ones) >> 56);
}

/* Counts for the log and the tests: campaigns evaluated for everyone, index entries. */
size_t dc_index_n_always(const dc_index_t *ix);
size_t dc_index_n_entries(const dc_index_t *ix);

/* Whether the folded string s is in the set. */
int dc_strset_has(const dc_strset_t *set, const char *s, size_t len);

#endif

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
 * parsed (dc_targeting_t.semver); a variation group targeting fs_all_users
 * alone is marked as matching everyone (dc_variation_group_t.everyone); and
 * targetings of the same key, operator and value one number
 * (dc_targeting_t.tid), and variation groups with the same targeting groups
 * one number (dc_variation_group_t.targeting_id), so that a decision
 * evaluates each once (dc_lookups_t.outcomes and .matches); and each variation
 * group that is not for everyone its targeting as a program of those numbers
 * (dc_variation_group_t.program: the number of groups, then each group's
 * number of targetings and their tids; fs_all_users, which is neutral, and
 * groups without targetings, which never match, left out), which a decision
 * walks instead of the groups and targetings themselves.
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
 * without, remembering outcomes for a decision costs more than it saves. */
int dc_index_has_repeats(const dc_index_t *ix);

/* Sets in lk->outcomes (with lk->vals, as dc_decide starts them) the outcome of every
 * EQUALS / NOT_EQUALS on a string set whose key (or the visitor id) the context holds as a
 * string: found in the set, or not, by one lookup of the value per key, instead of a search
 * of each set. */
void dc_index_seed(const dc_index_t *ix, const dc_context_t *ctx, dc_lookups_t *lk);

/* Counts for the log and the tests: campaigns evaluated for everyone, index entries. */
size_t dc_index_n_always(const dc_index_t *ix);
size_t dc_index_n_entries(const dc_index_t *ix);

/* Whether the folded string s is in the set. */
int dc_strset_has(const dc_strset_t *set, const char *s, size_t len);

#endif

/*
 * dc_engine: which campaigns and variations a visitor gets.
 *
 * The steps are the Flagship decision-api's (spec/DECISION-API.md 5.2):
 * targeting picks the first matching variation group of each campaign; the
 * campaign's bucket ranges admit the visitor by MurmurHash3 of the visitor
 * id; the variation comes from a sticky assignment when one exists, else from
 * the hash of variation group id + visitor id (or base64 decision group)
 * walked over cumulative allocations. One visitor one test (1V1T) and
 * experience continuity (XPC) read and write assignments in the store.
 *
 * dc_decide() allocates nothing when no store is in use beyond what the
 * caller gives it, so the hot path is a hash, a few comparisons and a loop.
 */
#ifndef DC_ENGINE_H
#define DC_ENGINE_H

#include "dc_config.h"
#include "dc_store.h"
#include "dc_targeting.h"

#include <apr_pools.h>

typedef struct {
    const dc_context_t *context; /* includes the visitor id value for fs_users */
    const char *visitor_id;
    size_t visitor_id_len;
    const char *anonymous_id; /* NULL when the request had none */
    size_t anonymous_id_len;
    const char *decision_group; /* base64 of the request's decision_group, NULL when none */
    size_t decision_group_len;
    int trigger_hit;
} dc_visitor_t;

typedef struct {
    const dc_campaign_t *campaign;
    const dc_variation_group_t *group;
    const dc_variation_t *variation;
} dc_decision_t;

typedef enum {
    DC_CHOICE_OK = 0,
    DC_CHOICE_UNTRACKED,         /* allocations sum below the visitor's bucket */
    DC_CHOICE_DELETED_VARIATION  /* the sticky assignment names a variation that is gone */
} dc_choice_e;

typedef struct {
    dc_decision_t *decisions; /* caller-provided, capacity cfg->n_campaigns */
    size_t n_decisions;
    dc_choice_e single_error; /* with a single campaign: why it was not served */
    int cache_on;
    int store_degraded;       /* a load failed: decided from the hash alone */
    dc_assignments_t save_visitor, save_anonymous, save_group;
} dc_outcome_t;

/*
 * Decides for one visitor. only: restrict to that campaign (the single
 * campaign route), or NULL. store may be NULL. Assignments to save are left
 * in out->save_*; dc_engine_save() writes them (after the answer is built).
 */
void dc_decide(apr_pool_t *p, const dc_config_t *cfg, dc_store_t *store, const char *env_id,
               const dc_visitor_t *v, const dc_campaign_t *only, dc_outcome_t *out);

/* Writes the outcome's assignments; returns the number of failed saves. */
int dc_engine_save(apr_pool_t *p, dc_store_t *store, const char *env_id, const dc_visitor_t *v,
                   const dc_outcome_t *out, int64_t now_ms);

/* The variation the allocation walk gives bucket z, or NULL (untracked). */
const dc_variation_t *dc_allocate(const dc_variation_group_t *vg, unsigned z);

/* Whether the visitor id falls in one of the campaign's bucket ranges. */
int dc_in_bucket_ranges(const dc_campaign_t *c, unsigned bucket);

/* Standard base64 with padding, into p (the decision group's hash key). */
char *dc_base64(apr_pool_t *p, const char *data, size_t len, size_t *out_len);

#endif

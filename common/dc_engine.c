#include "dc_engine.h"
#include "dc_hash.h"
#include "dc_index.h"
#include "dc_log.h"

#include <apr_base64.h>
#include <string.h>

const dc_variation_t *dc_allocate(const dc_variation_group_t *vg, unsigned z)
{
    double sum = 0;

    if (vg->n_variations == 1 && vg->variations[0].allocation == 100)
        return &vg->variations[0];
    for (size_t i = 0; i < vg->n_variations; i++) {
        sum += vg->variations[i].allocation;
        if ((double)z < sum)
            return &vg->variations[i];
    }
    return NULL;
}

int dc_in_bucket_ranges(const dc_campaign_t *c, unsigned bucket)
{
    for (size_t i = 0; i < c->n_ranges; i++)
        if (c->ranges[i].from <= (double)bucket && (double)bucket < c->ranges[i].to)
            return 1;
    return 0;
}

char *dc_base64(apr_pool_t *p, const char *data, size_t len, size_t *out_len)
{
    char *out = apr_palloc(p, (size_t)apr_base64_encode_len((int)len));
    int n = apr_base64_encode(out, data, (int)len);

    *out_len = n > 0 ? (size_t)n - 1 : 0; /* the count includes the NUL */
    return out;
}

static const dc_variation_t *variation_by_id(const dc_variation_group_t *vg,
                                             const dc_assignment_t *a)
{
    if (!a)
        return NULL;
    for (size_t i = 0; i < vg->n_variations; i++)
        if (vg->variations[i].id_len == a->variation_id_len &&
            memcmp(vg->variations[i].id, a->variation_id, a->variation_id_len) == 0)
            return &vg->variations[i];
    return NULL;
}

typedef struct {
    dc_assignments_t visitor, anonymous, group;
} loaded_t;

static void load_assignments(apr_pool_t *p, dc_store_t *store, const char *env_id,
                             const dc_visitor_t *v, int xpc, loaded_t *l, dc_outcome_t *out)
{
    struct {
        const char *id;
        size_t len;
        dc_assignments_t *into;
    } loads[3] = {
        {v->visitor_id, v->visitor_id_len, &l->visitor},
        {xpc ? v->anonymous_id : NULL, v->anonymous_id_len, &l->anonymous},
        {v->decision_group, v->decision_group_len, &l->group},
    };

    for (int i = 0; i < 3; i++) {
        if (!loads[i].id || loads[i].len == 0)
            continue;
        if (dc_store_load(store, p, env_id, loads[i].id, loads[i].len, loads[i].into) ==
            DC_STORE_UNAVAILABLE) {
            /* Decide from the hash alone rather than fail the request: the
             * store's own health and log say it is degraded. */
            memset(loads[i].into, 0, sizeof(*loads[i].into));
            out->store_degraded = 1;
        }
    }
}

/* dc_allocate() of the visitor's bucket z in a hashed group: from the snapshot's table of
 * each bucket's variation, or its running sums (one cache line, not one per variation). */
static const dc_variation_t *allocate_bucket(const dc_variation_group_t *vg, unsigned z)
{
    if (vg->variation_at) {
        unsigned i = vg->variation_at[z];

        return i == DC_NO_VARIATION ? NULL : &vg->variations[i];
    }
    for (size_t i = 0; i < vg->n_variations; i++)
        if ((double)z < vg->cumulative[i])
            return &vg->variations[i];
    return NULL;
}

/* dc_allocate() of the visitor's bucket in the group, hashed only when the variation
 * depends on it: not for no variation, nor when the first takes every bucket (0..99). */
static const dc_variation_t *allocate(const dc_variation_group_t *vg, dc_hash_key_t *key)
{
    if (!vg->hashed)
        return vg->n_variations ? &vg->variations[0] : NULL;
    return allocate_bucket(vg, dc_bucket_after_key(&vg->id_hash, key));
}

/* dc_in_bucket_ranges() from the snapshot's bitmap of the 100 buckets. */
static inline int in_buckets(const dc_campaign_t *c, unsigned bucket)
{
    return (int)(c->buckets[bucket / 64] >> (bucket % 64) & 1);
}

/* The campaign's first variation group the visitor matches, into *selected: returns 1, or 0. */
static inline size_t select_group(const dc_campaign_t *c, const dc_context_t *ctx,
                                  dc_lookups_t *lk, const dc_variation_group_t **selected)
{
    /* bounds in locals: the lookups' byte stores may alias anything the compiler
     * would otherwise load again after each */
    for (const dc_variation_group_t *g = c->groups, *end = g + c->n_groups; g < end; g++) {
        if (dc_targeting_match_cached(g, ctx, lk)) {
            *selected = g;
            return 1;
        }
    }
    return 0;
}

/* Whether the walk's group gi matches, as dc_targeting_match_cached() says, remembered in
 * its slot when it has one of its own. */
static int walk_group_match(const dc_walk_t *walk, size_t gi, const dc_context_t *ctx,
                            dc_lookups_t *lk)
{
    const dc_walk_group_t *g = &walk->groups[gi];
    int m;

    if (!g->program)
        return 1;
    m = dc_program_match(walk->programs + g->program, g->targeting_id, walk->vgs[gi], ctx, lk);
    if (lk->outcomes)
        lk->outcomes[walk->group_slots + g->targeting_id] =
            m ? DC_OUTCOME_MATCH : DC_OUTCOME_NO_MATCH;
    return m;
}

/* The first of the campaign's groups the visitor matches, 4 for none: from the outcomes of
 * their slots, the program of a group run only when an outcome it needs is not known yet. */
static inline unsigned walk_first_match(const dc_walk_t *walk, const dc_walk_campaign_t *wc,
                                        const dc_context_t *ctx, dc_lookups_t *lk)
{
    const uint8_t *o = lk->outcomes;

    for (unsigned g = 0, n = wc->n_groups; g < n; g++) {
        unsigned a = o[wc->slots[g][0]], b = o[wc->slots[g][1]];

        if ((a | b) & DC_OUTCOME_MISSED)
            continue;
        if ((a & b & DC_OUTCOME_MATCH) || walk_group_match(walk, wc->first + g, ctx, lk))
            return g;
    }
    return 4;
}

void dc_decide(apr_pool_t *p, const dc_config_t *cfg, dc_store_t *store, const char *env_id,
               const dc_visitor_t *v, const dc_campaign_t *only, dc_outcome_t *out)
{
    const dc_variation_group_t *selected_stack[64];
    const dc_variation_group_t **selected = selected_stack;
    size_t n_selected = 0, n_candidates = only ? 1 : cfg->n_campaigns;
    int multi_variation = 0, ab_added = 0, xpc, any_prev_ab = 0, one_test, cache_on;
    dc_decision_t *decided;
    unsigned visitor_bucket;
    dc_hash_key_t alloc_key;
    loaded_t l;
    dc_assignments_view_t visitor, anonymous, group, save_visitor, save_anonymous, save_group;

    out->n_decisions = 0;
    out->single_error = DC_CHOICE_OK;
    out->cache_on = 0;
    out->store_degraded = 0;
    memset(&out->save_visitor, 0, sizeof(out->save_visitor));
    memset(&out->save_anonymous, 0, sizeof(out->save_anonymous));
    memset(&out->save_group, 0, sizeof(out->save_group));
    memset(&l, 0, sizeof(l));

    visitor_bucket = dc_bucket(v->visitor_id, v->visitor_id_len);
    /* the allocation hash's visitor part, mixed once for all the groups */
    if (v->decision_group)
        dc_hash_key_init(&alloc_key, v->decision_group, v->decision_group_len);
    else
        dc_hash_key_init(&alloc_key, v->visitor_id, v->visitor_id_len);
    one_test = cfg->enabled_1v1t;
    decided = out->decisions;

    /* 1. Targeting: the first matching variation group of each campaign. */
    if (only) {
        dc_lookups_t lk = {0};

        n_selected = select_group(only, v->context, &lk, selected);
        multi_variation = n_selected && selected[0]->n_variations > 1;
    } else {
        uint64_t bits_stack[16], *bits = bits_stack;
        const dc_value_t *vals_stack[32], **vals = vals_stack;
        uint8_t outcomes_stack[4096], *outcomes = outcomes_stack;
        dc_lookups_t lk = {0};
        size_t n_words = dc_index_words(cfg->index), n_keys = dc_index_n_keys(cfg->index);
        /* the walk's arrays in locals: the outcomes' byte stores may alias their homes */
        const dc_walk_t *walk = dc_index_walk(cfg->index);
        const dc_walk_campaign_t *wcs = walk->campaigns;
        const dc_walk_group_t *groups = walk->groups;
        const dc_variation_group_t *const *vgs = walk->vgs;
        const dc_campaign_t *campaigns = cfg->campaigns;
        const dc_context_t *ctx = v->context;
        /* the walk's outcomes, then the group targetings' matches (dc_lookups_t) */
        size_t n_remembered = walk->n_outcomes + dc_index_n_group_targetings(cfg->index);
        int remember = dc_index_has_repeats(cfg->index);
        /* Without a store, a campaign whose bucket ranges exclude the visitor can
         * change nothing (no assignment to load, 1V1T counts served campaigns
         * only): skip its targeting. With one, whether any campaign matched
         * decides whether assignments are loaded, so every candidate is
         * evaluated as before. */
        int skip_by_bucket = dc_store_is_none(store);
        /* Nor is there an assignment to load first then: each campaign's group is served as
         * it is selected, while its lines are in the cache (steps 3-5 below without a store:
         * 1V1T serves the first "ab" campaign, the buckets were checked by the index). */
        int serve_now = skip_by_bucket;
        unsigned multi = 0, ab = (unsigned)ab_added, one = one_test != 0;
        /* every group's variation dc_allocate()'s own, for a key too long */
        unsigned all_slow = !dc_hash_key_blocks(&alloc_key);

        if (n_words > sizeof(bits_stack) / sizeof(bits_stack[0]))
            bits = apr_palloc(p, n_words * sizeof(*bits));
        if (n_keys > sizeof(vals_stack) / sizeof(vals_stack[0]))
            vals = apr_palloc(p, n_keys * sizeof(*vals));
        /* each key targetings read is looked up once for this visitor, when first read */
        for (size_t k = 0; k < n_keys; k++)
            vals[k] = DC_UNRESOLVED;
        lk.vals = vals;
        /* each targeting, and variation group targeting, evaluated once; the campaigns' slots
         * read their outcomes */
        if (remember) {
            if (n_remembered > sizeof(outcomes_stack))
                outcomes = apr_palloc(p, n_remembered);
            memset(outcomes, 0, n_remembered);
            outcomes[walk->always] = DC_OUTCOME_MATCH;
            outcomes[walk->never] = DC_OUTCOME_NO_MATCH;
            lk.outcomes = outcomes;
            lk.matches = outcomes + walk->n_outcomes;
            lk.by_tid = dc_index_by_tid(cfg->index);
            dc_index_seed(cfg->index, ctx, &lk);
        }
        /* Only the campaigns the context can match (dc_index.h), in file order. */
        dc_index_candidates(cfg->index, ctx, bits);
        if (skip_by_bucket)
            dc_index_in_bucket(cfg->index, visitor_bucket, bits);
        if (!serve_now && n_candidates > sizeof(selected_stack) / sizeof(selected_stack[0]))
            selected = apr_palloc(p, n_candidates * sizeof(*selected));
        /* Each candidate is decided with few branches that depend on the visitor: a branch
         * like that mispredicts for a good part of several hundred campaigns, and was what
         * cost a decision most. The group is found from the outcomes of its slots, the
         * variation by arithmetic on the walk's bytes, and the answer is written whether it
         * counts or not (no variation for the bucket, 1V1T), the count going up by one or
         * by zero. */
        for (size_t w = 0; w < n_words; w++) {
            for (uint64_t word = bits[w]; word; word &= word - 1) {
                size_t ci = w * 64 + (size_t)__builtin_ctzll(word);
                const dc_walk_campaign_t *wc = &wcs[ci];
                const dc_walk_group_t *g;
                const dc_variation_group_t *vg;
                const dc_variation_t *chosen;
                size_t gi = wc->first;
                unsigned found, served, is_ab = one & (wc->flags & DC_WALK_AB);

                if (!(wc->flags & DC_WALK_GROUPS)) {
                    unsigned f = walk_first_match(walk, wc, ctx, &lk);

                    found = f < 4;
                    gi += f & 3;
                } else {
                    found = 0;
                    for (size_t end = gi + wc->n_groups; gi < end && !found; gi++)
                        found = walk_group_match(walk, gi, ctx, &lk);
                    gi -= found;
                }
                g = &groups[gi];
                vg = vgs[gi];
                if (!serve_now) {
                    selected[n_selected] = vg;
                    n_selected += found;
                    multi |= found & (g->n_variations > 1);
                    continue;
                }
                if (!found)
                    continue;
                if ((g->flags & DC_WALK_SLOW) | all_slow) {
                    chosen = allocate(vg, &alloc_key);
                    served = chosen != NULL;
                } else {
                    /* dc_bucket_after_key() and dc_allocate() from the walk's own bytes; the
                     * address formed as an integer, as it may be past the variations */
                    unsigned i = dc_walk_variation(
                        g->thresholds, dc_mm3_bucket_after_blocks(g->hash, alloc_key.k[0], alloc_key.len,
                                                                  g->id_len + (uint32_t)alloc_key.len));

                    chosen = (const dc_variation_t *)((uintptr_t)g->variations + i * sizeof(*chosen));
                    served = i < g->n_variations;
                }
                served &= !(is_ab & ab);
                decided->campaign = &campaigns[ci];
                decided->group = vg;
                decided->variation = chosen;
                decided += served;
                ab |= served & is_ab;
            }
        }
        ab_added = (int)ab;
        if (serve_now) {
            out->n_decisions = (size_t)(decided - out->decisions);
            return;
        }
        multi_variation |= (int)multi;
    }
    if (n_selected == 0)
        return;

    /* 2. Sticky assignments, when they can change anything. */
    xpc = cfg->xpc && v->anonymous_id && v->anonymous_id_len > 0;
    out->cache_on = !dc_store_is_none(store) && (multi_variation || cfg->enabled_1v1t || cfg->xpc);
    if (out->cache_on) {
        load_assignments(p, store, env_id, v, xpc, &l, out);
        dc_assignments_view_init(p, &save_visitor, &out->save_visitor, n_selected);
        dc_assignments_view_init(p, &save_anonymous, &out->save_anonymous, n_selected);
        dc_assignments_view_init(p, &save_group, &out->save_group, n_selected);
    }
    dc_assignments_view_init(p, &visitor, &l.visitor, 0);
    dc_assignments_view_init(p, &anonymous, &l.anonymous, 0);
    dc_assignments_view_init(p, &group, &l.group, 0);
    if (cfg->enabled_1v1t) {
        for (size_t i = 0; i < n_selected; i++) {
            const dc_assignment_t *a;

            if (!selected[i]->campaign->is_ab)
                continue;
            a = dc_assignments_view_find(&visitor, selected[i]->id, selected[i]->id_len);
            if (a && a->activated)
                any_prev_ab = 1;
        }
    }

    /* flags and the answer's end in locals: the loop's stores may alias their homes */
    cache_on = out->cache_on;
    for (size_t i = 0; i < n_selected; i++) {
        const dc_variation_group_t *vg = selected[i];
        const dc_campaign_t *c = vg->campaign;
        const dc_assignment_t *s = NULL, *a = NULL, *d = NULL;
        const dc_variation_t *chosen = NULL;
        int is_new = 0, is_new_anonymous = 0;

        /* 3. One visitor one test: at most one "ab" campaign, the activated one first. */
        if (one_test && c->is_ab) {
            const dc_assignment_t *prev = dc_assignments_view_find(&visitor, vg->id, vg->id_len);
            int in_prev = prev && prev->activated;

            if ((any_prev_ab && !in_prev) || ab_added)
                continue;
        }
        /* 4. Campaign traffic. */
        if (!in_buckets(c, visitor_bucket))
            continue;

        /* 5. The variation: an assignment wins over the hash. */
        if (cache_on) {
            s = dc_assignments_view_find(&visitor, vg->id, vg->id_len);
            a = dc_assignments_view_find(&anonymous, vg->id, vg->id_len);
            d = dc_assignments_view_find(&group, vg->id, vg->id_len);
        }
        if (s || a || d) {
            const dc_variation_t *sv = variation_by_id(vg, s);
            const dc_variation_t *dv = variation_by_id(vg, d);
            const dc_variation_t *av = variation_by_id(vg, a);

            if (dv)
                sv = dv;
            if (sv) {
                chosen = sv;
            } else if (av) {
                chosen = av;
                is_new = 1; /* copied from the anonymous id to the visitor id */
            } else {
                if (only)
                    out->single_error = DC_CHOICE_DELETED_VARIATION;
                continue;
            }
        } else {
            chosen = allocate(vg, &alloc_key);
            if (!chosen) {
                if (only)
                    out->single_error = DC_CHOICE_UNTRACKED;
                continue;
            }
            is_new = is_new_anonymous = 1;
        }

        /* 6. What to remember (saved after the answer is built). */
        if (cache_on) {
            int hit = v->trigger_hit;

            if ((hit && !(s && s->activated)) || is_new) {
                dc_assignments_view_set(p, &save_visitor, vg->id, vg->id_len, chosen->id,
                                        chosen->id_len, hit);
                if (v->decision_group)
                    dc_assignments_view_set(p, &save_group, vg->id, vg->id_len, chosen->id,
                                            chosen->id_len, hit);
            }
            if (v->anonymous_id && v->anonymous_id_len &&
                ((hit && !(a && a->activated)) || is_new_anonymous))
                dc_assignments_view_set(p, &save_anonymous, vg->id, vg->id_len, chosen->id,
                                        chosen->id_len, hit);
        }
        decided->campaign = c;
        decided->group = vg;
        decided->variation = chosen;
        decided++;
        if (c->is_ab)
            ab_added = 1;
    }
    out->n_decisions = (size_t)(decided - out->decisions);
}

int dc_engine_save(apr_pool_t *p, dc_store_t *store, const char *env_id, const dc_visitor_t *v,
                   const dc_outcome_t *out, int64_t now_ms)
{
    int failed = 0;

    if (!out->cache_on)
        return 0;
    if (out->save_visitor.n &&
        dc_store_save(store, p, env_id, v->visitor_id, v->visitor_id_len, &out->save_visitor,
                      now_ms) == DC_STORE_UNAVAILABLE)
        failed++;
    if (out->save_anonymous.n && v->anonymous_id &&
        dc_store_save(store, p, env_id, v->anonymous_id, v->anonymous_id_len,
                      &out->save_anonymous, now_ms) == DC_STORE_UNAVAILABLE)
        failed++;
    if (out->save_group.n && v->decision_group &&
        dc_store_save(store, p, env_id, v->decision_group, v->decision_group_len,
                      &out->save_group, now_ms) == DC_STORE_UNAVAILABLE)
        failed++;
    return failed;
}

#include "dc_slot.h"

#include <apr_atomic.h>
#include <stdlib.h>

#define DC_SLOT_GRACE apr_time_from_sec(1)

struct dc_retired {
    dc_retired_t *next;
    dc_config_t *cfg;
    apr_time_t retired_at;
};

int dc_slot_init(dc_slot_t *slot, apr_pool_t *p)
{
    slot->current = NULL;
    slot->retired = NULL;
    slot->generation = 0;
    slot->published_at = 0;
    return apr_thread_mutex_create(&slot->publish_lock, APR_THREAD_MUTEX_DEFAULT, p) ==
                   APR_SUCCESS
               ? 0
               : -1;
}

static void release_retired(dc_slot_t *slot, int all);

/* Releases the retired snapshots once their grace period is over, so that a
 * process does not hold two snapshots until the next publish. Costs a load
 * when nothing is retired, a clock read during the grace period. */
static void tidy(dc_slot_t *slot)
{
    if (!__atomic_load_n(&slot->retired, __ATOMIC_RELAXED) ||
        apr_time_now() - __atomic_load_n(&slot->published_at, __ATOMIC_RELAXED) < DC_SLOT_GRACE)
        return;
    if (apr_thread_mutex_trylock(slot->publish_lock) != APR_SUCCESS)
        return; /* another thread tidies or publishes */
    release_retired(slot, 0);
    apr_thread_mutex_unlock(slot->publish_lock);
}

dc_config_t *dc_slot_acquire(dc_slot_t *slot)
{
    tidy(slot);
    for (;;) {
        dc_config_t *cfg = __atomic_load_n(&slot->current, __ATOMIC_ACQUIRE);

        if (!cfg)
            return NULL;
        apr_atomic_inc32(&cfg->refs);
        if (__atomic_load_n(&slot->current, __ATOMIC_ACQUIRE) == cfg)
            return cfg;
        /* Swapped under us: the old one is retired, not freed, so dropping is safe. */
        dc_config_unref(cfg);
    }
}

static void release_retired(dc_slot_t *slot, int all)
{
    apr_time_t now = apr_time_now();
    dc_retired_t **link = &slot->retired;

    while (*link) {
        dc_retired_t *r = *link;

        if (all || now - r->retired_at >= DC_SLOT_GRACE) {
            __atomic_store_n(link, r->next, __ATOMIC_RELAXED); /* tidy() reads the head */
            dc_config_unref(r->cfg);
            free(r);
        } else {
            link = &r->next;
        }
    }
}

void dc_slot_publish(dc_slot_t *slot, dc_config_t *cfg)
{
    dc_config_t *old;

    apr_thread_mutex_lock(slot->publish_lock);
    old = __atomic_exchange_n(&slot->current, cfg, __ATOMIC_ACQ_REL);
    apr_atomic_inc32(&slot->generation);
    __atomic_store_n(&slot->published_at, apr_time_now(), __ATOMIC_RELAXED);
    release_retired(slot, 0);
    if (old) {
        dc_retired_t *r = malloc(sizeof(*r));

        if (r) {
            r->cfg = old;
            r->retired_at = slot->published_at;
            r->next = slot->retired;
            __atomic_store_n(&slot->retired, r, __ATOMIC_RELAXED);
        }
        /* Out of memory: keep the old snapshot forever rather than risk a reader. */
    }
    apr_thread_mutex_unlock(slot->publish_lock);
}


void dc_slot_clear(dc_slot_t *slot)
{
    dc_config_t *old;

    apr_thread_mutex_lock(slot->publish_lock);
    old = __atomic_exchange_n(&slot->current, NULL, __ATOMIC_ACQ_REL);
    release_retired(slot, 1);
    apr_thread_mutex_unlock(slot->publish_lock);
    dc_config_unref(old);
}

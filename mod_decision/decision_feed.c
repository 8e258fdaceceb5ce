/*
 * A service's config feed in httpd: one poller for the whole server, many
 * readers.
 *
 * On forked MPMs the parent cannot run mod_watchdog, so the poll runs in one
 * child, elected by decision_singleton.c (another child takes over if it
 * exits).
 * It refreshes the service's dc_source (conditional GET with libcurl, or a
 * stat of the local file); dc_source writes every accepted remote config to
 * the last-known-good file itself (temp file + rename). The poller then bumps
 * the service's generation counter in a small anonymous shared-memory segment
 * the parent created in post_config.
 *
 * Every request compares that counter with the generation its process serves:
 * one aligned 32-bit load, no lock. When it moved, one thread of the child
 * (a compare-and-swap elects it, the others keep serving the current
 * snapshot) publishes the new snapshot into the service's dc_slot: the one
 * the poller parsed into the service's share (dc_share.h: shared memory every
 * child maps at the same address, DecisionSharedConfigSize) when it is that
 * generation's, else its own parse of the file. A file that does not parse is
 * logged and the current snapshot stays.
 *
 * The parent loads the initial config (last-known-good, else the local file)
 * before forking, so every child starts with a parsed snapshot and generation
 * 0; any later bump makes it catch up, however late it was forked.
 */
#include "mod_decision.h"

#include "dc_log.h"
#include "dc_share.h"

#include "http_log.h"
#include "mod_watchdog.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

APLOG_USE_MODULE(decision);

apr_status_t decision_feed_shm_create(apr_pool_t *pconf, server_rec *s, unsigned n,
                                      decision_generation_t **gens)
{
    apr_shm_t *shm;
    apr_status_t rv;
    apr_size_t size = (apr_size_t)(n ? n : 1) * sizeof(decision_generation_t);
    uintptr_t base;

    /* Anonymous: inherited by every child, gone with the last process that
     * maps it; apr_shm_create registers its own pconf cleanup, so each
     * restart's segment is released with that generation's pconf. */
    rv = apr_shm_create(&shm, size + 64, NULL, pconf); /* + room to align the base */
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     DCLOGNO(10420) "cannot create %" APR_SIZE_T_FMT
                                    " bytes of shared memory for the config generations",
                     size);
        return rv;
    }
    /* APR keeps its own header at the start of an anonymous segment */
    base = ((uintptr_t)apr_shm_baseaddr_get(shm) + 63) & ~(uintptr_t)63;
    *gens = (decision_generation_t *)base;
    memset(*gens, 0, size);
    return APR_SUCCESS;
}

int decision_feed_load_initial(decision_service_t *svc, apr_pool_t *ptemp)
{
    dc_config_t *cfg;
    char err[512];

    if (dc_source_load_initial(svc->source, &cfg, err, sizeof(err)) < 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, svc->s,
                     DCLOGNO(10421) "%s: no configuration to serve yet (%s); decisions answer "
                                    "503 until the first fetch succeeds",
                     svc->name, err);
        return -1;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, svc->s,
                 DCLOGNO(10422) "%s: serving configuration %s (%" APR_SIZE_T_FMT
                                " campaigns) until the first refresh",
                 svc->name, cfg->digest, cfg->n_campaigns);
    apr_cpystrn(svc->shared->digest, cfg->digest, sizeof(svc->shared->digest));
    dc_slot_publish(&svc->api.slot, cfg);
    return 0;
}

/* A seqlock: readers (any child rendering a page) retry while it is odd. */
static void share_status(decision_service_t *svc)
{
    decision_generation_t *g = svc->shared;

    apr_atomic_inc32(&g->status_seq);
    dc_source_status(svc->source, &g->status);
    g->has_status = 1;
    apr_atomic_inc32(&g->status_seq);
}

void decision_feed_status(void *baton, dc_metrics_extra_t *out)
{
    decision_service_t *svc = baton;
    decision_generation_t *g = svc->shared;
    dc_source_status_t status;
    dc_shipper_stats_t ship;
    int has_status = 0, has_ship = 0;

    for (int tries = 0; tries < 100; tries++) {
        apr_uint32_t seq = __atomic_load_n(&g->status_seq, __ATOMIC_ACQUIRE);

        if (seq & 1)
            continue;
        has_status = g->has_status;
        has_ship = g->has_ship;
        memcpy(&status, &g->status, sizeof(status));
        memcpy(&ship, &g->ship, sizeof(ship));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&g->status_seq, __ATOMIC_RELAXED) == seq)
            break;
        has_status = has_ship = 0;
    }
    /* before the poller's first refresh, the page shows the parent's initial load */
    if (has_status) {
        out->source = status;
        out->has_source = 1;
    }
    dc_shipper_spool_figures(svc->spool, has_ship ? &ship : NULL, out);
}

int decision_feed_parse(void *baton, const char *data, size_t len, dc_config_t **out,
                        dc_config_error_t *err)
{
    decision_service_t *svc = baton;
    apr_uint32_t next;
    int rc;

    if (!svc->share || getpid() == svc->parent)
        return dc_config_parse(data, len, out, err); /* the parent's, before forking */
    /* only the poller bumps the generation: this file will be the next one */
    next = __atomic_load_n(&svc->shared->generation, __ATOMIC_ACQUIRE) + 1;
    rc = dc_share_parse(svc->share, next, data, len, out, err);
    if (rc <= 0) {
        svc->share_warned = 0;
        return rc;
    }
    ap_log_error(APLOG_MARK, svc->share_warned ? APLOG_DEBUG : APLOG_WARNING, 0, svc->s,
                 DCLOGNO(10447) "%s: this configuration is not shared, each child parses its "
                                "own copy: %s%s",
                 svc->name, err->text,
                 strstr(err->text, "needs more") ? " (raise DecisionSharedConfigSize)" : "");
    svc->share_warned = 1;
    return dc_config_parse(data, len, out, err);
}

/*
 * The watchdog's threads outlive pchild (they stop with the process pool, at
 * exit), so a child that gives its snapshots back as pchild goes first waits
 * for a callback that is touching its slot, and keeps the later ones out.
 * Sequentially consistent on both sides: a callback that got in is seen.
 */
static int enter_slot(decision_service_t *svc)
{
    __atomic_add_fetch(&svc->slot_users, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&svc->leaving, __ATOMIC_SEQ_CST))
        return 1;
    __atomic_sub_fetch(&svc->slot_users, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void leave_slot(decision_service_t *svc)
{
    __atomic_sub_fetch(&svc->slot_users, 1, __ATOMIC_SEQ_CST);
}

/* A child gives back its references to shared snapshots as it exits: the
 * counts live on in the other children. */
static apr_status_t leave_share(void *baton)
{
    decision_service_t *svc = baton;

    __atomic_store_n(&svc->leaving, 1, __ATOMIC_SEQ_CST);
    for (int waited = 0; __atomic_load_n(&svc->slot_users, __ATOMIC_SEQ_CST); waited++) {
        if (waited == 2000)
            return APR_SUCCESS; /* a callback is stuck: keep the references */
        apr_sleep(1000);
    }
    dc_slot_clear(&svc->api.slot);
    return APR_SUCCESS;
}

void decision_feed_child_init(decision_service_t *svc, apr_pool_t *pchild)
{
    if (!svc->share)
        return;
    apr_pool_cleanup_register(pchild, svc, leave_share, apr_pool_cleanup_null);
}

/* Every second in every child: an idle child catches up too, and lets go of
 * the snapshots it retired, instead of holding them (and their shared slots)
 * until its next request. */
static apr_status_t tick(int state, void *data, apr_pool_t *p)
{
    decision_service_t *svc = data;
    dc_config_t *cfg;

    if (state == AP_WATCHDOG_STATE_STOPPING || !enter_slot(svc))
        return APR_SUCCESS;
    decision_feed_catch_up(svc);
    if ((cfg = dc_slot_acquire(&svc->api.slot)) != NULL) /* releases the retired ones */
        dc_config_unref(cfg);
    leave_slot(svc);
    return APR_SUCCESS;
}

static apr_status_t poll_source(int state, void *data, apr_pool_t *p)
{
    decision_service_t *svc = data;
    dc_config_t *cfg = NULL;
    apr_uint32_t generation;
    dc_source_result_e result;

    if (state == AP_WATCHDOG_STATE_STOPPING)
        return APR_SUCCESS;
    /* The poller may have run in another child until now (it moves when its
     * child exits): compare with what the children serve, not with what this
     * child's copy of the source saw last. */
    dc_source_set_served(svc->source, svc->shared->digest);
    result = dc_source_refresh(svc->source, &cfg);
    share_status(svc);
    if (result != DC_SOURCE_CHANGED || !cfg)
        return APR_SUCCESS; /* the source logs failures once per streak */
    if (!enter_slot(svc)) {
        /* The child is exiting: the poller that takes over finds the file
         * different from what is served, and publishes it. */
        dc_config_unref(cfg);
        return APR_SUCCESS;
    }
    apr_cpystrn(svc->shared->digest, cfg->digest, sizeof(svc->shared->digest));
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, svc->s,
                 DCLOGNO(10423) "%s: new configuration %s (%" APR_SIZE_T_FMT " campaigns)",
                 svc->name, cfg->digest, cfg->n_campaigns);
    if (svc->share)
        dc_share_publish(svc->share, cfg); /* none, when cfg is this child's own */
    dc_slot_publish(&svc->api.slot, cfg);
    leave_slot(svc);
    /* The file is in place (dc_source renamed it before returning): a child
     * that sees the new generation reads the new file. apr_atomic_inc32 is a
     * full barrier, so the digest is visible before the count. */
    generation = apr_atomic_inc32(&svc->shared->generation) + 1;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, svc->s,
                 DCLOGNO(10424) "%s: generation %u published to every child", svc->name,
                 generation);
    /* Must stay APR_SUCCESS: mod_watchdog stops calling a callback that fails. */
    return APR_SUCCESS;
}

void decision_feed_register_poller(decision_service_t *svc, apr_pool_t *pconf)
{
    decision_singleton_register(pconf, svc->interval, poll_source, svc);
    if (svc->share)
        decision_every_child_register(pconf, apr_time_from_sec(1), tick, svc);
}

void decision_feed_catch_up(decision_service_t *svc)
{
    apr_uint32_t generation = __atomic_load_n(&svc->shared->generation, __ATOMIC_ACQUIRE);
    dc_config_t *cfg;
    dc_config_error_t err;

    if (generation == __atomic_load_n(&svc->seen, __ATOMIC_RELAXED))
        return;
    if (apr_atomic_cas32(&svc->reloading, 1, 0) != 0)
        return; /* another thread of this child is reading it */
    generation = __atomic_load_n(&svc->shared->generation, __ATOMIC_ACQUIRE);
    if (generation != svc->seen) {
        if (svc->share && (cfg = dc_share_acquire(svc->share, generation)) != NULL) {
            dc_slot_publish(&svc->api.slot, cfg);
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, svc->s,
                         DCLOGNO(10448) "%s: this child now serves %s (generation %u, shared)",
                         svc->name, cfg->digest, generation);
        } else if (dc_config_load_file(svc->reload_path, &cfg, &err) == 0) {
            if (strcmp(cfg->digest, svc->shared->digest) != 0 && !svc->digest_warned) {
                /* Usually a newer generation landed meanwhile; if it stays, the
                 * poller could not write the file (is its directory writable by
                 * the User?). */
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, svc->s,
                             DCLOGNO(10425) "%s: %s holds %s, the poller accepted %s",
                             svc->name, svc->reload_path, cfg->digest, svc->shared->digest);
                svc->digest_warned = 1;
            }
            dc_slot_publish(&svc->api.slot, cfg);
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, svc->s,
                         DCLOGNO(10426) "%s: this child now serves %s (generation %u)",
                         svc->name, cfg->digest, generation);
        } else {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, svc->s,
                         DCLOGNO(10427) "%s: cannot re-read %s (%s%s%s); keeping the current "
                                        "configuration",
                         svc->name, svc->reload_path, err.path, err.path[0] ? ": " : "",
                         err.text);
        }
        __atomic_store_n(&svc->seen, generation, __ATOMIC_RELEASE);
    }
    apr_atomic_set32(&svc->reloading, 0);
}

/*
 * Events in httpd: every child appends, one child ships.
 *
 * With `DecisionSpool DIR`, each child opens its own dc_spool handle in
 * child_init (a handle must not cross a fork) and makes it the service's hit
 * sink, so a request's hits are on disk before it is answered; the handle is
 * closed when the child exits, which hands its last segment to the shipper.
 * The parent only prepares the directory, owned by User when started as root.
 *
 * The shipper is a second task of the child that polls the config
 * (decision_singleton.c): one child for the whole server delivers the ready segments
 * of every child to the collector (dc_shipper_run_once with a deadline under
 * the callback interval, so the poller is never starved). It is created in
 * that child on the watchdog's first call (its HTTP sink probes the
 * collector, which must not hold up the start) and flushes for a bounded
 * time when the watchdog stops. Its figures go to shared memory beside the
 * source status, so any child's /v2/metrics shows the deliveries.
 */
#include "mod_decision.h"

#include "dc_log.h"
#include "dc_proc.h"
#include "dc_shipper.h"
#include "dc_spool.h"

#include "http_log.h"
#include "mod_watchdog.h"
#include "unixd.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <string.h>
#include <unistd.h>

APLOG_USE_MODULE(decision);

#define DECISION_SHIP_SLICE apr_time_from_msec(800) /* under the 1 s callback interval */
#define DECISION_SHIP_FLUSH apr_time_from_sec(2)    /* at the watchdog's stop */

static apr_status_t close_spool(void *data)
{
    decision_service_t *svc = data;

    if (svc->spool) {
        dc_spool_close(svc->spool);
        svc->spool = NULL;
        svc->api.hit_sink = NULL;
    }
    return APR_SUCCESS;
}

void decision_events_child_init(decision_service_t *svc, apr_pool_t *pchild)
{
    char err[256];

    if (!svc->spool_opt.dir)
        return;
    svc->spool = dc_spool_open(pchild, &svc->spool_opt, err, sizeof(err));
    if (!svc->spool) {
        /* decisions are still answered; their events are refused and counted */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, svc->s,
                     DCLOGNO(10430) "%s: cannot open the event spool in this child: %s",
                     svc->name, err);
        return;
    }
    svc->api.hit_sink = dc_spool_sink;
    svc->api.hit_baton = svc->spool;
    /* before pchild's subpools go: the spool keeps its own in one */
    apr_pool_pre_cleanup_register(pchild, svc, close_spool);
}

static void share_shipper_stats(decision_service_t *svc)
{
    decision_generation_t *g = svc->shared;

    apr_atomic_inc32(&g->status_seq);
    dc_shipper_stats(svc->shipper, &g->ship);
    g->has_ship = 1;
    apr_atomic_inc32(&g->status_seq);
}

static apr_status_t ship_events(int state, void *data, apr_pool_t *p)
{
    decision_service_t *svc = data;
    char err[256];

    if (state == AP_WATCHDOG_STATE_STARTING && !svc->shipper) {
        /* This watchdog thread does background work only (shipping, config
         * polls): the requests of its child come first. A burst of shipping
         * (a second of a busy server's events, every second) at the same
         * priority was a tail on the requests that shared its core. */
        dc_proc_background_thread();
        apr_pool_create(&svc->ship_pool, NULL);
        svc->shipper = dc_shipper_create(svc->ship_pool, &svc->ship_opt, err, sizeof(err));
        if (!svc->shipper) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, svc->s,
                         DCLOGNO(10431) "%s: no event shipper (%s); events stay in %s",
                         svc->name, err, svc->spool_opt.dir);
            apr_pool_destroy(svc->ship_pool);
            svc->ship_pool = NULL;
            return APR_SUCCESS;
        }
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, svc->s,
                     DCLOGNO(10432) "%s: this child ships the events of %s", svc->name,
                     svc->spool_opt.dir);
    }
    if (!svc->shipper)
        return APR_SUCCESS;
    if (state == AP_WATCHDOG_STATE_STOPPING) {
        /* another child takes over from the progress files; this bounds the exit */
        dc_shipper_flush(svc->shipper, apr_time_now() + DECISION_SHIP_FLUSH);
        share_shipper_stats(svc);
        dc_shipper_destroy(svc->shipper);
        svc->shipper = NULL;
        apr_pool_destroy(svc->ship_pool);
        svc->ship_pool = NULL;
        return APR_SUCCESS;
    }
    dc_shipper_run_once(svc->shipper, apr_time_now() + DECISION_SHIP_SLICE);
    share_shipper_stats(svc);
    return APR_SUCCESS; /* mod_watchdog stops calling a callback that fails */
}

const char *decision_events_prepare(decision_service_t *svc, apr_pool_t *pconf,
                                    apr_pool_t *ptemp)
{
    apr_status_t rv;

    if (!svc->spool_opt.dir)
        return NULL;
    rv = apr_dir_make_recursive(svc->spool_opt.dir, APR_FPROT_UREAD | APR_FPROT_UWRITE |
                                                        APR_FPROT_UEXECUTE,
                                ptemp);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv))
        return apr_psprintf(pconf, "DecisionSpool %s: cannot create it (%pm)",
                            svc->spool_opt.dir, &rv);
    if (geteuid() == 0 &&
        chown(svc->spool_opt.dir, ap_unixd_config.user_id, ap_unixd_config.group_id) < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), svc->s,
                     DCLOGNO(10433) "DecisionSpool %s: cannot give it to the server's User; "
                                    "children will refuse events",
                     svc->spool_opt.dir);
    svc->ship_opt.spool_dir = svc->spool_opt.dir;
    decision_singleton_register(pconf, svc->ship_opt.interval ? svc->ship_opt.interval
                                                              : DC_SHIPPER_DEFAULT_INTERVAL,
                                ship_events, svc);
    return NULL;
}

/*
 * dc_status: what the service shows about itself — the /v2/metrics and
 * Prometheus renderings, liveness and readiness, /iserver/nsessions and the
 * HTML status page. All built from one snapshot (dc_status_gather()) so a
 * page never mixes two moments, and all HTTP-agnostic like dc_api.
 *
 * dc_api_handle() routes GET /v2/metrics, /v2/health, /v2/ready,
 * /iserver/nsessions and the Prometheus path (opt.prometheus_path) here.
 * The status page has a handler of its own, dc_status_handle(), which the
 * front ends mount where the operator says (httpd: SetHandler
 * decision-status; decision-fcgi: a configured path). Both go through the
 * same API key rule as the decision routes (the liveness probe excepted:
 * it tells nothing but "this process answers").
 */
#ifndef DC_STATUS_H
#define DC_STATUS_H

#include "dc_api.h"
#include "dc_buf.h"
#include "dc_metrics.h"

/* Everything a page shows, gathered once. Allocated in the page's pool;
 * the config reference is released with that pool. */
typedef struct dc_status_snapshot {
    apr_time_t now;
    const dc_metrics_t *metrics;  /* NULL: metrics are off, totals are zero */
    dc_metrics_slot_t *totals;    /* the sum of every slot */
    dc_config_t *cfg;             /* NULL: no config loaded yet */
    unsigned generation;          /* of the service's slot: publishes so far */
    apr_time_t published_at;
    dc_metrics_extra_t extra;     /* source status (service's own or the front end's), spool */
    const char *store_backend;    /* "none", "memory", "redis", ... */
    const char *store_uri;        /* password masked */
    const char *store_detail;
    int store_degraded;           /* the backend says so, or the last operation failed */
    double visitors;              /* distinct visitors, last 30 minutes (HyperLogLog) */
    int otel;                     /* an OpenTelemetry exporter runs (svc->otel) */
    uint64_t otel_figures[DC_OTEL_FIGURES]; /* its figures, summed over processes */
} dc_status_snapshot_t;

void dc_status_gather(dc_service_t *svc, apr_pool_t *p, dc_status_snapshot_t *s);

/* JSON pieces shared by /v2/ready, /v2/metrics and the status page. */
void dc_status_put_config_json(dc_buf_t *b, const dc_status_snapshot_t *s);
void dc_status_put_store_json(dc_buf_t *b, const dc_status_snapshot_t *s);
void dc_status_put_spool_json(dc_buf_t *b, const dc_status_snapshot_t *s);

/* GET /v2/metrics: Go expvar's shape, as the decision-api answers it
 * ("{\n" + sorted "key": value lines joined by ",\n" + "\n}\n"): cmdline,
 * handlers.<name>.errors and handlers.<name>.response_time.p50..p99 (ms)
 * for activate, campaign, campaigns, flags, metrics; and ours (config,
 * handlers.<name>.requests.<class>, hits, spool, store, uptime_seconds,
 * visitors). Go's memstats has no counterpart and is left out. */
void dc_metrics_render_flagship(const dc_service_t *svc, const dc_status_snapshot_t *s,
                                dc_buf_t *b);
/* The Prometheus text exposition format (version 0.0.4) of the same figures. */
void dc_metrics_render_prometheus(const dc_service_t *svc, const dc_status_snapshot_t *s,
                                  dc_buf_t *b);
#define DC_PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The status page: plain HTML, no script, an inline SVG chart of the last
 * 30 minutes (request rate and mean latency), the figures, the campaigns. */
void dc_status_render_html(const dc_service_t *svc, const dc_status_snapshot_t *s, dc_buf_t *b);

/* The routes dc_api_handle() sends here (method, API key and CORS already
 * checked by dc_api). */
void dc_status_respond_health(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp);
void dc_status_respond_ready(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp);
void dc_status_respond_metrics(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp);
void dc_status_respond_prometheus(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp);
void dc_status_respond_nsessions(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp);

/*
 * The status page handler, for the front ends (same request and response
 * types as dc_api_handle(); everything allocated in p): GET or HEAD, the
 * API key when the service requires one, then 200 text/html. Counted in the
 * metrics as endpoint "other".
 */
void dc_status_handle(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                      dc_response_t *resp);

#endif

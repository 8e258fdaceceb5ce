/*
 * The two machine-readable renderings of a status snapshot: the
 * decision-api's /v2/metrics (Go expvar's shape) and the Prometheus text
 * exposition format.
 *
 * expvar prints one "key": value line per variable, sorted by key, so the
 * Flagship keys and ours are collected as (key, rendered value) pairs and
 * sorted before printing; a reader that knows the decision-api finds its
 * keys where it expects them, and ours beside them.
 *
 * Prometheus: every family gets its # HELP and # TYPE lines and all its
 * samples together; histograms have cumulative _bucket lines ending with
 * le="+Inf" equal to _count, in seconds. Label values come from fixed
 * tables here, but they are escaped all the same (backslash, quote,
 * newline), so a future label from configuration cannot break the format.
 */
#include "dc_status.h"
#include "dc_buf.h"

#include <apr_strings.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- /v2/metrics ---------------------------------------------------------- */

typedef struct {
    const char *key;
    const char *value;
} expvar_t;

typedef struct {
    expvar_t *items;
    size_t n, cap;
    apr_pool_t *pool;
} expvars_t;

static void expvar_add(expvars_t *v, const char *key, const char *value)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        expvar_t *items = apr_palloc(v->pool, cap * sizeof(*items));

        if (v->n)
            memcpy(items, v->items, v->n * sizeof(*items));
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n].key = key;
    v->items[v->n].value = value;
    v->n++;
}

static void expvar_add_number(expvars_t *v, const char *key, double d)
{
    dc_buf_t b;

    dc_buf_init(&b, v->pool, 32);
    dc_json_put_number(&b, d);
    expvar_add(v, key, dc_buf_cstr(&b));
}

static int compare_expvars(const void *a, const void *b)
{
    return strcmp(((const expvar_t *)a)->key, ((const expvar_t *)b)->key);
}

/* Milliseconds, to the microsecond. */
static double ms_of_us(double us)
{
    return round(us) / 1000;
}

void dc_metrics_render_flagship(const dc_service_t *svc, const dc_status_snapshot_t *s,
                                dc_buf_t *b)
{
    static const char *const classes[DC_STATUS_CLASSES] = {"other", "2xx", "3xx", "4xx", "5xx"};
    static const struct {
        const char *name;
        double q;
    } quantiles[] = {{"p50", 0.50}, {"p90", 0.90}, {"p95", 0.95}, {"p99", 0.99}};
    apr_pool_t *p = b->pool;
    expvars_t v = {NULL, 0, 0, p};
    const dc_metrics_slot_t *t = s->totals;
    dc_buf_t one;

    dc_buf_init(&one, p, 128);
    dc_buf_putc(&one, '[');
    for (size_t i = 0; svc->cmdline && svc->cmdline[i]; i++) {
        if (i)
            dc_buf_putc(&one, ',');
        dc_json_put_string(&one, svc->cmdline[i], strlen(svc->cmdline[i]));
    }
    dc_buf_putc(&one, ']');
    expvar_add(&v, "cmdline", dc_buf_cstr(&one));

    for (int e = 0; e < DC_EP_COUNT; e++) {
        const char *name = dc_endpoint_name((dc_endpoint_e)e);
        const dc_histogram_t *h = &t->latency[e];
        uint64_t total = 0;

        /* The decision-api has no "other" handler; ours is kept under the same prefix. */
        expvar_add_number(&v, apr_pstrcat(p, "handlers.", name, ".errors", NULL),
                          (double)t->requests[e][4]);
        for (size_t q = 0; q < sizeof(quantiles) / sizeof(quantiles[0]); q++)
            expvar_add_number(
                &v, apr_pstrcat(p, "handlers.", name, ".response_time.", quantiles[q].name, NULL),
                ms_of_us(dc_histogram_quantile(h, quantiles[q].q)));
        for (int c = 0; c < DC_STATUS_CLASSES; c++) {
            expvar_add_number(&v, apr_pstrcat(p, "handlers.", name, ".requests.", classes[c], NULL),
                              (double)t->requests[e][c]);
            total += t->requests[e][c];
        }
        expvar_add_number(&v, apr_pstrcat(p, "handlers.", name, ".requests.total", NULL),
                          (double)total);
        expvar_add_number(&v, apr_pstrcat(p, "handlers.", name, ".response_time.mean", NULL),
                          h->count ? ms_of_us((double)h->sum_us / h->count) : 0);
    }

    dc_buf_init(&one, p, 512);
    dc_status_put_config_json(&one, s);
    expvar_add(&v, "config", dc_buf_cstr(&one));

    dc_buf_init(&one, p, 512);
    dc_status_put_store_json(&one, s);
    one.len--; /* reopen the object to add the operations */
    dc_buf_puts(&one, ",\"operations\":{");
    for (int k = 0, first = 1; k < DC_BACKEND_COUNT; k++) {
        for (int o = 0; o < DC_STORE_OP_COUNT; o++) {
            const dc_histogram_t *h = &t->store_latency[k][o];

            if (t->store_ops[k][o] == 0)
                continue;
            dc_buf_printf(&one, "%s\"%s.%s\":{\"count\":%llu,\"errors\":%llu", first ? "" : ",",
                          dc_backend_label((dc_backend_e)k, s->store_backend), o == DC_STORE_OP_LOAD ? "load" : "save",
                          (unsigned long long)t->store_ops[k][o],
                          (unsigned long long)t->store_errors[k][o]);
            if (h->count) { /* timed backends only */
                dc_buf_puts(&one, ",\"p50\":");
                dc_json_put_number(&one, ms_of_us(dc_histogram_quantile(h, 0.5)));
                dc_buf_puts(&one, ",\"p99\":");
                dc_json_put_number(&one, ms_of_us(dc_histogram_quantile(h, 0.99)));
            }
            dc_buf_putc(&one, '}');
            first = 0;
        }
    }
    dc_buf_puts(&one, "}}");
    expvar_add(&v, "store", dc_buf_cstr(&one));

    dc_buf_init(&one, p, 256);
    dc_status_put_spool_json(&one, s);
    expvar_add(&v, "spool", dc_buf_cstr(&one));

    expvar_add(&v, "hits",
               dc_pstrfmt(p, "{\"accepted\":%llu,\"refused\":%llu,\"ring_full_requests\":%llu}",
                          (unsigned long long)t->hits_accepted,
                          (unsigned long long)t->hits_refused, (unsigned long long)t->ring_full));
    expvar_add(&v, "visitors",
               apr_psprintf(p, "{\"distinct_30m\":%.0f,\"relative_standard_error\":%.4f}",
                            round(s->visitors), dc_metrics_visitors_error()));
    expvar_add_number(&v, "uptime_seconds",
                      s->metrics ? round((double)(s->now - dc_metrics_started(s->metrics)) / 1e3) /
                                       1e3
                                 : 0);
    expvar_add(&v, "metrics_enabled", s->metrics ? "true" : "false");
    expvar_add(&v, "otel",
               dc_pstrfmt(p,
                          "{\"enabled\":%s,\"spans_exported\":%llu,\"spans_dropped\":%llu,"
                          "\"span_export_failures\":%llu,\"metric_exports\":%llu,"
                          "\"metric_export_failures\":%llu}",
                          s->otel ? "true" : "false",
                          (unsigned long long)s->otel_figures[DC_OTEL_SPANS_EXPORTED],
                          (unsigned long long)s->otel_figures[DC_OTEL_SPANS_DROPPED],
                          (unsigned long long)s->otel_figures[DC_OTEL_EXPORT_FAILURES],
                          (unsigned long long)s->otel_figures[DC_OTEL_METRIC_EXPORTS],
                          (unsigned long long)s->otel_figures[DC_OTEL_METRIC_FAILURES]));

    qsort(v.items, v.n, sizeof(*v.items), compare_expvars);
    dc_buf_puts(b, "{\n");
    for (size_t i = 0; i < v.n; i++) {
        if (i)
            dc_buf_puts(b, ",\n");
        dc_json_put_string(b, v.items[i].key, strlen(v.items[i].key));
        dc_buf_puts(b, ": ");
        dc_buf_puts(b, v.items[i].value);
    }
    dc_buf_puts(b, "\n}\n");
}

/* ---- Prometheus ------------------------------------------------------------ */

static void prom_family(dc_buf_t *b, const char *name, const char *type, const char *help)
{
    dc_buf_printf(b, "# HELP %s ", name);
    for (const char *c = help; *c; c++) {
        if (*c == '\\')
            dc_buf_puts(b, "\\\\");
        else if (*c == '\n')
            dc_buf_puts(b, "\\n");
        else
            dc_buf_putc(b, *c);
    }
    dc_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void prom_label_value(dc_buf_t *b, const char *value)
{
    for (const char *c = value; *c; c++) {
        if (*c == '\\')
            dc_buf_puts(b, "\\\\");
        else if (*c == '"')
            dc_buf_puts(b, "\\\"");
        else if (*c == '\n')
            dc_buf_puts(b, "\\n");
        else
            dc_buf_putc(b, *c);
    }
}

/* name{k1="v1",k2="v2"} with up to two labels (NULL key = none). */
static void prom_series(dc_buf_t *b, const char *name, const char *suffix, const char *k1,
                        const char *v1, const char *k2, const char *v2)
{
    dc_buf_puts(b, name);
    dc_buf_puts(b, suffix);
    if (!k1)
        return;
    dc_buf_printf(b, "{%s=\"", k1);
    prom_label_value(b, v1);
    if (k2) {
        dc_buf_printf(b, "\",%s=\"", k2);
        prom_label_value(b, v2);
    }
    dc_buf_puts(b, "\"}");
}

static void prom_uint(dc_buf_t *b, uint64_t n)
{
    dc_buf_printf(b, " %llu\n", (unsigned long long)n);
}

static void prom_double(dc_buf_t *b, double d)
{
    dc_buf_putc(b, ' ');
    dc_json_put_number(b, isfinite(d) ? d : 0); /* shortest text that reads back the same */
    dc_buf_putc(b, '\n');
}

/* Microseconds as decimal seconds, exactly ("0.00005", "1.25", "10"). */
static void put_seconds(dc_buf_t *b, uint64_t us)
{
    char frac[8];
    int n;

    dc_buf_printf(b, "%llu", (unsigned long long)(us / 1000000));
    if (us % 1000000 == 0)
        return;
    snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000));
    for (n = 6; n > 0 && frac[n - 1] == '0'; n--)
        ;
    frac[n] = '\0';
    dc_buf_printf(b, ".%s", frac);
}

static void prom_histogram(dc_buf_t *b, const char *name, const dc_histogram_t *h, const char *k1,
                           const char *v1, const char *k2, const char *v2)
{
    uint64_t cumulative = 0;

    for (int i = 0; i < DC_LATENCY_BUCKETS; i++) {
        cumulative += h->buckets[i];
        dc_buf_printf(b, "%s_bucket{", name);
        if (k1) {
            dc_buf_printf(b, "%s=\"", k1);
            prom_label_value(b, v1);
            dc_buf_puts(b, "\",");
        }
        if (k2) {
            dc_buf_printf(b, "%s=\"", k2);
            prom_label_value(b, v2);
            dc_buf_puts(b, "\",");
        }
        dc_buf_puts(b, "le=\"");
        if (i < DC_LATENCY_BOUNDS)
            put_seconds(b, dc_latency_bounds_us[i]);
        else
            dc_buf_puts(b, "+Inf");
        dc_buf_puts(b, "\"}");
        prom_uint(b, cumulative);
    }
    prom_series(b, name, "_sum", k1, v1, k2, v2);
    prom_double(b, (double)h->sum_us / 1e6);
    prom_series(b, name, "_count", k1, v1, k2, v2);
    prom_uint(b, cumulative);
}

static double age_seconds(apr_time_t since, apr_time_t now)
{
    return since > 0 && now > since ? (double)(now - since) / 1e6 : 0;
}

void dc_metrics_render_prometheus(const dc_service_t *svc, const dc_status_snapshot_t *s,
                                  dc_buf_t *b)
{
    static const char *const classes[DC_STATUS_CLASSES] = {"other", "2xx", "3xx", "4xx", "5xx"};
    static const char *const ops[DC_STORE_OP_COUNT] = {"load", "save"};
    const dc_metrics_slot_t *t = s->totals;
    const dc_source_status_t *src = &s->extra.source;
    const dc_spool_figures_t *sp = &s->extra.spool;
    dc_backend_e own = dc_backend_of(s->store_backend);

    (void)svc;
    if (s->metrics) {
        prom_family(b, "decision_requests_total", "counter",
                    "Requests answered, by endpoint and status class.");
        for (int e = 0; e < DC_EP_COUNT; e++)
            for (int c = 0; c < DC_STATUS_CLASSES; c++) {
                prom_series(b, "decision_requests_total", "", "endpoint",
                            dc_endpoint_name((dc_endpoint_e)e), "status", classes[c]);
                prom_uint(b, t->requests[e][c]);
            }
        prom_family(b, "decision_request_errors_total", "counter",
                    "Responses with a status of 500 or more, by endpoint.");
        for (int e = 0; e < DC_EP_COUNT; e++) {
            prom_series(b, "decision_request_errors_total", "", "endpoint",
                        dc_endpoint_name((dc_endpoint_e)e), NULL, NULL);
            prom_uint(b, t->requests[e][4]);
        }
        prom_family(b, "decision_request_duration_seconds", "histogram",
                    "Time to answer a request, by endpoint.");
        for (int e = 0; e < DC_EP_COUNT; e++)
            prom_histogram(b, "decision_request_duration_seconds", &t->latency[e], "endpoint",
                           dc_endpoint_name((dc_endpoint_e)e), NULL, NULL);

        prom_family(b, "decision_store_operations_total", "counter",
                    "Assignment store operations, by backend and operation.");
        for (int k = 0; k < DC_BACKEND_COUNT; k++)
            for (int o = 0; o < DC_STORE_OP_COUNT; o++)
                if (t->store_ops[k][o] || (k == (int)own && !dc_store_is_none(svc->store))) {
                    prom_series(b, "decision_store_operations_total", "", "backend",
                                dc_backend_label((dc_backend_e)k, s->store_backend), "op", ops[o]);
                    prom_uint(b, t->store_ops[k][o]);
                }
        prom_family(b, "decision_store_errors_total", "counter",
                    "Assignment store operations that failed (backend unavailable).");
        for (int k = 0; k < DC_BACKEND_COUNT; k++)
            for (int o = 0; o < DC_STORE_OP_COUNT; o++)
                if (t->store_ops[k][o] || (k == (int)own && !dc_store_is_none(svc->store))) {
                    prom_series(b, "decision_store_errors_total", "", "backend",
                                dc_backend_label((dc_backend_e)k, s->store_backend), "op", ops[o]);
                    prom_uint(b, t->store_errors[k][o]);
                }
        prom_family(b, "decision_store_operation_duration_seconds", "histogram",
                    "Time of one assignment store operation, by backend and operation "
                    "(out-of-process backends: redis, dynamo, dbm).");
        for (int k = 0; k < DC_BACKEND_COUNT; k++)
            for (int o = 0; o < DC_STORE_OP_COUNT; o++)
                if (t->store_latency[k][o].count ||
                    (k == (int)own && k != DC_BACKEND_MEMORY && k != DC_BACKEND_SHM &&
                     !dc_store_is_none(svc->store)))
                    prom_histogram(b, "decision_store_operation_duration_seconds",
                                   &t->store_latency[k][o], "backend",
                                   dc_backend_label((dc_backend_e)k, s->store_backend), "op", ops[o]);

        prom_family(b, "decision_hits_total", "counter",
                    "Events (hits) produced by requests, by whether the spool accepted them.");
        prom_series(b, "decision_hits_total", "", "result", "accepted", NULL, NULL);
        prom_uint(b, t->hits_accepted);
        prom_series(b, "decision_hits_total", "", "result", "refused", NULL, NULL);
        prom_uint(b, t->hits_refused);
        prom_family(b, "decision_spool_ring_full_total", "counter",
                    "Requests whose events found their process's spool ring full: the request "
                    "wrote them to the segment itself, the slower way (ring-bytes is small for "
                    "the load).");
        prom_series(b, "decision_spool_ring_full_total", "", NULL, NULL, NULL, NULL);
        prom_uint(b, t->ring_full);

        prom_family(b, "decision_visitors", "gauge",
                    "Distinct visitors of the last 30 minutes (HyperLogLog estimate, relative "
                    "standard error 1.6%).");
        prom_series(b, "decision_visitors", "", NULL, NULL, NULL, NULL);
        prom_double(b, round(s->visitors));
        prom_family(b, "decision_start_time_seconds", "gauge",
                    "When the metrics region was set up (Unix time).");
        prom_series(b, "decision_start_time_seconds", "", NULL, NULL, NULL, NULL);
        prom_double(b, (double)apr_time_sec(dc_metrics_started(s->metrics)));
    }

    prom_family(b, "decision_config_loaded", "gauge",
                "1 when a bucketing configuration is loaded (the server is ready).");
    prom_series(b, "decision_config_loaded", "", NULL, NULL, NULL, NULL);
    prom_uint(b, s->cfg != NULL);
    prom_family(b, "decision_config_generation", "gauge",
                "Configurations published since start.");
    prom_series(b, "decision_config_generation", "", NULL, NULL, NULL, NULL);
    prom_uint(b, s->generation);
    prom_family(b, "decision_config_age_seconds", "gauge",
                "Seconds since the current configuration was published.");
    prom_series(b, "decision_config_age_seconds", "", NULL, NULL, NULL, NULL);
    prom_double(b, age_seconds(s->published_at, s->now));
    prom_family(b, "decision_config_campaigns", "gauge", "Campaigns in the current configuration.");
    prom_series(b, "decision_config_campaigns", "", NULL, NULL, NULL, NULL);
    prom_uint(b, s->cfg ? s->cfg->n_campaigns : 0);
    if (s->extra.has_source) {
        prom_family(b, "decision_config_fetches_total", "counter",
                    "Refreshes of the bucketing file, by result.");
        prom_series(b, "decision_config_fetches_total", "", "result", "changed", NULL, NULL);
        prom_uint(b, src->changes);
        prom_series(b, "decision_config_fetches_total", "", "result", "not_modified", NULL, NULL);
        prom_uint(b, src->not_modified);
        prom_series(b, "decision_config_fetches_total", "", "result", "error", NULL, NULL);
        prom_uint(b, src->errors);
        prom_family(b, "decision_config_last_success_timestamp_seconds", "gauge",
                    "When a refresh last succeeded (Unix time, 0 = never).");
        prom_series(b, "decision_config_last_success_timestamp_seconds", "", NULL, NULL, NULL,
                    NULL);
        prom_double(b, src->last_success > 0 ? (double)apr_time_sec(src->last_success) : 0);
        prom_family(b, "decision_config_failures_in_a_row", "gauge",
                    "Refreshes that failed since the last success.");
        prom_series(b, "decision_config_failures_in_a_row", "", NULL, NULL, NULL, NULL);
        prom_uint(b, src->failures_in_a_row);
    }

    prom_family(b, "decision_store_up", "gauge",
                "1 when the assignment store is healthy, 0 when degraded.");
    prom_series(b, "decision_store_up", "", "backend", s->store_backend, NULL, NULL);
    prom_uint(b, !s->store_degraded);

    if (s->extra.has_spool) {
        prom_family(b, "decision_spool_up", "gauge",
                    "1 when the event spool accepts and delivers, 0 when degraded.");
        prom_series(b, "decision_spool_up", "", NULL, NULL, NULL, NULL);
        prom_uint(b, !sp->degraded);
        prom_family(b, "decision_spool_pending_records", "gauge",
                    "Events written to the spool and not yet acknowledged by the collector.");
        prom_series(b, "decision_spool_pending_records", "", NULL, NULL, NULL, NULL);
        prom_uint(b, sp->pending_records);
        prom_family(b, "decision_spool_pending_bytes", "gauge", "Bytes of those events.");
        prom_series(b, "decision_spool_pending_bytes", "", NULL, NULL, NULL, NULL);
        prom_uint(b, sp->pending_bytes);
        prom_family(b, "decision_spool_segments", "gauge", "Spool segment files on disk.");
        prom_series(b, "decision_spool_segments", "", NULL, NULL, NULL, NULL);
        prom_uint(b, sp->segments);
        prom_family(b, "decision_spool_oldest_unsent_age_seconds", "gauge",
                    "Age of the oldest event not yet delivered (0 when none).");
        prom_series(b, "decision_spool_oldest_unsent_age_seconds", "", NULL, NULL, NULL, NULL);
        prom_double(b, age_seconds(sp->oldest_unsent, s->now));
        prom_family(b, "decision_events_total", "counter",
                    "Events by delivery outcome: delivered, retried, dead_lettered.");
        prom_series(b, "decision_events_total", "", "outcome", "delivered", NULL, NULL);
        prom_uint(b, sp->delivered);
        prom_series(b, "decision_events_total", "", "outcome", "retried", NULL, NULL);
        prom_uint(b, sp->retried);
        prom_series(b, "decision_events_total", "", "outcome", "dead_lettered", NULL, NULL);
        prom_uint(b, sp->dead_lettered);
    }
    if (s->extra.has_spool && sp->sink.backend[0]) {
        const dc_sink_figures_t *k = &sp->sink;

        prom_family(b, "decision_sink_operations_total", "counter",
                    "The shipper's operations on its sink (send: a batch posted or written, an "
                    "object put; delete: the start-up probe object), by backend.");
        for (int o = 0; o < DC_SINK_OP_COUNT; o++) {
            prom_series(b, "decision_sink_operations_total", "", "backend", k->backend, "op",
                        dc_sink_op_name((dc_sink_op_e)o));
            prom_uint(b, k->ops[o]);
        }
        prom_family(b, "decision_sink_errors_total", "counter",
                    "Sink operations that failed (retried later), by backend.");
        for (int o = 0; o < DC_SINK_OP_COUNT; o++) {
            prom_series(b, "decision_sink_errors_total", "", "backend", k->backend, "op",
                        dc_sink_op_name((dc_sink_op_e)o));
            prom_uint(b, k->errors[o]);
        }
        prom_family(b, "decision_sink_operation_duration_seconds", "histogram",
                    "Time of one sink operation, by backend.");
        for (int o = 0; o < DC_SINK_OP_COUNT; o++)
            prom_histogram(b, "decision_sink_operation_duration_seconds", &k->latency[o],
                           "backend", k->backend, "op", dc_sink_op_name((dc_sink_op_e)o));
        prom_family(b, "decision_sink_sent_bytes_total", "counter",
                    "Bytes the sink acknowledged (objects: compressed).");
        prom_series(b, "decision_sink_sent_bytes_total", "", "backend", k->backend, NULL, NULL);
        prom_uint(b, k->bytes);
    }
    if (s->otel) {
        const uint64_t *f = s->otel_figures;

        prom_family(b, "decision_otel_spans_total", "counter",
                    "Spans exported to the OTLP collector, and dropped (queue full, or their "
                    "export failed for good).");
        prom_series(b, "decision_otel_spans_total", "", "result", "exported", NULL, NULL);
        prom_uint(b, f[DC_OTEL_SPANS_EXPORTED]);
        prom_series(b, "decision_otel_spans_total", "", "result", "dropped", NULL, NULL);
        prom_uint(b, f[DC_OTEL_SPANS_DROPPED]);
        prom_family(b, "decision_otel_export_failures_total", "counter",
                    "OTLP export requests that failed (every attempt), by signal.");
        prom_series(b, "decision_otel_export_failures_total", "", "signal", "traces", NULL,
                    NULL);
        prom_uint(b, f[DC_OTEL_EXPORT_FAILURES]);
        prom_series(b, "decision_otel_export_failures_total", "", "signal", "metrics", NULL,
                    NULL);
        prom_uint(b, f[DC_OTEL_METRIC_FAILURES]);
        prom_family(b, "decision_otel_metric_exports_total", "counter",
                    "OTLP metric export requests the collector accepted.");
        prom_series(b, "decision_otel_metric_exports_total", "", NULL, NULL, NULL, NULL);
        prom_uint(b, f[DC_OTEL_METRIC_EXPORTS]);
    }
}

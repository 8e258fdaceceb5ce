/*
 * Health, readiness, /iserver/nsessions and the HTML status page.
 *
 * Every page starts from one dc_status_snapshot_t: the metrics summed over
 * all slots, a reference to the current config, the source and spool
 * figures and the store's health, taken once, so the figures of one page
 * belong together. Gathering costs a pass over the slots (about 10 KiB per
 * slot) and is only done for these pages, never on the decision path.
 *
 * Whatever comes from the bucketing file (campaign names, ids) or from a
 * backend (error texts) is escaped for where it goes: JSON strings through
 * dc_json_put_string, HTML text and attributes through put_html.
 */
#include "dc_status.h"
#include "dc_buf.h"

#include <apr_strings.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- the snapshot -------------------------------------------------------- */

static apr_status_t release_config(void *data)
{
    dc_config_unref(data);
    return APR_SUCCESS;
}

/* dc_metrics_slot_t is cache-line aligned; apr_palloc only promises 8 bytes. */
static dc_metrics_slot_t *alloc_totals(apr_pool_t *p)
{
    char *mem = apr_palloc(p, sizeof(dc_metrics_slot_t) + 63);

    return (dc_metrics_slot_t *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
}

void dc_status_gather(dc_service_t *svc, apr_pool_t *p, dc_status_snapshot_t *s)
{
    memset(s, 0, sizeof(*s));
    s->now = apr_time_now();
    s->metrics = svc->metrics;
    s->totals = alloc_totals(p);
    dc_metrics_sum(svc->metrics, s->totals);
    s->cfg = dc_slot_acquire(&svc->slot);
    if (s->cfg)
        apr_pool_cleanup_register(p, s->cfg, release_config, apr_pool_cleanup_null);
    s->generation = __atomic_load_n(&svc->slot.generation, __ATOMIC_RELAXED);
    s->published_at = svc->slot.published_at;
    if (svc->source) {
        dc_source_status(svc->source, &s->extra.source);
        s->extra.has_source = 1;
    }
    if (svc->metrics_extra)
        svc->metrics_extra(svc->metrics_extra_baton, &s->extra);
    if (dc_store_is_none(svc->store)) {
        s->store_backend = "none";
        s->store_uri = "none";
        s->store_detail = "no assignment store";
    } else {
        s->store_backend = svc->store->provider->name;
        s->store_uri = svc->store->uri ? svc->store->uri : svc->store->provider->name;
        s->store_degraded = dc_store_health(svc->store, &s->store_detail) != DC_STORE_HEALTH_OK ||
                            dc_metrics_store_degraded(svc->metrics);
        if (!s->store_detail)
            s->store_detail = "";
    }
    s->visitors = svc->metrics ? dc_metrics_distinct_visitors(svc->metrics, s->now) : 0;
}

/* ---- JSON pieces --------------------------------------------------------- */

static void put_str(dc_buf_t *b, const char *s)
{
    if (s)
        dc_json_put_string(b, s, strlen(s));
    else
        dc_buf_puts(b, "null");
}

static void put_time(dc_buf_t *b, apr_time_t t)
{
    apr_time_exp_t x;

    if (t <= 0 || apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        dc_buf_puts(b, "null");
        return;
    }
    dc_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02dZ\"", x.tm_year + 1900, x.tm_mon + 1,
                  x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec);
}

static double seconds_between(apr_time_t from, apr_time_t to)
{
    return from > 0 && to > from ? (double)(to - from) / 1e6 : 0;
}

static double round3(double d)
{
    return round(d * 1000) / 1000;
}

void dc_status_put_config_json(dc_buf_t *b, const dc_status_snapshot_t *s)
{
    const dc_source_status_t *src = &s->extra.source;

    dc_buf_printf(b, "{\"loaded\":%s,\"generation\":%u,\"published\":",
                  s->cfg ? "true" : "false", s->generation);
    put_time(b, s->published_at);
    dc_buf_puts(b, ",\"age_seconds\":");
    dc_json_put_number(b, round3(seconds_between(s->published_at, s->now)));
    if (s->cfg) {
        dc_buf_printf(b, ",\"campaigns\":%zu,\"panic\":%s,\"digest\":", s->cfg->n_campaigns,
                      s->cfg->panic ? "true" : "false");
        put_str(b, s->cfg->digest);
    }
    dc_buf_puts(b, ",\"source\":");
    if (!s->extra.has_source) {
        dc_buf_puts(b, "null}");
        return;
    }
    dc_buf_puts(b, "{\"origin\":");
    put_str(b, src->origin ? src->origin : "none");
    dc_buf_puts(b, ",\"last_attempt\":");
    put_time(b, src->last_attempt);
    dc_buf_puts(b, ",\"last_success\":");
    put_time(b, src->last_success);
    dc_buf_puts(b, ",\"last_change\":");
    put_time(b, src->last_change);
    dc_buf_puts(b, ",\"last_fetch\":");
    put_str(b, src->last_attempt == 0 ? "none" : src->last_error[0] ? "error" : "ok");
    dc_buf_puts(b, ",\"last_error\":");
    put_str(b, src->last_error[0] ? src->last_error : NULL);
    dc_buf_printf(b,
                  ",\"failures_in_a_row\":%u,\"fetches\":%lu,\"changes\":%lu,"
                  "\"not_modified\":%lu,\"errors\":%lu}}",
                  src->failures_in_a_row, src->fetches, src->changes, src->not_modified,
                  src->errors);
}

void dc_status_put_store_json(dc_buf_t *b, const dc_status_snapshot_t *s)
{
    dc_buf_puts(b, "{\"backend\":");
    put_str(b, s->store_backend);
    dc_buf_puts(b, ",\"uri\":");
    put_str(b, s->store_uri);
    dc_buf_puts(b, s->store_degraded ? ",\"state\":\"degraded\"" : ",\"state\":\"ok\"");
    dc_buf_puts(b, ",\"detail\":");
    put_str(b, s->store_detail);
    dc_buf_putc(b, '}');
}

void dc_status_put_spool_json(dc_buf_t *b, const dc_status_snapshot_t *s)
{
    const dc_spool_figures_t *sp = &s->extra.spool;

    if (!s->extra.has_spool) {
        dc_buf_puts(b, "null");
        return;
    }
    dc_buf_printf(b,
                  "{\"state\":\"%s\",\"pending_records\":%llu,\"pending_bytes\":%llu,"
                  "\"segments\":%llu,\"oldest_unsent_age_seconds\":",
                  sp->degraded ? "degraded" : "ok", (unsigned long long)sp->pending_records,
                  (unsigned long long)sp->pending_bytes, (unsigned long long)sp->segments);
    dc_json_put_number(b, round3(seconds_between(sp->oldest_unsent, s->now)));
    dc_buf_printf(b, ",\"delivered\":%llu,\"retried\":%llu,\"dead_lettered\":%llu,\"last_error\":",
                  (unsigned long long)sp->delivered, (unsigned long long)sp->retried,
                  (unsigned long long)sp->dead_lettered);
    put_str(b, sp->last_error[0] ? sp->last_error : NULL);
    if (sp->sink.backend[0]) {
        const dc_sink_figures_t *k = &sp->sink;

        dc_buf_puts(b, ",\"sink\":{\"backend\":");
        put_str(b, k->backend);
        for (int o = 0; o < DC_SINK_OP_COUNT; o++) {
            dc_buf_printf(b, ",\"%s\":{\"operations\":%llu,\"errors\":%llu,\"p50_ms\":",
                          dc_sink_op_name((dc_sink_op_e)o), (unsigned long long)k->ops[o],
                          (unsigned long long)k->errors[o]);
            dc_json_put_number(b, round3(dc_histogram_quantile(&k->latency[o], 0.5) / 1000.0));
            dc_buf_puts(b, ",\"p99_ms\":");
            dc_json_put_number(b, round3(dc_histogram_quantile(&k->latency[o], 0.99) / 1000.0));
            dc_buf_putc(b, '}');
        }
        dc_buf_printf(b, ",\"sent_bytes\":%llu}", (unsigned long long)k->bytes);
    }
    dc_buf_putc(b, '}');
}

/* ---- health, readiness, nsessions ---------------------------------------- */

static void respond_json(dc_response_t *resp, int status, dc_buf_t *b)
{
    dc_buf_cstr(b);
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = b->data;
    resp->body_len = b->len;
    apr_table_setn(resp->headers, "Cache-Control", "no-store");
}

void dc_status_respond_health(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 64);
    dc_buf_puts(&b, "{\"status\":\"ok\"");
    if (svc->metrics) {
        dc_buf_puts(&b, ",\"uptime_seconds\":");
        dc_json_put_number(&b, round3(seconds_between(dc_metrics_started(svc->metrics),
                                                      apr_time_now())));
    }
    dc_buf_puts(&b, "}\n");
    respond_json(resp, 200, &b);
}

/* Why there is no config yet, in the operator's words. */
static const char *not_ready_reason(apr_pool_t *p, const dc_status_snapshot_t *s)
{
    const dc_source_status_t *src = &s->extra.source;

    if (!s->extra.has_source)
        return "no config has been published to this server yet";
    if (src->last_attempt == 0)
        return "waiting for the first fetch of the bucketing file";
    if (src->last_error[0])
        return apr_psprintf(p, "the last fetch failed (%u in a row): %s", src->failures_in_a_row,
                            src->last_error);
    return "the bucketing file has not been accepted yet";
}

void dc_status_respond_ready(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp)
{
    dc_status_snapshot_t s;
    dc_buf_t b;

    dc_status_gather(svc, p, &s);
    dc_buf_init(&b, p, 1024);
    if (s.cfg) {
        dc_buf_puts(&b, "{\"status\":\"ready\"");
    } else {
        dc_buf_puts(&b, "{\"message\":\"not ready: no bucketing configuration is loaded\","
                        "\"reason\":");
        put_str(&b, not_ready_reason(p, &s));
        dc_buf_puts(&b, ",\"status\":\"not_ready\"");
    }
    dc_buf_puts(&b, ",\"config\":");
    dc_status_put_config_json(&b, &s);
    dc_buf_puts(&b, ",\"store\":");
    dc_status_put_store_json(&b, &s);
    dc_buf_puts(&b, ",\"spool\":");
    dc_status_put_spool_json(&b, &s);
    dc_buf_puts(&b, "}\n");
    respond_json(resp, s.cfg ? 200 : 503, &b);
}

void dc_status_respond_nsessions(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 128);
    if (!svc->metrics) {
        dc_buf_puts(&b, "{\"message\":\"visitors are not counted: metrics are off in this "
                        "server\"}\n");
        respond_json(resp, 503, &b);
        return;
    }
    dc_buf_printf(&b, "{\"nsessions\":%.0f,\"window_seconds\":%d,\"relative_standard_error\":",
                  round(dc_metrics_distinct_visitors(svc->metrics, apr_time_now())),
                  DC_METRICS_MINUTES * 60);
    dc_json_put_number(&b, round(dc_metrics_visitors_error() * 10000) / 10000);
    dc_buf_puts(&b, "}\n");
    respond_json(resp, 200, &b);
}

void dc_status_respond_metrics(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp)
{
    dc_status_snapshot_t s;
    dc_buf_t b;

    dc_status_gather(svc, p, &s);
    dc_buf_init(&b, p, 4096);
    dc_metrics_render_flagship(svc, &s, &b);
    respond_json(resp, 200, &b);
    resp->content_type = "application/json; charset=utf-8";
}

void dc_status_respond_prometheus(dc_service_t *svc, apr_pool_t *p, dc_response_t *resp)
{
    dc_status_snapshot_t s;
    dc_buf_t b;

    dc_status_gather(svc, p, &s);
    dc_buf_init(&b, p, 32768);
    dc_metrics_render_prometheus(svc, &s, &b);
    respond_json(resp, 200, &b);
    resp->content_type = DC_PROMETHEUS_CONTENT_TYPE;
}

/* ---- the HTML page ------------------------------------------------------- */

static void put_html_n(dc_buf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&': dc_buf_puts(b, "&amp;"); break;
        case '<': dc_buf_puts(b, "&lt;"); break;
        case '>': dc_buf_puts(b, "&gt;"); break;
        case '"': dc_buf_puts(b, "&quot;"); break;
        case '\'': dc_buf_puts(b, "&#39;"); break;
        default: dc_buf_putc(b, s[i]);
        }
    }
}

static void put_html(dc_buf_t *b, const char *s)
{
    if (s)
        put_html_n(b, s, strlen(s));
    else
        dc_buf_puts(b, "&mdash;");
}

static void put_html_time(dc_buf_t *b, apr_time_t t)
{
    char when[APR_RFC822_DATE_LEN];

    if (t <= 0 || apr_rfc822_date(when, t) != APR_SUCCESS)
        dc_buf_puts(b, "never");
    else
        put_html(b, when);
}

static void row(dc_buf_t *b, const char *key, const char *value)
{
    dc_buf_puts(b, "<tr><th>");
    put_html(b, key);
    dc_buf_puts(b, "</th><td>");
    put_html(b, value);
    dc_buf_puts(b, "</td></tr>\n");
}

static const char *ms_text(apr_pool_t *p, double us)
{
    return apr_psprintf(p, "%.3f", us / 1000);
}

/* Two small charts of the last 30 minutes, oldest at the left: requests per
 * minute as bars, mean latency per minute as a line. */
static void put_chart(dc_buf_t *b, const dc_status_snapshot_t *s)
{
    enum { W = 600, H = 110, LEFT = 70, N = DC_METRICS_MINUTES };
    dc_minute_t minutes[DC_METRICS_MINUTES];
    uint64_t max_requests = 0;
    double max_ms = 0, bar = (double)(W - LEFT) / N;

    dc_metrics_recent_minutes(s->metrics, s->now, minutes, N);
    for (int i = 0; i < N; i++) {
        double ms = minutes[i].requests ? minutes[i].sum_us / 1000.0 / minutes[i].requests : 0;

        if (minutes[i].requests > max_requests)
            max_requests = minutes[i].requests;
        if (ms > max_ms)
            max_ms = ms;
    }
    dc_buf_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"rate-title\">"
                  "<title id=\"rate-title\">Requests per minute, last %d minutes</title>"
                  "<rect x=\"%d\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f6f6f6\" "
                  "stroke=\"#999\"/>"
                  "<text x=\"4\" y=\"14\" font-size=\"12\">%llu/min</text>"
                  "<text x=\"4\" y=\"%d\" font-size=\"12\">0</text>",
                  W, H + 20, W, H + 20, N, LEFT, W - LEFT, H, (unsigned long long)max_requests,
                  H);
    for (int i = 0; i < N; i++) {
        double h = max_requests ? (double)H * minutes[i].requests / max_requests : 0;

        if (minutes[i].requests == 0)
            continue;
        dc_buf_printf(b,
                      "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"#3b6fb6\"><title>%llu requests, %llu errors</title></rect>",
                      LEFT + i * bar + 1, H - h, bar - 2, h,
                      (unsigned long long)minutes[i].requests,
                      (unsigned long long)minutes[i].errors);
    }
    dc_buf_printf(b,
                  "<text x=\"%d\" y=\"%d\" font-size=\"12\">-%d min</text>"
                  "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">now</text></svg>\n",
                  LEFT, H + 16, N, W, H + 16);

    dc_buf_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"latency-title\">"
                  "<title id=\"latency-title\">Mean latency per minute (ms), last %d "
                  "minutes</title>"
                  "<rect x=\"%d\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f6f6f6\" "
                  "stroke=\"#999\"/>"
                  "<text x=\"4\" y=\"14\" font-size=\"12\">%.3f ms</text>"
                  "<text x=\"4\" y=\"%d\" font-size=\"12\">0</text>",
                  W, H + 20, W, H + 20, N, LEFT, W - LEFT, H, max_ms, H);
    /* A minute without requests has no latency: the line skips it, and each
     * minute that has one gets a dot, so a lone minute still shows. */
    for (int i = 0, open = 0; i <= N; i++) {
        double ms, y;

        if (i == N || minutes[i].requests == 0) {
            if (open)
                dc_buf_puts(b, "\"/>");
            open = 0;
            continue;
        }
        ms = minutes[i].sum_us / 1000.0 / minutes[i].requests;
        y = max_ms > 0 ? H - (H - 4) * ms / max_ms : H;
        if (!open)
            dc_buf_puts(b, "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" "
                           "points=\"");
        dc_buf_printf(b, "%s%.1f,%.1f", open ? " " : "", LEFT + (i + 0.5) * bar, y);
        open = 1;
    }
    for (int i = 0; i < N; i++) {
        double ms;

        if (minutes[i].requests == 0)
            continue;
        ms = minutes[i].sum_us / 1000.0 / minutes[i].requests;
        dc_buf_printf(b,
                      "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#c0392b\"><title>%.3f ms "
                      "mean</title></circle>",
                      LEFT + (i + 0.5) * bar, max_ms > 0 ? H - (H - 4) * ms / max_ms : H, ms);
    }
    dc_buf_printf(b,
                  "<text x=\"%d\" y=\"%d\" font-size=\"12\">-%d min</text>"
                  "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">now</text></svg>\n",
                  LEFT, H + 16, N, W, H + 16);
}

static void put_requests_table(dc_buf_t *b, apr_pool_t *p, const dc_status_snapshot_t *s)
{
    static const char *const classes[DC_STATUS_CLASSES] = {"other", "2xx", "3xx", "4xx", "5xx"};

    dc_buf_puts(b, "<table id=\"requests\"><tr><th>endpoint</th>");
    for (int c = 1; c <= DC_STATUS_CLASSES; c++)
        dc_buf_printf(b, "<th>%s</th>", classes[c % DC_STATUS_CLASSES]);
    dc_buf_puts(b, "<th>mean ms</th><th>p50 ms</th><th>p90 ms</th><th>p95 ms</th>"
                   "<th>p99 ms</th></tr>\n");
    for (int e = 0; e < DC_EP_COUNT; e++) {
        const dc_histogram_t *h = &s->totals->latency[e];

        dc_buf_printf(b, "<tr><th>%s</th>", dc_endpoint_name((dc_endpoint_e)e));
        for (int c = 1; c <= DC_STATUS_CLASSES; c++)
            dc_buf_printf(b, "<td class=\"n\">%llu</td>",
                          (unsigned long long)s->totals->requests[e][c % DC_STATUS_CLASSES]);
        dc_buf_printf(b,
                      "<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                      "<td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                      ms_text(p, h->count ? (double)h->sum_us / h->count : 0),
                      ms_text(p, dc_histogram_quantile(h, 0.50)),
                      ms_text(p, dc_histogram_quantile(h, 0.90)),
                      ms_text(p, dc_histogram_quantile(h, 0.95)),
                      ms_text(p, dc_histogram_quantile(h, 0.99)));
    }
    dc_buf_puts(b, "</table>\n");
}

static void put_store_table(dc_buf_t *b, apr_pool_t *p, const dc_status_snapshot_t *s)
{
    static const char *const ops[DC_STORE_OP_COUNT] = {"load", "save"};

    dc_buf_printf(b, "<p>State: <strong class=\"%s\">%s</strong> &middot; ",
                  s->store_degraded ? "bad" : "ok", s->store_degraded ? "degraded" : "ok");
    put_html(b, s->store_uri);
    dc_buf_puts(b, " &middot; ");
    put_html(b, s->store_detail);
    dc_buf_puts(b, "</p>\n<table id=\"store\"><tr><th>backend</th><th>operation</th>"
                   "<th>count</th><th>errors</th><th>p50 ms</th><th>p99 ms</th></tr>\n");
    for (int k = 0; k < DC_BACKEND_COUNT; k++) {
        for (int o = 0; o < DC_STORE_OP_COUNT; o++) {
            const dc_histogram_t *h = &s->totals->store_latency[k][o];

            if (s->totals->store_ops[k][o] == 0)
                continue;
            dc_buf_printf(b,
                          "<tr><td>%s</td><td>%s</td><td class=\"n\">%llu</td><td "
                          "class=\"n\">%llu</td><td class=\"n\">%s</td><td "
                          "class=\"n\">%s</td></tr>\n",
                          dc_backend_name((dc_backend_e)k), ops[o],
                          (unsigned long long)s->totals->store_ops[k][o],
                          (unsigned long long)s->totals->store_errors[k][o],
                          h->count ? ms_text(p, dc_histogram_quantile(h, 0.5)) : "not timed",
                          h->count ? ms_text(p, dc_histogram_quantile(h, 0.99)) : "not timed");
        }
    }
    dc_buf_puts(b, "</table>\n");
}

static void put_config_table(dc_buf_t *b, apr_pool_t *p, const dc_status_snapshot_t *s)
{
    const dc_source_status_t *src = &s->extra.source;

    dc_buf_puts(b, "<table id=\"config\">\n");
    row(b, "loaded", s->cfg ? "yes" : "no");
    row(b, "generation", apr_psprintf(p, "%u", s->generation));
    dc_buf_puts(b, "<tr><th>published</th><td>");
    put_html_time(b, s->published_at);
    dc_buf_puts(b, "</td></tr>\n");
    if (s->cfg) {
        row(b, "age", apr_psprintf(p, "%.0f s", seconds_between(s->published_at, s->now)));
        row(b, "digest", s->cfg->digest);
        row(b, "panic mode", s->cfg->panic ? "ON" : "off");
    }
    if (s->extra.has_source) {
        row(b, "source", src->origin ? src->origin : "none");
        dc_buf_puts(b, "<tr><th>last fetch</th><td>");
        put_html_time(b, src->last_attempt);
        dc_buf_puts(b, "</td></tr>\n");
        row(b, "last fetch result",
            src->last_attempt == 0 ? "none yet" : src->last_error[0] ? src->last_error : "ok");
        row(b, "fetches / changes / not modified / errors",
            apr_psprintf(p, "%lu / %lu / %lu / %lu", src->fetches, src->changes, src->not_modified,
                         src->errors));
    }
    dc_buf_puts(b, "</table>\n");
}

static void put_events_table(dc_buf_t *b, apr_pool_t *p, const dc_status_snapshot_t *s)
{
    const dc_spool_figures_t *sp = &s->extra.spool;

    dc_buf_puts(b, "<table id=\"events\">\n");
    row(b, "hits accepted",
        dc_pstrfmt(p, "%llu", (unsigned long long)s->totals->hits_accepted));
    row(b, "hits refused",
        dc_pstrfmt(p, "%llu", (unsigned long long)s->totals->hits_refused));
    if (s->extra.has_spool) {
        row(b, "spool state", sp->degraded ? "degraded" : "ok");
        row(b, "pending", dc_pstrfmt(p, "%llu records, %llu bytes, %llu segments",
                                       (unsigned long long)sp->pending_records,
                                       (unsigned long long)sp->pending_bytes,
                                       (unsigned long long)sp->segments));
        row(b, "oldest unsent",
            sp->oldest_unsent ? apr_psprintf(p, "%.0f s ago",
                                             seconds_between(sp->oldest_unsent, s->now))
                              : "none");
        row(b, "delivered / retried / dead-lettered",
            dc_pstrfmt(p, "%llu / %llu / %llu", (unsigned long long)sp->delivered,
                         (unsigned long long)sp->retried, (unsigned long long)sp->dead_lettered));
        row(b, "last delivery error", sp->last_error[0] ? sp->last_error : "none");
        if (sp->sink.backend[0]) {
            const dc_sink_figures_t *k = &sp->sink;

            row(b, "sink",
                dc_pstrfmt(p, "%s: %llu sends (%llu failed, p50 %.1f ms, p99 %.1f ms), %llu bytes",
                           k->backend, (unsigned long long)k->ops[DC_SINK_OP_SEND],
                           (unsigned long long)k->errors[DC_SINK_OP_SEND],
                           dc_histogram_quantile(&k->latency[DC_SINK_OP_SEND], 0.5) / 1000.0,
                           dc_histogram_quantile(&k->latency[DC_SINK_OP_SEND], 0.99) / 1000.0,
                           (unsigned long long)k->bytes));
        }
    } else {
        row(b, "spool", "not configured here");
    }
    dc_buf_puts(b, "</table>\n");
}

static void put_campaigns_table(dc_buf_t *b, const dc_config_t *cfg)
{
    dc_buf_printf(b, "<h2>Campaigns (%zu)</h2>\n", cfg ? cfg->n_campaigns : (size_t)0);
    if (!cfg) {
        dc_buf_puts(b, "<p>No configuration is loaded.</p>\n");
        return;
    }
    dc_buf_puts(b, "<table id=\"campaigns\"><tr><th>id</th><th>name</th><th>type</th>"
                   "<th>variation group</th><th>variations (allocation %)</th></tr>\n");
    for (size_t i = 0; i < cfg->n_campaigns; i++) {
        const dc_campaign_t *c = &cfg->campaigns[i];
        size_t rows = c->n_groups ? c->n_groups : 1;

        dc_buf_printf(b, "<tr class=\"campaign\"><td rowspan=\"%zu\"><code>", rows);
        put_html(b, c->id);
        dc_buf_printf(b, "</code></td><td rowspan=\"%zu\">", rows);
        put_html(b, c->name);
        dc_buf_printf(b, "</td><td rowspan=\"%zu\">", rows);
        put_html(b, c->type);
        dc_buf_puts(b, "</td>");
        if (c->n_groups == 0)
            dc_buf_puts(b, "<td>&mdash;</td><td>&mdash;</td></tr>\n");
        for (size_t g = 0; g < c->n_groups; g++) {
            const dc_variation_group_t *vg = &c->groups[g];

            if (g)
                dc_buf_puts(b, "<tr>");
            dc_buf_puts(b, "<td>");
            put_html(b, vg->name);
            dc_buf_puts(b, " <code>");
            put_html_n(b, vg->id, vg->id_len);
            dc_buf_puts(b, "</code></td><td>");
            for (size_t v = 0; v < vg->n_variations; v++) {
                const dc_variation_t *var = &vg->variations[v];

                if (v)
                    dc_buf_puts(b, "<br>");
                put_html(b, var->name);
                dc_buf_puts(b, " <code>");
                put_html_n(b, var->id, var->id_len);
                dc_buf_printf(b, "</code>: %g%s", var->allocation,
                              var->reference ? " (reference)" : "");
            }
            dc_buf_puts(b, "</td></tr>\n");
        }
    }
    dc_buf_puts(b, "</table>\n");
}

void dc_status_render_html(const dc_service_t *svc, const dc_status_snapshot_t *s, dc_buf_t *b)
{
    apr_pool_t *p = b->pool;
    char now[APR_RFC822_DATE_LEN];

    (void)svc;
    apr_rfc822_date(now, s->now);
    dc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>Decision server status</title><style>"
                   "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}"
                   "table{border-collapse:collapse;margin:.5em 0 1.2em}"
                   "th,td{border:1px solid #bbb;padding:2px 8px;text-align:left;"
                   "vertical-align:top}td.n{text-align:right}"
                   ".bad{color:#b00}.ok{color:#070}svg{display:block;margin:.3em 0}"
                   "</style></head><body>\n<h1>Decision server status</h1>\n<p>");
    put_html(b, now);
    dc_buf_printf(b, " &middot; <strong class=\"%s\">%s</strong>",
                  s->cfg ? "ok" : "bad", s->cfg ? "ready" : "not ready: no configuration");
    if (s->metrics)
        dc_buf_printf(b, " &middot; up %.0f s &middot; %zu metrics slot(s)",
                      seconds_between(dc_metrics_started(s->metrics), s->now),
                      dc_metrics_n_slots(s->metrics));
    else
        dc_buf_puts(b, " &middot; metrics are off");
    dc_buf_puts(b, "</p>\n<h2>Last 30 minutes</h2>\n");
    put_chart(b, s);
    dc_buf_puts(b, "<h2>Requests</h2>\n");
    put_requests_table(b, p, s);
    dc_buf_printf(b,
                  "<p>Distinct visitors, last 30 minutes: <strong id=\"visitors\">%.0f</strong> "
                  "(HyperLogLog estimate, relative standard error %.1f %%)</p>\n",
                  round(s->visitors), dc_metrics_visitors_error() * 100);
    dc_buf_puts(b, "<h2>Configuration</h2>\n");
    put_config_table(b, p, s);
    dc_buf_puts(b, "<h2>Assignment store</h2>\n");
    put_store_table(b, p, s);
    dc_buf_puts(b, "<h2>Events</h2>\n");
    put_events_table(b, p, s);
    put_campaigns_table(b, s->cfg);
    dc_buf_puts(b, "</body></html>\n");
}

void dc_status_handle(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                      dc_response_t *resp)
{
    dc_metrics_slot_t *slot =
        req->metrics_slot ? req->metrics_slot : dc_metrics_slot(svc->metrics, 0);
    apr_time_t start = apr_time_now(), end;
    dc_buf_t b;

    memset(resp, 0, sizeof(*resp));
    resp->headers = apr_table_make(p, 4);
    dc_buf_init(&b, p, 128);
    if (!req->method || (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)) {
        apr_table_setn(resp->headers, "Allow", "GET, HEAD");
        dc_buf_puts(&b, "{\"message\":\"only GET and HEAD http methods are allowed\"}\n");
        respond_json(resp, 405, &b);
    } else if (!dc_api_authorized(svc, req)) {
        apr_table_setn(resp->headers, "WWW-Authenticate", "Bearer");
        dc_buf_puts(&b, "{\"message\":\"missing or invalid API key (X-API-Key or "
                        "Authorization: Bearer)\"}\n");
        respond_json(resp, 401, &b);
    } else {
        dc_status_snapshot_t s;

        dc_status_gather(svc, p, &s);
        dc_buf_init(&b, p, 16384);
        dc_status_render_html(svc, &s, &b);
        respond_json(resp, 200, &b);
        resp->content_type = "text/html; charset=utf-8";
    }
    if (svc->metrics) {
        end = apr_time_now();
        dc_metrics_observe_request(slot, DC_EP_OTHER, resp->status, end - start, end);
    }
}

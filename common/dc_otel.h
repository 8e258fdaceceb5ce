/*
 * dc_otel: OpenTelemetry traces and metrics, exported over OTLP/HTTP.
 *
 * What a request pays. A decision-API request that is sampled fills one
 * fixed-size span record on its stack (ids from a per-thread PRNG, no
 * allocation, no system call beyond the clock reads the metrics already do)
 * and, when it ends, copies it into the process's span ring under a mutex
 * held for that copy only. A full ring drops the span and counts it: a
 * request never waits for the collector, the exporter or another request's
 * export. Store operations that leave the process (Redis, DBM) add a child
 * span record each the same way.
 *
 * What the exporter does. One background thread per process (an httpd child,
 * decision-fcgi) wakes every OTEL_BSP_SCHEDULE_DELAY, or sooner when the ring
 * holds a batch, takes up to OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans out of the
 * ring, encodes them as an ExportTraceServiceRequest (protobuf, dc_otel_pb.c)
 * and POSTs them with libcurl to the traces endpoint, gzip-compressed when
 * OTEL_EXPORTER_OTLP_COMPRESSION=gzip, with OTEL_EXPORTER_OTLP_HEADERS, timing
 * out after OTEL_EXPORTER_OTLP_TIMEOUT. 429, 502, 503, 504 and transport
 * errors are retried with exponential backoff (the OTLP/HTTP spec's list);
 * other answers drop the batch. Every OTEL_METRIC_EXPORT_INTERVAL it also
 * sends the service's metrics region (dc_metrics) as cumulative OTLP metrics,
 * when this process is the one that exports them (dc_otel_export_metrics_here).
 * dc_otel_stop() flushes what the ring holds within a deadline and joins.
 *
 * Figures (spans exported, dropped, failed exports, metric exports) are kept
 * in the metrics region (dc_metrics_otel_add), so that /v2/metrics, /metrics
 * and the status page show them summed over every process.
 *
 * Configuration is the OpenTelemetry SDK environment (OTEL_*), read through
 * a getter so that each front end decides where a name comes from (httpd
 * directives then httpd's environment; decision-fcgi its settings).
 */
#ifndef DC_OTEL_H
#define DC_OTEL_H

#include "dc_api.h"
#include "dc_buf.h"
#include "dc_metrics.h"

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <stddef.h>
#include <stdint.h>

/* ---- settings ------------------------------------------------------------ */

typedef enum {
    DC_OTEL_ALWAYS_ON = 0,
    DC_OTEL_ALWAYS_OFF,
    DC_OTEL_RATIO,
    DC_OTEL_PARENT_ALWAYS_ON,
    DC_OTEL_PARENT_ALWAYS_OFF,
    DC_OTEL_PARENT_RATIO
} dc_otel_sampler_e;

typedef struct {
    const char *key, *value;
} dc_otel_attr_t;

typedef struct {
    int enabled;                   /* an endpoint is set and OTEL_SDK_DISABLED is not true */
    const char *traces_url;        /* NULL: traces are not exported */
    const char *metrics_url;       /* NULL: metrics are not exported */
    apr_array_header_t *headers;   /* const char *: "Name: value" lines for libcurl */
    int gzip;
    apr_interval_time_t timeout;   /* per export request */
    const char *service_name;
    apr_array_header_t *resource;  /* dc_otel_attr_t, service.name among them */
    dc_otel_sampler_e sampler;
    double ratio;                  /* traceidratio's argument, 0..1 */
    apr_interval_time_t metric_interval;
    apr_interval_time_t schedule_delay;
    unsigned max_queue;            /* spans the ring holds */
    unsigned max_batch;            /* spans per export request */
} dc_otel_options_t;

/* The names read, in the order they are documented (NULL-terminated). */
extern const char *const dc_otel_setting_names[];

/* Returns the raw text of a setting by its OTEL_* name, NULL when not set. */
typedef const char *dc_otel_getter_fn(void *baton, const char *name);

/* Reads and checks every OTEL_* setting through get. Returns NULL, or an error
 * naming the setting (allocated in p). Off (o->enabled 0) unless
 * OTEL_EXPORTER_OTLP_ENDPOINT or a per-signal endpoint is set. service.name
 * defaults to "unknown_service:" process_name, as the SDK spec says. */
const char *dc_otel_options_read(dc_otel_options_t *o, apr_pool_t *p, dc_otel_getter_fn *get,
                                 void *baton, const char *process_name);

/* ---- W3C trace context and sampling -------------------------------------- */

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;                 /* bit 0: sampled */
} dc_otel_context_t;

/* Parses a traceparent header strictly (version 00 exactly as specified; a
 * higher version read by its first four fields; all-zero ids, upper-case hex
 * and version ff refused). Returns 0 or -1. */
int dc_otel_parse_traceparent(const char *header, dc_otel_context_t *out);
/* Whether a tracestate header is well formed enough to pass on (at most 32
 * list members of key=value, printable, at most 512 bytes). */
int dc_otel_tracestate_valid(const char *header);

/* The sampling decision for a new span: 1 to record it. parent NULL: a root. */
int dc_otel_should_sample(const dc_otel_options_t *o, const dc_otel_context_t *parent,
                          const uint8_t trace_id[16]);

/* 16 or 8 random bytes from this thread's generator (never all zero). */
void dc_otel_random_id(uint8_t *out, size_t len);

/* ---- spans ----------------------------------------------------------------- */

#define DC_OTEL_PATH_MAX 128
#define DC_OTEL_HOST_MAX 64
#define DC_OTEL_STATE_MAX 256
#define DC_OTEL_ENV_MAX 64

typedef enum {
    DC_OTEL_SPAN_SERVER = 0,       /* one decision-API request */
    DC_OTEL_SPAN_STORE             /* a store operation that left the process */
} dc_otel_span_type_e;

/* decision.store's outcome on the server span. */
typedef enum {
    DC_OTEL_STORE_SKIPPED = 0,     /* no store, or nothing asked of it */
    DC_OTEL_STORE_HIT,
    DC_OTEL_STORE_MISS,
    DC_OTEL_STORE_DEGRADED
} dc_otel_store_result_e;

/* One span, fixed size: what the ring holds. Strings are truncated copies. */
typedef struct dc_otel_span {
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint8_t type, has_parent, flags, store_result;
    uint8_t store_backend, store_op, store_status; /* dc_backend_e, dc_store_op_e, dc_store_status_e */
    const char *route;                             /* http.route (a literal), NULL: none */
    int16_t status;                                /* HTTP status; 0 for a store span */
    int32_t campaigns;                             /* -1: not a decision answer */
    int64_t start_ns, end_ns;                      /* Unix epoch nanoseconds */
    char method[8];
    char path[DC_OTEL_PATH_MAX];
    char host[DC_OTEL_HOST_MAX];
    char tracestate[DC_OTEL_STATE_MAX];
    char env_id[DC_OTEL_ENV_MAX];
    uint16_t port;                                 /* 0: not known */
} dc_otel_span_t;

typedef struct dc_otel dc_otel_t;

/* A tracer for o (copied into p, which outlives the tracer), NULL when o is
 * not enabled. Its figures go to the region figures (NULL: not counted). */
dc_otel_t *dc_otel_create(apr_pool_t *p, const dc_otel_options_t *o, dc_metrics_t *figures);

/* Starts a server span for a request carrying these headers (either NULL).
 * Returns 1 when the span is sampled (and span is filled), 0 otherwise. */
int dc_otel_begin(const dc_otel_t *t, dc_otel_span_t *span, const char *traceparent,
                  const char *tracestate, apr_time_t start);
/* A child of parent for a store operation, ended now (start given). */
void dc_otel_store_span(dc_otel_t *t, const dc_otel_span_t *parent, dc_backend_e backend,
                        dc_store_op_e op, dc_store_status_e result, apr_time_t start,
                        apr_time_t end);
/* Queues a finished span; drops and counts it when the ring is full. */
void dc_otel_end(dc_otel_t *t, const dc_otel_span_t *span);

/* ---- the exporter ------------------------------------------------------------ */

/* Holds (lock 1) or releases (lock 0) what keeps svc's options and store
 * alive while its figures are read (decision-fcgi's reload lock). */
typedef void dc_otel_guard_fn(void *baton, int lock);

/* Makes this process the one that exports svc's metrics (httpd: the child
 * that runs the watchdog singleton; decision-fcgi: itself): the figures of
 * dc_status_gather(), what /metrics renders, read and encoded between
 * guard(baton, 1) and guard(baton, 0) when guard is given. Up to 8 services
 * per tracer; a service already registered is not added twice. */
void dc_otel_export_metrics_here(dc_otel_t *t, dc_service_t *svc, dc_otel_guard_fn *guard,
                                 void *baton);
/* Starts the exporter thread (in the process that records spans: after any
 * fork). Returns 0, or -1 with a log line. */
int dc_otel_start(dc_otel_t *t);
/* Exports what is queued (and the metrics once more when exported here),
 * waiting at most budget, then joins the thread. Safe when not started. */
void dc_otel_stop(dc_otel_t *t, apr_interval_time_t budget);

/* ---- encoding (dc_otel_pb.c; exposed for tests and the bench) -------------- */


/* An ExportTraceServiceRequest of n spans. */
void dc_otel_encode_spans(dc_buf_t *b, const dc_otel_options_t *o, const dc_otel_span_t *spans,
                          size_t n);
/* Appends one ResourceMetrics (field 1 of an ExportMetricsServiceRequest, so
 * that several services' appended one after the other make one request) of
 * the figures in s; start: when this process began exporting them. */
struct dc_status_snapshot;
void dc_otel_encode_metrics(dc_buf_t *b, const dc_otel_options_t *o, const dc_service_t *svc,
                            const struct dc_status_snapshot *s, apr_time_t start);

#endif

/*
 * dc_metrics: request, store and event figures, counted without locks and
 * summed when someone looks.
 *
 * Layout. A metrics region is one block of plain memory, free of pointers,
 * so that it can live in APR shared memory mapped at different addresses in
 * different processes:
 *
 *     [ header | HyperLogLog minute ring | slot 0 | slot 1 | ... | slot n-1 ]
 *
 * Each slot belongs to one writer: one httpd child (its threads share it),
 * or one decision-fcgi worker thread. A slot is cache-line aligned and holds
 * only 64-bit counters, so writers on different cores never share a line.
 * Writers do relaxed atomic adds on their own slot: no lock, no allocation,
 * no system call (the caller passes the time). Readers sum every slot with
 * relaxed atomic loads, also without a lock; a sum taken while requests run
 * is a consistent-enough snapshot (each counter is exact, counters are not
 * mutually synchronised).
 *
 * Front ends:
 *   - httpd: in post_config, size = dc_metrics_region_size(ServerLimit);
 *     create an apr_shm segment of that size; m = dc_metrics_attach(base,
 *     ServerLimit). Each child uses dc_metrics_slot(m, i) where i is its
 *     scoreboard slot (the i with ap_scoreboard_image->parent[i].pid ==
 *     getpid(); the parent records it just after the fork, so look it up at
 *     the child's first request and keep it), and puts it in
 *     dc_request_t.metrics_slot for every request (the threads of a child
 *     share the slot). dc_metrics_attach() keeps the counters
 *     of a region that already carries this layout (graceful restart), and
 *     a child that starts in an old slot adds to it: totals stay monotonic.
 *   - decision-fcgi: dc_metrics_create(pool, n_threads) and one slot per
 *     worker thread (plus one for the main thread if it serves requests);
 *     set svc->cmdline = argv, svc->source when it polls, and route its
 *     status path to dc_status_handle() (dc_status.h).
 *   - eval and tests: dc_metrics_create(pool, 1).
 *
 * Latency histograms have fixed bounds in microseconds, a 1-1.25-1.5-2-2.5-
 * 3-4-5-6-8 series per decade from 10 us to 10 s (61 bounds plus an overflow
 * bucket; 12 stands for 12.5 in the first decade). An in-process decision
 * takes tens of microseconds, so the scale starts well below 1 ms. A quantile read from them (linear interpolation inside the bucket
 * that holds it) stays inside that bucket, so it is off by at most the
 * bucket's width: neighbouring bounds differ by a factor of at most 4/3, so
 * the error is at most a third of the true value between 10 us and 10 s.
 * Below 10 us everything reads as 0..10 us; above 10 s as 10 s.
 *
 * Distinct visitors (for /iserver/nsessions) are counted with HyperLogLog:
 * one set of 2^12 one-byte registers per minute in a ring of 30 minutes
 * (a 32-bit MurmurHash3 of the id: 12 bits pick the register, 20 the rank),
 * shared by every writer of the region (not per slot). A register only ever
 * grows, by compare-and-swap, and after the first few thousand visitors of
 * a minute almost every update is a read that finds the register large
 * enough, so sharing costs little and saves n_slots times 120 KiB. The
 * estimate of the union of the last 30 minutes (register-wise maximum) has
 * a relative standard error of 1.04 / sqrt(4096) = 1.6 %: within 3.3 % two
 * times in three, within 5 % (3 sigma) practically always; small counts
 * (under 10 000) use linear counting, which is nearly exact.
 * At the turn of a minute, the first writer to see the new minute claims
 * its ring entry (compare-and-swap on the entry's minute) and clears it; a
 * few updates racing with that clear can be lost, which the estimate's error
 * already covers. The per-minute request counters of the status chart use
 * the same scheme per slot (the totals are never affected).
 */
#ifndef DC_METRICS_H
#define DC_METRICS_H

#include "dc_source.h"
#include "dc_store.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DC_EP_CAMPAIGNS = 0, /* POST /v2/campaigns, /v2/{env}/campaigns */
    DC_EP_CAMPAIGN,      /* POST /v2/campaigns/{id} */
    DC_EP_FLAGS,         /* POST /v2/flags */
    DC_EP_ACTIVATE,      /* POST /v2/activate */
    DC_EP_METRICS,       /* GET /v2/metrics and the Prometheus path */
    DC_EP_OTHER,         /* health, ready, nsessions, status page, 404s */
    DC_EP_COUNT
} dc_endpoint_e;

/* Status classes: index 0 = 1xx and anything unusual, 1 = 2xx ... 4 = 5xx. */
#define DC_STATUS_CLASSES 5

#define DC_LATENCY_BOUNDS 61
#define DC_LATENCY_BUCKETS (DC_LATENCY_BOUNDS + 1) /* the last one is "above 10 s" */
/* Upper bounds (inclusive, microseconds) of the buckets, ascending. */
extern const uint32_t dc_latency_bounds_us[DC_LATENCY_BOUNDS];

/* Store backends measured apart; a provider of another name (a plugin) counts as
 * "other", labelled with its own name (dc_backend_label). */
typedef enum {
    DC_BACKEND_MEMORY = 0,
    DC_BACKEND_DBM,
    DC_BACKEND_REDIS,
    DC_BACKEND_SHM, /* the httpd module's shared-memory store */
    DC_BACKEND_DYNAMO,
    DC_BACKEND_OTHER,
    DC_BACKEND_COUNT
} dc_backend_e;
typedef enum { DC_STORE_OP_LOAD = 0, DC_STORE_OP_SAVE, DC_STORE_OP_COUNT } dc_store_op_e;

const char *dc_endpoint_name(dc_endpoint_e ep);
const char *dc_backend_name(dc_backend_e b);
dc_backend_e dc_backend_of(const char *provider_name);
/* The "backend" label of slot b when the service's store is store_backend (its
 * provider's name): a plugin's operations are counted in DC_BACKEND_OTHER and
 * labelled with the name the plugin declares ("memcached"). */
const char *dc_backend_label(dc_backend_e b, const char *store_backend);

#define DC_METRICS_MINUTES 30
#define DC_HLL_PRECISION 12
#define DC_HLL_REGISTERS (1u << DC_HLL_PRECISION)

typedef struct {
    uint64_t count;   /* the sum of the buckets, filled by dc_metrics_sum (writers skip it) */
    uint64_t sum_us;
    uint64_t buckets[DC_LATENCY_BUCKETS];
} dc_histogram_t;

/* One minute of one slot, for the status chart. */
typedef struct {
    uint64_t minute;   /* apr_time / 60 s; 0 = never used */
    uint64_t requests;
    uint64_t errors;   /* status >= 500 */
    uint64_t sum_us;
} dc_minute_t;

/* One writer's counters. Also the type of a sum over all slots. */
typedef struct {
    uint64_t requests[DC_EP_COUNT][DC_STATUS_CLASSES];
    dc_histogram_t latency[DC_EP_COUNT];
    uint64_t store_ops[DC_BACKEND_COUNT][DC_STORE_OP_COUNT];
    uint64_t store_errors[DC_BACKEND_COUNT][DC_STORE_OP_COUNT]; /* DC_STORE_UNAVAILABLE */
    dc_histogram_t store_latency[DC_BACKEND_COUNT][DC_STORE_OP_COUNT]; /* timed backends only */
    uint64_t hits_accepted, hits_refused;
    uint64_t ring_full; /* requests whose hits found the spool's ring full */
    dc_minute_t minutes[DC_METRICS_MINUTES];
} __attribute__((aligned(64))) dc_metrics_slot_t;

typedef struct dc_metrics dc_metrics_t;

/* Bytes a region of n_slots needs (alignment slack included). */
size_t dc_metrics_region_size(size_t n_slots);
/* Uses mem (dc_metrics_region_size(n_slots) bytes, any alignment) as a
 * region: initialises it unless it already holds a region of this layout and
 * n_slots. Returns the handle (inside mem), NULL if n_slots is 0. */
dc_metrics_t *dc_metrics_attach(void *mem, size_t n_slots);
/* A zeroed region in p, for decision-fcgi, eval and tests. */
dc_metrics_t *dc_metrics_create(apr_pool_t *p, size_t n_slots);
size_t dc_metrics_n_slots(const dc_metrics_t *m);
/* Slot index (0..n_slots-1), or NULL when out of range. */
dc_metrics_slot_t *dc_metrics_slot(dc_metrics_t *m, size_t index);
/* When the region was first initialised. */
apr_time_t dc_metrics_started(const dc_metrics_t *m);

/* ---- writers (any thread; the slot may be shared by a child's threads) ---- */

void dc_metrics_observe_request(dc_metrics_slot_t *slot, dc_endpoint_e ep, int status,
                                apr_interval_time_t duration, apr_time_t now);
/* duration < 0: counted, not timed (see dc_metered_store_t). */
void dc_metrics_observe_store(dc_metrics_slot_t *slot, dc_backend_e backend, dc_store_op_e op,
                              dc_store_status_e result, apr_interval_time_t duration);
void dc_metrics_observe_hits(dc_metrics_slot_t *slot, size_t n, int accepted);
/* A request's hits accepted the slow way: its process's spool ring was full. */
void dc_metrics_observe_ring_full(dc_metrics_slot_t *slot);
/* One visitor seen now (id bytes as sent; any length). */
void dc_metrics_observe_visitor(dc_metrics_t *m, const char *id, size_t len, apr_time_t now);

/* ---- readers ------------------------------------------------------------- */

/* The sum of every slot. */
void dc_metrics_sum(const dc_metrics_t *m, dc_metrics_slot_t *out);
/* Quantile q (0..1) of a histogram in microseconds; 0 when it is empty. */
double dc_histogram_quantile(const dc_histogram_t *h, double q);
/* The per-minute figures of the last n minutes (n <= DC_METRICS_MINUTES),
 * oldest first, out[n-1] being the current minute (summed over slots). */
void dc_metrics_recent_minutes(const dc_metrics_t *m, apr_time_t now, dc_minute_t *out, size_t n);
/* Approximate number of distinct visitors in the last DC_METRICS_MINUTES minutes. */
double dc_metrics_distinct_visitors(const dc_metrics_t *m, apr_time_t now);
/* The relative standard error of that estimate (1.04 / sqrt(registers)). */
double dc_metrics_visitors_error(void);

/* ---- the OpenTelemetry exporter's own figures ------------------------------
 * Kept in the region's header (not per slot): each process's exporter adds to
 * them once per export (or per dropped span), so they are summed over every
 * process and survive a graceful restart like the other counters. */
typedef enum {
    DC_OTEL_SPANS_EXPORTED = 0,   /* accepted by the collector (2xx) */
    DC_OTEL_SPANS_DROPPED,        /* the queue was full, or their export failed for good */
    DC_OTEL_EXPORT_FAILURES,      /* export requests that failed (each attempt) */
    DC_OTEL_METRIC_EXPORTS,       /* metric export requests accepted */
    DC_OTEL_METRIC_FAILURES,      /* metric export requests that failed */
    DC_OTEL_FIGURES
} dc_otel_figure_e;

void dc_metrics_otel_add(dc_metrics_t *m, dc_otel_figure_e which, uint64_t n);
/* Fills out[DC_OTEL_FIGURES] (zeros when m is NULL). */
void dc_metrics_otel_read(const dc_metrics_t *m, uint64_t *out);

/* ---- the assignment store, measured ---------------------------------------
 * dc_api wraps the service's store in one of these for the length of a
 * request (on the stack: no allocation), so every load and save is counted
 * into the request's slot (and, on a sampled request, traced: dc_otel.h), and timed when the backend is out of process
 * (redis, dbm, other): an in-process backend (memory, shm) answers in
 * less time than the two clock reads would cost, so it is counted only.
 * State changes ok <-> degraded are tracked per
 * region, so that however many children see a Redis outage, one line is
 * logged when it starts and one when it ends. */
struct dc_otel;
struct dc_otel_span;
typedef struct {
    dc_store_t store; /* what the engine is given */
    dc_store_t *inner;
    dc_metrics_t *metrics;
    dc_metrics_slot_t *slot;
    dc_backend_e backend;
    int timed;
    struct dc_otel *otel;               /* with span: store operations traced */
    struct dc_otel_span *span;          /* the request's server span, NULL when not sampled */
} dc_metered_store_t;

/* slot NULL: not counted; span NULL: not traced (both NULL: inner itself). */
dc_store_t *dc_metrics_meter_store(dc_metered_store_t *ms, dc_store_t *inner, dc_metrics_t *m,
                                   dc_metrics_slot_t *slot, struct dc_otel *otel,
                                   struct dc_otel_span *span);
/* Called with the outcome of any store operation: logs a state change. */
void dc_metrics_note_store_result(dc_metrics_t *m, dc_store_t *store, dc_store_status_e result);
/* 1 after an operation failed and none has succeeded since. */
int dc_metrics_store_degraded(const dc_metrics_t *m);


/* ---- the event sink, measured ----------------------------------------------
 * The shipper's operations on its sink (one backend per shipper): "send" is a
 * batch POSTed to the collector, a batch written to the file sink, or an
 * object put to S3/Azure; "delete" is the probe object's deletion. Written
 * by the shipper under its own lock, copied out with its stats (in httpd
 * through shared memory). */
typedef enum { DC_SINK_OP_SEND = 0, DC_SINK_OP_DELETE, DC_SINK_OP_COUNT } dc_sink_op_e;

typedef struct {
    char backend[8];              /* "http", "file", "s3", "azblob"; "" when unknown */
    uint64_t ops[DC_SINK_OP_COUNT];
    uint64_t errors[DC_SINK_OP_COUNT];
    dc_histogram_t latency[DC_SINK_OP_COUNT];
    uint64_t bytes;               /* sent by successful sends (objects: compressed) */
} dc_sink_figures_t;

const char *dc_sink_op_name(dc_sink_op_e op);
/* One operation: counted, timed, its bytes added when it succeeded (no lock: the caller's). */
void dc_sink_observe(dc_sink_figures_t *f, dc_sink_op_e op, int ok, apr_interval_time_t duration,
                     uint64_t bytes);

/* ---- figures owned elsewhere ---------------------------------------------
 * The event spool (and, in httpd, the config source, which runs in one
 * child's watchdog) fill these when a page is rendered. */
typedef struct {
    uint64_t pending_records;     /* appended, not yet acknowledged by the collector */
    uint64_t pending_bytes;
    uint64_t segments;
    apr_time_t oldest_unsent;     /* 0 when nothing is pending */
    uint64_t delivered, retried, dead_lettered;
    int degraded;                 /* deliveries failing, or the spool refuses appends */
    char last_error[256];         /* "" when the last delivery succeeded; no secrets */
    dc_sink_figures_t sink;       /* backend "" when this process has no shipper's figures */
} dc_spool_figures_t;

typedef struct {
    int has_source;               /* source below is filled */
    dc_source_status_t source;
    int has_spool;
    dc_spool_figures_t spool;
} dc_metrics_extra_t;

/* Fills what it knows of out (already zeroed, or holding the service's own
 * source status); called from the rendering thread, must not block long. */
typedef void dc_metrics_extra_fn(void *baton, dc_metrics_extra_t *out);

#endif

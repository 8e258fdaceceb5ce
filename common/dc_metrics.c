/*
 * The metrics region: layout, lock-free writers, summing readers, the
 * HyperLogLog visitor ring and the measured store. The design is in
 * dc_metrics.h; the notes here are about the mechanics.
 *
 * Every counter is touched only through __atomic builtins with relaxed
 * order: adds need atomicity (a child's threads share a slot), not ordering.
 * Readers use relaxed loads too, so that a 64-bit counter is never read torn
 * and sanitizers see no data race.
 */
#include "dc_metrics.h"
#include "dc_hash.h"
#include "dc_log.h"
#include "dc_otel.h"

#include <math.h>
#include <string.h>

const uint32_t dc_latency_bounds_us[DC_LATENCY_BOUNDS] = {
    10,      12,      15,      20,      25,      30,      40,      50,      60,      80,
    100,     125,     150,     200,     250,     300,     400,     500,     600,     800,
    1000,    1250,    1500,    2000,    2500,    3000,    4000,    5000,    6000,    8000,
    10000,   12500,   15000,   20000,   25000,   30000,   40000,   50000,   60000,   80000,
    100000,  125000,  150000,  200000,  250000,  300000,  400000,  500000,  600000,  800000,
    1000000, 1250000, 1500000, 2000000, 2500000, 3000000, 4000000, 5000000, 6000000, 8000000,
    10000000,
};

#define DC_METRICS_MAGIC UINT64_C(0x6463206d65747231) /* "dc metr1" */

typedef struct {
    uint64_t minute;
    uint8_t registers[DC_HLL_REGISTERS];
} __attribute__((aligned(64))) hll_minute_t;

struct dc_metrics {
    uint64_t magic;
    uint64_t layout;       /* sizeof(slot) and friends: a changed build does not reuse a region */
    uint64_t n_slots;
    int64_t started;
    uint32_t store_state;  /* 0 ok, 1 degraded; changed by compare-and-swap */
    uint64_t otel[DC_OTEL_FIGURES];
    hll_minute_t hll[DC_METRICS_MINUTES];
    dc_metrics_slot_t slots[];
};

static const char *const endpoint_names[DC_EP_COUNT] = {"campaigns", "campaign", "flags",
                                                        "activate",  "metrics",  "other"};
static const char *const backend_names[DC_BACKEND_COUNT] = {"memory", "dbm",    "redis",
                                                            "shm",    "dynamo", "other"};

const char *dc_endpoint_name(dc_endpoint_e ep)
{
    return (unsigned)ep < DC_EP_COUNT ? endpoint_names[ep] : "other";
}

const char *dc_backend_name(dc_backend_e b)
{
    return (unsigned)b < DC_BACKEND_COUNT ? backend_names[b] : "other";
}

const char *dc_backend_label(dc_backend_e b, const char *store_backend)
{
    if (b == DC_BACKEND_OTHER && store_backend && dc_backend_of(store_backend) == DC_BACKEND_OTHER &&
        strcmp(store_backend, "none") != 0)
        return store_backend;
    return dc_backend_name(b);
}

dc_backend_e dc_backend_of(const char *provider_name)
{
    for (unsigned i = 0; provider_name && i < DC_BACKEND_OTHER; i++)
        if (strcmp(provider_name, backend_names[i]) == 0)
            return (dc_backend_e)i;
    return DC_BACKEND_OTHER;
}

static inline void add64(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static inline uint64_t load64(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static inline uint64_t minute_of(apr_time_t t)
{
    return t > 0 ? (uint64_t)(t / apr_time_from_sec(60)) : 0;
}

/* ---- the region ---------------------------------------------------------- */

static uint64_t layout_signature(void)
{
    return (uint64_t)sizeof(dc_metrics_slot_t) << 32 | (uint64_t)sizeof(struct dc_metrics) << 8 |
           DC_LATENCY_BUCKETS;
}

size_t dc_metrics_region_size(size_t n_slots)
{
    return 63 + sizeof(struct dc_metrics) + n_slots * sizeof(dc_metrics_slot_t);
}

dc_metrics_t *dc_metrics_attach(void *mem, size_t n_slots)
{
    dc_metrics_t *m;

    if (!mem || n_slots == 0)
        return NULL;
    m = (dc_metrics_t *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    if (m->magic == DC_METRICS_MAGIC && m->layout == layout_signature() && m->n_slots == n_slots)
        return m;
    memset(m, 0, sizeof(*m) + n_slots * sizeof(dc_metrics_slot_t));
    m->layout = layout_signature();
    m->n_slots = n_slots;
    m->started = apr_time_now();
    __atomic_store_n(&m->magic, DC_METRICS_MAGIC, __ATOMIC_RELEASE);
    return m;
}

dc_metrics_t *dc_metrics_create(apr_pool_t *p, size_t n_slots)
{
    void *mem;

    if (n_slots == 0)
        return NULL;
    mem = apr_pcalloc(p, dc_metrics_region_size(n_slots));
    return dc_metrics_attach(mem, n_slots);
}

size_t dc_metrics_n_slots(const dc_metrics_t *m)
{
    return m ? m->n_slots : 0;
}

dc_metrics_slot_t *dc_metrics_slot(dc_metrics_t *m, size_t index)
{
    return m && index < m->n_slots ? &m->slots[index] : NULL;
}

apr_time_t dc_metrics_started(const dc_metrics_t *m)
{
    return m ? m->started : 0;
}

/* ---- writers ------------------------------------------------------------- */

static unsigned bucket_of(uint64_t us)
{
    unsigned lo = 0, hi = DC_LATENCY_BOUNDS;

    /* First bound >= us; DC_LATENCY_BOUNDS when above every bound. */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;

        if (dc_latency_bounds_us[mid] < us)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* No count: it is the sum of the buckets, one atomic add less per request. */
static void histogram_add(dc_histogram_t *h, apr_interval_time_t duration)
{
    uint64_t us = duration > 0 ? (uint64_t)duration : 0;

    add64(&h->sum_us, us);
    add64(&h->buckets[bucket_of(us)], 1);
}

const char *dc_sink_op_name(dc_sink_op_e op)
{
    return op == DC_SINK_OP_SEND ? "send" : "delete";
}

void dc_sink_observe(dc_sink_figures_t *f, dc_sink_op_e op, int ok, apr_interval_time_t duration,
                     uint64_t bytes)
{
    f->ops[op]++;
    if (!ok)
        f->errors[op]++;
    else
        f->bytes += bytes;
    histogram_add(&f->latency[op], duration);
    f->latency[op].count++;
}

/* The ring entry of this minute, claimed and cleared by the first writer to see it. */
static dc_minute_t *current_minute(dc_metrics_slot_t *slot, uint64_t minute)
{
    dc_minute_t *e = &slot->minutes[minute % DC_METRICS_MINUTES];
    uint64_t seen = __atomic_load_n(&e->minute, __ATOMIC_RELAXED);

    if (seen == minute)
        return e;
    if (seen > minute)
        return NULL; /* a writer with a clock behind: leave the newer minute alone */
    if (__atomic_compare_exchange_n(&e->minute, &seen, minute, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        __atomic_store_n(&e->requests, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->errors, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->sum_us, 0, __ATOMIC_RELAXED);
        return e;
    }
    return seen == minute ? e : NULL;
}

void dc_metrics_observe_request(dc_metrics_slot_t *slot, dc_endpoint_e ep, int status,
                                apr_interval_time_t duration, apr_time_t now)
{
    unsigned cls = status >= 200 && status < 600 ? (unsigned)(status / 100 - 1) : 0;
    dc_minute_t *minute;

    if (!slot)
        return;
    if ((unsigned)ep >= DC_EP_COUNT)
        ep = DC_EP_OTHER;
    add64(&slot->requests[ep][cls], 1);
    histogram_add(&slot->latency[ep], duration);
    if ((minute = current_minute(slot, minute_of(now))) != NULL) {
        add64(&minute->requests, 1);
        add64(&minute->sum_us, duration > 0 ? (uint64_t)duration : 0);
        if (status >= 500)
            add64(&minute->errors, 1);
    }
}

void dc_metrics_observe_store(dc_metrics_slot_t *slot, dc_backend_e backend, dc_store_op_e op,
                              dc_store_status_e result, apr_interval_time_t duration)
{
    if (!slot || (unsigned)op >= DC_STORE_OP_COUNT)
        return;
    if ((unsigned)backend >= DC_BACKEND_COUNT)
        backend = DC_BACKEND_OTHER;
    add64(&slot->store_ops[backend][op], 1);
    if (duration >= 0)
        histogram_add(&slot->store_latency[backend][op], duration);
    if (result == DC_STORE_UNAVAILABLE)
        add64(&slot->store_errors[backend][op], 1);
}

void dc_metrics_observe_hits(dc_metrics_slot_t *slot, size_t n, int accepted)
{
    if (slot && n)
        add64(accepted ? &slot->hits_accepted : &slot->hits_refused, n);
}

void dc_metrics_observe_ring_full(dc_metrics_slot_t *slot)
{
    if (slot)
        add64(&slot->ring_full, 1);
}

void dc_metrics_observe_visitor(dc_metrics_t *m, const char *id, size_t len, apr_time_t now)
{
    uint64_t minute = minute_of(now), seen;
    uint32_t h, rest;
    hll_minute_t *e;
    uint8_t rank, cur;
    unsigned index;

    if (!m || !id)
        return;
    e = &m->hll[minute % DC_METRICS_MINUTES];
    seen = __atomic_load_n(&e->minute, __ATOMIC_ACQUIRE);
    if (seen > minute)
        return;
    if (seen < minute) {
        if (__atomic_compare_exchange_n(&e->minute, &seen, minute, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            for (unsigned i = 0; i < DC_HLL_REGISTERS; i++)
                __atomic_store_n(&e->registers[i], 0, __ATOMIC_RELAXED);
        } else if (seen != minute) {
            return;
        }
    }
    /* One 32-bit hash: 12 bits pick the register, the other 20 give the
     * rank (at most 21). That is plenty below a few hundred million
     * distinct ids, far above what 30 minutes of one site brings. */
    h = dc_murmur3_32(id, len, 0x9747b28cu);
    index = h >> (32 - DC_HLL_PRECISION);
    rest = h << DC_HLL_PRECISION;
    rank = rest ? (uint8_t)(__builtin_clz(rest) + 1) : (uint8_t)(32 - DC_HLL_PRECISION + 1);
    cur = __atomic_load_n(&e->registers[index], __ATOMIC_RELAXED);
    while (cur < rank && !__atomic_compare_exchange_n(&e->registers[index], &cur, rank, 1,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* ---- readers ------------------------------------------------------------- */

static void histogram_accumulate(dc_histogram_t *into, const dc_histogram_t *h)
{
    into->sum_us += load64(&h->sum_us);
    for (unsigned i = 0; i < DC_LATENCY_BUCKETS; i++) {
        uint64_t n = load64(&h->buckets[i]);

        into->buckets[i] += n;
        into->count += n;
    }
}

void dc_metrics_sum(const dc_metrics_t *m, dc_metrics_slot_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t s = 0; m && s < m->n_slots; s++) {
        const dc_metrics_slot_t *slot = &m->slots[s];

        for (unsigned e = 0; e < DC_EP_COUNT; e++) {
            for (unsigned c = 0; c < DC_STATUS_CLASSES; c++)
                out->requests[e][c] += load64(&slot->requests[e][c]);
            histogram_accumulate(&out->latency[e], &slot->latency[e]);
        }
        for (unsigned b = 0; b < DC_BACKEND_COUNT; b++) {
            for (unsigned o = 0; o < DC_STORE_OP_COUNT; o++) {
                out->store_ops[b][o] += load64(&slot->store_ops[b][o]);
                out->store_errors[b][o] += load64(&slot->store_errors[b][o]);
                histogram_accumulate(&out->store_latency[b][o], &slot->store_latency[b][o]);
            }
        }
        out->hits_accepted += load64(&slot->hits_accepted);
        out->hits_refused += load64(&slot->hits_refused);
        out->ring_full += load64(&slot->ring_full);
    }
}

double dc_histogram_quantile(const dc_histogram_t *h, double q)
{
    uint64_t total = 0, below = 0;
    double rank;

    for (unsigned i = 0; i < DC_LATENCY_BUCKETS; i++)
        total += h->buckets[i];
    if (total == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    rank = q * (double)total;
    for (unsigned i = 0; i < DC_LATENCY_BUCKETS; i++) {
        uint64_t n = h->buckets[i];

        if (n && (double)(below + n) >= rank) {
            double lo = i == 0 ? 0 : dc_latency_bounds_us[i - 1];
            double hi;

            if (i == DC_LATENCY_BOUNDS)
                return lo; /* the overflow bucket has no upper bound */
            hi = dc_latency_bounds_us[i];
            return lo + (hi - lo) * ((rank - (double)below) / (double)n);
        }
        below += n;
    }
    return dc_latency_bounds_us[DC_LATENCY_BOUNDS - 1];
}

void dc_metrics_recent_minutes(const dc_metrics_t *m, apr_time_t now, dc_minute_t *out, size_t n)
{
    uint64_t current = minute_of(now);

    if (n > DC_METRICS_MINUTES)
        n = DC_METRICS_MINUTES;
    memset(out, 0, n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        uint64_t want = current >= n - 1 - i ? current - (n - 1 - i) : 0;

        out[i].minute = want;
        for (size_t s = 0; m && s < m->n_slots; s++) {
            const dc_minute_t *e = &m->slots[s].minutes[want % DC_METRICS_MINUTES];

            if (want && load64(&e->minute) == want) {
                out[i].requests += load64(&e->requests);
                out[i].errors += load64(&e->errors);
                out[i].sum_us += load64(&e->sum_us);
            }
        }
    }
}

double dc_metrics_distinct_visitors(const dc_metrics_t *m, apr_time_t now)
{
    uint8_t merged[DC_HLL_REGISTERS];
    uint64_t current = minute_of(now);
    double sum = 0, mreg = DC_HLL_REGISTERS, alpha = 0.7213 / (1 + 1.079 / DC_HLL_REGISTERS), e;
    unsigned zeros = 0;

    if (!m)
        return 0;
    memset(merged, 0, sizeof(merged));
    for (unsigned k = 0; k < DC_METRICS_MINUTES; k++) {
        const hll_minute_t *h = &m->hll[k];
        uint64_t minute = __atomic_load_n(&h->minute, __ATOMIC_ACQUIRE);

        if (minute == 0 || minute > current || current - minute >= DC_METRICS_MINUTES)
            continue;
        for (unsigned i = 0; i < DC_HLL_REGISTERS; i++) {
            uint8_t r = __atomic_load_n(&h->registers[i], __ATOMIC_RELAXED);

            if (r > merged[i])
                merged[i] = r;
        }
    }
    for (unsigned i = 0; i < DC_HLL_REGISTERS; i++) {
        sum += ldexp(1.0, -(int)merged[i]);
        zeros += merged[i] == 0;
    }
    e = alpha * mreg * mreg / sum;
    if (e <= 2.5 * mreg && zeros > 0)
        e = mreg * log(mreg / zeros); /* linear counting: accurate for small sets */
    return e;
}

double dc_metrics_visitors_error(void)
{
    return 1.04 / sqrt((double)DC_HLL_REGISTERS);
}

/* ---- the measured store -------------------------------------------------- */

void dc_metrics_note_store_result(dc_metrics_t *m, dc_store_t *store, dc_store_status_e result)
{
    uint32_t want = result == DC_STORE_UNAVAILABLE, seen;
    const char *detail = "";

    if (!m)
        return;
    seen = __atomic_load_n(&m->store_state, __ATOMIC_RELAXED);
    if (seen == want ||
        !__atomic_compare_exchange_n(&m->store_state, &seen, want, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    /* Only the writer that flipped the state logs: one line per change. The
     * URI is the masked one (no password) and the detail is the backend's. */
    dc_store_health(store, &detail);
    if (want)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10801) "store %s is degraded (%s): decisions fall back to the hash "
                              "alone and sticky assignments are not kept until it recovers",
               store && store->uri ? store->uri : "?", detail ? detail : "");
    else
        dc_log(DC_LOG_INFO, DCLOGNO(10802) "store %s is ok again (%s)",
               store && store->uri ? store->uri : "?", detail ? detail : "");
}

void dc_metrics_otel_add(dc_metrics_t *m, dc_otel_figure_e which, uint64_t n)
{
    if (m && (unsigned)which < DC_OTEL_FIGURES && n)
        add64(&m->otel[which], n);
}

void dc_metrics_otel_read(const dc_metrics_t *m, uint64_t *out)
{
    for (unsigned i = 0; i < DC_OTEL_FIGURES; i++)
        out[i] = m ? load64(&m->otel[i]) : 0;
}

int dc_metrics_store_degraded(const dc_metrics_t *m)
{
    return m && __atomic_load_n(&m->store_state, __ATOMIC_RELAXED) != 0;
}

/* What one operation of the measured store leaves behind: counters, the
 * degraded state, and on a traced request the server span's store outcome and
 * a child span for an operation that left the process. */
static void metered_done(dc_metered_store_t *ms, dc_store_op_e op, dc_store_status_e rc,
                         apr_time_t start)
{
    apr_time_t end = ms->timed ? apr_time_now() : 0;

    if (ms->slot)
        dc_metrics_observe_store(ms->slot, ms->backend, op, rc, ms->timed ? end - start : -1);
    dc_metrics_note_store_result(ms->metrics, ms->inner, rc);
    if (ms->span) {
        if (rc == DC_STORE_UNAVAILABLE)
            ms->span->store_result = DC_OTEL_STORE_DEGRADED;
        else if (op == DC_STORE_OP_LOAD)
            ms->span->store_result = rc == DC_STORE_OK ? DC_OTEL_STORE_HIT : DC_OTEL_STORE_MISS;
        if (ms->timed)
            dc_otel_store_span(ms->otel, ms->span, ms->backend, op, rc, start, end);
    }
}

static dc_store_status_e metered_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                      const char *id, size_t id_len, dc_assignments_t *out)
{
    dc_metered_store_t *ms = s->impl;
    apr_time_t start = ms->timed ? apr_time_now() : 0;
    dc_store_status_e rc = dc_store_load(ms->inner, p, env_id, id, id_len, out);

    metered_done(ms, DC_STORE_OP_LOAD, rc, start);
    return rc;
}

static dc_store_status_e metered_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                      const char *id, size_t id_len,
                                      const dc_assignments_t *changes, int64_t now_ms)
{
    dc_metered_store_t *ms = s->impl;
    apr_time_t start = ms->timed ? apr_time_now() : 0;
    dc_store_status_e rc = dc_store_save(ms->inner, p, env_id, id, id_len, changes, now_ms);

    metered_done(ms, DC_STORE_OP_SAVE, rc, start);
    return rc;
}

static dc_store_health_e metered_health(dc_store_t *s, const char **detail)
{
    dc_metered_store_t *ms = s->impl;

    return dc_store_health(ms->inner, detail);
}

static const dc_store_provider_t metered_provider = {
    .name = "metered", .load = metered_load, .save = metered_save, .health = metered_health,
};

dc_store_t *dc_metrics_meter_store(dc_metered_store_t *ms, dc_store_t *inner, dc_metrics_t *m,
                                   dc_metrics_slot_t *slot, struct dc_otel *otel,
                                   struct dc_otel_span *span)
{
    if ((!slot && !span) || dc_store_is_none(inner))
        return inner;
    ms->otel = otel;
    ms->span = span;
    ms->inner = inner;
    ms->metrics = m;
    ms->slot = slot;
    ms->backend = dc_backend_of(inner->provider->name);
    ms->timed = ms->backend != DC_BACKEND_MEMORY && ms->backend != DC_BACKEND_SHM;
    ms->store.provider = &metered_provider;
    ms->store.impl = ms;
    ms->store.uri = inner->uri;
    ms->store.prefix = inner->prefix;
    return &ms->store;
}

/*
 * dc_metrics and dc_status: counts are exact (one thread or many), quantiles
 * fall within the histogram's resolution, the HyperLogLog estimate stays
 * within its stated bound, the minute ring forgets what is older than 30
 * minutes, and the routes dc_api adds (/v2/metrics, /metrics, /v2/health,
 * /v2/ready, /iserver/nsessions, the status page) answer with the right
 * status, auth and figures. The store wrapper counts a failing backend's
 * errors and logs one line per state change, and no log line carries a
 * secret.
 */
#include "dc_test.h"

#include "dc_api.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_status.h"

#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <math.h>
#include <string.h>

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

#define T0 apr_time_from_sec(1800000000) /* a fixed "now" for the ring tests */

/* ---- the region ------------------------------------------------------------ */

START_TEST(region_layout)
{
    size_t size = dc_metrics_region_size(4);
    char *mem = apr_pcalloc(pool, size);
    dc_metrics_t *m = dc_metrics_attach(mem + 1, 4); /* misaligned on purpose */
    dc_metrics_slot_t *s0, *s3;

    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq((uintptr_t)m % 64, 0);
    ck_assert_uint_eq(dc_metrics_n_slots(m), 4);
    s0 = dc_metrics_slot(m, 0);
    s3 = dc_metrics_slot(m, 3);
    ck_assert_ptr_nonnull(s3);
    ck_assert_ptr_null(dc_metrics_slot(m, 4));
    ck_assert_uint_eq((uintptr_t)s0 % 64, 0);
    ck_assert_uint_eq((uintptr_t)s3 % 64, 0);
    ck_assert((char *)(s3 + 1) <= mem + size);
    dc_metrics_observe_request(s3, DC_EP_FLAGS, 200, 100, T0);
    /* attaching again (a graceful restart, another process) keeps the counters */
    ck_assert_ptr_eq(dc_metrics_attach(mem + 1, 4), m);
    ck_assert_uint_eq(dc_metrics_slot(m, 3)->requests[DC_EP_FLAGS][1], 1);
    /* another slot count is another layout: reinitialised */
    m = dc_metrics_attach(mem + 1, 3);
    ck_assert_uint_eq(dc_metrics_slot(m, 2)->requests[DC_EP_FLAGS][1], 0);
    ck_assert_ptr_null(dc_metrics_attach(mem, 0));
}
END_TEST

START_TEST(counts_are_exact)
{
    dc_metrics_t *m = dc_metrics_create(pool, 3);
    dc_metrics_slot_t sum;
    static const int statuses[] = {200, 204, 301, 400, 404, 413, 500, 503, 99, 600};

    for (int i = 0; i < 1000; i++)
        dc_metrics_observe_request(dc_metrics_slot(m, (size_t)i % 3), DC_EP_CAMPAIGNS,
                                   statuses[i % 10], 1000 + i, T0);
    dc_metrics_observe_request(dc_metrics_slot(m, 0), (dc_endpoint_e)99, 200, 5, T0);
    dc_metrics_observe_store(dc_metrics_slot(m, 1), DC_BACKEND_REDIS, DC_STORE_OP_LOAD,
                             DC_STORE_UNAVAILABLE, 300);
    dc_metrics_observe_store(dc_metrics_slot(m, 1), DC_BACKEND_REDIS, DC_STORE_OP_LOAD,
                             DC_STORE_OK, 300);
    dc_metrics_observe_hits(dc_metrics_slot(m, 2), 7, 1);
    dc_metrics_observe_hits(dc_metrics_slot(m, 2), 2, 0);
    dc_metrics_observe_ring_full(dc_metrics_slot(m, 1));
    dc_metrics_observe_ring_full(dc_metrics_slot(m, 2));
    dc_metrics_sum(m, &sum);
    ck_assert_uint_eq(sum.requests[DC_EP_CAMPAIGNS][1], 200); /* 2xx */
    ck_assert_uint_eq(sum.requests[DC_EP_CAMPAIGNS][2], 100); /* 3xx */
    ck_assert_uint_eq(sum.requests[DC_EP_CAMPAIGNS][3], 300); /* 4xx */
    ck_assert_uint_eq(sum.requests[DC_EP_CAMPAIGNS][4], 200); /* 5xx */
    ck_assert_uint_eq(sum.requests[DC_EP_CAMPAIGNS][0], 200); /* 99 and 600 */
    ck_assert_uint_eq(sum.latency[DC_EP_CAMPAIGNS].count, 1000);
    ck_assert_uint_eq(sum.latency[DC_EP_CAMPAIGNS].sum_us, 1000 * 1000 + 999 * 1000 / 2);
    ck_assert_uint_eq(sum.requests[DC_EP_OTHER][1], 1); /* an unknown endpoint is "other" */
    ck_assert_uint_eq(sum.store_ops[DC_BACKEND_REDIS][DC_STORE_OP_LOAD], 2);
    ck_assert_uint_eq(sum.store_latency[DC_BACKEND_REDIS][DC_STORE_OP_LOAD].count, 2);
    dc_metrics_observe_store(dc_metrics_slot(m, 1), DC_BACKEND_MEMORY, DC_STORE_OP_SAVE,
                             DC_STORE_OK, -1); /* counted, not timed */
    dc_metrics_sum(m, &sum);
    ck_assert_uint_eq(sum.store_ops[DC_BACKEND_MEMORY][DC_STORE_OP_SAVE], 1);
    ck_assert_uint_eq(sum.store_latency[DC_BACKEND_MEMORY][DC_STORE_OP_SAVE].count, 0);
    ck_assert_uint_eq(sum.store_errors[DC_BACKEND_REDIS][DC_STORE_OP_LOAD], 1);
    ck_assert_uint_eq(sum.hits_accepted, 7);
    ck_assert_uint_eq(sum.hits_refused, 2);
    ck_assert_uint_eq(sum.ring_full, 2);
    ck_assert_int_eq(dc_backend_of("redis"), DC_BACKEND_REDIS);
    ck_assert_int_eq(dc_backend_of("carrier-pigeon"), DC_BACKEND_OTHER);
    ck_assert_int_eq(dc_backend_of(NULL), DC_BACKEND_OTHER);
}
END_TEST

/* The bucket [lo, hi] that holds us. */
static void bucket_bounds(double us, double *lo, double *hi)
{
    *lo = 0;
    for (int i = 0; i < DC_LATENCY_BOUNDS; i++) {
        if (us <= dc_latency_bounds_us[i]) {
            *hi = dc_latency_bounds_us[i];
            return;
        }
        *lo = dc_latency_bounds_us[i];
    }
    *hi = INFINITY;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

START_TEST(quantiles_within_resolution)
{
    enum { N = 20000 };
    static uint64_t values[N];
    static const double qs[] = {0.5, 0.9, 0.95, 0.99};
    dc_metrics_t *m = dc_metrics_create(pool, 1);
    dc_metrics_slot_t sum;
    uint64_t x = 88172645463325252ull;

    ck_assert_double_eq(dc_histogram_quantile(&dc_metrics_slot(m, 0)->latency[0], 0.5), 0);
    /* log-normal-ish latencies around 1 ms, from a fixed xorshift sequence */
    for (int i = 0; i < N; i++) {
        double u;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        u = (double)(x >> 11) / 9007199254740992.0;
        values[i] = (uint64_t)(50 + exp(4 + 6 * u));
        dc_metrics_observe_request(dc_metrics_slot(m, 0), DC_EP_FLAGS, 200,
                                   (apr_interval_time_t)values[i], T0);
    }
    qsort(values, N, sizeof(values[0]), compare_u64);
    dc_metrics_sum(m, &sum);
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        double truth = (double)values[(size_t)ceil(qs[k] * N) - 1], lo, hi;
        double est = dc_histogram_quantile(&sum.latency[DC_EP_FLAGS], qs[k]);

        bucket_bounds(truth, &lo, &hi);
        ck_assert_msg(est >= lo && est <= hi, "q%.2f: estimate %.1f us outside [%.0f, %.0f] (true %.0f)",
                      qs[k], est, lo, hi, truth);
        ck_assert_msg(fabs(est - truth) <= truth / 3 + 1e-9, "q%.2f: %.1f vs %.0f", qs[k], est,
                      truth);
    }
    /* one value: every quantile reads inside its bucket */
    m = dc_metrics_create(pool, 1);
    dc_metrics_observe_request(dc_metrics_slot(m, 0), DC_EP_FLAGS, 200, 7000, T0);
    dc_metrics_sum(m, &sum);
    ck_assert(dc_histogram_quantile(&sum.latency[DC_EP_FLAGS], 0.99) >= 6000);
    ck_assert(dc_histogram_quantile(&sum.latency[DC_EP_FLAGS], 0.99) <= 8000);
    /* beyond the last bound */
    dc_metrics_observe_request(dc_metrics_slot(m, 0), DC_EP_FLAGS, 200, 60000000, T0);
    dc_metrics_observe_request(dc_metrics_slot(m, 0), DC_EP_FLAGS, 200, 60000000, T0);
    dc_metrics_sum(m, &sum);
    ck_assert_double_eq(dc_histogram_quantile(&sum.latency[DC_EP_FLAGS], 0.99), 10000000);
}
END_TEST

typedef struct {
    dc_metrics_t *m;
    dc_metrics_slot_t *slot;
    int n;
    unsigned id;
} worker_arg_t;

static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    worker_arg_t *a = data;
    char id[32];

    for (int i = 0; i < a->n; i++) {
        dc_metrics_observe_request(a->slot, (dc_endpoint_e)(i % DC_EP_COUNT), i % 2 ? 200 : 500,
                                   i % 3000, T0);
        dc_metrics_observe_store(a->slot, DC_BACKEND_MEMORY, DC_STORE_OP_SAVE, DC_STORE_OK, 3);
        dc_metrics_observe_hits(a->slot, 1, 1);
        snprintf(id, sizeof(id), "t%u-%d", a->id, i % 500);
        dc_metrics_observe_visitor(a->m, id, strlen(id), T0);
    }
    /* a plain return, not apr_thread_exit(): pthread_exit's unwinding trips ASan */
    (void)t;
    return NULL;
}

/* Threads sharing one slot (an httpd child) and threads with their own (fcgi). */
static void run_threads(int shared)
{
    enum { THREADS = 8, PER_THREAD = 60000 };
    dc_metrics_t *m = dc_metrics_create(pool, shared ? 1 : THREADS);
    apr_thread_t *threads[THREADS];
    worker_arg_t args[THREADS];
    dc_metrics_slot_t sum;
    uint64_t total = 0;
    apr_status_t rv;
    double visitors;

    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg_t){m, dc_metrics_slot(m, shared ? 0 : (size_t)i), PER_THREAD,
                                 (unsigned)i};
        ck_assert_int_eq(apr_thread_create(&threads[i], NULL, worker, &args[i], pool), 0);
    }
    for (int i = 0; i < THREADS; i++)
        apr_thread_join(&rv, threads[i]);
    dc_metrics_sum(m, &sum);
    for (int e = 0; e < DC_EP_COUNT; e++) {
        uint64_t of_endpoint = 0;

        for (int c = 0; c < DC_STATUS_CLASSES; c++)
            of_endpoint += sum.requests[e][c];
        /* every request is in its status class and in the histogram, exactly once */
        ck_assert_uint_eq(of_endpoint, sum.latency[e].count);
        total += of_endpoint;
    }
    ck_assert_uint_eq(total, (uint64_t)THREADS * PER_THREAD);
    ck_assert_uint_eq(sum.requests[0][4] + sum.requests[1][4] + sum.requests[2][4] +
                          sum.requests[3][4] + sum.requests[4][4] + sum.requests[5][4],
                      (uint64_t)THREADS * PER_THREAD / 2);
    ck_assert_uint_eq(sum.store_ops[DC_BACKEND_MEMORY][DC_STORE_OP_SAVE],
                      (uint64_t)THREADS * PER_THREAD);
    ck_assert_uint_eq(sum.store_latency[DC_BACKEND_MEMORY][DC_STORE_OP_SAVE].count,
                      (uint64_t)THREADS * PER_THREAD);
    ck_assert_uint_eq(sum.store_latency[DC_BACKEND_MEMORY][DC_STORE_OP_SAVE].sum_us,
                      (uint64_t)THREADS * PER_THREAD * 3);
    ck_assert_uint_eq(sum.hits_accepted, (uint64_t)THREADS * PER_THREAD);
    visitors = dc_metrics_distinct_visitors(m, T0);
    ck_assert_msg(fabs(visitors - THREADS * 500) <= THREADS * 500 * 0.05, "%f", visitors);
}

START_TEST(threads_sum_exactly_shared_slot)
{
    run_threads(1);
}
END_TEST

START_TEST(threads_sum_exactly_own_slots)
{
    run_threads(0);
}
END_TEST

/* ---- distinct visitors --------------------------------------------------- */

static void check_hll(unsigned n)
{
    dc_metrics_t *m = dc_metrics_create(pool, 1);
    char id[40];
    double est, bound = 3 * dc_metrics_visitors_error(); /* 3 sigma, the header's bound */

    /* spread over 20 minutes, each visitor seen three times */
    for (unsigned rep = 0; rep < 3; rep++)
        for (unsigned i = 0; i < n; i++) {
            snprintf(id, sizeof(id), "visitor-%u@example", i);
            dc_metrics_observe_visitor(m, id, strlen(id),
                                       T0 + apr_time_from_sec(60) * (apr_time_t)((i + rep) % 20));
        }
    est = dc_metrics_distinct_visitors(m, T0 + apr_time_from_sec(60) * 20);
    ck_assert_msg(fabs(est - n) <= n * bound, "%u distinct: estimate %.0f (bound %.1f %%)", n, est,
                  bound * 100);
    /* 31 minutes after the last one, they are all out of the window */
    ck_assert_double_eq(dc_metrics_distinct_visitors(m, T0 + apr_time_from_sec(60) * 52), 0);
}

START_TEST(hll_10k)
{
    check_hll(10000);
}
END_TEST

START_TEST(hll_100k)
{
    check_hll(100000);
}
END_TEST

START_TEST(hll_small_and_window)
{
    dc_metrics_t *m = dc_metrics_create(pool, 2);

    ck_assert_double_eq(dc_metrics_distinct_visitors(m, T0), 0);
    for (int i = 0; i < 100; i++)
        dc_metrics_observe_visitor(m, "same", 4, T0);
    ck_assert_double_eq(round(dc_metrics_distinct_visitors(m, T0)), 1);
    dc_metrics_observe_visitor(m, "other", 5, T0 + apr_time_from_sec(60 * 29));
    ck_assert_double_eq(round(dc_metrics_distinct_visitors(m, T0 + apr_time_from_sec(60 * 29))), 2);
    /* minute 30 reuses minute 0's ring entry: the old visitor is gone */
    dc_metrics_observe_visitor(m, "third", 5, T0 + apr_time_from_sec(60 * 30));
    ck_assert_double_eq(round(dc_metrics_distinct_visitors(m, T0 + apr_time_from_sec(60 * 30))), 2);
    ck_assert(dc_metrics_visitors_error() > 0.015 && dc_metrics_visitors_error() < 0.017);
}
END_TEST

START_TEST(minute_ring)
{
    dc_metrics_t *m = dc_metrics_create(pool, 2);
    dc_minute_t minutes[DC_METRICS_MINUTES];

    for (int i = 0; i < 5; i++)
        dc_metrics_observe_request(dc_metrics_slot(m, (size_t)i % 2), DC_EP_CAMPAIGNS, 200, 100,
                                   T0);
    dc_metrics_observe_request(dc_metrics_slot(m, 1), DC_EP_CAMPAIGNS, 503, 300,
                               T0 + apr_time_from_sec(60));
    dc_metrics_recent_minutes(m, T0 + apr_time_from_sec(60), minutes, DC_METRICS_MINUTES);
    ck_assert_uint_eq(minutes[DC_METRICS_MINUTES - 1].requests, 1);
    ck_assert_uint_eq(minutes[DC_METRICS_MINUTES - 1].errors, 1);
    ck_assert_uint_eq(minutes[DC_METRICS_MINUTES - 1].sum_us, 300);
    ck_assert_uint_eq(minutes[DC_METRICS_MINUTES - 2].requests, 5);
    ck_assert_uint_eq(minutes[DC_METRICS_MINUTES - 2].sum_us, 500);
    ck_assert_uint_eq(minutes[0].requests, 0);
    /* 30 minutes later minute T0's entry is reused, its counts cleared */
    dc_metrics_observe_request(dc_metrics_slot(m, 0), DC_EP_CAMPAIGNS, 200, 100,
                               T0 + apr_time_from_sec(60 * 30));
    dc_metrics_recent_minutes(m, T0 + apr_time_from_sec(60 * 30), minutes, DC_METRICS_MINUTES);
    ck_assert_uint_eq(minutes[DC_METRICS_MINUTES - 1].requests, 1);
    ck_assert_uint_eq(minutes[0].requests, 1); /* T0 + 1 min */
}
END_TEST

/* ---- through dc_api ----------------------------------------------------- */

typedef struct {
    char lines[64][1024];
    int n;
} log_capture_t;

static void capture_sink(void *baton, dc_log_level_e level, const char *msg)
{
    log_capture_t *c = baton;

    (void)level;
    if (c->n < 64)
        snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%s", msg);
}

/* A store whose backend goes down and up on demand: "redis" by name. */
static int store_down;

static dc_store_status_e flaky_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                    const char *id, size_t id_len, dc_assignments_t *out)
{
    (void)s, (void)p, (void)env_id, (void)id, (void)id_len;
    memset(out, 0, sizeof(*out));
    return store_down ? DC_STORE_UNAVAILABLE : DC_STORE_NOT_FOUND;
}

static dc_store_status_e flaky_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                    const char *id, size_t id_len, const dc_assignments_t *c,
                                    int64_t now_ms)
{
    (void)s, (void)p, (void)env_id, (void)id, (void)id_len, (void)c, (void)now_ms;
    return store_down ? DC_STORE_UNAVAILABLE : DC_STORE_OK;
}

static dc_store_health_e flaky_health(dc_store_t *s, const char **detail)
{
    (void)s;
    *detail = store_down ? "connection refused" : "connected";
    return store_down ? DC_STORE_HEALTH_DEGRADED : DC_STORE_HEALTH_OK;
}

static const dc_store_provider_t flaky_provider = {
    .name = "redis", .load = flaky_load, .save = flaky_save, .health = flaky_health,
};

static dc_service_t svc;
static dc_store_t flaky_store = {&flaky_provider, NULL, "redis://app:***@127.0.0.1:1/0", ""};

static void service_setup(void)
{
    apr_pool_create(&pool, NULL);
    ck_assert_int_eq(dc_service_init(&svc, pool), 0);
    svc.metrics = dc_metrics_create(pool, 2);
}

static void service_teardown(void)
{
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(pool);
    dc_log_set_sink(NULL, NULL, DC_LOG_WARN);
}

static void publish_sample(void)
{
    dc_config_t *cfg;
    dc_config_error_t err;

    ck_assert_int_eq(dc_config_load_file(DC_SAMPLE_BUCKETING, &cfg, &err), 0);
    dc_slot_publish(&svc.slot, cfg);
}

static void call(const char *method, const char *path, const char *body, const char *key,
                 dc_response_t *resp)
{
    dc_request_t req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = path;
    req.body = body ? body : "";
    req.body_len = body ? strlen(body) : 0;
    req.x_api_key = key;
    req.received = apr_time_now();
    req.metrics_slot = dc_metrics_slot(svc.metrics, 1);
    dc_api_handle(&svc, pool, &req, resp);
}

static json_t *body_json(const dc_response_t *resp)
{
    json_error_t err;
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, &err);

    ck_assert_msg(doc != NULL, "not JSON (%s): %.*s", err.text, (int)resp->body_len, resp->body);
    return doc;
}

START_TEST(ready_before_and_after_config)
{
    dc_response_t resp;
    json_t *doc;

    call("GET", "/v2/ready", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 503);
    doc = body_json(&resp);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(doc, "message")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(doc, "reason")));
    ck_assert(json_is_false(json_object_get(json_object_get(doc, "config"), "loaded")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "store"), "state")),
                     "ok");
    json_decref(doc);
    call("GET", "/v2/health", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    doc = body_json(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "ok");
    json_decref(doc);

    publish_sample();
    call("GET", "/v2/ready", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    doc = body_json(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "ready");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "config"),
                                                        "generation")),
                     1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "config"),
                                                        "campaigns")),
                     5);
    ck_assert(json_is_null(json_object_get(doc, "spool")));
    json_decref(doc);
    /* mounted under a prefix, as in an httpd <Location> */
    call("HEAD", "/decision/v2/ready", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    call("POST", "/v2/ready", "{}", NULL, &resp);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_str_eq(apr_table_get(resp.headers, "Allow"), "GET, HEAD, OPTIONS");
}
END_TEST

START_TEST(api_key_rules)
{
    static const char *const keyed[] = {"/v2/metrics", "/v2/ready", "/metrics",
                                        "/iserver/nsessions"};
    dc_response_t resp;
    dc_request_t req;

    svc.opt.require_api_key = 1;
    svc.opt.api_key = "k3y-s3cret";
    publish_sample();
    for (size_t i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++) {
        call("GET", keyed[i], NULL, NULL, &resp);
        ck_assert_msg(resp.status == 401, "%s: %d", keyed[i], resp.status);
        call("GET", keyed[i], NULL, "wrong", &resp);
        ck_assert_int_eq(resp.status, 401);
        call("GET", keyed[i], NULL, "k3y-s3cret", &resp);
        ck_assert_msg(resp.status == 200, "%s: %d", keyed[i], resp.status);
        ck_assert_ptr_nonnull(apr_table_get(resp.headers, "Access-Control-Allow-Origin"));
    }
    ck_assert(dc_api_owns_path("/decision/iserver/nsessions"));
    ck_assert(dc_api_owns_path("/v2/ready"));
    ck_assert(!dc_api_owns_path("/iserver/nsessions/x"));
    /* liveness is open */
    call("GET", "/v2/health", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    /* preflight of a read-only route */
    call("OPTIONS", "/v2/metrics", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 204);
    ck_assert_str_eq(apr_table_get(resp.headers, "Access-Control-Allow-Methods"),
                     "GET, HEAD, OPTIONS");
    /* the status page follows the same rule */
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/status";
    dc_status_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 401);
    req.authorization = "Bearer k3y-s3cret";
    dc_status_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, "text/html; charset=utf-8");
    req.method = "POST";
    dc_status_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 405);
    /* the Prometheus path is configurable, and can be turned off */
    svc.opt.prometheus_path = "/internal/prom";
    call("GET", "/internal/prom", NULL, "k3y-s3cret", &resp);
    ck_assert_int_eq(resp.status, 200);
    call("GET", "/metrics", NULL, "k3y-s3cret", &resp);
    ck_assert_int_eq(resp.status, 404);
    svc.opt.prometheus_path = NULL;
    call("GET", "/internal/prom", NULL, "k3y-s3cret", &resp);
    ck_assert_int_eq(resp.status, 404);
}
END_TEST

static double number_at(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);

    ck_assert_msg(json_is_number(v), "%s missing", key);
    return json_number_value(v);
}

START_TEST(flagship_metrics_move)
{
    static const char *const names[] = {"activate", "campaign", "campaigns", "flags", "metrics"};
    dc_response_t resp;
    json_t *doc;
    const char *key, *previous = "";
    json_t *value;

    publish_sample();
    for (int i = 0; i < 10; i++)
        call("POST", "/v2/campaigns", apr_psprintf(pool, "{\"visitor_id\":\"v%d\"}", i % 4),
             NULL, &resp);
    call("POST", "/v2/campaigns", "not json", NULL, &resp);
    call("POST", "/v2/flags", "{\"visitor_id\":\"v9\"}", NULL, &resp);
    call("POST", "/v2/campaigns/c_vip", "{\"visitor_id\":\"v9\",\"context\":{\"isVIP\":true}}",
         NULL, &resp);
    call("GET", "/v2/nothing-here", NULL, NULL, &resp);
    call("GET", "/v2/metrics", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, "application/json; charset=utf-8");
    /* expvar's shape: "{\n", "key": value lines joined by ",\n", "\n}\n", sorted */
    ck_assert(resp.body_len > 4 && strncmp(resp.body, "{\n\"", 3) == 0);
    ck_assert(strcmp(resp.body + resp.body_len - 3, "\n}\n") == 0);
    doc = body_json(&resp);
    json_object_foreach(doc, key, value)
    {
        ck_assert_msg(strcmp(previous, key) < 0 || !*previous, "%s after %s", key, previous);
        previous = key;
    }
    ck_assert_ptr_nonnull(strstr(resp.body, "\"cmdline\": ["));
    for (size_t i = 0; i < 5; i++) {
        const char *q[] = {"p50", "p90", "p95", "p99"};

        number_at(doc, apr_pstrcat(pool, "handlers.", names[i], ".errors", NULL));
        for (int k = 0; k < 4; k++)
            number_at(doc, apr_pstrcat(pool, "handlers.", names[i], ".response_time.", q[k], NULL));
    }
    ck_assert_double_eq(number_at(doc, "handlers.campaigns.requests.2xx"), 10);
    ck_assert_double_eq(number_at(doc, "handlers.campaigns.requests.4xx"), 1);
    ck_assert_double_eq(number_at(doc, "handlers.campaigns.requests.total"), 11);
    ck_assert_double_eq(number_at(doc, "handlers.flags.requests.2xx"), 1);
    ck_assert_double_eq(number_at(doc, "handlers.campaign.requests.2xx"), 1);
    ck_assert_double_eq(number_at(doc, "handlers.other.requests.4xx"), 1);
    ck_assert_double_eq(number_at(doc, "handlers.metrics.requests.total"), 0); /* this one is not over yet */
    ck_assert(number_at(doc, "handlers.campaigns.response_time.p50") > 0);
    ck_assert(number_at(doc, "handlers.campaigns.response_time.p99") >=
              number_at(doc, "handlers.campaigns.response_time.p50"));
    ck_assert_double_eq(json_number_value(json_object_get(json_object_get(doc, "visitors"),
                                                          "distinct_30m")),
                        5);
    json_decref(doc);
    call("GET", "/v2/metrics", NULL, NULL, &resp);
    doc = body_json(&resp);
    ck_assert_double_eq(number_at(doc, "handlers.metrics.requests.2xx"), 1);
    json_decref(doc);

    /* metrics off: the same keys, zeros */
    svc.metrics = NULL;
    call("GET", "/v2/metrics", NULL, NULL, &resp);
    doc = body_json(&resp);
    ck_assert_double_eq(number_at(doc, "handlers.campaigns.requests.total"), 0);
    ck_assert(json_is_false(json_object_get(doc, "metrics_enabled")));
    json_decref(doc);
    call("GET", "/iserver/nsessions", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 503);
    call("GET", "/metrics", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_ptr_null(strstr(resp.body, "decision_requests_total"));
    ck_assert_ptr_nonnull(strstr(resp.body, "\ndecision_config_loaded 1\n"));
}
END_TEST

/* The value of the first line starting with prefix + ' ', or -1. */
static double prom_value(const dc_response_t *resp, const char *prefix)
{
    char *text = apr_pstrmemdup(pool, resp->body, resp->body_len), *line, *last;

    for (line = apr_strtok(text, "\n", &last); line; line = apr_strtok(NULL, "\n", &last))
        if (strncmp(line, prefix, strlen(prefix)) == 0 && line[strlen(prefix)] == ' ')
            return atof(line + strlen(prefix) + 1);
    return -1;
}

START_TEST(prometheus_figures)
{
    dc_response_t resp;

    publish_sample();
    svc.store = &flaky_store;
    for (int i = 0; i < 3; i++)
        call("POST", "/v2/campaigns", "{\"visitor_id\":\"v1\"}", NULL, &resp);
    call("POST", "/v2/activate", "{\"cid\":\"e\",\"vid\":\"v1\",\"caid\":\"vg\",\"vaid\":\"v\"}",
         NULL, &resp);
    ck_assert_int_eq(resp.status, 204);
    call("GET", "/metrics", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_str_eq(resp.content_type, DC_PROMETHEUS_CONTENT_TYPE);
    ck_assert_double_eq(
        prom_value(&resp, "decision_requests_total{endpoint=\"campaigns\",status=\"2xx\"}"), 3);
    ck_assert_double_eq(
        prom_value(&resp, "decision_requests_total{endpoint=\"activate\",status=\"2xx\"}"), 1);
    ck_assert_double_eq(
        prom_value(&resp, "decision_request_duration_seconds_count{endpoint=\"campaigns\"}"), 3);
    ck_assert_double_eq(prom_value(&resp, "decision_request_duration_seconds_bucket{endpoint="
                                          "\"campaigns\",le=\"+Inf\"}"),
                        3);
    ck_assert(prom_value(&resp, "decision_request_duration_seconds_bucket{endpoint="
                                "\"campaigns\",le=\"0.00001\"}") >= 0);
    ck_assert_double_eq(prom_value(&resp, "decision_config_loaded"), 1);
    ck_assert_double_eq(prom_value(&resp, "decision_config_campaigns"), 5);
    ck_assert_double_eq(prom_value(&resp, "decision_store_up{backend=\"redis\"}"), 1);
    ck_assert(prom_value(&resp, "decision_store_operations_total{backend=\"redis\",op=\"load\"}") >=
              3);
    ck_assert_ptr_nonnull(strstr(resp.body, "# TYPE decision_request_duration_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(resp.body, "# HELP decision_requests_total "));
}
END_TEST


static void spool_figures(void *baton, dc_metrics_extra_t *out)
{
    (void)baton;
    out->has_spool = 1;
    out->spool.pending_records = 12;
    out->spool.oldest_unsent = apr_time_now() - apr_time_from_sec(90);
    out->spool.delivered = 1000;
    out->spool.dead_lettered = 2;
    out->spool.degraded = 1;
    snprintf(out->spool.last_error, sizeof(out->spool.last_error), "collector answered 503");
}

START_TEST(source_and_spool_figures)
{
    char path[512], err[256];
    dc_source_options_t o;
    dc_source_t *src;
    dc_config_t *cfg = NULL;
    dc_response_t resp;
    json_t *doc, *source, *spool;

    snprintf(path, sizeof(path), "%s/missing-%d.json", P_tmpdir, (int)getpid());
    memset(&o, 0, sizeof(o));
    o.file = path;
    src = dc_source_create(pool, &o, err, sizeof(err));
    ck_assert_ptr_nonnull(src);
    svc.source = src;
    svc.metrics_extra = spool_figures;
    ck_assert_int_eq(dc_source_refresh(src, &cfg), DC_SOURCE_FAILED);
    call("GET", "/v2/ready", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 503);
    doc = body_json(&resp);
    ck_assert_msg(strstr(json_string_value(json_object_get(doc, "reason")), "last fetch failed"),
                  "%s", json_string_value(json_object_get(doc, "reason")));
    source = json_object_get(json_object_get(doc, "config"), "source");
    ck_assert_str_eq(json_string_value(json_object_get(source, "last_fetch")), "error");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(source, "last_error")));
    spool = json_object_get(doc, "spool");
    ck_assert_str_eq(json_string_value(json_object_get(spool, "state")), "degraded");
    ck_assert_int_eq(json_integer_value(json_object_get(spool, "pending_records")), 12);
    ck_assert(json_number_value(json_object_get(spool, "oldest_unsent_age_seconds")) >= 89);
    json_decref(doc);

    /* the file appears: the next refresh publishes it */
    {
        FILE *in = fopen(DC_SAMPLE_BUCKETING, "rb"), *out = fopen(path, "wb");
        char buf[4096];
        size_t n;

        ck_assert(in && out);
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
            fwrite(buf, 1, n, out);
        fclose(in);
        fclose(out);
    }
    ck_assert_int_eq(dc_source_refresh(src, &cfg), DC_SOURCE_CHANGED);
    dc_slot_publish(&svc.slot, cfg);
    call("GET", "/v2/ready", NULL, NULL, &resp);
    ck_assert_int_eq(resp.status, 200);
    doc = body_json(&resp);
    source = json_object_get(json_object_get(doc, "config"), "source");
    ck_assert_str_eq(json_string_value(json_object_get(source, "origin")), "file");
    ck_assert_str_eq(json_string_value(json_object_get(source, "last_fetch")), "ok");
    ck_assert(json_is_null(json_object_get(source, "last_error")));
    json_decref(doc);
    call("GET", "/metrics", NULL, NULL, &resp);
    ck_assert_double_eq(prom_value(&resp, "decision_spool_pending_records"), 12);
    ck_assert_double_eq(prom_value(&resp, "decision_spool_up"), 0);
    ck_assert_double_eq(prom_value(&resp, "decision_events_total{outcome=\"dead_lettered\"}"), 2);
    ck_assert_double_eq(prom_value(&resp, "decision_config_fetches_total{result=\"error\"}"), 1);
    ck_assert_double_eq(prom_value(&resp, "decision_config_fetches_total{result=\"changed\"}"), 1);
    unlink(path);
    dc_source_destroy(src);
}
END_TEST

START_TEST(store_state_changes_are_logged_once_without_secrets)
{
    log_capture_t logs;
    dc_response_t resp;
    int degraded_lines = 0, ok_lines = 0;
    dc_metrics_slot_t sum;
    json_t *doc;

    memset(&logs, 0, sizeof(logs));
    dc_log_set_sink(capture_sink, &logs, DC_LOG_TRACE);
    publish_sample();
    svc.store = &flaky_store;
    svc.opt.require_api_key = 1;
    svc.opt.api_key = "k3y-s3cret";
    store_down = 0;
    call("POST", "/v2/campaigns", "{\"visitor_id\":\"a\"}", "k3y-s3cret", &resp);
    ck_assert_int_eq(resp.status, 200);
    store_down = 1;
    for (int i = 0; i < 5; i++)
        call("POST", "/v2/campaigns", "{\"visitor_id\":\"a\"}", "k3y-s3cret", &resp);
    ck_assert_int_eq(resp.status, 200); /* decided from the hash alone */
    call("GET", "/v2/ready", NULL, "k3y-s3cret", &resp);
    ck_assert_int_eq(resp.status, 200); /* a degraded store does not make the server unready */
    doc = body_json(&resp);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "store"), "state")),
                     "degraded");
    json_decref(doc);
    call("POST", "/v2/campaigns", "{\"visitor_id\":\"a\"}", "not-the-key", &resp);
    ck_assert_int_eq(resp.status, 401);
    store_down = 0;
    for (int i = 0; i < 3; i++)
        call("POST", "/v2/campaigns", "{\"visitor_id\":\"a\"}", "k3y-s3cret", &resp);
    for (int i = 0; i < logs.n; i++) {
        ck_assert_msg(!strstr(logs.lines[i], "k3y-s3cret") && !strstr(logs.lines[i], "not-the-key"),
                      "secret in log: %s", logs.lines[i]);
        degraded_lines += strstr(logs.lines[i], "DC10801") != NULL;
        ok_lines += strstr(logs.lines[i], "DC10802") != NULL;
    }
    ck_assert_int_eq(degraded_lines, 1);
    ck_assert_int_eq(ok_lines, 1);
    for (int i = 0; i < logs.n; i++)
        if (strstr(logs.lines[i], "DC10801"))
            ck_assert_ptr_nonnull(strstr(logs.lines[i], "redis://app:***@"));
    dc_metrics_sum(svc.metrics, &sum);
    ck_assert_uint_eq(sum.store_errors[DC_BACKEND_REDIS][DC_STORE_OP_LOAD], 5);
    ck_assert_uint_eq(sum.store_ops[DC_BACKEND_REDIS][DC_STORE_OP_LOAD], 9);
    ck_assert_uint_eq(sum.store_latency[DC_BACKEND_REDIS][DC_STORE_OP_LOAD].count, 9);
}
END_TEST

START_TEST(status_page_escapes_and_lists_campaigns)
{
    static const char *doc_text =
        "{\"campaigns\":[{\"id\":\"c<1>\",\"name\":\"<script>alert(1)</script> & co\","
        "\"type\":\"ab\",\"bucketRanges\":[{\"r\":[0,100]}],\"variationGroups\":[{\"id\":\"vg1\","
        "\"name\":\"everyone\",\"targeting\":{\"targetingGroups\":[{\"targetings\":[{\"operator\":"
        "\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}]}]},\"variations\":[{\"id\":\"va\","
        "\"name\":\"A\",\"reference\":true,\"allocation\":50},{\"id\":\"vb\",\"name\":\"B\","
        "\"allocation\":50}]}]}]}";
    dc_config_t *cfg;
    dc_config_error_t err;
    dc_response_t resp;
    dc_request_t req;
    char *html;

    ck_assert_int_eq(dc_config_parse(doc_text, strlen(doc_text), &cfg, &err), 0);
    dc_slot_publish(&svc.slot, cfg);
    call("POST", "/v2/campaigns", "{\"visitor_id\":\"x\"}", NULL, &resp);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = "/decision-status";
    dc_status_handle(&svc, pool, &req, &resp);
    ck_assert_int_eq(resp.status, 200);
    html = apr_pstrmemdup(pool, resp.body, resp.body_len);
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    ck_assert_ptr_nonnull(strstr(html, "c&lt;1&gt;"));
    ck_assert_ptr_nonnull(strstr(html, "<svg"));
    ck_assert_ptr_nonnull(strstr(html, "vb</code>: 50"));
    ck_assert_ptr_nonnull(strstr(html, "Campaigns (1)"));
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *core = tcase_create("core"), *api = tcase_create("api");

    tcase_set_timeout(core, 120);
    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, region_layout);
    tcase_add_test(core, counts_are_exact);
    tcase_add_test(core, quantiles_within_resolution);
    tcase_add_test(core, threads_sum_exactly_shared_slot);
    tcase_add_test(core, threads_sum_exactly_own_slots);
    tcase_add_test(core, hll_10k);
    tcase_add_test(core, hll_100k);
    tcase_add_test(core, hll_small_and_window);
    tcase_add_test(core, minute_ring);
    suite_add_tcase(s, core);
    tcase_add_checked_fixture(api, service_setup, service_teardown);
    tcase_add_test(api, ready_before_and_after_config);
    tcase_add_test(api, api_key_rules);
    tcase_add_test(api, flagship_metrics_move);
    tcase_add_test(api, prometheus_figures);
    tcase_add_test(api, store_state_changes_are_logged_once_without_secrets);
    tcase_add_test(api, source_and_spool_figures);
    tcase_add_test(api, status_page_escapes_and_lists_campaigns);
    suite_add_tcase(s, api);
    return s;
}

DC_TEST_MAIN(metrics_suite)

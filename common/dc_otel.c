/*
 * The tracer and its exporter: settings, W3C trace context, sampling, the
 * span ring and the thread that empties it. The encoding is dc_otel_pb.c.
 *
 * The ring. A request's span is built on its stack and copied into the ring
 * in one memcpy under the ring's mutex; nothing else happens under it (the
 * exporter copies a batch out under the same mutex and encodes outside it).
 * Tried and rejected: a lock-free MPSC queue of fixed slots, which saves the
 * uncontended mutex (two atomic operations) but needs a per-slot sequence and
 * a reader that spins on a slot still being written; the mutex is held for a
 * copy of under half a kilobyte, so contention is rare even with 64 threads.
 *
 * Ids. xoshiro256** per thread, seeded from the kernel (getrandom) the first
 * time a thread needs an id and again in a forked child (pthread_atfork bumps
 * a generation the thread compares), so two children of one parent never
 * draw the same ids. Ids need to be unique, not secret.
 */
#include "dc_otel.h"
#include "dc_http.h"
#include "dc_log.h"
#include "dc_status.h"

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <zlib.h>

const char *const dc_otel_setting_names[] = {
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    NULL,
};

#define MAX_RETRIES 5
#define RETRY_BASE apr_time_from_msec(250)
#define RETRY_CAP apr_time_from_sec(8)
#define MAX_METRIC_SERVICES 8

/* ---- settings ---------------------------------------------------------------------- */

static const char *get(dc_otel_getter_fn *fn, void *baton, const char *name)
{
    const char *v = fn(baton, name);

    return v && *v ? v : NULL; /* an empty variable is unset, as the spec has it */
}

/* A whole number in [lo, hi], decimal digits only. */
static const char *read_count(apr_pool_t *p, const char *name, const char *text, long lo,
                              long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (!isdigit((unsigned char)text[0]) || *end || errno || v < lo || v > hi)
        return apr_psprintf(p, "%s: \"%s\" is not a whole number from %ld to %ld", name, text,
                            lo, hi);
    *out = v;
    return NULL;
}

static const char *read_ms(apr_pool_t *p, const char *name, const char *text, long lo, long hi,
                           apr_interval_time_t *out)
{
    long ms;
    const char *err = read_count(p, name, text, lo, hi, &ms);

    if (!err)
        *out = apr_time_from_msec(ms);
    return err;
}

static const char *read_url(apr_pool_t *p, const char *name, const char *text, const char *suffix,
                            const char **out)
{
    size_t n = strlen(text);

    if ((strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0) ||
        strpbrk(text, " \t\r\n") || n < 9)
        return apr_psprintf(p, "%s: \"%s\" is not an http:// or https:// URL", name, text);
    if (!suffix) {
        *out = text;
        return NULL;
    }
    while (n > 0 && text[n - 1] == '/')
        n--;
    *out = apr_pstrcat(p, apr_pstrmemdup(p, text, n), suffix, NULL);
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..len) (the W3C Baggage encoding of values). */
static char *pct_decode(apr_pool_t *p, const char *s, size_t len)
{
    char *out = apr_palloc(p, len + 1), *o = out;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < len &&
            (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static char *trim(apr_pool_t *p, const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return apr_pstrmemdup(p, s, len);
}

/* "key=value,key2=value2" (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS):
 * keys as they are, values percent-decoded. A member without '=' or with an
 * empty key is an error; header values may hold no control characters. */
static const char *read_pairs(apr_pool_t *p, const char *name, const char *text, int headers,
                              apr_array_header_t *out)
{
    const char *s = text;

    while (*s) {
        const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        dc_otel_attr_t *a;
        char *key, *value;

        if (!eq)
            return apr_psprintf(p, "%s: \"%s\" has a member without '=' (key=value,...)", name,
                                text);
        key = trim(p, s, (size_t)(eq - s));
        value = pct_decode(p, eq + 1, (size_t)(end - eq - 1));
        value = trim(p, value, strlen(value));
        if (!*key)
            return apr_psprintf(p, "%s: \"%s\" has a member with an empty key", name, text);
        for (const char *c = key; *c; c++)
            if ((unsigned char)*c <= ' ' || *c == ':' || (unsigned char)*c >= 0x7f)
                return apr_psprintf(p, "%s: key \"%s\" holds a character keys may not hold",
                                    name, key);
        if (headers)
            for (const char *c = value; *c; c++)
                if ((unsigned char)*c < ' ' || *c == 0x7f)
                    return apr_psprintf(p, "%s: the value of %s holds a control character",
                                        name, key);
        a = apr_array_push(out);
        a->key = key;
        a->value = value;
        s = comma ? comma + 1 : end;
    }
    return NULL;
}

static const char *read_bool(apr_pool_t *p, const char *name, const char *text, int *out)
{
    if (strcasecmp(text, "true") == 0)
        *out = 1;
    else if (strcasecmp(text, "false") == 0)
        *out = 0;
    else
        return apr_psprintf(p, "%s: \"%s\" is not true or false", name, text);
    return NULL;
}

static const char *read_exporter(apr_pool_t *p, const char *name, const char *text, int *on)
{
    if (!text || strcmp(text, "otlp") == 0)
        *on = 1;
    else if (strcmp(text, "none") == 0)
        *on = 0;
    else
        return apr_psprintf(p, "%s: \"%s\" is not supported (otlp or none)", name, text);
    return NULL;
}

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        if ((err = (expr)) != NULL)                                                            \
            return err;                                                                        \
    } while (0)

const char *dc_otel_options_read(dc_otel_options_t *o, apr_pool_t *p, dc_otel_getter_fn *fn,
                                 void *baton, const char *process_name)
{
    const char *err, *v, *base = NULL;
    int disabled = 0, traces = 1, metrics = 1;
    long n;
    dc_otel_attr_t *a;
    apr_array_header_t *pairs;

    memset(o, 0, sizeof(*o));
    o->timeout = apr_time_from_sec(10);
    o->sampler = DC_OTEL_PARENT_ALWAYS_ON;
    o->ratio = 1.0;
    o->metric_interval = apr_time_from_sec(60);
    o->schedule_delay = apr_time_from_sec(5);
    o->max_queue = 2048;
    o->max_batch = 512;
    o->headers = apr_array_make(p, 2, sizeof(const char *));
    o->resource = apr_array_make(p, 8, sizeof(dc_otel_attr_t));

    if ((v = get(fn, baton, "OTEL_SDK_DISABLED")))
        CHECK(read_bool(p, "OTEL_SDK_DISABLED", v, &disabled));
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_ENDPOINT")))
        CHECK(read_url(p, "OTEL_EXPORTER_OTLP_ENDPOINT", v, "", &base));
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")))
        CHECK(read_url(p, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v, NULL, &o->traces_url));
    else if (base)
        o->traces_url = apr_pstrcat(p, base, "/v1/traces", NULL);
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")))
        CHECK(read_url(p, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", v, NULL, &o->metrics_url));
    else if (base)
        o->metrics_url = apr_pstrcat(p, base, "/v1/metrics", NULL);
    CHECK(read_exporter(p, "OTEL_TRACES_EXPORTER", get(fn, baton, "OTEL_TRACES_EXPORTER"),
                        &traces));
    CHECK(read_exporter(p, "OTEL_METRICS_EXPORTER", get(fn, baton, "OTEL_METRICS_EXPORTER"),
                        &metrics));
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_PROTOCOL")) && strcmp(v, "http/protobuf") != 0)
        return apr_psprintf(p,
                            "OTEL_EXPORTER_OTLP_PROTOCOL: \"%s\" is not supported "
                            "(http/protobuf is)",
                            v);
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_HEADERS"))) {
        pairs = apr_array_make(p, 4, sizeof(dc_otel_attr_t));
        CHECK(read_pairs(p, "OTEL_EXPORTER_OTLP_HEADERS", v, 1, pairs));
        for (int i = 0; i < pairs->nelts; i++) {
            a = &APR_ARRAY_IDX(pairs, i, dc_otel_attr_t);
            APR_ARRAY_PUSH(o->headers, const char *) = apr_pstrcat(p, a->key, ": ", a->value, NULL);
        }
    }
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_COMPRESSION"))) {
        if (strcmp(v, "gzip") == 0)
            o->gzip = 1;
        else if (strcmp(v, "none") != 0)
            return apr_psprintf(p, "OTEL_EXPORTER_OTLP_COMPRESSION: \"%s\" is not gzip or none",
                                v);
    }
    if ((v = get(fn, baton, "OTEL_EXPORTER_OTLP_TIMEOUT")))
        CHECK(read_ms(p, "OTEL_EXPORTER_OTLP_TIMEOUT", v, 1, 600000, &o->timeout));

    if ((v = get(fn, baton, "OTEL_TRACES_SAMPLER"))) {
        static const struct {
            const char *name;
            dc_otel_sampler_e s;
        } samplers[] = {{"always_on", DC_OTEL_ALWAYS_ON},
                        {"always_off", DC_OTEL_ALWAYS_OFF},
                        {"traceidratio", DC_OTEL_RATIO},
                        {"parentbased_always_on", DC_OTEL_PARENT_ALWAYS_ON},
                        {"parentbased_always_off", DC_OTEL_PARENT_ALWAYS_OFF},
                        {"parentbased_traceidratio", DC_OTEL_PARENT_RATIO}};
        size_t i;

        for (i = 0; i < sizeof(samplers) / sizeof(samplers[0]); i++)
            if (strcmp(v, samplers[i].name) == 0)
                break;
        if (i == sizeof(samplers) / sizeof(samplers[0]))
            return apr_psprintf(p,
                                "OTEL_TRACES_SAMPLER: \"%s\" is not supported (always_on, "
                                "always_off, traceidratio, parentbased_always_on, "
                                "parentbased_always_off, parentbased_traceidratio)",
                                v);
        o->sampler = samplers[i].s;
    }
    if ((v = get(fn, baton, "OTEL_TRACES_SAMPLER_ARG")) &&
        (o->sampler == DC_OTEL_RATIO || o->sampler == DC_OTEL_PARENT_RATIO)) {
        char *end;
        double r;

        errno = 0;
        r = strtod(v, &end);
        if (*end || errno || end == v || !(r >= 0.0 && r <= 1.0))
            return apr_psprintf(p, "OTEL_TRACES_SAMPLER_ARG: \"%s\" is not a ratio from 0 to 1",
                                v);
        o->ratio = r;
    }
    if ((v = get(fn, baton, "OTEL_METRIC_EXPORT_INTERVAL")))
        CHECK(read_ms(p, "OTEL_METRIC_EXPORT_INTERVAL", v, 100, 86400000, &o->metric_interval));
    if ((v = get(fn, baton, "OTEL_BSP_SCHEDULE_DELAY")))
        CHECK(read_ms(p, "OTEL_BSP_SCHEDULE_DELAY", v, 1, 3600000, &o->schedule_delay));
    if ((v = get(fn, baton, "OTEL_BSP_MAX_QUEUE_SIZE"))) {
        CHECK(read_count(p, "OTEL_BSP_MAX_QUEUE_SIZE", v, 1, 1 << 20, &n));
        o->max_queue = (unsigned)n;
    }
    if ((v = get(fn, baton, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"))) {
        CHECK(read_count(p, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", v, 1, 1 << 20, &n));
        o->max_batch = (unsigned)n;
    }
    if (o->max_batch > o->max_queue)
        o->max_batch = o->max_queue; /* as the spec says: the batch is at most the queue */

    /* The resource: OTEL_RESOURCE_ATTRIBUTES, then service.name (OTEL_SERVICE_NAME wins),
     * then what the SDK says of itself. */
    if ((v = get(fn, baton, "OTEL_RESOURCE_ATTRIBUTES")))
        CHECK(read_pairs(p, "OTEL_RESOURCE_ATTRIBUTES", v, 0, o->resource));
    o->service_name = get(fn, baton, "OTEL_SERVICE_NAME");
    for (int i = 0; i < o->resource->nelts; i++) {
        a = &APR_ARRAY_IDX(o->resource, i, dc_otel_attr_t);
        if (strcmp(a->key, "service.name") == 0) {
            if (!o->service_name)
                o->service_name = a->value;
            a->value = o->service_name;
        }
    }
    if (!o->service_name) {
        o->service_name = apr_pstrcat(p, "unknown_service:", process_name, NULL);
        a = apr_array_push(o->resource);
        a->key = "service.name";
        a->value = o->service_name;
    } else if (!get(fn, baton, "OTEL_RESOURCE_ATTRIBUTES") ||
               !strstr(get(fn, baton, "OTEL_RESOURCE_ATTRIBUTES"), "service.name")) {
        a = apr_array_push(o->resource);
        a->key = "service.name";
        a->value = o->service_name;
    }
    a = apr_array_push(o->resource);
    a->key = "telemetry.sdk.name";
    a->value = "mod_decision";
    a = apr_array_push(o->resource);
    a->key = "telemetry.sdk.language";
    a->value = "c";
    a = apr_array_push(o->resource);
    a->key = "telemetry.sdk.version";
    a->value = PACKAGE_VERSION;

    if (!traces)
        o->traces_url = NULL;
    if (!metrics)
        o->metrics_url = NULL;
    o->enabled = !disabled && (o->traces_url || o->metrics_url);
    return NULL;
}

/* ---- W3C trace context ------------------------------------------------------------- */

static int lower_hex(const char *s, size_t n, uint8_t *out)
{
    int nonzero = 0;

    for (size_t i = 0; i < n; i++) {
        int hi = s[2 * i], lo = s[2 * i + 1];

        if (!((hi >= '0' && hi <= '9') || (hi >= 'a' && hi <= 'f')) ||
            !((lo >= '0' && lo <= '9') || (lo >= 'a' && lo <= 'f')))
            return -1;
        out[i] = (uint8_t)(hexval(hi) << 4 | hexval(lo));
        nonzero |= out[i];
    }
    return nonzero ? 0 : 1;
}

int dc_otel_parse_traceparent(const char *h, dc_otel_context_t *out)
{
    uint8_t version, flags;
    size_t len;

    if (!h)
        return -1;
    while (*h == ' ' || *h == '\t')
        h++;
    len = strlen(h);
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    /* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55 */
    if (len < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-')
        return -1;
    if (lower_hex(h, 1, &version) < 0 || version == 0xff)
        return -1;
    if (version == 0 && len != 55)
        return -1;
    if (version != 0 && len > 55 && h[55] != '-')
        return -1; /* a later version may append fields after a dash */
    if (lower_hex(h + 3, 16, out->trace_id) != 0 || lower_hex(h + 36, 8, out->span_id) != 0)
        return -1; /* not hex, or all zero */
    if (lower_hex(h + 53, 1, &flags) < 0)
        return -1;
    out->flags = flags & 0x01;
    return 0;
}

int dc_otel_tracestate_valid(const char *h)
{
    size_t len, members = 1;

    if (!h)
        return 0;
    len = strlen(h);
    if (len == 0 || len > 512)
        return 0;
    for (const char *c = h; *c; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return 0;
        if (*c == ',' && ++members > 32)
            return 0;
    }
    /* every member is empty or has '=' after a non-empty key */
    for (const char *s = h; *s;) {
        const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        const char *k = s;

        while (k < end && (*k == ' ' || *k == '\t'))
            k++;
        if (k < end && (!eq || eq == k))
            return 0;
        s = comma ? comma + 1 : end;
    }
    return 1;
}

/* ---- ids and sampling ------------------------------------------------------------ */

static unsigned long fork_generation = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork(void)
{
    __atomic_add_fetch(&fork_generation, 1, __ATOMIC_RELAXED);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, after_fork);
}

typedef struct {
    uint64_t s[4];
    unsigned long generation;
} prng_t;

static __thread prng_t prng;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void prng_seed(prng_t *r)
{
    uint64_t seed = 0;

    pthread_once(&atfork_once, register_atfork);
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint64_t)apr_time_now() ^ (uint64_t)(uintptr_t)r ^ (uint64_t)getpid() << 32;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
    r->generation = __atomic_load_n(&fork_generation, __ATOMIC_RELAXED);
}

static uint64_t prng_next(void)
{
    prng_t *r = &prng;
    uint64_t result, t;

    if (r->generation != __atomic_load_n(&fork_generation, __ATOMIC_RELAXED))
        prng_seed(r);
    result = rotl(r->s[1] * 5, 7) * 9;
    t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

void dc_otel_random_id(uint8_t *out, size_t len)
{
    int nonzero;

    do {
        nonzero = 0;
        for (size_t i = 0; i < len; i += 8) {
            uint64_t v = prng_next();
            size_t n = len - i < 8 ? len - i : 8;

            memcpy(out + i, &v, n);
            nonzero |= v != 0;
        }
    } while (!nonzero);
}

/* TraceIdRatioBased: the trace id's last 8 bytes as a number below ratio × 2^64
 * (the random part of a W3C trace id; the same id gives the same answer
 * everywhere, so every service of a trace samples it alike). */
static int ratio_sample(double ratio, const uint8_t trace_id[16])
{
    uint64_t v = 0;

    if (ratio >= 1.0)
        return 1;
    if (ratio <= 0.0)
        return 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | trace_id[i];
    return (double)(v >> 11) < ratio * (double)(UINT64_C(1) << 53);
}

int dc_otel_should_sample(const dc_otel_options_t *o, const dc_otel_context_t *parent,
                          const uint8_t trace_id[16])
{
    switch (o->sampler) {
    case DC_OTEL_ALWAYS_ON: return 1;
    case DC_OTEL_ALWAYS_OFF: return 0;
    case DC_OTEL_RATIO: return ratio_sample(o->ratio, trace_id);
    case DC_OTEL_PARENT_ALWAYS_ON:
        return parent ? parent->flags & 1 : 1;
    case DC_OTEL_PARENT_ALWAYS_OFF:
        return parent ? parent->flags & 1 : 0;
    case DC_OTEL_PARENT_RATIO:
        return parent ? parent->flags & 1 : ratio_sample(o->ratio, trace_id);
    }
    return 0;
}

/* ---- the tracer ------------------------------------------------------------------ */

typedef struct {
    dc_service_t *svc;
    dc_otel_guard_fn *guard;
    void *baton;
} metric_source_t;

struct dc_otel {
    apr_pool_t *pool;
    dc_otel_options_t opt;
    dc_metrics_t *figures;
    apr_thread_mutex_t *lock;      /* the ring, and the fields below it */
    apr_thread_cond_t *wake;
    dc_otel_span_t *ring;
    unsigned head, count;
    int stopping, waiting;
    apr_time_t deadline;           /* while stopping: when to give up */
    metric_source_t sources[MAX_METRIC_SERVICES];
    unsigned n_sources;
    apr_thread_t *thread;
    CURL *curl;
    int failing;                   /* the last export failed: logged once until one succeeds */
    apr_time_t metrics_started;
};

/* The options in p: the tracer outlives the settings it was made from (a
 * decision-fcgi reload frees them). */
static void copy_options(apr_pool_t *p, dc_otel_options_t *to, const dc_otel_options_t *o)
{
    *to = *o;
    to->traces_url = o->traces_url ? apr_pstrdup(p, o->traces_url) : NULL;
    to->metrics_url = o->metrics_url ? apr_pstrdup(p, o->metrics_url) : NULL;
    to->service_name = apr_pstrdup(p, o->service_name);
    to->headers = apr_array_make(p, o->headers->nelts, sizeof(const char *));
    for (int i = 0; i < o->headers->nelts; i++)
        APR_ARRAY_PUSH(to->headers, const char *) =
            apr_pstrdup(p, APR_ARRAY_IDX(o->headers, i, const char *));
    to->resource = apr_array_make(p, o->resource->nelts, sizeof(dc_otel_attr_t));
    for (int i = 0; i < o->resource->nelts; i++) {
        const dc_otel_attr_t *a = &APR_ARRAY_IDX(o->resource, i, dc_otel_attr_t);
        dc_otel_attr_t *c = apr_array_push(to->resource);

        c->key = apr_pstrdup(p, a->key);
        c->value = apr_pstrdup(p, a->value);
    }
}

dc_otel_t *dc_otel_create(apr_pool_t *p, const dc_otel_options_t *o, dc_metrics_t *figures)
{
    dc_otel_t *t;

    if (!o->enabled)
        return NULL;
    t = apr_pcalloc(p, sizeof(*t));
    t->pool = p;
    copy_options(p, &t->opt, o);
    t->figures = figures;
    t->ring = apr_pcalloc(p, (apr_size_t)o->max_queue * sizeof(dc_otel_span_t));
    if (apr_thread_mutex_create(&t->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS ||
        apr_thread_cond_create(&t->wake, p) != APR_SUCCESS)
        return NULL;
    t->metrics_started = apr_time_now();
    return t;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

int dc_otel_begin(const dc_otel_t *t, dc_otel_span_t *span, const char *traceparent,
                  const char *tracestate, apr_time_t start)
{
    dc_otel_context_t parent;
    int has_parent;

    if (!t || !t->opt.traces_url)
        return 0;
    has_parent = traceparent && dc_otel_parse_traceparent(traceparent, &parent) == 0;
    if (has_parent)
        memcpy(span->trace_id, parent.trace_id, 16);
    else
        dc_otel_random_id(span->trace_id, 16);
    if (!dc_otel_should_sample(&t->opt, has_parent ? &parent : NULL, span->trace_id))
        return 0;
    dc_otel_random_id(span->span_id, 8);
    span->has_parent = (uint8_t)has_parent;
    if (has_parent)
        memcpy(span->parent_id, parent.span_id, 8);
    span->type = DC_OTEL_SPAN_SERVER;
    span->flags = 1;
    span->store_result = DC_OTEL_STORE_SKIPPED;
    span->store_backend = DC_BACKEND_COUNT; /* "none" until the request says */
    span->campaigns = -1;
    span->route = NULL;
    span->start_ns = (int64_t)start * 1000;
    span->end_ns = 0;
    span->status = 0;
    span->port = 0;
    span->method[0] = span->path[0] = span->host[0] = span->env_id[0] = '\0';
    if (has_parent && tracestate && dc_otel_tracestate_valid(tracestate) &&
        strlen(tracestate) < sizeof(span->tracestate))
        copy_str(span->tracestate, sizeof(span->tracestate), tracestate);
    else
        span->tracestate[0] = '\0';
    return 1;
}

static void enqueue(dc_otel_t *t, const dc_otel_span_t *span)
{
    int full, signal;

    apr_thread_mutex_lock(t->lock);
    full = t->count == t->opt.max_queue;
    if (!full) {
        memcpy(&t->ring[(t->head + t->count) % t->opt.max_queue], span, sizeof(*span));
        t->count++;
    }
    signal = t->waiting && t->count == t->opt.max_batch;
    apr_thread_mutex_unlock(t->lock);
    if (full)
        dc_metrics_otel_add(t->figures, DC_OTEL_SPANS_DROPPED, 1);
    if (signal)
        apr_thread_cond_signal(t->wake);
}

void dc_otel_end(dc_otel_t *t, const dc_otel_span_t *span)
{
    if (t)
        enqueue(t, span);
}

void dc_otel_store_span(dc_otel_t *t, const dc_otel_span_t *parent, dc_backend_e backend,
                        dc_store_op_e op, dc_store_status_e result, apr_time_t start,
                        apr_time_t end)
{
    dc_otel_span_t s;

    if (!t || !parent)
        return;
    memcpy(s.trace_id, parent->trace_id, 16);
    dc_otel_random_id(s.span_id, 8);
    memcpy(s.parent_id, parent->span_id, 8);
    s.type = DC_OTEL_SPAN_STORE;
    s.has_parent = 1;
    s.flags = 1;
    s.store_backend = (uint8_t)backend;
    s.store_op = (uint8_t)op;
    s.store_status = (uint8_t)result;
    s.store_result = result == DC_STORE_UNAVAILABLE ? DC_OTEL_STORE_DEGRADED
                     : op == DC_STORE_OP_SAVE       ? DC_OTEL_STORE_SKIPPED
                     : result == DC_STORE_OK        ? DC_OTEL_STORE_HIT
                                                    : DC_OTEL_STORE_MISS;
    s.status = 0;
    s.route = NULL;
    s.campaigns = -1;
    s.start_ns = (int64_t)start * 1000;
    s.end_ns = (int64_t)end * 1000;
    s.method[0] = s.path[0] = s.host[0] = s.tracestate[0] = s.env_id[0] = '\0';
    s.port = 0;
    enqueue(t, &s);
}

/* ---- the exporter --------------------------------------------------------------------- */

void dc_otel_export_metrics_here(dc_otel_t *t, dc_service_t *svc, dc_otel_guard_fn *guard,
                                 void *baton)
{
    if (!t || !t->opt.metrics_url || !svc)
        return;
    apr_thread_mutex_lock(t->lock);
    for (unsigned i = 0; i < t->n_sources; i++)
        if (t->sources[i].svc == svc)
            goto out;
    if (t->n_sources < MAX_METRIC_SERVICES) {
        t->sources[t->n_sources].svc = svc;
        t->sources[t->n_sources].guard = guard;
        t->sources[t->n_sources++].baton = baton;
    }
out:
    apr_thread_mutex_unlock(t->lock);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return size * nmemb;
}

/* gzip of data[0..len) into p; NULL on a zlib failure. */
static char *gzip(apr_pool_t *p, const char *data, size_t len, size_t *out_len)
{
    z_stream z;
    size_t cap = compressBound((uLong)len) + 32;
    char *out = apr_palloc(p, cap);
    int rc;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return NULL;
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    rc = deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? out : NULL;
}

typedef enum { SENT_OK, SENT_RETRY, SENT_REJECTED } sent_e;

/* Cuts a transfer that outlives the stop deadline (stop may come mid-transfer). */
static int past_deadline(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
    dc_otel_t *t = data;

    return __atomic_load_n(&t->stopping, __ATOMIC_ACQUIRE) &&
           apr_time_now() > __atomic_load_n(&t->deadline, __ATOMIC_RELAXED);
}

static sent_e post(dc_otel_t *t, apr_pool_t *p, const char *url, const dc_buf_t *body,
                   apr_interval_time_t *retry_after, char *why, size_t whylen)
{
    struct curl_slist *headers = NULL;
    const char *data = body->data;
    size_t len = body->len;
    CURLcode cc;
    long status = 0;
    apr_interval_time_t timeout;

    if (!t->curl && !(t->curl = curl_easy_init())) {
        snprintf(why, whylen, "curl_easy_init failed");
        return SENT_RETRY;
    }
    if (t->opt.gzip && !(data = gzip(p, body->data, body->len, &len))) {
        snprintf(why, whylen, "gzip failed");
        return SENT_REJECTED;
    }
    timeout = t->opt.timeout;
    if (__atomic_load_n(&t->stopping, __ATOMIC_ACQUIRE)) {
        /* on the way out: no export outlives the shutdown budget */
        apr_interval_time_t left = __atomic_load_n(&t->deadline, __ATOMIC_RELAXED) - apr_time_now();

        if (left < timeout)
            timeout = left > apr_time_from_msec(50) ? left : apr_time_from_msec(50);
    }
    dc_http_setup(t->curl, url, (long)apr_time_as_msec(timeout), (long)apr_time_as_msec(timeout),
                  NULL, "mod_decision/" PACKAGE_VERSION);
    curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(t->curl, CURLOPT_XFERINFOFUNCTION, past_deadline);
    curl_easy_setopt(t->curl, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(t->curl, CURLOPT_NOPROGRESS, 0L);
    headers = curl_slist_append(headers, "Content-Type: application/x-protobuf");
    headers = curl_slist_append(headers, "Expect:");
    if (t->opt.gzip)
        headers = curl_slist_append(headers, "Content-Encoding: gzip");
    for (int i = 0; i < t->opt.headers->nelts; i++)
        headers = curl_slist_append(headers, APR_ARRAY_IDX(t->opt.headers, i, const char *));
    curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(t->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    cc = curl_easy_perform(t->curl);
    curl_slist_free_all(headers);
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(cc));
        return SENT_RETRY;
    }
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return SENT_OK;
    snprintf(why, whylen, "HTTP %ld", status);
#if LIBCURL_VERSION_NUM >= 0x074200
    {
        curl_off_t after = 0;

        if (curl_easy_getinfo(t->curl, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
            *retry_after = apr_time_from_sec(after > 30 ? 30 : after);
    }
#endif
    /* OTLP/HTTP: these are retryable, every other answer is final */
    if (status == 429 || status == 502 || status == 503 || status == 504)
        return SENT_RETRY;
    return SENT_REJECTED;
}

/* Sleeps until when (or until stop's deadline passes); the lock is held.
 * Returns 0 when the wait ended because the exporter must give up. */
static int wait_until(dc_otel_t *t, apr_time_t when)
{
    apr_time_t now;

    while ((now = apr_time_now()) < when) {
        if (t->stopping && now >= t->deadline)
            return 0;
        t->waiting = 1;
        apr_thread_cond_timedwait(t->wake, t->lock, when - now);
        t->waiting = 0;
        if (t->stopping)
            return now < t->deadline; /* on stop: no more backoff sleeping */
    }
    return 1;
}

/* POSTs body with retries. Returns 1 when accepted. */
static int export(dc_otel_t *t, apr_pool_t *p, const char *url, const dc_buf_t *body,
                  const char *what)
{
    char why[256] = "";
    apr_interval_time_t backoff = RETRY_BASE;

    for (int attempt = 0;; attempt++) {
        apr_interval_time_t retry_after = 0;
        sent_e rc = post(t, p, url, body, &retry_after, why, sizeof(why));
        int go_on;

        if (rc == SENT_OK) {
            if (__atomic_exchange_n(&t->failing, 0, __ATOMIC_RELAXED))
                dc_log(DC_LOG_INFO, DCLOGNO(10904) "otel: the collector at %s accepts exports again",
                       url);
            return 1;
        }
        dc_metrics_otel_add(t->figures,
                            strcmp(what, "spans") == 0 ? DC_OTEL_EXPORT_FAILURES
                                                       : DC_OTEL_METRIC_FAILURES,
                            1);
        if (rc == SENT_REJECTED || attempt + 1 >= MAX_RETRIES) {
            /* one warning when exports start failing, not one per batch of an outage */
            dc_log(__atomic_exchange_n(&t->failing, 1, __ATOMIC_RELAXED) ? DC_LOG_DEBUG
                                                                         : DC_LOG_WARN,
                   DCLOGNO(10901) "otel: %s not exported to %s (%s) after %d attempt(s); they are "
                                  "dropped and counted, and exports go on",
                   what, url, why, attempt + 1);
            return 0;
        }
        dc_log(DC_LOG_DEBUG, DCLOGNO(10902) "otel: exporting %s to %s failed (%s), retrying",
               what, url, why);
        /* full jitter under the exponential backoff, or the server's Retry-After */
        apr_thread_mutex_lock(t->lock);
        go_on = wait_until(t, apr_time_now() +
                                  (retry_after ? retry_after
                                               : backoff / 2 +
                                                     (apr_interval_time_t)(prng_next() %
                                                                           (uint64_t)(backoff / 2 + 1))));
        apr_thread_mutex_unlock(t->lock);
        if (!go_on)
            return 0;
        backoff = backoff * 2 > RETRY_CAP ? RETRY_CAP : backoff * 2;
    }
}

static void export_spans(dc_otel_t *t, apr_pool_t *p, const dc_otel_span_t *batch, size_t n)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 256 * n + 512);
    dc_otel_encode_spans(&b, &t->opt, batch, n);
    if (export(t, p, t->opt.traces_url, &b, "spans"))
        dc_metrics_otel_add(t->figures, DC_OTEL_SPANS_EXPORTED, n);
    else
        dc_metrics_otel_add(t->figures, DC_OTEL_SPANS_DROPPED, n);
}

static void export_metrics(dc_otel_t *t, apr_pool_t *p, const metric_source_t *src, unsigned n)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 16384);
    for (unsigned i = 0; i < n; i++) {
        dc_status_snapshot_t s;

        if (src[i].guard)
            src[i].guard(src[i].baton, 1);
        dc_status_gather(src[i].svc, p, &s);
        dc_otel_encode_metrics(&b, &t->opt, src[i].svc, &s, t->metrics_started);
        if (src[i].guard)
            src[i].guard(src[i].baton, 0);
    }
    if (export(t, p, t->opt.metrics_url, &b, "metrics"))
        dc_metrics_otel_add(t->figures, DC_OTEL_METRIC_EXPORTS, 1);
}

static void *APR_THREAD_FUNC exporter_main(apr_thread_t *thread, void *data)
{
    dc_otel_t *t = data;
    apr_pool_t *p;
    dc_otel_span_t *batch = malloc((size_t)t->opt.max_batch * sizeof(dc_otel_span_t));
    apr_time_t next_flush = apr_time_now() + t->opt.schedule_delay;
    apr_time_t next_metrics = apr_time_now() + t->opt.metric_interval;
    int final_metrics = 0;

    apr_pool_create(&p, NULL);
    apr_thread_mutex_lock(t->lock);
    while (batch) {
        size_t n = 0;
        metric_source_t src[MAX_METRIC_SERVICES];
        unsigned n_src = 0;
        int metrics_due;

        if (!t->stopping && t->count < t->opt.max_batch) {
            apr_time_t when = next_flush;

            if (t->n_sources && next_metrics < when)
                when = next_metrics;
            t->waiting = 1;
            if (when > apr_time_now())
                apr_thread_cond_timedwait(t->wake, t->lock, when - apr_time_now());
            t->waiting = 0;
        }
        if (t->stopping && apr_time_now() >= t->deadline)
            break;
        if (t->count && (t->count >= t->opt.max_batch || t->stopping ||
                         apr_time_now() >= next_flush)) {
            n = t->count < t->opt.max_batch ? t->count : t->opt.max_batch;
            for (size_t i = 0; i < n; i++)
                batch[i] = t->ring[(t->head + i) % t->opt.max_queue];
            t->head = (t->head + (unsigned)n) % t->opt.max_queue;
            t->count -= (unsigned)n;
        }
        metrics_due = t->n_sources && (apr_time_now() >= next_metrics ||
                                       (t->stopping && !t->count && !final_metrics));
        if (metrics_due) {
            n_src = t->n_sources;
            memcpy(src, t->sources, n_src * sizeof(src[0]));
        }
        if (t->stopping && !n && !metrics_due)
            break;
        apr_thread_mutex_unlock(t->lock);

        if (n)
            export_spans(t, p, batch, n);
        /* the ring was emptied (or was empty when its time came): the next batch waits
         * its delay; after a full batch the next one goes at once if it is full too */
        if (n ? n < t->opt.max_batch : apr_time_now() >= next_flush)
            next_flush = apr_time_now() + t->opt.schedule_delay;
        if (metrics_due) {
            export_metrics(t, p, src, n_src);
            next_metrics = apr_time_now() + t->opt.metric_interval;
            final_metrics = __atomic_load_n(&t->stopping, __ATOMIC_ACQUIRE);
        }
        apr_pool_clear(p);
        apr_thread_mutex_lock(t->lock);
    }
    if (t->count)
        dc_metrics_otel_add(t->figures, DC_OTEL_SPANS_DROPPED, t->count);
    t->count = 0;
    apr_thread_mutex_unlock(t->lock);
    free(batch);
    if (t->curl)
        curl_easy_cleanup(t->curl);
    t->curl = NULL;
    apr_pool_destroy(p);
    return NULL; /* not apr_thread_exit(): a plain return lets the thread end as it began */
}

int dc_otel_start(dc_otel_t *t)
{
    apr_status_t rv;

    if (!t || t->thread)
        return 0;
    /* here, not implicitly in the thread's first curl_easy_init, as the shipper and the
     * poller do: reference-counted, undone in dc_otel_stop */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10905) "otel: cannot initialise libcurl: no exports");
        return -1;
    }
    t->stopping = 0;
    rv = apr_thread_create(&t->thread, NULL, exporter_main, t, t->pool);
    if (rv != APR_SUCCESS) {
        char err[128];

        curl_global_cleanup();
        t->thread = NULL;
        dc_log(DC_LOG_ERROR, DCLOGNO(10903) "otel: cannot start the exporter thread (%s)",
               apr_strerror(rv, err, sizeof(err)));
        return -1;
    }
    return 0;
}

void dc_otel_stop(dc_otel_t *t, apr_interval_time_t budget)
{
    apr_status_t rv;

    if (!t || !t->thread)
        return;
    apr_thread_mutex_lock(t->lock);
    __atomic_store_n(&t->deadline, apr_time_now() + budget, __ATOMIC_RELAXED);
    __atomic_store_n(&t->stopping, 1, __ATOMIC_RELEASE);
    apr_thread_mutex_unlock(t->lock);
    apr_thread_cond_broadcast(t->wake);
    apr_thread_join(&rv, t->thread);
    t->thread = NULL;
    curl_global_cleanup();
}

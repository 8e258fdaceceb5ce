/*
 * dc_otel: W3C traceparent/tracestate parsing, samplers, the OTEL_* settings,
 * the bounded span queue, and the protobuf encoding read back by a small
 * wire-format reader (the integration tests decode with the official classes).
 */
#include "dc_otel.h"
#include "dc_status.h"
#include "dc_test.h"

#include <apr_strings.h>
#include <math.h>

static apr_pool_t *pool;

static void setup(void)
{
    apr_pool_create(&pool, NULL);
}

static void teardown(void)
{
    apr_pool_destroy(pool);
}

/* ---- traceparent ------------------------------------------------------------- */

START_TEST(traceparent_valid)
{
    dc_otel_context_t c;

    ck_assert_int_eq(dc_otel_parse_traceparent(
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c),
                     0);
    ck_assert_int_eq(c.trace_id[0], 0x4b);
    ck_assert_int_eq(c.trace_id[15], 0x36);
    ck_assert_int_eq(c.span_id[0], 0x00);
    ck_assert_int_eq(c.span_id[7], 0xb7);
    ck_assert_int_eq(c.flags, 1);
    ck_assert_int_eq(dc_otel_parse_traceparent(
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c),
                     0);
    ck_assert_int_eq(c.flags, 0);
    /* only the sampled bit is kept from the flags */
    ck_assert_int_eq(dc_otel_parse_traceparent(
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", &c),
                     0);
    ck_assert_int_eq(c.flags, 1);
    /* a later version: its first four fields, more after a dash */
    ck_assert_int_eq(dc_otel_parse_traceparent(
                         "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", &c),
                     0);
    /* surrounding blanks (header folding) */
    ck_assert_int_eq(dc_otel_parse_traceparent(
                         " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", &c),
                     0);
}
END_TEST

START_TEST(traceparent_invalid)
{
    static const char *const bad[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* v00 has no more */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* upper case */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  /* no dash after */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\x00-01",
    };
    dc_otel_context_t c;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(dc_otel_parse_traceparent(bad[i], &c) == -1, "accepted %s", bad[i]);
    ck_assert_int_eq(dc_otel_parse_traceparent(NULL, &c), -1);
}
END_TEST

START_TEST(tracestate)
{
    char big[600];

    ck_assert(dc_otel_tracestate_valid("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    ck_assert(dc_otel_tracestate_valid("a=1, b=2"));
    ck_assert(!dc_otel_tracestate_valid(""));
    ck_assert(!dc_otel_tracestate_valid("novalue"));
    ck_assert(!dc_otel_tracestate_valid("=x"));
    ck_assert(!dc_otel_tracestate_valid("a=1\nb=2"));
    ck_assert(!dc_otel_tracestate_valid("a=\xc3\xa9"));
    memset(big, 'a', sizeof(big) - 3);
    big[1] = '=';
    big[sizeof(big) - 3] = '\0';
    ck_assert(!dc_otel_tracestate_valid(big)); /* over 512 bytes */
    ck_assert(!dc_otel_tracestate_valid(
        "a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,"
        "a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1,a=1")); /* 33 members */
}
END_TEST

/* ---- settings ----------------------------------------------------------------- */

static const char *const *env_now;

static const char *from_list(void *baton, const char *name)
{
    size_t n = strlen(name);

    for (const char *const *e = env_now; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static const char *read_opts(dc_otel_options_t *o, const char *const *env)
{
    env_now = env;
    return dc_otel_options_read(o, pool, from_list, NULL, "test");
}

static const char *resource(const dc_otel_options_t *o, const char *key)
{
    for (int i = 0; i < o->resource->nelts; i++) {
        const dc_otel_attr_t *a = &APR_ARRAY_IDX(o->resource, i, dc_otel_attr_t);

        if (strcmp(a->key, key) == 0)
            return a->value;
    }
    return NULL;
}

START_TEST(options_defaults_and_off)
{
    static const char *const none[] = {NULL};
    static const char *const disabled[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318",
                                           "OTEL_SDK_DISABLED=true", NULL};
    dc_otel_options_t o;

    ck_assert_ptr_null(read_opts(&o, none));
    ck_assert_int_eq(o.enabled, 0);
    ck_assert_int_eq(o.sampler, DC_OTEL_PARENT_ALWAYS_ON);
    ck_assert(o.metric_interval == apr_time_from_sec(60));
    ck_assert(o.timeout == apr_time_from_sec(10));
    ck_assert_uint_eq(o.max_queue, 2048);
    ck_assert_uint_eq(o.max_batch, 512);
    ck_assert_str_eq(o.service_name, "unknown_service:test");
    ck_assert_ptr_null(read_opts(&o, disabled));
    ck_assert_int_eq(o.enabled, 0);
}
END_TEST

START_TEST(options_endpoints_headers_resource)
{
    static const char *const env[] = {
        "OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example:4318/",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://m.example/custom",
        "OTEL_EXPORTER_OTLP_HEADERS=api-key=s%3Dcret, x-team = growth",
        "OTEL_RESOURCE_ATTRIBUTES=service.name=from-attrs,deployment.environment=prod%20eu",
        "OTEL_SERVICE_NAME=decide",
        "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG=0.25",
        "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
        "OTEL_EXPORTER_OTLP_TIMEOUT=2500",
        "OTEL_BSP_MAX_QUEUE_SIZE=100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=500",
        NULL};
    static const char *const no_traces[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318",
                                            "OTEL_TRACES_EXPORTER=none", NULL};
    dc_otel_options_t o;

    ck_assert_ptr_null(read_opts(&o, env));
    ck_assert_int_eq(o.enabled, 1);
    ck_assert_str_eq(o.traces_url, "https://collector.example:4318/v1/traces");
    ck_assert_str_eq(o.metrics_url, "http://m.example/custom");
    ck_assert_int_eq(o.headers->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(o.headers, 0, const char *), "api-key: s=cret");
    ck_assert_str_eq(APR_ARRAY_IDX(o.headers, 1, const char *), "x-team: growth");
    /* OTEL_SERVICE_NAME wins over service.name in the attributes, and appears once */
    ck_assert_str_eq(o.service_name, "decide");
    ck_assert_str_eq(resource(&o, "service.name"), "decide");
    ck_assert_str_eq(resource(&o, "deployment.environment"), "prod eu");
    ck_assert_str_eq(resource(&o, "telemetry.sdk.language"), "c");
    {
        int n = 0;

        for (int i = 0; i < o.resource->nelts; i++)
            n += strcmp(APR_ARRAY_IDX(o.resource, i, dc_otel_attr_t).key, "service.name") == 0;
        ck_assert_int_eq(n, 1);
    }
    ck_assert_int_eq(o.sampler, DC_OTEL_PARENT_RATIO);
    ck_assert_double_eq(o.ratio, 0.25);
    ck_assert_int_eq(o.gzip, 1);
    ck_assert(o.timeout == apr_time_from_msec(2500));
    ck_assert_uint_eq(o.max_queue, 100);
    ck_assert_uint_eq(o.max_batch, 100); /* never more than the queue */

    ck_assert_ptr_null(read_opts(&o, no_traces));
    ck_assert_int_eq(o.enabled, 1);
    ck_assert_ptr_null(o.traces_url);
    ck_assert_str_eq(o.metrics_url, "http://c:4318/v1/metrics");
}
END_TEST

START_TEST(options_errors_name_the_setting)
{
    static const struct {
        const char *env, *needle;
    } cases[] = {
        {"OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318", "OTEL_EXPORTER_OTLP_ENDPOINT:"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=ftp://x/y", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_PROTOCOL:"},
        {"OTEL_EXPORTER_OTLP_HEADERS=a", "OTEL_EXPORTER_OTLP_HEADERS:"},
        {"OTEL_EXPORTER_OTLP_HEADERS=a=b%0Ac", "OTEL_EXPORTER_OTLP_HEADERS:"},
        {"OTEL_EXPORTER_OTLP_HEADERS=a b=c", "OTEL_EXPORTER_OTLP_HEADERS:"},
        {"OTEL_EXPORTER_OTLP_COMPRESSION=zstd", "OTEL_EXPORTER_OTLP_COMPRESSION:"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT=0", "OTEL_EXPORTER_OTLP_TIMEOUT:"},
        {"OTEL_EXPORTER_OTLP_TIMEOUT=1e3", "OTEL_EXPORTER_OTLP_TIMEOUT:"},
        {"OTEL_TRACES_SAMPLER=jaeger_remote", "OTEL_TRACES_SAMPLER:"},
        {"OTEL_TRACES_EXPORTER=zipkin", "OTEL_TRACES_EXPORTER:"},
        {"OTEL_METRIC_EXPORT_INTERVAL=+5", "OTEL_METRIC_EXPORT_INTERVAL:"},
        {"OTEL_BSP_MAX_QUEUE_SIZE=0", "OTEL_BSP_MAX_QUEUE_SIZE:"},
        {"OTEL_RESOURCE_ATTRIBUTES==x", "OTEL_RESOURCE_ATTRIBUTES:"},
        {"OTEL_SDK_DISABLED=yes", "OTEL_SDK_DISABLED:"},
    };
    dc_otel_options_t o;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318", cases[i].env, NULL};
        const char *err = read_opts(&o, strncmp(cases[i].env, "OTEL_EXPORTER_OTLP_ENDPOINT=", 28)
                                            ? env
                                            : env + 1);

        ck_assert_msg(err && strstr(err, cases[i].needle), "%s: %s", cases[i].env,
                      err ? err : "(accepted)");
    }
    /* the ratio is checked only for the ratio samplers, and then strictly */
    {
        const char *env[] = {"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=1.01",
                             NULL};
        const char *ok[] = {"OTEL_TRACES_SAMPLER=always_on", "OTEL_TRACES_SAMPLER_ARG=x", NULL};

        ck_assert_ptr_nonnull(strstr(read_opts(&o, env), "OTEL_TRACES_SAMPLER_ARG:"));
        ck_assert_ptr_null(read_opts(&o, ok));
    }
}
END_TEST

/* ---- sampling and ids --------------------------------------------------------- */

START_TEST(samplers)
{
    dc_otel_options_t o;
    dc_otel_context_t sampled = {.flags = 1}, unsampled = {.flags = 0};
    uint8_t id[16];
    int hits = 0;

    memset(&o, 0, sizeof(o));
    dc_otel_random_id(id, 16);
    o.sampler = DC_OTEL_ALWAYS_ON;
    ck_assert(dc_otel_should_sample(&o, &unsampled, id));
    o.sampler = DC_OTEL_ALWAYS_OFF;
    ck_assert(!dc_otel_should_sample(&o, &sampled, id));
    o.sampler = DC_OTEL_PARENT_ALWAYS_ON;
    ck_assert(dc_otel_should_sample(&o, NULL, id));
    ck_assert(dc_otel_should_sample(&o, &sampled, id));
    ck_assert(!dc_otel_should_sample(&o, &unsampled, id));
    o.sampler = DC_OTEL_PARENT_ALWAYS_OFF;
    ck_assert(!dc_otel_should_sample(&o, NULL, id));
    ck_assert(dc_otel_should_sample(&o, &sampled, id));

    /* traceidratio: about the ratio of random ids, and the same answer for the same id */
    o.sampler = DC_OTEL_RATIO;
    o.ratio = 0.25;
    for (int i = 0; i < 20000; i++) {
        int first;

        dc_otel_random_id(id, 16);
        first = dc_otel_should_sample(&o, NULL, id);
        ck_assert_int_eq(first, dc_otel_should_sample(&o, NULL, id));
        hits += first;
    }
    ck_assert_msg(hits > 4500 && hits < 5500, "%d of 20000 sampled at 0.25", hits);
    o.ratio = 0;
    ck_assert(!dc_otel_should_sample(&o, NULL, id));
    o.ratio = 1;
    ck_assert(dc_otel_should_sample(&o, NULL, id));
    /* parentbased_traceidratio follows a parent, the ratio without one */
    o.sampler = DC_OTEL_PARENT_RATIO;
    o.ratio = 0;
    ck_assert(dc_otel_should_sample(&o, &sampled, id));
    ck_assert(!dc_otel_should_sample(&o, NULL, id));
}
END_TEST

START_TEST(ids_differ_after_fork)
{
    uint8_t mine[8], child[8];
    int fds[2];
    pid_t pid;

    dc_otel_random_id(mine, 8); /* this thread's generator is seeded now */
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        dc_otel_random_id(child, 8);
        _exit(write(fds[1], child, 8) == 8 ? 0 : 1);
    }
    dc_otel_random_id(mine, 8);
    ck_assert_int_eq(read(fds[0], child, 8), 8);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    ck_assert(memcmp(mine, child, 8) != 0);
}
END_TEST

/* ---- a wire-format reader, for the encoding tests --------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} rd_t;

static uint64_t rd_varint(rd_t *r)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        ck_assert(r->p < r->end);
        v |= (uint64_t)(*r->p & 0x7f) << shift;
        if (!(*r->p++ & 0x80))
            return v;
    }
    ck_abort_msg("varint too long");
    return 0;
}

/* The next field: its number, wire type, and (for LEN) its content as a reader;
 * for I64/I32 the value, for VARINT the value. Returns 0 at the end. */
static int rd_field(rd_t *r, unsigned *field, unsigned *wt, rd_t *sub, uint64_t *value)
{
    uint64_t tag, len;

    if (r->p == r->end)
        return 0;
    tag = rd_varint(r);
    *field = (unsigned)(tag >> 3);
    *wt = (unsigned)(tag & 7);
    *value = 0;
    switch (*wt) {
    case 0: *value = rd_varint(r); break;
    case 1:
        ck_assert(r->end - r->p >= 8);
        for (int i = 0; i < 8; i++)
            *value |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        break;
    case 5:
        ck_assert(r->end - r->p >= 4);
        for (int i = 0; i < 4; i++)
            *value |= (uint64_t)r->p[i] << (8 * i);
        r->p += 4;
        break;
    case 2:
        len = rd_varint(r);
        ck_assert((uint64_t)(r->end - r->p) >= len);
        sub->p = r->p;
        sub->end = r->p + len;
        r->p += len;
        break;
    default: ck_abort_msg("wire type %u", *wt);
    }
    return 1;
}

/* The first LEN field number n of r. */
static rd_t rd_get(rd_t r, unsigned n)
{
    unsigned f, wt;
    rd_t sub = {0};
    uint64_t v;

    while (rd_field(&r, &f, &wt, &sub, &v))
        if (f == n && wt == 2)
            return sub;
    ck_abort_msg("no field %u", n);
    return sub;
}

/* The string value of attribute key among the KeyValue fields n of r (NULL: absent). */
static char *rd_attr(rd_t r, unsigned n, const char *key, int64_t *int_value)
{
    unsigned f, wt;
    rd_t kv, sub;
    uint64_t v;

    while (rd_field(&r, &f, &wt, &kv, &v)) {
        rd_t k, val;

        if (f != n || wt != 2)
            continue;
        k = rd_get(kv, 1);
        if ((size_t)(k.end - k.p) != strlen(key) || memcmp(k.p, key, strlen(key)) != 0)
            continue;
        val = rd_get(kv, 2);
        ck_assert(rd_field(&val, &f, &wt, &sub, &v));
        if (f == 3 && int_value) {
            *int_value = (int64_t)v;
            return "";
        }
        ck_assert_uint_eq(f, 1);
        return apr_pstrmemdup(pool, (const char *)sub.p, (apr_size_t)(sub.end - sub.p));
    }
    return NULL;
}

static dc_otel_options_t *test_options(void)
{
    static const char *const env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9",
                                      "OTEL_SERVICE_NAME=svc",
                                      "OTEL_RESOURCE_ATTRIBUTES=team=growth", NULL};
    dc_otel_options_t *o = apr_pcalloc(pool, sizeof(*o));

    ck_assert_ptr_null(read_opts(o, env));
    return o;
}

START_TEST(encode_spans)
{
    dc_otel_options_t *o = test_options();
    dc_otel_span_t spans[2];
    dc_buf_t b;
    rd_t r, rs, ss, sp, st;
    unsigned f, wt;
    uint64_t v;
    int64_t iv = 0;
    int n_spans = 0;
    char long_path[300];

    memset(spans, 0, sizeof(spans));
    ck_assert_int_eq(dc_otel_begin((dc_otel_t *)NULL, &spans[0], NULL, NULL, 1), 0);
    /* a server span continued from a remote parent, with a path long enough for
     * two-byte lengths */
    memcpy(spans[0].trace_id, "\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36", 16);
    memcpy(spans[0].span_id, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    memcpy(spans[0].parent_id, "\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8);
    spans[0].has_parent = 1;
    spans[0].flags = 1;
    spans[0].type = DC_OTEL_SPAN_SERVER;
    spans[0].route = "/v2/campaigns";
    spans[0].status = 503;
    spans[0].campaigns = 3;
    spans[0].store_backend = DC_BACKEND_REDIS;
    spans[0].store_result = DC_OTEL_STORE_DEGRADED;
    spans[0].start_ns = INT64_C(1700000000000000000);
    spans[0].end_ns = spans[0].start_ns + 12345;
    strcpy(spans[0].method, "POST");
    memset(long_path, 'p', sizeof(long_path));
    long_path[0] = '/';
    memcpy(spans[0].path, long_path, sizeof(spans[0].path) - 1);
    strcpy(spans[0].tracestate, "rojo=1");
    strcpy(spans[0].env_id, "env");
    spans[1] = spans[0];
    spans[1].type = DC_OTEL_SPAN_STORE;
    spans[1].store_op = DC_STORE_OP_LOAD;
    spans[1].store_status = DC_STORE_UNAVAILABLE;
    memcpy(spans[1].parent_id, spans[0].span_id, 8);

    dc_buf_init(&b, pool, 16);
    dc_otel_encode_spans(&b, o, spans, 2);
    r.p = (const uint8_t *)b.data;
    r.end = r.p + b.len;
    rs = rd_get(r, 1);                               /* ResourceSpans */
    ck_assert_str_eq(rd_attr(rd_get(rs, 1), 1, "service.name", NULL), "svc");
    ck_assert_str_eq(rd_attr(rd_get(rs, 1), 1, "team", NULL), "growth");
    ss = rd_get(rs, 2);                              /* ScopeSpans */
    {
        rd_t scope = rd_get(ss, 1), name = rd_get(scope, 1);

        ck_assert_int_eq(memcmp(name.p, "mod_decision", 12), 0);
    }
    while (rd_field(&ss, &f, &wt, &sp, &v)) {
        rd_t id;

        if (f != 2)
            continue;
        id = rd_get(sp, 1);
        ck_assert_int_eq(id.end - id.p, 16);
        ck_assert_int_eq(memcmp(id.p, spans[0].trace_id, 16), 0);
        if (n_spans++ == 0) {
            rd_t name = rd_get(sp, 5), parent = rd_get(sp, 4), state = rd_get(sp, 3);

            ck_assert_int_eq(memcmp(name.p, "POST /v2/campaigns", 18), 0);
            ck_assert_int_eq(memcmp(parent.p, spans[0].parent_id, 8), 0);
            ck_assert_int_eq(memcmp(state.p, "rojo=1", 6), 0);
            ck_assert_str_eq(rd_attr(sp, 9, "url.path", NULL), spans[0].path);
            ck_assert_str_eq(rd_attr(sp, 9, "decision.store", NULL), "redis");
            ck_assert_str_eq(rd_attr(sp, 9, "decision.store.result", NULL), "degraded");
            ck_assert_str_eq(rd_attr(sp, 9, "error.type", NULL), "503");
            ck_assert_ptr_nonnull(rd_attr(sp, 9, "http.response.status_code", &iv));
            ck_assert_int_eq(iv, 503);
            ck_assert_ptr_nonnull(rd_attr(sp, 9, "decision.campaigns", &iv));
            ck_assert_int_eq(iv, 3);
            st = rd_get(sp, 15);                     /* Status: an error from 500 on */
            {
                rd_t s2 = st, sub;

                while (rd_field(&s2, &f, &wt, &sub, &v))
                    if (f == 3)
                        ck_assert_uint_eq(v, 2);
            }
            {
                rd_t s2 = sp, sub;
                int seen = 0;

                while (rd_field(&s2, &f, &wt, &sub, &v)) {
                    if (f == 6) { /* SERVER */
                        ck_assert_uint_eq(v, 2);
                        seen++;
                    }
                    if (f == 7) {
                        ck_assert_uint_eq(v, (uint64_t)spans[0].start_ns);
                        seen++;
                    }
                    if (f == 8) {
                        ck_assert_uint_eq(v, (uint64_t)spans[0].end_ns);
                        seen++;
                    }
                    if (f == 16) { /* fixed32: sampled, parent known and remote */
                        ck_assert_uint_eq(wt, 5);
                        ck_assert_uint_eq(v, 0x301);
                        seen++;
                    }
                }
                ck_assert_int_eq(seen, 4);
            }
        } else {
            rd_t name = rd_get(sp, 5), parent = rd_get(sp, 4);

            ck_assert_int_eq(memcmp(name.p, "load redis", 10), 0);
            ck_assert_int_eq(memcmp(parent.p, spans[0].span_id, 8), 0);
            ck_assert_str_eq(rd_attr(sp, 9, "db.system.name", NULL), "redis");
            ck_assert_ptr_null(rd_attr(sp, 9, "url.path", NULL));
        }
    }
    ck_assert_int_eq(n_spans, 2);
}
END_TEST

START_TEST(encode_metrics_histogram)
{
    dc_otel_options_t *o = test_options();
    dc_service_t svc;
    dc_status_snapshot_t s;
    dc_metrics_slot_t *slot;
    dc_buf_t b;
    rd_t r, rm, sm, m;
    unsigned f, wt;
    uint64_t v;
    int found = 0;

    ck_assert_int_eq(dc_service_init(&svc, pool), 0);
    svc.metrics = dc_metrics_create(pool, 1);
    svc.opt.env_id = "env";
    slot = dc_metrics_slot(svc.metrics, 0);
    dc_metrics_observe_request(slot, DC_EP_FLAGS, 200, 15, apr_time_now());
    dc_metrics_observe_request(slot, DC_EP_FLAGS, 200, 2000000, apr_time_now());
    dc_metrics_observe_request(slot, DC_EP_FLAGS, 500, 20000000, apr_time_now());
    dc_status_gather(&svc, pool, &s);
    dc_buf_init(&b, pool, 64);
    dc_otel_encode_metrics(&b, o, &svc, &s, apr_time_now());
    r.p = (const uint8_t *)b.data;
    r.end = r.p + b.len;
    rm = rd_get(r, 1);
    ck_assert_str_eq(rd_attr(rd_get(rm, 1), 1, "decision.env_id", NULL), "env");
    sm = rd_get(rm, 2);
    while (rd_field(&sm, &f, &wt, &m, &v)) {
        rd_t name, h, dp, sub;
        unsigned f2, wt2;
        uint64_t v2;

        if (f != 2)
            continue;
        name = rd_get(m, 1);
        if ((size_t)(name.end - name.p) != strlen("decision.request.duration") ||
            memcmp(name.p, "decision.request.duration", (size_t)(name.end - name.p)) != 0)
            continue;
        h = rd_get(m, 9);
        while (rd_field(&h, &f2, &wt2, &dp, &v2)) {
            uint64_t count = 0, sum_buckets = 0, n_buckets = 0, n_bounds = 0;
            double sum = 0;

            if (f2 == 2) {
                ck_assert_uint_eq(v2, 2); /* cumulative */
                continue;
            }
            if (strcmp(rd_attr(dp, 9, "endpoint", NULL), "flags") != 0)
                continue;
            while (rd_field(&dp, &f2, &wt2, &sub, &v2)) {
                if (f2 == 4)
                    count = v2;
                if (f2 == 5)
                    memcpy(&sum, &v2, 8);
                if (f2 == 6)
                    for (const uint8_t *q = sub.p; q < sub.end; q += 8, n_buckets++) {
                        uint64_t c = 0;

                        for (int i = 0; i < 8; i++)
                            c |= (uint64_t)q[i] << (8 * i);
                        sum_buckets += c;
                    }
                if (f2 == 7)
                    n_bounds = (uint64_t)(sub.end - sub.p) / 8;
            }
            ck_assert_uint_eq(count, 3);
            ck_assert_uint_eq(sum_buckets, 3);
            ck_assert_uint_eq(n_buckets, n_bounds + 1);
            ck_assert_uint_eq(n_bounds, DC_LATENCY_BOUNDS);
            ck_assert(fabs(sum - 22.000015) < 1e-6);
            found = 1;
        }
    }
    ck_assert(found);
}
END_TEST

/* ---- the queue ------------------------------------------------------------------ */

START_TEST(full_queue_drops_and_counts)
{
    static const char *const env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9",
                                      "OTEL_BSP_MAX_QUEUE_SIZE=4", NULL};
    dc_otel_options_t o;
    dc_metrics_t *m = dc_metrics_create(pool, 1);
    dc_otel_t *t;
    dc_otel_span_t span;
    uint64_t fig[DC_OTEL_FIGURES];

    ck_assert_ptr_null(read_opts(&o, env));
    t = dc_otel_create(pool, &o, m);
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(dc_otel_begin(t, &span, NULL, NULL, apr_time_now()), 1);
        dc_otel_end(t, &span);
    }
    dc_metrics_otel_read(m, fig);
    ck_assert_uint_eq(fig[DC_OTEL_SPANS_DROPPED], 2);
    /* never started: stop is a no-op; an unsampled parent gives no span */
    dc_otel_stop(t, 0);
    ck_assert_int_eq(dc_otel_begin(t, &span,
                                   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                                   NULL, apr_time_now()),
                     0);
    /* a malformed traceparent starts a new trace instead */
    ck_assert_int_eq(dc_otel_begin(t, &span, "garbage", "a=b", apr_time_now()), 1);
    ck_assert_int_eq(span.has_parent, 0);
    ck_assert_str_eq(span.tracestate, "");
}
END_TEST

static Suite *otel_suite(void)
{
    Suite *s = suite_create("otel");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, traceparent_valid);
    tcase_add_test(tc, traceparent_invalid);
    tcase_add_test(tc, tracestate);
    tcase_add_test(tc, options_defaults_and_off);
    tcase_add_test(tc, options_endpoints_headers_resource);
    tcase_add_test(tc, options_errors_name_the_setting);
    tcase_add_test(tc, samplers);
    tcase_add_test(tc, ids_differ_after_fork);
    tcase_add_test(tc, encode_spans);
    tcase_add_test(tc, encode_metrics_histogram);
    tcase_add_test(tc, full_queue_drops_and_counts);
    suite_add_tcase(s, tc);
    return s;
}

DC_TEST_MAIN(otel_suite)

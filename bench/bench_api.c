/*
 * bench_api: the cost of metrics on the whole request path. Serves POST
 * /v2/campaigns through dc_api_handle() (body parsing, decision, rendering,
 * with a memory store) for a rotating set of visitors, alternating rounds
 * with metrics off (svc.metrics = NULL) and on (one slot), and prints the
 * rates (per second of the thread's CPU time) and the overhead, taking the
 * best round of each so that noise from other processes on the machine
 * counts against neither. Not a test: compare figures of the same run only.
 *
 *   bench/bench_api [bucketing.json] [requests per round] [rounds] [store] [otel]
 *
 * store is a dc_store URI (default memory); "none" is what bench/fcgi.sh's
 * decision-fcgi runs with, so it profiles the path that benchmark measures.
 *
 * With "otel" as the fifth argument the rounds alternate tracing off and on
 * instead (metrics on in both): OpenTelemetry at ratio 1.0 (always_on), the
 * exporter thread running and exporting every 100 ms to a sink in this
 * process that answers 200, so every span takes the path a served request's
 * does (sampled, built, queued, encoded and sent by the other thread). The
 * figure is the request thread's CPU: what a request pays (`make bench-otel`).
 */
#include "dc_api.h"
#include "dc_config.h"
#include "dc_metrics.h"
#include "dc_otel.h"
#include "dc_shipper.h"
#include "dc_spool.h"

#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define N_BODIES 1024

/* Requests per second of this thread's CPU time (not wall time: other
 * processes on a shared machine then cost neither side). */
static double thread_cpu_seconds(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double process_cpu_seconds(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double run(dc_service_t *svc, char **bodies, unsigned long n_requests)
{
    apr_pool_t *p;
    struct timespec t0, t1;

    apr_pool_create(&p, NULL);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (unsigned long n = 0; n < n_requests; n++) {
        dc_request_t req;
        dc_response_t resp;

        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.path = "/v2/campaigns";
        req.query = "sendContextEvent=false";
        req.body = bodies[n % N_BODIES];
        req.body_len = strlen(req.body);
        req.received = apr_time_now();
        dc_api_handle(svc, p, &req, &resp);
        if (resp.status != 200) {
            fprintf(stderr, "bench_api: status %d: %.*s\n", resp.status, (int)resp.body_len,
                    resp.body);
            exit(1);
        }
        apr_pool_clear(p);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    apr_pool_destroy(p);
    return (double)n_requests /
           ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* Nanoseconds of CPU per request of the metrics work alone, as dc_api does
 * it for a decision with a memory store: the clock read at the end (the
 * start is the front end's arrival time), a load and a save counted, the
 * visitor and the request. */
static double metrics_alone_ns(dc_metrics_t *m, char **bodies, unsigned long n_requests)
{
    dc_metrics_slot_t *slot = dc_metrics_slot(m, 0);
    struct timespec t0, t1;
    apr_time_t start = apr_time_now(), end;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (unsigned long n = 0; n < n_requests; n++) {
        /* the arrival time is the front end's clock read, not ours: here,
         * the end of the previous request */
        const char *id = bodies[n % N_BODIES] + 14; /* inside "visitor-N" */

        dc_metrics_observe_visitor(m, id, 12, start);
        for (int k = 0; k < 2; k++) {
            dc_metrics_observe_store(slot, DC_BACKEND_MEMORY, (dc_store_op_e)k, DC_STORE_OK, -1);
            dc_metrics_note_store_result(m, NULL, DC_STORE_OK);
        }
        end = apr_time_now();
        dc_metrics_observe_request(slot, DC_EP_CAMPAIGNS, 200, end - start, end);
        start = end;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
           (double)n_requests;
}

/* ---- an OTLP sink: reads HTTP/1.1 requests on kept-alive connections, answers 200 ---- */

static void *sink_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static __thread char buf[1 << 16];
    size_t have = 0;

    for (;;) {
        char *end;
        ssize_t n;
        long len = 0;
        const char *cl;

        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof(buf) || (n = read(fd, buf + have, sizeof(buf) - have)) <= 0)
                goto out;
            have += (size_t)n;
        }
        if ((cl = strcasestr(buf, "content-length:")) && cl < end)
            len = atol(cl + 15);
        end += 4;
        /* skip the body (it may be longer than the buffer) */
        {
            size_t in_buf = have - (size_t)(end - buf);
            long rest = len - (long)in_buf;

            if (rest <= 0) {
                memmove(buf, end + len, in_buf - (size_t)len);
                have = in_buf - (size_t)len;
            } else {
                have = 0;
                while (rest > 0 && (n = read(fd, buf, rest < (long)sizeof(buf) ? (size_t)rest
                                                                                : sizeof(buf))) > 0)
                    rest -= n;
                if (rest > 0)
                    goto out;
            }
        }
        if (write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38) != 38)
            goto out;
    }
out:
    close(fd);
    return NULL;
}

static void *sink_main(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd;

    while ((fd = accept(lfd, NULL, NULL)) >= 0) {
        pthread_t t;

        pthread_create(&t, NULL, sink_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
    return NULL;
}

static int start_sink(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    pthread_t t;

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    pthread_create(&t, NULL, sink_main, (void *)(intptr_t)lfd);
    pthread_detach(t);
    return ntohs(a.sin_port);
}

static const char *bench_env(void *baton, const char *name)
{
    if (strcmp(name, "OTEL_EXPORTER_OTLP_ENDPOINT") == 0)
        return baton;
    if (strcmp(name, "OTEL_TRACES_SAMPLER") == 0)
        return "always_on";
    if (strcmp(name, "OTEL_BSP_SCHEDULE_DELAY") == 0)
        return "100";
    if (strcmp(name, "OTEL_METRICS_EXPORTER") == 0)
        return "none";
    /* a million requests a second: room for the spans of the 100 ms between exports,
     * so that none takes the (cheaper) dropping path */
    if (strcmp(name, "OTEL_BSP_MAX_QUEUE_SIZE") == 0)
        return "262144";
    if (strcmp(name, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == 0)
        return "8192";
    return NULL;
}

static int bench_otel(dc_service_t *svc, dc_metrics_t *metrics, char **bodies,
                      unsigned long n_requests, int rounds, apr_pool_t *p)
{
    dc_otel_options_t o;
    dc_otel_t *tracer;
    const char *err;
    double best_off = 0, best_on = 0;
    uint64_t fig[DC_OTEL_FIGURES];
    int port = start_sink();

    if (port < 0) {
        fprintf(stderr, "bench_api: cannot start the OTLP sink\n");
        return 1;
    }
    err = dc_otel_options_read(&o, p, bench_env, apr_psprintf(p, "http://127.0.0.1:%d", port),
                               "bench_api");
    if (err || !(tracer = dc_otel_create(p, &o, metrics)) || dc_otel_start(tracer) < 0) {
        fprintf(stderr, "bench_api: %s\n", err ? err : "cannot start the tracer");
        return 1;
    }
    svc->metrics = metrics;
    for (int r = 0; r < rounds; r++) {
        double off, on;

        svc->otel = NULL;
        off = run(svc, bodies, n_requests);
        svc->otel = tracer;
        on = run(svc, bodies, n_requests);
        printf("round %d: tracing off %10.0f req/s, on %10.0f req/s (per CPU second)\n", r + 1,
               off, on);
        if (off > best_off)
            best_off = off;
        if (on > best_on)
            best_on = on;
    }
    svc->otel = NULL;
    dc_otel_stop(tracer, apr_time_from_sec(5));
    dc_metrics_otel_read(metrics, fig);
    printf("best: tracing off %.0f req/s, on %.0f req/s: tracing costs %.0f ns of CPU per "
           "request (%.2f %%)\n",
           best_off, best_on, 1e9 / best_on - 1e9 / best_off,
           100 * (best_off - best_on) / best_off);
    printf("spans exported %llu, dropped %llu, failed exports %llu\n",
           (unsigned long long)fig[DC_OTEL_SPANS_EXPORTED],
           (unsigned long long)fig[DC_OTEL_SPANS_DROPPED],
           (unsigned long long)fig[DC_OTEL_EXPORT_FAILURES]);
    return 0;
}

static int bench_events(dc_service_t *svc, char **bodies, unsigned long n_requests, int rounds,
                        const char *spool_options, apr_pool_t *p)
{
    char dir[] = "/tmp/bench-events-XXXXXX", err[256];
    char *hit_bodies[N_BODIES];
    dc_spool_options_t so;
    dc_shipper_options_t sho;
    dc_spool_t *spool;
    dc_shipper_t *shipper;
    dc_spool_stats_t st0, st;
    dc_shipper_stats_t shst;
    double best_off = 0, best_on = 0, ship_cpu, background_cpu, close_cpu, drain_cpu = 0;

    if (!mkdtemp(dir)) {
        perror("bench_api: mkdtemp");
        return 1;
    }
    for (unsigned i = 0; i < N_BODIES; i++) {
        hit_bodies[i] = apr_pstrdup(p, bodies[i]);
        memcpy(strstr(hit_bodies[i], "\"trigger_hit\":false"), "\"trigger_hit\":true }", 20);
    }
    dc_spool_options_default(&so);
    if (dc_spool_options_parse(&so, spool_options, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_api: %s\n", err);
        return 1;
    }
    so.dir = apr_pstrcat(p, dir, "/spool", NULL);
    if (!(spool = dc_spool_open(p, &so, err, sizeof(err)))) {
        fprintf(stderr, "bench_api: %s\n", err);
        return 1;
    }
    /* one round untimed: a running server's ring has had its pages faulted in by its
     * first lap, so the timed rounds should not pay for them */
    svc->hit_sink = dc_spool_sink;
    svc->hit_baton = spool;
    (void)run(svc, hit_bodies, n_requests);
    dc_spool_rotate(spool);
    dc_spool_stats(spool, &st0);
    /* the spool's own thread (with write=ring, the ring's writing out):
     * the process's CPU less this thread's, the rounds' drains and the close's final write */
    background_cpu = process_cpu_seconds() - thread_cpu_seconds();
    for (int r = 0; r < rounds; r++) {
        double off, on, t;

        svc->hit_sink = NULL;
        off = run(svc, bodies, n_requests);
        svc->hit_sink = dc_spool_sink;
        svc->hit_baton = spool;
        on = run(svc, hit_bodies, n_requests);
        /* the ring written out now, so that the next round without events does not
         * share the machine with the background thread's catching up */
        t = thread_cpu_seconds();
        dc_spool_rotate(spool);
        drain_cpu += thread_cpu_seconds() - t;
        printf("round %d: trigger_hit false %10.0f req/s, true (spooled) %10.0f req/s "
               "(per CPU second)\n", r + 1, off, on);
        if (off > best_off)
            best_off = off;
        if (on > best_on)
            best_on = on;
    }
    svc->hit_sink = NULL;
    dc_spool_stats(spool, &st);
    close_cpu = thread_cpu_seconds();
    dc_spool_close(spool);
    close_cpu = thread_cpu_seconds() - close_cpu;
    background_cpu =
        process_cpu_seconds() - thread_cpu_seconds() - background_cpu + close_cpu + drain_cpu;

    dc_shipper_options_default(&sho);
    sho.spool_dir = so.dir;
    sho.collector = apr_pstrcat(p, "file:", dir, "/sink", NULL);
    mkdir(apr_pstrcat(p, dir, "/sink", NULL), 0700);
    if (!(shipper = dc_shipper_create(p, &sho, err, sizeof(err)))) {
        fprintf(stderr, "bench_api: %s\n", err);
        return 1;
    }
    ship_cpu = thread_cpu_seconds();
    dc_shipper_flush(shipper, apr_time_now() + apr_time_from_sec(600));
    ship_cpu = thread_cpu_seconds() - ship_cpu;
    dc_shipper_stats(shipper, &shst);
    dc_shipper_destroy(shipper);
    printf("best: trigger_hit false %.0f req/s, true %.0f req/s: building and spooling the hits "
           "costs %.0f ns of CPU per request (%.1f %%)\n",
           best_off, best_on, 1e9 / best_on - 1e9 / best_off,
           100 * (best_off - best_on) / best_off);
    printf("shipping %llu records (%llu hits) to a file sink: %.0f ns of CPU per request; "
           "%llu hits delivered\n",
           (unsigned long long)st.accepted, (unsigned long long)st.accepted_hits,
           1e9 * ship_cpu / (double)(st.accepted ? st.accepted : 1),
           (unsigned long long)shst.hits_sent);
    printf("the spool's background thread (writing the ring out, syncing): %.0f ns of CPU per "
           "request\n", 1e9 * background_cpu / (double)(st.accepted ? st.accepted : 1));
    if (st.ring_overflows > st0.ring_overflows)
        printf("the ring was full for %llu of the rounds' %llu records (%.1f %%): those took the "
               "segment path, as write=map does (ring-bytes= gives it room for this rate)\n",
               (unsigned long long)(st.ring_overflows - st0.ring_overflows),
               (unsigned long long)(st.accepted - st0.accepted),
               100.0 * (double)(st.ring_overflows - st0.ring_overflows) /
                   (double)(st.accepted > st0.accepted ? st.accepted - st0.accepted : 1));
    if (system(apr_psprintf(p, "rm -rf '%s'", dir)) != 0)
        fprintf(stderr, "bench_api: could not remove %s\n", dir);
    return 0;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    dc_service_t svc;
    dc_config_t *cfg;
    dc_config_error_t err;
    dc_metrics_t *metrics;
    const char *path = argc > 1 ? argv[1] : "conf/sample-bucketing.json";
    unsigned long n_requests = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    int rounds = argc > 3 ? atoi(argv[3]) : 10;
    const char *store = argc > 4 ? argv[4] : "memory";
    double best_off = 0, best_on = 0, best_alone = 0;
    char *bodies[N_BODIES], errbuf[256];

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    if (dc_service_init(&svc, p) < 0 || dc_config_load_file(path, &cfg, &err) < 0) {
        fprintf(stderr, "bench_api: %s: %s %s\n", path, err.path, err.text);
        return 1;
    }
    dc_slot_publish(&svc.slot, cfg);
    if (!(svc.store = dc_store_open(p, store, errbuf, sizeof(errbuf)))) {
        fprintf(stderr, "bench_api: %s: %s\n", store, errbuf);
        return 1;
    }
    metrics = dc_metrics_create(p, 1);
    for (unsigned i = 0; i < N_BODIES; i++)
        bodies[i] = apr_psprintf(p,
                                 "{\"visitor_id\":\"visitor-%u\",\"context\":{\"age\":%u,"
                                 "\"country\":\"%s\",\"isVIP\":%s},\"trigger_hit\":false}",
                                 i, 15 + i % 50, i % 2 ? "FR" : "US", i % 7 ? "false" : "true");
    if (argc > 5 && (strcmp(argv[5], "otel") == 0 || strcmp(argv[5], "events") == 0)) {
        int rc = strcmp(argv[5], "otel") == 0
                     ? bench_otel(&svc, metrics, bodies, n_requests, rounds, p)
                     : bench_events(&svc, bodies, n_requests, rounds, argc > 6 ? argv[6] : NULL, p);

        dc_store_close(svc.store);
        dc_slot_clear(&svc.slot);
        apr_pool_destroy(p);
        return rc;
    }

    for (int r = 0; r < rounds; r++) {
        double off, on;

        svc.metrics = NULL;
        off = run(&svc, bodies, n_requests);
        svc.metrics = metrics;
        on = run(&svc, bodies, n_requests);
        printf("round %d: metrics off %10.0f req/s, on %10.0f req/s (per CPU second)\n", r + 1, off, on);
        if (off > best_off)
            best_off = off;
        if (on > best_on)
            best_on = on;
    }
    printf("best: off %.0f req/s, on %.0f req/s, metrics cost %.2f %% (%.0f ns per request)\n",
           best_off, best_on, 100 * (best_off - best_on) / best_off,
           1e9 / best_on - 1e9 / best_off);
    for (int r = 0; r < rounds; r++) {
        double ns = metrics_alone_ns(metrics, bodies, n_requests);

        if (r == 0 || ns < best_alone)
            best_alone = ns;
    }
    /* The steadier figure on a busy machine: the metrics work timed alone,
     * against the best request time without metrics. */
    printf("metrics work alone: %.0f ns per request = %.2f %% of a request without metrics\n",
           best_alone, 100 * best_alone / (1e9 / best_off));
    dc_store_close(svc.store);
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}

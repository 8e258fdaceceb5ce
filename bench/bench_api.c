/*
 * bench_api: the cost of metrics on the whole request path. Serves POST
 * /v2/campaigns through dc_api_handle() (body parsing, decision, rendering,
 * with a memory store) for a rotating set of visitors, alternating rounds
 * with metrics off (svc.metrics = NULL) and on (one slot), and prints the
 * rates and the overhead, taking the best round of each so that noise from
 * other processes on the machine counts against neither.
 * Not a test: compare figures of the same run only.
 *
 *   bench/bench_api [bucketing.json] [seconds per round] [rounds]
 */
#include "dc_api.h"
#include "dc_config.h"
#include "dc_metrics.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_BODIES 1024

static double run(dc_service_t *svc, char **bodies, double seconds)
{
    apr_pool_t *p;
    unsigned long n = 0;
    apr_time_t start = apr_time_now(), end = start + (apr_time_t)(seconds * APR_USEC_PER_SEC);

    apr_pool_create(&p, NULL);
    while (apr_time_now() < end) {
        for (unsigned i = 0; i < 256; i++, n++) {
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
    }
    apr_pool_destroy(p);
    return (double)n / ((double)(apr_time_now() - start) / APR_USEC_PER_SEC);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    dc_service_t svc;
    dc_config_t *cfg;
    dc_config_error_t err;
    dc_metrics_t *metrics;
    const char *path = argc > 1 ? argv[1] : "conf/sample-bucketing.json";
    double seconds = argc > 2 ? atof(argv[2]) : 1.0, best_off = 0, best_on = 0;
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    char *bodies[N_BODIES], errbuf[256];

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    if (dc_service_init(&svc, p) < 0 || dc_config_load_file(path, &cfg, &err) < 0) {
        fprintf(stderr, "bench_api: %s: %s %s\n", path, err.path, err.text);
        return 1;
    }
    dc_slot_publish(&svc.slot, cfg);
    svc.store = dc_store_open(p, "memory", errbuf, sizeof(errbuf));
    metrics = dc_metrics_create(p, 1);
    for (unsigned i = 0; i < N_BODIES; i++)
        bodies[i] = apr_psprintf(p,
                                 "{\"visitor_id\":\"visitor-%u\",\"context\":{\"age\":%u,"
                                 "\"country\":\"%s\",\"isVIP\":%s},\"trigger_hit\":false}",
                                 i, 15 + i % 50, i % 2 ? "FR" : "US", i % 7 ? "false" : "true");

    for (int r = 0; r < rounds; r++) {
        double off, on;

        svc.metrics = NULL;
        off = run(&svc, bodies, seconds);
        svc.metrics = metrics;
        on = run(&svc, bodies, seconds);
        printf("round %d: metrics off %10.0f req/s, on %10.0f req/s\n", r + 1, off, on);
        if (off > best_off)
            best_off = off;
        if (on > best_on)
            best_on = on;
    }
    printf("best: off %.0f req/s, on %.0f req/s, metrics cost %.2f %% (%.0f ns per request)\n",
           best_off, best_on, 100 * (best_off - best_on) / best_off,
           1e9 / best_on - 1e9 / best_off);
    dc_store_close(svc.store);
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}

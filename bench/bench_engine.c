/*
 * bench_engine: visitor decisions per second per core, without HTTP or JSON
 * rendering — hash, targeting, bucket ranges and allocation, as dc_decide()
 * runs them on every request.
 *
 * It decides for a rotating set of visitors (ids and contexts prepared up
 * front, as a request parser would) on the sample file and on a generated
 * file of N campaigns, and prints decisions/s and the cost per campaign, so
 * that "cost linear in the number of campaigns" can be read off directly.
 * Not a test: figures depend on the machine; compare runs made together.
 */
#include "dc_config.h"
#include "dc_engine.h"
#include "dc_targeting.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_VISITORS 4096

typedef struct {
    dc_visitor_t v;
    dc_context_t ctx;
    dc_value_t visitor_value;
    dc_context_entry_t entries[5];
} prepared_t;

static void prepare(apr_pool_t *p, prepared_t *pv, unsigned i)
{
    static const char *const countries[] = {"fr", "de", "us", "it"};
    static const char *const platforms[] = {"ios", "android", "web"};
    char *id = apr_psprintf(p, "visitor-%u", i);
    char *version = apr_psprintf(p, "%u.%u.%u", 1 + i % 3, i % 5, i % 7);

    memset(pv, 0, sizeof(*pv));
    pv->entries[0].key = "age";
    pv->entries[0].value.kind = DC_KIND_NUMBER;
    pv->entries[0].value.number = 15 + i % 50;
    pv->entries[1].key = "country";
    dc_value_set_string(p, &pv->entries[1].value, countries[i % 4], 2);
    pv->entries[2].key = "isVIP";
    pv->entries[2].value.kind = DC_KIND_BOOL;
    pv->entries[2].value.boolean = i % 7 == 0;
    pv->entries[3].key = "app_version";
    dc_value_set_string(p, &pv->entries[3].value, version, strlen(version));
    pv->entries[4].key = "platform";
    dc_value_set_string(p, &pv->entries[4].value, platforms[i % 3], strlen(platforms[i % 3]));
    for (int k = 0; k < 5; k++)
        pv->entries[k].key_len = strlen(pv->entries[k].key);
    dc_value_set_string(p, &pv->visitor_value, id, strlen(id));
    pv->ctx.entries = pv->entries;
    pv->ctx.n_entries = 5;
    pv->ctx.visitor = &pv->visitor_value;
    pv->v.context = &pv->ctx;
    pv->v.visitor_id = id;
    pv->v.visitor_id_len = strlen(id);
}

/* A file of n campaigns like the sample's: targeting on the visitor's keys, 2-3 variations. */
static char *generate(apr_pool_t *p, unsigned n)
{
    char *doc = apr_pstrdup(p, "{\"accountSettings\":{},\"campaigns\":[");

    for (unsigned c = 0; c < n; c++) {
        const char *targeting;

        switch (c % 4) {
        case 0: targeting = "{\"operator\":\"EQUALS\",\"key\":\"fs_all_users\",\"value\":\"\"}"; break;
        case 1: targeting = "{\"operator\":\"GREATER_THAN_OR_EQUALS\",\"key\":\"age\",\"value\":18},"
                            "{\"operator\":\"EQUALS\",\"key\":\"country\",\"value\":[\"FR\",\"DE\"]}"; break;
        case 2: targeting = "{\"operator\":\"SEMVER_GREATER_THAN_OR_EQUALS\",\"key\":\"app_version\","
                            "\"value\":\"2.1.0\"}"; break;
        default: targeting = "{\"operator\":\"EQUALS\",\"key\":\"isVIP\",\"value\":true}";
        }
        doc = apr_psprintf(
            p,
            "%s%s{\"id\":\"c%u\",\"type\":\"%s\",\"bucketRanges\":[{\"r\":[0,100]}],"
            "\"variationGroups\":[{\"id\":\"vg%u\",\"targeting\":{\"targetingGroups\":[{\"targetings\":[%s]}]},"
            "\"variations\":[{\"id\":\"c%ua\",\"allocation\":50,\"modifications\":{\"type\":\"FLAG\",\"value\":{\"k%u\":1}}},"
            "{\"id\":\"c%ub\",\"allocation\":50,\"modifications\":{\"type\":\"FLAG\",\"value\":{\"k%u\":2}}}]}]}",
            doc, c ? "," : "", c, c % 2 ? "ab" : "toggle", c, targeting, c, c, c, c);
    }
    return apr_pstrcat(p, doc, "]}", NULL);
}

static double run(const dc_config_t *cfg, prepared_t *visitors, double seconds, size_t *served)
{
    apr_pool_t *p;
    dc_outcome_t out;
    dc_decision_t *decisions = malloc((cfg->n_campaigns + 1) * sizeof(*decisions));
    unsigned long n = 0;
    apr_time_t start = apr_time_now(), end = start + (apr_time_t)(seconds * APR_USEC_PER_SEC);

    apr_pool_create(&p, NULL);
    *served = 0;
    out.decisions = decisions;
    while (apr_time_now() < end) {
        for (unsigned i = 0; i < 1024; i++, n++) {
            dc_decide(p, cfg, NULL, NULL, &visitors[n % N_VISITORS].v, NULL, &out);
            *served += out.n_decisions;
        }
    }
    apr_pool_destroy(p);
    free(decisions);
    return (double)n / ((double)(apr_time_now() - start) / APR_USEC_PER_SEC);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    prepared_t *visitors;
    dc_config_t *sample, *big;
    dc_config_error_t err;
    const char *sample_path = argc > 1 ? argv[1] : "conf/sample-bucketing.json";
    unsigned n_big = argc > 2 ? (unsigned)atoi(argv[2]) : 200;
    double seconds = argc > 3 ? atof(argv[3]) : 3.0;
    double rate_sample, rate_big;
    size_t served_sample, served_big;
    char *doc;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    if (dc_config_load_file(sample_path, &sample, &err) < 0) {
        fprintf(stderr, "bench_engine: %s: %s %s\n", sample_path, err.path, err.text);
        return 1;
    }
    doc = generate(p, n_big);
    if (dc_config_parse(doc, strlen(doc), &big, &err) < 0) {
        fprintf(stderr, "bench_engine: generated file: %s %s\n", err.path, err.text);
        return 1;
    }
    visitors = apr_palloc(p, N_VISITORS * sizeof(*visitors));
    for (unsigned i = 0; i < N_VISITORS; i++)
        prepare(p, &visitors[i], i);

    printf("build: CC=%s CFLAGS=%s\n", BENCH_CC, BENCH_CFLAGS);
    rate_sample = run(sample, visitors, seconds, &served_sample);
    rate_big = run(big, visitors, seconds, &served_big);
    printf("sample file (%zu campaigns):   %12.0f decisions/s on one core (%.2f campaigns served per decision)\n",
           sample->n_campaigns, rate_sample, (double)served_sample / (rate_sample * seconds));
    printf("generated file (%zu campaigns): %12.0f decisions/s on one core\n", big->n_campaigns,
           rate_big);
    printf("cost per campaign: sample %.1f ns, generated %.1f ns (ratio %.2f; 1.00 = linear)\n",
           1e9 / rate_sample / (double)sample->n_campaigns, 1e9 / rate_big / (double)big->n_campaigns,
           (1e9 / rate_big / (double)big->n_campaigns) / (1e9 / rate_sample / (double)sample->n_campaigns));
    dc_config_unref(sample);
    dc_config_unref(big);
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}

/*
 * bench_engine: visitor decisions per second per core, without HTTP or JSON
 * rendering — hash, targeting, bucket ranges and allocation, as dc_decide()
 * runs them on every request — and the time a bucketing file takes to load.
 *
 *   bench_engine [-r ROUNDS] [-t SECONDS] [-n DECISIONS] SAMPLE|- N [FILE VISITORS.jsonl]...
 *
 * It decides for a rotating set of visitors on the sample file (visitors
 * prepared up front, as a request parser would), on a file of N campaigns it
 * generates (N = 0: none), and on each FILE with the visitors of its
 * VISITORS.jsonl (request bodies, one a line, as tests/gen_bucketing.py writes
 * them). Rates are decisions per second of this thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID), so they hold on a shared machine: the best and
 * the median of ROUNDS rounds of SECONDS each. Load is dc_config_parse() of
 * the file's bytes (the parse and the snapshot, as at start and at a swap),
 * best and median of ROUNDS.
 *
 * -n DECISIONS runs that many decisions per file, once, and prints no rate:
 * the noise-free figure is then valgrind's instruction count (doc/performance.md):
 *   valgrind --tool=callgrind --toggle-collect=dc_decide bench/bench_engine -n 20000 - 0 \
 *       FILE VISITORS.jsonl
 * gives the instructions of 20 000 decisions on FILE (SAMPLE "-": none on the sample).
 * Not a test: figures depend on the machine; compare runs made together.
 */
#include "dc_config.h"
#include "dc_engine.h"
#include "dc_index.h"
#include "dc_targeting.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_VISITORS 4096
#define MAX_ROUNDS 64

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

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Best (the largest for rates, the smallest for times) and median of n figures. */
static void best_median(double *v, int n, int higher_is_better, double *best, double *median)
{
    qsort(v, (size_t)n, sizeof(*v), by_value);
    *best = higher_is_better ? v[n - 1] : v[0];
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Visitors from request bodies, one a line: visitor_id and context as dc_api reads them. */
static prepared_t *read_visitors(apr_pool_t *p, const char *path, unsigned *n_out)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    unsigned n = 0;
    prepared_t *pv = apr_pcalloc(p, N_VISITORS * sizeof(*pv));

    if (!f)
        return NULL;
    while (n < N_VISITORS && getline(&line, &cap, f) > 0) {
        json_t *body = json_loads(line, 0, NULL), *ctx, *value;
        const char *key, *id;
        dc_context_entry_t *e;
        size_t i = 0;

        if (!body || !json_is_string(json_object_get(body, "visitor_id"))) {
            json_decref(body);
            continue;
        }
        id = apr_pstrdup(p, json_string_value(json_object_get(body, "visitor_id")));
        ctx = json_object_get(body, "context");
        e = apr_pcalloc(p, (json_object_size(ctx) + 1) * sizeof(*e));
        json_object_foreach(ctx, key, value) {
            e[i].key = apr_pstrdup(p, key);
            e[i].key_len = strlen(key);
            dc_value_from_json(p, value, &e[i].value);
            i++;
        }
        dc_value_set_string(p, &pv[n].visitor_value, id, strlen(id));
        pv[n].ctx.entries = e;
        pv[n].ctx.n_entries = i;
        pv[n].ctx.visitor = &pv[n].visitor_value;
        pv[n].v.context = &pv[n].ctx;
        pv[n].v.visitor_id = id;
        pv[n].v.visitor_id_len = strlen(id);
        json_decref(body);
        n++;
    }
    free(line);
    fclose(f);
    *n_out = n;
    return n ? pv : NULL;
}

/* Decides for `count` visitors (count 0: for `seconds` of CPU); returns decisions/s of CPU. */
static double run(const dc_config_t *cfg, const prepared_t *visitors, unsigned n_visitors,
                  double seconds, unsigned long count, double *served)
{
    apr_pool_t *p;
    dc_outcome_t out;
    dc_decision_t *decisions = malloc((cfg->n_campaigns + 1) * sizeof(*decisions));
    unsigned long n = 0, total = 0;
    double start = cpu_now(), now = start;

    apr_pool_create(&p, NULL);
    out.decisions = decisions;
    while (count ? n < count : now - start < seconds) {
        for (unsigned i = 0; i < 256; i++, n++) {
            dc_decide(p, cfg, NULL, NULL, &visitors[n % n_visitors].v, NULL, &out);
            total += out.n_decisions;
        }
        apr_pool_clear(p);
        now = cpu_now();
    }
    apr_pool_destroy(p);
    free(decisions);
    *served = (double)total / (double)n;
    return (double)n / (now - start);
}

static void bench_file(const char *label, const char *data, size_t len, const prepared_t *visitors,
                       unsigned n_visitors, int rounds, double seconds, unsigned long count)
{
    double rates[MAX_ROUNDS], loads[MAX_ROUNDS], served = 0, best, median, lbest, lmedian;
    dc_config_t *cfg = NULL;
    dc_config_error_t err;

    for (int r = 0; r < rounds; r++) {
        double t0 = cpu_now();

        if (cfg)
            dc_config_unref(cfg);
        if (dc_config_parse(data, len, &cfg, &err) < 0) {
            fprintf(stderr, "bench_engine: %s: %s %s\n", label, err.path, err.text);
            exit(1);
        }
        loads[r] = (cpu_now() - t0) * 1e3;
    }
    best_median(loads, rounds, 0, &lbest, &lmedian);
    if (count) {
        run(cfg, visitors, n_visitors, 0, count, &served);
        printf("%s: %zu campaigns, %lu decisions (%.2f campaigns served per decision)\n", label,
               cfg->n_campaigns, count, served);
    } else {
        for (int r = 0; r < rounds; r++)
            rates[r] = run(cfg, visitors, n_visitors, seconds, 0, &served);
        best_median(rates, rounds, 1, &best, &median);
        printf("%s: %zu campaigns (%zu evaluated for every visitor, the others found by the index), "
               "%zu bytes\n"
               "  decisions/s of CPU: best %.0f, median %.0f (%d rounds of %.1f s; %.1f ns per campaign;"
               " %.2f campaigns served per decision)\n"
               "  load (parse + snapshot), ms of CPU: best %.1f, median %.1f\n",
               label, cfg->n_campaigns, dc_index_n_always(cfg->index), len, best, median, rounds, seconds,
               1e9 / best / (double)(cfg->n_campaigns ? cfg->n_campaigns : 1), served, lbest, lmedian);
    }
    fflush(stdout);
    dc_config_unref(cfg);
}

static char *slurp(apr_pool_t *p, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long size;
    char *buf;

    if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    buf = apr_palloc(p, (size_t)size + 1);
    *len = fread(buf, 1, (size_t)size, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_engine [-r ROUNDS] [-t SECONDS] [-n DECISIONS] SAMPLE|- N "
                    "[FILE VISITORS.jsonl]...\n");
    return 2;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    prepared_t *visitors;
    int rounds = 5, opt;
    double seconds = 1.0;
    unsigned long count = 0;
    unsigned n_big;
    size_t len;
    char *doc;

    while ((opt = getopt(argc, (char *const *)argv, "r:t:n:")) != -1) {
        switch (opt) {
        case 'r': rounds = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'n': count = strtoul(optarg, NULL, 10); break;
        default: return usage();
        }
    }
    if (argc - optind < 2 || (argc - optind) % 2 || rounds < 1 || rounds > MAX_ROUNDS || seconds <= 0)
        return usage();
    if (count)
        rounds = 1;
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    printf("build: CC=%s CFLAGS=%s\n", BENCH_CC, BENCH_CFLAGS);

    visitors = apr_palloc(p, N_VISITORS * sizeof(*visitors));
    for (unsigned i = 0; i < N_VISITORS; i++)
        prepare(p, &visitors[i], i);
    if (strcmp(argv[optind], "-") != 0) { /* "-": no sample */
        if (!(doc = slurp(p, argv[optind], &len))) {
            fprintf(stderr, "bench_engine: %s: cannot read\n", argv[optind]);
            return 1;
        }
        bench_file(argv[optind], doc, len, visitors, N_VISITORS, rounds, seconds, count);
    }
    n_big = (unsigned)atoi(argv[optind + 1]);
    if (n_big) {
        doc = generate(p, n_big);
        bench_file(apr_psprintf(p, "generated file (%u campaigns)", n_big), doc, strlen(doc),
                   visitors, N_VISITORS, rounds, seconds, count);
    }
    for (int i = optind + 2; i + 1 < argc; i += 2) {
        unsigned n_visitors = 0;
        prepared_t *file_visitors = read_visitors(p, argv[i + 1], &n_visitors);

        if (!(doc = slurp(p, argv[i], &len)) || !file_visitors) {
            fprintf(stderr, "bench_engine: cannot read %s or %s\n", argv[i], argv[i + 1]);
            return 1;
        }
        bench_file(argv[i], doc, len, file_visitors, n_visitors, rounds, seconds, count);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}

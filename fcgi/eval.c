#include "eval.h"

#include "dc_api.h"
#include "dc_config.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_spool.h"
#include "dc_status.h"
#include "dc_store.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dc_eval_usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s eval --bucketing FILE [--mode simple|normal|full]\n"
            "           [--store none|memory|dbm:PATH|redis://HOST:PORT[/DB]|dynamo://TABLE|\n"
            "                    plugin:PATH[?KEY=VALUE&...]] [--env-id ID]\n"
            "           [--path /v2/campaigns|/v2/flags|/v2/campaigns/ID] [--query QUERY]\n"
            "           [--method POST|GET|...] [--report PATH] [--status-path PATH]\n"
            "           [--spool DIR [--spool-options fsync=always,max-bytes=1m,...]]\n"
            "\n"
            "Reads one decision request body per line on stdin, e.g.\n"
            "  {\"visitor_id\":\"v1\",\"context\":{\"age\":30},\"trigger_hit\":false}\n"
            "and writes the response body for each, one JSON object per line. Sticky\n"
            "assignments persist across lines with a store. Requests are measured in a\n"
            "metrics region of one slot: --report PATH sends one GET of PATH after the\n"
            "last line (e.g. /v2/metrics, /metrics, /v2/ready) and writes its body as is.\n"
            "Requests to --status-path (default /decision-status) get the HTML status\n"
            "page. With --spool, each line's hits are appended to the event spool in DIR\n"
            "before its answer is written (and flushed), for `decision-fcgi ship` to\n"
            "deliver. Exits 1 on a bad bucketing file or store, 2 on bad arguments.\n",
            prog);
}

static int read_line(FILE *in, char **buf, size_t *cap, size_t *len, size_t limit, int *too_long)
{
    int c;

    *len = 0;
    *too_long = 0;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (*len >= limit) {
            *too_long = 1;
            continue; /* drain the rest of the line */
        }
        if (*len + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *nbuf = realloc(*buf, ncap);

            if (!nbuf)
                return -1;
            *buf = nbuf;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char)c;
    }
    if (c == EOF && *len == 0 && !*too_long)
        return -1;
    return 0;
}

int dc_eval_main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t options[] = {
        {"bucketing", 'b', 1, "bucketing file"},
        {"mode", 'm', 1, "response mode"},
        {"store", 's', 1, "assignment store URI"},
        {"env-id", 'e', 1, "environment id"},
        {"path", 'p', 1, "route"},
        {"query", 'q', 1, "query string"},
        {"method", 'M', 1, "HTTP method of each line's request"},
        {"report", 'r', 1, "GET this path after the last line"},
        {"status-path", 'S', 1, "path of the status page"},
        {"spool", 'D', 1, "event spool directory"},
        {"spool-options", 'O', 1, "event spool options"},
        {"help", 'h', 0, "help"},
        {NULL, 0, 0, NULL},
    };
    const char *bucketing = NULL, *mode = "normal", *store_uri = "none", *path = "/v2/campaigns";
    const char *query = NULL, *env_id = NULL, *arg, *method = "POST", *report = NULL;
    const char *status_path = "/decision-status", *spool_dir = NULL, *spool_spec = NULL;
    dc_spool_options_t spool_opt;
    dc_spool_t *spool = NULL;
    apr_pool_t *pool, *req_pool;
    apr_getopt_t *opt;
    apr_status_t rv;
    dc_service_t svc;
    dc_config_t *cfg;
    dc_config_error_t cerr;
    char err[256], *line = NULL;
    size_t cap = 0, len;
    int opt_ch, too_long;

    apr_pool_create(&pool, NULL);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt_long(opt, options, &opt_ch, &arg)) == APR_SUCCESS) {
        switch (opt_ch) {
        case 'b': bucketing = arg; break;
        case 'm': mode = arg; break;
        case 's': store_uri = arg; break;
        case 'e': env_id = arg; break;
        case 'p': path = arg; break;
        case 'q': query = arg; break;
        case 'M': method = arg; break;
        case 'r': report = arg; break;
        case 'S': status_path = arg; break;
        case 'D': spool_dir = arg; break;
        case 'O': spool_spec = arg; break;
        case 'h': dc_eval_usage("decision-fcgi"); return 0;
        }
    }
    if (rv != APR_EOF || !bucketing || opt->ind != argc) {
        dc_eval_usage("decision-fcgi");
        return 2;
    }
    if (strcmp(mode, "simple") && strcmp(mode, "normal") && strcmp(mode, "full")) {
        fprintf(stderr, "%s eval: unknown --mode \"%s\": use simple, normal or full\n", argv[0],
                mode);
        return 2;
    }
    if (dc_service_init(&svc, pool) < 0) {
        fprintf(stderr, "%s eval: cannot initialise\n", argv[0]);
        return 1;
    }
    svc.opt.env_id = env_id;
    svc.metrics = dc_metrics_create(pool, 1);
    svc.cmdline = (const char *const *)argv;
    if (dc_config_load_file(bucketing, &cfg, &cerr) < 0) {
        fprintf(stderr, "%s eval: bad bucketing file %s: %s%s%s\n", argv[0], bucketing,
                cerr.path, cerr.path[0] ? ": " : "", cerr.text);
        return 1;
    }
    dc_slot_publish(&svc.slot, cfg);
    svc.store = dc_store_open(pool, store_uri, err, sizeof(err));
    if (!svc.store) {
        fprintf(stderr, "%s eval: %s\n", argv[0], err);
        dc_slot_clear(&svc.slot);
        return 1;
    }
    if (spool_dir) {
        dc_spool_options_default(&spool_opt);
        spool_opt.dir = spool_dir;
        if (dc_spool_options_parse(&spool_opt, spool_spec, err, sizeof(err)) < 0 ||
            !(spool = dc_spool_open(pool, &spool_opt, err, sizeof(err)))) {
            fprintf(stderr, "%s eval: %s\n", argv[0], err);
            dc_store_close(svc.store);
            dc_slot_clear(&svc.slot);
            return 1;
        }
        svc.hit_sink = dc_spool_sink;
        svc.hit_baton = spool;
    }
    if (!query)
        query = apr_pstrcat(pool, "sendContextEvent=false&mode=", mode, NULL);

    apr_pool_create(&req_pool, pool);
    while (read_line(stdin, &line, &cap, &len, svc.opt.max_body_size, &too_long) == 0) {
        dc_request_t req;
        dc_response_t resp;
        const char *body;
        size_t body_len;

        memset(&req, 0, sizeof(req));
        req.method = method;
        req.path = path;
        req.query = query;
        req.body = line ? line : "";
        req.body_len = len;
        req.body_too_large = too_long;
        req.received = apr_time_now();
        if (strcmp(path, status_path) == 0)
            dc_status_handle(&svc, req_pool, &req, &resp);
        else
            dc_api_handle(&svc, req_pool, &req, &resp);
        body = resp.body;
        body_len = resp.body_len;
        while (body_len > 0 && body[body_len - 1] == '\n')
            body_len--;
        if (body_len == 0) {
            body = resp.status == 204 ? "{}" : "{\"message\":\"empty response\"}";
            body_len = strlen(body);
        }
        fwrite(body, 1, body_len, stdout);
        fputc('\n', stdout);
        if (spool) /* an answer seen means its events are in the spool */
            fflush(stdout);
        apr_pool_clear(req_pool);
    }
    if (report) {
        dc_request_t req;
        dc_response_t resp;

        memset(&req, 0, sizeof(req));
        req.method = "GET";
        req.path = report;
        req.body = "";
        req.received = apr_time_now();
        if (strcmp(report, status_path) == 0)
            dc_status_handle(&svc, req_pool, &req, &resp);
        else
            dc_api_handle(&svc, req_pool, &req, &resp);
        fwrite(resp.body ? resp.body : "", 1, resp.body_len, stdout);
        apr_pool_clear(req_pool);
    }
    fflush(stdout);
    free(line);
    if (spool) {
        dc_spool_stats_t st;

        dc_spool_close(spool);
        dc_spool_stats(spool, &st);
        fprintf(stderr,
                "spool: %" APR_UINT64_T_FMT " record(s) accepted, %" APR_UINT64_T_FMT
                " refused, %" APR_UINT64_T_FMT " dropped\n",
                st.accepted, st.refused, st.dropped);
    }
    dc_store_close(svc.store);
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(pool);
    return ferror(stdout) ? 1 : 0;
}

/*
 * decision-fcgi ship: a thin command over dc_shipper. With --once it
 * delivers what is in the spool now (waiting out retries until --deadline)
 * and exits 0 when nothing is left, 1 when something is; without it, it runs
 * the shipper thread until SIGTERM or SIGINT, then flushes for five seconds.
 */
#include "ship.h"

#include "dc_log.h"
#include "dc_shipper.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dc_ship_usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s ship --spool DIR [--collector URL|file:/DIR|s3://...|azblob://...]\n"
            "           [--once] [--deadline SEC] [--batch-hits N] [--request-timeout MS]\n"
            "           [--backoff-min MS] [--backoff-max MS] [--ca-file FILE] [--log-level LEVEL]\n"
            "\n"
            "Delivers the event spool in DIR to the collector (default %s),\n"
            "oldest first, deleting a segment once every batch of it got a 2xx (S3, Azure:\n"
            "once its object was stored; see doc/cloud-sinks.md). --once ships\n"
            "what is there and exits (0: nothing left, 1: something left at the deadline,\n"
            "default 60 s); otherwise it runs until SIGTERM/SIGINT. --spool and --collector\n"
            "default to the responder's EVENTS_SPOOL_DIR and EVENTS_COLLECTOR settings.\n",
            prog, DC_SHIPPER_DEFAULT_COLLECTOR);
}

static long parse_long(const char *s, long min, long max, int *bad)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < min || v > max)
        *bad = 1;
    return v;
}

int dc_ship_main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t options[] = {
        {"spool", 'S', 1, "spool directory"},
        {"collector", 'c', 1, "collector URL, file:/dir, s3://BUCKET/PREFIX or azblob://ACCOUNT/CONTAINER/PREFIX"},
        {"once", '1', 0, "ship what is there and exit"},
        {"deadline", 'd', 1, "seconds --once may take"},
        {"batch-hits", 'n', 1, "hits per batch"},
        {"request-timeout", 't', 1, "ms per request"},
        {"backoff-min", 'b', 1, "ms"},
        {"backoff-max", 'B', 1, "ms"},
        {"ca-file", 'C', 1, "CA bundle"},
        {"log-level", 'l', 1, "log level"},
        {"help", 'h', 0, "help"},
        {NULL, 0, 0, NULL},
    };
    dc_shipper_options_t o;
    dc_shipper_t *sh;
    dc_shipper_stats_t st;
    dc_log_level_e level = DC_LOG_WARN;
    apr_pool_t *pool;
    apr_getopt_t *opt;
    apr_status_t rv;
    const char *arg;
    char err[256];
    int ch, once = 0, bad = 0, rc = 0, collector_given = 0;
    long deadline_s = 60;

    dc_shipper_options_default(&o);
    apr_pool_create(&pool, NULL);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt_long(opt, options, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 'S': o.spool_dir = arg; break;
        case 'c': o.collector = arg; collector_given = 1; break;
        case '1': once = 1; break;
        case 'd': deadline_s = parse_long(arg, 1, 86400, &bad); break;
        case 'n': o.batch_max_hits = (size_t)parse_long(arg, 1, 500, &bad); break;
        case 't': o.timeout_ms = parse_long(arg, 1, 600000, &bad); break;
        case 'b': o.backoff_min = apr_time_from_msec(parse_long(arg, 1, 3600000, &bad)); break;
        case 'B': o.backoff_max = apr_time_from_msec(parse_long(arg, 1, 3600000, &bad)); break;
        case 'C': o.ca_file = arg; break;
        case 'l': bad |= dc_log_level_parse(arg, &level) < 0; break;
        case 'h': dc_ship_usage("decision-fcgi"); return 0;
        }
    }
    /* The responder's settings by the same names, so one environment file serves both. */
    if (!o.spool_dir && (arg = getenv("EVENTS_SPOOL_DIR")) && *arg)
        o.spool_dir = arg;
    if (!collector_given && (arg = getenv("EVENTS_COLLECTOR")) && *arg)
        o.collector = arg;
    if (rv != APR_EOF || bad || !o.spool_dir || opt->ind != argc) {
        dc_ship_usage("decision-fcgi");
        return 2;
    }
    dc_log_set_sink(NULL, NULL, level);
    if (!(sh = dc_shipper_create(pool, &o, err, sizeof(err)))) {
        fprintf(stderr, "%s ship: %s\n", argv[0], err);
        return 2;
    }
    if (once) {
        rc = dc_shipper_flush(sh, apr_time_now() + apr_time_from_sec(deadline_s)) == 0 ? 0 : 1;
    } else {
        sigset_t set;
        int sig;

        /* Blocked before the thread starts, so only sigwait sees them. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (dc_shipper_start(sh, NULL) < 0)
            return 1;
        sigwait(&set, &sig);
        dc_shipper_stop(sh, apr_time_from_sec(5));
    }
    dc_shipper_stats(sh, &st);
    fprintf(stderr,
            "ship: %" APR_UINT64_T_FMT " batch(es), %" APR_UINT64_T_FMT
            " hit(s) delivered, %" APR_UINT64_T_FMT " retries, %" APR_UINT64_T_FMT
            " dead letter(s); state %s\n",
            st.batches_sent, st.hits_sent, st.retries, st.dead_letters,
            dc_shipper_state_name(st.state));
    dc_shipper_destroy(sh);
    apr_pool_destroy(pool);
    return rc;
}

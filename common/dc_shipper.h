/*
 * dc_shipper: delivers the spool's ready segments to the collector, at least
 * once, oldest first. One shipper per server: the httpd module's watchdog
 * singleton calls dc_shipper_run_once periodically; decision-fcgi runs
 * dc_shipper_start's thread; `decision-fcgi ship` drives it by hand.
 *
 * A segment's hits go out in batches (at most batch_max_hits, default 50 as
 * the decision-api, or batch_max_bytes) in the collector's envelope
 * {"t":"BATCH","ds":"APP","h":[...],"cv":{...}}, each hit with "qt" = its
 * qt_base + the milliseconds between receipt and this send. The hits' spool
 * ids go along in an X-Decision-Hit-Ids header (comma-separated, same order
 * as "h") so a collector or a test can deduplicate.
 *
 * After each acknowledged batch the shipper writes the segment's progress
 * file (offset of the next hit, temp file + rename), so a restart resumes
 * where it stopped; a crash between the 2xx and that write resends one
 * batch. The contract is at-least-once. The segment is deleted only once
 * every batch of it was acknowledged (or dead-lettered).
 *
 * Outcomes of a batch: 2xx → done; 408, 429, 5xx, 3xx, timeouts, connection
 * and TLS errors → retried with exponential backoff and full jitter (between
 * backoff_min and backoff_max; a 429's Retry-After is honoured up to
 * backoff_max), nothing after it is sent until it goes through; any other
 * 4xx → the batch is appended to dead-letter/YYYYMMDD.jsonl in the spool
 * directory (one JSON line per batch, as it was posted) and not retried.
 *
 * Sinks, chosen by the collector setting: "http://..." / "https://..." (TLS
 * verified; default https://ariane.abtasty.com), or "file:/dir": batches as
 * JSON lines in dir/events-<ms>-<pid>-<seq>.jsonl, a new file past
 * file_rotate_bytes, each batch written with one write() and fdatasync'd
 * before its segment progress moves on, or an object store, "s3://..." or
 * "azblob://..." (dc_objstore.h): ready segments, oldest first, become one
 * gzipped JSON-lines object (one hit per line: the collector's hit with
 * "qt", plus "ts", the ms when the server received it, and "hit_id", its
 * spool id) of at most the store's max_object_bytes, put with Content-MD5;
 * the segments are deleted once the store acknowledged the object. Past a
 * put, the next object waits for the store's interval (default 5 s, the
 * spool's segment age) unless max_object_bytes are ready or the shipper is
 * flushing, so a busy server makes about one object per interval, not one
 * per segment. Each sink makes a test at creation (HTTP: a HEAD to the
 * collector; file: a probe file; object stores: a probe object put and
 * deleted, its failure named: credentials, bucket/container, permission) and
 * logs a clear error when it fails; that is not fatal (the spool keeps the
 * events). The sink's operations are counted and timed (stats.sink).
 *
 * State (ok / retrying / failing after 5 failures in a row) is logged on
 * every change. Not thread-safe except dc_shipper_stats: one caller at a time.
 */
#ifndef DC_SHIPPER_H
#define DC_SHIPPER_H

#include "dc_metrics.h"
#include "dc_spool.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <stdint.h>

#define DC_SHIPPER_DEFAULT_COLLECTOR "https://ariane.abtasty.com"
#define DC_SHIPPER_DEFAULT_BATCH_HITS 50
#define DC_SHIPPER_DEFAULT_BATCH_BYTES (512 * 1024)
#define DC_SHIPPER_DEFAULT_TIMEOUT_MS 5000
#define DC_SHIPPER_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DC_SHIPPER_DEFAULT_BACKOFF_MIN apr_time_from_msec(500)
#define DC_SHIPPER_DEFAULT_BACKOFF_MAX apr_time_from_sec(60)
#define DC_SHIPPER_DEFAULT_INTERVAL apr_time_from_sec(1)
#define DC_SHIPPER_DEFAULT_FILE_ROTATE_BYTES (64 * 1024 * 1024)
#define DC_SHIPPER_DEFAULT_OBJECT_TIMEOUT_MS 30000 /* a put of an object, when timeout_ms is 0 */

typedef struct {
    const char *spool_dir;
    const char *collector;              /* NULL = DC_SHIPPER_DEFAULT_COLLECTOR */
    size_t batch_max_hits;              /* 1..500; 0 = default */
    size_t batch_max_bytes;             /* 0 = default */
    long timeout_ms;                    /* whole request; 0 = default */
    long connect_timeout_ms;            /* 0 = default */
    apr_interval_time_t backoff_min;    /* 0 = default */
    apr_interval_time_t backoff_max;    /* 0 = default */
    apr_interval_time_t interval;       /* the thread's period; 0 = default */
    apr_off_t file_rotate_bytes;        /* file sink; 0 = default */
    const char *ca_file;                /* extra CA bundle, NULL = system */
    const char *user_agent;             /* NULL = "mod_decision/VERSION" */
} dc_shipper_options_t;

typedef enum { DC_SHIPPER_OK = 0, DC_SHIPPER_RETRYING, DC_SHIPPER_FAILING } dc_shipper_state_e;

typedef struct {
    dc_shipper_state_e state;
    apr_time_t last_success;            /* last acknowledged batch, 0 = never */
    apr_time_t next_attempt;            /* when retrying: not before */
    uint64_t batches_sent, hits_sent;
    uint64_t retries;                   /* failed attempts that will be retried */
    uint64_t dead_letters, dead_letter_hits;
    uint64_t segments_done;
    uint64_t objects;                   /* object stores: objects acknowledged */
    dc_sink_figures_t sink;
    char last_error[160];
} dc_shipper_stats_t;

typedef enum {
    DC_SHIP_IDLE = 0,   /* nothing was ready */
    DC_SHIP_DONE,       /* everything that was ready is delivered */
    DC_SHIP_MORE,       /* the deadline came first: call again */
    DC_SHIP_BACKOFF     /* a batch failed: not before stats.next_attempt */
} dc_ship_result_e;

typedef struct dc_shipper dc_shipper_t;

void dc_shipper_options_default(dc_shipper_options_t *opt);
/* Checks the collector setting's syntax (no request, no directory made):
 * 0, or -1 with why in err. For the configuration parsers. */
int dc_shipper_check_collector(apr_pool_t *p, const char *collector, char *err, size_t errlen);
/* Validates the options and tests the sink (see above). NULL + err only on a
 * bad setting (an unusable URL, a sink directory that cannot be created). */
dc_shipper_t *dc_shipper_create(apr_pool_t *p, const dc_shipper_options_t *opt, char *err,
                                size_t errlen);
void dc_shipper_destroy(dc_shipper_t *sh);

/* Ships what is ready now (adopting dead processes' segments first) until
 * done, a failure, or the deadline (checked between batches; one request can
 * overrun it by its timeout). */
dc_ship_result_e dc_shipper_run_once(dc_shipper_t *sh, apr_time_t deadline);
/* run_once until nothing is ready, waiting out backoffs, until deadline.
 * 0 when nothing is left to ship, -1 otherwise. */
int dc_shipper_flush(dc_shipper_t *sh, apr_time_t deadline);

/* A thread that ticks own_spool (may be NULL) and calls run_once every
 * interval; stop rotates own_spool and flushes within flush_within. */
int dc_shipper_start(dc_shipper_t *sh, dc_spool_t *own_spool);
void dc_shipper_stop(dc_shipper_t *sh, apr_interval_time_t flush_within);

void dc_shipper_stats(dc_shipper_t *sh, dc_shipper_stats_t *st);
const char *dc_shipper_state_name(dc_shipper_state_e state);

/* The events' figures for the metrics and status pages, from a spool handle
 * and (NULL when this process has none) the shipper's stats, which in httpd
 * come from another child through shared memory. Degraded: the spool is
 * refusing appends now, or deliveries are failing (not merely retrying). */
void dc_shipper_spool_figures(dc_spool_t *spool, const dc_shipper_stats_t *ship,
                              dc_metrics_extra_t *out);

#endif

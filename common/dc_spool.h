/*
 * dc_spool: the durable, append-only event spool between a request and the
 * shipper. A request's hits are on disk (in the kernel's page cache at least,
 * on the platter with fsync=always) before the request is answered.
 *
 * Layout of the spool directory (one per server, shared by its processes):
 *
 *     seg-<created_ms>-<pid>-<seq>-<rand>.open        being appended by <pid>
 *     seg-<created_ms>-<pid>-<seq>-<rand>-n<N>.ready  closed, N records, to ship
 *     seg-<...>.progress                             shipper's resume point
 *     ring-<pid>-<rand>.link                         -> <ring-dir>/mod_decision-ring-<pid>-<rand>
 *     dead-letter/YYYYMMDD.jsonl                     batches the collector refused
 *
 * Each process appends to its own ring (write=ring, the default): a file in
 * a tmpfs, mapped shared, so a record copied there is in the kernel, and
 * survives the process, before the request is answered. The copy takes no
 * lock and no system call (a compare-and-swap reserves its place); the
 * process's background thread writes the ring out to the process's own
 * segment and syncs it. With write=map|pwrite (and when the ring is full or
 * cannot be made) the request writes the segment itself: threads of a
 * process share one mutex, held only to reserve a record's range, and copy
 * into the mapped segment (or pwrite) after it. A record is one request's
 * hits, whole and contiguous:
 *
 *     DC2 <payload length, 8 hex> <crc32c of the payload, 8 hex> <payload>\n
 *     payload = <n hits> then n times " <id> <received_ms> <qt_base> <len> <json>"
 *
 * The fixed-width header lets a reader detect a record torn by a crash (bad
 * header, short payload, wrong crc or missing newline); it is skipped with a
 * log line and reading resumes at the next record. DC1 records (the same
 * with zlib's IEEE crc32, written before 2026-12) are still read. The hit JSON is kept
 * byte for byte as dc_hits built it (without "qt"); each hit has an id
 * unique across processes and restarts, which stays in the record (the
 * collector's hit format has no field for it) and is sent to the collector
 * as a header by the shipper for deduplication.
 *
 * A segment is closed (renamed to .ready) when it reaches segment_max_bytes,
 * when its first record is older than segment_max_age, and on dc_spool_close.
 * Each handle runs a small background thread (started at open, and again in
 * a forked child on its first append) that does the interval fdatasync
 * without holding the request path's lock and closes segments past their
 * age, so an idle process's events still reach the shipper. With
 * fsync=always the record's fdatasync also runs after the lock is released.
 * The open segment's file is allocated ahead of its records (cut to them at
 * close; adoption cuts a dead process's trailing zeros). A .open segment whose pid is gone
 * (a crash, kill -9) is adopted as ready, and its ring saved as a ready
 * segment (the ring's write into the segment resolved by the ring's header,
 * so that nothing comes twice), by dc_spool_adopt_dead, which every
 * open and every shipper run call. The total size of the directory is bounded:
 * at the bound new events are refused (default; counted, logged once per
 * streak; decisions are still answered) or the oldest ready segment is
 * deleted (counted). The total is measured by a directory scan at most once a
 * second plus this process's own writes since, so with several processes it
 * can overshoot by what they write in a second.
 */
#ifndef DC_SPOOL_H
#define DC_SPOOL_H

#include "dc_api.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <stdint.h>

typedef enum {
    DC_SPOOL_FSYNC_INTERVAL = 0, /* fdatasync at most every fsync_interval (default 100 ms) */
    DC_SPOOL_FSYNC_ALWAYS,       /* fdatasync after every record, before the answer */
    DC_SPOOL_FSYNC_NEVER         /* the kernel decides (a process crash still loses nothing) */
} dc_spool_fsync_e;

typedef enum {
    DC_SPOOL_FULL_REFUSE = 0,    /* refuse new events at the bound (default) */
    DC_SPOOL_FULL_DROP_OLDEST    /* delete the oldest ready segment to make room */
} dc_spool_full_e;

#define DC_SPOOL_DEFAULT_FSYNC_INTERVAL apr_time_from_msec(100)
#define DC_SPOOL_DEFAULT_SEGMENT_BYTES (4 * 1024 * 1024)
#define DC_SPOOL_DEFAULT_SEGMENT_AGE apr_time_from_sec(5)
#define DC_SPOOL_DEFAULT_MAX_BYTES ((apr_off_t)1024 * 1024 * 1024)
#define DC_SPOOL_DEFAULT_RING_BYTES ((apr_off_t)4 * 1024 * 1024)
#define DC_SPOOL_DEFAULT_RING_DIR "/dev/shm"

typedef struct {
    const char *dir;                    /* created (0700) when missing */
    dc_spool_fsync_e fsync;
    apr_interval_time_t fsync_interval;
    apr_off_t segment_max_bytes;
    apr_interval_time_t segment_max_age;
    apr_off_t max_bytes;                /* bound of the whole directory */
    dc_spool_full_e on_full;
    int write_pwrite;                   /* write=pwrite: a pwrite per record, no mapping */
    int write_direct;                   /* write=map|pwrite: requests write the segment */
    apr_off_t ring_bytes;               /* the ring's size (write=ring, the default) */
    char ring_dir[256];                 /* where rings live: a tmpfs (default /dev/shm) */
} dc_spool_options_t;

typedef struct dc_spool dc_spool_t;

/* Figures for metrics and health. Counters are this handle's; depth and age
 * come from a scan of the directory (every process's segments). */
typedef struct {
    uint64_t accepted;          /* records written */
    uint64_t accepted_hits;
    uint64_t refused;           /* records refused (bound reached or write error) */
    uint64_t refused_hits;
    uint64_t dropped;           /* records deleted by drop-oldest */
    uint64_t dropped_segments;
    uint64_t depth_records;     /* ready segments + this process's open one */
    uint64_t depth_bytes;       /* every segment in the directory */
    uint64_t segments;
    /* With write=ring: records the request wrote to the segment itself, the ring being
     * full (or the record larger than a quarter of it). A ring that is big enough for
     * the load keeps this at 0: each such record takes the slower write=map path. */
    uint64_t ring_overflows;
    apr_interval_time_t oldest_age; /* age of the oldest unsent segment, 0 when empty */
    int refusing;               /* the last append was refused (bound reached or write error) */
} dc_spool_stats_t;

void dc_spool_options_default(dc_spool_options_t *opt);
/* Applies "key=value,key=value" (fsync=always|never|100ms, segment-bytes=N,
 * segment-age=5s, max-bytes=N, on-full=refuse|drop-oldest, write=ring|map|pwrite,
 * ring-bytes=N, ring-dir=PATH; sizes take k/m/g,
 * durations ms/s). Returns 0, or -1 with a message in err. */
int dc_spool_options_parse(dc_spool_options_t *opt, const char *spec, char *err, size_t errlen);

/* Opens the spool of this process (adopting dead processes' segments). Its
 * memory lives in p; call dc_spool_close before p goes. NULL + err on failure.
 * One handle per process and directory: open it in each process that
 * appends (httpd: child_init), not before a fork; a fork's child must not
 * use its parent's handle (its mutex may have been held by the parent's
 * background thread at the fork). */
dc_spool_t *dc_spool_open(apr_pool_t *p, const dc_spool_options_t *opt, char *err,
                          size_t errlen);
/* Closes the current segment (renames it .ready) and releases the handle. */
void dc_spool_close(dc_spool_t *s);

/* Appends one request's hits as one record. 0 when on disk, -1 when refused. */
int dc_spool_append(dc_spool_t *s, apr_pool_t *p, const dc_hit_t *hits, size_t n);
/* The dc_hit_sink_fn over a spool: svc.hit_sink = dc_spool_sink; svc.hit_baton = spool.
 * 1 when the record was accepted but the ring had no room for it (see ring_overflows). */
int dc_spool_sink(void *spool, apr_pool_t *p, const dc_hit_t *hits, size_t n);

/* The background thread's work, done now: the interval fdatasync and
 * closing a segment older than segment_max_age. Only needed where that
 * thread could not start (logged); harmless otherwise. */
void dc_spool_tick(dc_spool_t *s);
/* Closes the current segment now (so the shipper can take it). */
void dc_spool_rotate(dc_spool_t *s);
void dc_spool_stats(dc_spool_t *s, dc_spool_stats_t *st);

/* ---- reading (the shipper, tests, tools) ---------------------------------- */

typedef struct {
    const char *id;
    size_t id_len;
    int64_t received_ms;
    int64_t qt_base;
    const char *json;           /* the hit without "qt" */
    size_t json_len;
} dc_spool_hit_t;

/* Called for each intact record, at byte offset `offset` (end = next record).
 * A non-zero return stops the walk and is returned by dc_spool_parse. */
typedef int dc_spool_record_fn(void *baton, apr_off_t offset, apr_off_t end,
                               const dc_spool_hit_t *hits, size_t n);

/* Walks the records of a segment's bytes; torn or corrupt records are
 * skipped, counted in *skipped and logged with `name`. The hits point into data. */
int dc_spool_parse(const char *data, size_t len, const char *name, apr_pool_t *p,
                   dc_spool_record_fn *fn, void *baton, size_t *skipped);

/* Renames the .open segments of processes that no longer exist to .ready.
 * Returns how many were adopted. */
int dc_spool_adopt_dead(const char *dir, apr_pool_t *p);

/* The ready segments of a directory, oldest first (file names, not paths). */
int dc_spool_list_ready(const char *dir, apr_pool_t *p, const char ***names, size_t *n);

uint32_t dc_spool_crc32(const void *data, size_t len);  /* IEEE 802.3: DC1 records */
uint32_t dc_spool_crc32c(const void *data, size_t len); /* Castagnoli: DC2 records */
/* The same without the CPU's instruction (what other CPUs run; for tests). */
uint32_t dc_spool_crc32c_portable(const void *data, size_t len);

#endif

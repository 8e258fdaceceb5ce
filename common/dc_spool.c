/*
 * dc_spool: see dc_spool.h for the layout and the guarantees.
 *
 * The file I/O is plain POSIX on purpose: the guarantees rest on each record
 * being copied whole, at an offset of its own, into the kernel's page cache
 * before the request is answered (into a MAP_SHARED mapping of the segment,
 * or with one pwrite(2) where mapping is not possible), fdatasync(2),
 * rename(2) and kill(pid, 0), which APR's file layer would only wrap (and
 * buffer, if asked wrongly). APR still provides the pools, the mutex, the
 * clock and random bytes.
 *
 * With a ring (the default), the request path is ring_append: a
 * compare-and-swap on the ring's head, a copy, a release store of the
 * record's first byte. The background thread (ring_flush) writes the
 * complete records out to the segment with pwrite, zeroes them and moves
 * the tail. The ring lives in a tmpfs because a page there is never written
 * back: a store to a mapped page of a disk file that writeback has cleaned
 * takes a fault that waits for the file system (ext4's page_mkwrite, the
 * page's lock during writeback), and with 64 threads copying into one
 * segment, those waits, and the mutex queue behind an mmap waiting for the
 * address-space lock, were the p99 of a server with events (30-50 ms
 * against 2-7 ms without; doc/performance.md).
 *
 * A mapped segment costs the request no system call: a store to a shared
 * file mapping is in the page cache as soon as it is made, so a crash of the
 * process loses nothing (the machine's crash is what fsync is for, as with
 * write(2)). The file is grown ahead of the records with posix_fallocate, a
 * step at a time, so a copy never touches a page the file system has not
 * allocated (a full disk is a refused record, not a SIGBUS), and is cut to
 * its records when the segment closes. A killed process's .open segment may
 * end in allocated zeros: adoption cuts them off.
 *
 * The request path builds and checksums its record without any lock (ids come
 * from an atomic counter), holds the process's mutex only to check the bound,
 * pick the segment and reserve the record's offset, and writes after
 * releasing it: the threads of a busy child used to queue on that mutex for
 * the length of a write(2). Writers between their reservation and the end of
 * their write (and of their fdatasync with fsync=always) are counted in
 * `inflight`; closing a segment waits for them, so a .ready segment is
 * complete. A process killed between a reservation and its write leaves a
 * hole of zeros in its .open segment: readers skip it like a torn record.
 */
#include "dc_spool.h"
#include "dc_buf.h"
#include "dc_log.h"
#include "dc_proc.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_LEN 22           /* "DC2 " + 8 hex + " " + 8 hex + " " */
#define ID_MAX 80
#define SCAN_EVERY apr_time_from_sec(1)
#define MAX_SEGMENT_READ ((apr_off_t)1024 * 1024 * 1024)
#define MAP_SLACK ((apr_off_t)1024 * 1024) /* mapped past segment_max_bytes */

/* A ring: the first page of a file in a tmpfs (ring-dir), shared with
 * nothing but the process's own threads and, after its death, adoption.
 * Records are copied into the data after it, each whole and contiguous; a
 * record is committed when its first byte ('D') is stored, last. 'P' at a
 * record's place pads to the end of the data (the next record did not fit
 * there). Consumed bytes are zeroed before the tail moves past them. */
#define RING_HEADER 4096
#define RING_MAGIC "DCRING1"
#define RING_RECOVERED_SEQ 999999u /* the seq of a segment made from a dead ring */

typedef struct {
    char magic[8];
    uint64_t size;              /* data bytes */
    uint64_t head;              /* atomic: bytes reserved since the ring was made */
    uint64_t tail;              /* atomic: bytes written out to segments since */
    /* set while [tail, intent_tail) is being written at intent_offset of the
     * segment intent_stem, so that adoption neither loses nor repeats it */
    uint64_t intent_len;
    uint64_t intent_tail;
    int64_t intent_offset;
    char intent_stem[64];
} ring_header_t;

/* A segment being appended to. Appenders reserve a range of it under the
 * handle's lock and copy outside it, counted in inflight; it is closed by
 * whoever takes it out of the handle (detach_segment), outside the lock,
 * once inflight is 0: the others go on appending to the next one meanwhile.
 * malloc'd, not from a pool: it outlives the lock that created it. */
typedef struct {
    int fd;
    char stem[64];              /* <created_ms>-<pid>-<seq>-<rand> */
    char *map;                  /* the file mapped (MAP_SHARED); NULL: pwrite */
    apr_off_t map_len;          /* address space mapped */
    apr_off_t map_backed;       /* bytes of the file allocated: records are copied below */
    int map_failed;             /* growing the file failed: pwrite from here on */
    apr_off_t bytes;            /* reserved, copied or not yet */
    uint64_t records;
    apr_time_t created;
    unsigned inflight;          /* atomic: appenders between their reservation and their copy */
    int dir_synced;             /* atomic: its name is on disk (fsync of the directory) */
    apr_off_t released;         /* pages below this were unmapped before a sync */
    apr_off_t bytes_at_sync;    /* `bytes` at the last interval sync */
} segment_t;

struct dc_spool {
    apr_pool_t *pool;
    dc_spool_options_t opt;
    apr_thread_mutex_t *lock;

    pid_t pid;                  /* the process that owns seg (a fork starts afresh) */
    segment_t *seg;             /* the open segment, NULL when none */
    char id_stem[48];           /* <started_ms>-<pid>-<rand>: this process's hit ids */
    size_t id_stem_len;
    unsigned seq;
    uint32_t rand;
    uint64_t next_record;       /* atomic: numbers this process's records for their ids */
    apr_time_t last_sync;
    uint64_t written;           /* atomic: records whose copy or write is done */
    uint64_t synced;            /* `written` covered by the last fdatasync */

    apr_thread_t *syncer;       /* background fdatasync and age rotation */
    apr_thread_cond_t *syncer_wake;
    pid_t syncer_pid;           /* the process it runs in (none in a fork's child) */
    int syncer_stop;

    apr_off_t scanned_bytes;    /* the directory at scanned_at ... */
    apr_time_t scanned_at;
    apr_off_t written_since_scan; /* ... plus what we wrote since */

    ring_header_t *ring;        /* this process's ring; NULL: requests write segments */
    char *ring_data;
    size_t ring_map_len;
    char ring_path[PATH_MAX];   /* the ring's file, and its link in the spool */
    char ring_link[PATH_MAX];
    int ring_logged;            /* "no ring" was logged */
    uint64_t ring_head_limit;   /* atomic: past it, the bound is checked on the segment path */
    int ring_failing;           /* writing the ring out fails (logged once) */
    int ring_wake;              /* atomic: the syncer was woken for a filling ring */
    uint64_t ring_records;      /* atomic: records copied into the ring */
    uint64_t ring_overflows;    /* atomic: records the ring had no room for */
    uint64_t ring_flushed;      /* atomic: records written out of it */
    uint64_t ring_flushed_from; /* the tail before the last write-out */
    int refusing;               /* in a refusal streak (logged once) */

    uint64_t accepted, accepted_hits, refused, refused_hits, dropped, dropped_segments;
};

/* ---- crc32 (IEEE 802.3) ---------------------------------------------------- */

/* zlib's: every record is checksummed twice (appended, shipped), and a
 * byte-at-a-time loop was a tenth of the request path's CPU with events on. */
uint32_t dc_spool_crc32(const void *data, size_t len)
{
    const Bytef *b = data;
    uLong crc = crc32(0L, Z_NULL, 0);

    while (len > 0) {
        uInt chunk = len > (1u << 30) ? 1u << 30 : (uInt)len;

        crc = crc32(crc, b, chunk);
        b += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}

/* ---- crc32c (Castagnoli), the checksum of DC2 records ---------------------- */

/* The SSE4.2 instruction where the CPU has it (8 bytes a cycle: a tenth of
 * zlib's crc32 on a record), a table otherwise. Chosen once. */
static uint32_t crc32c_table[256];

static uint32_t crc32c_soft(uint32_t crc, const unsigned char *b, size_t len)
{
    while (len--)
        crc = crc32c_table[(crc ^ *b++) & 0xff] ^ crc >> 8;
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc,
                                                               const unsigned char *b,
                                                               size_t len)
{
    uint64_t c = crc;

    for (; len >= 8; b += 8, len -= 8) {
        uint64_t v;

        memcpy(&v, b, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    crc = (uint32_t)c;
    while (len--)
        crc = __builtin_ia32_crc32qi(crc, *b++);
    return crc;
}
#endif

static uint32_t (*crc32c_impl)(uint32_t, const unsigned char *, size_t);
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0x82F63B78u ^ c >> 1 : c >> 1;
        crc32c_table[i] = c;
    }
    crc32c_impl = crc32c_soft;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        crc32c_impl = crc32c_sse42;
#endif
}

uint32_t dc_spool_crc32c(const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_impl(0xFFFFFFFFu, data, len) ^ 0xFFFFFFFFu;
}

uint32_t dc_spool_crc32c_portable(const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_soft(0xFFFFFFFFu, data, len) ^ 0xFFFFFFFFu;
}

/* ---- options ----------------------------------------------------------------- */

void dc_spool_options_default(dc_spool_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->fsync = DC_SPOOL_FSYNC_INTERVAL;
    opt->fsync_interval = DC_SPOOL_DEFAULT_FSYNC_INTERVAL;
    opt->segment_max_bytes = DC_SPOOL_DEFAULT_SEGMENT_BYTES;
    opt->segment_max_age = DC_SPOOL_DEFAULT_SEGMENT_AGE;
    opt->max_bytes = DC_SPOOL_DEFAULT_MAX_BYTES;
    opt->on_full = DC_SPOOL_FULL_REFUSE;
    opt->ring_bytes = DC_SPOOL_DEFAULT_RING_BYTES;
    strcpy(opt->ring_dir, DC_SPOOL_DEFAULT_RING_DIR);
}

static int parse_size(const char *v, apr_off_t *out)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': n *= 1024; end++; break;
    case 'm': case 'M': n *= 1024 * 1024; end++; break;
    case 'g': case 'G': n *= 1024LL * 1024 * 1024; end++; break;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -1;
    *out = (apr_off_t)n;
    return 0;
}

static int parse_duration(const char *v, apr_interval_time_t *out)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0 || n > 100000000)
        return -1;
    if (strcmp(end, "ms") == 0)
        *out = apr_time_from_msec(n);
    else if (strcmp(end, "s") == 0 || *end == '\0')
        *out = apr_time_from_sec(n);
    else
        return -1;
    return 0;
}

int dc_spool_options_parse(dc_spool_options_t *opt, const char *spec, char *err, size_t errlen)
{
    char buf[512], *item, *state = NULL;

    if (!spec || !*spec)
        return 0;
    if (strlen(spec) >= sizeof(buf)) {
        snprintf(err, errlen, "spool options too long");
        return -1;
    }
    strcpy(buf, spec);
    for (item = apr_strtok(buf, ",", &state); item; item = apr_strtok(NULL, ",", &state)) {
        char *eq = strchr(item, '=');
        const char *key = item, *v;
        int bad = 0;

        if (!eq) {
            snprintf(err, errlen, "spool option \"%s\": expected key=value", item);
            return -1;
        }
        *eq = '\0';
        v = eq + 1;
        if (strcmp(key, "fsync") == 0) {
            if (strcmp(v, "always") == 0)
                opt->fsync = DC_SPOOL_FSYNC_ALWAYS;
            else if (strcmp(v, "never") == 0)
                opt->fsync = DC_SPOOL_FSYNC_NEVER;
            else if (parse_duration(v, &opt->fsync_interval) == 0 && opt->fsync_interval > 0)
                opt->fsync = DC_SPOOL_FSYNC_INTERVAL;
            else
                bad = 1;
        } else if (strcmp(key, "segment-bytes") == 0) {
            bad = parse_size(v, &opt->segment_max_bytes) < 0 || opt->segment_max_bytes < 1;
        } else if (strcmp(key, "segment-age") == 0) {
            bad = parse_duration(v, &opt->segment_max_age) < 0 || opt->segment_max_age <= 0;
        } else if (strcmp(key, "max-bytes") == 0) {
            bad = parse_size(v, &opt->max_bytes) < 0 || opt->max_bytes < 1;
        } else if (strcmp(key, "write") == 0) {
            if (strcmp(v, "ring") == 0)
                opt->write_pwrite = opt->write_direct = 0;
            else if (strcmp(v, "map") == 0)
                opt->write_pwrite = 0, opt->write_direct = 1;
            else if (strcmp(v, "pwrite") == 0)
                opt->write_pwrite = opt->write_direct = 1;
            else
                bad = 1;
        } else if (strcmp(key, "ring-bytes") == 0) {
            bad = parse_size(v, &opt->ring_bytes) < 0 || opt->ring_bytes < 64 * 1024 ||
                  opt->ring_bytes > (apr_off_t)1024 * 1024 * 1024;
        } else if (strcmp(key, "ring-dir") == 0) {
            bad = *v != '/' || strlen(v) >= sizeof(opt->ring_dir);
            if (!bad)
                strcpy(opt->ring_dir, v);
        } else if (strcmp(key, "on-full") == 0) {
            if (strcmp(v, "refuse") == 0)
                opt->on_full = DC_SPOOL_FULL_REFUSE;
            else if (strcmp(v, "drop-oldest") == 0)
                opt->on_full = DC_SPOOL_FULL_DROP_OLDEST;
            else
                bad = 1;
        } else {
            snprintf(err, errlen,
                     "unknown spool option \"%s\" (fsync, segment-bytes, segment-age, "
                     "max-bytes, on-full, write, ring-bytes, ring-dir)",
                     key);
            return -1;
        }
        if (bad) {
            snprintf(err, errlen, "spool option %s: bad value \"%s\"", key, v);
            return -1;
        }
    }
    return 0;
}

/* ---- names ------------------------------------------------------------------- */

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);

    return n >= m && strcmp(name + n - m, suffix) == 0;
}

/* seg-<ms>-<pid>-...: the creation time and pid of a segment, from its name. */
static int segment_name_info(const char *name, int64_t *created_ms, long *pid)
{
    long long ms;
    long p;

    if (strncmp(name, "seg-", 4) != 0 || sscanf(name + 4, "%13lld-%ld-", &ms, &p) != 2)
        return -1;
    if (created_ms)
        *created_ms = ms;
    if (pid)
        *pid = p;
    return 0;
}

/* The record count a .ready name carries ("...-n<N>.ready"). */
static uint64_t ready_name_records(const char *name)
{
    const char *n = strrchr(name, '-');

    return n && n[1] == 'n' ? strtoull(n + 2, NULL, 10) : 0;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* ---- reading ------------------------------------------------------------------ */

static int hex8(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 8; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* A decimal field followed by one space, within [*pos, end). */
static int take_number(const char *data, size_t end, size_t *pos, int64_t *out)
{
    size_t i = *pos;
    int neg = 0;
    int64_t v = 0;

    if (i < end && data[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= end || data[i] < '0' || data[i] > '9')
        return -1;
    while (i < end && data[i] >= '0' && data[i] <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (data[i++] - '0');
    }
    *out = neg ? -v : v;
    *pos = i;
    return 0;
}

static int take_space(const char *data, size_t end, size_t *pos)
{
    if (*pos >= end || data[*pos] != ' ')
        return -1;
    (*pos)++;
    return 0;
}

/* Parses a payload into hits (an array from p, grown as needed). */
static int parse_payload(const char *data, size_t start, size_t end, apr_pool_t *p,
                         dc_spool_hit_t **hits, size_t *cap, size_t *n)
{
    size_t pos = start;
    int64_t count, v;

    if (take_number(data, end, &pos, &count) < 0 || count < 1 || count > 100000)
        return -1;
    if ((size_t)count > *cap) {
        *cap = (size_t)count;
        *hits = apr_palloc(p, *cap * sizeof(**hits));
    }
    for (int64_t i = 0; i < count; i++) {
        dc_spool_hit_t *h = &(*hits)[i];
        const char *sp;
        size_t id_start;

        if (take_space(data, end, &pos) < 0)
            return -1;
        id_start = pos;
        sp = memchr(data + pos, ' ', end - pos);
        pos = sp ? (size_t)(sp - data) : end;
        if (pos == id_start || pos - id_start > ID_MAX)
            return -1;
        h->id = data + id_start;
        h->id_len = pos - id_start;
        if (take_space(data, end, &pos) < 0 || take_number(data, end, &pos, &h->received_ms) < 0 ||
            take_space(data, end, &pos) < 0 || take_number(data, end, &pos, &h->qt_base) < 0 ||
            take_space(data, end, &pos) < 0 || take_number(data, end, &pos, &v) < 0 ||
            take_space(data, end, &pos) < 0 || v < 2 || (uint64_t)v > end - pos)
            return -1;
        h->json = data + pos;
        h->json_len = (size_t)v;
        pos += (size_t)v;
        if (h->json[0] != '{' || h->json[h->json_len - 1] != '}')
            return -1;
    }
    if (pos != end)
        return -1;
    *n = (size_t)count;
    return 0;
}

/* The start of the next record after a bad one, or len. Records follow a
 * newline, or the zeros of a range a killed writer had reserved but not
 * written. */
static size_t resync(const char *data, size_t len, size_t pos)
{
    for (size_t i = pos + 1; i + 4 <= len; i++)
        if ((data[i - 1] == '\n' || data[i - 1] == '\0') && data[i] == 'D' && data[i + 1] == 'C' &&
            (data[i + 2] == '1' || data[i + 2] == '2') && data[i + 3] == ' ')
            return i;
    return len;
}

int dc_spool_parse(const char *data, size_t len, const char *name, apr_pool_t *p,
                   dc_spool_record_fn *fn, void *baton, size_t *skipped)
{
    dc_spool_hit_t *hits = NULL;
    size_t cap = 0, n, pos = 0, bad = 0;
    int rc = 0;

    while (pos < len) {
        uint32_t plen, crc;
        size_t payload, end;

        if (len - pos < HEADER_LEN + 1 ||
            (memcmp(data + pos, "DC2 ", 4) != 0 && memcmp(data + pos, "DC1 ", 4) != 0) ||
            hex8(data + pos + 4, &plen) < 0 || data[pos + 12] != ' ' ||
            hex8(data + pos + 13, &crc) < 0 || data[pos + 21] != ' ' ||
            plen > len - pos - HEADER_LEN - 1) {
            bad++;
            pos = resync(data, len, pos);
            continue;
        }
        payload = pos + HEADER_LEN;
        end = payload + plen;
        /* DC1: zlib's crc32, as records were written before 2026-12 */
        if (data[end] != '\n' ||
            (data[pos + 2] == '2' ? dc_spool_crc32c(data + payload, plen)
                                  : dc_spool_crc32(data + payload, plen)) != crc ||
            parse_payload(data, payload, end, p, &hits, &cap, &n) < 0) {
            bad++;
            pos = resync(data, len, pos);
            continue;
        }
        if (fn && (rc = fn(baton, (apr_off_t)pos, (apr_off_t)end + 1, hits, n)) != 0)
            break;
        pos = end + 1;
    }
    if (bad)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10700) "spool: %s: skipped %zu torn or corrupt record(s) (a crash "
                              "during a write, or a damaged file); the intact ones are kept",
               name ? name : "segment", bad);
    if (skipped)
        *skipped = bad;
    return rc;
}

static int count_record(void *baton, apr_off_t offset, apr_off_t end, const dc_spool_hit_t *hits,
                        size_t n)
{
    (*(uint64_t *)baton)++;
    return 0;
}

/* Renames dir/name (a .open segment) to its .ready name with the record count. */
static int make_ready(const char *dir, const char *name, uint64_t records, apr_pool_t *p)
{
    size_t stem_len = strlen(name) - strlen(".open");
    const char *from = apr_pstrcat(p, dir, "/", name, NULL);
    const char *to = apr_psprintf(p, "%s/%.*s-n%" PRIu64 ".ready", dir, (int)stem_len, name,
                                  records);

    if (records == 0)
        return unlink(from);
    return rename(from, to);
}

static int adopt_ring(const char *dir, const char *link, long pid, apr_pool_t *p);

static int pid_is_gone(long pid, int own_pid_is_dead)
{
    return pid == (long)getpid() ? own_pid_is_dead : kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static int adopt(const char *dir, apr_pool_t *p, int own_pid_is_dead)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int adopted = 0;

    if (!d)
        return 0;
    /* rings first: what a dead ring resolves may cut its process's segment */
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid;

        if (strncmp(e->d_name, "ring-", 5) != 0 || !has_suffix(e->d_name, ".link"))
            continue;
        pid = strtol(e->d_name + 5, &end, 10);
        if (end == e->d_name + 5 || *end != '-' || pid <= 0 || !pid_is_gone(pid, own_pid_is_dead))
            continue;
        adopted += adopt_ring(dir, apr_pstrcat(p, dir, "/", e->d_name, NULL), pid, p);
    }
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        long pid;
        uint64_t records = 0;
        char *data;
        size_t len;
        const char *path;
        apr_pool_t *tmp;

        if (!has_suffix(e->d_name, ".open") || segment_name_info(e->d_name, NULL, &pid) < 0)
            continue;
        if (!pid_is_gone(pid, own_pid_is_dead))
            continue;
        apr_pool_create(&tmp, p);
        path = apr_pstrcat(tmp, dir, "/", e->d_name, NULL);
        if (dc_read_file(tmp, path, (size_t)MAX_SEGMENT_READ, &data, &len) == 0) {
            size_t kept = len;

            /* a mapped segment's file is allocated ahead of its records */
            while (kept > 0 && data[kept - 1] == '\0')
                kept--;
            if (kept < len && truncate(path, (off_t)kept) == 0)
                len = kept;
            dc_spool_parse(data, len, e->d_name, tmp, count_record, &records, NULL);
            if (make_ready(dir, e->d_name, records, tmp) == 0) {
                adopted++;
                dc_log(DC_LOG_INFO,
                       DCLOGNO(10701) "spool: adopted %s (%" PRIu64 " record(s)) of process "
                                      "%ld, which is gone",
                       e->d_name, records, pid);
            }
        }
        apr_pool_destroy(tmp);
    }
    closedir(d);
    return adopted;
}

int dc_spool_adopt_dead(const char *dir, apr_pool_t *p)
{
    return adopt(dir, p, 0);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int dc_spool_list_ready(const char *dir, apr_pool_t *p, const char ***names, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    apr_array_header_t *arr = apr_array_make(p, 16, sizeof(const char *));

    *names = NULL;
    *n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "seg-", 4) == 0 && has_suffix(e->d_name, ".ready"))
            APR_ARRAY_PUSH(arr, const char *) = apr_pstrdup(p, e->d_name);
    closedir(d);
    qsort(arr->elts, (size_t)arr->nelts, sizeof(const char *), compare_names);
    *names = (const char **)arr->elts;
    *n = (size_t)arr->nelts;
    return 0;
}

/* ---- the writer ------------------------------------------------------------------ */

/* Under s->lock: takes the open segment out of the handle; the next append
 * opens another. The caller finishes it (finish_segment) after unlocking. */
static segment_t *detach_segment(dc_spool_t *s)
{
    segment_t *seg = s->seg;

    s->seg = NULL;
    return seg;
}

static void sync_segment_dir(dc_spool_t *s, segment_t *seg)
{
    /* A load on every append, the exchange once: an exchange writes the
     * line, which every appending thread would then pull from the others. */
    if (s->opt.fsync != DC_SPOOL_FSYNC_NEVER &&
        !__atomic_load_n(&seg->dir_synced, __ATOMIC_ACQUIRE) &&
        !__atomic_exchange_n(&seg->dir_synced, 1, __ATOMIC_ACQ_REL))
        sync_dir(s->opt.dir);
}

/* Without s->lock: waits for the segment's last copies (a copy takes
 * microseconds, an fdatasync with fsync=always a few milliseconds), cuts the
 * file to its records, syncs it, and renames it .ready for the shipper. */
static void finish_segment(dc_spool_t *s, segment_t *seg)
{
    char from[PATH_MAX], to[PATH_MAX];

    if (!seg)
        return;
    while (__atomic_load_n(&seg->inflight, __ATOMIC_ACQUIRE))
        apr_sleep(50);
    if (seg->map) {
        munmap(seg->map, (size_t)seg->map_len);
        if (seg->map_backed > seg->bytes && ftruncate(seg->fd, seg->bytes) < 0)
            dc_log(DC_LOG_WARN,
                   DCLOGNO(10709) "spool: cannot cut segment %s/seg-%s.open to its records: "
                                  "%s (the zeros after them are skipped when it is read)",
                   s->opt.dir, seg->stem, strerror(errno));
    }
    if (s->opt.fsync != DC_SPOOL_FSYNC_NEVER)
        (void)fdatasync(seg->fd);
    close(seg->fd);
    snprintf(from, sizeof(from), "%s/seg-%s.open", s->opt.dir, seg->stem);
    snprintf(to, sizeof(to), "%s/seg-%s-n%" PRIu64 ".ready", s->opt.dir, seg->stem,
             seg->records);
    if ((seg->records == 0 ? unlink(from) : rename(from, to)) < 0)
        dc_log(DC_LOG_ERROR,
               DCLOGNO(10702) "spool: cannot close segment %s: %s (it will be adopted "
                              "when this process is gone)",
               from, strerror(errno));
    else if (s->opt.fsync != DC_SPOOL_FSYNC_NEVER)
        sync_dir(s->opt.dir);
    free(seg);
}

/* Under s->lock, which it drops while finishing: closes the open segment
 * (the next record opens another). */
static void close_open_segment(dc_spool_t *s)
{
    segment_t *seg = detach_segment(s);

    apr_thread_mutex_unlock(s->lock);
    finish_segment(s, seg);
    apr_thread_mutex_lock(s->lock);
}

/* Under s->lock, when the caller cannot unlock in between (a fork's child). */
static void drop_segment_of_parent(dc_spool_t *s)
{
    segment_t *seg = detach_segment(s);

    if (!seg)
        return;
    if (seg->map)
        munmap(seg->map, (size_t)seg->map_len);
    close(seg->fd);
    free(seg);
}

static apr_off_t page_size(void)
{
    static apr_off_t page;

    if (!page) {
        apr_off_t p = (apr_off_t)sysconf(_SC_PAGESIZE);

        page = p > 0 ? p : 4096;
    }
    return page;
}

static apr_off_t round_to_page(apr_off_t n)
{
    return (n + page_size() - 1) / page_size() * page_size();
}

/* Under s->lock: allocates the mapped segment's file up to at least `end`, a
 * step (a sixteenth of a segment, 4 KiB to 1 MiB) at a time. 0, or -1
 * when the record must be written with pwrite (no mapping, past the mapping,
 * or the file system refused: a full disk, which pwrite then reports). */
static int map_grow(dc_spool_t *s, segment_t *seg, apr_off_t end)
{
    apr_off_t step, target;
    int rv;

    if (!seg->map || seg->map_failed || end > seg->map_len)
        return -1;
    if (end <= seg->map_backed)
        return 0;
    step = s->opt.segment_max_bytes / 16;
    step = step < 4096 ? 4096 : step > 1024 * 1024 ? 1024 * 1024 : step;
    target = round_to_page(end + step);
    if (target > seg->map_len)
        target = seg->map_len;
    if ((rv = posix_fallocate(seg->fd, seg->map_backed, target - seg->map_backed)) != 0) {
        seg->map_failed = 1;
        dc_log(DC_LOG_WARN, DCLOGNO(10711) "spool: cannot grow segment %s/seg-%s.open: %s",
               s->opt.dir, seg->stem, strerror(rv));
        return -1;
    }
    seg->map_backed = target;
    return 0;
}

/* Under s->lock. Its directory entry is synced by the first appender, after
 * the lock (sync_segment_dir). */
static int open_segment(dc_spool_t *s, apr_time_t now)
{
    char path[PATH_MAX];
    segment_t *seg = calloc(1, sizeof(*seg));

    if (!seg) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10703) "spool: cannot create a segment: out of memory");
        return -1;
    }
    seg->fd = -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(seg->stem, sizeof(seg->stem), "%013" PRId64 "-%ld-%u-%08x",
                 (int64_t)apr_time_as_msec(now), (long)s->pid, s->seq++, s->rand);
        snprintf(path, sizeof(path), "%s/seg-%s.open", s->opt.dir, seg->stem);
        /* Read and write: a shared writable mapping needs both. Not O_APPEND:
         * Linux's pwrite appends regardless of the offset given. */
        seg->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (seg->fd >= 0)
            break;
        if (errno != EEXIST) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10703) "spool: cannot create %s: %s", path,
                   strerror(errno));
            break;
        }
    }
    if (seg->fd < 0) {
        free(seg);
        return -1;
    }
    seg->created = now;
    s->last_sync = now;
    /* Address space for a full segment and the record that crosses its bound;
     * the pages are the file's, allocated as records come (map_grow). */
    seg->map_len = round_to_page(s->opt.segment_max_bytes + MAP_SLACK);
    seg->map = s->opt.write_pwrite || s->ring ? NULL
                                   : mmap(NULL, (size_t)seg->map_len, PROT_READ | PROT_WRITE,
                                          MAP_SHARED, seg->fd, 0);
    if (seg->map == MAP_FAILED) {
        seg->map = NULL;
        dc_log(DC_LOG_DEBUG, DCLOGNO(10710) "spool: cannot map %s: %s; writing records with "
                                            "pwrite instead", path, strerror(errno));
    }
    s->seg = seg;
    return 0;
}

static void new_identity(dc_spool_t *s)
{
    unsigned char r[4] = {0};

    s->seq = 0;
    if (apr_generate_random_bytes(r, sizeof(r)) != APR_SUCCESS)
        r[0] = (unsigned char)apr_time_now();
    s->rand = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
    s->id_stem_len = (size_t)snprintf(s->id_stem, sizeof(s->id_stem), "%013" PRId64 "-%ld-%08x",
                                      (int64_t)apr_time_as_msec(apr_time_now()),
                                      (long)dc_proc_pid(), s->rand);
    __atomic_store_n(&s->next_record, 0, __ATOMIC_RELAXED);
    /* last: a thread that sees its own pid here sees the identity above */
    __atomic_store_n(&s->pid, dc_proc_pid(), __ATOMIC_RELEASE);
}

/* Under s->lock: whether name is this process's current segment, whose file
 * is allocated ahead of its records (seg_bytes is what it holds). */
static int is_own_open_segment(const dc_spool_t *s, const char *name)
{
    size_t stem_len = s->seg ? strlen(s->seg->stem) : 0;

    return s->seg && strncmp(name + 4, s->seg->stem, stem_len) == 0 &&
           strcmp(name + 4 + stem_len, ".open") == 0;
}

/* Under s->lock. Other processes' open segments count with what their
 * files have allocated: at most a growth step more than they hold. */
static apr_off_t directory_bytes(const dc_spool_t *s)
{
    DIR *d = opendir(s->opt.dir);
    struct dirent *e;
    apr_off_t total = 0;
    struct stat st;
    char path[PATH_MAX];

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "seg-", 4) != 0)
            continue;
        if (is_own_open_segment(s, e->d_name)) {
            total += s->seg->bytes;
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", s->opt.dir, e->d_name);
        if (stat(path, &st) == 0)
            total += st.st_size;
    }
    closedir(d);
    return total;
}

static apr_off_t total_bytes(dc_spool_t *s, apr_time_t now)
{
    if (!s->scanned_at || now - s->scanned_at >= SCAN_EVERY || now < s->scanned_at) {
        s->scanned_bytes = directory_bytes(s);
        s->scanned_at = now;
        s->written_since_scan = 0;
    }
    return s->scanned_bytes + s->written_since_scan;
}

/* Under s->lock: the directory's bytes and the ring's. */
static apr_off_t spooled_bytes(dc_spool_t *s, apr_time_t now)
{
    apr_off_t bytes = total_bytes(s, now);

    if (s->ring)
        bytes += (apr_off_t)(__atomic_load_n(&s->ring->head, __ATOMIC_RELAXED) - s->ring->tail);
    return bytes;
}

/* Deletes the oldest ready segment; 0, or -1 when there is none. */
static int drop_oldest(dc_spool_t *s)
{
    apr_pool_t *tmp;
    const char **names;
    size_t n;
    int rc = -1;

    apr_pool_create(&tmp, s->pool);
    if (dc_spool_list_ready(s->opt.dir, tmp, &names, &n) == 0 && n > 0) {
        const char *path = apr_pstrcat(tmp, s->opt.dir, "/", names[0], NULL);
        size_t stem_len = strlen(names[0]) - strlen(".ready");
        const char *dash = strrchr(names[0], '-');
        struct stat st;
        uint64_t records = ready_name_records(names[0]);

        if (dash)
            stem_len = (size_t)(dash - names[0]);
        if (stat(path, &st) == 0 && unlink(path) == 0) {
            unlink(apr_psprintf(tmp, "%s/%.*s.progress", s->opt.dir, (int)stem_len, names[0]));
            s->scanned_bytes -= st.st_size;
            s->dropped += records;
            s->dropped_segments++;
            dc_log(DC_LOG_WARN,
                   DCLOGNO(10704) "spool: %s is at its bound (max-bytes %" APR_OFF_T_FMT
                                  "): deleted the oldest segment %s, %" PRIu64
                                  " record(s) lost (on-full=drop-oldest)",
                   s->opt.dir, s->opt.max_bytes, names[0], records);
            rc = 0;
        }
    }
    apr_pool_destroy(tmp);
    return rc;
}

/* ---- the ring ------------------------------------------------------------------ */

static int have_syncer(const dc_spool_t *s);

static uint64_t ring_pending(const dc_spool_t *s)
{
    return __atomic_load_n(&s->ring->head, __ATOMIC_RELAXED) -
           __atomic_load_n(&s->ring->tail, __ATOMIC_RELAXED);
}

/* The length of the record at p (of at most avail bytes) from its header,
 * whatever its first byte; 0 when it has none. */
static size_t ring_record_len(const char *p, size_t avail)
{
    uint32_t plen;
    size_t len;

    if (avail < HEADER_LEN + 1 || memcmp(p + 1, "C2 ", 3) != 0 || hex8(p + 4, &plen) < 0)
        return 0;
    len = HEADER_LEN + (size_t)plen + 1;
    return len <= avail ? len : 0;
}

/* Under s->lock: how far appenders may take the ring's head before one of
 * them checks the bound on the segment path (scan, drop-oldest, refusal):
 * the room the bound leaves, counted from what the ring holds now. */
static void ring_set_limit(dc_spool_t *s, apr_time_t now)
{
    apr_off_t room = s->opt.max_bytes - spooled_bytes(s, now);

    __atomic_store_n(&s->ring_head_limit,
                     __atomic_load_n(&s->ring->head, __ATOMIC_RELAXED) +
                         (uint64_t)(room > 0 ? room : 0),
                     __ATOMIC_RELAXED);
}

/* Under s->lock, in the process that appends: makes this process's ring
 * (after its identity: the file is named for it) and links it from the
 * spool directory, where adoption finds the rings of dead processes. */
static void ring_create(dc_spool_t *s)
{
    size_t len = RING_HEADER + (size_t)s->opt.ring_bytes;
    const char *why = NULL;
    void *map = MAP_FAILED;
    int fd;

    if (s->opt.write_direct || s->opt.fsync == DC_SPOOL_FSYNC_ALWAYS || !have_syncer(s))
        return;
    snprintf(s->ring_path, sizeof(s->ring_path), "%s/mod_decision-ring-%ld-%08x", s->opt.ring_dir,
             (long)s->pid, s->rand);
    snprintf(s->ring_link, sizeof(s->ring_link), "%s/ring-%ld-%08x.link", s->opt.dir,
             (long)s->pid, s->rand);
    fd = open(s->ring_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        why = "cannot create";
    else if (ftruncate(fd, (off_t)len) < 0)
        why = "cannot size";
    else if ((map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        why = "cannot map";
    else if (symlink(s->ring_path, s->ring_link) < 0)
        why = "cannot link";
    if (why) {
        if (!s->ring_logged)
            dc_log(DC_LOG_WARN,
                   DCLOGNO(10712) "spool: %s the ring %s (%s); requests write their records "
                                  "to the segment instead (write=map)",
                   why, s->ring_path, strerror(errno));
        s->ring_logged = 1;
        if (map != MAP_FAILED)
            munmap(map, len);
        if (fd >= 0) {
            close(fd);
            unlink(s->ring_path);
        }
        return;
    }
    close(fd);
    s->ring = map;
    s->ring_data = (char *)map + RING_HEADER;
    s->ring_map_len = len;
    s->ring->size = (uint64_t)s->opt.ring_bytes;
    memcpy(s->ring->magic, RING_MAGIC, sizeof(RING_MAGIC));
    ring_set_limit(s, apr_time_now()); /* and the syncer at each write-out */
}

/* Under s->lock: forgets the ring (unmapped and removed when `remove`). */
static void ring_drop(dc_spool_t *s, int remove)
{
    if (!s->ring)
        return;
    munmap(s->ring, s->ring_map_len);
    if (remove) {
        unlink(s->ring_path);
        unlink(s->ring_link);
    }
    s->ring = NULL;
    s->ring_data = NULL;
}

/* The request path with a ring: no lock, no system call. 0 when the record
 * is in the ring, 1 when the caller must write it to the segment (too big,
 * the ring full, or near the bound, which the segment path checks). */
static int ring_append(dc_spool_t *s, const char *rec, size_t len, size_t n)
{
    ring_header_t *r = s->ring;
    uint64_t size = r->size, h, t, pos, pad = 0, pending;

    if (len > size / 4)
        return 1;
    h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
    do {
        t = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        pos = h % size;
        pad = pos + len > size ? size - pos : 0;
        if (h + pad + len > __atomic_load_n(&s->ring_head_limit, __ATOMIC_RELAXED))
            return 1;
        if (h + pad + len - t > size) {
            if (!__atomic_exchange_n(&s->ring_wake, 1, __ATOMIC_ACQ_REL))
                apr_thread_cond_signal(s->syncer_wake);
            return 1;
        }
    } while (!__atomic_compare_exchange_n(&r->head, &h, h + pad + len, 1, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    if (pad) {
        __atomic_store_n(s->ring_data + pos, 'P', __ATOMIC_RELEASE);
        pos = 0;
    }
    memcpy(s->ring_data + pos + 1, rec + 1, len - 1);
    __atomic_store_n(s->ring_data + pos, rec[0], __ATOMIC_RELEASE);
    __atomic_add_fetch(&s->accepted, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->accepted_hits, n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->ring_records, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(&s->refusing, __ATOMIC_RELAXED)) {
        apr_thread_mutex_lock(s->lock);
        if (s->refusing)
            dc_log(DC_LOG_INFO, DCLOGNO(10707) "spool: accepting events again in %s",
                   s->opt.dir);
        s->refusing = 0;
        apr_thread_mutex_unlock(s->lock);
    }
    pending = h + pad + len - t;
    if (pending > size / 4 && !__atomic_load_n(&s->ring_wake, __ATOMIC_RELAXED) &&
        !__atomic_exchange_n(&s->ring_wake, 1, __ATOMIC_ACQ_REL))
        apr_thread_cond_signal(s->syncer_wake);
    return 0;
}

/* Under s->lock (dropped to close a full segment): writes len bytes of
 * whole records at the end of the open segment. 0, or -1 (logged). */
static int ring_write_run(dc_spool_t *s, const char *data, size_t len, uint64_t records,
                          uint64_t tail_after)
{
    ring_header_t *r = s->ring;
    apr_time_t now = apr_time_now();
    segment_t *seg;
    size_t done = 0;

    if (s->seg && now - s->seg->created >= s->opt.segment_max_age)
        close_open_segment(s);
    if (!s->seg && open_segment(s, now) < 0)
        return -1;
    seg = s->seg;
    memcpy(r->intent_stem, seg->stem, sizeof(r->intent_stem));
    r->intent_offset = seg->bytes;
    r->intent_tail = tail_after;
    __atomic_store_n(&r->intent_len, len, __ATOMIC_RELEASE);
    while (done < len) {
        ssize_t w = pwrite(seg->fd, data + done, len - done, seg->bytes + (apr_off_t)done);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (!s->ring_failing) /* once a streak: it is tried again every 100 ms */
                dc_log(DC_LOG_ERROR,
                       DCLOGNO(10713) "spool: cannot write %" PRIu64 " record(s) from the ring "
                                      "to %s/seg-%s.open: %s (kept in the ring, tried again)",
                       records, s->opt.dir, seg->stem, w < 0 ? strerror(errno) : "short write");
            s->ring_failing = 1;
            if (ftruncate(seg->fd, seg->bytes) < 0) {
                /* the cut failed too: readers skip the torn tail */
            }
            __atomic_store_n(&r->intent_len, 0, __ATOMIC_RELEASE);
            close_open_segment(s);
            return -1;
        }
        done += (size_t)w;
    }
    if (s->ring_failing)
        dc_log(DC_LOG_INFO, DCLOGNO(10718) "spool: writing the ring to %s again", s->opt.dir);
    s->ring_failing = 0;
    seg->bytes += (apr_off_t)len;
    seg->records += records;
    s->written_since_scan += (apr_off_t)len;
    __atomic_add_fetch(&s->written, records, __ATOMIC_RELEASE);
    return 0;
}

/* Under s->lock (the syncer, or the close): writes the ring's committed
 * records out to segments, oldest first, a run of contiguous records (cut
 * at the segment's size bound) per write. */
static void ring_flush(dc_spool_t *s)
{
    ring_header_t *r = s->ring;
    uint64_t size, t, h;

    if (!r)
        return;
    __atomic_store_n(&s->ring_wake, 0, __ATOMIC_RELEASE);
    size = r->size;
    t = s->ring_flushed_from = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
    h = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    while (t < h) {
        size_t pos = (size_t)(t % size), run = 0;
        apr_off_t room = s->opt.segment_max_bytes - (s->seg ? s->seg->bytes : 0);
        uint64_t records = 0;

        if (__atomic_load_n(s->ring_data + pos, __ATOMIC_ACQUIRE) == 'P') {
            s->ring_data[pos] = '\0';
            t += size - pos;
            __atomic_store_n(&r->tail, t, __ATOMIC_RELEASE);
            continue;
        }
        while (t + run < h && pos + run < size && (run == 0 || (apr_off_t)run < room)) {
            const char *p = s->ring_data + pos + run;
            size_t len;

            if (__atomic_load_n(p, __ATOMIC_ACQUIRE) != 'D')
                break; /* being copied, or a pad after this run */
            if ((len = ring_record_len(p, size - pos - run)) == 0) {
                /* only this process writes here: a bug, not an input */
                dc_log(DC_LOG_ERROR, DCLOGNO(10714) "spool: the ring %s is damaged at %" PRIu64
                                                    "; its remaining records are lost",
                       s->ring_path, t + run);
                for (; t < h; t += size - t % size) /* [t, h), in up to two pieces */
                    memset(s->ring_data + t % size, 0,
                           (size_t)(h - t < size - t % size ? h - t : size - t % size));
                __atomic_store_n(&r->tail, h, __ATOMIC_RELEASE);
                return;
            }
            run += len;
            records++;
        }
        if (!run)
            break;
        if (ring_write_run(s, s->ring_data + pos, run, records, t + run) < 0)
            break;
        memset(s->ring_data + pos, 0, run); /* the pages stay: a fault costs more */
        t += run;
        __atomic_store_n(&r->tail, t, __ATOMIC_RELEASE);
        __atomic_store_n(&r->intent_len, 0, __ATOMIC_RELEASE);
        __atomic_add_fetch(&s->ring_flushed, records, __ATOMIC_RELAXED);
        if (s->seg && s->seg->bytes >= s->opt.segment_max_bytes)
            close_open_segment(s);
    }
}

/* Adoption of a dead process's ring, before its segments: what a write in
 * progress left (the intent) is resolved against its segment, and the
 * records still in the ring become a ready segment of their own. */
static int adopt_ring(const char *dir, const char *link, long pid, apr_pool_t *p)
{
    char target[PATH_MAX], path[PATH_MAX], stem[64];
    ssize_t tl = readlink(link, target, sizeof(target) - 1);
    struct stat st;
    ring_header_t *r;
    void *map = MAP_FAILED;
    int fd = -1;
    uint64_t size, t, h, records = 0;
    char *out = NULL;
    size_t out_len = 0;
    int keep = 0;

    if (tl <= 0) {
        unlink(link);
        return 0;
    }
    target[tl] = '\0';
    /* One adopter a ring (the shipper and a spool's open can run at once):
     * the ring's lock, then the link still there (not saved meanwhile). */
    if ((fd = open(target, O_RDWR | O_CLOEXEC)) >= 0 &&
        (flock(fd, LOCK_EX | LOCK_NB) < 0 || access(link, F_OK) < 0)) {
        close(fd);
        return 0;
    }
    if (fd < 0 || fstat(fd, &st) < 0 ||
        st.st_size < RING_HEADER + 65536 ||
        (map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
            MAP_FAILED) {
        dc_log(DC_LOG_WARN, DCLOGNO(10715) "spool: cannot read the ring %s of process %ld, "
                                           "which is gone: %s",
               target, pid, fd < 0 ? strerror(errno) : "too small or not mappable");
        goto done;
    }
    r = map;
    size = r->size;
    t = r->tail;
    h = r->head;
    if (memcmp(r->magic, RING_MAGIC, sizeof(RING_MAGIC)) != 0 ||
        size + RING_HEADER > (uint64_t)st.st_size || t > h || h - t > size) {
        dc_log(DC_LOG_WARN, DCLOGNO(10715) "spool: the ring %s of process %ld is not one "
                                           "(bad header); removed",
               target, pid);
        goto done;
    }
    if (r->intent_len) {
        struct stat sst;

        memcpy(stem, r->intent_stem, sizeof(stem));
        stem[sizeof(stem) - 1] = '\0';
        snprintf(path, sizeof(path), "%s/seg-%s.open", dir, stem);
        /* as ring_write_run sets them: the range from the tail, at an offset */
        if (strchr(stem, '/') == NULL && stat(path, &sst) == 0 && r->intent_tail > t &&
            r->intent_tail <= h && r->intent_len == r->intent_tail - t && r->intent_offset >= 0) {
            if (sst.st_size >= r->intent_offset + (int64_t)r->intent_len)
                t = r->intent_tail; /* written: not again */
            else if (sst.st_size > r->intent_offset)
                (void)truncate(path, (off_t)r->intent_offset); /* half written: from the ring */
        }
    }
    out = malloc((size_t)(h - t) + 1);
    while (out && t < h) {
        size_t pos = (size_t)(t % size), len;
        const char *q = (const char *)map + RING_HEADER + pos;

        if (*q == 'P') {
            t += size - pos;
            continue;
        }
        len = ring_record_len(q, (size_t)(size - pos));
        if (len == 0 || t + len > h)
            break; /* nothing after it can be found */
        if (*q == 'D') {
            memcpy(out + out_len, q, len);
            out_len += len;
            records++;
        }
        t += len; /* a record whose copy never finished is skipped */
    }
    if (out_len) {
        int sfd;

        snprintf(path, sizeof(path), "%s/seg-%013" PRId64 "-%ld-%u-00000000.open", dir,
                 (int64_t)apr_time_as_msec(apr_time_now()), pid, RING_RECOVERED_SEQ);
        sfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (sfd < 0 || write(sfd, out, out_len) != (ssize_t)out_len || fdatasync(sfd) < 0) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10716) "spool: cannot save the ring of process %ld "
                                                "to %s: %s (the ring is kept)",
                   pid, path, strerror(errno));
            if (sfd >= 0)
                close(sfd);
            unlink(path);
            out_len = 0;
            keep = 1;
            goto done;
        }
        close(sfd);
        make_ready(dir, strrchr(path, '/') + 1, records, p);
        dc_log(DC_LOG_INFO, DCLOGNO(10717) "spool: saved %" PRIu64 " record(s) from the ring "
                                           "of process %ld, which is gone",
               records, pid);
    }
done:
    free(out);
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    if (fd >= 0)
        close(fd);
    if (!keep) {
        unlink(target);
        unlink(link);
    }
    return out_len > 0;
}

/* How often the syncer wakes: the fsync interval, and often enough to close
 * a segment near its age bound. */
static apr_interval_time_t syncer_period(const dc_spool_t *s)
{
    apr_interval_time_t period = s->opt.segment_max_age / 4;

    if (s->opt.fsync == DC_SPOOL_FSYNC_INTERVAL && s->opt.fsync_interval < period)
        period = s->opt.fsync_interval;
    if (period > apr_time_from_sec(1))
        period = apr_time_from_sec(1);
    if (s->ring && period > DC_SPOOL_DEFAULT_FSYNC_INTERVAL)
        period = DC_SPOOL_DEFAULT_FSYNC_INTERVAL; /* the ring is emptied at least that often */
    return period < apr_time_from_msec(1) ? apr_time_from_msec(1) : period;
}

/* Under s->lock; drops and retakes it for the slow parts. */
static void background_work(dc_spool_t *s)
{
    apr_time_t now = apr_time_now();
    uint64_t written;
    segment_t *seg;
    apr_off_t release[2], populate[2];

    if (s->pid != dc_proc_pid())
        return;
    if (s->ring) {
        ring_flush(s);
        ring_set_limit(s, now);
    }
    if (!s->seg)
        return;
    if (now - s->seg->created >= s->opt.segment_max_age) {
        close_open_segment(s);
        return;
    }
    written = __atomic_load_n(&s->written, __ATOMIC_ACQUIRE);
    if (written == s->synced || s->opt.fsync != DC_SPOOL_FSYNC_INTERVAL ||
        now - s->last_sync < s->opt.fsync_interval)
        return;
    s->last_sync = now;
    seg = s->seg;
    /* The sync runs without the lock (requests keep appending), holding the
     * segment open as an appender would. Copies done after `written` was
     * read are left to the next sync.
     *
     * Around it, the mapping is managed so that neither the sync nor the
     * copies take a page fault each: the pages the records have filled
     * leave our page tables before the sync (writeback then has no mapping
     * to write-protect page by page, with a TLB flush on the other CPUs,
     * which was most of a sync's cost; the page cache keeps them), and the
     * pages the next interval will fill, twice what this one wrote, are
     * allocated and mapped writable after it, here rather than by a fault
     * in a request. */
    {
        apr_off_t bytes = seg->bytes, filled = bytes / page_size() * page_size();
        apr_off_t window = 2 * (bytes - seg->bytes_at_sync);

        window = window < 65536 ? 65536 : window > 4 * 1024 * 1024 ? 4 * 1024 * 1024 : window;
        seg->bytes_at_sync = bytes;
        release[0] = release[1] = populate[0] = populate[1] = 0;
        if (seg->map) {
            (void)map_grow(s, seg, bytes + window);
            if (filled > seg->released) {
                release[0] = seg->released;
                release[1] = seg->released = filled;
            }
            populate[0] = filled;
            populate[1] = round_to_page(bytes + window);
            if (populate[1] > seg->map_backed)
                populate[1] = seg->map_backed;
        }
    }
    __atomic_add_fetch(&seg->inflight, 1, __ATOMIC_RELAXED);
    apr_thread_mutex_unlock(s->lock);
    if (release[1] > release[0])
        (void)madvise(seg->map + release[0], (size_t)(release[1] - release[0]), MADV_DONTNEED);
    (void)fdatasync(seg->fd);
#ifdef MADV_POPULATE_WRITE /* Linux 5.14 */
    if (populate[1] > populate[0])
        (void)madvise(seg->map + populate[0], (size_t)(populate[1] - populate[0]),
                      MADV_POPULATE_WRITE);
#endif
    __atomic_sub_fetch(&seg->inflight, 1, __ATOMIC_RELEASE);
    apr_thread_mutex_lock(s->lock);
    if (written > s->synced)
        s->synced = written;
}

static void *APR_THREAD_FUNC syncer_main(apr_thread_t *t, void *data)
{
    dc_spool_t *s = data;

    apr_thread_mutex_lock(s->lock);
    while (!s->syncer_stop) {
        /* a ring a quarter full is written out without waiting (the wake
         * may have come while this thread was in a sync) */
        if (!s->ring || ring_pending(s) <= s->ring->size / 4 ||
            s->ring->tail == s->ring_flushed_from /* the last write-out failed */)
            apr_thread_cond_timedwait(s->syncer_wake, s->lock, syncer_period(s));
        if (!s->syncer_stop)
            background_work(s);
    }
    apr_thread_mutex_unlock(s->lock);
    return NULL; /* not apr_thread_exit: see dc_shipper.c */
}

/* Under s->lock. Without a syncer (it could not start), appends and
 * dc_spool_tick do its work inline. */
static void start_syncer(dc_spool_t *s)
{
    apr_threadattr_t *attr;

    s->syncer = NULL;
    s->syncer_stop = 0;
    if (apr_threadattr_create(&attr, s->pool) != APR_SUCCESS ||
        apr_thread_create(&s->syncer, attr, syncer_main, s, s->pool) != APR_SUCCESS) {
        s->syncer = NULL;
        dc_log(DC_LOG_WARN,
               DCLOGNO(10708) "spool: cannot start the background sync thread; syncing "
                              "on the request path instead");
        return;
    }
    s->syncer_pid = dc_proc_pid();
}

static int have_syncer(const dc_spool_t *s)
{
    return s->syncer && s->syncer_pid == dc_proc_pid();
}

dc_spool_t *dc_spool_open(apr_pool_t *p, const dc_spool_options_t *opt, char *err,
                          size_t errlen)
{
    dc_spool_t *s;
    char probe[PATH_MAX];
    int fd;
    apr_status_t rv;
    apr_allocator_t *allocator;

    if (!opt->dir || !*opt->dir) {
        snprintf(err, errlen, "no spool directory");
        return NULL;
    }
    rv = apr_dir_make_recursive(opt->dir, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE,
                                p);
    if (rv != APR_SUCCESS) {
        char msg[120];

        snprintf(err, errlen, "cannot create the spool directory %s: %s", opt->dir,
                 apr_strerror(rv, msg, sizeof(msg)));
        return NULL;
    }
    /* The test write: fail at start, clearly, rather than on the first request. */
    snprintf(probe, sizeof(probe), "%s/.probe-%ld", opt->dir, (long)getpid());
    fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "x", 1) != 1) {
        snprintf(err, errlen, "the spool directory %s is not writable: %s", opt->dir,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(probe);
        return NULL;
    }
    close(fd);
    unlink(probe);

    s = apr_pcalloc(p, sizeof(*s));
    s->opt = *opt;
    s->opt.dir = apr_pstrdup(p, opt->dir);
    /* A pool of our own (own allocator), used only under s->lock: the
     * caller's pool may be used by other threads meanwhile. */
    if (apr_allocator_create(&allocator) != APR_SUCCESS ||
        apr_pool_create_ex(&s->pool, p, NULL, allocator) != APR_SUCCESS) {
        snprintf(err, errlen, "cannot create the spool's pool");
        return NULL;
    }
    apr_allocator_owner_set(allocator, s->pool);
    if (apr_thread_mutex_create(&s->lock, APR_THREAD_MUTEX_DEFAULT, s->pool) != APR_SUCCESS ||
        apr_thread_cond_create(&s->syncer_wake, s->pool) != APR_SUCCESS) {
        snprintf(err, errlen, "cannot create the spool mutex");
        return NULL;
    }
    new_identity(s);
    /* No segment of ours exists yet, so a .open one with our pid is a previous
     * life's (pid reuse after a crash). */
    adopt(s->opt.dir, s->pool, 1);
    apr_thread_mutex_lock(s->lock);
    start_syncer(s);
    ring_create(s);
    apr_thread_mutex_unlock(s->lock);
    return s;
}

void dc_spool_close(dc_spool_t *s)
{
    apr_thread_t *syncer = NULL;
    apr_status_t rv;

    if (!s)
        return;
    apr_thread_mutex_lock(s->lock);
    if (s->syncer && s->syncer_pid == dc_proc_pid()) {
        syncer = s->syncer;
        s->syncer_stop = 1;
        apr_thread_cond_signal(s->syncer_wake);
    }
    s->syncer = NULL;
    apr_thread_mutex_unlock(s->lock);
    if (syncer)
        apr_thread_join(&rv, syncer);
    apr_thread_mutex_lock(s->lock);
    if (s->ring && s->pid == dc_proc_pid()) {
        ring_flush(s);
        /* what could not be written stays for adoption when this process is gone */
        ring_drop(s, s->ring->tail == s->ring->head);
    }
    apr_thread_mutex_unlock(s->lock);
    dc_spool_rotate(s);
}

void dc_spool_rotate(dc_spool_t *s)
{
    segment_t *old = NULL;

    apr_thread_mutex_lock(s->lock);
    if (s->pid == dc_proc_pid()) {
        ring_flush(s);
        old = detach_segment(s);
    }
    apr_thread_mutex_unlock(s->lock);
    finish_segment(s, old);
}

static void put_u64(char **w, uint64_t v)
{
    *w += dc_fmt_u64(*w, v);
}

static void put_hex8(char *w, uint32_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 4)
        w[i] = "0123456789abcdef"[v & 0xf];
}

static void put_i64(char **w, int64_t v)
{
    *w += dc_fmt_i64(*w, v);
}

static void refuse(dc_spool_t *s, size_t n, const char *why)
{
    s->refused++;
    s->refused_hits += n;
    if (!s->refusing)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10705) "spool: refusing events in %s: %s; decisions are still answered "
                              "and refused events are counted (logged once until events are "
                              "accepted again)",
               s->opt.dir, why);
    s->refusing = 1;
}

/* A forked child starts its own segment, ids and syncer: the parent's are
 * the parent's. One load when nothing forked. */
static void check_fork(dc_spool_t *s)
{
    pid_t self = dc_proc_pid();

    if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) == self)
        return;
    apr_thread_mutex_lock(s->lock);
    if (s->pid != self) {
        drop_segment_of_parent(s);
        ring_drop(s, 0); /* the parent's */
        new_identity(s);
        start_syncer(s);
        ring_create(s);
    }
    apr_thread_mutex_unlock(s->lock);
}

/* The record of hits[0..n) in rec (at least record_capacity bytes); its length. */
static size_t build_record(const dc_spool_t *s, uint64_t record, const dc_hit_t *hits, size_t n,
                           char *rec)
{
    char *w = rec + HEADER_LEN, record_text[20], received_text[21];
    size_t len, record_len = dc_fmt_u64(record_text, record), received_len = 0;
    uint32_t crc;

    put_u64(&w, n);
    for (size_t i = 0; i < n; i++) {
        *w++ = ' ';
        memcpy(w, s->id_stem, s->id_stem_len);
        w += s->id_stem_len;
        *w++ = '.';
        memcpy(w, record_text, record_len);
        w += record_len;
        *w++ = '.';
        put_u64(&w, i);
        *w++ = ' ';
        /* a request's hits share their time: formatted once */
        if (i == 0 || hits[i].received_ms != hits[i - 1].received_ms)
            received_len = dc_fmt_i64(received_text, hits[i].received_ms);
        memcpy(w, received_text, received_len);
        w += received_len;
        *w++ = ' ';
        put_i64(&w, hits[i].qt_base);
        *w++ = ' ';
        put_u64(&w, hits[i].json_len);
        *w++ = ' ';
        memcpy(w, hits[i].json, hits[i].json_len);
        w += hits[i].json_len;
    }
    len = (size_t)(w - rec - HEADER_LEN);
    crc = dc_spool_crc32c(rec + HEADER_LEN, len);
    memcpy(rec, "DC2 ", 4);
    put_hex8(rec + 4, (uint32_t)len);
    rec[12] = ' ';
    put_hex8(rec + 13, crc);
    rec[21] = ' ';
    *w++ = '\n';
    return (size_t)(w - rec);
}

/* Under s->lock: makes room for len bytes in an open segment (taking out an
 * old one into *old for the caller to finish, applying the bound, opening a
 * new one). 0, or -1 when refused. */
static int make_room(dc_spool_t *s, apr_pool_t *p, size_t len, size_t n, apr_time_t now,
                     segment_t **old)
{
    if (s->seg && (now - s->seg->created >= s->opt.segment_max_age ||
                   /* a record of over a MiB: a fresh segment's mapping may take it */
                   (s->seg->map && s->seg->records &&
                    s->seg->bytes + (apr_off_t)len > s->seg->map_len)))
        *old = detach_segment(s);
    if (spooled_bytes(s, now) + (apr_off_t)len > s->opt.max_bytes) {
        /* the ring's records into segments, which the bound can act on */
        ring_flush(s);
        while (s->opt.on_full == DC_SPOOL_FULL_DROP_OLDEST &&
               spooled_bytes(s, now) + (apr_off_t)len > s->opt.max_bytes && drop_oldest(s) == 0)
            ;
        if (spooled_bytes(s, now) + (apr_off_t)len > s->opt.max_bytes) {
            refuse(s, n, apr_psprintf(p, "the spool is at its bound (max-bytes %" APR_OFF_T_FMT
                                         "; the collector is down or too slow?)",
                                      s->opt.max_bytes));
            return -1;
        }
    }
    if (!s->seg && open_segment(s, now) < 0) {
        refuse(s, n, "cannot create a segment");
        return -1;
    }
    return 0;
}

/* dc_spool_append(); *overflowed set when the ring had no room for the record. */
static int append(dc_spool_t *s, apr_pool_t *p, const dc_hit_t *hits, size_t n, int *overflowed)
{
    size_t cap = HEADER_LEN + 24, len, done = 0;
    char *rec;
    apr_time_t now;
    apr_off_t offset;
    segment_t *seg, *old = NULL;
    ssize_t w = 0;
    int mapped, full, write_errno = 0;

    if (n == 0)
        return 0;
    check_fork(s);
    for (size_t i = 0; i < n; i++)
        cap += 1 + ID_MAX + 1 + 21 + 1 + 21 + 1 + 21 + 1 + hits[i].json_len;
    rec = apr_palloc(p, cap);
    len = build_record(s, __atomic_fetch_add(&s->next_record, 1, __ATOMIC_RELAXED), hits, n, rec);
    if (s->ring) {
        if (ring_append(s, rec, len, n) == 0)
            return 0;
        __atomic_add_fetch(&s->ring_overflows, 1, __ATOMIC_RELAXED);
        *overflowed = 1;
    }

    apr_thread_mutex_lock(s->lock);
    now = apr_time_now();
    if (make_room(s, p, len, n, now, &old) < 0) {
        apr_thread_mutex_unlock(s->lock);
        finish_segment(s, old);
        return -1;
    }
    seg = s->seg;
    offset = seg->bytes;
    mapped = map_grow(s, seg, offset + (apr_off_t)len) == 0;
    seg->bytes += (apr_off_t)len;
    seg->records++;
    s->written_since_scan += (apr_off_t)len;
    __atomic_add_fetch(&s->accepted, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->accepted_hits, n, __ATOMIC_RELAXED);
    full = seg->bytes >= s->opt.segment_max_bytes;
    if (full)
        detach_segment(s); /* finished below, once our copy is in */
    if (s->opt.fsync == DC_SPOOL_FSYNC_INTERVAL && !have_syncer(s) &&
        now - s->last_sync >= s->opt.fsync_interval) {
        /* no background thread: the interval's sync is the request path's */
        s->synced = __atomic_load_n(&s->written, __ATOMIC_ACQUIRE);
        (void)fdatasync(seg->fd);
        s->last_sync = now;
    }
    if (s->refusing) {
        dc_log(DC_LOG_INFO, DCLOGNO(10707) "spool: accepting events again in %s", s->opt.dir);
        s->refusing = 0;
    }
    __atomic_add_fetch(&seg->inflight, 1, __ATOMIC_RELAXED);
    apr_thread_mutex_unlock(s->lock);

    /* Outside the lock: the range is ours, and the segment stays open (and
     * mapped) until its inflight says we are done. */
    finish_segment(s, old);
    sync_segment_dir(s, seg);
    if (mapped) {
        memcpy(seg->map + offset, rec, len);
        done = len;
    }
    while (done < len) {
        w = pwrite(seg->fd, rec + done, len - done, offset + (apr_off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            write_errno = w < 0 ? errno : 0;
            break;
        }
        done += (size_t)w;
    }
    if (done == len) {
        /* threads sync side by side; the kernel merges them */
        if (s->opt.fsync == DC_SPOOL_FSYNC_ALWAYS)
            (void)fdatasync(seg->fd);
        __atomic_add_fetch(&s->written, 1, __ATOMIC_RELEASE);
    }
    __atomic_sub_fetch(&seg->inflight, 1, __ATOMIC_RELEASE);
    if (done == len) {
        if (full)
            finish_segment(s, seg);
        return 0;
    }

    /* The range is torn (readers skip it); the next record goes into a fresh
     * segment. */
    apr_thread_mutex_lock(s->lock);
    dc_log(DC_LOG_ERROR, DCLOGNO(10706) "spool: write to %s/seg-%s.open failed: %s", s->opt.dir,
           seg->stem, write_errno ? strerror(write_errno) : "short write");
    __atomic_sub_fetch(&s->accepted, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&s->accepted_hits, n, __ATOMIC_RELAXED);
    refuse(s, n, "a write failed");
    if (!full && s->seg == seg)
        detach_segment(s);
    else
        seg = full ? seg : NULL; /* another thread took it out and finishes it */
    apr_thread_mutex_unlock(s->lock);
    finish_segment(s, seg);
    return -1;
}

int dc_spool_append(dc_spool_t *s, apr_pool_t *p, const dc_hit_t *hits, size_t n)
{
    int overflowed = 0;

    return append(s, p, hits, n, &overflowed);
}

int dc_spool_sink(void *spool, apr_pool_t *p, const dc_hit_t *hits, size_t n)
{
    int overflowed = 0, rc = append(spool, p, hits, n, &overflowed);

    return rc < 0 ? rc : overflowed;
}

void dc_spool_tick(dc_spool_t *s)
{
    apr_thread_mutex_lock(s->lock);
    background_work(s);
    apr_thread_mutex_unlock(s->lock);
}

void dc_spool_stats(dc_spool_t *s, dc_spool_stats_t *st)
{
    DIR *d;
    struct dirent *e;
    struct stat fst;
    char path[PATH_MAX];
    char own[128] = "";
    apr_off_t own_bytes = 0;
    int64_t oldest = 0;
    apr_time_t now = apr_time_now();

    memset(st, 0, sizeof(*st));
    apr_thread_mutex_lock(s->lock);
    st->accepted = __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
    st->accepted_hits = __atomic_load_n(&s->accepted_hits, __ATOMIC_RELAXED);
    st->refused = s->refused;
    st->refused_hits = s->refused_hits;
    st->dropped = s->dropped;
    st->dropped_segments = s->dropped_segments;
    st->refusing = s->refusing;
    st->ring_overflows = __atomic_load_n(&s->ring_overflows, __ATOMIC_RELAXED);
    if (s->ring && s->pid == dc_proc_pid()) {
        /* not yet in a segment */
        st->depth_records = __atomic_load_n(&s->ring_records, __ATOMIC_RELAXED) -
                            __atomic_load_n(&s->ring_flushed, __ATOMIC_RELAXED);
        st->depth_bytes =
            __atomic_load_n(&s->ring->head, __ATOMIC_RELAXED) - s->ring->tail;
    }
    if (s->seg && s->pid == dc_proc_pid()) {
        st->depth_records += s->seg->records;
        snprintf(own, sizeof(own), "seg-%s.open", s->seg->stem);
        own_bytes = s->seg->bytes;
    }
    apr_thread_mutex_unlock(s->lock);

    if ((d = opendir(s->opt.dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        int64_t created;

        if (segment_name_info(e->d_name, &created, NULL) < 0 ||
            (!has_suffix(e->d_name, ".ready") && !has_suffix(e->d_name, ".open")))
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->opt.dir, e->d_name);
        if (stat(path, &fst) != 0)
            continue;
        if (strcmp(e->d_name, own) == 0)
            fst.st_size = own_bytes; /* allocated ahead of its records */
        st->segments++;
        st->depth_bytes += (uint64_t)fst.st_size;
        if (has_suffix(e->d_name, ".ready"))
            st->depth_records += ready_name_records(e->d_name);
        if (fst.st_size > 0 && (!oldest || created < oldest))
            oldest = created;
    }
    closedir(d);
    if (oldest && apr_time_from_msec(oldest) < now)
        st->oldest_age = now - apr_time_from_msec(oldest);
}

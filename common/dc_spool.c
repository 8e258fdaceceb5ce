/*
 * dc_spool: see dc_spool.h for the layout and the guarantees.
 *
 * The file I/O is plain POSIX on purpose: the guarantees rest on exactly one
 * write(2) per record on an O_APPEND descriptor, fdatasync(2), rename(2) and
 * kill(pid, 0), which APR's file layer would only wrap (and buffer, if asked
 * wrongly). APR still provides the pools, the mutex, the clock and random
 * bytes.
 *
 * The request path holds the process's mutex for the bound check, the id
 * stamping (ids number the records of a segment, so they need its order) and
 * the write; the record is sized and allocated before taking the lock.
 */
#include "dc_spool.h"
#include "dc_buf.h"
#include "dc_log.h"

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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_LEN 22           /* "DC1 " + 8 hex + " " + 8 hex + " " */
#define ID_MAX 80
#define SCAN_EVERY apr_time_from_sec(1)
#define MAX_SEGMENT_READ ((apr_off_t)1024 * 1024 * 1024)

struct dc_spool {
    apr_pool_t *pool;
    dc_spool_options_t opt;
    apr_thread_mutex_t *lock;

    pid_t pid;                  /* the process that owns fd (a fork starts afresh) */
    int fd;                     /* current .open segment, -1 when none */
    char stem[64];              /* <created_ms>-<pid>-<seq>-<rand> */
    unsigned seq;
    uint32_t rand;
    apr_off_t seg_bytes;
    uint64_t seg_records;
    apr_time_t seg_created;
    apr_time_t last_sync;
    int dirty;                  /* written since the last fdatasync */

    apr_thread_t *syncer;       /* background fdatasync and age rotation */
    apr_thread_cond_t *syncer_wake;
    pid_t syncer_pid;           /* the process it runs in (none in a fork's child) */
    int syncer_stop;

    apr_off_t scanned_bytes;    /* the directory at scanned_at ... */
    apr_time_t scanned_at;
    apr_off_t written_since_scan; /* ... plus what we wrote since */
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
                     "max-bytes, on-full)",
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
        size_t id_start;

        if (take_space(data, end, &pos) < 0)
            return -1;
        id_start = pos;
        while (pos < end && data[pos] != ' ')
            pos++;
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

/* The start of the next record line after a bad one, or len. */
static size_t resync(const char *data, size_t len, size_t pos)
{
    for (size_t i = pos + 1; i + 4 <= len; i++)
        if (data[i - 1] == '\n' && memcmp(data + i, "DC1 ", 4) == 0)
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

        if (len - pos < HEADER_LEN + 1 || memcmp(data + pos, "DC1 ", 4) != 0 ||
            hex8(data + pos + 4, &plen) < 0 || data[pos + 12] != ' ' ||
            hex8(data + pos + 13, &crc) < 0 || data[pos + 21] != ' ' ||
            plen > len - pos - HEADER_LEN - 1) {
            bad++;
            pos = resync(data, len, pos);
            continue;
        }
        payload = pos + HEADER_LEN;
        end = payload + plen;
        if (data[end] != '\n' || dc_spool_crc32(data + payload, plen) != crc ||
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

static int adopt(const char *dir, apr_pool_t *p, int own_pid_is_dead)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int adopted = 0;
    pid_t self = getpid();

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        long pid;
        uint64_t records = 0;
        char *data;
        size_t len;
        const char *path;
        apr_pool_t *tmp;

        if (!has_suffix(e->d_name, ".open") || segment_name_info(e->d_name, NULL, &pid) < 0)
            continue;
        if (pid == self ? !own_pid_is_dead : !(kill((pid_t)pid, 0) < 0 && errno == ESRCH))
            continue;
        apr_pool_create(&tmp, p);
        path = apr_pstrcat(tmp, dir, "/", e->d_name, NULL);
        if (dc_read_file(tmp, path, (size_t)MAX_SEGMENT_READ, &data, &len) == 0) {
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

static void close_segment(dc_spool_t *s)
{
    char name[128];
    apr_pool_t *tmp;

    if (s->fd < 0)
        return;
    if (s->opt.fsync != DC_SPOOL_FSYNC_NEVER && s->dirty)
        (void)fdatasync(s->fd);
    close(s->fd);
    s->fd = -1;
    s->dirty = 0;
    snprintf(name, sizeof(name), "seg-%s.open", s->stem);
    apr_pool_create(&tmp, s->pool);
    if (make_ready(s->opt.dir, name, s->seg_records, tmp) < 0)
        dc_log(DC_LOG_ERROR,
               DCLOGNO(10702) "spool: cannot close segment %s/%s: %s (it will be adopted "
                              "when this process is gone)",
               s->opt.dir, name, strerror(errno));
    else if (s->opt.fsync != DC_SPOOL_FSYNC_NEVER)
        sync_dir(s->opt.dir);
    apr_pool_destroy(tmp);
}

static int open_segment(dc_spool_t *s, apr_time_t now)
{
    char path[PATH_MAX];

    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(s->stem, sizeof(s->stem), "%013" PRId64 "-%ld-%u-%08x",
                 (int64_t)apr_time_as_msec(now), (long)s->pid, s->seq++, s->rand);
        snprintf(path, sizeof(path), "%s/seg-%s.open", s->opt.dir, s->stem);
        s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (s->fd >= 0)
            break;
        if (errno != EEXIST) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10703) "spool: cannot create %s: %s", path,
                   strerror(errno));
            return -1;
        }
    }
    if (s->fd < 0)
        return -1;
    s->seg_bytes = 0;
    s->seg_records = 0;
    s->seg_created = now;
    s->last_sync = now;
    s->dirty = 0;
    if (s->opt.fsync != DC_SPOOL_FSYNC_NEVER)
        sync_dir(s->opt.dir);
    return 0;
}

static void new_identity(dc_spool_t *s)
{
    unsigned char r[4] = {0};

    s->pid = getpid();
    s->seq = 0;
    if (apr_generate_random_bytes(r, sizeof(r)) != APR_SUCCESS)
        r[0] = (unsigned char)apr_time_now();
    s->rand = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
}

static apr_off_t directory_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    apr_off_t total = 0;
    struct stat st;
    char path[PATH_MAX];

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "seg-", 4) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0)
            total += st.st_size;
    }
    closedir(d);
    return total;
}

static apr_off_t total_bytes(dc_spool_t *s, apr_time_t now)
{
    if (!s->scanned_at || now - s->scanned_at >= SCAN_EVERY || now < s->scanned_at) {
        s->scanned_bytes = directory_bytes(s->opt.dir);
        s->scanned_at = now;
        s->written_since_scan = 0;
    }
    return s->scanned_bytes + s->written_since_scan;
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

/* How often the syncer wakes: the fsync interval, and often enough to close
 * a segment near its age bound. */
static apr_interval_time_t syncer_period(const dc_spool_t *s)
{
    apr_interval_time_t period = s->opt.segment_max_age / 4;

    if (s->opt.fsync == DC_SPOOL_FSYNC_INTERVAL && s->opt.fsync_interval < period)
        period = s->opt.fsync_interval;
    if (period > apr_time_from_sec(1))
        period = apr_time_from_sec(1);
    return period < apr_time_from_msec(1) ? apr_time_from_msec(1) : period;
}

/* Under s->lock; may drop and retake it for the fdatasync. */
static void background_work(dc_spool_t *s)
{
    apr_time_t now = apr_time_now();
    int fd;

    if (s->fd < 0 || s->pid != getpid())
        return;
    if (now - s->seg_created >= s->opt.segment_max_age) {
        close_segment(s);
        return;
    }
    if (!s->dirty || s->opt.fsync != DC_SPOOL_FSYNC_INTERVAL ||
        now - s->last_sync < s->opt.fsync_interval)
        return;
    s->dirty = 0;
    s->last_sync = now;
    /* The sync runs without the lock (requests keep appending); a dup keeps
     * the file open if the segment is closed meanwhile. */
    if ((fd = dup(s->fd)) < 0) {
        (void)fdatasync(s->fd);
        return;
    }
    apr_thread_mutex_unlock(s->lock);
    (void)fdatasync(fd);
    close(fd);
    apr_thread_mutex_lock(s->lock);
}

static void *APR_THREAD_FUNC syncer_main(apr_thread_t *t, void *data)
{
    dc_spool_t *s = data;

    apr_thread_mutex_lock(s->lock);
    while (!s->syncer_stop) {
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
    s->syncer_pid = getpid();
}

static int have_syncer(const dc_spool_t *s)
{
    return s->syncer && s->syncer_pid == getpid();
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
    s->fd = -1;
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
    if (s->syncer && s->syncer_pid == getpid()) {
        syncer = s->syncer;
        s->syncer_stop = 1;
        apr_thread_cond_signal(s->syncer_wake);
    }
    s->syncer = NULL;
    apr_thread_mutex_unlock(s->lock);
    if (syncer)
        apr_thread_join(&rv, syncer);
    dc_spool_rotate(s);
}

void dc_spool_rotate(dc_spool_t *s)
{
    apr_thread_mutex_lock(s->lock);
    if (s->pid == getpid())
        close_segment(s);
    apr_thread_mutex_unlock(s->lock);
}

static void put_u64(char **w, uint64_t v)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *(*w)++ = tmp[--n];
}

static void put_i64(char **w, int64_t v)
{
    if (v < 0) {
        *(*w)++ = '-';
        put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(w, (uint64_t)v);
    }
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

int dc_spool_append(dc_spool_t *s, apr_pool_t *p, const dc_hit_t *hits, size_t n)
{
    size_t cap = HEADER_LEN + 24, stem_len;
    char *rec, *w, hex[20];
    apr_time_t now;
    uint32_t crc;
    ssize_t written;
    size_t len;
    int rc = -1, sync_fd = -1;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        cap += 1 + ID_MAX + 1 + 21 + 1 + 21 + 1 + 21 + 1 + hits[i].json_len;
    rec = apr_palloc(p, cap);

    apr_thread_mutex_lock(s->lock);
    now = apr_time_now();
    if (s->pid != getpid()) {
        /* A fork: the segment is the parent's; start our own. */
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        new_identity(s);
        start_syncer(s);
    }
    if (s->fd >= 0 && now - s->seg_created >= s->opt.segment_max_age)
        close_segment(s);
    if (total_bytes(s, now) + (apr_off_t)cap > s->opt.max_bytes) {
        while (s->opt.on_full == DC_SPOOL_FULL_DROP_OLDEST &&
               total_bytes(s, now) + (apr_off_t)cap > s->opt.max_bytes && drop_oldest(s) == 0)
            ;
        if (total_bytes(s, now) + (apr_off_t)cap > s->opt.max_bytes) {
            refuse(s, n, apr_psprintf(p, "the spool is at its bound (max-bytes %" APR_OFF_T_FMT
                                         "; the collector is down or too slow?)",
                                      s->opt.max_bytes));
            goto out;
        }
    }
    if (s->fd < 0 && open_segment(s, now) < 0) {
        refuse(s, n, "cannot create a segment");
        goto out;
    }

    w = rec + HEADER_LEN;
    put_u64(&w, n);
    stem_len = strlen(s->stem);
    for (size_t i = 0; i < n; i++) {
        *w++ = ' ';
        memcpy(w, s->stem, stem_len);
        w += stem_len;
        *w++ = '.';
        put_u64(&w, s->seg_records);
        *w++ = '.';
        put_u64(&w, i);
        *w++ = ' ';
        put_i64(&w, hits[i].received_ms);
        *w++ = ' ';
        put_i64(&w, hits[i].qt_base);
        *w++ = ' ';
        put_u64(&w, hits[i].json_len);
        *w++ = ' ';
        memcpy(w, hits[i].json, hits[i].json_len);
        w += hits[i].json_len;
    }
    len = (size_t)(w - rec - HEADER_LEN);
    crc = dc_spool_crc32(rec + HEADER_LEN, len);
    snprintf(hex, sizeof(hex), "%08x %08x", (unsigned)len, (unsigned)crc);
    memcpy(rec, "DC1 ", 4);
    memcpy(rec + 4, hex, 17);
    rec[21] = ' ';
    *w++ = '\n';
    len = (size_t)(w - rec);

    do
        written = write(s->fd, rec, len);
    while (written < 0 && errno == EINTR);
    if (written != (ssize_t)len) {
        /* A short write leaves a torn record that readers skip; the next
         * record goes into a fresh segment. */
        dc_log(DC_LOG_ERROR, DCLOGNO(10706) "spool: write to %s/seg-%s.open failed: %s",
               s->opt.dir, s->stem, written < 0 ? strerror(errno) : "short write");
        if (written > 0) {
            s->seg_bytes += written;
            s->written_since_scan += written;
        }
        close_segment(s);
        refuse(s, n, "a write failed");
        goto out;
    }
    s->seg_bytes += (apr_off_t)len;
    s->seg_records++;
    s->written_since_scan += (apr_off_t)len;
    s->accepted++;
    s->accepted_hits += n;
    s->dirty = 1;
    if (s->opt.fsync == DC_SPOOL_FSYNC_ALWAYS) {
        /* Synced after the lock is released, so threads sync side by side
         * (the kernel merges them) instead of one after the other. */
        if ((sync_fd = dup(s->fd)) < 0)
            (void)fdatasync(s->fd);
        s->last_sync = now;
        s->dirty = 0;
    } else if (s->opt.fsync == DC_SPOOL_FSYNC_INTERVAL && !have_syncer(s) &&
               now - s->last_sync >= s->opt.fsync_interval) {
        (void)fdatasync(s->fd);
        s->last_sync = now;
        s->dirty = 0;
    }
    if (s->refusing) {
        dc_log(DC_LOG_INFO, DCLOGNO(10707) "spool: accepting events again in %s", s->opt.dir);
        s->refusing = 0;
    }
    if (s->seg_bytes >= s->opt.segment_max_bytes)
        close_segment(s);
    rc = 0;
out:
    apr_thread_mutex_unlock(s->lock);
    if (sync_fd >= 0) {
        (void)fdatasync(sync_fd);
        close(sync_fd);
    }
    return rc;
}

int dc_spool_sink(void *spool, apr_pool_t *p, const dc_hit_t *hits, size_t n)
{
    return dc_spool_append(spool, p, hits, n);
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
    int64_t oldest = 0;
    apr_time_t now = apr_time_now();

    memset(st, 0, sizeof(*st));
    apr_thread_mutex_lock(s->lock);
    st->accepted = s->accepted;
    st->accepted_hits = s->accepted_hits;
    st->refused = s->refused;
    st->refused_hits = s->refused_hits;
    st->dropped = s->dropped;
    st->dropped_segments = s->dropped_segments;
    st->refusing = s->refusing;
    if (s->fd >= 0 && s->pid == getpid())
        st->depth_records = s->seg_records;
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

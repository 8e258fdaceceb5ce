/*
 * dc_shipper: see dc_shipper.h for the contract.
 *
 * A pass reads one ready segment whole (segments are small, rotated at a few
 * MiB), walks its intact records from the progress point, and sends batches
 * in order. A failed batch stops the pass: later batches wait for it, so the
 * progress file is always one offset ("next record offset, hit index in it")
 * and never a set of holes. Bodies are rebuilt from the segment on every
 * attempt, so "qt" is the queue time of the attempt that got through.
 */
#include "dc_shipper.h"
#include "dc_buf.h"
#include "dc_cloud_http.h"
#include "dc_http.h"
#include "dc_hits.h"
#include "dc_proc.h"
#include "dc_log.h"
#include "dc_objstore.h"

#include <apr_file_info.h>
#include <apr_md5.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_uri.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <curl/curl.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FAILING_AFTER 5
#define IDS_HEADER_MAX (16 * 1024)

typedef enum { SEND_OK, SEND_RETRY, SEND_REJECTED } send_result_e;

struct dc_shipper {
    apr_pool_t *pool;
    dc_shipper_options_t opt;
    const char *dead_dir;
    const char *display;        /* the collector as logs show it: secrets masked */
    const char *file_dir;       /* file sink, else NULL */
    dc_objstore_t *obj;         /* object store sink, else NULL */
    apr_time_t last_object;     /* when the last object was acknowledged */
    int flushing;               /* dc_shipper_flush runs: objects do not wait */
    CURL *curl;
    int curl_initialised;

    int file_fd;
    char file_path[PATH_MAX];
    apr_off_t file_bytes;
    unsigned file_seq;
    int file_unsynced; /* batches written to file_fd since its last sync */
    int file_lost;     /* a descriptor with unsynced batches was dropped */

    unsigned failures;          /* in a row */
    apr_time_t retry_after;     /* from the last 429 */
    unsigned seed;

    apr_thread_mutex_t *lock;   /* stats, stop flag */
    apr_thread_cond_t *wake;
    dc_shipper_stats_t stats;
    apr_thread_t *thread;
    dc_spool_t *own_spool;
    int stopping;
    apr_time_t stop_deadline;
};

const char *dc_shipper_state_name(dc_shipper_state_e state)
{
    return state == DC_SHIPPER_OK ? "ok" : state == DC_SHIPPER_RETRYING ? "retrying" : "failing";
}

void dc_shipper_spool_figures(dc_spool_t *spool, const dc_shipper_stats_t *ship,
                              dc_metrics_extra_t *out)
{
    dc_spool_figures_t *f = &out->spool;
    dc_spool_stats_t st;

    if (!spool)
        return;
    dc_spool_stats(spool, &st); /* depth and age: the whole directory */
    out->has_spool = 1;
    f->pending_records = st.depth_records;
    f->pending_bytes = (uint64_t)st.depth_bytes;
    f->segments = st.segments;
    f->oldest_unsent = st.oldest_age > 0 ? apr_time_now() - st.oldest_age : 0;
    f->degraded = st.refusing;
    if (ship) {
        f->delivered = ship->hits_sent;
        f->retried = ship->retries;
        f->dead_lettered = ship->dead_letter_hits;
        f->degraded |= ship->state == DC_SHIPPER_FAILING;
        apr_cpystrn(f->last_error, ship->last_error, sizeof(f->last_error));
        f->sink = ship->sink;
    }
}

void dc_shipper_options_default(dc_shipper_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
}

static void fill_defaults(dc_shipper_options_t *o)
{
    if (!o->collector || !*o->collector)
        o->collector = DC_SHIPPER_DEFAULT_COLLECTOR;
    if (!o->batch_max_hits)
        o->batch_max_hits = DC_SHIPPER_DEFAULT_BATCH_HITS;
    if (!o->batch_max_bytes)
        o->batch_max_bytes = DC_SHIPPER_DEFAULT_BATCH_BYTES;
    if (o->timeout_ms <= 0)
        o->timeout_ms = DC_SHIPPER_DEFAULT_TIMEOUT_MS;
    if (o->connect_timeout_ms <= 0)
        o->connect_timeout_ms = DC_SHIPPER_DEFAULT_CONNECT_TIMEOUT_MS;
    if (o->backoff_min <= 0)
        o->backoff_min = DC_SHIPPER_DEFAULT_BACKOFF_MIN;
    if (o->backoff_max <= 0)
        o->backoff_max = DC_SHIPPER_DEFAULT_BACKOFF_MAX;
    if (o->backoff_max < o->backoff_min)
        o->backoff_max = o->backoff_min;
    if (o->interval <= 0)
        o->interval = DC_SHIPPER_DEFAULT_INTERVAL;
    if (o->file_rotate_bytes <= 0)
        o->file_rotate_bytes = DC_SHIPPER_DEFAULT_FILE_ROTATE_BYTES;
    if (!o->user_agent)
        o->user_agent = "mod_decision/" PACKAGE_VERSION;
}

int dc_shipper_check_collector(apr_pool_t *p, const char *collector, char *err, size_t errlen)
{
    apr_uri_t uri;

    if (dc_objstore_is_uri(collector))
        return dc_objstore_check(p, collector, err, errlen);
    if (strncmp(collector, "file:", 5) == 0) {
        const char *dir = collector + 5;

        if (strncmp(dir, "//", 2) == 0)
            dir += 2;
        if (*dir == '/')
            return 0;
        snprintf(err, errlen, "a file sink needs an absolute path (file:/dir)");
        return -1;
    }
    if (apr_uri_parse(p, collector, &uri) == APR_SUCCESS && uri.scheme && uri.hostname &&
        (strcasecmp(uri.scheme, "http") == 0 || strcasecmp(uri.scheme, "https") == 0))
        return 0;
    snprintf(err, errlen,
             "expected http://, https://, file:/dir, s3://BUCKET/PREFIX or "
             "azblob://ACCOUNT/CONTAINER/PREFIX");
    return -1;
}

/* ---- state --------------------------------------------------------------------- */

static void set_state(dc_shipper_t *sh, dc_shipper_state_e state, const char *why)
{
    dc_shipper_state_e old;

    apr_thread_mutex_lock(sh->lock);
    old = sh->stats.state;
    sh->stats.state = state;
    if (why)
        snprintf(sh->stats.last_error, sizeof(sh->stats.last_error), "%s", why);
    apr_thread_mutex_unlock(sh->lock);
    if (old == state)
        return;
    if (state == DC_SHIPPER_OK)
        dc_log(DC_LOG_WARN, DCLOGNO(10720) "shipper: delivering to %s again (state ok)",
               sh->display);
    else if (state == DC_SHIPPER_RETRYING)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10721) "shipper: delivery to %s failed (%s); retrying with backoff, "
                              "events stay in the spool (state retrying)",
               sh->display, why ? why : "?");
    else
        dc_log(DC_LOG_ERROR,
               DCLOGNO(10722) "shipper: delivery to %s failed %u times in a row (%s); check "
                              "the collector setting and the network; events stay in the "
                              "spool (state failing)",
               sh->display, sh->failures, why ? why : "?");
}

static void note_success(dc_shipper_t *sh, size_t batches, size_t hits)
{
    apr_thread_mutex_lock(sh->lock);
    sh->stats.batches_sent += batches;
    sh->stats.hits_sent += hits;
    sh->stats.last_success = apr_time_now();
    sh->stats.next_attempt = 0;
    apr_thread_mutex_unlock(sh->lock);
    sh->failures = 0;
    set_state(sh, DC_SHIPPER_OK, NULL);
}

static void note_retry(dc_shipper_t *sh, const char *why)
{
    apr_interval_time_t cap, delay;

    sh->failures++;
    /* Exponential with full jitter: uniform in [cap/2, cap]. */
    cap = sh->opt.backoff_min;
    for (unsigned i = 1; i < sh->failures && cap < sh->opt.backoff_max; i++)
        cap *= 2;
    if (cap > sh->opt.backoff_max)
        cap = sh->opt.backoff_max;
    delay = cap / 2 + (apr_interval_time_t)(rand_r(&sh->seed) % (unsigned)(cap / 2 + 1));
    if (sh->retry_after > delay)
        delay = sh->retry_after < sh->opt.backoff_max ? sh->retry_after : sh->opt.backoff_max;
    sh->retry_after = 0;
    apr_thread_mutex_lock(sh->lock);
    sh->stats.retries++;
    sh->stats.next_attempt = apr_time_now() + delay;
    apr_thread_mutex_unlock(sh->lock);
    dc_log(DC_LOG_DEBUG, DCLOGNO(10723) "shipper: %s; next attempt in %" APR_TIME_T_FMT " ms",
           why, apr_time_as_msec(delay));
    set_state(sh, sh->failures >= FAILING_AFTER ? DC_SHIPPER_FAILING : DC_SHIPPER_RETRYING,
              why);
}

static void observe(dc_shipper_t *sh, dc_sink_op_e op, int ok, apr_time_t since, size_t bytes)
{
    apr_interval_time_t took = apr_time_now() - since;

    apr_thread_mutex_lock(sh->lock);
    dc_sink_observe(&sh->stats.sink, op, ok, took, bytes);
    apr_thread_mutex_unlock(sh->lock);
}

/* ---- sinks ------------------------------------------------------------------------ */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return size * nmemb;
}

static void curl_common(dc_shipper_t *sh)
{
    dc_http_setup(sh->curl, sh->opt.collector, sh->opt.timeout_ms, sh->opt.connect_timeout_ms,
                  sh->opt.ca_file, sh->opt.user_agent);
    curl_easy_setopt(sh->curl, CURLOPT_WRITEFUNCTION, discard_body);
}

static send_result_e http_send(dc_shipper_t *sh, const char *body, size_t len, const char *ids,
                               char *why, size_t whylen)
{
    struct curl_slist *headers = NULL;
    CURLcode cc;
    long status = 0;
    char *ids_header = NULL;

    curl_common(sh);
    /* The decision-api posts without a Content-Type; so do we (libcurl
     * would add a form type), and without waiting for 100-continue. */
    headers = curl_slist_append(headers, "Content-Type:");
    headers = curl_slist_append(headers, "Expect:");
    if (ids && strlen(ids) < IDS_HEADER_MAX) {
        ids_header = malloc(strlen(ids) + 32);
        if (ids_header) {
            sprintf(ids_header, "X-Decision-Hit-Ids: %s", ids);
            headers = curl_slist_append(headers, ids_header);
        }
    }
    curl_easy_setopt(sh->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(sh->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(sh->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(sh->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    cc = curl_easy_perform(sh->curl);
    curl_slist_free_all(headers);
    free(ids_header);
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(cc));
        return SEND_RETRY;
    }
    curl_easy_getinfo(sh->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return SEND_OK;
    snprintf(why, whylen, "HTTP %ld", status);
#if LIBCURL_VERSION_NUM >= 0x074200
    if (status == 429) {
        curl_off_t after = 0;

        if (curl_easy_getinfo(sh->curl, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
            sh->retry_after = apr_time_from_sec(after);
    }
#endif
    if (status == 408 || status == 429 || status >= 500 || status < 400)
        return SEND_RETRY;
    return SEND_REJECTED;
}

/* What was written to the file sink since the last call reaches the disk.
 * Once per segment pass rather than once per batch: a sync costs more than
 * the batches it covers, and progress is recorded only after it. */
static void file_drop(dc_shipper_t *sh)
{
    if (sh->file_fd >= 0)
        close(sh->file_fd);
    sh->file_fd = -1;
    sh->file_lost |= sh->file_unsynced;
    sh->file_unsynced = 0;
}

static int file_sync(dc_shipper_t *sh, char *why, size_t whylen)
{
    if (sh->file_lost) {
        /* batches of this pass may not be on disk: send them again */
        snprintf(why, whylen, "%.96s: a write or sync failed", sh->file_path);
        sh->file_lost = 0;
        return -1;
    }
    if (sh->file_fd < 0 || !sh->file_unsynced || fdatasync(sh->file_fd) == 0) {
        sh->file_unsynced = 0;
        return 0;
    }
    snprintf(why, whylen, "cannot sync %.96s: %s", sh->file_path, strerror(errno));
    file_drop(sh);
    sh->file_lost = 0; /* reported here */
    return -1;
}

static int file_open_next(dc_shipper_t *sh)
{
    if (sh->file_fd >= 0 && sh->file_unsynced && fdatasync(sh->file_fd) < 0) {
        file_drop(sh);
        return -1; /* the caller retries the batch; the unsynced ones are sent again */
    }
    if (sh->file_fd >= 0)
        close(sh->file_fd);
    sh->file_unsynced = 0;
    snprintf(sh->file_path, sizeof(sh->file_path), "%s/events-%013" PRId64 "-%ld-%u.jsonl",
             sh->file_dir, (int64_t)apr_time_as_msec(apr_time_now()), (long)getpid(),
             sh->file_seq++);
    sh->file_fd = open(sh->file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    sh->file_bytes = 0;
    if (sh->file_fd >= 0) {
        struct stat st;

        if (fstat(sh->file_fd, &st) == 0)
            sh->file_bytes = st.st_size;
    }
    return sh->file_fd >= 0 ? 0 : -1;
}

static send_result_e file_send(dc_shipper_t *sh, const char *body, size_t len, char *why,
                               size_t whylen)
{
    ssize_t w;

    if ((sh->file_fd < 0 || sh->file_bytes >= sh->opt.file_rotate_bytes) &&
        file_open_next(sh) < 0) {
        snprintf(why, whylen, "cannot sync or open %.96s: %s", sh->file_path, strerror(errno));
        return SEND_RETRY;
    }
    /* body ends with '\n' (added by the caller for this sink). */
    do
        w = write(sh->file_fd, body, len);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len) {
        snprintf(why, whylen, "cannot write %.96s: %s", sh->file_path,
                 w < 0 ? strerror(errno) : "short write");
        if (w > 0 && ftruncate(sh->file_fd, sh->file_bytes) < 0) {
            /* The partial line stays; readers of JSON lines skip it. */
        }
        file_drop(sh);
        return SEND_RETRY;
    }
    sh->file_bytes += (apr_off_t)len;
    sh->file_unsynced = 1;
    return SEND_OK;
}

static void probe_object_store(dc_shipper_t *sh);

static void probe_sink(dc_shipper_t *sh)
{
    if (sh->obj) {
        probe_object_store(sh);
        return;
    }
    if (sh->file_dir) {
        char probe[PATH_MAX];
        int fd;

        snprintf(probe, sizeof(probe), "%s/.probe-%ld", sh->file_dir, (long)getpid());
        fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "x", 1) != 1) {
            dc_log(DC_LOG_ERROR,
                   DCLOGNO(10724) "shipper: the file sink %s is not writable (%s): events stay "
                                  "in the spool until it is",
                   sh->file_dir, strerror(errno));
            set_state(sh, DC_SHIPPER_FAILING, "file sink not writable");
        }
        if (fd >= 0)
            close(fd);
        unlink(probe);
        return;
    }
    curl_common(sh);
    curl_easy_setopt(sh->curl, CURLOPT_NOBODY, 1L);
    {
        CURLcode cc = curl_easy_perform(sh->curl);

        if (cc != CURLE_OK) {
            dc_log(DC_LOG_ERROR,
                   DCLOGNO(10725) "shipper: the collector %s does not answer (%s): events stay "
                                  "in the spool and delivery is retried",
                   sh->display, curl_easy_strerror(cc));
            set_state(sh, DC_SHIPPER_RETRYING, curl_easy_strerror(cc));
        } else {
            dc_log(DC_LOG_INFO, DCLOGNO(10726) "shipper: the collector %s answers",
                   sh->display);
        }
    }
}

dc_shipper_t *dc_shipper_create(apr_pool_t *p, const dc_shipper_options_t *opt, char *err,
                                size_t errlen)
{
    dc_shipper_t *sh = apr_pcalloc(p, sizeof(*sh));
    char why[256];
    apr_status_t rv;
    apr_allocator_t *allocator;

    /* A pool of our own (own allocator): the shipper's thread allocates
     * while the creator's threads may use p. */
    if (apr_allocator_create(&allocator) != APR_SUCCESS ||
        apr_pool_create_ex(&sh->pool, p, NULL, allocator) != APR_SUCCESS) {
        snprintf(err, errlen, "cannot create the shipper's pool");
        return NULL;
    }
    apr_allocator_owner_set(allocator, sh->pool);
    p = sh->pool;
    sh->opt = *opt;
    fill_defaults(&sh->opt);
    sh->display = dc_cloud_mask_uri(p, sh->opt.collector);
    sh->file_fd = -1;
    sh->seed = (unsigned)getpid() ^ (unsigned)apr_time_now();
    if (!sh->opt.spool_dir || !*sh->opt.spool_dir) {
        snprintf(err, errlen, "no spool directory");
        return NULL;
    }
    if (sh->opt.batch_max_hits > 500) {
        snprintf(err, errlen, "batch size %zu is over 500 hits", sh->opt.batch_max_hits);
        return NULL;
    }
    if (dc_shipper_check_collector(p, sh->opt.collector, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "collector \"%s\": %s", sh->display, why);
        return NULL;
    }
    if (strncmp(sh->opt.collector, "file:", 5) == 0) {
        const char *dir = sh->opt.collector + 5;

        if (strncmp(dir, "//", 2) == 0)
            dir += 2;
        sh->file_dir = apr_pstrdup(p, dir);
        if ((rv = apr_dir_make_recursive(sh->file_dir, APR_FPROT_OS_DEFAULT, p)) != APR_SUCCESS) {
            char msg[120];

            snprintf(err, errlen, "cannot create the file sink directory %s: %s", sh->file_dir,
                     apr_strerror(rv, msg, sizeof(msg)));
            return NULL;
        }
    } else if (dc_objstore_is_uri(sh->opt.collector)) {
        dc_objstore_http_t http;

        http.timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms
                                               : DC_SHIPPER_DEFAULT_OBJECT_TIMEOUT_MS;
        http.connect_timeout_ms = sh->opt.connect_timeout_ms;
        http.ca_file = sh->opt.ca_file;
        http.user_agent = sh->opt.user_agent;
        if (!(sh->obj = dc_objstore_open(p, sh->opt.collector, &http, err, errlen)))
            return NULL;
        sh->display = sh->obj->display;
    } else {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "cannot initialise libcurl");
            return NULL;
        }
        sh->curl_initialised = 1;
        if (!(sh->curl = curl_easy_init())) {
            curl_global_cleanup();
            snprintf(err, errlen, "cannot initialise libcurl");
            return NULL;
        }
    }
    sh->opt.spool_dir = apr_pstrdup(p, sh->opt.spool_dir);
    sh->opt.collector = apr_pstrdup(p, sh->opt.collector);
    apr_cpystrn(sh->stats.sink.backend,
                sh->obj ? sh->obj->ops->scheme : sh->file_dir ? "file" : "http",
                sizeof(sh->stats.sink.backend));
    sh->dead_dir = apr_pstrcat(p, sh->opt.spool_dir, "/dead-letter", NULL);
    if (apr_thread_mutex_create(&sh->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS ||
        apr_thread_cond_create(&sh->wake, p) != APR_SUCCESS) {
        dc_shipper_destroy(sh);
        snprintf(err, errlen, "cannot create the shipper's mutex");
        return NULL;
    }
    probe_sink(sh);
    return sh;
}

void dc_shipper_destroy(dc_shipper_t *sh)
{
    if (!sh)
        return;
    if (sh->thread)
        dc_shipper_stop(sh, 0);
    if (sh->curl)
        curl_easy_cleanup(sh->curl);
    sh->curl = NULL;
    if (sh->obj)
        dc_objstore_close(sh->obj);
    sh->obj = NULL;
    if (sh->curl_initialised)
        curl_global_cleanup();
    sh->curl_initialised = 0;
    if (sh->file_fd >= 0)
        close(sh->file_fd);
    sh->file_fd = -1;
}

/* ---- one segment ------------------------------------------------------------------- */

typedef struct {
    apr_off_t offset, end;      /* the record */
    size_t index;               /* the hit in it */
    dc_spool_hit_t hit;
} flat_hit_t;

typedef struct {
    apr_array_header_t *hits;
    apr_off_t from_offset;
    size_t from_index;
} collect_t;

static int collect_hits(void *baton, apr_off_t offset, apr_off_t end, const dc_spool_hit_t *hits,
                        size_t n)
{
    collect_t *c = baton;

    if (end <= c->from_offset)
        return 0;
    for (size_t i = offset == c->from_offset ? c->from_index : 0; i < n; i++) {
        flat_hit_t *f = apr_array_push(c->hits);

        f->offset = offset;
        f->end = end;
        f->index = i;
        f->hit = hits[i];
    }
    return 0;
}

static void write_progress(const char *path, apr_off_t offset, size_t index, apr_pool_t *p)
{
    const char *tmp = apr_pstrcat(p, path, ".tmp", NULL);
    char line[64];
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), n;

    n = snprintf(line, sizeof(line), "%" APR_OFF_T_FMT " %zu\n", offset, index);
    if (fd < 0 || write(fd, line, (size_t)n) != n || rename(tmp, path) < 0)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10727) "shipper: cannot write %s (%s): a restart would resend "
                              "acknowledged batches",
               path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void read_progress(const char *path, apr_off_t *offset, size_t *index)
{
    FILE *f = fopen(path, "r");
    long long o = 0;
    size_t i = 0;

    *offset = 0;
    *index = 0;
    if (!f)
        return;
    if (fscanf(f, "%lld %zu", &o, &i) == 2 && o >= 0) {
        *offset = (apr_off_t)o;
        *index = i;
    }
    fclose(f);
}

static void dead_letter(dc_shipper_t *sh, const char *body, size_t len, size_t hits,
                        const char *segment, const char *why, apr_pool_t *p)
{
    time_t now = time(NULL);
    struct tm tm;
    char day[16];
    const char *path;
    int fd;
    ssize_t w = -1;

    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);
    apr_dir_make_recursive(sh->dead_dir, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE, p);
    path = apr_pstrcat(p, sh->dead_dir, "/", day, ".jsonl", NULL);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        w = write(fd, body, len);
        (void)fdatasync(fd);
        close(fd);
    }
    apr_thread_mutex_lock(sh->lock);
    sh->stats.dead_letters++;
    sh->stats.dead_letter_hits += hits;
    apr_thread_mutex_unlock(sh->lock);
    dc_log(DC_LOG_ERROR,
           DCLOGNO(10728) "shipper: the collector refused a batch of %zu hit(s) from %s (%s); "
                          "it is kept in %s%s and will not be retried",
           hits, segment, why, path, w == (ssize_t)len ? "" : " (WRITE FAILED: the batch is lost)");
}

/* The batch body for hits[from, to), with "qt" stamped now; ids collected. */
static size_t build_batch(dc_shipper_t *sh, const flat_hit_t *hits, size_t from, size_t to,
                          int64_t now_ms, dc_buf_t *body, dc_buf_t *ids)
{
    size_t n = 0;

    body->len = 0;
    ids->len = 0;
    dc_buf_puts(body, dc_hits_batch_open());
    for (size_t i = from; i < to; i++) {
        const dc_spool_hit_t *h = &hits[i].hit;
        int64_t qt = h->qt_base + (now_ms > h->received_ms ? now_ms - h->received_ms : 0);

        if (n)
            dc_buf_putc(body, ',');
        if (h->json_len > 2) {
            dc_buf_append(body, h->json, h->json_len - 1);
            dc_buf_puts(body, ",\"qt\":");
        } else {
            dc_buf_puts(body, "{\"qt\":");
        }
        dc_buf_put_i64(body, qt);
        dc_buf_putc(body, '}');
        if (ids->len)
            dc_buf_putc(ids, ',');
        dc_buf_append(ids, h->id, h->id_len);
        n++;
    }
    dc_buf_puts(body, dc_hits_batch_close());
    if (sh->file_dir)
        dc_buf_putc(body, '\n');
    dc_buf_cstr(body);
    dc_buf_cstr(ids);
    return n;
}

/* The resume point after hits[0, pos) of a segment were delivered. */
static void save_progress(const char *progress, const flat_hit_t *hits, size_t pos, apr_pool_t *p)
{
    if (hits[pos].offset == hits[pos - 1].offset)
        write_progress(progress, hits[pos].offset, hits[pos].index, p);
    else
        write_progress(progress, hits[pos].offset, 0, p);
}

/* 0 = the segment is done and deleted; DC_SHIP_BACKOFF or DC_SHIP_MORE otherwise. */
/* seg-<stem>-n<N>.ready → DIR/seg-<stem>.progress */
static const char *progress_path(dc_shipper_t *sh, const char *name, apr_pool_t *p)
{
    const char *dash = strrchr(name, '-');

    return apr_psprintf(p, "%s/%.*s.progress", sh->opt.spool_dir,
                        (int)(dash ? (size_t)(dash - name) : strlen(name)), name);
}

/* A ready segment's hits from its progress point. 0; 1 when it is gone
 * (drop-oldest); -1 when it cannot be read (logged, left where it is). */
static int read_segment(dc_shipper_t *sh, const char *name, collect_t *c, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, sh->opt.spool_dir, "/", name, NULL);
    const char *data;
    size_t len;

    c->from_offset = 0;
    c->from_index = 0;
    /* mapped: ready segments are never cut, only deleted (which a mapping outlives) */
    if (dc_map_file(p, path, (size_t)1024 * 1024 * 1024, &data, &len) < 0) {
        if (errno == ENOENT)
            return 1;
        dc_log(DC_LOG_ERROR, DCLOGNO(10729) "shipper: cannot read %s: %s", path,
               strerror(errno));
        return -1;
    }
    /* Sized for hits of 128 bytes (they are longer), not zeroed: apr_array_make
     * and its doubling cleared and copied a segment's worth several times. */
    c->hits = apr_palloc(p, sizeof(*c->hits));
    c->hits->pool = p;
    c->hits->elt_size = sizeof(flat_hit_t);
    c->hits->nelts = 0;
    c->hits->nalloc = (int)(len / 128 + 16);
    c->hits->elts = apr_palloc(p, (size_t)c->hits->nalloc * sizeof(flat_hit_t));
    read_progress(progress_path(sh, name, p), &c->from_offset, &c->from_index);
    dc_spool_parse(data, len, name, p, collect_hits, c, NULL);
    return 0;
}

/* Every hit of a segment is delivered: it and its progress file go. */
static void segment_done(dc_shipper_t *sh, const char *name, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, sh->opt.spool_dir, "/", name, NULL);

    if (unlink(path) < 0 && errno != ENOENT)
        dc_log(DC_LOG_ERROR,
               DCLOGNO(10730) "shipper: cannot delete the delivered segment %s: %s (it would "
                              "be sent again)",
               path, strerror(errno));
    unlink(progress_path(sh, name, p));
    apr_thread_mutex_lock(sh->lock);
    sh->stats.segments_done++;
    apr_thread_mutex_unlock(sh->lock);
}

static int ship_segment(dc_shipper_t *sh, const char *name, apr_time_t deadline, apr_pool_t *p)
{
    const char *progress = progress_path(sh, name, p);
    collect_t c;
    size_t pos = 0;
    flat_hit_t *hits;
    dc_buf_t body, ids;
    size_t unsynced_batches = 0, unsynced_hits = 0, synced;
    int result = 0;

    if (read_segment(sh, name, &c, p) != 0)
        return 0; /* dropped meanwhile (drop-oldest), or unreadable: next one */
    hits = (flat_hit_t *)c.hits->elts;
    dc_buf_init(&body, p, 16 * 1024);
    dc_buf_init(&ids, p, 4 * 1024);

    for (synced = pos; pos < (size_t)c.hits->nelts;) {
        size_t to = pos, bytes = 256, n;
        char why[160] = "";
        send_result_e r;
        apr_time_t sent_at;

        if (apr_time_now() >= deadline) {
            result = DC_SHIP_MORE;
            break;
        }
        while (to < (size_t)c.hits->nelts && to - pos < sh->opt.batch_max_hits &&
               (to == pos || bytes + hits[to].hit.json_len + 24 <= sh->opt.batch_max_bytes)) {
            bytes += hits[to].hit.json_len + 24;
            to++;
        }
        n = build_batch(sh, hits, pos, to, apr_time_as_msec(apr_time_now()), &body, &ids);
        sent_at = apr_time_now();
        r = sh->file_dir ? file_send(sh, body.data, body.len, why, sizeof(why))
                         : http_send(sh, body.data, body.len, ids.data, why, sizeof(why));
        observe(sh, DC_SINK_OP_SEND, r == SEND_OK, sent_at, body.len);
        if (r == SEND_RETRY) {
            note_retry(sh, apr_psprintf(p, "%s: %s", sh->display, why));
            result = DC_SHIP_BACKOFF;
            break;
        }
        if (r == SEND_OK && sh->file_dir) {
            unsynced_batches++;
            unsynced_hits += n;
        } else if (r == SEND_OK) {
            note_success(sh, 1, n);
        } else {
            /* Under a file sink bodies end with '\n' already. */
            if (!sh->file_dir)
                dc_buf_putc(&body, '\n');
            dead_letter(sh, body.data, body.len, n, name, why, p);
            sh->failures = 0;
        }
        pos = to;
        if (!sh->file_dir) {
            synced = pos;
            if (pos < (size_t)c.hits->nelts)
                save_progress(progress, hits, pos, p);
        }
    }
    if (sh->file_dir && pos > synced) {
        char why[160];

        if (file_sync(sh, why, sizeof(why)) < 0) {
            if (result != DC_SHIP_BACKOFF)
                note_retry(sh, apr_psprintf(p, "%s: %s", sh->display, why));
            return DC_SHIP_BACKOFF; /* resent from the last progress: at least once */
        }
        if (unsynced_batches)
            note_success(sh, unsynced_batches, unsynced_hits);
        if (pos < (size_t)c.hits->nelts)
            save_progress(progress, hits, pos, p);
    }
    if (result)
        return result;
    segment_done(sh, name, p);
    return 0;
}

/* ---- object stores ---------------------------------------------------------------- */

/* A failed operation for the log: its class, what came back, and what the
 * class asks the operator to check. */
static const char *obj_why(const dc_objstore_t *os, const dc_obj_error_t *e, const char *verb,
                           apr_pool_t *p)
{
    char creds[200] = "";
    const char *hint;

    if (os->ops->describe)
        os->ops->describe((dc_objstore_t *)os, creds, sizeof(creds));
    switch (e->result) {
    case DC_OBJ_CREDENTIALS:
        /* status 0: nothing was sent, the detail says why there are none */
        hint = e->status ? apr_psprintf(p, "the store does not accept the credentials: %s", creds)
                         : "no usable credentials";
        break;
    case DC_OBJ_NOT_FOUND:
        hint = apr_psprintf(p, "the %s does not exist", os->where);
        break;
    case DC_OBJ_PERMISSION:
        hint = apr_psprintf(p, "the credentials (%s) may not %s objects in the %s", creds, verb,
                            os->where);
        break;
    case DC_OBJ_TRANSIENT:
        hint = "the store did not answer or failed: endpoint, network, outage";
        break;
    default:
        hint = "the store refused the request";
    }
    return apr_psprintf(p, "%s: %s (%s)", dc_obj_result_name(e->result), e->detail, hint);
}

static dc_obj_result_e obj_put(dc_shipper_t *sh, const char *key, const char *data, size_t len,
                               const char *type, dc_obj_error_t *e)
{
    unsigned char md5[APR_MD5_DIGESTSIZE];
    apr_time_t t0 = apr_time_now();
    dc_obj_result_e r;

    apr_md5(md5, data, len);
    r = sh->obj->ops->put(sh->obj, key, data, len, md5, type, e);
    observe(sh, DC_SINK_OP_SEND, r == DC_OBJ_OK, t0, len);
    return r;
}

static dc_obj_result_e obj_delete(dc_shipper_t *sh, const char *key, dc_obj_error_t *e)
{
    apr_time_t t0 = apr_time_now();
    dc_obj_result_e r = sh->obj->ops->del(sh->obj, key, e);

    observe(sh, DC_SINK_OP_DELETE, r == DC_OBJ_OK, t0, 0);
    return r;
}

/* The start-up test: a small object put, then deleted. Uploads need only
 * the put; a failed delete is a warning. */
static void probe_object_store(dc_shipper_t *sh)
{
    apr_pool_t *p;
    const char *key;
    dc_obj_error_t e;

    apr_pool_create(&p, sh->pool);
    key = dc_objstore_probe_key(p, sh->obj);
    if (obj_put(sh, key, "mod_decision probe\n", 19, "text/plain", &e) != DC_OBJ_OK) {
        dc_log(DC_LOG_ERROR,
               DCLOGNO(10733) "shipper: the start-up test write to %s failed: %s; events stay "
                              "in the spool and delivery is retried",
               sh->display, obj_why(sh->obj, &e, "write", p));
        set_state(sh, DC_SHIPPER_RETRYING, obj_why(sh->obj, &e, "write", p));
    } else if (obj_delete(sh, key, &e) != DC_OBJ_OK) {
        dc_log(DC_LOG_WARN,
               DCLOGNO(10734) "shipper: the start-up test object %s was written to %s but not "
                              "deleted: %s; uploads do not need to delete, remove it by hand",
               key, sh->display, obj_why(sh->obj, &e, "delete", p));
    } else {
        dc_log(DC_LOG_INFO,
               DCLOGNO(10735) "shipper: the start-up test write to %s succeeded (put and delete)",
               sh->display);
    }
    apr_pool_destroy(p);
}

/* One ready segment's hits from its progress point, as JSON lines in out:
 * how many, or -1 when it cannot be read (it is then left where it is). */
static long segment_lines(dc_shipper_t *sh, const char *name, dc_buf_t *out, int64_t now_ms,
                          int64_t *first_ms, const char **seq, apr_pool_t *p)
{
    const char *stem = name + 4, *dash = strrchr(name, '-');
    collect_t c;
    const flat_hit_t *hits;
    int rc = read_segment(sh, name, &c, p);

    if (rc != 0)
        return rc < 0 ? -1 : 0;
    hits = (const flat_hit_t *)c.hits->elts;
    if (!*seq) {
        /* seg-<stem>-n<N>.ready: the stem names the object, and where it resumed */
        *seq = apr_psprintf(p, "%.*s", (int)(dash && dash > stem ? (size_t)(dash - stem) : 0),
                            stem);
        if (c.from_offset > 0)
            *seq = apr_psprintf(p, "%s-o%" APR_OFF_T_FMT "-%" APR_SIZE_T_FMT, *seq,
                                c.from_offset, c.from_index);
    }
    for (int i = 0; i < c.hits->nelts; i++) {
        const dc_spool_hit_t *h = &hits[i].hit;
        int64_t qt = h->qt_base + (now_ms > h->received_ms ? now_ms - h->received_ms : 0);

        if (*first_ms == 0)
            *first_ms = h->received_ms;
        if (h->json_len > 2) {
            dc_buf_append(out, h->json, h->json_len - 1);
            dc_buf_putc(out, ',');
        } else {
            dc_buf_putc(out, '{');
        }
        dc_buf_printf(out, "\"qt\":%" PRId64 ",\"ts\":%" PRId64 ",\"hit_id\":\"", qt,
                      h->received_ms);
        for (size_t k = 0; k < h->id_len; k++) { /* ours are [0-9a-f.-]: JSON as they are */
            unsigned char ch = (unsigned char)h->id[k];

            dc_buf_putc(out, ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '_');
        }
        dc_buf_puts(out, "\"}\n");
    }
    return c.hits->nelts;
}

/* Bytes of the ready segments names[from..n), stopping at limit. */
static apr_off_t ready_bytes(dc_shipper_t *sh, const char **names, size_t n, apr_off_t limit,
                             apr_pool_t *p)
{
    apr_off_t total = 0;

    for (size_t i = 0; i < n && total < limit; i++) {
        struct stat st;

        if (stat(apr_pstrcat(p, sh->opt.spool_dir, "/", names[i], NULL), &st) == 0)
            total += st.st_size;
    }
    return total;
}

/* Ships names[0..n) as objects of at most max_bytes of lines: DC_SHIP_DONE
 * when all went, DC_SHIP_IDLE when they wait for object_interval,
 * DC_SHIP_MORE or DC_SHIP_BACKOFF. */
static dc_ship_result_e ship_objects(dc_shipper_t *sh, const char **names, size_t n, apr_time_t deadline,
                        apr_pool_t *p)
{
    dc_objstore_t *os = sh->obj;
    size_t i = 0;

    if (!sh->flushing && apr_time_now() - sh->last_object < os->interval &&
        ready_bytes(sh, names, n, (apr_off_t)os->max_bytes, p) < (apr_off_t)os->max_bytes)
        return DC_SHIP_IDLE;
    while (i < n) {
        apr_pool_t *op;
        dc_buf_t lines;
        size_t first = i, hits = 0, gz_len = 0;
        int64_t first_ms = 0, now_ms = apr_time_as_msec(apr_time_now());
        const char *seq = NULL;
        char key[1024], *unreadable;
        void *gz;
        dc_obj_error_t e;

        if (apr_time_now() >= deadline)
            return DC_SHIP_MORE;
        apr_pool_create(&op, p);
        dc_buf_init(&lines, op, 64 * 1024);
        unreadable = apr_pcalloc(op, n);
        for (; i < n && (i == first || lines.len < os->max_bytes); i++) {
            long got = segment_lines(sh, names[i], &lines, now_ms, &first_ms, &seq, op);

            if (got < 0)
                unreadable[i] = 1;
            else
                hits += (size_t)got;
        }
        if (hits == 0) { /* only torn records or vanished segments */
            for (size_t k = first; k < i; k++)
                if (!unreadable[k])
                    segment_done(sh, names[k], op);
            apr_pool_destroy(op);
            continue;
        }
        if (!dc_objstore_key(key, sizeof(key), os->prefix, apr_time_from_msec(first_ms),
                             os->server, seq && *seq ? seq : "0") ||
            !(gz = dc_objstore_gzip(op, lines.data, lines.len, &gz_len))) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10738) "shipper: cannot build an object for %s (%s)",
                   names[first], key[0] ? "gzip failed" : "key too long");
            note_retry(sh, "cannot build an object");
            apr_pool_destroy(op);
            return DC_SHIP_BACKOFF;
        }
        if (obj_put(sh, key, gz, gz_len, "application/gzip", &e) != DC_OBJ_OK) {
            note_retry(sh, apr_psprintf(op, "%s: put %s: %s", sh->display, key,
                                        obj_why(os, &e, "write", op)));
            apr_pool_destroy(op);
            return DC_SHIP_BACKOFF;
        }
        dc_log(DC_LOG_DEBUG, DCLOGNO(10739) "shipper: %zu hit(s) from %zu segment(s) in %s",
               hits, i - first, key);
        for (size_t k = first; k < i; k++)
            if (!unreadable[k])
                segment_done(sh, names[k], op);
        sh->last_object = apr_time_now();
        apr_thread_mutex_lock(sh->lock);
        sh->stats.objects++;
        apr_thread_mutex_unlock(sh->lock);
        note_success(sh, 1, hits);
        apr_pool_destroy(op);
    }
    return DC_SHIP_DONE;
}

/* Progress files whose segment is gone (deleted by drop-oldest while the
 * shipper was in it) would otherwise stay forever. */
static void remove_orphan_progress(dc_shipper_t *sh, const char **names, size_t n, apr_pool_t *p)
{
    DIR *d = opendir(sh->opt.spool_dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        size_t stem_len;
        int live = 0;

        if (strncmp(e->d_name, "seg-", 4) != 0 || !strstr(e->d_name, ".progress"))
            continue;
        stem_len = (size_t)(strstr(e->d_name, ".progress") - e->d_name);
        for (size_t i = 0; i < n && !live; i++)
            live = strncmp(names[i], e->d_name, stem_len) == 0 && names[i][stem_len] == '-';
        if (!live)
            unlink(apr_pstrcat(p, sh->opt.spool_dir, "/", e->d_name, NULL));
    }
    closedir(d);
}

dc_ship_result_e dc_shipper_run_once(dc_shipper_t *sh, apr_time_t deadline)
{
    apr_pool_t *p, *seg_pool;
    const char **names;
    size_t n;
    dc_ship_result_e result = DC_SHIP_IDLE;
    apr_time_t next;

    apr_thread_mutex_lock(sh->lock);
    next = sh->stats.next_attempt;
    apr_thread_mutex_unlock(sh->lock);
    if (next && apr_time_now() < next)
        return DC_SHIP_BACKOFF;
    apr_pool_create(&p, sh->pool);
    dc_spool_adopt_dead(sh->opt.spool_dir, p);
    if (dc_spool_list_ready(sh->opt.spool_dir, p, &names, &n) == 0) {
        remove_orphan_progress(sh, names, n, p);
        if (sh->obj && n) {
            result = ship_objects(sh, names, n, deadline, p);
            n = 0;
        }
        for (size_t i = 0; i < n; i++) {
            int r;

            apr_pool_create(&seg_pool, p);
            r = ship_segment(sh, names[i], deadline, seg_pool);
            apr_pool_destroy(seg_pool);
            if (r != 0) {
                result = (dc_ship_result_e)r;
                break;
            }
            result = DC_SHIP_DONE;
        }
    }
    apr_pool_destroy(p);
    return result;
}

static void sleep_until(dc_shipper_t *sh, apr_time_t when)
{
    apr_time_t now = apr_time_now();

    if (when > now)
        apr_sleep(when - now);
}

int dc_shipper_flush(dc_shipper_t *sh, apr_time_t deadline)
{
    int rc = -1;

    sh->flushing = 1;
    for (;;) {
        dc_ship_result_e r = dc_shipper_run_once(sh, deadline);
        apr_time_t next;

        if (r == DC_SHIP_IDLE || r == DC_SHIP_DONE) {
            /* Done only when a fresh look finds nothing (segments may have
             * been closed while we shipped). */
            if (r == DC_SHIP_IDLE) {
                rc = 0;
                break;
            }
            continue;
        }
        if (apr_time_now() >= deadline)
            break;
        if (r == DC_SHIP_BACKOFF) {
            apr_thread_mutex_lock(sh->lock);
            next = sh->stats.next_attempt;
            apr_thread_mutex_unlock(sh->lock);
            if (next >= deadline)
                break;
            sleep_until(sh, next);
        }
    }
    sh->flushing = 0;
    return rc;
}

/* ---- the thread ------------------------------------------------------------------------ */

static void *APR_THREAD_FUNC shipper_thread(apr_thread_t *t, void *data)
{
    dc_shipper_t *sh = data;

    dc_proc_background_thread(); /* requests first; the spool holds the events meanwhile */

    apr_thread_mutex_lock(sh->lock);
    while (!sh->stopping) {
        dc_ship_result_e r;
        apr_time_t wait = sh->opt.interval, now;

        apr_thread_mutex_unlock(sh->lock);
        if (sh->own_spool)
            dc_spool_tick(sh->own_spool);
        r = dc_shipper_run_once(sh, apr_time_now() + sh->opt.interval);
        apr_thread_mutex_lock(sh->lock);
        now = apr_time_now();
        if (r == DC_SHIP_MORE)
            wait = 0;
        else if (r == DC_SHIP_BACKOFF && sh->stats.next_attempt > now &&
                 sh->stats.next_attempt - now < wait)
            wait = sh->stats.next_attempt - now;
        if (wait > 0 && !sh->stopping)
            apr_thread_cond_timedwait(sh->wake, sh->lock, wait);
    }
    apr_thread_mutex_unlock(sh->lock);
    if (sh->own_spool)
        dc_spool_rotate(sh->own_spool);
    if (dc_shipper_flush(sh, sh->stop_deadline) < 0)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10731) "shipper: stopping with events not yet delivered; they stay in "
                              "%s and go out at the next start",
               sh->opt.spool_dir);
    /* A plain return, not apr_thread_exit (pthread_exit): its unwinding
     * trips AddressSanitizer in threads of forked processes; the thread's
     * pool goes with its parent. */
    return NULL;
}

int dc_shipper_start(dc_shipper_t *sh, dc_spool_t *own_spool)
{
    apr_threadattr_t *attr;

    if (sh->thread)
        return 0;
    sh->own_spool = own_spool;
    sh->stopping = 0;
    if (apr_threadattr_create(&attr, sh->pool) != APR_SUCCESS ||
        apr_thread_create(&sh->thread, attr, shipper_thread, sh, sh->pool) != APR_SUCCESS) {
        sh->thread = NULL;
        dc_log(DC_LOG_ERROR, DCLOGNO(10732) "shipper: cannot start its thread");
        return -1;
    }
    return 0;
}

void dc_shipper_stop(dc_shipper_t *sh, apr_interval_time_t flush_within)
{
    apr_status_t rv;

    if (!sh->thread)
        return;
    apr_thread_mutex_lock(sh->lock);
    sh->stopping = 1;
    sh->stop_deadline = apr_time_now() + flush_within;
    apr_thread_cond_signal(sh->wake);
    apr_thread_mutex_unlock(sh->lock);
    apr_thread_join(&rv, sh->thread);
    sh->thread = NULL;
}

void dc_shipper_stats(dc_shipper_t *sh, dc_shipper_stats_t *st)
{
    apr_thread_mutex_lock(sh->lock);
    *st = sh->stats;
    apr_thread_mutex_unlock(sh->lock);
}

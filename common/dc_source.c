/*
 * dc_source: the bucketing file's origin and its refresh (see dc_source.h).
 *
 * The fetch is one libcurl easy handle, created on the first refresh (so an
 * httpd parent that creates the source before forking never owns a handle a
 * child would inherit) and reused so connections stay alive between polls.
 * The body is collected into a buffer bounded by max_size; the transfer is
 * aborted as soon as it would exceed it. Only http and https are allowed,
 * redirects are followed (at most 3, same protocols) and TLS peers are always
 * verified: a config decides what every visitor sees, so it must come from
 * where the operator said.
 *
 * Validators (ETag, Last-Modified) are remembered only for a body that
 * parsed, so a bad file is fetched again in full on the next poll rather
 * than acknowledged by a 304.
 */
#include "dc_source.h"
#include "dc_http.h"
#include "dc_log.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_VALIDATOR 256

struct dc_source {
    apr_pool_t *pool;
    dc_source_options_t opt;
    CURL *curl;
    int curl_initialised;
    char etag[MAX_VALIDATOR];
    char last_modified[MAX_VALIDATOR];
    /* the local file as last read, to notice when it changes */
    apr_time_t file_mtime;
    apr_off_t file_size;
    int file_seen;
    apr_thread_mutex_t *lock; /* guards status against concurrent readers */
    dc_source_status_t status;
};

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
    int too_large;
} body_t;

typedef struct {
    char etag[MAX_VALIDATOR];
    char last_modified[MAX_VALIDATOR];
} validators_t;

static const char *const ORIGIN_URL = "url";
static const char *const ORIGIN_FILE = "file";
static const char *const ORIGIN_LKG = "last-known-good";
static const char *const ORIGIN_NONE = "none";

dc_source_t *dc_source_create(apr_pool_t *p, const dc_source_options_t *o, char *err,
                              size_t err_len)
{
    dc_source_t *s;

    if ((!o->url || !*o->url) && (!o->file || !*o->file)) {
        snprintf(err, err_len, "no bucketing source: set a URL or a file");
        return NULL;
    }
    if (o->url && *o->url && strncmp(o->url, "http://", 7) != 0 &&
        strncmp(o->url, "https://", 8) != 0) {
        snprintf(err, err_len, "bucketing URL must start with http:// or https://");
        return NULL;
    }
    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->opt.url = o->url && *o->url ? apr_pstrdup(p, o->url) : NULL;
    s->opt.file = o->file && *o->file ? apr_pstrdup(p, o->file) : NULL;
    s->opt.last_known_good =
        o->last_known_good && *o->last_known_good ? apr_pstrdup(p, o->last_known_good) : NULL;
    s->opt.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DC_SOURCE_DEFAULT_TIMEOUT_MS;
    s->opt.connect_timeout_ms =
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DC_SOURCE_DEFAULT_CONNECT_TIMEOUT_MS;
    s->opt.max_size = o->max_size > 0 ? o->max_size : DC_SOURCE_DEFAULT_MAX_SIZE;
    s->opt.ca_file = o->ca_file ? apr_pstrdup(p, o->ca_file) : NULL;
    s->opt.user_agent = apr_pstrdup(p, o->user_agent ? o->user_agent : PACKAGE_NAME "/" VERSION);
    s->opt.parse = o->parse;
    s->opt.parse_baton = o->parse_baton;
    s->status.origin = ORIGIN_NONE;
    if (apr_thread_mutex_create(&s->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        snprintf(err, err_len, "cannot create the source's mutex");
        return NULL;
    }
    return s;
}

void dc_source_destroy(dc_source_t *s)
{
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    s->curl = NULL;
    if (s->curl_initialised)
        curl_global_cleanup();
    s->curl_initialised = 0;
}

/* ---- status --------------------------------------------------------------- */

static void note_success(dc_source_t *s, dc_source_result_e r, const dc_config_t *cfg,
                         const char *origin)
{
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(s->lock);
    if (s->status.failures_in_a_row)
        dc_log(DC_LOG_WARN, DCLOGNO(10601) "bucketing source %s: recovered after %u failed "
               "attempts", s->opt.url ? s->opt.url : s->opt.file, s->status.failures_in_a_row);
    s->status.failures_in_a_row = 0;
    s->status.last_error[0] = '\0';
    s->status.last_attempt = now;
    s->status.last_success = now;
    if (r == DC_SOURCE_CHANGED) {
        s->status.changes++;
        s->status.last_change = now;
        s->status.origin = origin;
        apr_cpystrn(s->status.digest, cfg->digest, sizeof(s->status.digest));
    } else {
        s->status.not_modified++;
    }
    apr_thread_mutex_unlock(s->lock);
}

/* Logged once per failure streak at warn, then at debug until it recovers. */
static void note_failure(dc_source_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_failure(dc_source_t *s, const char *fmt, ...)
{
    char msg[sizeof(s->status.last_error)];
    va_list ap;
    unsigned streak;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    apr_thread_mutex_lock(s->lock);
    streak = ++s->status.failures_in_a_row;
    s->status.errors++;
    s->status.last_attempt = apr_time_now();
    apr_cpystrn(s->status.last_error, msg, sizeof(s->status.last_error));
    apr_thread_mutex_unlock(s->lock);
    dc_log(streak == 1 ? DC_LOG_WARN : DC_LOG_DEBUG,
           DCLOGNO(10602) "bucketing source: %s; keeping the current config%s", msg,
           streak == 1 ? " (further failures are logged at debug until it recovers)" : "");
}

void dc_source_set_served(dc_source_t *s, const char *digest)
{
    apr_thread_mutex_lock(s->lock);
    if (strcmp(s->status.digest, digest) != 0) {
        /* another process accepted it: what this one last saw tells nothing */
        apr_cpystrn(s->status.digest, digest, sizeof(s->status.digest));
        s->etag[0] = s->last_modified[0] = '\0';
        s->file_seen = 0;
    }
    apr_thread_mutex_unlock(s->lock);
}

void dc_source_status(dc_source_t *s, dc_source_status_t *st)
{
    apr_thread_mutex_lock(s->lock);
    *st = s->status;
    apr_thread_mutex_unlock(s->lock);
}

/* ---- files ---------------------------------------------------------------- */

static int load_path(dc_source_t *s, const char *path, dc_config_t **cfg, char *err,
                     size_t err_len)
{
    dc_config_error_t cerr;

    if (dc_config_load_file_with(path, s->opt.parse, s->opt.parse_baton, cfg, &cerr) == 0)
        return 0;
    if (snprintf(err, err_len, "%s%s%s", cerr.path, cerr.path[0] ? ": " : "", cerr.text) >=
        (int)err_len)
        dc_log(DC_LOG_DEBUG, DCLOGNO(10605) "bucketing file error message truncated");
    return -1;
}

static int stat_file(const char *path, apr_time_t *mtime, apr_off_t *size)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return -1;
    *mtime = apr_time_from_sec(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec / 1000;
    *size = st.st_size;
    return 0;
}

/* Writes data to path through a temporary file in the same directory and a
 * rename, so a reader (another httpd child) sees the old file or the new one. */
static int write_atomically(apr_pool_t *p, const char *path, const char *data, size_t len,
                            char *err, size_t err_len)
{
    char *tmp = apr_psprintf(p, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok;

    if (!f) {
        snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    ok = fwrite(data, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int dc_source_load_initial(dc_source_t *s, dc_config_t **cfg, char *err, size_t err_len)
{
    char lkg_err[200] = "";

    *cfg = NULL;
    if (s->opt.last_known_good && access(s->opt.last_known_good, F_OK) == 0) {
        if (load_path(s, s->opt.last_known_good, cfg, lkg_err, sizeof(lkg_err)) == 0) {
            note_success(s, DC_SOURCE_CHANGED, *cfg, ORIGIN_LKG);
            return 0;
        }
        dc_log(DC_LOG_WARN, DCLOGNO(10603) "last-known-good file %s is not usable (%s); "
               "ignoring it", s->opt.last_known_good, lkg_err);
    }
    if (s->opt.file) {
        if (load_path(s, s->opt.file, cfg, err, err_len) < 0)
            return -1;
        if (stat_file(s->opt.file, &s->file_mtime, &s->file_size) == 0)
            s->file_seen = 1;
        note_success(s, DC_SOURCE_CHANGED, *cfg, ORIGIN_FILE);
        return 0;
    }
    snprintf(err, err_len, "no configuration yet: %s", lkg_err[0] ? lkg_err
             : s->opt.last_known_good ? "the last-known-good file does not exist yet"
                                      : "no local file and no last-known-good file");
    return -1;
}

static dc_source_result_e refresh_file(dc_source_t *s, dc_config_t **cfg)
{
    apr_time_t mtime;
    apr_off_t size;
    char err[256];

    if (stat_file(s->opt.file, &mtime, &size) < 0) {
        note_failure(s, "cannot stat %s: %s", s->opt.file, strerror(errno));
        return DC_SOURCE_FAILED;
    }
    if (s->file_seen && mtime == s->file_mtime && size == s->file_size) {
        note_success(s, DC_SOURCE_UNCHANGED, NULL, ORIGIN_FILE);
        return DC_SOURCE_UNCHANGED;
    }
    if (load_path(s, s->opt.file, cfg, err, sizeof(err)) < 0) {
        note_failure(s, "%s: %s", s->opt.file, err);
        return DC_SOURCE_FAILED;
    }
    s->file_mtime = mtime;
    s->file_size = size;
    s->file_seen = 1;
    if (strcmp((*cfg)->digest, s->status.digest) == 0) {
        /* touched, or the same bytes as the last-known-good file served at start */
        dc_config_unref(*cfg);
        *cfg = NULL;
        note_success(s, DC_SOURCE_UNCHANGED, NULL, ORIGIN_FILE);
        return DC_SOURCE_UNCHANGED;
    }
    return DC_SOURCE_CHANGED;
}

/* ---- the remote file ------------------------------------------------------- */

static int parse_bytes(dc_source_t *s, const char *data, size_t len, dc_config_t **cfg,
                       dc_config_error_t *err)
{
    return s->opt.parse ? s->opt.parse(s->opt.parse_baton, data, len, cfg, err)
                        : dc_config_parse(data, len, cfg, err);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    body_t *b = userdata;
    size_t n = size * nmemb;

    if (n > b->limit - b->len) {
        b->too_large = 1;
        return 0; /* aborts the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        char *data;

        while (cap < b->len + n + 1)
            cap *= 2;
        data = realloc(b->data, cap);
        if (!data)
            return 0;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Keeps the value of an ETag or Last-Modified header line, trimmed. */
static void header_value(const char *line, size_t len, size_t name_len, char *out, size_t cap)
{
    const char *v = line + name_len, *end = line + len;

    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if ((size_t)(end - v) >= cap)
        return; /* an absurd validator is not worth keeping */
    memcpy(out, v, (size_t)(end - v));
    out[end - v] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    validators_t *v = userdata;
    size_t n = size * nmemb;

    if (n > 5 && strncasecmp(ptr, "ETag:", 5) == 0)
        header_value(ptr, n, 5, v->etag, sizeof(v->etag));
    else if (n > 14 && strncasecmp(ptr, "Last-Modified:", 14) == 0)
        header_value(ptr, n, 14, v->last_modified, sizeof(v->last_modified));
    return n;
}

static int ensure_curl(dc_source_t *s)
{
    if (s->curl)
        return 0;
    if (!s->curl_initialised) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -1;
        s->curl_initialised = 1;
    }
    s->curl = curl_easy_init();
    return s->curl ? 0 : -1;
}

static dc_source_result_e refresh_url(dc_source_t *s, dc_config_t **cfg)
{
    char errbuf[CURL_ERROR_SIZE] = "", err[256];
    struct curl_slist *headers = NULL;
    validators_t got;
    body_t body;
    dc_config_error_t cerr;
    apr_pool_t *tmp;
    long status = 0;
    CURLcode rc;
    dc_source_result_e result = DC_SOURCE_FAILED;

    if (ensure_curl(s) < 0) {
        note_failure(s, "cannot initialise libcurl");
        return DC_SOURCE_FAILED;
    }
    memset(&got, 0, sizeof(got));
    memset(&body, 0, sizeof(body));
    body.limit = s->opt.max_size;
    apr_pool_create(&tmp, s->pool);
    if (s->etag[0])
        headers = curl_slist_append(headers, apr_pstrcat(tmp, "If-None-Match: ", s->etag, NULL));
    if (s->last_modified[0])
        headers = curl_slist_append(
            headers, apr_pstrcat(tmp, "If-Modified-Since: ", s->last_modified, NULL));

    dc_http_setup(s->curl, s->opt.url, s->opt.timeout_ms, s->opt.connect_timeout_ms,
                  s->opt.ca_file, s->opt.user_agent);
    curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(s->curl, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(s->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, &got);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, errbuf);

    apr_thread_mutex_lock(s->lock);
    s->status.fetches++;
    apr_thread_mutex_unlock(s->lock);
    rc = curl_easy_perform(s->curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);

    if (body.too_large) {
        note_failure(s, "%s: body larger than %lu bytes", s->opt.url,
                     (unsigned long)s->opt.max_size);
    } else if (rc != CURLE_OK) {
        note_failure(s, "%s: %s", s->opt.url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (status == 304) {
        note_success(s, DC_SOURCE_UNCHANGED, NULL, ORIGIN_URL);
        result = DC_SOURCE_UNCHANGED;
    } else if (status != 200) {
        note_failure(s, "%s: HTTP status %ld", s->opt.url, status);
    } else if (parse_bytes(s, body.data ? body.data : "", body.len, cfg, &cerr) < 0) {
        note_failure(s, "%s: invalid bucketing file: %s%s%s", s->opt.url, cerr.path,
                     cerr.path[0] ? ": " : "", cerr.text);
    } else if (strcmp((*cfg)->digest, s->status.digest) == 0) {
        /* the same bytes as what is served (a server without validators) */
        dc_config_unref(*cfg);
        *cfg = NULL;
        memcpy(s->etag, got.etag, sizeof(s->etag));
        memcpy(s->last_modified, got.last_modified, sizeof(s->last_modified));
        note_success(s, DC_SOURCE_UNCHANGED, NULL, ORIGIN_URL);
        result = DC_SOURCE_UNCHANGED;
    } else if (s->opt.last_known_good &&
               write_atomically(tmp, s->opt.last_known_good, body.data, body.len, err,
                                sizeof(err)) < 0) {
        /* the module's children read the new config from this file: without it, keep the old */
        dc_config_unref(*cfg);
        *cfg = NULL;
        note_failure(s, "%s", err);
    } else {
        memcpy(s->etag, got.etag, sizeof(s->etag));
        memcpy(s->last_modified, got.last_modified, sizeof(s->last_modified));
        result = DC_SOURCE_CHANGED;
    }
    curl_slist_free_all(headers);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, NULL);
    free(body.data);
    apr_pool_destroy(tmp);
    return result;
}

dc_source_result_e dc_source_refresh(dc_source_t *s, dc_config_t **cfg)
{
    dc_source_result_e r;

    *cfg = NULL;
    r = s->opt.url ? refresh_url(s, cfg) : refresh_file(s, cfg);
    if (r == DC_SOURCE_CHANGED) {
        note_success(s, r, *cfg, s->opt.url ? ORIGIN_URL : ORIGIN_FILE);
        dc_log(DC_LOG_INFO, DCLOGNO(10604) "bucketing file %s: new configuration %s "
               "(%zu campaigns%s)", s->opt.url ? s->opt.url : s->opt.file, (*cfg)->digest,
               (*cfg)->n_campaigns, (*cfg)->panic ? ", panic mode" : "");
    }
    return r;
}

/*
 * The cloud client layer (dc_cloud_http.h).
 *
 * Handles. Each client owns a pthread key; a thread's first request makes a
 * CURL handle and stores it under the key, so later requests of that thread
 * find it without a lock and reuse its connection cache (keep-alive, TLS
 * session). Every handle is also on the client's list (under a mutex taken
 * only when a handle is made or freed) so the client can free them all; a
 * thread that exits frees its own through the key's destructor. A handle
 * records the process that made it: after fork() the child makes its own and
 * leaves the parent's alone (closing it would shut the parent's TLS sessions).
 *
 * Retries. A transport failure (connect, reset, timeout of one attempt), 429
 * or 5xx is tried again after a backoff drawn uniformly from [0, base * 2^n]
 * (capped), as long as the deadline leaves room for it; each attempt's own
 * timeout is what is left of the deadline. Requests are idempotent in the
 * APIs we call (GetItem, UpdateItem with SET, PutObject, DeleteObject), so a
 * retry after a lost reply is safe.
 */
#include "dc_cloud_http.h"
#include "dc_log.h"

#include <apr_strings.h>
#include <apr_time.h>
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct handle handle_t;
struct handle {
    handle_t *next, *prev;
    dc_cloud_client_t *client;
    CURL *curl;
    pid_t pid;
};

struct dc_cloud_client {
    dc_cloud_options_t opt;
    pthread_key_t key;
    pthread_mutex_t mutex;
    handle_t *handles; /* made in this process, under mutex */
    int live;
};

void dc_cloud_options_default(dc_cloud_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 1000;
    o->timeout_ms = 5000;
    o->retries = 2;
    o->backoff_base_ms = 25;
    o->backoff_max_ms = 1000;
    o->max_body = 1024 * 1024;
}

static void unlink_handle(dc_cloud_client_t *c, handle_t *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        c->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
}

/* Thread exit: the thread's handle goes with it. */
static void handle_destructor(void *data)
{
    handle_t *h = data;
    dc_cloud_client_t *c = h->client;

    if (h->pid != getpid())
        return; /* the parent's: not ours to close */
    pthread_mutex_lock(&c->mutex);
    unlink_handle(c, h);
    pthread_mutex_unlock(&c->mutex);
    curl_easy_cleanup(h->curl);
    free(h);
}

static apr_status_t client_cleanup(void *data)
{
    dc_cloud_client_destroy(data);
    return APR_SUCCESS;
}

dc_cloud_client_t *dc_cloud_client_create(apr_pool_t *p, const dc_cloud_options_t *opt, char *err,
                                          size_t err_len)
{
    dc_cloud_client_t *c = apr_pcalloc(p, sizeof(*c));

    if (opt)
        c->opt = *opt;
    else
        dc_cloud_options_default(&c->opt);
    if (c->opt.connect_timeout_ms <= 0)
        c->opt.connect_timeout_ms = 1000;
    if (c->opt.timeout_ms <= 0)
        c->opt.timeout_ms = 5000;
    if (c->opt.retries < 0)
        c->opt.retries = 0;
    if (c->opt.backoff_base_ms <= 0)
        c->opt.backoff_base_ms = 25;
    if (c->opt.backoff_max_ms < c->opt.backoff_base_ms)
        c->opt.backoff_max_ms = c->opt.backoff_base_ms;
    if (!c->opt.max_body)
        c->opt.max_body = 1024 * 1024;
    c->opt.ca_file = c->opt.ca_file ? apr_pstrdup(p, c->opt.ca_file) : NULL;
    c->opt.user_agent = apr_pstrdup(p, c->opt.user_agent ? c->opt.user_agent
                                                         : "mod_decision/" PACKAGE_VERSION);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, err_len, "cannot initialise libcurl");
        return NULL;
    }
    if (pthread_key_create(&c->key, handle_destructor) != 0) {
        curl_global_cleanup();
        snprintf(err, err_len, "cannot create a thread key for the HTTP handles");
        return NULL;
    }
    pthread_mutex_init(&c->mutex, NULL);
    c->live = 1;
    apr_pool_cleanup_register(p, c, client_cleanup, apr_pool_cleanup_null);
    return c;
}

void dc_cloud_client_destroy(dc_cloud_client_t *c)
{
    handle_t *h;

    if (!c || !c->live)
        return;
    c->live = 0;
    pthread_key_delete(c->key);
    pthread_mutex_lock(&c->mutex);
    h = c->handles;
    c->handles = NULL;
    pthread_mutex_unlock(&c->mutex);
    while (h) {
        handle_t *next = h->next;

        if (h->pid == getpid())
            curl_easy_cleanup(h->curl);
        free(h);
        h = next;
    }
    pthread_mutex_destroy(&c->mutex);
    curl_global_cleanup();
}

CURL *dc_cloud_handle(dc_cloud_client_t *c)
{
    handle_t *h = pthread_getspecific(c->key);
    pid_t pid = getpid();

    if (h && h->pid == pid)
        return h->curl;
    /* none yet, or the parent's (forked while this thread's copy ran): a new one */
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return NULL;
    }
    h->client = c;
    h->pid = pid;
    pthread_mutex_lock(&c->mutex);
    if (c->handles && c->handles->pid != pid) {
        /* the parent's list, copied by fork(): forget it (not ours to close) */
        c->handles = NULL;
    }
    h->next = c->handles;
    if (c->handles)
        c->handles->prev = h;
    c->handles = h;
    pthread_mutex_unlock(&c->mutex);
    pthread_setspecific(c->key, h);
    return h->curl;
}

void dc_cloud_request_init(dc_cloud_request_t *r, apr_pool_t *pool, const char *method,
                           const char *url)
{
    memset(r, 0, sizeof(*r));
    r->pool = pool;
    r->method = method;
    r->url = url;
    r->retries = -1;
}

int dc_cloud_status_retryable(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

typedef struct {
    apr_pool_t *pool;
    char *data;
    size_t len, cap, max;
    int too_large;
    apr_table_t *headers;
} sink_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    sink_t *s = userdata;
    size_t n = size * nmemb;

    if (s->len + n > s->max) {
        s->too_large = 1;
        return 0; /* aborts the transfer */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        char *data;

        while (cap < s->len + n + 1)
            cap *= 2;
        data = apr_palloc(s->pool, cap);
        if (s->len)
            memcpy(data, s->data, s->len);
        s->data = data;
        s->cap = cap;
    }
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    sink_t *s = userdata;
    size_t n = size * nmemb, name_len, vstart;
    char *name;

    if (!s->headers)
        return n;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        apr_table_clear(s->headers); /* a new reply (after 100 Continue, a redirect) */
        return n;
    }
    for (name_len = 0; name_len < n && ptr[name_len] != ':'; name_len++)
        ;
    if (name_len == 0 || name_len >= n || name_len > 256)
        return n;
    name = apr_pstrmemdup(s->pool, ptr, name_len);
    for (char *q = name; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    vstart = name_len + 1;
    while (vstart < n && (ptr[vstart] == ' ' || ptr[vstart] == '\t'))
        vstart++;
    while (n > vstart && (ptr[n - 1] == '\r' || ptr[n - 1] == '\n' || ptr[n - 1] == ' '))
        n--;
    if (n - vstart <= 8192)
        apr_table_add(s->headers, name, apr_pstrmemdup(s->pool, ptr + vstart, n - vstart));
    return size * nmemb;
}

static void setup(dc_cloud_client_t *c, CURL *curl, const dc_cloud_request_t *req, long timeout_ms,
                  sink_t *sink)
{
    curl_easy_reset(curl); /* keeps the connection and TLS session caches */
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     c->opt.connect_timeout_ms < timeout_ms ? c->opt.connect_timeout_ms
                                                            : timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->opt.ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->opt.ca_file);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, c->opt.user_agent);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, sink);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
    }
}

/* Full jitter: a thread-local xorshift, seeded per thread from the clock. */
static uint32_t jitter(void)
{
    static _Thread_local uint32_t x;

    if (!x)
        x = (uint32_t)apr_time_now() ^ (uint32_t)(uintptr_t)&x ^ 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

int dc_cloud_perform(dc_cloud_client_t *c, const dc_cloud_request_t *req,
                     dc_cloud_response_t *resp)
{
    long budget_ms = req->timeout_ms > 0 ? req->timeout_ms : c->opt.timeout_ms;
    int retries = req->retries >= 0 ? req->retries : c->opt.retries;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(budget_ms);
    CURL *curl = dc_cloud_handle(c);

    memset(resp, 0, sizeof(*resp));
    resp->body = "";
    if (!curl) {
        snprintf(resp->error, sizeof(resp->error), "cannot create an HTTP handle");
        return -1;
    }
    for (int attempt = 0;; attempt++) {
        struct curl_slist *headers = NULL;
        sink_t sink = {req->pool, NULL, 0, 0, c->opt.max_body, 0, NULL};
        apr_time_t now = apr_time_now();
        long left_ms = (long)apr_time_as_msec(deadline - now), backoff_ms;
        CURLcode cc;
        int retryable;

        if (left_ms < 1)
            left_ms = 1;
        if (req->want_headers)
            sink.headers = apr_table_make(req->pool, 8);
        setup(c, curl, req, left_ms, &sink);
        /* no "Expect: 100-continue" round trip; but libcurl's SigV4 would sign the
         * removal header as "expect:" with an empty value, which the server never
         * sees: signed requests (bodies under 1 MiB get no Expect anyway) go without */
        if (!req->sign)
            headers = curl_slist_append(headers, "Expect:");
        for (const char *const *h = req->headers; h && *h; h++)
            headers = curl_slist_append(headers, *h);
        if (req->sign &&
            req->sign(req->sign_baton, curl, &headers, resp->error, sizeof(resp->error)) < 0) {
            curl_slist_free_all(headers);
            resp->attempts = attempt;
            return -1;
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        cc = curl_easy_perform(curl);
        curl_slist_free_all(headers);
        resp->attempts = attempt + 1;
        resp->status = 0;
        if (cc == CURLE_OK) {
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
            resp->body = sink.data ? sink.data : "";
            resp->body_len = sink.len;
            resp->headers = sink.headers;
            if (!dc_cloud_status_retryable(resp->status))
                return 0;
            snprintf(resp->error, sizeof(resp->error), "%s %s: HTTP %ld", req->method,
                     dc_cloud_mask_uri(req->pool, req->url), resp->status);
            retryable = 1;
        } else {
            snprintf(resp->error, sizeof(resp->error), "%s %s: %s", req->method,
                     dc_cloud_mask_uri(req->pool, req->url),
                     sink.too_large ? "reply too large" : curl_easy_strerror(cc));
            retryable = !sink.too_large;
        }
        if (!retryable || attempt >= retries)
            break;
        backoff_ms = c->opt.backoff_base_ms << (attempt < 16 ? attempt : 16);
        if (backoff_ms > c->opt.backoff_max_ms)
            backoff_ms = c->opt.backoff_max_ms;
        backoff_ms = (long)(jitter() % (uint32_t)(backoff_ms + 1));
        if (apr_time_now() + apr_time_from_msec(backoff_ms + 1) >= deadline)
            break;
        apr_sleep(apr_time_from_msec(backoff_ms));
    }
    return resp->status ? 0 : -1;
}

int dc_cloud_is_secret_param(const char *name, size_t len)
{
    static const char *const secret[] = {
        "sig",           "signature",   "x-amz-signature", "x-amz-security-token",
        "x-amz-credential", "sas",       "sas_token",       "token",
        "key",           "account_key", "accountkey",      "secret",
        "secret_key",    "access_key",  "session_token",   "password",
        "pass",          "passwd",      "credential",      "client_secret",
        "code",          "api_key",     "apikey",          "auth"};

    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        if (strlen(secret[i]) == len && strncasecmp(secret[i], name, len) == 0)
            return 1;
    return 0;
}

const char *dc_cloud_mask_uri(apr_pool_t *p, const char *uri)
{
    const char *scheme_end, *authority, *auth_end, *at = NULL, *query;
    char *out, *o;
    size_t n;

    if (!uri)
        return "";
    n = strlen(uri);
    out = apr_palloc(p, n + 4 * (n / 2 + 2) + 1); /* each masked part grows by at most 3 */
    o = out;
    scheme_end = strstr(uri, "://");
    authority = scheme_end ? scheme_end + 3 : uri;
    auth_end = authority + strcspn(authority, "/?#");
    for (const char *q = authority; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (scheme_end && at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));

        if (colon) {
            memcpy(o, uri, (size_t)(colon + 1 - uri));
            o += colon + 1 - uri;
            memcpy(o, "***", 3);
            o += 3;
            uri = at;
        }
    } else if (!scheme_end && (at = strrchr(uri, '@')) && (size_t)(at - uri) < n) {
        /* not a URI: whatever stands before the last "@" may be a password */
        memcpy(o, "***", 3);
        o += 3;
        uri = at;
    }
    query = strchr(uri, '?');
    if (!query) {
        strcpy(o, uri);
        return out;
    }
    memcpy(o, uri, (size_t)(query + 1 - uri));
    o += query + 1 - uri;
    for (const char *q = query + 1; *q;) {
        size_t len = strcspn(q, "&#"), name_len = strcspn(q, "=&#");

        if (name_len < len && dc_cloud_is_secret_param(q, name_len)) {
            memcpy(o, q, name_len + 1);
            o += name_len + 1;
            memcpy(o, "***", 3);
            o += 3;
        } else {
            memcpy(o, q, len);
            o += len;
        }
        q += len;
        if (*q == '&') {
            *o++ = *q++;
        } else if (*q == '#') {
            strcpy(o, q);
            return out;
        }
    }
    *o = '\0';
    return out;
}

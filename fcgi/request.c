/*
 * CGI/1.1 request → dc_request_t → CGI response (see request.h).
 *
 * Routing path: SCRIPT_NAME + PATH_INFO is the path as the web server sees
 * it after its own rewrites, so it is preferred; servers decode it, while
 * dc_api expects the path as received and decodes it once itself, so any
 * '%' in it is re-escaped. When that path has no "/v2" or "/ofrep/v1"
 * segment (a server that puts the whole path in SCRIPT_NAME of another
 * location, or none at all), the raw REQUEST_URI is used.
 *
 * The body is read only up to MAX_BODY_SIZE: a larger CONTENT_LENGTH is
 * answered 413 without reading it, and a body without CONTENT_LENGTH is read
 * until it passes the limit, then flagged as too large. (Under FastCGI what
 * is left is dropped after the answer, see drain_body().)
 */
#include "request.h"

#include "dc_log.h"
#include "dc_status.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

static const char *escape_percent(apr_pool_t *p, const char *s)
{
    size_t n = 0;
    char *out, *o;

    for (const char *c = s; *c; c++)
        n += *c == '%';
    if (!n)
        return s;
    out = o = apr_palloc(p, strlen(s) + 2 * n + 1);
    for (const char *c = s; *c; c++) {
        *o++ = *c;
        if (*c == '%') {
            *o++ = '2';
            *o++ = '5';
        }
    }
    *o = '\0';
    return out;
}

const char *dc_fcgi_route_path(apr_pool_t *p, const char *script_name, const char *path_info,
                               const char *request_uri)
{
    const char *joined;

    script_name = script_name ? script_name : "";
    path_info = path_info ? path_info : "";
    joined = *path_info ? apr_pstrcat(p, script_name, path_info, NULL) : script_name;
    if (dc_api_owns_path(joined))
        return escape_percent(p, joined);
    if (request_uri && *request_uri) {
        const char *q = strchr(request_uri, '?');

        return q ? apr_pstrmemdup(p, request_uri, (apr_size_t)(q - request_uri)) : request_uri;
    }
    return escape_percent(p, joined);
}

/* The variables a request needs, found in one pass over its environment (a lookup per name
 * would scan the 30-odd variables a web server sends once per name). */
typedef struct {
    const char *method, *script_name, *path_info, *request_uri, *query, *content_length;
    const char *origin, *x_api_key, *authorization, *if_none_match, *remote_addr;
} cgi_vars_t;

#define TAKE(entry, name, field)                                                              \
    if (!(field) && strncmp(entry, name "=", sizeof(name)) == 0) {                            \
        field = entry + sizeof(name);                                                         \
        continue;                                                                             \
    }

static void collect_vars(char **envp, cgi_vars_t *v)
{
    memset(v, 0, sizeof(*v));
    for (; envp && *envp; envp++) {
        const char *e = *envp;

        switch (e[0]) {
        case 'R':
            TAKE(e, "REQUEST_METHOD", v->method);
            TAKE(e, "REQUEST_URI", v->request_uri);
            TAKE(e, "REMOTE_ADDR", v->remote_addr);
            break;
        case 'S': TAKE(e, "SCRIPT_NAME", v->script_name); break;
        case 'P': TAKE(e, "PATH_INFO", v->path_info); break;
        case 'Q': TAKE(e, "QUERY_STRING", v->query); break;
        case 'C': TAKE(e, "CONTENT_LENGTH", v->content_length); break;
        case 'H':
            TAKE(e, "HTTP_ORIGIN", v->origin);
            TAKE(e, "HTTP_X_API_KEY", v->x_api_key);
            TAKE(e, "HTTP_AUTHORIZATION", v->authorization);
            TAKE(e, "HTTP_IF_NONE_MATCH", v->if_none_match);
            break;
        default: break;
        }
    }
}

/* CONTENT_LENGTH: digits only; anything else is "absent" (-1); huge values saturate. */
static long long content_length(const char *v)
{
    long long n = 0;

    if (!v || !*v)
        return -1;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        if (n > (1LL << 50))
            return 1LL << 50;
        n = n * 10 + (*c - '0');
    }
    return n;
}

static void read_body(apr_pool_t *p, const dc_fcgi_io_t *io, const char *length, apr_size_t max,
                      dc_request_t *req)
{
    long long declared = content_length(length);
    size_t want, got = 0;
    char *buf;

    req->body = "";
    req->body_len = 0;
    if (declared == 0 || (declared < 0 && !io->body_until_eof))
        return;
    if (declared > (long long)max) {
        req->body_too_large = 1;
        return;
    }
    /* Without a length, read one byte past the limit to know it was passed. */
    want = declared > 0 ? (size_t)declared : max + 1;
    buf = apr_palloc(p, want + 1);
    while (got < want) {
        size_t chunk = want - got > 65536 ? 65536 : want - got;
        int n = io->read(io->baton, buf + got, (int)chunk);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got > max) {
        req->body_too_large = 1;
        got = max;
    }
    buf[got] = '\0';
    req->body = buf;
    req->body_len = got;
}

/* FastCGI: the rest of stdin is read and dropped after the answer (up to a bound), so that
 * closing the connection with unread input does not reset it and lose the answer. */
#define DRAIN_LIMIT (64 * 1024 * 1024)

static void drain_body(const dc_fcgi_io_t *io)
{
    char buf[16384];
    size_t dropped = 0;
    int n;

    while (dropped < DRAIN_LIMIT && (n = io->read(io->baton, buf, (int)sizeof(buf))) > 0)
        dropped += (size_t)n;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

typedef struct {
    char *data;
    size_t len, cap;
    apr_pool_t *pool;
} head_t;

static void head_put(head_t *h, const char *s, size_t n)
{
    if (h->len + n > h->cap) {
        size_t cap = (h->len + n) * 2;
        char *data = apr_palloc(h->pool, cap);

        memcpy(data, h->data, h->len);
        h->data = data;
        h->cap = cap;
    }
    memcpy(h->data + h->len, s, n);
    h->len += n;
}

static void head_puts(head_t *h, const char *s)
{
    head_put(h, s, strlen(s));
}

/* A header value from the configuration must not split the response. */
/* The status page is where METRICS_STATUS_PATH says, matched at the end of the path (the way
 * dc_api matches the Prometheus path), so it works under any mount prefix. */
static int is_status_path(const char *status_path, const char *path)
{
    size_t n, m;

    if (!status_path)
        return 0;
    n = strlen(path);
    m = strlen(status_path);
    return n >= m && strcmp(path + n - m, status_path) == 0;
}

static int header_safe(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static void put_header(head_t *h, const char *key, const char *value)
{
    size_t klen, vlen;

    if (!key || !value || !header_safe(key) || !header_safe(value))
        return;
    klen = strlen(key);
    vlen = strlen(value);
    head_put(h, key, klen);
    head_put(h, ": ", 2);
    head_put(h, value, vlen);
    head_put(h, "\r\n", 2);
}

/* The decimal digits of v into out (room for 20); returns their count. snprintf's format
 * parsing was a tenth of a request's instructions for these two numbers. */
static size_t decimal(char *out, unsigned long long v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static int write_response(apr_pool_t *p, const dc_fcgi_io_t *io, const dc_response_t *resp)
{
    char digits[20];
    head_t h;

    h.pool = p;
    h.data = apr_palloc(p, 512);
    h.cap = 512;
    h.len = 0;
    head_put(&h, "Status: ", 8);
    head_put(&h, digits, decimal(digits, resp->status > 0 ? (unsigned long long)resp->status : 0));
    head_put(&h, " ", 1);
    head_puts(&h, reason(resp->status));
    head_put(&h, "\r\n", 2);
    if (resp->content_type) {
        head_put(&h, "Content-Type: ", 14);
        head_puts(&h, resp->content_type);
        head_put(&h, "\r\nContent-Length: ", 18);
        head_put(&h, digits, decimal(digits, resp->body_len));
        head_put(&h, "\r\n", 2);
    }
    {
        const apr_array_header_t *elts = apr_table_elts(resp->headers);
        const apr_table_entry_t *e = (const apr_table_entry_t *)elts->elts;

        for (int i = 0; i < elts->nelts; i++)
            put_header(&h, e[i].key, e[i].val);
    }
    head_put(&h, "\r\n", 2);
    if (io->write(io->baton, h.data, (int)h.len) < 0)
        return -1;
    if (resp->content_type && resp->body_len &&
        io->write(io->baton, resp->body, (int)resp->body_len) < 0)
        return -1;
    return 0;
}

void dc_fcgi_handle(dc_fcgi_app_t *app, apr_pool_t *p, const dc_fcgi_io_t *io)
{
    dc_request_t req;
    dc_response_t resp;
    apr_table_t *headers;
    cgi_vars_t v;

    memset(&req, 0, sizeof(req));
    req.received = apr_time_now();
    collect_vars(io->vars(io->baton), &v); /* the first of duplicates wins, as with getenv() */
    req.method = v.method ? v.method : "GET";
    req.path = dc_fcgi_route_path(p, v.script_name, v.path_info, v.request_uri);
    req.query = v.query && *v.query ? v.query : NULL;
    req.origin = v.origin;
    req.x_api_key = v.x_api_key;
    req.authorization = v.authorization;
    req.if_none_match = v.if_none_match;
    req.metrics_slot = io->metrics_slot;

    /* Read before taking the options lock: a slow upload must not hold up a reload.
     * Preflights and routes that take no body are answered without reading one. */
    if (strcmp(req.method, "POST") == 0)
        read_body(p, io, v.content_length, __atomic_load_n(&app->max_body_size, __ATOMIC_RELAXED),
                  &req);
    pthread_rwlock_rdlock(&app->options_lock);
    if (is_status_path(app->settings->status_path, req.path))
        dc_status_handle(&app->svc, p, &req, &resp);
    else
        dc_api_handle(&app->svc, p, &req, &resp);
    /* Header values may point into the options, which a reload frees once we unlock. */
    headers = resp.headers;
    for (int i = 0; i < apr_table_elts(headers)->nelts; i++) {
        apr_table_entry_t *e = &((apr_table_entry_t *)apr_table_elts(headers)->elts)[i];

        e->val = apr_pstrdup(p, e->val);
    }
    pthread_rwlock_unlock(&app->options_lock);

    if (write_response(p, io, &resp) < 0)
        dc_log(DC_LOG_DEBUG, DCLOGNO(10520) "the web server went away before the answer was sent");
    if (io->body_until_eof)
        drain_body(io);
    if (dc_log_enabled(DC_LOG_DEBUG)) /* an access log, for debugging: the web server keeps one */
        dc_log(DC_LOG_DEBUG, DCLOGNO(10521) "%s | %d | %s | %.3fms | %s",
               v.remote_addr ? v.remote_addr : "-", resp.status, req.method,
               (double)(apr_time_now() - req.received) / 1000.0,
               v.request_uri ? v.request_uri : req.path);
}

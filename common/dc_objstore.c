/*
 * dc_objstore: the parts every object store sink shares — the URI options,
 * the object names, gzip, and what an error answer means. The backends
 * (dc_s3.c, dc_azure.c) only build and sign their requests.
 */
#include "dc_objstore.h"
#include "dc_azure.h"
#include "dc_cloud_http.h"
#include "dc_s3.h"

#include <apr_strings.h>
#include <apr_tables.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

int dc_objstore_is_uri(const char *uri)
{
    return uri && (strncmp(uri, "s3://", 5) == 0 || strncmp(uri, "azblob://", 9) == 0);
}

dc_objstore_t *dc_objstore_open(apr_pool_t *p, const char *uri, const dc_objstore_http_t *http,
                                char *err, size_t errlen)
{
    if (strncmp(uri, "s3://", 5) == 0)
        return dc_s3_open(p, uri, http, err, errlen);
    if (strncmp(uri, "azblob://", 9) == 0)
        return dc_azure_open(p, uri, http, err, errlen);
    snprintf(err, errlen, "not an object store URI (s3:// or azblob://)");
    return NULL;
}

static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

int dc_objstore_check(apr_pool_t *p, const char *uri, char *err, size_t errlen)
{
    dc_objstore_t os;
    char why[256];
    int rc = -1;

    memset(&os, 0, sizeof(os));
    if (strncmp(uri, "s3://", 5) == 0) {
        const char *bucket;
        apr_table_t *q;

        rc = dc_s3_parse(p, uri, &bucket, &os, &q, why, sizeof(why));
    } else if (strncmp(uri, "azblob://", 9) == 0) {
        dc_azure_t az;

        rc = dc_azure_parse(p, uri, no_env, &az, &os, why, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "not an object store URI (s3:// or azblob://)");
    }
    if (rc < 0)
        snprintf(err, errlen, "%s", why);
    return rc;
}

void dc_objstore_close(dc_objstore_t *os)
{
    if (os && os->ops->close)
        os->ops->close(os);
}

size_t dc_objstore_key(char *out, size_t outlen, const char *prefix, apr_time_t t,
                       const char *server, const char *seq)
{
    time_t secs = (time_t)apr_time_sec(t);
    struct tm tm;
    int n;

    gmtime_r(&secs, &tm);
    n = snprintf(out, outlen, "%s%s%04d/%02d/%02d/%02d/%s-%s.jsonl.gz", prefix,
                 *prefix ? "/" : "", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 server, seq);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen)
            out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

const char *dc_objstore_probe_key(apr_pool_t *p, const dc_objstore_t *os)
{
    return apr_psprintf(p, "%s%s_probe/%s-%ld-%" APR_TIME_T_FMT, os->prefix,
                        *os->prefix ? "/" : "", os->server, (long)getpid(),
                        apr_time_as_msec(apr_time_now()));
}

void *dc_objstore_gzip(apr_pool_t *p, const void *data, size_t len, size_t *out_len)
{
    z_stream z;
    unsigned char *out;
    uLong bound;
    int rc;

    memset(&z, 0, sizeof(z));
    /* 15 + 16: a gzip header and trailer around the deflate stream */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return NULL;
    bound = deflateBound(&z, (uLong)len);
    out = apr_palloc(p, bound);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    rc = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? out : NULL;
}

const char *dc_objstore_prefix(apr_pool_t *p, const char *s)
{
    size_t n;

    while (*s == '/')
        s++;
    n = strlen(s);
    while (n && s[n - 1] == '/')
        n--;
    return apr_pstrmemdup(p, s, n);
}

const char *dc_obj_result_name(dc_obj_result_e r)
{
    switch (r) {
    case DC_OBJ_OK: return "ok";
    case DC_OBJ_TRANSIENT: return "transient failure";
    case DC_OBJ_CREDENTIALS: return "credentials";
    case DC_OBJ_NOT_FOUND: return "bucket/container";
    case DC_OBJ_PERMISSION: return "permission";
    default: return "rejected";
    }
}

const char *dc_objstore_default_server(apr_pool_t *p)
{
    char host[256] = "";
    char *out;
    size_t n = 0;

    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        return "server";
    out = apr_palloc(p, 64);
    for (const char *c = host; *c && n < 63; c++)
        out[n++] = isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == '_' ? *c : '_';
    out[n] = '\0';
    return out;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* %-decodes s in place ('+' stays '+': SAS signatures are base64); -1 on a bad escape. */
static int unescape(char *s)
{
    char *w = s;

    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hexval(r[1]), lo = hi >= 0 ? hexval(r[2]) : -1;

            if (lo < 0)
                return -1;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

apr_table_t *dc_objstore_query(apr_pool_t *p, const char *query, const char *const *allowed,
                               char *err, size_t errlen)
{
    apr_table_t *t = apr_table_make(p, 8);
    char *copy, *last = NULL;

    if (!query || !*query)
        return t;
    copy = apr_pstrdup(p, query);
    for (char *item = apr_strtok(copy, "&", &last); item; item = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(item, '=');
        int known = 0;

        if (!eq || eq == item) {
            snprintf(err, errlen, "option \"%.40s\": expected key=value", item);
            return NULL;
        }
        *eq = '\0';
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, item) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown option \"%.40s\"", item);
            return NULL;
        }
        if (unescape(eq + 1) < 0) {
            snprintf(err, errlen, "option %s: bad %%-escape", item);
            return NULL;
        }
        apr_table_set(t, item, eq + 1);
    }
    return t;
}

static int parse_size(const char *v, apr_size_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);

    if (end == v)
        return -1;
    if (*end == 'k' || *end == 'K')
        n *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        n *= 1024 * 1024, end++;
    if (*end || n == 0 || n > (unsigned long long)1024 * 1024 * 1024)
        return -1;
    *out = (apr_size_t)n;
    return 0;
}

static int parse_duration(const char *v, apr_interval_time_t *out)
{
    char *end;
    long long n = strtoll(v, &end, 10);

    if (end == v || n < 0)
        return -1;
    if (strcmp(end, "ms") == 0)
        *out = apr_time_from_msec(n);
    else if (strcmp(end, "s") == 0 || !*end)
        *out = apr_time_from_sec(n);
    else if (strcmp(end, "m") == 0)
        *out = apr_time_from_sec(n * 60);
    else
        return -1;
    return *out <= apr_time_from_sec(3600) ? 0 : -1;
}

int dc_objstore_common_options(dc_objstore_t *os, apr_pool_t *p, apr_table_t *q, char *err,
                               size_t errlen)
{
    const char *v;

    os->server = dc_objstore_default_server(p);
    os->max_bytes = DC_OBJSTORE_DEFAULT_MAX_BYTES;
    os->interval = DC_OBJSTORE_DEFAULT_INTERVAL;
    if ((v = apr_table_get(q, "server")) != NULL) {
        if (!*v || strlen(v) > 63 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789._-") != strlen(v)) {
            snprintf(err, errlen, "server=%.70s: 1 to 63 of A-Z a-z 0-9 . _ -", v);
            return -1;
        }
        os->server = v;
    }
    if ((v = apr_table_get(q, "max_object_bytes")) != NULL &&
        parse_size(v, &os->max_bytes) < 0) {
        snprintf(err, errlen, "max_object_bytes=%.40s: a size from 1 to 1g (k, m suffixes)", v);
        return -1;
    }
    if ((v = apr_table_get(q, "interval")) != NULL && parse_duration(v, &os->interval) < 0) {
        snprintf(err, errlen, "interval=%.40s: a duration from 0 to 1h (ms, s, m)", v);
        return -1;
    }
    return 0;
}

dc_obj_result_e dc_objstore_classify(long status, const char *code)
{
    static const char *const credentials[] = {
        "InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthenticationFailed",
        "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
        "InvalidAuthenticationInfo", "NoAuthenticationInformation", "MissingSecurityHeader",
        "RequestTimeTooSkewed", NULL};
    static const char *const not_found[] = {"NoSuchBucket", "ContainerNotFound",
                                            "ContainerBeingDeleted", "AccountIsDisabled", NULL};

    if (status >= 200 && status < 300)
        return DC_OBJ_OK;
    for (int i = 0; code && credentials[i]; i++)
        if (strcmp(code, credentials[i]) == 0)
            return DC_OBJ_CREDENTIALS;
    for (int i = 0; code && not_found[i]; i++)
        if (strcmp(code, not_found[i]) == 0)
            return DC_OBJ_NOT_FOUND;
    if (status == 0 || status == 408 || status == 429 || status >= 500)
        return DC_OBJ_TRANSIENT;
    if (status == 401)
        return DC_OBJ_CREDENTIALS;
    if (status == 403)
        return DC_OBJ_PERMISSION; /* AccessDenied, AuthorizationPermissionMismatch, ... */
    if (status == 404)
        return DC_OBJ_NOT_FOUND;
    return DC_OBJ_REJECTED;
}

void dc_objstore_xml_code(const char *body, size_t len, char *code, size_t codelen)
{
    const char *open = NULL, *end;
    size_t n;

    code[0] = '\0';
    for (size_t i = 0; i + 6 <= len; i++)
        if (memcmp(body + i, "<Code>", 6) == 0) {
            open = body + i + 6;
            break;
        }
    if (!open)
        return;
    for (end = open; end < body + len && *end != '<'; end++)
        ;
    n = (size_t)(end - open);
    if (n >= codelen)
        n = codelen - 1;
    for (size_t i = 0; i < n; i++)
        code[i] = isalnum((unsigned char)open[i]) ? open[i] : '_';
    code[n] = '\0';
}

const char *dc_objstore_escape_path(apr_pool_t *p, const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(key) * 3 + 1), *w = out;

    for (const unsigned char *c = (const unsigned char *)key; *c; c++) {
        if (isalnum(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~' || *c == '/') {
            *w++ = (char)*c;
        } else {
            *w++ = '%';
            *w++ = hex[*c >> 4];
            *w++ = hex[*c & 15];
        }
    }
    *w = '\0';
    return out;
}

/* ---- requests ------------------------------------------------------------ */

dc_cloud_client_t *dc_objstore_client(apr_pool_t *p, const dc_objstore_http_t *http, char *err,
                                      size_t errlen)
{
    dc_cloud_options_t o;

    dc_cloud_options_default(&o);
    o.timeout_ms = http->timeout_ms;
    if (http->connect_timeout_ms > 0)
        o.connect_timeout_ms = http->connect_timeout_ms;
    o.retries = 1; /* one more at once; the shipper backs off after that */
    o.max_body = 64 * 1024; /* error documents */
    o.ca_file = http->ca_file;
    o.user_agent = http->user_agent;
    return dc_cloud_client_create(p, &o, err, errlen);
}

dc_obj_result_e dc_objstore_perform(dc_cloud_client_t *client, apr_pool_t *p,
                                    const dc_objstore_req_t *req, dc_objstore_resp_t *resp,
                                    dc_obj_error_t *err)
{
    dc_cloud_request_t r;
    dc_cloud_response_t out;
    dc_objstore_resp_t ignored;
    const char **headers = apr_palloc(p, (req->n_headers + 1) * sizeof(char *));
    const char *v;
    size_t n = 0;

    memset(err, 0, sizeof(*err));
    if (!resp)
        resp = &ignored;
    memset(resp, 0, sizeof(*resp));
    /* libcurl writes Content-Length itself (it is in the list for signing) */
    for (size_t i = 0; i < req->n_headers; i++)
        if (strncasecmp(req->headers[i], "Content-Length:", 15) != 0)
            headers[n++] = req->headers[i];
    headers[n] = NULL;
    dc_cloud_request_init(&r, p, req->method, req->url);
    r.headers = headers;
    r.body = req->body;
    r.body_len = req->len;
    r.want_headers = 1;
    r.sign = req->sign;
    r.sign_baton = req->sign_baton;
    if (dc_cloud_perform(client, &r, &out) < 0) {
        err->result = DC_OBJ_TRANSIENT;
        /* the signer's "no AWS credentials yet" is a credentials problem */
        if (out.attempts == 0 && req->sign)
            err->result = DC_OBJ_CREDENTIALS;
        snprintf(err->detail, sizeof(err->detail), "%s", out.error);
        return err->result;
    }
    err->status = out.status;
    if (out.headers && (v = apr_table_get(out.headers, "content-md5")) != NULL)
        apr_cpystrn(resp->md5, v, sizeof(resp->md5));
    if (out.headers && (v = apr_table_get(out.headers, "etag")) != NULL)
        apr_cpystrn(resp->etag, v, sizeof(resp->etag));
    if (out.headers && (v = apr_table_get(out.headers, "x-ms-error-code")) != NULL)
        apr_cpystrn(err->code, v, sizeof(err->code));
    else
        dc_objstore_xml_code(out.body, out.body_len, err->code, sizeof(err->code));
    err->result = dc_objstore_classify(out.status, err->code);
    if (err->result != DC_OBJ_OK)
        snprintf(err->detail, sizeof(err->detail), "HTTP %ld%s%s", out.status,
                 err->code[0] ? " " : "", err->code);
    return err->result;
}

/*
 * dc_azure: see dc_azure.h. Put Blob (a block blob in one request, with
 * Content-MD5, which the service checks) and Delete Blob, authorised by a
 * SAS token or signed with the account key (Shared Key).
 */
#include "dc_azure.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Azurite's documented development account (UseDevelopmentStorage=true). */
#define DEV_ACCOUNT "devstoreaccount1"
#define DEV_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define DEV_ENDPOINT "http://127.0.0.1:10000/" DEV_ACCOUNT

typedef struct {
    dc_objstore_t os;
    dc_azure_t az;
    dc_cloud_client_t *client;
    apr_pool_t *pool;
} azure_store_t;

/* ---- Shared Key ------------------------------------------------------------ */

/* The value of header name in req ("" when absent). */
static const char *header_of(const dc_azure_request_t *req, const char *name, apr_pool_t *p)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i];

        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1;

            while (*v == ' ' || *v == '\t')
                v++;
            return apr_pstrdup(p, v);
        }
    }
    return "";
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* %-decoded copy ('+' as a space, as the service reads a query). */
static char *query_decode(apr_pool_t *p, const char *s, size_t n)
{
    char *out = apr_palloc(p, n + 1), *w = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n + 0 + 1 && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};

            *w++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            *w++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *w = '\0';
    return out;
}

char *dc_azure_string_to_sign(apr_pool_t *p, const dc_azure_request_t *req, const char *account)
{
    static const char *const standard[] = {
        "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type",
        "Date", "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range"};
    apr_array_header_t *ms = apr_array_make(p, 8, sizeof(char *));
    apr_array_header_t *params = apr_array_make(p, 4, sizeof(char *));
    char *out = apr_pstrcat(p, req->method, "\n", NULL);

    for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++) {
        const char *v = header_of(req, standard[i], p);

        /* since version 2015-02-21 a zero length is signed as "" */
        if (i == 2 && strcmp(v, "0") == 0)
            v = "";
        out = apr_pstrcat(p, out, v, "\n", NULL);
    }
    /* CanonicalizedHeaders: x-ms-*, names lowercased, sorted, one "name:value\n" each */
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *h = req->headers[i], *colon = strchr(h, ':'), *v;
        char *line;

        if (!colon || strncasecmp(h, "x-ms-", 5) != 0)
            continue;
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        line = apr_pstrcat(p, apr_pstrmemdup(p, h, (size_t)(colon - h)), ":", v, NULL);
        for (char *c = line; *c != ':'; c++)
            *c = (char)tolower((unsigned char)*c);
        *(char **)apr_array_push(ms) = line;
    }
    qsort(ms->elts, (size_t)ms->nelts, sizeof(char *), compare_strings);
    for (int i = 0; i < ms->nelts; i++)
        out = apr_pstrcat(p, out, ((char **)ms->elts)[i], "\n", NULL);
    /* CanonicalizedResource: /account/path, then "\nname:value" per query
     * parameter, names lowercased and sorted, values decoded */
    out = apr_pstrcat(p, out, "/", account, req->path && *req->path ? req->path : "/", NULL);
    if (req->query && *req->query) {
        const char *s = req->query;

        while (*s) {
            size_t n = strcspn(s, "&"), k = strcspn(s, "=");
            char *item;

            if (k > n)
                k = n;
            item = apr_pstrcat(p, query_decode(p, s, k), ":",
                               k < n ? query_decode(p, s + k + 1, n - k - 1) : "", NULL);
            for (char *c = item; *c != ':'; c++)
                *c = (char)tolower((unsigned char)*c);
            *(char **)apr_array_push(params) = item;
            s += n;
            if (*s == '&')
                s++;
        }
        qsort(params->elts, (size_t)params->nelts, sizeof(char *), compare_strings);
        for (int i = 0; i < params->nelts; i++)
            out = apr_pstrcat(p, out, "\n", ((char **)params->elts)[i], NULL);
    }
    return out;
}

const char *dc_azure_authorization(apr_pool_t *p, const dc_azure_request_t *req,
                                   const char *account, const unsigned char *key,
                                   size_t key_len)
{
    const char *sts = dc_azure_string_to_sign(p, req, account);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *b64;

    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)sts, strlen(sts), mac,
              &mac_len))
        return NULL;
    b64 = apr_palloc(p, (apr_size_t)apr_base64_encode_len((int)mac_len));
    apr_base64_encode_binary(b64, mac, (int)mac_len);
    return apr_pstrcat(p, "SharedKey ", account, ":", b64, NULL);
}

const char *dc_azure_date(apr_pool_t *p, apr_time_t t)
{
    char *buf = apr_palloc(p, APR_RFC822_DATE_LEN);

    apr_rfc822_date(buf, t);
    return buf;
}

/* ---- the URI and the credentials --------------------------------------------- */

static int valid_name(const char *s, size_t min, size_t max, int dashes)
{
    size_t n = strlen(s);

    if (n < min || n > max)
        return 0;
    for (const char *c = s; *c; c++)
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || (dashes && *c == '-')))
            return 0;
    return 1;
}

static int set_key(apr_pool_t *p, dc_azure_t *az, const char *b64, const char *source, char *err,
                   size_t errlen)
{
    size_t n = strlen(b64);
    unsigned char *key;
    int len;

    if (n == 0 || n % 4 != 0 ||
        strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n) {
        snprintf(err, errlen, "the account key from %s is not base64", source);
        return -1;
    }
    key = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b64));
    len = apr_base64_decode_binary(key, b64);
    if (len <= 0) {
        snprintf(err, errlen, "the account key from %s is empty", source);
        return -1;
    }
    az->key = key;
    az->key_len = (size_t)len;
    az->credential_source = source;
    return 0;
}

static void set_sas(apr_pool_t *p, dc_azure_t *az, const char *sas, const char *source)
{
    if (*sas == '?')
        sas++;
    az->sas = apr_pstrdup(p, sas);
    az->credential_source = source;
}

static int valid_endpoint(const char *e)
{
    return (strncmp(e, "http://", 7) == 0 && e[7]) || (strncmp(e, "https://", 8) == 0 && e[8]);
}

/* AccountName=..;AccountKey=..;BlobEndpoint=..;SharedAccessSignature=.. into t. */
static apr_table_t *connection_string(apr_pool_t *p, const char *cs)
{
    apr_table_t *t = apr_table_make(p, 8);
    char *copy = apr_pstrdup(p, cs), *last = NULL;
    const char *dev;

    for (char *item = apr_strtok(copy, ";", &last); item; item = apr_strtok(NULL, ";", &last)) {
        char *eq = strchr(item, '=');

        if (eq) {
            *eq = '\0';
            apr_collapse_spaces(item, item); /* (it returns the end) */
            apr_table_set(t, item, eq + 1);
        }
    }
    if ((dev = apr_table_get(t, "UseDevelopmentStorage")) != NULL && strcasecmp(dev, "true") == 0) {
        apr_table_setn(t, "AccountName", DEV_ACCOUNT);
        apr_table_setn(t, "AccountKey", DEV_KEY);
        if (!apr_table_get(t, "BlobEndpoint"))
            apr_table_setn(t, "BlobEndpoint", DEV_ENDPOINT);
    }
    return t;
}

int dc_azure_parse(apr_pool_t *p, const char *uri, dc_azure_getenv_fn *getenv_fn,
                   dc_azure_t *az, dc_objstore_t *os, char *err, size_t errlen)
{
    static const char *const allowed[] = {"endpoint", "sas", "key", "server",
                                          "max_object_bytes", "interval", NULL};
    const char *rest = uri + strlen("azblob://"), *qmark = strchr(rest, '?'), *v, *cs;
    char *path = apr_pstrmemdup(p, rest, qmark ? (size_t)(qmark - rest) : strlen(rest));
    char *slash, *slash2, qerr[120];
    apr_table_t *q;

    memset(az, 0, sizeof(*az));
    if (!(slash = strchr(path, '/'))) {
        snprintf(err, errlen, "expected azblob://ACCOUNT/CONTAINER[/PREFIX]");
        return -1;
    }
    *slash = '\0';
    az->account = path;
    az->container = slash + 1;
    if ((slash2 = strchr(slash + 1, '/')) != NULL)
        *slash2 = '\0';
    os->prefix = slash2 ? dc_objstore_prefix(p, slash2 + 1) : "";
    if (!valid_name(az->account, 3, 24, 0)) {
        snprintf(err, errlen, "account \"%.40s\": 3 to 24 lowercase letters and digits",
                 az->account);
        return -1;
    }
    if (!valid_name(az->container, 3, 63, 1) || az->container[0] == '-') {
        snprintf(err, errlen,
                 "container \"%.70s\": 3 to 63 lowercase letters, digits and dashes",
                 az->container);
        return -1;
    }
    if (!(q = dc_objstore_query(p, qmark ? qmark + 1 : NULL, allowed, qerr, sizeof(qerr)))) {
        snprintf(err, errlen, "%s", qerr);
        return -1;
    }
    if (dc_objstore_common_options(os, p, q, err, errlen) < 0)
        return -1;
    if ((v = apr_table_get(q, "sas")) != NULL && (v = apr_table_get(q, "key")) != NULL) {
        snprintf(err, errlen, "sas= and key=: give one of them");
        return -1;
    }
    az->endpoint = apr_table_get(q, "endpoint");
    if ((v = apr_table_get(q, "sas")) != NULL)
        set_sas(p, az, v, "sas= in the URI");
    else if ((v = apr_table_get(q, "key")) != NULL) {
        if (set_key(p, az, v, "key= in the URI", err, errlen) < 0)
            return -1;
    } else if ((v = getenv_fn("AZURE_STORAGE_SAS_TOKEN")) != NULL && *v)
        set_sas(p, az, v, "AZURE_STORAGE_SAS_TOKEN");
    else if ((v = getenv_fn("AZURE_STORAGE_KEY")) != NULL && *v) {
        if (set_key(p, az, v, "AZURE_STORAGE_KEY", err, errlen) < 0)
            return -1;
    } else if ((cs = getenv_fn("AZURE_STORAGE_CONNECTION_STRING")) != NULL && *cs) {
        apr_table_t *t = connection_string(p, cs);
        const char *name = apr_table_get(t, "AccountName");

        /* a SAS-only connection string names no account: its endpoint says which */
        if (!name || strcmp(name, az->account) == 0) {
            if ((v = apr_table_get(t, "SharedAccessSignature")) != NULL)
                set_sas(p, az, v, "AZURE_STORAGE_CONNECTION_STRING");
            else if ((v = apr_table_get(t, "AccountKey")) != NULL &&
                     set_key(p, az, v, "AZURE_STORAGE_CONNECTION_STRING", err, errlen) < 0)
                return -1;
            if (!az->endpoint && (v = apr_table_get(t, "BlobEndpoint")) != NULL)
                az->endpoint = v;
        }
    }
    if (!az->endpoint)
        az->endpoint = apr_psprintf(p, "https://%s.blob.core.windows.net", az->account);
    if (!valid_endpoint(az->endpoint)) {
        snprintf(err, errlen, "endpoint \"%.80s\": expected an http:// or https:// URL",
                 az->endpoint);
        return -1;
    }
    az->endpoint = apr_pstrdup(p, az->endpoint);
    {
        size_t n = strlen(az->endpoint);

        while (n && az->endpoint[n - 1] == '/')
            ((char *)az->endpoint)[--n] = '\0';
    }
    os->where = apr_psprintf(p, "container %s of account %s", az->container, az->account);
    return 0;
}

/* ---- operations ------------------------------------------------------------ */

static dc_obj_result_e azure_request(azure_store_t *s, const char *method, const char *key,
                                     const void *data, size_t len, const unsigned char md5[16],
                                     const char *content_type, dc_obj_error_t *err)
{
    apr_pool_t *p;
    const char *headers[8], *path, *url, *query = s->az.sas;
    dc_azure_request_t req;
    dc_objstore_req_t r;
    dc_objstore_resp_t resp;
    char md5_b64[32] = "";
    size_t n = 0;
    dc_obj_result_e result;

    memset(err, 0, sizeof(*err));
    if (!s->az.key && !s->az.sas) {
        err->result = DC_OBJ_CREDENTIALS;
        snprintf(err->detail, sizeof(err->detail),
                 "no credentials (sas= or key= in the URI, AZURE_STORAGE_SAS_TOKEN, "
                 "AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING)");
        return err->result;
    }
    apr_pool_create(&p, s->pool);
    /* the URL path as sent: the endpoint's own path (Azurite's /ACCOUNT) first */
    {
        const char *host = strstr(s->az.endpoint, "://") + 3, *ep_path = strchr(host, '/');

        path = apr_pstrcat(p, ep_path ? ep_path : "", "/", s->az.container, "/",
                           dc_objstore_escape_path(p, key), NULL);
    }
    url = apr_pstrcat(p, s->az.endpoint, "/", s->az.container, "/",
                      dc_objstore_escape_path(p, key), query ? "?" : "", query ? query : "",
                      NULL);
    headers[n++] = apr_pstrcat(p, "x-ms-date: ", dc_azure_date(p, apr_time_now()), NULL);
    headers[n++] = "x-ms-version: " DC_AZURE_API_VERSION;
    if (data) {
        apr_base64_encode_binary(md5_b64, md5, 16);
        headers[n++] = "x-ms-blob-type: BlockBlob";
        headers[n++] = apr_psprintf(p, "Content-Length: %" APR_SIZE_T_FMT, len);
        headers[n++] = apr_pstrcat(p, "Content-MD5: ", md5_b64, NULL);
        headers[n++] = apr_pstrcat(p, "Content-Type: ", content_type, NULL);
    }
    if (s->az.key) {
        const char *auth;

        req.method = method;
        req.path = path;
        req.query = NULL;
        req.headers = headers;
        req.n_headers = n;
        if (!(auth = dc_azure_authorization(p, &req, s->az.account, s->az.key,
                                            s->az.key_len))) {
            err->result = DC_OBJ_REJECTED;
            snprintf(err->detail, sizeof(err->detail), "cannot compute the Shared Key signature");
            apr_pool_destroy(p);
            return err->result;
        }
        headers[n++] = apr_pstrcat(p, "Authorization: ", auth, NULL);
    }
    memset(&r, 0, sizeof(r));
    r.method = method;
    r.url = url;
    r.headers = headers;
    r.n_headers = n;
    r.body = data;
    r.len = len;
    result = dc_objstore_perform(s->client, p, &r, &resp, err);
    if (result == DC_OBJ_OK && data && resp.md5[0] && strcmp(resp.md5, md5_b64) != 0) {
        /* the service checks Content-MD5; this catches a proxy that did not */
        err->result = result = DC_OBJ_TRANSIENT;
        snprintf(err->detail, sizeof(err->detail),
                 "the stored blob's Content-MD5 %.30s is not the sent %s", resp.md5, md5_b64);
    }
    apr_pool_destroy(p);
    return result;
}

static dc_obj_result_e azure_put(dc_objstore_t *os, const char *key, const void *data,
                                 size_t len, const unsigned char md5[16],
                                 const char *content_type, dc_obj_error_t *err)
{
    return azure_request((azure_store_t *)os, "PUT", key, data ? data : "", len, md5,
                         content_type, err);
}

static dc_obj_result_e azure_del(dc_objstore_t *os, const char *key, dc_obj_error_t *err)
{
    return azure_request((azure_store_t *)os, "DELETE", key, NULL, 0, NULL, NULL, err);
}

static void azure_close(dc_objstore_t *os)
{
    azure_store_t *s = (azure_store_t *)os;

    if (s->client)
        dc_cloud_client_destroy(s->client);
    s->client = NULL;
}

static void azure_describe(dc_objstore_t *os, char *buf, size_t len)
{
    azure_store_t *s = (azure_store_t *)os;

    if (s->az.credential_source)
        snprintf(buf, len, "%s from %s", s->az.key ? "account key" : "SAS token",
                 s->az.credential_source);
    else
        snprintf(buf, len, "no credentials found");
}

static const dc_objstore_ops_t azure_ops = {"azblob", azure_put, azure_del, azure_describe,
                                            azure_close};

static const char *env_get(const char *name)
{
    return getenv(name);
}

dc_objstore_t *dc_azure_open(apr_pool_t *p, const char *uri, const dc_objstore_http_t *http,
                             char *err, size_t errlen)
{
    azure_store_t *s = apr_pcalloc(p, sizeof(*s));
    char why[200];

    if (dc_azure_parse(p, uri, env_get, &s->az, &s->os, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", dc_cloud_mask_uri(p, uri), why);
        return NULL;
    }
    if (!(s->client = dc_objstore_client(p, http, err, errlen)))
        return NULL;
    s->pool = p;
    s->os.ops = &azure_ops;
    s->os.display = dc_cloud_mask_uri(p, uri);
    return &s->os;
}

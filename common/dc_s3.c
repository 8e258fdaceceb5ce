/*
 * dc_s3: see dc_s3.h. PutObject and DeleteObject, signed by dc_aws.
 */
#include "dc_s3.h"
#include "dc_aws.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <openssl/evp.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    dc_objstore_t os;
    const char *bucket;
    dc_aws_t *aws;
    dc_cloud_client_t *client;
    apr_pool_t *pool;
} s3_store_t;

/* Bucket names: 3-63 of lowercase letters, digits, '.' and '-'. */
static int valid_bucket(const char *b)
{
    size_t n = strlen(b);

    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return 0;
    for (const char *c = b; *c; c++)
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '.' || *c == '-'))
            return 0;
    return 1;
}

const char *dc_s3_url(apr_pool_t *p, const char *endpoint, const char *bucket, const char *key)
{
    const char *host = strstr(endpoint, "://");
    size_t n = strlen(endpoint);

    /* AWS's own endpoint https://s3.REGION.amazonaws.com[.cn]: virtual-hosted */
    if (host && strncmp(endpoint, "https://s3.", 11) == 0 && !strchr(bucket, '.') &&
        ((n > 14 && strcmp(endpoint + n - 14, ".amazonaws.com") == 0) ||
         (n > 17 && strcmp(endpoint + n - 17, ".amazonaws.com.cn") == 0)))
        return apr_pstrcat(p, "https://", bucket, ".", host + 3, "/",
                           dc_objstore_escape_path(p, key), NULL);
    return apr_pstrcat(p, endpoint, "/", bucket, "/", dc_objstore_escape_path(p, key), NULL);
}

static const char *hex_sha256(apr_pool_t *p, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char *out;

    if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL))
        return NULL;
    out = apr_palloc(p, md_len * 2 + 1);
    for (unsigned i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[md_len * 2] = '\0';
    return out;
}

static dc_obj_result_e s3_request(s3_store_t *s, const char *method, const char *key,
                                  const void *data, size_t len, const unsigned char md5[16],
                                  const char *content_type, dc_obj_error_t *err)
{
    apr_pool_t *p;
    const char *headers[6], *sha;
    dc_objstore_req_t r;
    char md5_b64[32] = "";
    size_t n = 0;
    dc_obj_result_e result;

    apr_pool_create(&p, s->pool);
    sha = hex_sha256(p, data ? data : "", data ? len : 0);
    if (!sha) {
        memset(err, 0, sizeof(*err));
        err->result = DC_OBJ_REJECTED;
        snprintf(err->detail, sizeof(err->detail), "cannot compute SHA-256");
        apr_pool_destroy(p);
        return err->result;
    }
    headers[n++] = apr_pstrcat(p, "x-amz-content-sha256: ", sha, NULL);
    if (data) {
        apr_base64_encode_binary(md5_b64, md5, 16);
        headers[n++] = apr_pstrcat(p, "Content-MD5: ", md5_b64, NULL);
        headers[n++] = apr_pstrcat(p, "Content-Type: ", content_type, NULL);
    }
    memset(&r, 0, sizeof(r));
    r.method = method;
    r.url = dc_s3_url(p, dc_aws_endpoint(s->aws), s->bucket, key);
    r.headers = headers;
    r.n_headers = n;
    r.body = data;
    r.len = len;
    r.sign = dc_aws_sign;
    r.sign_baton = s->aws;
    result = dc_objstore_perform(s->client, p, &r, NULL, err);
    apr_pool_destroy(p);
    return result;
}

static dc_obj_result_e s3_put(dc_objstore_t *os, const char *key, const void *data, size_t len,
                              const unsigned char md5[16], const char *content_type,
                              dc_obj_error_t *err)
{
    return s3_request((s3_store_t *)os, "PUT", key, data ? data : "", len, md5, content_type,
                      err);
}

static dc_obj_result_e s3_del(dc_objstore_t *os, const char *key, dc_obj_error_t *err)
{
    return s3_request((s3_store_t *)os, "DELETE", key, NULL, 0, NULL, NULL, err);
}

static void s3_close(dc_objstore_t *os)
{
    s3_store_t *s = (s3_store_t *)os;

    if (s->client)
        dc_cloud_client_destroy(s->client);
    s->client = NULL;
    if (s->aws)
        dc_aws_close(s->aws);
    s->aws = NULL;
}

int dc_s3_parse(apr_pool_t *p, const char *uri, const char **bucket, dc_objstore_t *os,
                apr_table_t **query, char *err, size_t errlen)
{
    static const char *const allowed[] = {"region", "endpoint", "profile", "server",
                                          "max_object_bytes", "interval", NULL};
    const char *rest = uri + strlen("s3://"), *qmark = strchr(rest, '?'), *v;
    char *path = apr_pstrmemdup(p, rest, qmark ? (size_t)(qmark - rest) : strlen(rest));
    char *slash = strchr(path, '/');

    if (slash)
        *slash = '\0';
    *bucket = path;
    if (!valid_bucket(path)) {
        snprintf(err, errlen, "bucket \"%.70s\": 3 to 63 lowercase letters, digits, dots and dashes",
                 path);
        return -1;
    }
    os->prefix = slash ? dc_objstore_prefix(p, slash + 1) : "";
    if (!(*query = dc_objstore_query(p, qmark ? qmark + 1 : NULL, allowed, err, errlen)) ||
        dc_objstore_common_options(os, p, *query, err, errlen) < 0)
        return -1;
    if ((v = apr_table_get(*query, "endpoint")) != NULL && strncmp(v, "http://", 7) != 0 &&
        strncmp(v, "https://", 8) != 0) {
        snprintf(err, errlen, "endpoint \"%.80s\": expected an http:// or https:// URL", v);
        return -1;
    }
    os->where = apr_psprintf(p, "bucket %s", path);
    return 0;
}

static void s3_describe(dc_objstore_t *os, char *buf, size_t len)
{
    dc_aws_describe(((s3_store_t *)os)->aws, buf, len);
}

static const dc_objstore_ops_t s3_ops = {"s3", s3_put, s3_del, s3_describe, s3_close};

dc_objstore_t *dc_s3_open(apr_pool_t *p, const char *uri, const dc_objstore_http_t *http,
                          char *err, size_t errlen)
{
    s3_store_t *s = apr_pcalloc(p, sizeof(*s));
    char why[256];
    apr_table_t *q;
    dc_aws_options_t ao;
    const char *shown = dc_cloud_mask_uri(p, uri);

    if (dc_s3_parse(p, uri, &s->bucket, &s->os, &q, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", shown, why);
        return NULL;
    }
    if (!(s->client = dc_objstore_client(p, http, err, errlen)))
        return NULL;
    memset(&ao, 0, sizeof(ao));
    ao.service = "s3";
    ao.region = apr_table_get(q, "region");
    ao.endpoint = apr_table_get(q, "endpoint");
    ao.profile = apr_table_get(q, "profile");
    if (!(s->aws = dc_aws_open(p, &ao, why, sizeof(why)))) {
        dc_cloud_client_destroy(s->client);
        snprintf(err, errlen, "%s: %s", shown, why);
        return NULL;
    }
    s->pool = p;
    s->os.ops = &s3_ops;
    s->os.display = shown;
    return &s->os;
}

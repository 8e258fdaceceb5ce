/*
 * dc_cloud_http: the one libcurl client layer for cloud APIs (DynamoDB, S3,
 * Azure Blob, instance metadata services).
 *
 * API
 *   dc_cloud_client_create(p, &opt, err, err_len)
 *       A client: settings shared by every request of one user (a store, a
 *       sink): connect and total timeouts, retry count and backoff, CA file,
 *       user agent, the largest reply body kept. Destroyed with p (or
 *       dc_cloud_client_destroy). Thread-safe after creation.
 *   dc_cloud_handle(client)
 *       The calling thread's own CURL handle for this client, created on first
 *       use and kept (with its connections and TLS sessions) until the thread
 *       exits or the client is destroyed. A handle made before fork() is never
 *       used in the child (nor closed there: its sockets are the parent's).
 *       Most callers never need it: dc_cloud_perform uses it.
 *   dc_cloud_perform(client, &req, &resp)
 *       One request on the thread's kept-alive handle: method, URL, headers,
 *       body, and an optional sign(baton, curl, &headers) callback that sets
 *       signing options on the handle before each attempt (dc_aws_sign for
 *       SigV4; Azure's Shared Key/SAS). Transport errors, 429 and 5xx are
 *       retried up to opt.retries times with exponential backoff and full
 *       jitter, never past the request's deadline (req.timeout_ms bounds the
 *       whole call, retries included). Returns 0 when a reply came (any status:
 *       resp.status), -1 when none did (resp.error says why, no secrets).
 *       The reply body (bounded by max_body; longer replies fail with
 *       "reply too large") and, when req.want_headers, the reply headers
 *       (lower-case names) are allocated in req.pool.
 *   dc_cloud_mask_uri(p, uri)
 *       uri for messages: the password of a user:password@ part and the value
 *       of every query parameter that may hold a secret (sig, signature,
 *       x-amz-signature, x-amz-security-token, x-amz-credential, sas, token,
 *       key, account_key, secret, password, ...) replaced by "***".
 *   dc_cloud_is_secret_param(name, len)
 *       Whether a query parameter of that name is masked.
 *
 * Never logged by this layer: request headers (Authorization, tokens),
 * request bodies, credentials. Errors name the method, the masked URL and the
 * libcurl reason or the HTTP status.
 */
#ifndef DC_CLOUD_HTTP_H
#define DC_CLOUD_HTTP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <curl/curl.h>
#include <stddef.h>

typedef struct dc_cloud_client dc_cloud_client_t;

typedef struct {
    long connect_timeout_ms; /* default 1000 */
    long timeout_ms;         /* default for requests that give none: 5000 */
    int retries;             /* extra attempts after a retryable failure; default 2 */
    long backoff_base_ms;    /* first backoff (then doubled, full jitter); default 25 */
    long backoff_max_ms;     /* cap of one backoff; default 1000 */
    size_t max_body;         /* largest reply body kept; default 1 MiB */
    const char *ca_file;     /* NULL: the system's CAs */
    const char *user_agent;  /* NULL: "mod_decision/VERSION" */
} dc_cloud_options_t;

/* Fills o with the defaults above. */
void dc_cloud_options_default(dc_cloud_options_t *o);

dc_cloud_client_t *dc_cloud_client_create(apr_pool_t *p, const dc_cloud_options_t *opt, char *err,
                                          size_t err_len);
void dc_cloud_client_destroy(dc_cloud_client_t *c);

/* Sets signing options on curl (called before each attempt, after the
 * request's own options); may append to *headers. 0, or -1 with err filled
 * (then the request fails without being sent). */
typedef int dc_cloud_sign_fn(void *baton, CURL *curl, struct curl_slist **headers, char *err,
                             size_t err_len);

typedef struct {
    apr_pool_t *pool;        /* reply body and headers go here */
    const char *method;      /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL.
                                 * With sign: no "Name:" removal entries (libcurl's
                                 * SigV4 signs them as empty headers the server
                                 * never receives) */
    const char *body;
    size_t body_len;
    long timeout_ms;         /* whole call, retries included; 0: the client's */
    int retries;             /* -1: the client's */
    int want_headers;
    dc_cloud_sign_fn *sign;  /* may be NULL */
    void *sign_baton;
} dc_cloud_request_t;

typedef struct {
    long status;             /* HTTP status, 0 when no reply came */
    char *body;              /* NUL-terminated, may be "" */
    size_t body_len;
    apr_table_t *headers;    /* lower-case names; NULL unless want_headers */
    int attempts;
    char error[256];         /* why perform returned -1 (or the last retried failure) */
} dc_cloud_response_t;

/* Initialises a request with method GET, no body, client defaults. */
void dc_cloud_request_init(dc_cloud_request_t *r, apr_pool_t *pool, const char *method,
                           const char *url);

CURL *dc_cloud_handle(dc_cloud_client_t *c);
int dc_cloud_perform(dc_cloud_client_t *c, const dc_cloud_request_t *req,
                     dc_cloud_response_t *resp);

/* Whether a reply of this status is worth another attempt (429, 500, 502, 503, 504). */
int dc_cloud_status_retryable(long status);

const char *dc_cloud_mask_uri(apr_pool_t *p, const char *uri);
int dc_cloud_is_secret_param(const char *name, size_t len);

#endif

/*
 * dc_objstore: cloud object storage as an event sink, behind one small
 * table of functions, so the shipper knows nothing of S3 or Azure.
 *
 *     s3://BUCKET/PREFIX[?region=R&endpoint=URL&profile=P&…]            (dc_s3.c)
 *     azblob://ACCOUNT/CONTAINER/PREFIX[?endpoint=URL&sas=…|key=…&…]     (dc_azure.c)
 *
 * and the options of both: server=NAME (default: the host name),
 * max_object_bytes=16m (events per object, before compression),
 * interval=5s (least time between two objects while less is ready).
 *
 * The shipper turns ready spool segments into one gzipped JSON-lines object
 * at a time, named by the hour of its first event
 *
 *     PREFIX/YYYY/MM/DD/HH/<server>-<seq>.jsonl.gz
 *
 * and puts it with a Content-MD5 the store checks; the segments are deleted
 * only once the store acknowledged the object. <seq> is the first segment's
 * own name (creation ms, pid, counter, random), so an object sent again after
 * a lost acknowledgement has the same name and overwrites its first copy
 * instead of adding a second one.
 *
 * An operation's outcome is classified so that the log can say what to fix:
 * credentials the store does not accept, a bucket or container that does not
 * exist, credentials that are not allowed to write, or a transient failure.
 * Every failure is retried by the shipper (a misconfigured store keeps the
 * events in the spool until it is fixed); nothing is dead-lettered.
 */
#ifndef DC_OBJSTORE_H
#define DC_OBJSTORE_H

#include "dc_cloud_http.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <stddef.h>

typedef enum {
    DC_OBJ_OK = 0,
    DC_OBJ_TRANSIENT,   /* network, timeout, 5xx, throttling: try again */
    DC_OBJ_CREDENTIALS, /* no credentials, or the store does not accept them */
    DC_OBJ_NOT_FOUND,   /* the bucket / container (or account) does not exist */
    DC_OBJ_PERMISSION,  /* authenticated, but not allowed to do this */
    DC_OBJ_REJECTED     /* any other refusal (a bad digest, a bad request) */
} dc_obj_result_e;

typedef struct {
    dc_obj_result_e result;
    long status;        /* HTTP status, 0 when none came */
    char code[64];      /* the store's error code (NoSuchBucket, AuthenticationFailed), or "" */
    char detail[300];   /* one line for the log; never a secret */
} dc_obj_error_t;

/* What every backend takes from the shipper: libcurl's limits and TLS. */
typedef struct {
    long timeout_ms;
    long connect_timeout_ms;
    const char *ca_file;    /* NULL: the system's CAs */
    const char *user_agent;
} dc_objstore_http_t;

typedef struct dc_objstore dc_objstore_t;

typedef struct {
    const char *scheme; /* "s3", "azblob": also the backend label in the metrics */
    /* Stores data (len bytes, md5 its MD5) under key. DC_OBJ_OK once acknowledged. */
    dc_obj_result_e (*put)(dc_objstore_t *os, const char *key, const void *data, size_t len,
                           const unsigned char md5[16], const char *content_type,
                           dc_obj_error_t *err);
    dc_obj_result_e (*del)(dc_objstore_t *os, const char *key, dc_obj_error_t *err);
    /* Where the credentials come from, for the log (never a secret). */
    void (*describe)(dc_objstore_t *os, char *buf, size_t len);
    void (*close)(dc_objstore_t *os);
} dc_objstore_ops_t;

struct dc_objstore {
    const dc_objstore_ops_t *ops;
    const char *display;    /* the URI as it may be shown: secrets masked */
    const char *where;      /* "bucket B" / "container C of account A", for log lines */
    const char *prefix;     /* key prefix without leading or trailing '/', or "" */
    const char *server;     /* <server> of the object names */
    apr_size_t max_bytes;   /* uncompressed bytes of events per object */
    apr_interval_time_t interval; /* least time between two objects, unless max_bytes are ready */
};

#define DC_OBJSTORE_DEFAULT_MAX_BYTES (16 * 1024 * 1024)
#define DC_OBJSTORE_DEFAULT_INTERVAL apr_time_from_sec(5) /* the spool's segment age */

/* 1 when uri names an object store sink (s3://, azblob://). */
int dc_objstore_is_uri(const char *uri);
/* Parses uri and prepares the backend (no request is made). NULL + err on a bad URI. */
dc_objstore_t *dc_objstore_open(apr_pool_t *p, const char *uri, const dc_objstore_http_t *http,
                                char *err, size_t errlen);
void dc_objstore_close(dc_objstore_t *os);
/* Checks uri's syntax and options without opening anything (no credential
 * lookup, no request): 0, or -1 + err. For the configuration parsers. */
int dc_objstore_check(apr_pool_t *p, const char *uri, char *err, size_t errlen);

/* The object key PREFIX/YYYY/MM/DD/HH/<server>-<seq>.jsonl.gz for an
 * object whose first event is from t (UTC). Returns the length written, or
 * 0 when out is too small. */
size_t dc_objstore_key(char *out, size_t outlen, const char *prefix, apr_time_t t,
                       const char *server, const char *seq);

/* The probe object's key: PREFIX/_probe/<server>-<pid>-<ms>. */
const char *dc_objstore_probe_key(apr_pool_t *p, const dc_objstore_t *os);

/* data as one gzip member in p; NULL when zlib fails. */
void *dc_objstore_gzip(apr_pool_t *p, const void *data, size_t len, size_t *out_len);

const char *dc_obj_result_name(dc_obj_result_e r);


/* ---- for the backends --------------------------------------------------- */

/* s without leading and trailing slashes, in p. */
const char *dc_objstore_prefix(apr_pool_t *p, const char *s);
/* The host name, or "server", reduced to [A-Za-z0-9._-] (at most 63 bytes). */
const char *dc_objstore_default_server(apr_pool_t *p);

/* Splits "a=1&b=2" into a table with %-decoded values; NULL + err when a
 * key is not one of allowed (a NULL-terminated list). */
struct apr_table_t;
struct apr_table_t *dc_objstore_query(apr_pool_t *p, const char *query,
                                      const char *const *allowed, char *err, size_t errlen);
/* Applies the options every sink takes (server=, max_object_bytes=,
 * interval=) from q to os. */
int dc_objstore_common_options(dc_objstore_t *os, apr_pool_t *p, struct apr_table_t *q,
                               char *err, size_t errlen);

/* The HTTP status and the store's error code, classified (S3 and Azure
 * use the same codes for the common cases). */
dc_obj_result_e dc_objstore_classify(long status, const char *code);
/* The text of <Code>…</Code> in an XML error body, into code. */
void dc_objstore_xml_code(const char *body, size_t len, char *code, size_t codelen);
/* A cloud client (dc_cloud_http.h: kept-alive handle per thread, one quick
 * retry of a transient failure) with the shipper's limits. */
dc_cloud_client_t *dc_objstore_client(apr_pool_t *p, const dc_objstore_http_t *http, char *err,
                                      size_t errlen);

/* One request of a backend. */
typedef struct {
    const char *method;               /* "PUT", "DELETE" */
    const char *url;
    const char *const *headers;       /* "Name: value" lines, n_headers of them */
    size_t n_headers;
    const char *body;                 /* PUT: the object */
    size_t len;
    dc_cloud_sign_fn *sign;           /* dc_aws_sign for S3; NULL */
    void *sign_baton;
} dc_objstore_req_t;

typedef struct {
    char md5[64];                     /* the Content-MD5 answered, or "" */
    char etag[80];                    /* the ETag answered, or "" */
} dc_objstore_resp_t;

/* Performs req (allocating in p; resp may be NULL); the outcome is classified from the
 * status and the error code (x-ms-error-code header or <Code> of the body). */
dc_obj_result_e dc_objstore_perform(dc_cloud_client_t *client, apr_pool_t *p,
                                    const dc_objstore_req_t *req, dc_objstore_resp_t *resp,
                                    dc_obj_error_t *err);

/* Percent-encodes a key for a URL path: unreserved bytes and '/' as they are. */
const char *dc_objstore_escape_path(apr_pool_t *p, const char *key);

#endif

/*
 * The DynamoDB store: sticky assignments in the Flagship decision-api's own
 * DynamoDB item layout, so a table written by either server serves the other.
 *
 * URI: dynamo://TABLE[?options]
 * options: region, endpoint (http[s]://host[:port], for DynamoDB Local,
 * dynalite or a VPC endpoint), profile (shared-files profile), pk_field (the
 * partition key attribute, default "id"), pk_separator (default "."),
 * get_timeout_ms (GetItem, default 1000 as the decision-api's
 * dynamoGetTimeout), timeout_ms (UpdateItem, default 1000), ttl_days (the TTL
 * attribute "d", default: 6 months as the decision-api), max_backoff_ms
 * (default 5000). Values are %-decoded. Credentials, region and endpoint
 * otherwise come from the AWS chain (dc_aws.h).
 *
 * Layout (spec/DECISION-API.md 6): one item per id, partition key
 * pk_field = env_id + pk_separator + id (a string); one string attribute per
 * variation group id, "<variation>" or "<variation>:1" once activated; a
 * number attribute "d" = the save time + 6 months in Unix seconds (use it as
 * the table's TTL attribute). A load is one GetItem (eventually consistent,
 * as the decision-api's); a save is one UpdateItem "SET d = :d, #g0 = :v0,
 * ..." (attribute names go through ExpressionAttributeNames, so any variation
 * group id is safe): DynamoDB merges by itself, other groups' attributes stay.
 * The record's timestamp is read back as d - 6 months (the layout keeps no
 * other). A variation group named like the key attribute or "d" cannot be
 * stored and is skipped with a log line.
 *
 * Connections. Requests go through dc_cloud_http: each thread keeps its own
 * libcurl handle, so its HTTPS connection (and TLS session) to DynamoDB is
 * reused from one request to the next. Signing is SigV4 with the chain's
 * credentials, refreshed off the request path.
 *
 * Failures, as the Redis store: a transport error, a timeout, a 5xx or a
 * refusal that is about the table or the credentials (not one item) opens a
 * backoff window (100 ms, doubling to max_backoff_ms) during which load and
 * save return DC_STORE_UNAVAILABLE at once, so an unreachable or stalled
 * DynamoDB costs at most one timeout per window; the engine then decides from
 * the hash alone. When the window ends one request probes while the others
 * keep skipping (dc_store_outage_t, shared with the Redis store). The metered
 * store wrapper logs the state change once (DC10801/DC10802); this file logs
 * the detail at debug level. Saves that found DynamoDB unavailable are kept
 * (up to DC_STORE_MAX_PENDING, 1 MB, as Redis's) and written again once it
 * answers, a few per successful call so no request pays for the whole queue,
 * with "SET #g = if_not_exists(#g, :v)": they only fill attributes the item
 * lacks, so a newer assignment another server made meanwhile wins.
 *
 * Untrusted replies: bounded (512 KiB, above DynamoDB's 400 KB item limit),
 * parsed with jansson, every attribute's type checked; attributes that are
 * not assignments are skipped with a log line (at most one a minute).
 */
#include "dc_aws.h"
#include "dc_buf.h"
#include "dc_cloud_http.h"
#include "dc_log.h"
#include "dc_store.h"
#include "dc_uri.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DYNAMO_DEFAULT_TABLE "visitor-assignments"
#define DYNAMO_DEFAULT_GET_TIMEOUT_MS 1000
#define DYNAMO_DEFAULT_TIMEOUT_MS 1000
#define DYNAMO_DEFAULT_MAX_BACKOFF_MS 5000
#define DYNAMO_MAX_REPLY (512 * 1024)
#define DYNAMO_REPLAY_PER_CALL 2 /* a request pays for at most two more round trips */
#define DYNAMO_TTL_MONTHS 6

typedef struct {
    /* Settings, fixed after open. */
    char *table, *pk_field, *sep;
    size_t pk_field_len, sep_len;
    long get_timeout_ms, timeout_ms;
    long ttl_days; /* 0: 6 months */
    char *url;   /* endpoint + "/" */
    char *where; /* "TABLE in REGION at ENDPOINT", no secrets */
    dc_aws_t *aws;
    dc_cloud_client_t *client;
    /* Under mutex: */
    apr_thread_mutex_t *mutex;
    pid_t pid;
    dc_store_outage_t outage; /* pending: UpdateItem bodies in the if_not_exists form */
    dc_store_log_limit_t bad_data_log;
    size_t replayed;
} dynamo_store_t;

static const char *const target_get = "X-Amz-Target: DynamoDB_20120810.GetItem";
static const char *const target_update = "X-Amz-Target: DynamoDB_20120810.UpdateItem";

static void log_bad_data(dynamo_store_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_bad_data(dynamo_store_t *d, const char *fmt, ...)
{
    char msg[500];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    apr_thread_mutex_lock(d->mutex);
    dc_store_log_limited(&d->bad_data_log, DC_LOG_WARN, "%s", msg);
    apr_thread_mutex_unlock(d->mutex);
}

/* May this call go to DynamoDB? No while a backoff window is open; when it
 * ends, this call probes and the window is pushed on for the others. */
static int may_call(dynamo_store_t *d)
{
    int ok;

    apr_thread_mutex_lock(d->mutex);
    if (d->pid != getpid()) {
        /* forked without child_init: the parent replays its own queue */
        dc_store_outage_drop_queue(&d->outage);
        d->pid = getpid();
    }
    ok = dc_store_outage_may_try(&d->outage, apr_time_now());
    apr_thread_mutex_unlock(d->mutex);
    return ok;
}

/* The store as a whole is failing: back off. The operator's line is the store
 * state change (DC10801, with this detail); this one is for debugging. */
static void fail(dynamo_store_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(dynamo_store_t *d, const char *fmt, ...)
{
    char why[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    apr_thread_mutex_lock(d->mutex);
    if (dc_store_outage_fail(&d->outage, apr_time_now(), "%s", why))
        dc_log(DC_LOG_DEBUG,
               DCLOGNO(11360) "store dynamo %s: %s; decisions use the hash alone, retrying with "
                              "backoff",
               d->where, why);
    apr_thread_mutex_unlock(d->mutex);
}

static int perform(dynamo_store_t *d, apr_pool_t *p, const char *target, const char *body,
                   size_t len, long timeout_ms, dc_cloud_response_t *resp)
{
    const char *headers[] = {"Content-Type: application/x-amz-json-1.0", target, NULL};
    dc_cloud_request_t req;

    dc_cloud_request_init(&req, p, "POST", d->url);
    req.headers = headers;
    req.body = body;
    req.body_len = len;
    req.timeout_ms = timeout_ms;
    req.retries = 1;
    req.sign = dc_aws_sign;
    req.sign_baton = d->aws;
    return dc_cloud_perform(d->client, &req, resp);
}

/* The "__type" of an error reply, without its "com.amazonaws...#" prefix. */
static const char *error_type(apr_pool_t *p, const dc_cloud_response_t *resp, const char **msg)
{
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *type = "", *hash;
    json_t *t, *m;

    *msg = "";
    if (json_is_object(root)) {
        t = json_object_get(root, "__type");
        m = json_object_get(root, "message");
        if (!m)
            m = json_object_get(root, "Message");
        if (json_is_string(t)) {
            type = json_string_value(t);
            hash = strrchr(type, '#');
            type = apr_pstrndup(p, hash ? hash + 1 : type, 80);
        }
        if (json_is_string(m))
            *msg = apr_pstrndup(p, json_string_value(m), 160);
    }
    json_decref(root);
    return type;
}

/* Classifies a failed call: returns 1 when the store as a whole is failing
 * (backoff), 0 when only this item was refused. */
static int failed(dynamo_store_t *d, apr_pool_t *p, const char *op, int rc,
                  const dc_cloud_response_t *resp, size_t key_len)
{
    const char *type, *msg;

    if (rc < 0) {
        fail(d, "%s: %s", op, resp->error);
        return 1;
    }
    type = error_type(p, resp, &msg);
    if (resp->status == 400 && strcmp(type, "ValidationException") == 0) {
        log_bad_data(d,
                     DCLOGNO(11361) "store dynamo %s: %s of a %zu-byte key refused: %s: %s",
                     d->where, op, key_len, type, msg);
        return 0;
    }
    fail(d, "%s: HTTP %ld%s%s%s%s", op, resp->status, *type ? " " : "", type, *msg ? ": " : "",
         msg);
    return 1;
}

static void replay(dynamo_store_t *d, apr_pool_t *p);

static void succeed(dynamo_store_t *d, apr_pool_t *p)
{
    int replay_now;

    apr_thread_mutex_lock(d->mutex);
    if (dc_store_outage_ok(&d->outage))
        dc_log(DC_LOG_DEBUG, DCLOGNO(11362) "store dynamo %s: answering again", d->where);
    replay_now = d->outage.pending != NULL;
    apr_thread_mutex_unlock(d->mutex);
    if (replay_now)
        replay(d, p);
}

/* Writes a few of the saves queued during an outage, so no request pays for all. */
static void replay(dynamo_store_t *d, apr_pool_t *p)
{
    dc_store_pending_t *batch;
    size_t n, done = 0;

    apr_thread_mutex_lock(d->mutex);
    batch = dc_store_outage_take(&d->outage, DYNAMO_REPLAY_PER_CALL, &n);
    apr_thread_mutex_unlock(d->mutex);
    while (batch) {
        dc_store_pending_t *e = batch;
        dc_cloud_response_t resp;
        int rc = perform(d, p, target_update, e->data, e->len, d->timeout_ms, &resp);

        if ((rc < 0 || resp.status != 200) && failed(d, p, "UpdateItem (replay)", rc, &resp, 0)) {
            /* the outage is not over: the rest goes back in front */
            apr_thread_mutex_lock(d->mutex);
            dc_store_outage_requeue(&d->outage, batch);
            apr_thread_mutex_unlock(d->mutex);
            return;
        }
        done += rc == 0 && resp.status == 200;
        batch = e->next;
        free(e);
    }
    apr_thread_mutex_lock(d->mutex);
    d->replayed += done;
    if (!d->outage.pending) {
        if (d->replayed)
            dc_log(DC_LOG_INFO,
                   DCLOGNO(11363) "store dynamo %s: %zu save(s) made while it was unavailable "
                                  "written (attributes the items already had were kept)%s",
                   d->where, d->replayed,
                   d->outage.pending_dropped ? ", more were left out (queue full)" : "");
        d->replayed = 0;
        d->outage.pending_dropped = 0;
    }
    apr_thread_mutex_unlock(d->mutex);
}

static void queue_for_replay(dynamo_store_t *d, const char *body, size_t len)
{
    dc_store_pending_t *e = dc_store_pending_new(body, len, 1);
    int queued;

    apr_thread_mutex_lock(d->mutex);
    queued = d->pid == getpid() && dc_store_outage_queue(&d->outage, e) == 0;
    apr_thread_mutex_unlock(d->mutex);
    if (!queued)
        free(e);
}

static void put_key(dc_buf_t *b, const dynamo_store_t *d, const char *env_id, const char *id,
                    size_t id_len)
{
    char *key;
    size_t elen = strlen(env_id), klen = elen + d->sep_len + id_len;
    apr_pool_t *p = b->pool;

    key = apr_palloc(p, klen);
    memcpy(key, env_id, elen);
    memcpy(key + elen, d->sep, d->sep_len);
    memcpy(key + elen + d->sep_len, id, id_len);
    dc_buf_puts(b, "{\"TableName\":");
    dc_json_put_string(b, d->table, strlen(d->table));
    dc_buf_puts(b, ",\"Key\":{");
    dc_json_put_string(b, d->pk_field, d->pk_field_len);
    dc_buf_puts(b, ":{\"S\":");
    dc_json_put_string(b, key, klen);
    dc_buf_puts(b, "}}");
}

/* "<variation>" or "<variation>:1" (":0" read as not activated). */
int dc_store_dynamo_decode_value(const char *v, size_t len, size_t *var_len, int *activated)
{
    *activated = 0;
    if (len >= 2 && v[len - 2] == ':' && (v[len - 1] == '1' || v[len - 1] == '0')) {
        *activated = v[len - 1] == '1';
        len -= 2;
    }
    if (len == 0 || len > DC_STORE_MAX_FIELD_LEN)
        return -1;
    *var_len = len;
    return 0;
}

/* d (Unix seconds, save time + months) back to the save time in ms. */
static int64_t save_time_of(const char *n, long ttl_days)
{
    char *end;
    long long secs = strtoll(n, &end, 10);
    time_t t;
    struct tm tm;

    if (end == n || (*end && *end != '.') || secs <= 0 || secs > 253402300799LL)
        return 0;
    if (ttl_days)
        return (int64_t)(secs - ttl_days * 86400LL) * 1000;
    t = (time_t)secs;
    gmtime_r(&t, &tm);
    tm.tm_mon -= DYNAMO_TTL_MONTHS;
    return (int64_t)timegm(&tm) * 1000;
}

/* Fills out from a GetItem reply's "Item"; returns the count of attributes skipped. */
int dc_store_dynamo_decode_item(apr_pool_t *p, const char *pk_field, const char *body,
                                size_t len, long ttl_days, dc_assignments_t *out)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *item, *attr;
    const char *name;
    int garbage = 0;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    item = json_object_get(root, "Item");
    if (!item) {
        json_decref(root);
        return 0; /* no such item */
    }
    if (!json_is_object(item)) {
        json_decref(root);
        return -1;
    }
    json_object_foreach(item, name, attr)
    {
        json_t *s = json_object_get(attr, "S");
        size_t name_len = strlen(name), var_len;
        int activated;

        if (strcmp(name, pk_field) == 0)
            continue;
        if (strcmp(name, "d") == 0) {
            json_t *n = json_object_get(attr, "N");

            if (json_is_string(n))
                out->ts_ms = save_time_of(json_string_value(n), ttl_days);
            else
                garbage++;
            continue;
        }
        if (!json_is_object(attr) || json_object_size(attr) != 1 || !json_is_string(s) ||
            name_len == 0 || name_len > DC_STORE_MAX_FIELD_LEN ||
            dc_store_dynamo_decode_value(json_string_value(s), json_string_length(s), &var_len,
                                         &activated) < 0) {
            garbage++;
            continue;
        }
        if (out->n >= DC_STORE_MAX_ASSIGNMENTS) {
            garbage++;
            continue;
        }
        /* an item's attribute names are distinct */
        dc_assignment_put(p, dc_assignments_append(p, out, name, name_len), json_string_value(s),
                          var_len, activated);
    }
    json_decref(root);
    return garbage;
}

static dc_store_status_e dynamo_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                     const char *id, size_t id_len, dc_assignments_t *out)
{
    dynamo_store_t *d = s->impl;
    dc_cloud_response_t resp;
    dc_buf_t b;
    int rc, garbage;

    if (!may_call(d))
        return DC_STORE_UNAVAILABLE;
    dc_buf_init(&b, p, 128 + id_len);
    put_key(&b, d, env_id, id, id_len);
    dc_buf_putc(&b, '}');
    rc = perform(d, p, target_get, dc_buf_cstr(&b), b.len, d->get_timeout_ms, &resp);
    if (rc < 0 || resp.status != 200) {
        failed(d, p, "GetItem", rc, &resp, id_len);
        return DC_STORE_UNAVAILABLE;
    }
    succeed(d, p);
    garbage = dc_store_dynamo_decode_item(p, d->pk_field, resp.body, resp.body_len, d->ttl_days,
                                          out);
    if (garbage < 0) {
        memset(out, 0, sizeof(*out));
        log_bad_data(d, DCLOGNO(11364) "store dynamo %s: GetItem answered something that is not "
                                       "an item; ignored",
                     d->where);
        return DC_STORE_NOT_FOUND;
    }
    if (garbage)
        log_bad_data(d,
                     DCLOGNO(11365) "store dynamo %s: %d attribute(s) of a visitor item are not "
                                    "valid assignments (or over the limit of %d); ignored",
                     d->where, garbage, DC_STORE_MAX_ASSIGNMENTS);
    return out->n ? DC_STORE_OK : DC_STORE_NOT_FOUND;
}

/* The UpdateItem body; keep_existing: the replay form (if_not_exists). */
static char *update_body(dynamo_store_t *d, apr_pool_t *p, const char *env_id, const char *id,
                         size_t id_len, const dc_assignments_t *changes, int64_t now_ms,
                         int keep_existing, size_t *len, size_t *skipped)
{
    size_t n = changes->n > DC_STORE_MAX_ASSIGNMENTS ? DC_STORE_MAX_ASSIGNMENTS : changes->n;
    long long expires;
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    dc_buf_t b;

    if (d->ttl_days) {
        expires = (long long)t + d->ttl_days * 86400LL;
    } else {
        gmtime_r(&t, &tm);
        tm.tm_mon += DYNAMO_TTL_MONTHS; /* Go's AddDate(0, 6, 0), normalised the same way */
        expires = (long long)timegm(&tm);
    }
    *skipped = 0;
    dc_buf_init(&b, p, 256 + id_len + n * 96);
    put_key(&b, d, env_id, id, id_len);
    dc_buf_puts(&b, ",\"UpdateExpression\":\"SET #d = :d");
    for (size_t i = 0; i < n; i++) {
        const dc_assignment_t *a = &changes->items[i];

        if ((a->vg_id_len == 1 && a->vg_id[0] == 'd') ||
            (a->vg_id_len == d->pk_field_len && memcmp(a->vg_id, d->pk_field, a->vg_id_len) == 0)) {
            (*skipped)++;
            continue;
        }
        if (keep_existing)
            dc_buf_printf(&b, ", #g%zu = if_not_exists(#g%zu, :v%zu)", i, i, i);
        else
            dc_buf_printf(&b, ", #g%zu = :v%zu", i, i);
    }
    dc_buf_puts(&b, "\",\"ExpressionAttributeNames\":{\"#d\":\"d\"");
    for (size_t i = 0; i < n; i++) {
        const dc_assignment_t *a = &changes->items[i];

        if ((a->vg_id_len == 1 && a->vg_id[0] == 'd') ||
            (a->vg_id_len == d->pk_field_len && memcmp(a->vg_id, d->pk_field, a->vg_id_len) == 0))
            continue;
        dc_buf_printf(&b, ",\"#g%zu\":", i);
        dc_json_put_string(&b, a->vg_id, a->vg_id_len);
    }
    dc_buf_printf(&b, "},\"ExpressionAttributeValues\":{\":d\":{\"N\":\"%lld\"}", expires);
    for (size_t i = 0; i < n; i++) {
        const dc_assignment_t *a = &changes->items[i];
        char *v;

        if ((a->vg_id_len == 1 && a->vg_id[0] == 'd') ||
            (a->vg_id_len == d->pk_field_len && memcmp(a->vg_id, d->pk_field, a->vg_id_len) == 0))
            continue;
        v = apr_palloc(p, a->variation_id_len + 3);
        memcpy(v, a->variation_id, a->variation_id_len);
        memcpy(v + a->variation_id_len, ":1", a->activated ? 2 : 0);
        dc_buf_printf(&b, ",\":v%zu\":{\"S\":", i);
        dc_json_put_string(&b, v, a->variation_id_len + (a->activated ? 2 : 0));
        dc_buf_putc(&b, '}');
    }
    dc_buf_puts(&b, "}}");
    *len = b.len;
    return (char *)dc_buf_cstr(&b);
}

static dc_store_status_e dynamo_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                     const char *id, size_t id_len,
                                     const dc_assignments_t *changes, int64_t now_ms)
{
    dynamo_store_t *d = s->impl;
    dc_cloud_response_t resp;
    size_t len, skipped;
    char *body = update_body(d, p, env_id, id, id_len, changes, now_ms, 0, &len, &skipped);
    int rc;

    if (skipped)
        log_bad_data(d,
                     DCLOGNO(11366) "store dynamo %s: %zu variation group id(s) named like the "
                                    "key attribute or \"d\" cannot be stored; skipped",
                     d->where, skipped);
    if (!may_call(d)) {
        size_t rlen;
        char *rbody = update_body(d, p, env_id, id, id_len, changes, now_ms, 1, &rlen, &skipped);

        queue_for_replay(d, rbody, rlen);
        return DC_STORE_UNAVAILABLE;
    }
    rc = perform(d, p, target_update, body, len, d->timeout_ms, &resp);
    if (rc < 0 || resp.status != 200) {
        if (failed(d, p, "UpdateItem", rc, &resp, id_len)) {
            size_t rlen;
            char *rbody =
                update_body(d, p, env_id, id, id_len, changes, now_ms, 1, &rlen, &skipped);

            queue_for_replay(d, rbody, rlen);
        }
        return DC_STORE_UNAVAILABLE;
    }
    succeed(d, p);
    return DC_STORE_OK;
}

static dc_store_health_e dynamo_health(dc_store_t *s, const char **detail)
{
    static _Thread_local char buf[700];
    dynamo_store_t *d = s->impl;
    char creds[200];
    int failing;

    dc_aws_describe(d->aws, creds, sizeof(creds));
    apr_thread_mutex_lock(d->mutex);
    failing = d->outage.failing;
    if (failing) {
        char why[360];

        dc_store_outage_describe(&d->outage, apr_time_now(), why, sizeof(why));
        snprintf(buf, sizeof(buf), "dynamo %s: %s; %s", d->where, why, creds);
    } else {
        snprintf(buf, sizeof(buf), "dynamo %s: ok; %s%s", d->where, creds,
                 d->outage.n_pending ? "; replaying saves" : "");
    }
    apr_thread_mutex_unlock(d->mutex);
    *detail = buf;
    return failing ? DC_STORE_HEALTH_DEGRADED : DC_STORE_HEALTH_OK;
}

static void dynamo_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    dynamo_store_t *d = s->impl;

    dc_aws_child_init(d->aws, pchild);
    dc_store_outage_drop_queue(&d->outage); /* the parent replays its own */
    d->pid = getpid();
}

static void dynamo_close(dc_store_t *s)
{
    dynamo_store_t *d = s->impl;

    if (!d)
        return;
    apr_thread_mutex_lock(d->mutex);
    dc_store_outage_drop_queue(&d->outage);
    apr_thread_mutex_unlock(d->mutex);
}

/* A table name as DynamoDB allows it: 3-255 of [A-Za-z0-9_.-]. */
static int valid_table(const char *t)
{
    size_t n = strlen(t);

    if (n < 3 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && t[i] != '_' && t[i] != '-' && t[i] != '.')
            return 0;
    return 1;
}

/* args->uri: the whole dynamo:// URI. Fills s, or err and returns -1. */
static int dynamo_open(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args, char *err,
                       size_t err_len)
{
    const char *uri = args->uri;
    dynamo_store_t *d = apr_pcalloc(p, sizeof(*d));
    const char *rest = uri + strlen("dynamo://"), *query = strchr(rest, '?');
    dc_aws_options_t ao = {.service = "dynamodb"};
    dc_cloud_options_t co;
    long get_ms = DYNAMO_DEFAULT_GET_TIMEOUT_MS, timeout_ms = DYNAMO_DEFAULT_TIMEOUT_MS,
         max_backoff_ms = DYNAMO_DEFAULT_MAX_BACKOFF_MS;
    const char *masked = dc_cloud_mask_uri(p, uri);

    d->table = dc_uri_percent_decode(p, rest, query ? (size_t)(query - rest) : strlen(rest));
    if (!d->table || !*d->table)
        d->table = DYNAMO_DEFAULT_TABLE;
    if (!valid_table(d->table)) {
        snprintf(err, err_len,
                 "store \"%s\": the table name must be 3 to 255 letters, digits, \"_\", \"-\" or "
                 "\".\"",
                 masked);
        return -1;
    }
    d->pk_field = "id";
    d->sep = ".";
    for (const char *q = query ? query + 1 : NULL;;) {
        dc_uri_option_t o;
        int rc = dc_uri_next_option(&q, &o), bad = 0;
        char *v;

        if (rc == 0)
            break;
        if (rc < 0) {
            snprintf(err, err_len, "store \"%s\": option \"%.*s\" needs a value", masked,
                     (int)o.name_len, o.name);
            return -1;
        }
        v = dc_uri_percent_decode(p, o.value, o.value_len);
        if (!v)
            bad = 1;
        else if (dc_uri_option_is(&o, "region"))
            ao.region = v;
        else if (dc_uri_option_is(&o, "endpoint"))
            ao.endpoint = v;
        else if (dc_uri_option_is(&o, "profile"))
            ao.profile = v;
        else if (dc_uri_option_is(&o, "pk_field"))
            bad = !*(d->pk_field = v) || strlen(v) > 255 || strcmp(v, "d") == 0;
        else if (dc_uri_option_is(&o, "pk_separator"))
            bad = strlen(d->sep = v) > 16;
        else if (dc_uri_option_is(&o, "get_timeout_ms"))
            bad = dc_uri_parse_long(o.value, o.value_len, 1, 60000, &get_ms);
        else if (dc_uri_option_is(&o, "timeout_ms"))
            bad = dc_uri_parse_long(o.value, o.value_len, 1, 60000, &timeout_ms);
        else if (dc_uri_option_is(&o, "ttl_days"))
            bad = dc_uri_parse_long(o.value, o.value_len, 1, 36600, &d->ttl_days);
        else if (dc_uri_option_is(&o, "max_backoff_ms"))
            bad = dc_uri_parse_long(o.value, o.value_len, 100, 3600000, &max_backoff_ms);
        else {
            snprintf(err, err_len,
                     "store \"%s\": unknown option \"%.*s\" (region, endpoint, profile, "
                     "pk_field, pk_separator, get_timeout_ms, timeout_ms, ttl_days, "
                     "max_backoff_ms)",
                     masked, (int)o.name_len, o.name);
            return -1;
        }
        if (bad) {
            snprintf(err, err_len, "store \"%s\": bad value for option \"%.*s\"", masked,
                     (int)o.name_len, o.name);
            return -1;
        }
    }
    d->pk_field_len = strlen(d->pk_field);
    d->sep_len = strlen(d->sep);
    d->get_timeout_ms = get_ms;
    d->timeout_ms = timeout_ms;
    d->outage.max_backoff = apr_time_from_msec(max_backoff_ms);
    ao.metadata_timeout_ms = 1000;
    if (!(d->aws = dc_aws_open(p, &ao, err, err_len)))
        return -1;
    dc_cloud_options_default(&co);
    co.connect_timeout_ms = get_ms < timeout_ms ? get_ms : timeout_ms;
    co.max_body = DYNAMO_MAX_REPLY;
    co.retries = 1;
    if (!(d->client = dc_cloud_client_create(p, &co, err, err_len)))
        return -1;
    d->url = apr_pstrcat(p, dc_aws_endpoint(d->aws), "/", NULL);
    d->where = apr_psprintf(p, "%s in %s at %s", d->table, dc_aws_region(d->aws),
                            dc_cloud_mask_uri(p, dc_aws_endpoint(d->aws)));
    if (apr_thread_mutex_create(&d->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        snprintf(err, err_len, "store dynamo: cannot create a mutex");
        return -1;
    }
    d->pid = getpid();
    s->impl = d;
    s->uri = masked;
    return 0;
}

const dc_store_provider_t dc_store_dynamo_provider = {
    .name = "dynamo",
    .open = dynamo_open,
    .load = dynamo_load,
    .save = dynamo_save,
    .health = dynamo_health,
    .child_init = dynamo_child_init,
    .close = dynamo_close,
};

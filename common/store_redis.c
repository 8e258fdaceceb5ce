/*
 * The Redis store: sticky assignments in the Flagship decision-api's own
 * Redis layout, so a Redis written by either server serves the other.
 *
 * URI: redis://[user:password@ | :password@]host[:port][/db][?options]
 *      rediss://... (TLS, when configure found hiredis_ssl)
 * options: timeout_ms (command timeout, default 50), connect_timeout_ms
 * (default: timeout_ms), ttl (seconds, default 7776000 = 90 days, 0 = no
 * expiry), prefix (key prefix, default none), max_backoff_ms (default 5000),
 * client_cache (bytes per process, default 4 MiB, 0 = off: store_redis_cache.h),
 * tls_ca (CA file for rediss). User, password and prefix are %-decoded.
 *
 * Layout (spec/DECISION-API.md 6): one hash per id, key = prefix + id (no
 * environment id: the decision-api has none in its keys; a prefix lets
 * environments share one Redis), one field per variation group id holding
 * {"VariationID":"…","Activated":bool}, and a field "ts" = the save time in
 * Unix milliseconds as a decimal string. A save is HSET of the changed fields
 * and ts followed by EXPIRE, pipelined (one round trip); a load is one
 * HGETALL (none when the client-side cache has the visitor). HSET merges by
 * itself: other variation groups' fields stay.
 * Every argument goes out as a counted binary string (redisCommandArgv), so
 * an id of any bytes is one key and can never become a command.
 *
 * Connections. hiredis contexts are not thread-safe, so a thread takes a
 * context from a small pool of idle ones under a mutex (held only for the
 * pop/push, never across I/O), or connects a new one when the pool is empty,
 * and gives it back after its command. The pool is dropped in a child after
 * fork() (child_init, and a pid check for callers that do not call it).
 *
 * Failures. Connect and command timeouts bound every call. Any I/O error or
 * timeout drops the context (its reply might still arrive later) and opens a
 * backoff window (100 ms, doubling up to max_backoff_ms) during which load
 * and save return DC_STORE_UNAVAILABLE at once, so a dead or stalled Redis
 * costs at most one timeout per window, not one per request; the engine then
 * decides from the hash alone. A failure also bumps a generation number so
 * idle contexts connected before it are not reused (after a Redis restart
 * they are all dead). When the window ends, one request probes with a fresh
 * connection while the others keep skipping. Failures are logged once per
 * streak, recovery once. Error replies (such as WRONGTYPE) keep the
 * connection: the server is fine, the data is not. A pooled connection that
 * the server closed while idle (its "timeout" setting, a proxy) is no outage:
 * the call retries once on a fresh connection.
 *
 * Saves that find Redis unreachable are kept (up to DC_STORE_MAX_PENDING, 1 MB)
 * and sent by the first call that reaches Redis again, as HSETNX: they only
 * fill fields Redis lacks, so a newer assignment another server made during
 * the outage always wins. That one call pays for the pipelined replay (a few
 * milliseconds for a full queue), once per outage.
 *
 * Untrusted replies. Every reply's type is checked; HGETALL is read up to
 * DC_STORE_MAX_ASSIGNMENTS fields; fields whose name or value is not a valid
 * assignment are skipped with a log line (at most one a minute). hiredis
 * 0.14 itself does not bound the size of one bulk reply: the Redis server is
 * the operator's.
 */
#include "dc_store.h"
#include "dc_log.h"
#include "dc_uri.h"
#include "store_redis_cache.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef DC_HAVE_HIREDIS_SSL
#include <hiredis/hiredis_ssl.h>
#endif

#define REDIS_DEFAULT_PORT 6379
#define REDIS_DEFAULT_TIMEOUT_MS 50
#define REDIS_DEFAULT_TTL_S 7776000L /* 2160h, the decision-api's default */
#define REDIS_DEFAULT_MAX_BACKOFF_MS 5000
#define REDIS_MAX_IDLE 256 /* more than any server's threads: excess ones are closed */
#define REDIS_DEFAULT_CLIENT_CACHE (4L * 1024 * 1024) /* bytes per process */

typedef struct conn conn_t;
struct conn {
    conn_t *next;
    redisContext *ctx;
    apr_uint32_t generation;
    int reused;        /* taken from the idle pool, not connected for this call */
    uint32_t tracking; /* the cache's subscription generation it redirects to; 0: none */
    int watched;       /* by the cache, which sets closed when the server closes it */
    int closed;
};

typedef struct {
    /* Settings, fixed after open. */
    char *host;
    int port;
    char *user, *password; /* NULL when absent */
    long db;
    int tls;
    char *tls_ca;
    struct timeval connect_tv, command_tv;
    long ttl_s;
    char *prefix;
    size_t prefix_len;
    char *where; /* "host:port/db" for messages, no secrets */
    long client_cache_bytes;
    redis_cache_t *cache; /* NULL: off */
#ifdef DC_HAVE_HIREDIS_SSL
    redisSSLContext *ssl;
#endif
    /* Under mutex: */
    apr_thread_mutex_t *mutex;
    conn_t *idle;
    size_t n_idle;
    apr_uint32_t generation;
    pid_t pid;
    /* backoff, and the saves that found Redis unreachable (RESP commands, as
     * redisFormatCommandArgv makes them; n = their count), replayed when it answers */
    dc_store_outage_t outage;
    dc_store_log_limit_t bad_data_log; /* garbage fields, wrong key types */
} redis_store_t;

static void close_conn(redis_store_t *r, conn_t *c)
{
    if (c->watched)
        redis_cache_unwatch(r->cache, c->ctx->fd);
    redisFree(c->ctx);
    free(c);
}

static void free_conns(redis_store_t *r, conn_t *c)
{
    while (c) {
        conn_t *next = c->next;

        close_conn(r, c);
        c = next;
    }
}

/* Records a failure and opens (or widens) the backoff window. Call without the mutex. */
static void fail(redis_store_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(redis_store_t *r, const char *fmt, ...)
{
    conn_t *stale;
    char why[300];
    va_list ap;
    int first;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    apr_thread_mutex_lock(r->mutex);
    first = dc_store_outage_fail(&r->outage, apr_time_now(), "%s", why);
    r->generation++;
    stale = r->idle;
    r->idle = NULL;
    r->n_idle = 0;
    /* the operator's line is the store state change (DC10801, once for all
     * processes, with this detail); this one tells which process saw what */
    if (first)
        dc_log(DC_LOG_DEBUG,
               DCLOGNO(10330) "store redis %s: %s; decisions use the hash alone, retrying with "
                              "backoff",
               r->where, why);
    apr_thread_mutex_unlock(r->mutex);
    free_conns(r, stale);
}

static void log_bad_data(redis_store_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_bad_data(redis_store_t *r, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    apr_thread_mutex_lock(r->mutex);
    dc_store_log_limited(&r->bad_data_log, DC_LOG_WARN, "%s", msg);
    apr_thread_mutex_unlock(r->mutex);
}

static conn_t *acquire(redis_store_t *r, int fresh);
static void release(redis_store_t *r, conn_t *c);
static void broken(redis_store_t *r, conn_t *c, const char *what);

/* Sends the saves queued during an outage on the connection that just worked. */
static void replay(redis_store_t *r, dc_store_pending_t *list, size_t n, unsigned dropped)
{
    conn_t *c = acquire(r, 0);
    int n_commands = 0, failed = 0;

    if (!c) {
        dc_store_pending_free(list);
        return;
    }
    for (dc_store_pending_t *p = list; p; p = p->next) {
        redisAppendFormattedCommand(c->ctx, p->data, p->len);
        n_commands += p->n;
    }
    for (int i = 0; i < n_commands; i++) {
        redisReply *reply = NULL;

        if (redisGetReply(c->ctx, (void **)&reply) != REDIS_OK || !reply) {
            failed = 1;
            break;
        }
        freeReplyObject(reply);
    }
    dc_store_pending_free(list);
    if (failed) {
        broken(r, c, "replaying saves");
        return;
    }
    release(r, c);
    dc_log(DC_LOG_INFO,
           DCLOGNO(10335) "store redis %s: %zu save(s) made while it was unreachable written "
                          "(fields Redis already had were kept)%s",
           r->where, n, dropped ? ", more were left out (queue full)" : "");
}

static void succeed(redis_store_t *r)
{
    dc_store_pending_t *list = NULL;
    size_t n = 0;
    unsigned dropped = 0;

    apr_thread_mutex_lock(r->mutex);
    if (dc_store_outage_ok(&r->outage)) {
        dc_log(DC_LOG_INFO, DCLOGNO(10331) "store redis %s: connected again", r->where);
        list = dc_store_outage_take(&r->outage, 0, &n);
        dropped = r->outage.pending_dropped;
        r->outage.pending_dropped = 0;
    }
    apr_thread_mutex_unlock(r->mutex);
    if (list)
        replay(r, list, n, dropped);
}

/* Sends the pipelined commands already appended and checks that each reply is
 * a status "OK". Returns 0, or -1 with a message in why. */
static int expect_ok_replies(redisContext *c, int n, const char *const *names, char *why,
                             size_t why_len)
{
    int rc = 0;

    for (int i = 0; i < n; i++) {
        redisReply *reply = NULL;

        if (redisGetReply(c, (void **)&reply) != REDIS_OK || !reply) {
            snprintf(why, why_len, "%s: %s", names[i], c->errstr[0] ? c->errstr : "no reply");
            return -1;
        }
        if (rc == 0 && (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "OK") != 0)) {
            snprintf(why, why_len, "%s refused: %.80s", names[i],
                     reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                                    : "unexpected reply");
            rc = -1;
        }
        freeReplyObject(reply);
    }
    return rc;
}

static redisContext *connect_one(redis_store_t *r, char *why, size_t why_len)
{
    redisContext *c = redisConnectWithTimeout(r->host, r->port, r->connect_tv);
    const char *names[2];
    int n = 0;

    if (!c) {
        snprintf(why, why_len, "cannot allocate a connection");
        return NULL;
    }
    if (c->err) {
        snprintf(why, why_len, "connect: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, r->command_tv) != REDIS_OK) {
        snprintf(why, why_len, "cannot set the timeout: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    redisEnableKeepAlive(c);
#ifdef DC_HAVE_HIREDIS_SSL
    if (r->tls && redisInitiateSSLWithContext(c, r->ssl) != REDIS_OK) {
        snprintf(why, why_len, "TLS: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
#endif
    if (r->password) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int argc = 1;

        if (r->user) {
            argv[argc] = r->user;
            lens[argc++] = strlen(r->user);
        }
        argv[argc] = r->password;
        lens[argc++] = strlen(r->password);
        redisAppendCommandArgv(c, argc, argv, lens);
        names[n++] = "AUTH";
    }
    if (r->db) {
        char db[24];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, 0};

        lens[1] = (size_t)snprintf(db, sizeof(db), "%ld", r->db);
        redisAppendCommandArgv(c, 2, argv, lens);
        names[n++] = "SELECT";
    }
    if (n && expect_ok_replies(c, n, names, why, why_len) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static redisContext *connect_for_cache(void *baton, char *why, size_t why_len)
{
    return connect_one(baton, why, why_len);
}

/* A connection for one command, or NULL while Redis is failing (then at once).
 * fresh: connect a new one even when idle ones are pooled. */
static conn_t *acquire(redis_store_t *r, int fresh)
{
    conn_t *c = NULL, *stale = NULL;
    apr_uint32_t generation;
    char why[160];

    apr_thread_mutex_lock(r->mutex);
    if (r->pid != getpid()) {
        /* Forked without child_init: the parent's sockets are not ours to use. */
        stale = r->idle;
        r->idle = NULL;
        r->n_idle = 0;
        r->pid = getpid();
    }
    if (r->outage.failing && apr_time_now() < r->outage.retry_at) {
        apr_thread_mutex_unlock(r->mutex);
        free_conns(r, stale);
        return NULL;
    }
    while (r->idle && !fresh && !c) {
        c = r->idle;
        r->idle = c->next;
        r->n_idle--;
        c->reused = 1;
        if (__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE)) {
            /* the server closed it while it was idle (the cache saw it) */
            c->next = stale;
            stale = c;
            c = NULL;
        }
    }
    if (!c) /* while failing, this request probes; the others keep skipping until it reports */
        dc_store_outage_may_try(&r->outage, apr_time_now());
    generation = r->generation;
    apr_thread_mutex_unlock(r->mutex);
    free_conns(r, stale);
    if (c)
        return c;

    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ctx = connect_one(r, why, sizeof(why));
    if (!c->ctx) {
        free(c);
        fail(r, "%s", why);
        return NULL;
    }
    c->generation = generation;
    return c;
}

static void release(redis_store_t *r, conn_t *c)
{
    apr_thread_mutex_lock(r->mutex);
    if (c->generation == r->generation && r->pid == getpid() && r->n_idle < REDIS_MAX_IDLE &&
        !__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE)) {
        c->next = r->idle;
        r->idle = c;
        r->n_idle++;
        c = NULL;
    }
    apr_thread_mutex_unlock(r->mutex);
    if (c)
        close_conn(r, c);
}

/* A pooled connection that the server (its "timeout" setting) or a proxy closed
 * while it sat idle is no outage: the caller retries once on a fresh one. A
 * timeout is never retried, so a stalled Redis still costs one timeout. */
static int closed_while_idle(const conn_t *c, int err_no)
{
    int reset = c->ctx->err == REDIS_ERR_IO && (err_no == ECONNRESET || err_no == EPIPE);

    return c->reused && (c->ctx->err == REDIS_ERR_EOF || reset);
}

/* The connection broke or timed out: drop it and back off. */
static void broken(redis_store_t *r, conn_t *c, const char *what)
{
    char why[160];

    snprintf(why, sizeof(why), "%s: %s", what, c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
    close_conn(r, c);
    fail(r, "%s", why);
}

static char *make_key(apr_pool_t *p, const redis_store_t *r, const char *id, size_t id_len,
                      size_t *len)
{
    char *key = apr_palloc(p, r->prefix_len + id_len + 1);

    memcpy(key, r->prefix, r->prefix_len);
    memcpy(key + r->prefix_len, id, id_len);
    key[r->prefix_len + id_len] = '\0';
    *len = r->prefix_len + id_len;
    return key;
}

static int parse_ts(const redisReply *v, int64_t *out)
{
    long long ms = 0;

    if (v->len == 0 || v->len > 19)
        return -1;
    for (size_t i = 0; i < v->len; i++) {
        if (!isdigit((unsigned char)v->str[i]))
            return -1;
        ms = ms * 10 + (v->str[i] - '0');
    }
    *out = ms;
    return 0;
}

/*
 * HGETALL on c; first, when the cache is on and c does not yet redirect its
 * invalidations to the cache's current subscription, CLIENT TRACKING in the
 * same round trip (c is watched before, so that its loss is never missed).
 * NULL on an I/O error; an error answer to CLIENT TRACKING goes to why.
 */
static redisReply *command_tracked(redis_store_t *r, conn_t *c, const redis_cache_ticket_t *t,
                                   const char **argv, const size_t *lens, char *why,
                                   size_t why_len)
{
    redisReply *tracking = NULL, *reply = NULL;
    int track = t->track && c->tracking != t->generation;

    if (track) {
        char id[24];
        const char *targv[5] = {"CLIENT", "TRACKING", "on", "REDIRECT", id};
        size_t tlens[5] = {6, 8, 2, 8, 0};

        if (!c->watched) {
            redis_cache_watch(r->cache, c->ctx->fd, &c->closed);
            c->watched = 1;
        }
        tlens[4] = (size_t)snprintf(id, sizeof(id), "%lld", t->redirect_id);
        redisAppendCommandArgv(c->ctx, 5, targv, tlens);
    }
    redisAppendCommandArgv(c->ctx, 2, argv, lens);
    if (track) {
        if (redisGetReply(c->ctx, (void **)&tracking) != REDIS_OK || !tracking)
            return NULL;
        if (tracking->type == REDIS_REPLY_STATUS)
            c->tracking = t->generation;
        else
            snprintf(why, why_len, "CLIENT TRACKING answered %.80s",
                     tracking->type == REDIS_REPLY_ERROR && tracking->str ? tracking->str
                                                                          : "an unexpected reply");
        freeReplyObject(tracking);
    }
    if (redisGetReply(c->ctx, (void **)&reply) != REDIS_OK)
        return NULL;
    return reply;
}

static dc_store_status_e redis_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                    const char *id, size_t id_len, dc_assignments_t *out)
{
    redis_store_t *r = s->impl;
    size_t key_len, garbage = 0, pairs;
    const char *argv[2] = {"HGETALL"};
    size_t lens[2] = {7};
    redisReply *reply;
    redis_cache_ticket_t ticket;
    dc_store_status_e cached;
    char tracking_error[120] = "";
    conn_t *c;

    (void)env_id;
    argv[1] = make_key(p, r, id, id_len, &key_len);
    lens[1] = key_len;
    if (redis_cache_lookup(r->cache, p, argv[1], key_len, out, &cached, &ticket))
        return cached;
    for (int attempt = 0;; attempt++) {
        int err_no;

        c = acquire(r, attempt > 0);
        if (!c)
            return DC_STORE_UNAVAILABLE;
        errno = 0;
        reply = command_tracked(r, c, &ticket, argv, lens, tracking_error,
                                sizeof(tracking_error));
        err_no = errno;
        if (reply)
            break;
        if (attempt == 0 && closed_while_idle(c, err_no)) {
            close_conn(r, c);
            continue;
        }
        broken(r, c, "HGETALL");
        return DC_STORE_UNAVAILABLE;
    }
    release(r, c);
    succeed(r);
    if (tracking_error[0]) {
        redis_cache_tracking_failed(r->cache, &ticket, tracking_error);
        ticket.track = 0;
    }

    if (reply->type == REDIS_REPLY_ERROR || reply->type != REDIS_REPLY_ARRAY) {
        log_bad_data(r,
               DCLOGNO(10332) "store redis %s: HGETALL of a %zu-byte key answered %s; the key "
                              "is not a decision-api assignment hash, ignored",
               r->where, key_len,
               reply->type == REDIS_REPLY_ERROR ? "an error" : "an unexpected type");
        freeReplyObject(reply);
        return DC_STORE_NOT_FOUND;
    }
    pairs = reply->elements / 2;
    if (reply->elements % 2)
        garbage++;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *f = reply->element[2 * i], *v = reply->element[2 * i + 1];
        dc_assignment_t a;

        if (!f || !v || f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            garbage++;
            continue;
        }
        if (f->len == 2 && memcmp(f->str, "ts", 2) == 0) {
            if (parse_ts(v, &out->ts_ms) < 0)
                garbage++;
            continue;
        }
        if (out->n >= DC_STORE_MAX_ASSIGNMENTS) {
            garbage += pairs - i;
            break;
        }
        if (dc_assignment_decode_field(p, f->str, f->len, v->str, v->len, &a) < 0) {
            garbage++;
            continue;
        }
        /* a hash's fields are distinct */
        dc_assignment_put(p, dc_assignments_append(p, out, a.vg_id, a.vg_id_len), a.variation_id,
                          a.variation_id_len, a.activated);
    }
    freeReplyObject(reply);
    redis_cache_fill(r->cache, p, &ticket, argv[1], key_len, out);
    if (garbage)
        log_bad_data(r,
               DCLOGNO(10333) "store redis %s: %zu field(s) of a visitor hash are not valid "
                              "assignments (or over the limit of %d); ignored",
               r->where, garbage, DC_STORE_MAX_ASSIGNMENTS);
    return out->n ? DC_STORE_OK : DC_STORE_NOT_FOUND;
}

/*
 * Keeps a save that found Redis unreachable, for replay when it answers. It is
 * written with HSETNX, so it only fills fields Redis does not have: a newer
 * assignment another server saved meanwhile is never overwritten by it.
 */
static void queue_for_replay(redis_store_t *r, const char **hset_argv, const size_t *hset_lens,
                             int hset_argc)
{
    char *cmds[DC_STORE_MAX_ASSIGNMENTS + 2];
    int lens[DC_STORE_MAX_ASSIGNMENTS + 2], n_commands = 0;
    const char *key = hset_argv[1];
    size_t total = 0, key_len = hset_lens[1];
    dc_store_pending_t *entry = NULL;
    char ttl[24];
    int queued;

    /* HSET key f1 v1 f2 v2 ... ts ms  →  HSETNX key f v, for each pair */
    for (int i = 2; i + 1 < hset_argc; i += 2) {
        const char *argv[4] = {"HSETNX", key, hset_argv[i], hset_argv[i + 1]};
        size_t argl[4] = {6, key_len, hset_lens[i], hset_lens[i + 1]};

        lens[n_commands] = redisFormatCommandArgv(&cmds[n_commands], 4, argv, argl);
        if (lens[n_commands] < 0)
            goto out;
        total += (size_t)lens[n_commands++];
    }
    if (r->ttl_s > 0) {
        const char *argv[3] = {"EXPIRE", key, ttl};
        size_t argl[3] = {6, key_len, 0};

        argl[2] = (size_t)snprintf(ttl, sizeof(ttl), "%ld", r->ttl_s);
        lens[n_commands] = redisFormatCommandArgv(&cmds[n_commands], 3, argv, argl);
        if (lens[n_commands] < 0)
            goto out;
        total += (size_t)lens[n_commands++];
    }
    entry = dc_store_pending_new(NULL, total, n_commands);
    if (entry) {
        char *o = entry->data;

        for (int i = 0; i < n_commands; i++) {
            memcpy(o, cmds[i], (size_t)lens[i]);
            o += lens[i];
        }
    }
out:
    for (int i = 0; i < n_commands; i++)
        redisFreeCommand(cmds[i]);
    apr_thread_mutex_lock(r->mutex);
    queued = r->pid == getpid() && dc_store_outage_queue(&r->outage, entry) == 0;
    apr_thread_mutex_unlock(r->mutex);
    if (!queued)
        free(entry);
}

static dc_store_status_e redis_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                    const char *id, size_t id_len, const dc_assignments_t *changes,
                                    int64_t now_ms)
{
    redis_store_t *r = s->impl;
    size_t n = changes->n > DC_STORE_MAX_ASSIGNMENTS ? DC_STORE_MAX_ASSIGNMENTS : changes->n;
    int argc = 0, n_replies = r->ttl_s > 0 ? 2 : 1, refused = 0;
    const char **argv = apr_palloc(p, (4 + 2 * n) * sizeof(*argv));
    size_t *lens = apr_palloc(p, (4 + 2 * n) * sizeof(*lens));
    size_t key_len;
    char *key = make_key(p, r, id, id_len, &key_len);
    char ts[24], ttl[24];
    conn_t *c;

    (void)env_id;
    redis_cache_forget(r->cache, key, key_len);
    argv[argc] = "HSET";
    lens[argc++] = 4;
    argv[argc] = key;
    lens[argc++] = key_len;
    for (size_t i = 0; i < n; i++) {
        argv[argc] = changes->items[i].vg_id;
        lens[argc++] = changes->items[i].vg_id_len;
        argv[argc] = dc_assignment_encode_field(p, &changes->items[i], &lens[argc]);
        argc++;
    }
    argv[argc] = "ts";
    lens[argc++] = 2;
    argv[argc] = ts;
    lens[argc++] = (size_t)snprintf(ts, sizeof(ts), "%lld", (long long)now_ms);

    for (int attempt = 0;; attempt++) {
        int err_no = 0, failed_at = -1;

        c = acquire(r, attempt > 0);
        if (!c) {
            queue_for_replay(r, argv, lens, argc);
            return DC_STORE_UNAVAILABLE;
        }
        redisAppendCommandArgv(c->ctx, argc, argv, lens);
        if (r->ttl_s > 0) {
            const char *eargv[3] = {"EXPIRE", key, ttl};
            size_t elens[3] = {6, key_len, 0};

            elens[2] = (size_t)snprintf(ttl, sizeof(ttl), "%ld", r->ttl_s);
            redisAppendCommandArgv(c->ctx, 3, eargv, elens);
        }
        for (int i = 0; i < n_replies && failed_at < 0; i++) {
            redisReply *reply = NULL;

            errno = 0;
            if (redisGetReply(c->ctx, (void **)&reply) != REDIS_OK || !reply) {
                err_no = errno;
                failed_at = i;
                break;
            }
            if (reply->type != REDIS_REPLY_INTEGER && !refused) {
                log_bad_data(r,
                             DCLOGNO(10334) "store redis %s: %s of a %zu-byte key refused: %.80s",
                             r->where, i == 0 ? "HSET" : "EXPIRE", key_len,
                             reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
                                                                            : "unexpected reply");
                refused = 1;
            }
            freeReplyObject(reply);
        }
        if (failed_at < 0)
            break;
        /* HSET and EXPIRE may be sent twice: both are idempotent */
        if (attempt == 0 && failed_at == 0 && closed_while_idle(c, err_no)) {
            close_conn(r, c);
            continue;
        }
        broken(r, c, failed_at == 0 ? "HSET" : "EXPIRE");
        if (failed_at == 0)
            queue_for_replay(r, argv, lens, argc);
        return DC_STORE_UNAVAILABLE;
    }
    release(r, c);
    succeed(r);
    return refused ? DC_STORE_UNAVAILABLE : DC_STORE_OK;
}

static dc_store_health_e redis_health(dc_store_t *s, const char **detail)
{
    static _Thread_local char buf[300];
    redis_store_t *r = s->impl;
    char cache[160];
    int failing;

    redis_cache_describe(r->cache, cache, sizeof(cache));
    apr_thread_mutex_lock(r->mutex);
    failing = r->outage.failing;
    if (failing) {
        char why[210];

        dc_store_outage_describe(&r->outage, apr_time_now(), why, sizeof(why));
        snprintf(buf, sizeof(buf), "redis %s: %s", r->where, why);
    } else {
        snprintf(buf, sizeof(buf), "redis %s: ok; client-side cache %s", r->where, cache);
    }
    apr_thread_mutex_unlock(r->mutex);
    *detail = buf;
    return failing ? DC_STORE_HEALTH_DEGRADED : DC_STORE_HEALTH_OK;
}

/* The parent must not be using the store while it forks (httpd's parent serves no
 * requests), so the mutex is free here and only the parent's sockets need dropping. */
static void redis_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    redis_store_t *r = s->impl;

    (void)pchild;
    redis_cache_child_init(r->cache);
    dc_store_outage_drop_queue(&r->outage); /* the parent replays its own */
    free_conns(r, r->idle);
    r->idle = NULL;
    r->n_idle = 0;
    r->pid = getpid();
}

static void redis_close(dc_store_t *s)
{
    redis_store_t *r = s->impl;

    if (!r)
        return;
    apr_thread_mutex_lock(r->mutex);
    free_conns(r, r->idle);
    r->idle = NULL;
    r->n_idle = 0;
    r->generation++;
    dc_store_outage_drop_queue(&r->outage);
    apr_thread_mutex_unlock(r->mutex);
    redis_cache_destroy(r->cache);
    r->cache = NULL;
#ifdef DC_HAVE_HIREDIS_SSL
    if (r->ssl) {
        redisFreeSSLContext(r->ssl);
        r->ssl = NULL;
    }
#endif
}

static apr_status_t redis_cleanup(void *data)
{
    dc_store_t *s = data;

    redis_close(s);
    return APR_SUCCESS;
}

static struct timeval tv_of_ms(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    return tv;
}

/* Parses the options after "?"; fills err and returns -1 on a bad one. */
static int parse_options(apr_pool_t *p, redis_store_t *r, const char *q, const char *uri,
                         char *err, size_t err_len)
{
    long timeout_ms = REDIS_DEFAULT_TIMEOUT_MS, connect_ms = -1,
         max_backoff_ms = REDIS_DEFAULT_MAX_BACKOFF_MS;

    r->ttl_s = REDIS_DEFAULT_TTL_S;
    r->client_cache_bytes = REDIS_DEFAULT_CLIENT_CACHE;
    for (;;) {
        dc_uri_option_t o;
        int rc = dc_uri_next_option(&q, &o), bad = 0;

        if (rc == 0)
            break;
        if (rc < 0) {
            snprintf(err, err_len, "store \"%s\": option \"%.*s\" needs a value", uri,
                     (int)o.name_len, o.name);
            return -1;
        }
        if (dc_uri_option_is(&o, "timeout_ms"))
            bad = dc_uri_parse_long(o.value, o.value_len, 1, 60000, &timeout_ms);
        else if (dc_uri_option_is(&o, "connect_timeout_ms"))
            bad = dc_uri_parse_long(o.value, o.value_len, 1, 60000, &connect_ms);
        else if (dc_uri_option_is(&o, "ttl"))
            bad = dc_uri_parse_long(o.value, o.value_len, 0, 100L * 366 * 86400, &r->ttl_s);
        else if (dc_uri_option_is(&o, "max_backoff_ms"))
            bad = dc_uri_parse_long(o.value, o.value_len, 100, 3600000, &max_backoff_ms);
        else if (dc_uri_option_is(&o, "prefix"))
            bad = !(r->prefix = dc_uri_percent_decode(p, o.value, o.value_len)) ||
                  strlen(r->prefix) > DC_STORE_MAX_FIELD_LEN;
        else if (dc_uri_option_is(&o, "client_cache"))
            bad = dc_uri_parse_long(o.value, o.value_len, 0, 1L << 30, &r->client_cache_bytes) ||
                  (r->client_cache_bytes && r->client_cache_bytes < 65536);
        else if (dc_uri_option_is(&o, "tls_ca"))
            bad = !(r->tls_ca = dc_uri_percent_decode(p, o.value, o.value_len)) || !*r->tls_ca;
        else {
            snprintf(err, err_len,
                     "store \"%s\": unknown option \"%.*s\" (timeout_ms, connect_timeout_ms, "
                     "ttl, prefix, max_backoff_ms, client_cache, tls_ca)",
                     uri, (int)o.name_len, o.name);
            return -1;
        }
        if (bad) {
            snprintf(err, err_len, "store \"%s\": bad value for option \"%.*s\"", uri,
                     (int)o.name_len, o.name);
            return -1;
        }
    }
    r->command_tv = tv_of_ms(timeout_ms);
    r->connect_tv = tv_of_ms(connect_ms > 0 ? connect_ms : timeout_ms);
    r->outage.max_backoff = apr_time_from_msec(max_backoff_ms);
    return 0;
}

/* args->uri: the whole redis:// or rediss:// URI. Fills s (uri masked), or err and returns -1. */
static int redis_open(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args, char *err,
                      size_t err_len)
{
    const char *uri = args->uri;
    redis_store_t *r = apr_pcalloc(p, sizeof(*r));
    const char *rest, *at, *host_end, *end, *query;
    const char *masked_user = "";

    if (strncmp(uri, "redis://", 8) == 0) {
        rest = uri + 8;
    } else if (strncmp(uri, "rediss://", 9) == 0) {
        rest = uri + 9;
        r->tls = 1;
    } else {
        snprintf(err, err_len, "store \"%s\": not a redis:// URI", uri);
        return -1;
    }
#ifndef DC_HAVE_HIREDIS_SSL
    if (r->tls) {
        snprintf(err, err_len,
                 "store \"rediss://...\": this build has no Redis TLS (hiredis_ssl was not found "
                 "by configure)");
        return -1;
    }
#endif
    query = strchr(rest, '?');
    end = query ? query : rest + strlen(rest);

    /* user:password@ */
    at = dc_store_userinfo_end(rest);
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));

        if (!colon) {
            snprintf(err, err_len,
                     "store redis: give the password as redis://:PASSWORD@host or "
                     "redis://USER:PASSWORD@host");
            return -1;
        }
        if (colon > rest && !(r->user = dc_uri_percent_decode(p, rest, (size_t)(colon - rest)))) {
            snprintf(err, err_len, "store redis: bad %%-escape in the user name");
            return -1;
        }
        r->password = dc_uri_percent_decode(p, colon + 1, (size_t)(at - colon - 1));
        if (!r->password) {
            snprintf(err, err_len, "store redis: bad %%-escape in the password");
            return -1;
        }
        if (!*r->password) {
            snprintf(err, err_len, "store redis: the password after \":\" is empty");
            return -1;
        }
        if (r->user)
            masked_user = apr_pstrcat(p, r->user, ":***@", NULL);
        else
            masked_user = ":***@";
        rest = at + 1;
    }

    /* host, [v6] or name */
    if (*rest == '[') {
        host_end = memchr(rest, ']', (size_t)(end - rest));
        if (!host_end) {
            snprintf(err, err_len, "store redis: unterminated [IPv6] host");
            return -1;
        }
        r->host = apr_pstrmemdup(p, rest + 1, (size_t)(host_end - rest - 1));
        host_end++;
    } else {
        host_end = rest;
        while (host_end < end && *host_end != ':' && *host_end != '/')
            host_end++;
        r->host = apr_pstrmemdup(p, rest, (size_t)(host_end - rest));
    }
    if (!*r->host) {
        snprintf(err, err_len, "store redis: the host is missing (redis://HOST:PORT[/DB])");
        return -1;
    }
    r->port = REDIS_DEFAULT_PORT;
    rest = host_end;
    if (*rest == ':') {
        const char *port_end = rest + 1;
        long port;

        while (port_end < end && *port_end != '/')
            port_end++;
        if (dc_uri_parse_long(rest + 1, (size_t)(port_end - rest - 1), 1, 65535, &port) < 0) {
            snprintf(err, err_len, "store redis: bad port \"%.*s\"",
                     (int)(port_end - rest - 1), rest + 1);
            return -1;
        }
        r->port = (int)port;
        rest = port_end;
    }
    if (rest < end && *rest == '/') {
        if (end > rest + 1 &&
            dc_uri_parse_long(rest + 1, (size_t)(end - rest - 1), 0, 1 << 20, &r->db) < 0) {
            snprintf(err, err_len, "store redis: bad database number \"%.*s\"",
                     (int)(end - rest - 1), rest + 1);
            return -1;
        }
        rest = end;
    }
    if (rest != end) {
        snprintf(err, err_len, "store redis: unexpected \"%.*s\" after the host",
                 (int)(end - rest), rest);
        return -1;
    }
    if (parse_options(p, r, query ? query + 1 : NULL, "redis", err, err_len) < 0)
        return -1;
    if (!r->prefix)
        r->prefix = "";
    r->prefix_len = strlen(r->prefix);
    r->where = apr_psprintf(p, strchr(r->host, ':') ? "[%s]:%d/%ld" : "%s:%d/%ld", r->host,
                            r->port, r->db);
    if (apr_thread_mutex_create(&r->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        snprintf(err, err_len, "store redis: cannot create a mutex");
        return -1;
    }
    r->pid = getpid();
#ifdef DC_HAVE_HIREDIS_SSL
    if (r->tls) {
        redisSSLContextError ssl_err = REDIS_SSL_CTX_NONE;

        redisInitOpenSSL();
        r->ssl = redisCreateSSLContext(r->tls_ca, NULL, NULL, NULL, r->host, &ssl_err);
        if (!r->ssl) {
            snprintf(err, err_len, "store redis: cannot set up TLS: %s",
                     redisSSLContextGetError(ssl_err));
            return -1;
        }
    }
#endif
    r->cache = redis_cache_create(p, (size_t)r->client_cache_bytes, r->where, connect_for_cache, r);
    s->impl = r;
    s->prefix = r->prefix;
    s->uri = apr_psprintf(p, "%s://%s%s%s", r->tls ? "rediss" : "redis", masked_user,
                          r->where, query ? query : "");
    apr_pool_cleanup_register(p, s, redis_cleanup, apr_pool_cleanup_null);
    return 0;
}

const dc_store_provider_t dc_store_redis_provider = {
    .name = "redis",
    .open = redis_open,
    .load = redis_load,
    .save = redis_save,
    .health = redis_health,
    .child_init = redis_child_init,
    .close = redis_close,
};

/*
 * The Redis store's client-side cache: see store_redis_cache.h.
 *
 * Records live in a dc_table in this process's heap, each behind a small
 * header: the epoch and the stripe counter it was filled under, and whether
 * Redis had a record at all. A record is good while both still hold, so
 * dropping everything is one increment of the epoch and an invalidation is
 * one increment of its key's stripe (a few other keys of the stripe are
 * dropped with it: misses, never stale reads).
 *
 * Everything here runs under one mutex per process, held for an epoll_wait
 * with no timeout, the reads of what it found and one table lookup: never
 * across a command to Redis (the subscription's first connect runs
 * without it).
 */
#include "store_redis_cache.h"
#include "dc_hash.h"
#include "dc_log.h"
#include "dc_table.h"

#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/socket.h>

#define CACHE_STRIPES 4096
#define CACHE_MIN_BACKOFF apr_time_from_msec(100)
#define CACHE_MAX_BACKOFF apr_time_from_sec(5)
#define CACHE_MAX_READS 64 /* 16 KiB each per load; past that the cache is dropped */
#define CACHE_CHANNEL "__redis__:invalidate"

typedef struct {
    uint32_t epoch;
    uint32_t stripe_seq;
    uint8_t found;
} __attribute__((packed)) record_header_t;

struct redis_cache {
    /* Fixed after create. */
    size_t bytes;
    const char *where;
    redis_cache_connect_fn *connect;
    void *baton;
    /* Under mutex: */
    apr_thread_mutex_t *mutex;
    pid_t pid;
    void *block;
    dc_table_t table;
    int epfd;
    redisContext *sub; /* NULL: not subscribed (yet, or lost) */
    long long sub_id;
    uint32_t generation, epoch;
    int refused, connecting, lost_logged;
    unsigned long successes; /* loads that reached Redis while not subscribed */
    apr_time_t retry_at;
    apr_interval_time_t backoff;
    char why_off[120];
    unsigned long long hits, misses;
    uint32_t stripes[CACHE_STRIPES];
};

static uint32_t stripe_of(const char *key, size_t key_len)
{
    return dc_murmur3_32(key, key_len, 0x5bd1e995u) % CACHE_STRIPES;
}

static void drop_all(redis_cache_t *c)
{
    c->epoch++;
}

/* The subscription is gone: whatever Redis would have told it is unknown. */
static void lose_subscription(redis_cache_t *c, const char *why)
{
    if (!c->sub)
        return;
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->sub->fd, NULL);
    redisFree(c->sub);
    c->sub = NULL;
    c->generation++;
    drop_all(c);
    c->successes = 0;
    c->backoff = c->backoff ? (c->backoff * 2 > CACHE_MAX_BACKOFF ? CACHE_MAX_BACKOFF
                                                                   : c->backoff * 2)
                            : CACHE_MIN_BACKOFF;
    c->retry_at = apr_time_now() + c->backoff;
    if (!c->lost_logged)
        dc_log(DC_LOG_INFO,
               DCLOGNO(10337) "store redis %s: the client-side cache lost its invalidation "
                              "connection (%s); loads ask Redis until it is back",
               c->where, why);
    c->lost_logged = 1;
}

static void invalidate(redis_cache_t *c, const redisReply *key)
{
    if (key->type == REDIS_REPLY_STRING)
        c->stripes[stripe_of(key->str, key->len)]++;
}

/* One pub/sub message: ["message", channel, keys | key | nil (everything)]. */
static void apply(redis_cache_t *c, const redisReply *m)
{
    const redisReply *payload;

    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING || m->element[0]->len != 7 ||
        memcmp(m->element[0]->str, "message", 7) != 0)
        return; /* the subscription's confirmation */
    payload = m->element[2];
    if (payload->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < payload->elements; i++)
            invalidate(c, payload->element[i]);
    } else if (payload->type == REDIS_REPLY_STRING) {
        invalidate(c, payload);
    } else {
        drop_all(c); /* FLUSHDB, FLUSHALL */
    }
}

static void read_invalidations(redis_cache_t *c)
{
    for (int reads = 0;; reads++) {
        void *reply = NULL;
        char peek;

        if (reads == CACHE_MAX_READS) {
            drop_all(c); /* what is left is read next time; nothing filled before stays */
            return;
        }
        if (redisBufferRead(c->sub) != REDIS_OK) {
            lose_subscription(c, c->sub->errstr[0] ? c->sub->errstr : "closed");
            return;
        }
        while (redisGetReplyFromReader(c->sub, &reply) == REDIS_OK && reply) {
            apply(c, reply);
            freeReplyObject(reply);
            reply = NULL;
        }
        if (c->sub->err) {
            lose_subscription(c, c->sub->errstr);
            return;
        }
        if (recv(c->sub->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
            return; /* nothing more (an EOF shows in the next epoll_wait) */
    }
}

static void drain(redis_cache_t *c)
{
    struct epoll_event events[16];
    int n = epoll_wait(c->epfd, events, 16, 0);

    for (int i = 0; i < n; i++) {
        int *closed = events[i].data.ptr;

        if (!closed) {
            if (c->sub && (events[i].events & EPOLLIN))
                read_invalidations(c);
            else if (c->sub)
                lose_subscription(c, "closed");
        } else {
            /* a data connection closed: the keys it read are no longer tracked */
            __atomic_store_n(closed, 1, __ATOMIC_RELEASE);
            drop_all(c);
        }
    }
}

static void reset(redis_cache_t *c)
{
    if (c->epfd >= 0)
        close(c->epfd);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->sub) {
        /* the parent's: close our copy of the socket only */
        close(c->sub->fd);
        c->sub->fd = -1;
        redisFree(c->sub);
        c->sub = NULL;
    }
    c->generation++;
    drop_all(c);
    c->successes = 0;
    c->connecting = 0;
    c->pid = getpid();
    if (c->epfd < 0) {
        c->refused = 1;
        snprintf(c->why_off, sizeof(c->why_off), "epoll_create1 failed");
    }
}

redis_cache_t *redis_cache_create(apr_pool_t *p, size_t bytes, const char *where,
                                  redis_cache_connect_fn *connect, void *baton)
{
    redis_cache_t *c;

    if (!bytes)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->bytes = bytes;
    c->where = where;
    c->connect = connect;
    c->baton = baton;
    c->epfd = -1;
    c->block = malloc(bytes);
    if (!c->block || dc_table_init(&c->table, c->block, bytes, 0) < 0 ||
        apr_thread_mutex_create(&c->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        free(c->block);
        free(c);
        return NULL;
    }
    reset(c);
    return c;
}

void redis_cache_destroy(redis_cache_t *c)
{
    if (!c)
        return;
    if (c->sub)
        redisFree(c->sub);
    if (c->epfd >= 0)
        close(c->epfd);
    free(c->block); /* the mutex goes with the store's pool */
    free(c);
}

void redis_cache_child_init(redis_cache_t *c)
{
    if (!c)
        return;
    apr_thread_mutex_lock(c->mutex);
    reset(c);
    apr_thread_mutex_unlock(c->mutex);
}

static void off_for_good(redis_cache_t *c, const char *why)
{
    if (c->refused)
        return;
    c->refused = 1;
    snprintf(c->why_off, sizeof(c->why_off), "%s", why);
    lose_subscription(c, why);
    dc_log(DC_LOG_WARN,
           DCLOGNO(10338) "store redis %s: no client-side cache (%s); every load asks Redis. "
                          "Redis 6 or later, reached without a proxy, has client tracking",
           c->where, why);
}

/* Connects and subscribes, without the mutex (a connect may take its timeout). */
static void subscribe(redis_cache_t *c)
{
    static const char *const sub_argv[2] = {"SUBSCRIBE", CACHE_CHANNEL};
    static const size_t sub_lens[2] = {9, sizeof(CACHE_CHANNEL) - 1};
    char why[160] = "";
    redisContext *ctx = c->connect(c->baton, why, sizeof(why));
    redisReply *id = NULL, *confirmed = NULL;
    int refused = 0;

    if (ctx) {
        redisAppendCommand(ctx, "CLIENT ID");
        redisAppendCommandArgv(ctx, 2, (const char **)sub_argv, sub_lens);
        if (redisGetReply(ctx, (void **)&id) != REDIS_OK || !id ||
            redisGetReply(ctx, (void **)&confirmed) != REDIS_OK || !confirmed) {
            snprintf(why, sizeof(why), "%s", ctx->errstr[0] ? ctx->errstr : "no reply");
        } else if (id->type != REDIS_REPLY_INTEGER || confirmed->type != REDIS_REPLY_ARRAY) {
            const redisReply *e = id->type == REDIS_REPLY_ERROR ? id : confirmed;

            snprintf(why, sizeof(why), "CLIENT ID or SUBSCRIBE answered %.80s",
                     e->type == REDIS_REPLY_ERROR && e->str ? e->str : "an unexpected reply");
            refused = 1;
        }
    }
    apr_thread_mutex_lock(c->mutex);
    c->connecting = 0;
    if (c->pid != getpid() || c->refused) {
        /* forked or refused meanwhile */
    } else if (refused) {
        off_for_good(c, why);
    } else if (why[0] || !ctx) {
        c->backoff = c->backoff ? (c->backoff * 2 > CACHE_MAX_BACKOFF ? CACHE_MAX_BACKOFF
                                                                       : c->backoff * 2)
                                : CACHE_MIN_BACKOFF;
        c->retry_at = apr_time_now() + c->backoff;
    } else {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = NULL};

        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, ctx->fd, &ev) == 0) {
            c->sub = ctx;
            ctx = NULL;
            c->sub_id = id->integer;
            c->generation++;
            drop_all(c);
            c->backoff = 0;
            dc_log(c->lost_logged ? DC_LOG_INFO : DC_LOG_DEBUG,
                   DCLOGNO(10336) "store redis %s: client-side cache on (%zu bytes, "
                                  "invalidations on client %lld)",
                   c->where, c->bytes, c->sub_id);
            c->lost_logged = 0;
        }
    }
    apr_thread_mutex_unlock(c->mutex);
    if (id)
        freeReplyObject(id);
    if (confirmed)
        freeReplyObject(confirmed);
    if (ctx)
        redisFree(ctx);
}

int redis_cache_lookup(redis_cache_t *c, apr_pool_t *p, const char *key, size_t key_len,
                       dc_assignments_t *out, dc_store_status_e *status, redis_cache_ticket_t *t)
{
    unsigned char small[2048], *buf = small;
    record_header_t h;
    size_t len = 0;
    int rc;

    memset(t, 0, sizeof(*t));
    if (!c)
        return 0;
    apr_thread_mutex_lock(c->mutex);
    if (c->pid != getpid())
        reset(c); /* forked without child_init */
    if (!c->sub || c->refused) {
        apr_thread_mutex_unlock(c->mutex);
        return 0;
    }
    drain(c);
    if (!c->sub) {
        apr_thread_mutex_unlock(c->mutex);
        return 0;
    }
    t->track = 1;
    t->redirect_id = c->sub_id;
    t->generation = c->generation;
    t->epoch = c->epoch;
    t->stripe = stripe_of(key, key_len);
    t->stripe_seq = c->stripes[t->stripe];
    rc = dc_table_get(&c->table, key, key_len, small, sizeof(small), &len);
    if (rc < 0) {
        buf = apr_palloc(p, len);
        rc = dc_table_get(&c->table, key, key_len, buf, len, &len);
    }
    if (rc == 1 && len >= sizeof(h)) {
        memcpy(&h, buf, sizeof(h));
        if (h.epoch != t->epoch || h.stripe_seq != t->stripe_seq)
            rc = 0;
    } else {
        rc = 0;
    }
    if (rc)
        c->hits++;
    else
        c->misses++;
    apr_thread_mutex_unlock(c->mutex);
    if (!rc)
        return 0;
    if (!h.found) {
        *status = DC_STORE_NOT_FOUND;
        return 1;
    }
    if (dc_assignments_decode(p, (const char *)buf + sizeof(h), len - sizeof(h), out) < 0)
        return 0; /* our own record: cannot happen, but then ask Redis */
    *status = out->n ? DC_STORE_OK : DC_STORE_NOT_FOUND;
    return 1;
}

void redis_cache_fill(redis_cache_t *c, apr_pool_t *p, const redis_cache_ticket_t *t,
                      const char *key, size_t key_len, const dc_assignments_t *a)
{
    record_header_t h = {t->epoch, t->stripe_seq, a && a->n ? 1 : 0};
    size_t record_len = 0;
    const char *record = "";
    int start = 0;
    char *value;

    if (!c)
        return;
    if (!t->track) {
        /* Redis answered without the cache: maybe it is time to subscribe */
        apr_thread_mutex_lock(c->mutex);
        start = !c->sub && !c->refused && !c->connecting && c->pid == getpid() &&
                ++c->successes >= 2 && apr_time_now() >= c->retry_at;
        if (start)
            c->connecting = 1;
        apr_thread_mutex_unlock(c->mutex);
        if (start)
            subscribe(c);
        return;
    }
    if (h.found && !(record = dc_assignments_encode(p, a, &record_len)))
        return;
    value = apr_palloc(p, sizeof(h) + record_len);
    memcpy(value, &h, sizeof(h));
    memcpy(value + sizeof(h), record, record_len);
    apr_thread_mutex_lock(c->mutex);
    if (c->sub && c->generation == t->generation && c->epoch == t->epoch &&
        c->stripes[t->stripe] == t->stripe_seq)
        dc_table_put(&c->table, key, key_len, value, sizeof(h) + record_len);
    apr_thread_mutex_unlock(c->mutex);
}

void redis_cache_forget(redis_cache_t *c, const char *key, size_t key_len)
{
    if (!c)
        return;
    apr_thread_mutex_lock(c->mutex);
    c->stripes[stripe_of(key, key_len)]++;
    apr_thread_mutex_unlock(c->mutex);
}

void redis_cache_watch(redis_cache_t *c, int fd, int *closed)
{
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT, .data.ptr = closed};

    if (!c)
        return;
    apr_thread_mutex_lock(c->mutex);
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* unwatched, its loss would go unseen: treat it as closed already */
        __atomic_store_n(closed, 1, __ATOMIC_RELEASE);
        drop_all(c);
    }
    apr_thread_mutex_unlock(c->mutex);
}

void redis_cache_unwatch(redis_cache_t *c, int fd)
{
    if (!c)
        return;
    apr_thread_mutex_lock(c->mutex);
    if (c->pid == getpid())
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL);
    drop_all(c);
    apr_thread_mutex_unlock(c->mutex);
}

void redis_cache_tracking_failed(redis_cache_t *c, const redis_cache_ticket_t *t, const char *why)
{
    if (!c)
        return;
    apr_thread_mutex_lock(c->mutex);
    if (strstr(why, "does not exist")) {
        /* the redirect's client: our subscription is gone, and Redis knew first */
        if (c->generation == t->generation)
            lose_subscription(c, "closed by the server");
    } else {
        off_for_good(c, why);
    }
    apr_thread_mutex_unlock(c->mutex);
}

const char *redis_cache_describe(redis_cache_t *c, char *buf, size_t len)
{
    if (!c) {
        snprintf(buf, len, "off");
        return buf;
    }
    apr_thread_mutex_lock(c->mutex);
    if (c->refused)
        snprintf(buf, len, "off: %s", c->why_off);
    else if (!c->sub)
        snprintf(buf, len, "starting");
    else
        snprintf(buf, len, "on, %llu of %llu loads", c->hits, c->hits + c->misses);
    apr_thread_mutex_unlock(c->mutex);
    return buf;
}

#else /* no epoll: no cache */

redis_cache_t *redis_cache_create(apr_pool_t *p, size_t bytes, const char *where,
                                  redis_cache_connect_fn *connect, void *baton)
{
    (void)p, (void)bytes, (void)where, (void)connect, (void)baton;
    return NULL;
}
void redis_cache_destroy(redis_cache_t *c) { (void)c; }
void redis_cache_child_init(redis_cache_t *c) { (void)c; }
int redis_cache_lookup(redis_cache_t *c, apr_pool_t *p, const char *key, size_t key_len,
                       dc_assignments_t *out, dc_store_status_e *status, redis_cache_ticket_t *t)
{
    (void)c, (void)p, (void)key, (void)key_len, (void)out, (void)status;
    memset(t, 0, sizeof(*t));
    return 0;
}
void redis_cache_fill(redis_cache_t *c, apr_pool_t *p, const redis_cache_ticket_t *t,
                      const char *key, size_t key_len, const dc_assignments_t *a)
{
    (void)c, (void)p, (void)t, (void)key, (void)key_len, (void)a;
}
void redis_cache_forget(redis_cache_t *c, const char *key, size_t key_len)
{
    (void)c, (void)key, (void)key_len;
}
void redis_cache_watch(redis_cache_t *c, int fd, int *closed) { (void)c, (void)fd, (void)closed; }
void redis_cache_unwatch(redis_cache_t *c, int fd) { (void)c, (void)fd; }
void redis_cache_tracking_failed(redis_cache_t *c, const redis_cache_ticket_t *t, const char *why)
{
    (void)c, (void)t, (void)why;
}
const char *redis_cache_describe(redis_cache_t *c, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "off (needs epoll)");
    return buf;
}

#endif

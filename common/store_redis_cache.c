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
 * A load whose key is cached reads it without any lock (see `struct
 * redis_cache`); the rest (draining what Redis sent, filling, watching)
 * runs under one mutex per process, never held across a command to Redis
 * (the subscription's connect runs without it).
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
#include <errno.h>
#include <pthread.h>
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

/*
 * Two epoll sets: `outer` holds the subscription (level-triggered) and
 * `inner`, which holds the watched data connections (one-shot). A load that
 * finds `outer` empty, with no drain running (drain_seq even, and unchanged
 * after its lookup), has every message Redis had sent applied and reads the
 * table without the mutex. Anything ready is consumed only under the mutex,
 * so a connection's flag is never written after the connection is freed.
 */
struct redis_cache {
    /* Fixed after create. */
    size_t bytes;
    const char *where;
    redis_cache_connect_fn *connect;
    void *baton;
    void *block;
    dc_table_t table; /* read without the mutex, written under it */
    /* Read without the mutex, written under it (atomics): */
    uint32_t epoch;
    uint32_t drain_seq; /* odd while a drain runs */
    int ready;          /* subscribed and not refused */
    unsigned forks_seen;
    uint32_t stripes[CACHE_STRIPES];
    unsigned long long hits, misses;
    /* Under mutex: */
    apr_thread_mutex_t *mutex;
    pid_t pid;
    int outer, inner;
    redisContext *sub; /* NULL: not subscribed (yet, or lost) */
    long long sub_id;
    uint32_t generation;
    int refused; /* off for good; also read without the mutex */
    int connecting, lost_logged;
    unsigned long successes; /* loads that reached Redis while not subscribed */
    apr_time_t retry_at;
    apr_interval_time_t backoff;
    char why_off[120];
};

/* Counts forks in this process's children, so a load notices one with a plain read. */
static unsigned forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
    __atomic_add_fetch(&forks, 1, __ATOMIC_RELAXED);
}

static void register_fork_counter(void)
{
    pthread_atfork(NULL, NULL, count_fork);
}

static uint32_t stripe_of(const char *key, size_t key_len)
{
    return dc_murmur3_32(key, key_len, 0x5bd1e995u) % CACHE_STRIPES;
}

static void drop_all(redis_cache_t *c)
{
    __atomic_add_fetch(&c->epoch, 1, __ATOMIC_ACQ_REL);
}

static void set_ready(redis_cache_t *c)
{
    __atomic_store_n(&c->ready, c->sub && !c->refused, __ATOMIC_RELEASE);
}

static apr_interval_time_t next_backoff(apr_interval_time_t b)
{
    return b ? (b * 2 > CACHE_MAX_BACKOFF ? CACHE_MAX_BACKOFF : b * 2) : CACHE_MIN_BACKOFF;
}

/* The subscription is gone: whatever Redis would have told it is unknown. */
static void lose_subscription(redis_cache_t *c, const char *why)
{
    if (!c->sub)
        return;
    epoll_ctl(c->outer, EPOLL_CTL_DEL, c->sub->fd, NULL);
    redisFree(c->sub);
    c->sub = NULL;
    set_ready(c);
    c->generation++;
    drop_all(c);
    c->successes = 0;
    c->backoff = next_backoff(c->backoff);
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
        __atomic_add_fetch(&c->stripes[stripe_of(key->str, key->len)], 1, __ATOMIC_ACQ_REL);
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

/* Reads what the subscription has, never waiting for more. */
static void read_invalidations(redis_cache_t *c)
{
    for (int reads = 0; c->sub; reads++) {
        void *reply = NULL;
        char peek;
        ssize_t n = recv(c->sub->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            lose_subscription(c, n == 0 ? "closed by the server" : strerror(errno));
            return;
        }
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
    }
}

/* Under the mutex. */
static void drain(redis_cache_t *c)
{
    struct epoll_event events[2];
    int n;

    __atomic_add_fetch(&c->drain_seq, 1, __ATOMIC_ACQ_REL);
    n = epoll_wait(c->outer, events, 2, 0);
    for (int i = 0; i < n; i++) {
        if (!events[i].data.ptr) {
            read_invalidations(c);
        } else {
            struct epoll_event closed[16];
            int m = epoll_wait(c->inner, closed, 16, 0);

            for (int j = 0; j < m; j++) {
                /* a data connection closed: the keys it read are no longer tracked */
                __atomic_store_n((int *)closed[j].data.ptr, 1, __ATOMIC_RELEASE);
                drop_all(c);
            }
        }
    }
    __atomic_add_fetch(&c->drain_seq, 1, __ATOMIC_ACQ_REL);
}

static void reset(redis_cache_t *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->inner};

    if (c->outer >= 0)
        close(c->outer);
    if (c->inner >= 0)
        close(c->inner);
    c->outer = epoll_create1(EPOLL_CLOEXEC);
    c->inner = epoll_create1(EPOLL_CLOEXEC);
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
    __atomic_store_n(&c->forks_seen, __atomic_load_n(&forks, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    if (c->outer < 0 || c->inner < 0 || epoll_ctl(c->outer, EPOLL_CTL_ADD, c->inner, &ev) < 0) {
        snprintf(c->why_off, sizeof(c->why_off), "cannot create an epoll set: %s",
                 strerror(errno));
        __atomic_store_n(&c->refused, 1, __ATOMIC_RELEASE); /* after why_off */
    }
    set_ready(c);
}

redis_cache_t *redis_cache_create(apr_pool_t *p, size_t bytes, const char *where,
                                  redis_cache_connect_fn *connect, void *baton)
{
    redis_cache_t *c;

    if (!bytes)
        return NULL;
    pthread_once(&forks_once, register_fork_counter);
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->bytes = bytes;
    c->where = where;
    c->connect = connect;
    c->baton = baton;
    c->outer = c->inner = -1;
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
    if (c->outer >= 0)
        close(c->outer);
    if (c->inner >= 0)
        close(c->inner);
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
    snprintf(c->why_off, sizeof(c->why_off), "%s", why);
    __atomic_store_n(&c->refused, 1, __ATOMIC_RELEASE); /* after why_off */
    lose_subscription(c, why);
    set_ready(c);
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
        c->backoff = next_backoff(c->backoff);
        c->retry_at = apr_time_now() + c->backoff;
    } else {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = NULL};

        if (epoll_ctl(c->outer, EPOLL_CTL_ADD, ctx->fd, &ev) == 0) {
            c->sub = ctx;
            ctx = NULL;
            c->sub_id = id->integer;
            c->generation++;
            drop_all(c);
            c->backoff = 0;
            set_ready(c);
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

/* key's record if it is cached under (epoch, stripe_seq): 1 and out/status filled, else 0. */
/* small: the caller's buffer, used when the record fits (most do). */
static int read_record(redis_cache_t *c, apr_pool_t *p, const char *key, size_t key_len,
                       uint32_t epoch, uint32_t stripe_seq, unsigned char *small, size_t cap,
                       const unsigned char **record, size_t *record_len, int *found)
{
    unsigned char *buf = small;
    record_header_t h;
    size_t len = 0;
    int rc = dc_table_get(&c->table, key, key_len, buf, cap, &len);

    if (rc < 0) {
        buf = apr_palloc(p, len);
        rc = dc_table_get(&c->table, key, key_len, buf, len, &len);
    }
    if (rc != 1 || len < sizeof(h))
        return 0;
    memcpy(&h, buf, sizeof(h));
    if (h.epoch != epoch || h.stripe_seq != stripe_seq)
        return 0;
    *record = buf + sizeof(h);
    *record_len = len - sizeof(h);
    *found = h.found;
    return 1;
}

static int decode(apr_pool_t *p, const unsigned char *record, size_t len, int found,
                  dc_assignments_t *out, dc_store_status_e *status)
{
    if (!found) {
        *status = DC_STORE_NOT_FOUND;
        return 1;
    }
    if (dc_assignments_decode(p, (const char *)record, len, out) < 0)
        return 0; /* our own record: cannot happen, but then ask Redis */
    *status = out->n ? DC_STORE_OK : DC_STORE_NOT_FOUND;
    return 1;
}

/* The common case, without the mutex: nothing to read from Redis, no drain
 * running, and the key cached. 0 sends the load to the locked path. */
static int lookup_unlocked(redis_cache_t *c, apr_pool_t *p, const char *key, size_t key_len,
                           unsigned char *small, size_t cap, const unsigned char **record,
                           size_t *record_len, int *found)
{
    struct epoll_event ev;
    uint32_t seq, stripe;
    int rc;

    if (__atomic_load_n(&c->forks_seen, __ATOMIC_RELAXED) != __atomic_load_n(&forks, __ATOMIC_RELAXED) ||
        !__atomic_load_n(&c->ready, __ATOMIC_ACQUIRE))
        return 0;
    seq = __atomic_load_n(&c->drain_seq, __ATOMIC_ACQUIRE);
    if ((seq & 1) || epoll_wait(c->outer, &ev, 1, 0) != 0)
        return 0;
    stripe = stripe_of(key, key_len);
    rc = read_record(c, p, key, key_len, __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE),
                     __atomic_load_n(&c->stripes[stripe], __ATOMIC_ACQUIRE), small, cap, record,
                     record_len, found);
    /* a drain that began after our epoll_wait applies messages that came later */
    return rc && __atomic_load_n(&c->drain_seq, __ATOMIC_ACQUIRE) == seq;
}

int redis_cache_lookup(redis_cache_t *c, apr_pool_t *p, const char *key, size_t key_len,
                       dc_assignments_t *out, dc_store_status_e *status, redis_cache_ticket_t *t)
{
    unsigned char small[2048];
    const unsigned char *record = NULL;
    size_t record_len = 0;
    int found = 0, rc;

    memset(t, 0, sizeof(*t));
    if (!c || __atomic_load_n(&c->refused, __ATOMIC_ACQUIRE))
        return 0; /* off for good: no lock either */
    if (lookup_unlocked(c, p, key, key_len, small, sizeof(small), &record, &record_len,
                        &found)) {
        rc = decode(p, record, record_len, found, out, status);
        __atomic_add_fetch(rc ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
        return rc;
    }
    apr_thread_mutex_lock(c->mutex);
    if (c->pid != getpid())
        reset(c); /* forked without child_init */
    if (c->sub && !c->refused)
        drain(c);
    if (!c->sub || c->refused) {
        apr_thread_mutex_unlock(c->mutex);
        return 0;
    }
    t->track = 1;
    t->redirect_id = c->sub_id;
    t->generation = c->generation;
    t->epoch = __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE);
    t->stripe = stripe_of(key, key_len);
    t->stripe_seq = __atomic_load_n(&c->stripes[t->stripe], __ATOMIC_ACQUIRE);
    rc = read_record(c, p, key, key_len, t->epoch, t->stripe_seq, small, sizeof(small), &record,
                     &record_len, &found);
    apr_thread_mutex_unlock(c->mutex);
    rc = rc && decode(p, record, record_len, found, out, status);
    __atomic_add_fetch(rc ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
    return rc;
}

void redis_cache_fill(redis_cache_t *c, apr_pool_t *p, const redis_cache_ticket_t *t,
                      const char *key, size_t key_len, const dc_assignments_t *a)
{
    record_header_t h = {t->epoch, t->stripe_seq, a && a->n ? 1 : 0};
    size_t record_len = 0;
    const char *record = "";
    int start = 0;
    char *value;

    if (!c || __atomic_load_n(&c->refused, __ATOMIC_ACQUIRE))
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
    if (c->sub && c->generation == t->generation &&
        __atomic_load_n(&c->epoch, __ATOMIC_ACQUIRE) == t->epoch &&
        __atomic_load_n(&c->stripes[t->stripe], __ATOMIC_ACQUIRE) == t->stripe_seq)
        dc_table_put(&c->table, key, key_len, value, sizeof(h) + record_len);
    apr_thread_mutex_unlock(c->mutex);
}

void redis_cache_forget(redis_cache_t *c, const char *key, size_t key_len)
{
    if (c)
        __atomic_add_fetch(&c->stripes[stripe_of(key, key_len)], 1, __ATOMIC_ACQ_REL);
}

void redis_cache_watch(redis_cache_t *c, int fd, int *closed)
{
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT, .data.ptr = closed};

    if (!c)
        return;
    apr_thread_mutex_lock(c->mutex);
    if (epoll_ctl(c->inner, EPOLL_CTL_ADD, fd, &ev) < 0) {
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
        epoll_ctl(c->inner, EPOLL_CTL_DEL, fd, NULL);
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
    else {
        unsigned long long hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED),
                           misses = __atomic_load_n(&c->misses, __ATOMIC_RELAXED);

        snprintf(buf, len, "on, %llu of %llu loads", hits, hits + misses);
    }
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

/*
 * The Redis store's client-side cache: each process keeps the visitor hashes
 * it read, and Redis (6 or later, "client tracking" in its RESP2 redirect
 * mode) tells it on one connection subscribed to __redis__:invalidate which
 * of those keys anybody changed since. A returning visitor's load is then a
 * lookup in this process, with no round trip. Used by store_redis.c only.
 *
 * What keeps a cached record right:
 * - Every load first reads the invalidations that have arrived (one
 *   epoll_wait with no timeout, and a read when there is something), so a
 *   record is never served after Redis's message about it reached us.
 * - A miss takes a ticket (the stripe counter of its key, the cache epoch, the
 *   subscription's generation) before it sends HGETALL, and the reply fills
 *   the cache only if none of them moved meanwhile: an invalidation that
 *   overtook the reply is never lost.
 * - Redis tracks a key for the connection that read it, and forgets that
 *   connection when it closes. So each data connection with tracking on is
 *   watched (EPOLLRDHUP): when one closes, on either side, the whole cache
 *   is dropped (the epoch moves), as it is when the subscription is lost.
 * - The store's own save forgets the key at once, before Redis's message.
 *
 * The cache starts at a process's second successful load (a CGI process
 * answers one request and never pays for the subscription). It needs Linux
 * (epoll); elsewhere, or with client_cache=0, every load asks Redis.
 */
#ifndef STORE_REDIS_CACHE_H
#define STORE_REDIS_CACHE_H

#include "dc_store.h"

#include <hiredis/hiredis.h>
#include <stdint.h>

typedef struct redis_cache redis_cache_t;

/* Opens a connection with the store's settings (AUTH, SELECT, TLS, timeouts). */
typedef redisContext *redis_cache_connect_fn(void *baton, char *why, size_t why_len);

/* What a miss needs to enable tracking and to fill the cache afterwards. */
typedef struct {
    int track;             /* 0: no caching for this load */
    long long redirect_id; /* the subscription's CLIENT ID */
    uint32_t generation;   /* of the subscription */
    uint32_t epoch;
    uint32_t stripe, stripe_seq;
} redis_cache_ticket_t;

/* NULL when bytes is 0 or the platform has no epoll (then every call below is a no-op). */
redis_cache_t *redis_cache_create(apr_pool_t *p, size_t bytes, const char *where,
                                  redis_cache_connect_fn *connect, void *baton);
void redis_cache_destroy(redis_cache_t *c);
/* In a new process: the parent's subscription and records are not this one's. */
void redis_cache_child_init(redis_cache_t *c);

/* 1: key's record was cached (out and *status filled). 0: a miss, with t
 * filled for redis_cache_fill. */
int redis_cache_lookup(redis_cache_t *c, apr_pool_t *p, const char *key, size_t key_len,
                       dc_assignments_t *out, dc_store_status_e *status, redis_cache_ticket_t *t);
/* After a successful HGETALL: caches a (the visitor's record, NULL when Redis
 * had none) if t still holds. Also where the subscription starts. */
void redis_cache_fill(redis_cache_t *c, apr_pool_t *p, const redis_cache_ticket_t *t,
                      const char *key, size_t key_len, const dc_assignments_t *a);
/* Before the store writes key itself. */
void redis_cache_forget(redis_cache_t *c, const char *key, size_t key_len);

/* A data connection that just had tracking turned on. *closed is set (atomically)
 * when the server closes it. */
void redis_cache_watch(redis_cache_t *c, int fd, int *closed);
/* Before a watched connection is closed: the keys it read lose their tracking. */
void redis_cache_unwatch(redis_cache_t *c, int fd);
/* CLIENT TRACKING answered the error why: the subscription was lost (its
 * client no longer exists), or Redis cannot track (before 6, a proxy, a
 * renamed command) and the cache is off for good. */
void redis_cache_tracking_failed(redis_cache_t *c, const redis_cache_ticket_t *t, const char *why);

/* "on, 97% of loads", "off: ...", for the store's health detail. */
const char *redis_cache_describe(redis_cache_t *c, char *buf, size_t len);

#endif

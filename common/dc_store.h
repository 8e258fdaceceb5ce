/*
 * dc_store: where sticky visitor assignments live.
 *
 * An assignment says "for variation group G this visitor (or anonymous id,
 * or decision group) got variation V, and it was / was not activated". The
 * engine loads a visitor's assignments before deciding and saves the ones
 * that changed after. Backends sit behind one small vtable, like httpd's
 * providers, and that vtable is the public plugin interface
 * (decision/store_plugin.h, which also states the contract every backend
 * keeps): none, memory (bounded, in-process), dbm (apr_dbm file, locked for
 * writers), redis (hiredis, the Flagship decision-api's layout) and plugin
 * (a shared object implementing the same vtable, store_plugin.c); the httpd
 * module adds a store in shared memory of its own through the same table. A
 * URI picks the backend everywhere (dc_store_open()), through the registry
 * (store_registry.c), so this dispatcher knows no backend by name.
 */
#ifndef DC_STORE_H
#define DC_STORE_H

#include "dc_log.h"
#include "decision/store_plugin.h"

#include <apr_pools.h>
#include <apr_time.h>
#include <stddef.h>
#include <stdint.h>

const dc_assignment_t *dc_assignments_find(const dc_assignments_t *a, const char *vg_id,
                                           size_t vg_id_len);
/* Adds or replaces the entry for vg_id; strings are copied into p. */
void dc_assignments_set(apr_pool_t *p, dc_assignments_t *a, const char *vg_id, size_t vg_id_len,
                        const char *variation_id, size_t variation_id_len, int activated);

/* Applies changes to a record read back from a store (the read-modify-write of
 * a save): each change replaces its variation group's entry or adds one; a
 * record holding DC_STORE_MAX_ASSIGNMENTS entries still takes updates of the
 * groups it has but no new group. Stamps now_ms. */
void dc_assignments_merge(apr_pool_t *p, dc_assignments_t *record,
                          const dc_assignments_t *changes, int64_t now_ms);

/* The record format shared by memory, dbm and the Redis field values:
 * {"Timestamp":ms,"Assignments":{"vg":{"VariationID":"v","Activated":true}}}
 * (the Flagship decision-api's "local" cache format). Parsing garbage fails
 * cleanly (returns -1) and never reads out of bounds. */
char *dc_assignments_encode(apr_pool_t *p, const dc_assignments_t *a, size_t *len);
int dc_assignments_decode(apr_pool_t *p, const char *data, size_t len, dc_assignments_t *out);
/* One Redis hash field value: {"VariationID":"v","Activated":bool}. */
/* The key of id's record in an in-memory store: env_id NUL id (the NUL keeps
 * ("a", "b\0c") and ("a\0b", "c") apart). */
char *dc_store_memory_key(apr_pool_t *p, const char *env_id, const char *id, size_t id_len,
                          size_t *len);

char *dc_assignment_encode_field(apr_pool_t *p, const dc_assignment_t *a, size_t *len);
int dc_assignment_decode_field(apr_pool_t *p, const char *vg_id, size_t vg_id_len,
                               const char *data, size_t len, dc_assignment_t *out);

/* The assignment record, the status codes, the store and its vtable
 * (dc_store_provider_t) are the public plugin interface:
 * decision/store_plugin.h. */

/*
 * The registry: every backend dc_store_open() knows, by URI scheme (the text
 * before the first ":" or "?": "none", "memory", "dbm", "redis", "plugin").
 * The table is common/store_registry.c; a new backend is one line there.
 */
typedef struct {
    const char *scheme;
    const char *usage;    /* for "unknown store" messages: "dbm:PATH" */
    const dc_store_provider_t *provider;
    int parse_options;    /* the query after "?" is given as args->options */
} dc_store_backend_t;

extern const dc_store_backend_t dc_store_backends[];
extern const size_t dc_store_n_backends;
/* The registry entry for uri's scheme, or NULL. */
const dc_store_backend_t *dc_store_backend_of(const char *uri);
/* "use none, memory, dbm:PATH, ..." for messages about an unknown store (in p). */
const char *dc_store_usage(apr_pool_t *p);
/* The key=value pairs of query (the text after "?"), %-decoded, into *out (in p).
 * Returns their number, or -1 with err filled ("option \"x\" needs a value"). */
int dc_store_parse_query(apr_pool_t *p, const char *query, dc_store_option_t **out, char *err,
                         size_t err_len);
/* The value of option key in args, or NULL. */
const char *dc_store_option(const dc_store_open_args_t *args, const char *key);
/* The server's side of decision/store_plugin.h's dc_store_host_t. */
extern const dc_store_host_t dc_store_host;

/*
 * Opens a store from its URI, allocating in p (which must outlive the store):
 *   none
 *   memory[?max_entries=N]                 (default 100000 records)
 *   dbm:PATH | dbm:TYPE:PATH               (TYPE: default, gdbm, sdbm, db; store_dbm.c)
 *   redis://[user:password@ | :password@]host[:port][/db][?options]   (store_redis.c)
 *   rediss://...                           (TLS, only when built with hiredis_ssl)
 *     options: timeout_ms=50, connect_timeout_ms, ttl=7776000 (s, 0 = none), prefix=P,
 *              max_backoff_ms=5000, client_cache=4194304 (bytes per process, 0 = off), tls_ca=FILE
 *   plugin:/path/to/store.so[?key=value&...]   (store_plugin.c, doc/store-plugins.md)
 * Returns NULL and fills err on a bad URI or a backend that cannot start.
 * A process using a Redis store must ignore SIGPIPE (httpd does): hiredis
 * writes to its sockets with write(), and a socket the server has reset would
 * otherwise kill the process.
 */
dc_store_t *dc_store_open(apr_pool_t *p, const char *uri, char *err, size_t err_len);
void dc_store_close(dc_store_t *s);
/* uri with the password of a "scheme://user:password@host..." part replaced by
 * "***" (and, when the text is no such URI, everything before its last "@"),
 * for messages about a URI that may not parse (the store's own uri field is
 * masked already). */
const char *dc_store_uri_masked(apr_pool_t *p, const char *uri);
/* The "@" that ends the user information of authority (the text after
 * "scheme://"): the last "@" before the first "/" or "?", so a password may
 * hold "@" escaped or not. NULL when there is none. */
const char *dc_store_userinfo_end(const char *authority);
void dc_store_child_init(dc_store_t *s, apr_pool_t *pchild);

/* NULL-safe wrappers; a NULL store or "none" behaves as empty. */
dc_store_status_e dc_store_load(dc_store_t *s, apr_pool_t *p, const char *env_id, const char *id,
                                size_t id_len, dc_assignments_t *out);
dc_store_status_e dc_store_save(dc_store_t *s, apr_pool_t *p, const char *env_id, const char *id,
                                size_t id_len, const dc_assignments_t *changes, int64_t now_ms);
dc_store_health_e dc_store_health(dc_store_t *s, const char **detail);
int dc_store_is_none(const dc_store_t *s);

/* For backends: data problems that can repeat on every request (the broken
 * record of a hot visitor) are logged at most once a minute, with the count of
 * lines left out. The caller holds the lock that guards l. */
typedef struct {
    apr_time_t last;
    unsigned suppressed;
} dc_store_log_limit_t;
void dc_store_log_limited(dc_store_log_limit_t *l, dc_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Saves a backend could not make during an outage, kept in order for its replay
 * (the Redis store, the plugin wrapper). An entry is the backend's own struct
 * whose first member is a dc_store_pending_t, malloc'd in one piece. The
 * caller holds the lock that guards the queue. */
typedef struct dc_store_pending dc_store_pending_t;
struct dc_store_pending {
    dc_store_pending_t *next;
    size_t bytes; /* what the entry counts against the queue's byte limit */
};
typedef struct {
    dc_store_pending_t *head, *tail;
    size_t n, bytes;
    unsigned dropped;
} dc_store_queue_t;
/* Appends e unless the queue holds max_n entries or max_bytes would be passed (or e
 * is NULL): then counts it dropped and frees it. */
void dc_store_queue_push(dc_store_queue_t *q, dc_store_pending_t *e, size_t max_n,
                         size_t max_bytes);
/* Empties q: its entries, oldest first (free with dc_store_pending_free), their number
 * and the count of those dropped. */
dc_store_pending_t *dc_store_queue_take(dc_store_queue_t *q, size_t *n, unsigned *dropped);
void dc_store_pending_free(dc_store_pending_t *list);

/* Backends (one file each), listed in the registry. */
extern const dc_store_provider_t dc_store_none_provider;
extern const dc_store_provider_t dc_store_memory_provider;
extern const dc_store_provider_t dc_store_dbm_provider;
extern const dc_store_provider_t dc_store_redis_provider;
extern const dc_store_provider_t dc_store_plugin_provider; /* store_plugin.c: the loader */

/*
 * The store URI for the Flagship decision-api's cache settings, so a
 * configuration written for that server works here. get(baton, name) returns
 * the setting or NULL; names are the decision-api's environment variable names:
 *   CACHE_TYPE                none (or unset) | memory | local | redis
 *   CACHE_OPTIONS_DBPATH      local: the DBM file (default "cache_data"); when it is an
 *                             existing directory (the decision-api's), DIR/decision-assignments
 *   CACHE_OPTIONS_REDISHOST   host:port (default localhost:6379)
 *   CACHE_OPTIONS_REDISUSERNAME, CACHE_OPTIONS_REDISPASSWORD, CACHE_OPTIONS_REDISDB,
 *   CACHE_OPTIONS_REDISTLS    (true/false), CACHE_OPTIONS_REDISTTL (Go duration, e.g. 2160h)
 * get == NULL reads the process environment. Returns the URI (in p), or NULL
 * with err filled for a bad or unsupported value (dynamo). User and password
 * are %-escaped into the URI; the URI holds the password, so log s->uri of
 * the opened store, never this string.
 */
typedef const char *dc_store_setting_fn(void *baton, const char *name);
const char *dc_store_uri_from_flagship(apr_pool_t *p, dc_store_setting_fn *get, void *baton,
                                       char *err, size_t err_len);
/* A Go duration ("2160h", "1h30m", "90s", "1.5h") in whole seconds, rounded up; -1 if bad. */
long long dc_store_parse_go_duration_s(const char *s);

#endif

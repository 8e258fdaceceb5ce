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
/* A new entry for vg_id at the end, without looking for one (the caller knows
 * there is none), its variation unset; strings are copied into p. */
dc_assignment_t *dc_assignments_append(apr_pool_t *p, dc_assignments_t *a, const char *vg_id,
                                       size_t vg_id_len);
/* Sets an entry's variation (copied into p) and activation. */
void dc_assignment_put(apr_pool_t *p, dc_assignment_t *item, const char *variation_id,
                       size_t variation_id_len, int activated);
/* Adds or replaces the entry for vg_id; strings are copied into p. */
void dc_assignments_set(apr_pool_t *p, dc_assignments_t *a, const char *vg_id, size_t vg_id_len,
                        const char *variation_id, size_t variation_id_len, int activated);

/*
 * A view of an assignments list by variation group id, for many lookups and
 * additions in a row: a visitor who kept the assignments of a big file's 276
 * campaigns is looked up 276 times in each list, as many are saved, and its
 * record is decoded and merged; scanning the list each time made a
 * returning visitor's decision 5 M instructions. Past a few entries the ids
 * are hashed in p (open addressing, at most half full, grown as entries are
 * added through the view); a short list is scanned. Adding to the list other
 * than through the view makes the view stale.
 */
typedef struct {
    dc_assignments_t *a;
    uint32_t *slots; /* an entry's index + 1, 0: empty; NULL: the list is scanned */
    size_t mask;
} dc_assignments_view_t;

/* A view of a, sized for `more` entries to come (a hint). */
void dc_assignments_view_init(apr_pool_t *p, dc_assignments_view_t *v, dc_assignments_t *a,
                              size_t more);
const dc_assignment_t *dc_assignments_view_find(const dc_assignments_view_t *v, const char *vg_id,
                                                size_t vg_id_len);
/* dc_assignments_set through the view. */
void dc_assignments_view_set(apr_pool_t *p, dc_assignments_view_t *v, const char *vg_id,
                             size_t vg_id_len, const char *variation_id, size_t variation_id_len,
                             int activated);

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
 *   dynamo://TABLE[?region=R&endpoint=URL&profile=P&pk_field=id&pk_separator=.&get_timeout_ms=1000
 *                  &timeout_ms=1000&ttl_days=N&max_backoff_ms=5000]    (store_dynamo.c)
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

/*
 * For backends out of process (Redis, DynamoDB, the plugin wrapper): the outage
 * behaviour they share. A failure opens a backoff window (DC_STORE_MIN_BACKOFF,
 * doubling up to max_backoff) during which calls are skipped at once, so a dead or stalled
 * server costs at most one timeout per window; when the window ends one
 * caller probes (may_try pushes the window on for the others). Saves that
 * found the server unavailable are queued, bounded by DC_STORE_MAX_PENDING
 * entries and DC_STORE_MAX_PENDING_BYTES, for the backend to replay when it
 * answers again. The caller holds the lock that guards o around every call;
 * entries are made and freed outside it.
 */
#define DC_STORE_MIN_BACKOFF apr_time_from_msec(100)
#define DC_STORE_MAX_PENDING 1000
#define DC_STORE_MAX_PENDING_BYTES (1024 * 1024)

typedef struct dc_store_pending dc_store_pending_t;
struct dc_store_pending {
    dc_store_pending_t *next;
    int n;      /* the backend's count (Redis: commands in it; plugins: the id's length) */
    size_t len;
    char data[]; /* the backend's bytes, NUL-terminated */
};

typedef struct {
    apr_interval_time_t max_backoff; /* set by the backend */
    int failing;
    apr_time_t retry_at;
    apr_interval_time_t backoff;
    char error[300]; /* the last failure, no secrets */
    dc_store_pending_t *pending, *pending_tail;
    size_t n_pending, pending_bytes;
    unsigned pending_dropped; /* since the queue was last emptied */
} dc_store_outage_t;

/* 1: call the server (all is well, or this caller probes); 0: skip it. */
int dc_store_outage_may_try(dc_store_outage_t *o, apr_time_t now);
/* Records a failure and opens or widens the window; 1 for the first of a streak. */
int dc_store_outage_fail(dc_store_outage_t *o, apr_time_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* For health(): "ERROR; next try in N ms" (the last failure, the window left). */
void dc_store_outage_describe(const dc_store_outage_t *o, apr_time_t now, char *buf, size_t len);
/* The server answered; 1 when that ends an outage. */
int dc_store_outage_ok(dc_store_outage_t *o);
/* A queue entry holding a copy of data (malloc'd; NULL when out of memory);
 * data NULL: the caller fills e->data[0, len). */
dc_store_pending_t *dc_store_pending_new(const void *data, size_t len, int n);
void dc_store_pending_free(dc_store_pending_t *list);
/* Appends e; -1 (e is the caller's to free, the drop counted) when e is NULL or
 * the queue is full. */
int dc_store_outage_queue(dc_store_outage_t *o, dc_store_pending_t *e);
/* Takes up to max entries (0: all) from the front, in order; *n their count. */
dc_store_pending_t *dc_store_outage_take(dc_store_outage_t *o, size_t max, size_t *n);
/* Puts a list taken before back in front (its replay failed). */
void dc_store_outage_requeue(dc_store_outage_t *o, dc_store_pending_t *list);
/* Empties the queue (a forked child: the parent replays its own). */
void dc_store_outage_drop_queue(dc_store_outage_t *o);

/* Backends (one file each), listed in the registry. */
extern const dc_store_provider_t dc_store_none_provider;
extern const dc_store_provider_t dc_store_memory_provider;
extern const dc_store_provider_t dc_store_dbm_provider;
extern const dc_store_provider_t dc_store_redis_provider;
extern const dc_store_provider_t dc_store_plugin_provider; /* store_plugin.c: the loader */
extern const dc_store_provider_t dc_store_dynamo_provider;
/* The DynamoDB item layout, for tests: a GetItem reply into out (returns the
 * count of attributes skipped, -1 for a reply that is no object), and one
 * attribute value "<variation>[:1]". */
int dc_store_dynamo_decode_item(apr_pool_t *p, const char *pk_field, const char *body,
                                size_t len, long ttl_days, dc_assignments_t *out);
int dc_store_dynamo_decode_value(const char *v, size_t len, size_t *var_len, int *activated);

/*
 * The store URI for the Flagship decision-api's cache settings, so a
 * configuration written for that server works here. get(baton, name) returns
 * the setting or NULL; names are the decision-api's environment variable names:
 *   CACHE_TYPE                none (or unset) | memory | local | redis | dynamo
 *   CACHE_OPTIONS_DBPATH      local: the DBM file (default "cache_data"); when it is an
 *                             existing directory (the decision-api's), DIR/decision-assignments
 *   CACHE_OPTIONS_REDISHOST   host:port (default localhost:6379)
 *   CACHE_OPTIONS_REDISUSERNAME, CACHE_OPTIONS_REDISPASSWORD, CACHE_OPTIONS_REDISDB,
 *   CACHE_OPTIONS_REDISTLS    (true/false), CACHE_OPTIONS_REDISTTL (Go duration, e.g. 2160h)
 *   CACHE_OPTIONS_DYNAMOTABLENAME (default visitor-assignments), CACHE_OPTIONS_DYNAMOPKSEPARATOR
 *                             (default "."), CACHE_OPTIONS_DYNAMOPKFIELD (default "id"),
 *                             CACHE_OPTIONS_DYNAMOGETTIMEOUT (Go duration, default 1s)
 * get == NULL reads the process environment. Returns the URI (in p), or NULL
 * with err filled for a bad or unsupported value. User and password
 * are %-escaped into the URI; the URI holds the password, so log s->uri of
 * the opened store, never this string.
 */
typedef const char *dc_store_setting_fn(void *baton, const char *name);
const char *dc_store_uri_from_flagship(apr_pool_t *p, dc_store_setting_fn *get, void *baton,
                                       char *err, size_t err_len);
/* A Go duration ("2160h", "1h30m", "90s", "1.5h") in whole seconds, rounded up; -1 if bad. */
long long dc_store_parse_go_duration_s(const char *s);
/* The same in whole milliseconds, rounded up; -1 if bad. */
long long dc_store_parse_go_duration_ms(const char *s);

#endif

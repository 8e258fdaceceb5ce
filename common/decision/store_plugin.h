/*
 * decision/store_plugin.h: the assignment store interface of mod_decision.
 *
 * Every store of the server implements the dc_store_provider_t below: the
 * built-in ones (none, memory, dbm, redis) and the plugins that
 *
 *     DecisionStore plugin:/path/to/store.so?key=value&...      (httpd)
 *     STORE=plugin:/path/to/store.so?key=value&...              (decision-fcgi)
 *     decision-fcgi eval --store plugin:/path/to/store.so?...   (eval)
 *
 * loads. A plugin is a shared object that defines one symbol,
 *
 *     DC_STORE_PLUGIN_EXPORT const dc_store_plugin_t decision_store_plugin = {
 *         .abi_version = DC_STORE_PLUGIN_ABI,
 *         .version = "1.0",
 *         .provider = &my_provider,
 *     };
 *
 * built with `cc -shared -fPIC $(pkg-config --cflags decision-store-plugin)`.
 * It links against nothing of the server: what it needs from it (the record
 * format, the log) comes through the dc_store_host_t that open() is given.
 * doc/store-plugins.md has a complete example.
 *
 * What an assignment is: "for variation group G this visitor (or anonymous
 * id, or decision group) got variation V, and it was / was not activated".
 * The engine loads an id's assignments before deciding and saves the ones
 * that changed after.
 *
 * Contract for every provider:
 * - thread-safe: load, save and health may be called from many threads of one
 *   process at once (httpd's worker and event MPMs, decision-fcgi's threads);
 * - bounded: no call blocks longer than the store's own timeout (plugins take
 *   the conventional option timeout_ms); a stalled backend must time out, not
 *   hang a request thread;
 * - save merges: the entries of other variation groups in the id's record are
 *   kept (read, merge with host->assignments_merge, write);
 * - failures are reported as DC_STORE_UNAVAILABLE, never fatal: the engine then
 *   decides from the hash alone.
 *
 * What the server does around a plugin (so a plugin does not): after a
 * DC_STORE_UNAVAILABLE it stops calling the plugin for a backoff window
 * (100 ms, doubling up to the option max_backoff_ms, default 5000) and
 * answers from the hash alone, then lets one request probe; saves made during
 * the outage are kept (up to 1000, 1 MB) and replayed after the first call
 * that succeeds, filling only the variation groups the store lacks by then
 * (a newer assignment made elsewhere wins). It counts and times every call
 * under the backend name the provider declares (/metrics, /v2/metrics), logs
 * the store's state changes once, and shows health()'s detail on the status
 * page. Options the server takes for itself (max_backoff_ms) are not passed on.
 *
 * Processes, fork and threads:
 * - The shared object is loaded once, in the process that reads the
 *   configuration (httpd's parent in post_config, before it forks its
 *   children; decision-fcgi and eval at start). httpd's configtest
 *   (`apachectl -t`) and every start also open and close the store once in the
 *   parent to check it: open() must fail with a message when the options are
 *   wrong, and should not wait for the backend (a backend that is down at
 *   start is an outage, not a configuration error).
 * - open() runs before fork in httpd: it may parse options, allocate, create
 *   mutexes (apr_thread_mutex_create is fork-safe as long as no thread holds
 *   it while forking), but must not start threads, and should not connect:
 *   connections made in the parent would be shared by every child. Connect
 *   lazily, on first use, per process.
 * - child_init() (optional) runs in each new process after fork (httpd child)
 *   before its first load or save: drop whatever the parent left behind
 *   (sockets, cached connections) without closing it for the parent (do not
 *   send a "quit" on a socket the parent may still use).
 * - close() (optional) runs once in the process that opened the store, at
 *   shutdown or restart, before the shared object is unloaded: free all, stop
 *   any thread the store started.
 * - An httpd graceful restart unloads and reloads the shared object, like a
 *   module: keep no state in static variables across open/close.
 * - A process using the store ignores SIGPIPE (httpd and decision-fcgi do).
 *
 * Memory: the pool p given to open() lives as long as the store. The pool
 * given to load and save is the request's: allocate the record's strings in it
 * (host->assignments_set / assignments_decode do); no free needed.
 *
 * ABI: DC_STORE_PLUGIN_ABI changes whenever a type or the order of a field of
 * this header changes; the server refuses a plugin built for another ABI with
 * a message that names both. Rebuild the plugin against the server's header.
 */
#ifndef DECISION_STORE_PLUGIN_H
#define DECISION_STORE_PLUGIN_H

#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DC_STORE_PLUGIN_ABI 1
#define DC_STORE_PLUGIN_SYMBOL "decision_store_plugin"
#define DC_STORE_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Limits on what a store keeps for one id, so no visitor can grow a record without bound. */
#define DC_STORE_MAX_ID_LEN 1024
#define DC_STORE_MAX_ASSIGNMENTS 1024
#define DC_STORE_MAX_FIELD_LEN 256

typedef struct {
    const char *vg_id;
    size_t vg_id_len;
    const char *variation_id;
    size_t variation_id_len;
    int activated;
} dc_assignment_t;

/* The record of one id: its assignments and when it was last saved. */
typedef struct {
    dc_assignment_t *items;
    size_t n;
    size_t cap;
    int64_t ts_ms; /* when last saved (Unix ms), 0 if unknown */
} dc_assignments_t;

typedef enum {
    DC_STORE_OK = 0,
    DC_STORE_NOT_FOUND,
    DC_STORE_UNAVAILABLE
} dc_store_status_e;

typedef enum {
    DC_STORE_HEALTH_OK = 0,
    DC_STORE_HEALTH_DEGRADED
} dc_store_health_e;

/* Log levels of dc_store_host_t.log. */
typedef enum {
    DC_STORE_LOG_ERROR = 0,
    DC_STORE_LOG_WARN,
    DC_STORE_LOG_INFO,
    DC_STORE_LOG_DEBUG
} dc_store_log_level_e;

typedef struct dc_store dc_store_t;
typedef struct dc_store_provider dc_store_provider_t;

/* One "key=value" of the store URI's query, %-decoded, in the order given. */
typedef struct {
    const char *key;
    const char *value;
} dc_store_option_t;

/*
 * What the server lends a provider: its record format (the one the memory and
 * DBM stores write, {"Timestamp":ms,"Assignments":{"vg":{"VariationID":"v",
 * "Activated":true}}}, the Flagship decision-api's "local" cache format) and
 * its log. Valid from open() to close(); callable from any thread.
 */
typedef struct {
    uint32_t abi_version; /* DC_STORE_PLUGIN_ABI of the server */
    /* A line in the server's log (httpd's error log, decision-fcgi's stderr). */
    void (*log)(dc_store_log_level_e level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* The entry of vg_id in a, or NULL. */
    const dc_assignment_t *(*assignments_find)(const dc_assignments_t *a, const char *vg_id,
                                               size_t vg_id_len);
    /* Adds or replaces the entry for vg_id; strings are copied into p. */
    void (*assignments_set)(apr_pool_t *p, dc_assignments_t *a, const char *vg_id,
                            size_t vg_id_len, const char *variation_id,
                            size_t variation_id_len, int activated);
    /* The read-modify-write of a save: applies changes to record (each replaces its
     * group's entry or adds one, within DC_STORE_MAX_ASSIGNMENTS) and stamps now_ms. */
    void (*assignments_merge)(apr_pool_t *p, dc_assignments_t *record,
                              const dc_assignments_t *changes, int64_t now_ms);
    /* The record as bytes (NUL-terminated, *len without the NUL), in p. */
    char *(*assignments_encode)(apr_pool_t *p, const dc_assignments_t *a, size_t *len);
    /* Bytes back into a record (in p): 0, or -1 for anything that is not a valid
     * record (never reads past data + len). Untrusted input is fine. */
    int (*assignments_decode)(apr_pool_t *p, const char *data, size_t len,
                              dc_assignments_t *out);
} dc_store_host_t;

/* What open() is given. */
typedef struct {
    const char *uri;    /* the whole store URI as configured: may hold a password, never log it */
    const char *target; /* what follows "scheme:" up to "?": a plugin's .so path, dbm's PATH */
    const dc_store_option_t *options; /* the query's key=value pairs (%-decoded) */
    size_t n_options;
    const dc_store_host_t *host;
} dc_store_open_args_t;

/* The vtable. Every member but name, open, load and save may be NULL. */
struct dc_store_provider {
    /* The backend's name: the "backend" label of the metrics, the status page's store
     * type, log lines. Lower case letters, digits and "_", at most 32 bytes. */
    const char *name;
    /* Fills s->impl (and may set s->prefix). Returns 0, or -1 with a message for the
     * operator in err (no secrets: it is logged and stops the server's start). */
    int (*open)(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args, char *err,
                size_t err_len);
    /* Loads the record of (env_id, id) into out (zeroed by the caller; allocate in p).
     * id is 1 to DC_STORE_MAX_ID_LEN bytes, any bytes (NUL included); env_id is a C string.
     * DC_STORE_OK when found, DC_STORE_NOT_FOUND when not (or not a valid record). */
    dc_store_status_e (*load)(dc_store_t *s, apr_pool_t *p, const char *env_id, const char *id,
                              size_t id_len, dc_assignments_t *out);
    /* Merges changes (1 or more entries) into the record of (env_id, id), stamping now_ms. */
    dc_store_status_e (*save)(dc_store_t *s, apr_pool_t *p, const char *env_id, const char *id,
                              size_t id_len, const dc_assignments_t *changes, int64_t now_ms);
    /* Current health and a short operator-facing detail ("connected", "refused: ..."); the
     * detail must stay valid until the thread's next call (a static or thread-local buffer). */
    dc_store_health_e (*health)(dc_store_t *s, const char **detail);
    /* Called in a new process (httpd child, after fork) before first use. */
    void (*child_init)(dc_store_t *s, apr_pool_t *pchild);
    /* Called once, in the process that opened the store. */
    void (*close)(dc_store_t *s);
};

struct dc_store {
    const dc_store_provider_t *provider;
    void *impl;         /* the provider's own */
    /* As shown to operators (status page, logs), set by the server before open(): for a
     * plugin, plugin:PATH?k=v&... with the values of options whose name holds "password",
     * "secret", "token" or "key" as "***"; open() may set a masked form of its own. */
    const char *uri;
    const char *prefix; /* key prefix, "" by default */
};

/* The one symbol a plugin defines (DC_STORE_PLUGIN_SYMBOL). */
typedef struct {
    uint32_t abi_version; /* DC_STORE_PLUGIN_ABI as the plugin was built: always first */
    const char *version;  /* the plugin's own version, for the start-up log */
    const dc_store_provider_t *provider;
} dc_store_plugin_t;

#ifdef __cplusplus
}
#endif

#endif

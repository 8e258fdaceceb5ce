/*
 * Store plugins: "plugin:/path/to/store.so?key=value&..." loads a shared
 * object that implements decision/store_plugin.h's vtable, and wraps it with
 * what the built-in Redis store does for itself, so a plugin is only its
 * backend's client:
 *
 * Loading. The object is opened with apr_dso_load in the pool of the store
 * (httpd: pconf, in the parent before it forks; decision-fcgi and eval: at
 * start), its one symbol checked (present, ABI, a complete provider whose name
 * is no built-in's), then the provider's open() is called with the URI's
 * options (%-decoded key/value pairs, less the ones the wrapper keeps). Any
 * refusal is a message for the operator and stops the start. A cleanup
 * registered after the load closes the plugin's store before the object is
 * unloaded (pool cleanups run last-registered first), and closing twice (an
 * explicit dc_store_close, then the cleanup) calls the plugin once.
 *
 * Outages. A call that answers DC_STORE_UNAVAILABLE opens a backoff window
 * (100 ms, doubling up to max_backoff_ms, default 5000) during which load and
 * save answer DC_STORE_UNAVAILABLE at once, without calling the plugin: a dead
 * or stalled backend costs one timeout per window, not one per request. When
 * the window ends, one request probes while the others keep skipping. The
 * plugin's health() detail, read when a call fails, says why.
 *
 * Replay. Saves made while the store is unavailable (skipped or failed) are
 * kept, encoded in the shared record format (up to PLUGIN_MAX_PENDING and
 * PLUGIN_MAX_PENDING_BYTES), and written by the first call that succeeds
 * again: for each, the current record is loaded and only the variation groups
 * it lacks are saved, so a newer assignment made elsewhere during the outage
 * wins (what the Redis store's HSETNX replay does). That one call pays for
 * the replay, once per outage. A child process drops its parent's queue.
 * The window and the queue are dc_store_outage_t's (dc_store.h), shared with
 * the Redis and DynamoDB stores.
 */
#include "dc_store.h"
#include "dc_log.h"
#include "dc_uri.h"

#include <apr_dso.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLUGIN_DEFAULT_MAX_BACKOFF_MS 5000
#define PLUGIN_MAX_NAME 32

typedef struct {
    dc_store_t inner; /* the plugin's own store: inner.provider is its vtable */
    const char *name, *path;
    int open; /* the plugin's open() succeeded and close() was not called yet */
    apr_thread_mutex_t *mutex;
    /* Under mutex: */
    pid_t pid;
    /* the backoff window and the saves to replay; a queued save's data is
     * env_id NUL, id (n bytes), the changes as a record */
    dc_store_outage_t outage;
} plugin_store_t;

/* ---- the server's side of the interface ---------------------------------- */

static void host_log(dc_store_log_level_e level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    dc_log_level_e l = level == DC_STORE_LOG_ERROR ? DC_LOG_ERROR
                       : level == DC_STORE_LOG_WARN ? DC_LOG_WARN
                       : level == DC_STORE_LOG_INFO ? DC_LOG_INFO
                                                    : DC_LOG_DEBUG;

    if (!dc_log_enabled(l))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dc_log(l, DCLOGNO(10365) "%s", msg);
}

const dc_store_host_t dc_store_host = {
    .abi_version = DC_STORE_PLUGIN_ABI,
    .log = host_log,
    .assignments_find = dc_assignments_find,
    .assignments_set = dc_assignments_set,
    .assignments_merge = dc_assignments_merge,
    .assignments_encode = dc_assignments_encode,
    .assignments_decode = dc_assignments_decode,
};

/* ---- outage state -------------------------------------------------------- */

/* 1: skip the plugin (inside a backoff window); 0: call it (maybe as the probe). */
static int skip(plugin_store_t *ps)
{
    int skipping;

    apr_thread_mutex_lock(ps->mutex);
    if (ps->pid != getpid()) { /* forked without child_init: the parent replays its own queue */
        dc_store_outage_drop_queue(&ps->outage);
        ps->pid = getpid();
    }
    skipping = !dc_store_outage_may_try(&ps->outage, apr_time_now());
    apr_thread_mutex_unlock(ps->mutex);
    return skipping;
}

static void fail(plugin_store_t *ps, const char *what)
{
    const char *detail = NULL;
    int first;

    if (ps->inner.provider->health)
        ps->inner.provider->health(&ps->inner, &detail);
    apr_thread_mutex_lock(ps->mutex);
    first = dc_store_outage_fail(&ps->outage, apr_time_now(), "%s failed%s%.160s", what,
                                 detail ? ": " : "", detail ? detail : "");
    if (first) /* the operator's line is the state change (DC10801); this one is per process */
        dc_log(DC_LOG_DEBUG,
               DCLOGNO(10360) "store %s: %s; decisions use the hash alone, retrying with backoff",
               ps->name, ps->outage.error);
    apr_thread_mutex_unlock(ps->mutex);
}

static void queue_save(plugin_store_t *ps, apr_pool_t *p, const char *env_id, const char *id,
                       size_t id_len, const dc_assignments_t *changes, int64_t now_ms)
{
    dc_assignments_t stamped = *changes;
    size_t env_len = strlen(env_id), rec_len;
    char *rec;
    dc_store_pending_t *e = NULL;
    int queued;

    stamped.ts_ms = now_ms;
    rec = dc_assignments_encode(p, &stamped, &rec_len);
    if (id_len <= INT_MAX && (e = dc_store_pending_new(NULL, env_len + 1 + id_len + rec_len,
                                                       (int)id_len)) != NULL) {
        memcpy(e->data, env_id, env_len + 1);
        memcpy(e->data + env_len + 1, id, id_len);
        memcpy(e->data + env_len + 1 + id_len, rec, rec_len);
    }
    apr_thread_mutex_lock(ps->mutex);
    queued = ps->pid == getpid() && dc_store_outage_queue(&ps->outage, e) == 0;
    apr_thread_mutex_unlock(ps->mutex);
    if (!queued)
        free(e);
}

/* Writes what was queued during the outage; only groups the store lacks by now. */
static void replay(plugin_store_t *ps, dc_store_pending_t *list, size_t n, unsigned dropped)
{
    const dc_store_provider_t *vt = ps->inner.provider;
    apr_pool_t *tmp;
    size_t written = 0;
    dc_store_pending_t *l;

    if (apr_pool_create_unmanaged_ex(&tmp, NULL, NULL) != APR_SUCCESS) {
        dc_store_pending_free(list);
        return;
    }
    for (l = list; l; l = l->next) {
        const char *env_id = l->data, *id = env_id + strlen(env_id) + 1;
        size_t id_len = (size_t)l->n, rec_len = l->len - (size_t)(id - env_id) - id_len;
        dc_assignments_t changes, current, missing;
        dc_store_status_e rc;

        apr_pool_clear(tmp);
        if (dc_assignments_decode(tmp, id + id_len, rec_len, &changes) < 0)
            continue;
        memset(&current, 0, sizeof(current));
        memset(&missing, 0, sizeof(missing));
        rc = vt->load(&ps->inner, tmp, env_id, id, id_len, &current);
        if (rc == DC_STORE_UNAVAILABLE)
            break;
        for (size_t i = 0; i < changes.n; i++) {
            const dc_assignment_t *a = &changes.items[i];

            if (!dc_assignments_find(&current, a->vg_id, a->vg_id_len))
                dc_assignments_set(tmp, &missing, a->vg_id, a->vg_id_len, a->variation_id,
                                   a->variation_id_len, a->activated);
        }
        if (missing.n &&
            vt->save(&ps->inner, tmp, env_id, id, id_len, &missing, changes.ts_ms) ==
                DC_STORE_UNAVAILABLE)
            break;
        written++;
    }
    apr_pool_destroy(tmp);
    dc_store_pending_free(list);
    if (l) {
        fail(ps, "replaying saves");
        dc_log(DC_LOG_WARN,
               DCLOGNO(10361) "store %s: failed again while writing the %zu save(s) made during "
                              "its outage; %zu written, the others are lost",
               ps->name, n, written);
        return;
    }
    dc_log(DC_LOG_INFO,
           DCLOGNO(10362) "store %s: %zu save(s) made while it was unavailable written (groups "
                          "the store already had were kept)%s",
           ps->name, n, dropped ? ", more were left out (queue full)" : "");
}

static void succeed(plugin_store_t *ps)
{
    dc_store_pending_t *list = NULL;
    size_t n = 0;
    unsigned dropped = 0;

    if (!__atomic_load_n(&ps->outage.failing, __ATOMIC_RELAXED))
        return; /* the common case: no lock */
    apr_thread_mutex_lock(ps->mutex);
    if (dc_store_outage_ok(&ps->outage)) {
        list = dc_store_outage_take(&ps->outage, 0, &n);
        dropped = ps->outage.pending_dropped;
        ps->outage.pending_dropped = 0;
    }
    apr_thread_mutex_unlock(ps->mutex);
    if (list || dropped)
        replay(ps, list, n, dropped);
}

/* ---- the wrapper's vtable ------------------------------------------------ */

static dc_store_status_e plugin_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                     const char *id, size_t id_len, dc_assignments_t *out)
{
    plugin_store_t *ps = s->impl;
    dc_store_status_e rc;

    if (skip(ps))
        return DC_STORE_UNAVAILABLE;
    rc = ps->inner.provider->load(&ps->inner, p, env_id, id, id_len, out);
    if (rc == DC_STORE_UNAVAILABLE) {
        memset(out, 0, sizeof(*out));
        fail(ps, "load");
    } else {
        succeed(ps);
    }
    return rc;
}

static dc_store_status_e plugin_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                     const char *id, size_t id_len,
                                     const dc_assignments_t *changes, int64_t now_ms)
{
    plugin_store_t *ps = s->impl;
    dc_store_status_e rc;

    if (skip(ps)) {
        queue_save(ps, p, env_id, id, id_len, changes, now_ms);
        return DC_STORE_UNAVAILABLE;
    }
    rc = ps->inner.provider->save(&ps->inner, p, env_id, id, id_len, changes, now_ms);
    if (rc == DC_STORE_UNAVAILABLE) {
        fail(ps, "save");
        queue_save(ps, p, env_id, id, id_len, changes, now_ms);
    } else {
        succeed(ps);
    }
    return rc;
}

static dc_store_health_e plugin_health(dc_store_t *s, const char **detail)
{
    static _Thread_local char buf[400];
    plugin_store_t *ps = s->impl;

    apr_thread_mutex_lock(ps->mutex);
    if (ps->outage.failing) {
        char why[360];

        dc_store_outage_describe(&ps->outage, apr_time_now(), why, sizeof(why));
        snprintf(buf, sizeof(buf), "%s: %s", ps->name, why);
        apr_thread_mutex_unlock(ps->mutex);
        *detail = buf;
        return DC_STORE_HEALTH_DEGRADED;
    }
    apr_thread_mutex_unlock(ps->mutex);
    if (ps->inner.provider->health)
        return ps->inner.provider->health(&ps->inner, detail);
    *detail = "ok";
    return DC_STORE_HEALTH_OK;
}

/* The parent serves no requests while it forks (httpd), so the mutex is free. */
static void plugin_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    plugin_store_t *ps = s->impl;

    dc_store_outage_drop_queue(&ps->outage); /* the parent's */
    ps->pid = getpid();
    if (ps->inner.provider->child_init)
        ps->inner.provider->child_init(&ps->inner, pchild);
}

static void plugin_close(dc_store_t *s)
{
    plugin_store_t *ps = s->impl;

    if (!ps || !ps->open)
        return;
    ps->open = 0;
    if (ps->inner.provider->close)
        ps->inner.provider->close(&ps->inner);
    dc_store_outage_drop_queue(&ps->outage);
}

static apr_status_t plugin_cleanup(void *data)
{
    plugin_close(data);
    return APR_SUCCESS;
}

/* ---- loading ------------------------------------------------------------- */

/* plugin:PATH?k=v&... with the value of any option whose name says it is a secret
 * (password, secret, token, key) shown as "***", for the status page and logs. */
static const char *masked_uri(apr_pool_t *p, const dc_store_open_args_t *args)
{
    const char *uri = apr_pstrcat(p, "plugin:", args->target, NULL);

    for (size_t i = 0; i < args->n_options; i++) {
        const char *k = args->options[i].key;
        int secret = strstr(k, "password") || strstr(k, "secret") || strstr(k, "token") ||
                     strstr(k, "key");

        uri = apr_pstrcat(p, uri, i ? "&" : "?", k, "=", secret ? "***" : args->options[i].value,
                          NULL);
    }
    return uri;
}

static int valid_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0 || len > PLUGIN_MAX_NAME || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != len)
        return 0;
    /* not a built-in's: metrics and the status page tell backends apart by name */
    return !dc_store_backend_of(name) && strcmp(name, "shm") != 0 && strcmp(name, "other") != 0;
}

static int plugin_open(dc_store_t *s, apr_pool_t *p, const dc_store_open_args_t *args, char *err,
                       size_t err_len)
{
    plugin_store_t *ps = apr_pcalloc(p, sizeof(*ps));
    const dc_store_plugin_t *desc;
    const dc_store_provider_t *vt;
    dc_store_provider_t *wrapper;
    dc_store_open_args_t own = *args;
    dc_store_option_t *opts;
    apr_dso_handle_t *dso;
    apr_dso_handle_sym_t sym;
    const char *backoff;
    char why[512];

    ps->path = args->target;
    if (!*ps->path) {
        snprintf(err, err_len, "store plugin: give the shared object's path "
                               "(plugin:/path/to/store.so[?key=value&...])");
        return -1;
    }
    if (apr_dso_load(&dso, ps->path, p) != APR_SUCCESS) {
        snprintf(err, err_len, "store plugin %s: cannot load it: %s", ps->path,
                 apr_dso_error(dso, why, sizeof(why)));
        return -1;
    }
    if (apr_dso_sym(&sym, dso, DC_STORE_PLUGIN_SYMBOL) != APR_SUCCESS) {
        snprintf(err, err_len,
                 "store plugin %s: no symbol \"%s\" in it: not a store plugin (it must define "
                 "const dc_store_plugin_t %s, see decision/store_plugin.h)",
                 ps->path, DC_STORE_PLUGIN_SYMBOL, DC_STORE_PLUGIN_SYMBOL);
        apr_dso_unload(dso);
        return -1;
    }
    desc = (const dc_store_plugin_t *)sym;
    if (desc->abi_version != DC_STORE_PLUGIN_ABI) {
        snprintf(err, err_len,
                 "store plugin %s was built for store plugin ABI %u, this server has ABI %u: "
                 "rebuild it against this server's decision/store_plugin.h",
                 ps->path, (unsigned)desc->abi_version, (unsigned)DC_STORE_PLUGIN_ABI);
        apr_dso_unload(dso);
        return -1;
    }
    vt = desc->provider;
    if (!vt || !vt->open || !vt->load || !vt->save || !valid_name(vt->name)) {
        snprintf(err, err_len,
                 "store plugin %s: its provider must have open, load, save and a name of "
                 "a-z, 0-9 and _ (at most %d bytes, not a built-in store's)",
                 ps->path, PLUGIN_MAX_NAME);
        apr_dso_unload(dso);
        return -1;
    }
    ps->name = apr_pstrdup(p, vt->name); /* outlives the object, for late log lines */

    /* the wrapper's own options are not the plugin's */
    ps->outage.max_backoff = apr_time_from_msec(PLUGIN_DEFAULT_MAX_BACKOFF_MS);
    opts = apr_pcalloc(p, (args->n_options + 1) * sizeof(*opts));
    own.n_options = 0;
    own.options = opts;
    for (size_t i = 0; i < args->n_options; i++)
        if (strcmp(args->options[i].key, "max_backoff_ms") != 0)
            opts[own.n_options++] = args->options[i];
    if ((backoff = dc_store_option(args, "max_backoff_ms")) != NULL) {
        long ms;

        if (dc_uri_parse_long(backoff, strlen(backoff), 100, 3600000, &ms) < 0) {
            snprintf(err, err_len, "store %s: max_backoff_ms must be 100 to 3600000", ps->name);
            apr_dso_unload(dso);
            return -1;
        }
        ps->outage.max_backoff = apr_time_from_msec(ms);
    }
    if (apr_thread_mutex_create(&ps->mutex, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS) {
        snprintf(err, err_len, "store %s: cannot create a mutex", ps->name);
        apr_dso_unload(dso);
        return -1;
    }
    ps->pid = getpid();
    s->uri = masked_uri(p, args);
    ps->inner.provider = vt;
    ps->inner.uri = s->uri;
    ps->inner.prefix = "";
    why[0] = '\0';
    if (vt->open(&ps->inner, p, &own, why, sizeof(why)) < 0) {
        snprintf(err, err_len, "store plugin %s (%s): %s", ps->name, ps->path,
                 why[0] ? why : "open failed (the plugin gave no reason)");
        return -1; /* the object stays loaded with p: cleanups it registered may run */
    }
    ps->open = 1;
    wrapper = apr_pmemdup(p, &dc_store_plugin_provider, sizeof(*wrapper));
    wrapper->name = ps->name;
    wrapper->open = NULL;
    s->provider = wrapper;
    s->impl = ps;
    /* registered after the load: runs before the object is unloaded */
    apr_pool_cleanup_register(p, s, plugin_cleanup, apr_pool_cleanup_null);
    s->prefix = ps->inner.prefix ? ps->inner.prefix : "";
    if (ps->inner.uri && ps->inner.uri != s->uri)
        s->uri = ps->inner.uri; /* the plugin masked it its own way */
    dc_log(DC_LOG_DEBUG, DCLOGNO(10363) "store plugin %s %s loaded from %s", ps->name,
           desc->version ? desc->version : "(no version)", ps->path);
    return 0;
}

const dc_store_provider_t dc_store_plugin_provider = {
    .name = "plugin",
    .open = plugin_open,
    .load = plugin_load,
    .save = plugin_save,
    .health = plugin_health,
    .child_init = plugin_child_init,
    .close = plugin_close,
};

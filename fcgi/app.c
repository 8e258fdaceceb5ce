/*
 * decision-fcgi's service lifecycle: settings → store + source → the first
 * config, then the poller thread that keeps it fresh and applies SIGHUP
 * reloads (see app.h for who may touch what).
 *
 * A reload is all or nothing: the new settings must parse and the new store
 * must open, else the running service is kept as it was and the reason is
 * logged. THREADS, LISTEN, LOG_LEVEL and LOG_FORMAT are read at start only.
 */
#include "app.h"

#include "dc_log.h"
#include "dc_store.h"

#include <apr_strings.h>
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

extern char **environ;

static dc_settings_t *build_settings(apr_pool_t *p, const dc_fcgi_args_t *args)
{
    dc_settings_t *s = dc_settings_create(p);

    if (args->config_file)
        dc_settings_load_yaml(s, args->config_file);
    dc_settings_load_env(s, (const char *const *)environ);
    if (args->threads)
        dc_settings_set(s, "THREADS", args->threads, "--threads");
    if (args->listen)
        dc_settings_set(s, "LISTEN", args->listen, "--listen");
    dc_settings_finish(s);
    return s;
}

dc_settings_t *dc_fcgi_read_settings(apr_pool_t *p, const dc_fcgi_args_t *args)
{
    dc_settings_t *s = build_settings(p, args);

    if (s->errors->nelts == 0)
        return s;
    for (int i = 0; i < s->errors->nelts; i++)
        fprintf(stderr, "decision-fcgi: configuration: %s\n",
                APR_ARRAY_IDX(s->errors, i, const char *));
    fprintf(stderr, "decision-fcgi: %d configuration error%s; see decision-fcgi --help\n",
            s->errors->nelts, s->errors->nelts > 1 ? "s" : "");
    return NULL;
}

static void source_options(const dc_settings_t *s, dc_source_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->url = s->bucketing_url;
    o->file = s->bucketing_file;
    o->last_known_good = s->last_known_good;
}

static int same_string(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_source(const dc_settings_t *a, const dc_settings_t *b)
{
    return same_string(a->bucketing_url, b->bucketing_url) &&
           same_string(a->bucketing_file, b->bucketing_file) &&
           same_string(a->last_known_good, b->last_known_good);
}

static dc_source_t *open_source(apr_pool_t **pool, apr_pool_t *parent, const dc_settings_t *s)
{
    dc_source_options_t o;
    dc_source_t *src;
    char err[256];

    apr_pool_create(pool, parent);
    source_options(s, &o);
    src = dc_source_create(*pool, &o, err, sizeof(err));
    if (!src) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10500) "bucketing source: %s", err);
        apr_pool_destroy(*pool);
        *pool = NULL;
    }
    return src;
}

/* A store in its own pool, so it can outlive the settings it came from. */
static dc_store_t *open_store(apr_pool_t **pool, apr_pool_t *parent, const char *uri, char *err,
                              size_t err_len)
{
    dc_store_t *store;

    apr_pool_create(pool, parent);
    store = dc_store_open(*pool, apr_pstrdup(*pool, uri), err, err_len);
    if (!store) {
        apr_pool_destroy(*pool);
        *pool = NULL;
    }
    return store;
}

int dc_fcgi_thread_count(const dc_settings_t *s)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (s->threads > 0)
        return s->threads;
    return cores > 0 && cores < 512 ? (int)cores * 2 : 4;
}

/* What the status pages show of the events (dc_metrics_extra_fn). */
static void event_figures(void *baton, dc_metrics_extra_t *out)
{
    dc_fcgi_app_t *app = baton;
    dc_shipper_stats_t ship;

    if (app->shipper)
        dc_shipper_stats(app->shipper, &ship);
    dc_shipper_spool_figures(app->spool, app->shipper ? &ship : NULL, out);
}

/* The spool every request appends to, and (FastCGI, EVENTS_SHIPPER on) the shipper. */
static int open_events(dc_fcgi_app_t *app, const dc_settings_t *s)
{
    dc_spool_options_t so;
    dc_shipper_options_t sho;
    char err[256];

    if (!s->spool_dir) {
        dc_log(DC_LOG_INFO, DCLOGNO(10516) "events (hits) are not collected: EVENTS_SPOOL_DIR "
                                           "is not set");
        return 0;
    }
    dc_spool_options_default(&so);
    so.dir = s->spool_dir;
    if (dc_spool_options_parse(&so, s->spool_options, err, sizeof(err)) < 0 ||
        !(app->spool = dc_spool_open(app->pool, &so, err, sizeof(err)))) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10517) "event spool %s: %s", s->spool_dir, err);
        return -1;
    }
    app->svc.hit_sink = dc_spool_sink;
    app->svc.hit_baton = app->spool;
    app->svc.metrics_extra = event_figures;
    app->svc.metrics_extra_baton = app;
    if (app->cgi || !s->shipper_enabled)
        return 0;
    dc_shipper_options_default(&sho);
    sho.spool_dir = s->spool_dir;
    sho.collector = s->collector;
    if (!(app->shipper = dc_shipper_create(app->pool, &sho, err, sizeof(err)))) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10518) "event shipper: %s", err);
        return -1;
    }
    return 0;
}

static const char *describe_source(apr_pool_t *p, const dc_settings_t *s)
{
    return apr_psprintf(p, "url %s, file %s, last-known-good %s",
                        s->bucketing_url ? s->bucketing_url : "(none)",
                        s->bucketing_file ? s->bucketing_file : "(none)",
                        s->last_known_good ? s->last_known_good : "(none)");
}

static dc_source_result_e publish_refresh(dc_fcgi_app_t *app)
{
    dc_config_t *cfg = NULL;
    dc_source_result_e rc = dc_source_refresh(app->source, &cfg);

    if (rc == DC_SOURCE_CHANGED && cfg) {
        dc_slot_publish(&app->svc.slot, cfg);
        dc_log(DC_LOG_INFO, DCLOGNO(10501) "bucketing file: a new configuration is served");
    }
    return rc;
}

/* CGI processes share the last-known-good file as their cache: fetch only when it is older
 * than one polling interval (or missing), so a busy CGI site does not fetch on each request.
 * Its modification time is the last fetch attempt (see dc_fcgi_app_start). */
static int cgi_needs_fetch(const dc_settings_t *s, int have_config)
{
    struct stat st;

    if (!s->bucketing_url)
        return 0;
    if (!have_config || !s->last_known_good || stat(s->last_known_good, &st) < 0)
        return 1;
    return apr_time_now() - apr_time_from_sec(st.st_mtime) >= s->polling_interval;
}

int dc_fcgi_app_start(dc_fcgi_app_t *app, apr_pool_t *p, const dc_fcgi_args_t *args,
                      dc_settings_t *settings, int cgi)
{
    dc_config_t *cfg = NULL;
    char err[256];
    pthread_rwlockattr_t attr;
    pthread_condattr_t cattr;
    int have_config = 0;

    memset(app, 0, sizeof(*app));
    app->pool = p;
    app->args = *args;
    app->cgi = cgi;
    app->settings = settings;
    app->gen_pool = settings->pool;
    if (dc_service_init(&app->svc, p) < 0) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10502) "cannot initialise the service");
        return -1;
    }
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&app->options_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&app->mutex, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&app->wake, &cattr);
    pthread_condattr_destroy(&cattr);

    dc_settings_api_options(settings, &app->svc.opt);
    app->max_body_size = settings->max_body_size;
    app->svc.store = open_store(&app->store_pool, p, settings->store_uri, err, sizeof(err));
    if (!app->svc.store) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10503) "assignment store: %s", err);
        return -1;
    }
    app->source = open_source(&app->source_pool, p, settings);
    if (!app->source)
        return -1;
    app->svc.source = app->source;
    app->svc.cmdline = args->argv;
    app->n_threads = cgi ? 1 : dc_fcgi_thread_count(settings);
    if (settings->metrics_enabled)
        app->svc.metrics = dc_metrics_create(p, (size_t)app->n_threads);
    if (open_events(app, settings) < 0)
        return -1;
    if (dc_source_load_initial(app->source, &cfg, err, sizeof(err)) == 0 && cfg) {
        dc_slot_publish(&app->svc.slot, cfg);
        have_config = 1;
    } else if (!settings->bucketing_url) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10504) "bucketing file: %s", err);
    }
    /* Nothing to serve yet (or a stale CGI cache): fetch once now, before the first request,
     * rather than answer 503 until the poller's first round. Bounded by the source timeouts. */
    if (cgi ? cgi_needs_fetch(settings, have_config) : (!have_config && settings->bucketing_url)) {
        /* A CGI process that could not fetch marks the attempt on the shared file, so the
         * next processes do not each wait for an unreachable CDN within the same interval. */
        if (publish_refresh(app) == DC_SOURCE_FAILED && cgi && have_config &&
            settings->last_known_good)
            utime(settings->last_known_good, NULL);
        app->fetched_at_start = 1;
    }
    dc_log(DC_LOG_INFO, DCLOGNO(10505) "started (%s): bucketing %s; store %s; CORS %s; API key %s",
           cgi ? "CGI" : "FastCGI", describe_source(p, settings), app->svc.store->uri,
           settings->cors_enabled ? "on" : "off",
           dc_api_key_mode_describe(settings->require_api_key));
    if ((cfg = dc_slot_acquire(&app->svc.slot)) != NULL)
        dc_config_unref(cfg);
    else
        dc_log(DC_LOG_WARN, DCLOGNO(10506) "no bucketing configuration yet: decision requests "
                                           "get 503 until one is fetched");
    return 0;
}

/* ---- reload ------------------------------------------------------------- */

static void reload(dc_fcgi_app_t *app)
{
    apr_pool_t *gen_pool, *old_gen_pool, *store_pool = NULL, *old_store_pool;
    apr_pool_t *new_source_pool = NULL;
    dc_settings_t *s, *old = app->settings;
    dc_store_t *store = NULL, *old_store;
    dc_source_t *new_source = NULL;
    char err[256];

    apr_pool_create(&gen_pool, app->pool);
    s = build_settings(gen_pool, &app->args);
    if (s->errors->nelts) {
        for (int i = 0; i < s->errors->nelts; i++)
            dc_log(DC_LOG_ERROR, DCLOGNO(10507) "reload: %s",
                   APR_ARRAY_IDX(s->errors, i, const char *));
        dc_log(DC_LOG_ERROR, DCLOGNO(10508) "reload refused: the running configuration is kept");
        apr_pool_destroy(gen_pool);
        return;
    }
    if (strcmp(s->store_uri, old->store_uri) != 0 &&
        !(store = open_store(&store_pool, app->pool, s->store_uri, err, sizeof(err)))) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10509) "reload refused: assignment store: %s", err);
        apr_pool_destroy(gen_pool);
        return;
    }
    if (!same_source(s, old) && !(new_source = open_source(&new_source_pool, app->pool, s))) {
        if (store) {
            dc_store_close(store);
            apr_pool_destroy(store_pool);
        }
        dc_log(DC_LOG_ERROR, DCLOGNO(10510) "reload refused: the running configuration is kept");
        apr_pool_destroy(gen_pool);
        return;
    }
    if (s->threads != old->threads || !same_string(s->listen, old->listen) ||
        s->log_level != old->log_level || s->log_format != old->log_format ||
        s->metrics_enabled != old->metrics_enabled ||
        !same_string(s->spool_dir, old->spool_dir) ||
        !same_string(s->spool_options, old->spool_options) ||
        !same_string(s->collector, old->collector) || s->shipper_enabled != old->shipper_enabled)
        dc_log(DC_LOG_WARN, DCLOGNO(10511) "reload: changes of THREADS, LISTEN, LOG_*, "
                                           "METRICS_ENABLED and EVENTS_* take effect at the "
                                           "next start");
    for (int i = 0; i < s->warnings->nelts; i++)
        dc_log(DC_LOG_WARN, DCLOGNO(10512) "%s", APR_ARRAY_IDX(s->warnings, i, const char *));

    /* No request is inside dc_api_handle() while we hold this: old options and store are free. */
    pthread_rwlock_wrlock(&app->options_lock);
    dc_settings_api_options(s, &app->svc.opt);
    __atomic_store_n(&app->max_body_size, s->max_body_size, __ATOMIC_RELAXED);
    old_store = app->svc.store;
    old_store_pool = app->store_pool;
    if (store) {
        app->svc.store = store;
        app->store_pool = store_pool;
    }
    app->settings = s;
    old_gen_pool = app->gen_pool;
    app->gen_pool = gen_pool;
    if (new_source)
        app->svc.source = new_source; /* the status pages read it inside dc_api_handle */
    pthread_rwlock_unlock(&app->options_lock);

    if (store) {
        dc_store_close(old_store);
        apr_pool_destroy(old_store_pool);
    }
    apr_pool_destroy(old_gen_pool);
    if (new_source) {
        dc_source_destroy(app->source);
        apr_pool_destroy(app->source_pool);
        app->source = new_source;
        app->source_pool = new_source_pool;
    }
    dc_log(DC_LOG_WARN, DCLOGNO(10513) "configuration reloaded%s%s: bucketing %s; store %s; "
                                       "CORS %s; API key %s",
           app->args.config_file ? " from " : "",
           app->args.config_file ? app->args.config_file : "",
           describe_source(gen_pool, s), app->svc.store->uri, s->cors_enabled ? "on" : "off",
           dc_api_key_mode_describe(s->require_api_key));
    if (new_source) {
        dc_config_t *cfg = NULL;

        if (dc_source_load_initial(app->source, &cfg, err, sizeof(err)) == 0 && cfg)
            dc_slot_publish(&app->svc.slot, cfg);
    }
}

/* ---- the poller thread -------------------------------------------------- */

static struct timespec monotonic_after(apr_interval_time_t us)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(us / APR_USEC_PER_SEC);
    ts.tv_nsec += (long)(us % APR_USEC_PER_SEC) * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *poller_main(void *data)
{
    dc_fcgi_app_t *app = data;
    /* Served from a file at start (last-known-good maybe hours old): ask the URL at once. */
    struct timespec next = monotonic_after(app->fetched_at_start || !app->settings->bucketing_url
                                               ? app->settings->polling_interval
                                               : 0);

    pthread_mutex_lock(&app->mutex);
    while (!app->stopping) {
        int rc = 0, do_reload;

        while (!app->stopping && !app->reload_requested && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&app->wake, &app->mutex, &next);
        if (app->stopping)
            break;
        do_reload = app->reload_requested;
        app->reload_requested = 0;
        pthread_mutex_unlock(&app->mutex);

        if (do_reload)
            reload(app);
        publish_refresh(app);
        next = monotonic_after(app->settings->polling_interval);
        pthread_mutex_lock(&app->mutex);
    }
    app->poller_done = 1;
    pthread_cond_broadcast(&app->wake);
    pthread_mutex_unlock(&app->mutex);
    return NULL;
}

int dc_fcgi_app_start_threads(dc_fcgi_app_t *app)
{
    if (pthread_create(&app->poller, NULL, poller_main, app) != 0) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10514) "cannot start the poller thread");
        return -1;
    }
    app->poller_started = 1;
    if (app->shipper) {
        if (dc_shipper_start(app->shipper, app->spool) < 0) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10519) "cannot start the event shipper thread");
            return -1;
        }
        app->shipper_started = 1;
    }
    return 0;
}

void dc_fcgi_app_request_reload(dc_fcgi_app_t *app)
{
    pthread_mutex_lock(&app->mutex);
    app->reload_requested = 1;
    pthread_cond_broadcast(&app->wake);
    pthread_mutex_unlock(&app->mutex);
}

static int stop_poller(dc_fcgi_app_t *app, apr_time_t deadline)
{
    int done;

    if (!app->poller_started)
        return 0;
    pthread_mutex_lock(&app->mutex);
    app->stopping = 1;
    pthread_cond_broadcast(&app->wake);
    while (!app->poller_done) {
        apr_interval_time_t left = deadline - apr_time_now();
        struct timespec ts;

        if (left <= 0)
            break;
        ts = monotonic_after(left);
        pthread_cond_timedwait(&app->wake, &app->mutex, &ts);
    }
    done = app->poller_done;
    pthread_mutex_unlock(&app->mutex);
    if (!done) {
        dc_log(DC_LOG_WARN, DCLOGNO(10515) "the poller is still fetching; not waiting for it");
        return -1;
    }
    pthread_join(app->poller, NULL);
    app->poller_started = 0;
    return 0;
}

int dc_fcgi_app_stop_threads(dc_fcgi_app_t *app, apr_time_t deadline, apr_time_t flush_deadline)
{
    int rc = stop_poller(app, deadline);

    /* Events are on disk already; shipping them now only shortens their wait. */
    if (app->shipper_started) {
        apr_interval_time_t within = flush_deadline - apr_time_now();

        dc_shipper_stop(app->shipper, within > 0 ? within : 0);
        app->shipper_started = 0;
    }
    if (app->spool) {
        dc_spool_close(app->spool); /* the open segment becomes ready for the next shipper */
        app->spool = NULL;
        app->svc.hit_sink = NULL;
    }
    return rc;
}

void dc_fcgi_app_destroy(dc_fcgi_app_t *app)
{
    if (app->shipper)
        dc_shipper_destroy(app->shipper);
    app->shipper = NULL;
    if (app->spool)
        dc_spool_close(app->spool);
    app->spool = NULL;
    if (app->svc.store)
        dc_store_close(app->svc.store);
    app->svc.store = NULL;
    if (app->source)
        dc_source_destroy(app->source);
    app->source = NULL;
    dc_slot_clear(&app->svc.slot);
    pthread_rwlock_destroy(&app->options_lock);
}

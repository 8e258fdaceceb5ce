/*
 * decision-fcgi's running state: the service (common/'s dc_service_t), the
 * settings it was built from, the bucketing source and its poller thread.
 *
 * Request threads only read. Everything that changes the service runs on the
 * poller thread: config refreshes (dc_slot_publish, lock-free for readers)
 * and SIGHUP reloads. A reload swaps the API options and the store under
 * options_lock: requests hold it for reading while dc_api_handle() runs, so
 * the old options and store are released only when no request uses them.
 * It is a writer-preferring lock (a reload is not starved by a busy server)
 * and uncontended otherwise: one atomic add per request.
 */
#ifndef DC_FCGI_APP_H
#define DC_FCGI_APP_H

#include "dc_api.h"
#include "dc_settings.h"
#include "dc_shipper.h"
#include "dc_source.h"
#include "dc_spool.h"

#include <apr_pools.h>
#include <pthread.h>

typedef struct {
    const char *config_file; /* --config or CONFIG_FILE */
    const char *threads;     /* --threads */
    const char *listen;      /* --listen */
    const char *const *argv; /* for /v2/metrics "cmdline" */
    int inherited_fd;        /* a listening socket passed by systemd (LISTEN_FDS), 0: none */
} dc_fcgi_args_t;

typedef struct {
    apr_pool_t *pool;            /* the process's */
    dc_fcgi_args_t args;
    dc_service_t svc;
    pthread_rwlock_t options_lock;
    apr_size_t max_body_size;    /* svc.opt's, read without the lock (__atomic) to read bodies */

    apr_pool_t *gen_pool;        /* holds the current settings */
    dc_settings_t *settings;
    apr_pool_t *store_pool;      /* holds svc.store (kept across reloads that keep its URI) */

    apr_pool_t *source_pool;
    dc_source_t *source;
    int cgi;                     /* one request, no threads */
    int n_threads;               /* request threads (1 in CGI mode): one metrics slot each */
    dc_spool_t *spool;           /* NULL: events are not collected */
    dc_shipper_t *shipper;       /* NULL: another process ships (or CGI mode) */
    int shipper_started;
    int fetched_at_start;        /* the URL was asked before serving */

    /* poller thread */
    pthread_t poller;
    int poller_started;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    int stopping;                /* under mutex */
    int reload_requested;        /* under mutex */
    int poller_done;             /* under mutex */
} dc_fcgi_app_t;

/*
 * Reads the settings (file, environment, command line) into a new settings
 * object in p. Returns NULL after printing every problem on stderr.
 */
dc_settings_t *dc_fcgi_read_settings(apr_pool_t *p, const dc_fcgi_args_t *args);

/* Builds the service from valid settings: store, source, initial config.
 * In CGI mode, a stale or missing config is fetched once, synchronously.
 * Returns 0, or -1 after logging why. */
int dc_fcgi_app_start(dc_fcgi_app_t *app, apr_pool_t *p, const dc_fcgi_args_t *args,
                      dc_settings_t *settings, int cgi);

/* The background threads: the poller (refreshes every POLLING_INTERVAL,
 * reloads on request) and the event shipper. */
int dc_fcgi_app_start_threads(dc_fcgi_app_t *app);
void dc_fcgi_app_request_reload(dc_fcgi_app_t *app);
/* Stops the poller (waiting until deadline at most), then the shipper, which
 * delivers what it can before flush_deadline, and closes the spool. Returns
 * 0 when every thread stopped (the app may then be destroyed). */
int dc_fcgi_app_stop_threads(dc_fcgi_app_t *app, apr_time_t deadline, apr_time_t flush_deadline);
void dc_fcgi_app_destroy(dc_fcgi_app_t *app);

/* THREADS, or cores x 2. */
int dc_fcgi_thread_count(const dc_settings_t *s);

/* Installs the stderr log sink for LOG_FORMAT / LOG_LEVEL. */
void dc_fcgi_log_init(dc_log_format_e format, dc_log_level_e level);

#endif

/*
 * mod_decision: what the module's glue files share.
 *
 * The module is split by lifetime, not by feature:
 *   mod_decision.c     directives, per-vhost merge, hooks, the request handler
 *   decision_feed.c    a service's config feed: the parent's initial load, the
 *                      watchdog poller (one child for the whole server) and the
 *                      per-child reload when the shared generation moves
 *   decision_memstore.c the "memory" assignment store: a dc_table in shared
 *                      memory, shared by every child
 *   decision_events.c  the event spool of each child and the one shipper
 *
 * Everything lives in pconf (recreated on every restart: the module is
 * unloaded and reloaded, so nothing is kept in statics across generations)
 * or in a child's pool. The only cross-process state is two APR shared memory
 * segments: the feeds' generation counters, and the memory store's table.
 */
#ifndef MOD_DECISION_H
#define MOD_DECISION_H

#include "httpd.h"
#include "http_config.h"
#include "mod_watchdog.h"

#include "dc_api.h"
#include "dc_shipper.h"
#include "dc_source.h"
#include "dc_spool.h"

#include <apr_shm.h>

/* One service per distinct configuration: its API options, config slot,
 * source and store. Vhosts that set no Decision* directive share the main
 * server's. */
typedef struct decision_service decision_service_t;

typedef struct {
    const char *env_id;
    const char *api_key;
    const char *url;            /* "none": do not poll */
    const char *file;
    const char *lkg;
    const char *store_uri;
    const char *cors_origins;
    apr_interval_time_t interval; /* 0: unset */
    apr_size_t max_body;          /* 0: unset */
    int cors;                     /* -1: unset */
    int require_key;              /* a dc_api_key_mode_e, -1: unset */
    int metrics;                  /* DecisionMetrics: -1 unset */
    int keepalive_on_worker;      /* DecisionKeepAliveOnWorker: -1 unset */
    int ofrep_activate;           /* DecisionOFREPActivate: -1 unset */
    apr_int64_t shared_config;    /* DecisionSharedConfigSize in bytes: -1 unset, 0 off */
    const char *prometheus_path;  /* DecisionPrometheusPath; "none" = off */
    const char *swagger_ui;       /* DecisionSwaggerUI; "none" = the plain page */
    const char *spool_dir;        /* DecisionSpool: events on; NULL = not collected */
    const char *spool_options;    /* DecisionSpoolOptions */
    const char *collector;        /* DecisionCollector */
    apr_table_t *otel_settings;   /* DecisionOTel*: OTEL_* name -> value (main server only) */
    struct dc_otel *otel;         /* the tracer (main server only, post_config) */
    int own;                      /* a Decision* directive appears in this server's scope */
    decision_service_t *svc;      /* set in post_config; NULL: not configured */
} decision_srv_conf_t;

typedef struct {
    int export_flags;             /* DecisionExport: -1 unset */
    const char *visitor_cookie;   /* DecisionVisitorCookie */
    const char *visitor_header;   /* DecisionVisitorHeader */
} decision_dir_conf_t;

/* What one service shares between processes: its config generation, and the
 * poller's source status for the pages every child renders (the poller runs
 * in one child; the strings of dc_source_status_t are arrays or literals of
 * this module, valid in every process forked from the same parent). */
typedef struct {
    volatile apr_uint32_t generation;
    char digest[20];
    volatile apr_uint32_t status_seq; /* odd while the poller or the shipper writes */
    int has_status, has_ship;
    dc_source_status_t status;
    dc_shipper_stats_t ship;
} __attribute__((aligned(64))) decision_generation_t;

struct decision_service {
    dc_service_t api;
    dc_source_t *source;
    server_rec *s;
    const char *name;             /* for logs: the env id or the file */
    const char *reload_path;      /* what children re-read: last-known-good, or the local file */
    const char *lkg;
    apr_interval_time_t interval;
    unsigned index;               /* its counter in the shared segment */
    decision_generation_t *shared;
    struct dc_share *share;       /* snapshots parsed once for every child; NULL: off */
    pid_t parent;                 /* httpd's parent: new files go to the share elsewhere */
    int share_warned;             /* a file could not be shared: logged once per streak */
    volatile apr_uint32_t slot_users; /* watchdog callbacks touching api.slot (decision_feed.c) */
    volatile apr_uint32_t leaving;    /* the child is exiting: they keep out */
    apr_uint32_t seen;            /* the generation this process serves */
    volatile apr_uint32_t reloading;
    int digest_warned;
    dc_spool_options_t spool_opt;             /* .dir NULL: events are not collected */
    dc_shipper_options_t ship_opt;
    dc_spool_t *spool;                        /* this child's handle */
    dc_shipper_t *shipper;                    /* in the watchdog's child only */
    apr_pool_t *ship_pool;
};

#define DECISION_WATCHDOG_NAME "_decision_"

extern module AP_MODULE_DECLARE_DATA decision_module;

/* decision_feed.c */
/* Creates the generation segment for n services (in the parent, post_config). */
apr_status_t decision_feed_shm_create(apr_pool_t *pconf, server_rec *s, unsigned n,
                                      decision_generation_t **gens);
/* Loads the initial config into svc's slot (parent). 0 on success. */
int decision_feed_load_initial(decision_service_t *svc, apr_pool_t *ptemp);
/* Registers the poller (and the children's catch-up) with decision_singleton.c. */
void decision_feed_register_poller(decision_service_t *svc, apr_pool_t *pconf);
/* dc_source's parse (dc_config_parse_fn, baton the service): in a child, into
 * the service's share for every child; else, or when it cannot be shared,
 * privately. */
int decision_feed_parse(void *svc, const char *data, size_t len, dc_config_t **out,
                        dc_config_error_t *err);
/* child_init: the child's references to shared snapshots are given back
 * with pchild. */
void decision_feed_child_init(decision_service_t *svc, apr_pool_t *pchild);
/* On the request path: re-reads the config when the shared generation moved. */
void decision_feed_catch_up(decision_service_t *svc);
/* dc_metrics_extra_fn: the poller's source status, from shared memory. */
void decision_feed_status(void *svc, dc_metrics_extra_t *out);

/* decision_singleton.c: background work in one child, or in every child, run
 * by a mod_watchdog callback of each child (fn gets mod_watchdog's states). */
/* post_config, before any task is registered. NULL or an error message. */
const char *decision_singleton_create(apr_pool_t *pconf, server_rec *s);
void decision_singleton_register(apr_pool_t *pconf, apr_interval_time_t interval,
                                 ap_watchdog_callback_fn_t *fn, void *data);
void decision_every_child_register(apr_pool_t *pconf, apr_interval_time_t interval,
                                   ap_watchdog_callback_fn_t *fn, void *data);
/* post_config, after the tasks: the callback that runs them. */
const char *decision_singleton_start(apr_pool_t *pconf);

/* decision_events.c */
/* Parent, post_config: the spool directory and the shipper's callback. */
const char *decision_events_prepare(decision_service_t *svc, apr_pool_t *pconf,
                                    apr_pool_t *ptemp);
void decision_events_child_init(decision_service_t *svc, apr_pool_t *pchild);

/* decision_otel.c */
/* The handler of every DecisionOTel* directive; cmd_data: the OTEL_* name it sets. */
const char *decision_otel_set(cmd_parms *cmd, void *dc, const char *arg);
/* check_config: NULL, or an error naming the directive or variable. */
const char *decision_otel_check(apr_pool_t *ptemp, server_rec *main_s);
/* post_config, after the services are built: the tracer, given to each service. */
const char *decision_otel_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_s);
/* child_init: starts this child's exporter; it is flushed and joined when the child exits. */
void decision_otel_child_init(apr_pool_t *pchild, server_rec *main_s);

/* decision_memstore.c */
void decision_memstore_register_mutex(apr_pool_t *pconf);
/* Validates a "memory[?size=BYTES|max_entries=N]" URI; NULL or an error. */
const char *decision_memstore_check_uri(apr_pool_t *p, const char *uri);
/* Opens the server-wide shared store (once per generation). */
dc_store_t *decision_memstore_open(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                                   const char *uri, char *err, size_t err_len);

#endif

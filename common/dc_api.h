/*
 * dc_api: the decision HTTP API, independent of any web server.
 *
 *     (method, path, query, headers, body)  →  (status, headers, body)
 *
 * Both front ends (the httpd module and decision-fcgi) translate their
 * server's request into a dc_request_t, call dc_api_handle(), and write the
 * dc_response_t back. Routing, JSON parsing and validation, error bodies,
 * CORS and the API key check live here once.
 *
 * Routes (under a "/v2" path segment, wherever the API is mounted):
 *   POST /v2/campaigns[?mode=simple|normal|full&exposeAllKeys&sendContextEvent&extras]
 *   POST /v2/campaigns/{id or slug}
 *   POST /v2/flags
 *   POST /v2/activate
 *   POST /v2/{envId}/campaigns   (what Flagship SDKs call with decisionApiUrl)
 *   POST /ofrep/v1/evaluate/flags/{key}, /ofrep/v1/evaluate/flags (OpenFeature's
 *        OFREP, under an "/ofrep/v1" path segment wherever mounted: doc/ofrep.md)
 *   GET  /v2/metrics, /v2/health, /v2/ready, /iserver/nsessions and the
 *        Prometheus path (opt.prometheus_path): see dc_status.h
 *   GET  /v2/swagger/doc.json, /v2/swagger/index.html, ...: see dc_openapi.h
 *
 * Metrics: when svc->metrics is set, every request is timed and counted in
 * req->metrics_slot (slot 0 when the front end leaves it NULL), and its
 * store operations too; with svc->metrics NULL nothing is measured.
 */
#ifndef DC_API_H
#define DC_API_H

#include "dc_config.h"
#include "dc_metrics.h"
#include "dc_slot.h"
#include "dc_source.h"
#include "dc_store.h"

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* One event for the data collection, as produced by a request. The JSON
 * object lacks "qt" (queue time): whoever sends it adds qt_base plus the
 * milliseconds between received_ms and the send. */
typedef struct {
    const char *json;
    size_t json_len;
    int64_t received_ms;
    int64_t qt_base;
} dc_hit_t;

/* Where hits go. Returns 0 when every hit is durably accepted, 1 when they are but the
 * sink took its slow way (the spool's ring was full: counted in metrics), -1 otherwise. */
typedef int dc_hit_sink_fn(void *baton, apr_pool_t *p, const dc_hit_t *hits, size_t n);

#define DC_DEFAULT_MAX_BODY_SIZE (1024 * 1024)
#define DC_DEFAULT_CORS_HEADERS \
    "Content-Type,Authorization,X-Api-Key,X-Sdk-Client,X-Sdk-Version,X-Pop,If-None-Match"

/* Which routes need the API key (opt.require_api_key). /v2/health never does.
 * DC_API_KEY_DECISIONS exists because Flagship SDKs post activations without
 * one (the Python SDK) or to their own cloud: decisions, metrics and status
 * need the key, /v2/activate does not (its body is still validated, and its
 * cid must still be the environment's). */
typedef enum {
    DC_API_KEY_OFF = 0,
    DC_API_KEY_ALL,
    DC_API_KEY_DECISIONS
} dc_api_key_mode_e;

/* For log lines: "not required", "required", "required except on /v2/activate". */
const char *dc_api_key_mode_describe(dc_api_key_mode_e mode);

typedef struct {
    const char *env_id;          /* NULL: any cid is accepted on /v2/activate */
    const char *api_key;         /* checked unless require_api_key is DC_API_KEY_OFF */
    dc_api_key_mode_e require_api_key;
    int cors_enabled;            /* default on */
    const char *cors_origins;    /* default "*" */
    const char *cors_headers;
    apr_size_t max_body_size;    /* default 1 MiB */
    const char *prometheus_path; /* default "/metrics", matched at the end of the path;
                                    NULL or "" = not served */
    int ofrep_activate;          /* OFREP evaluations send activation hits (default off) */
    const char *swagger_ui;      /* URL of an installed Swagger UI (swagger-ui-dist's files);
                                    NULL = /v2/swagger/index.html is our own page */
} dc_api_options_t;

struct dc_otel;
typedef struct dc_service {
    dc_api_options_t opt;
    dc_slot_t slot;             /* the current config snapshot */
    dc_store_t *store;          /* NULL = none */
    dc_hit_sink_fn *hit_sink;   /* NULL = hits are not collected */
    void *hit_baton;
    /* Observability, all optional (dc_metrics.h, dc_status.h). */
    dc_metrics_t *metrics;      /* NULL = nothing measured */
    dc_source_t *source;        /* its status is shown; NULL = none known here */
    dc_metrics_extra_fn *metrics_extra; /* spool figures (and a source status kept elsewhere) */
    void *metrics_extra_baton;
    const char *const *cmdline; /* NULL-terminated, for /v2/metrics "cmdline"; NULL = [] */
    struct dc_otel *otel;       /* NULL = no tracing (dc_otel.h) */
} dc_service_t;

void dc_api_options_default(dc_api_options_t *opt);
int dc_service_init(dc_service_t *svc, apr_pool_t *p);

typedef struct {
    const char *method;
    const char *path;           /* the request path, percent-encoded as received */
    const char *query;          /* without '?', NULL when none */
    const char *body;
    size_t body_len;
    int body_too_large;         /* the front end stopped reading at max_body_size */
    const char *origin;
    const char *x_api_key;
    const char *authorization;
    const char *if_none_match;  /* If-None-Match, for the OFREP bulk route */
    const char *host;           /* the Host header (for /v2/swagger/doc.json's servers); NULL = unknown */
    int https;                  /* the request came over TLS */
    apr_time_t received;
    /* For tracing (dc_otel.h), all optional: the W3C headers as received, and
     * the server's name and port (server.address, server.port). */
    const char *traceparent;
    const char *tracestate;
    const char *server_name;     /* NULL: unknown */
    unsigned server_port;        /* 0: unknown */
    dc_metrics_slot_t *metrics_slot; /* this writer's slot (httpd child, fcgi thread);
                                        NULL = slot 0 of svc->metrics */
} dc_request_t;

typedef struct {
    int status;
    const char *content_type;   /* NULL for no body */
    const char *body;
    size_t body_len;
    apr_table_t *headers;       /* extra headers (CORS, Allow) */
} dc_response_t;

/* Handles one request; everything is allocated in p. Never fails: errors are responses. */
void dc_api_handle(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req, dc_response_t *resp);

/* Whether a path belongs to the API (has a "/v2" or "/ofrep/v1" segment, or ends in
 * /iserver/nsessions), for front ends that share a URL space. The Prometheus
 * path is the service's: compare it with opt.prometheus_path. */
int dc_api_owns_path(const char *path);

/* An error answer: status and {"message": message} (any bytes; not UTF-8 ones become U+FFFD). */
void dc_api_respond_error(apr_pool_t *p, dc_response_t *resp, int status, const char *message);

/* Whether the request carries the API key the service requires (always
 * true when it requires none; /v2/activate's exemption under
 * DC_API_KEY_DECISIONS is dc_api_handle's). For handlers outside dc_api_handle. */
int dc_api_authorized(const dc_service_t *svc, const dc_request_t *req);

#endif

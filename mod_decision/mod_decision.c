/*
 * mod_decision: the Flagship Decision API v2 inside Apache httpd 2.4.
 *
 *     LoadModule decision_module modules/mod_decision.so
 *     DecisionEnvironment my-env-id
 *     <Location /v2>
 *         SetHandler decision
 *     </Location>
 *
 * This file is the adapter and nothing more: it turns directives into a
 * dc_service_t per configuration (server or vhost), a request_rec into a
 * dc_request_t, and the dc_response_t back into the response; dc_api_handle()
 * does routing, JSON, validation, CORS, OPTIONS and the API key, and
 * dc_status_handle() the status page (SetHandler decision-status). Keeping
 * the config fresh is decision_feed.c, the shared "memory" store
 * decision_memstore.c, events decision_events.c. Metrics live in a shared
 * region per service kept in ap_retained_data (so counters survive graceful
 * restarts), one slot per scoreboard worker, summed when a page is read.
 *
 * Lifecycle: directives are checked as they are read (bad numbers, URLs,
 * store URIs) and again as a whole in check_config, which also runs under
 * `apachectl configtest` (a bucketing file that does not parse, RequireApiKey
 * without a key, missing helper modules), so a broken configuration never
 * reaches a restart. post_config (its second run at start, and once per
 * restart) builds the services in pconf, loads their initial config in the
 * parent and registers their pollers; a pconf cleanup releases them in the
 * parent, so restarts leak nothing.
 */
#include "mod_decision.h"

#include "dc_buf.h"
#include "dc_hash.h"
#include "dc_log.h"
#include "dc_share.h"
#include "dc_settings.h"
#include "dc_openapi.h"
#include "dc_status.h"
#include "dc_store.h"

#include "ap_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_expr.h"
#include "mod_watchdog.h"
#include "ap_mpm.h"
#include "scoreboard.h"
#include "unixd.h"
#include "util_cookies.h"

#include <curl/curl.h>

#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#define DECISION_HANDLER "decision"
#define DECISION_STATUS_HANDLER "decision-status"
#define DECISION_MAX_INTERVAL_S (24 * 3600)
#define DECISION_MAX_BODY_LIMIT DC_CONFIG_MAX_BYTES
#define DECISION_MAX_ENV_ID_LEN 128
/* DecisionSharedConfigSize: a 1.65 MB file with 1,000 campaigns takes 8 MB */
#define DECISION_DEFAULT_SHARED_CONFIG (32 * 1024 * 1024)
#define DECISION_MIN_SHARED_CONFIG (1024 * 1024)
#define DECISION_MAX_SHARED_CONFIG ((apr_int64_t)1024 * 1024 * 1024)
#define DECISION_READ_CHUNK 8192

/* ---- configuration records ---------------------------------------------- */

static void *create_server_conf(apr_pool_t *p, server_rec *s)
{
    decision_srv_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->cors = -1;
    c->require_key = -1;
    c->metrics = -1;
    c->keepalive_on_worker = -1;
    c->ofrep_activate = -1;
    c->shared_config = -1;
    return c;
}

#define MERGE_PTR(field) m->field = add->field ? add->field : base->field
#define MERGE_NUM(field, unset) m->field = add->field != (unset) ? add->field : base->field

static void *merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    decision_srv_conf_t *base = basev, *add = addv, *m = apr_pcalloc(p, sizeof(*m));

    MERGE_PTR(env_id);
    MERGE_PTR(api_key);
    MERGE_PTR(url);
    MERGE_PTR(file);
    MERGE_PTR(lkg);
    MERGE_PTR(store_uri);
    MERGE_PTR(cors_origins);
    MERGE_PTR(prometheus_path);
    MERGE_PTR(swagger_ui);
    MERGE_PTR(spool_dir);
    MERGE_PTR(spool_options);
    MERGE_PTR(collector);
    MERGE_NUM(metrics, -1);
    MERGE_NUM(keepalive_on_worker, -1);
    MERGE_NUM(interval, 0);
    MERGE_NUM(max_body, 0);
    MERGE_NUM(cors, -1);
    MERGE_NUM(require_key, -1);
    MERGE_NUM(ofrep_activate, -1);
    MERGE_NUM(shared_config, -1);
    m->own = add->own;
    return m;
}

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    decision_dir_conf_t *c = apr_pcalloc(p, sizeof(*c));

    c->export_flags = -1;
    return c;
}

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    decision_dir_conf_t *base = basev, *add = addv, *m = apr_pcalloc(p, sizeof(*m));

    MERGE_NUM(export_flags, -1);
    MERGE_PTR(visitor_cookie);
    MERGE_PTR(visitor_header);
    return m;
}

static decision_srv_conf_t *srv_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &decision_module);
}

/* A server serves decisions when it names somewhere to get a config from. */
static int is_configured(const decision_srv_conf_t *c)
{
    return c->env_id || c->file || (c->url && strcmp(c->url, "none") != 0);
}

/* ---- directives ---------------------------------------------------------- */

static decision_srv_conf_t *cmd_conf(cmd_parms *cmd)
{
    decision_srv_conf_t *c = srv_conf(cmd->server);

    c->own = 1;
    return c;
}

static const char *set_env_id(cmd_parms *cmd, void *dc, const char *arg)
{
    size_t len = strlen(arg);

    if (len == 0 || len > DECISION_MAX_ENV_ID_LEN)
        return apr_psprintf(cmd->pool, "%s: an environment id of 1 to %d characters is needed",
                            cmd->cmd->name, DECISION_MAX_ENV_ID_LEN);
    for (const char *c = arg; *c; c++)
        if (!apr_isalnum(*c) && *c != '-' && *c != '_' && *c != '.')
            return apr_psprintf(cmd->pool, "%s: \"%s\" is not an environment id (letters, "
                                           "digits, '-', '_' and '.' only)",
                                cmd->cmd->name, arg);
    cmd_conf(cmd)->env_id = arg;
    return NULL;
}

static const char *set_api_key(cmd_parms *cmd, void *dc, const char *arg)
{
    if (!*arg)
        return apr_psprintf(cmd->pool, "%s: the key must not be empty", cmd->cmd->name);
    cmd_conf(cmd)->api_key = arg;
    return NULL;
}

static const char *set_url(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_uri_t uri;

    if (strcmp(arg, "none") != 0 &&
        (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS || !uri.scheme || !uri.hostname ||
         (strcasecmp(uri.scheme, "http") != 0 && strcasecmp(uri.scheme, "https") != 0)))
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not an http:// or https:// URL (or none)",
                            cmd->cmd->name, arg);
    cmd_conf(cmd)->url = arg;
    return NULL;
}

static const char *set_path(cmd_parms *cmd, const char **field, const char *arg)
{
    const char *path = ap_server_root_relative(cmd->pool, arg);

    if (!*arg || !path)
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a valid path", cmd->cmd->name, arg);
    *field = path;
    return NULL;
}

static const char *set_file(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_path(cmd, &cmd_conf(cmd)->file, arg);
}

static const char *set_lkg(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_path(cmd, &cmd_conf(cmd)->lkg, arg);
}

/* A decimal integer in [min, max], the whole argument. */
static const char *parse_bounded(cmd_parms *cmd, const char *arg, apr_int64_t min,
                                 apr_int64_t max, const char *unit, apr_int64_t *out)
{
    char *end;
    apr_int64_t n;

    errno = 0;
    n = apr_strtoi64(arg, &end, 10);
    if (!*arg || *end || errno || n < min || n > max)
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a number of %s between %" APR_INT64_T_FMT
                                       " and %" APR_INT64_T_FMT,
                            cmd->cmd->name, arg, unit, min, max);
    *out = n;
    return NULL;
}

static const char *set_interval(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_int64_t n;
    const char *err = parse_bounded(cmd, arg, 1, DECISION_MAX_INTERVAL_S, "seconds", &n);

    if (!err)
        cmd_conf(cmd)->interval = apr_time_from_sec(n);
    return err;
}

static const char *set_max_body(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_int64_t n;
    const char *err = parse_bounded(cmd, arg, 1, DECISION_MAX_BODY_LIMIT, "bytes", &n);

    if (!err)
        cmd_conf(cmd)->max_body = (apr_size_t)n;
    return err;
}

static const char *check_store_uri(apr_pool_t *p, const char *uri)
{
    const dc_store_backend_t *backend = dc_store_backend_of(uri);

    if (strcmp(uri, "memory") == 0 || strncmp(uri, "memory?", 7) == 0)
        return decision_memstore_check_uri(p, uri);
    if (strncmp(uri, "dbm:", 4) == 0)
        return uri[4] ? NULL : "dbm: needs a path (dbm:PATH or dbm:TYPE:PATH)";
    if (strncmp(uri, "plugin:", 7) == 0)
        return uri[7] && uri[7] != '?' ? NULL : "plugin: needs the path of a shared object "
                                                "(plugin:/path/to/store.so[?key=value&...])";
    if (backend)
        return NULL; /* checked in full by dc_store_open in check_config */
    /* not echoed: a mistyped redis URI may hold a password */
    return apr_pstrcat(p, "unknown store: ", dc_store_usage(p), NULL);
}

/* "plugin:PATH[?options]" with PATH made absolute (relative to ServerRoot). */
static const char *plugin_uri_absolute(apr_pool_t *p, const char *uri)
{
    const char *query = strchr(uri, '?');
    const char *path = apr_pstrmemdup(p, uri + 7, query ? (size_t)(query - uri - 7)
                                                        : strlen(uri + 7));

    path = ap_server_root_relative(p, path);
    return path ? apr_pstrcat(p, "plugin:", path, query ? query : "", NULL) : NULL;
}

/* "dbm:[TYPE:]PATH" with PATH made absolute (relative to ServerRoot, as
 * every other path in httpd's configuration is). */
static const char *dbm_uri_absolute(apr_pool_t *p, const char *uri)
{
    static const char *const types[] = {"default:", "gdbm:", "sdbm:", "db:", NULL};
    const char *rest = uri + 4, *type = "";

    for (int i = 0; types[i]; i++)
        if (strncmp(rest, types[i], strlen(types[i])) == 0) {
            type = types[i];
            rest += strlen(type);
            break;
        }
    rest = ap_server_root_relative(p, rest);
    return rest ? apr_pstrcat(p, "dbm:", type, rest, NULL) : NULL;
}

static const char *set_store(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = check_store_uri(cmd->pool, arg);

    if (!err && strncmp(arg, "dbm:", 4) == 0 && !(arg = dbm_uri_absolute(cmd->pool, arg)))
        err = "dbm: the path is not valid";
    if (!err && strncmp(arg, "plugin:", 7) == 0 && !(arg = plugin_uri_absolute(cmd->pool, arg)))
        err = "plugin: the path is not valid";
    if (err)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    cmd_conf(cmd)->store_uri = arg;
    return NULL;
}

static const char *set_cors(cmd_parms *cmd, void *dc, int on)
{
    cmd_conf(cmd)->cors = on;
    return NULL;
}

static const char *set_ofrep_activate(cmd_parms *cmd, void *dc, int on)
{
    cmd_conf(cmd)->ofrep_activate = on;
    return NULL;
}

static const char *add_cors_origin(cmd_parms *cmd, void *dc, const char *arg)
{
    decision_srv_conf_t *c = cmd_conf(cmd);

    for (const char *ch = arg; *ch; ch++)
        if (apr_iscntrl(*ch) || *ch == ',' || *ch == ' ')
            return apr_psprintf(cmd->pool, "%s: \"%s\" is not an origin", cmd->cmd->name, arg);
    /* Emitted verbatim, comma-joined, as the decision-api does. */
    c->cors_origins = c->cors_origins ? apr_pstrcat(cmd->pool, c->cors_origins, ",", arg, NULL)
                                      : arg;
    return NULL;
}

static const char *set_require_key(cmd_parms *cmd, void *dc, const char *arg)
{
    dc_api_key_mode_e mode;

    if (dc_parse_api_key_mode(arg, &mode) < 0)
        return apr_psprintf(cmd->pool, "%s: expected on, off or decisions, not \"%s\"",
                            cmd->cmd->name, arg);
    cmd_conf(cmd)->require_key = (int)mode;
    return NULL;
}

static const char *set_shared_config(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_int64_t n, unit = 1;
    char *end;

    if (strcasecmp(arg, "off") == 0) {
        cmd_conf(cmd)->shared_config = 0;
        return NULL;
    }
    errno = 0;
    n = apr_strtoi64(arg, &end, 10);
    if (*end && !end[1])
        switch (*end) {
        case 'K': case 'k': unit = 1024; end++; break;
        case 'M': case 'm': unit = 1024 * 1024; end++; break;
        case 'G': case 'g': unit = 1024 * 1024 * 1024; end++; break;
        }
    if (end == arg || *end || errno || n < 1 || n > DECISION_MAX_SHARED_CONFIG / unit ||
        n * unit < DECISION_MIN_SHARED_CONFIG)
        return apr_psprintf(cmd->pool, "%s: expected Off or a size from 1M to 1G (a number of "
                                       "bytes, or of K, M or G), not \"%s\"",
                            cmd->cmd->name, arg);
    cmd_conf(cmd)->shared_config = n * unit;
    return NULL;
}

static const char *set_keepalive_on_worker(cmd_parms *cmd, void *dc, int on)
{
    cmd_conf(cmd)->keepalive_on_worker = on;
    return NULL;
}

static const char *set_metrics(cmd_parms *cmd, void *dc, int on)
{
    cmd_conf(cmd)->metrics = on;
    return NULL;
}

static const char *set_prometheus_path(cmd_parms *cmd, void *dc, const char *arg)
{
    if (strcmp(arg, "none") != 0 && (arg[0] != '/' || strpbrk(arg, "?# \t")))
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a path (/metrics) or none",
                            cmd->cmd->name, arg);
    cmd_conf(cmd)->prometheus_path = arg;
    return NULL;
}

static const char *set_swagger_ui(cmd_parms *cmd, void *dc, const char *arg)
{
    if (strcmp(arg, "none") != 0 && !dc_openapi_ui_url_valid(arg))
        return apr_psprintf(cmd->pool, "%s: \"%s\" is not a path (/swagger-ui), an http(s):// URL "
                            "or none", cmd->cmd->name, arg);
    cmd_conf(cmd)->swagger_ui = arg;
    return NULL;
}

static const char *set_spool(cmd_parms *cmd, void *dc, const char *arg)
{
    return set_path(cmd, &cmd_conf(cmd)->spool_dir, arg);
}

static const char *set_spool_options(cmd_parms *cmd, void *dc, const char *arg)
{
    dc_spool_options_t opt;
    char err[256];

    dc_spool_options_default(&opt);
    if (dc_spool_options_parse(&opt, arg, err, sizeof(err)) < 0)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    cmd_conf(cmd)->spool_options = arg;
    return NULL;
}

static const char *set_collector(cmd_parms *cmd, void *dc, const char *arg)
{
    char err[256];

    if (dc_shipper_check_collector(cmd->pool, arg, err, sizeof(err)) < 0)
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    cmd_conf(cmd)->collector = arg;
    return NULL;
}

static const char *set_export(cmd_parms *cmd, void *dcv, int on)
{
    ((decision_dir_conf_t *)dcv)->export_flags = on;
    return NULL;
}

static const char *set_visitor_cookie(cmd_parms *cmd, void *dcv, const char *arg)
{
    ((decision_dir_conf_t *)dcv)->visitor_cookie = arg;
    return NULL;
}

static const char *set_visitor_header(cmd_parms *cmd, void *dcv, const char *arg)
{
    ((decision_dir_conf_t *)dcv)->visitor_header = arg;
    return NULL;
}

static const command_rec decision_cmds[] = {
    AP_INIT_TAKE1("DecisionEnvironment", set_env_id, NULL, RSRC_CONF,
                  "Flagship environment id this server decides for"),
    AP_INIT_TAKE1("DecisionApiKey", set_api_key, NULL, RSRC_CONF,
                  "API key callers present in X-API-Key or Authorization: Bearer"),
    AP_INIT_TAKE1("DecisionBucketingURL", set_url, NULL, RSRC_CONF,
                  "URL of the bucketing file to poll (default: the Flagship CDN for the "
                  "environment; none: do not poll)"),
    AP_INIT_TAKE1("DecisionBucketingFile", set_file, NULL, RSRC_CONF,
                  "local bucketing file (offline use, re-read when it changes)"),
    AP_INIT_TAKE1("DecisionPollInterval", set_interval, NULL, RSRC_CONF,
                  "seconds between two refreshes of the bucketing file (default 60)"),
    AP_INIT_TAKE1("DecisionStore", set_store, NULL, RSRC_CONF,
                  "assignment store: none, memory[?size=BYTES], dbm:PATH, "
                  "redis://host:port[/db], dynamo://TABLE[?options] or plugin:/path/to/store.so[?key=value&...]"),
    AP_INIT_TAKE1("DecisionLastKnownGood", set_lkg, NULL, RSRC_CONF,
                  "where the last accepted remote config is kept (default: under "
                  "DefaultRuntimeDir)"),
    AP_INIT_FLAG("DecisionCORS", set_cors, NULL, RSRC_CONF,
                 "On to add CORS headers and answer OPTIONS preflights (default On)"),
    AP_INIT_ITERATE("DecisionCORSOrigins", add_cors_origin, NULL, RSRC_CONF,
                    "Access-Control-Allow-Origin value(s) (default *)"),
    AP_INIT_TAKE1("DecisionRequireApiKey", set_require_key, NULL, RSRC_CONF,
                  "On to answer 401 to requests without the DecisionApiKey, decisions to "
                  "require it everywhere but on /v2/activate (default Off)"),
    AP_INIT_FLAG("DecisionOFREPActivate", set_ofrep_activate, NULL, RSRC_CONF,
                 "On to send an activation hit for the campaigns an OFREP evaluation shows, "
                 "like /v2/flags with trigger_hit (default Off)"),
    AP_INIT_TAKE1("DecisionMaxBodySize", set_max_body, NULL, RSRC_CONF,
                  "largest request body accepted, in bytes (default 1048576)"),
    AP_INIT_TAKE1("DecisionSharedConfigSize", set_shared_config, NULL, RSRC_CONF,
                  "room for one configuration parsed once for every child, in each of the "
                  "4 slots of shared memory (default 32M; Off: each child parses its own)"),
    AP_INIT_FLAG("DecisionKeepAliveOnWorker", set_keepalive_on_worker, NULL, RSRC_CONF,
                 "On (event MPM) to keep a connection that asked for a decision on its worker "
                 "thread until it closes, as the worker MPM does: less CPU and latency per "
                 "request, one thread per open connection (default Off)"),
    AP_INIT_FLAG("DecisionMetrics", set_metrics, NULL, RSRC_CONF,
                 "On to count requests, latencies and store operations for /v2/metrics, "
                 "Prometheus and the status page (default On)"),
    AP_INIT_TAKE1("DecisionPrometheusPath", set_prometheus_path, NULL, RSRC_CONF,
                  "path ending a request for the Prometheus text format (default /metrics; "
                  "none: off)"),
    AP_INIT_TAKE1("DecisionSwaggerUI", set_swagger_ui, NULL, RSRC_CONF,
                  "where Swagger UI (swagger-ui-dist's files) is installed; /v2/swagger/index.html "
                  "then loads it (default none: the plain reference page)"),
    AP_INIT_TAKE1("DecisionSpool", set_spool, NULL, RSRC_CONF,
                  "directory of the durable event spool; events (hits) are collected only "
                  "with it"),
    AP_INIT_TAKE1("DecisionSpoolOptions", set_spool_options, NULL, RSRC_CONF,
                  "event spool settings: fsync=always|never|100ms,max-bytes=1g,..."),
    AP_INIT_TAKE1("DecisionCollector", set_collector, NULL, RSRC_CONF,
                  "where the shipper sends events (default https://ariane.abtasty.com; "
                  "file:/DIR writes JSON lines; s3://BUCKET/PREFIX and "
                  "azblob://ACCOUNT/CONTAINER/PREFIX upload gzipped JSON lines)"),
    /* OpenTelemetry (decision_otel.c): each sets one OTEL_* variable, main server only */
    AP_INIT_TAKE1("DecisionOTelDisabled", decision_otel_set, "OTEL_SDK_DISABLED", RSRC_CONF,
                  "true: export nothing, whatever else is set (OTEL_SDK_DISABLED)"),
    AP_INIT_TAKE1("DecisionOTelEndpoint", decision_otel_set, "OTEL_EXPORTER_OTLP_ENDPOINT", RSRC_CONF,
                  "OTLP/HTTP collector base URL; tracing and metrics export are off without one (OTEL_EXPORTER_OTLP_ENDPOINT)"),
    AP_INIT_TAKE1("DecisionOTelTracesEndpoint", decision_otel_set, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", RSRC_CONF,
                  "OTLP/HTTP traces URL, used as is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"),
    AP_INIT_TAKE1("DecisionOTelMetricsEndpoint", decision_otel_set, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", RSRC_CONF,
                  "OTLP/HTTP metrics URL, used as is (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)"),
    AP_INIT_TAKE1("DecisionOTelProtocol", decision_otel_set, "OTEL_EXPORTER_OTLP_PROTOCOL", RSRC_CONF,
                  "http/protobuf (the only one) (OTEL_EXPORTER_OTLP_PROTOCOL)"),
    AP_INIT_TAKE1("DecisionOTelHeaders", decision_otel_set, "OTEL_EXPORTER_OTLP_HEADERS", RSRC_CONF,
                  "headers of every export: key=value,... (OTEL_EXPORTER_OTLP_HEADERS)"),
    AP_INIT_TAKE1("DecisionOTelCompression", decision_otel_set, "OTEL_EXPORTER_OTLP_COMPRESSION", RSRC_CONF,
                  "gzip or none (OTEL_EXPORTER_OTLP_COMPRESSION)"),
    AP_INIT_TAKE1("DecisionOTelTimeout", decision_otel_set, "OTEL_EXPORTER_OTLP_TIMEOUT", RSRC_CONF,
                  "milliseconds an export request may take (10000) (OTEL_EXPORTER_OTLP_TIMEOUT)"),
    AP_INIT_TAKE1("DecisionOTelTracesExporter", decision_otel_set, "OTEL_TRACES_EXPORTER", RSRC_CONF,
                  "otlp or none (OTEL_TRACES_EXPORTER)"),
    AP_INIT_TAKE1("DecisionOTelMetricsExporter", decision_otel_set, "OTEL_METRICS_EXPORTER", RSRC_CONF,
                  "otlp or none (OTEL_METRICS_EXPORTER)"),
    AP_INIT_TAKE1("DecisionOTelServiceName", decision_otel_set, "OTEL_SERVICE_NAME", RSRC_CONF,
                  "service.name of the resource (OTEL_SERVICE_NAME)"),
    AP_INIT_TAKE1("DecisionOTelResourceAttributes", decision_otel_set, "OTEL_RESOURCE_ATTRIBUTES", RSRC_CONF,
                  "resource attributes: key=value,... (OTEL_RESOURCE_ATTRIBUTES)"),
    AP_INIT_TAKE1("DecisionOTelSampler", decision_otel_set, "OTEL_TRACES_SAMPLER", RSRC_CONF,
                  "always_on, always_off, traceidratio, parentbased_* (parentbased_always_on) (OTEL_TRACES_SAMPLER)"),
    AP_INIT_TAKE1("DecisionOTelSamplerArg", decision_otel_set, "OTEL_TRACES_SAMPLER_ARG", RSRC_CONF,
                  "the traceidratio samplers' ratio, 0 to 1 (OTEL_TRACES_SAMPLER_ARG)"),
    AP_INIT_TAKE1("DecisionOTelMetricInterval", decision_otel_set, "OTEL_METRIC_EXPORT_INTERVAL", RSRC_CONF,
                  "milliseconds between metric exports (60000) (OTEL_METRIC_EXPORT_INTERVAL)"),
    AP_INIT_TAKE1("DecisionOTelScheduleDelay", decision_otel_set, "OTEL_BSP_SCHEDULE_DELAY", RSRC_CONF,
                  "milliseconds between span exports (5000) (OTEL_BSP_SCHEDULE_DELAY)"),
    AP_INIT_TAKE1("DecisionOTelMaxQueueSize", decision_otel_set, "OTEL_BSP_MAX_QUEUE_SIZE", RSRC_CONF,
                  "spans a child holds for export; more are dropped and counted (2048) (OTEL_BSP_MAX_QUEUE_SIZE)"),
    AP_INIT_TAKE1("DecisionOTelMaxExportBatchSize", decision_otel_set, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", RSRC_CONF,
                  "spans per export request (512) (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)"),
    AP_INIT_FLAG("DecisionExport", set_export, NULL, OR_OPTIONS,
                 "On to put the visitor's flags in DECISION_FLAGS for other handlers"),
    AP_INIT_TAKE1("DecisionVisitorCookie", set_visitor_cookie, NULL, OR_OPTIONS,
                  "cookie holding the visitor id for DecisionExport"),
    AP_INIT_TAKE1("DecisionVisitorHeader", set_visitor_header, NULL, OR_OPTIONS,
                  "request header holding the visitor id for DecisionExport"),
    {NULL},
};

/* ---- logging ------------------------------------------------------------- */

static void log_sink(void *baton, dc_log_level_e level, const char *msg)
{
    static const int ap_levels[] = {APLOG_ERR, APLOG_WARNING, APLOG_INFO, APLOG_DEBUG,
                                    APLOG_TRACE1};

    ap_log_error(APLOG_MARK, ap_levels[level <= DC_LOG_TRACE ? level : DC_LOG_TRACE], 0,
                 (server_rec *)baton, "%s", msg);
}

static void install_log_sink(server_rec *s)
{
    int ap_level = ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX);
    dc_log_level_e max = ap_level >= APLOG_TRACE1  ? DC_LOG_TRACE
                         : ap_level >= APLOG_DEBUG ? DC_LOG_DEBUG
                         : ap_level >= APLOG_INFO  ? DC_LOG_INFO
                         : ap_level >= APLOG_WARNING ? DC_LOG_WARN
                                                     : DC_LOG_ERROR;

    dc_log_set_sink(log_sink, s, max);
}

/* ---- check_config: what configtest must refuse --------------------------- */

static int fail(server_rec *s, const char *msg)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, DCLOGNO(10400) "%s", msg);
    return HTTP_INTERNAL_SERVER_ERROR;
}

static int check_one(apr_pool_t *ptemp, server_rec *s, decision_srv_conf_t *c)
{
    const char *where = apr_psprintf(ptemp, "%s:%u", s->server_hostname ? s->server_hostname : "",
                                     s->port);

    if (c->require_key > DC_API_KEY_OFF && !c->api_key)
        return fail(s, apr_psprintf(ptemp, "DecisionRequireApiKey %s needs a DecisionApiKey "
                                           "(server %s)",
                                    c->require_key == DC_API_KEY_DECISIONS ? "decisions" : "on",
                                    where));
    if (!is_configured(c)) {
        if (c->own && (c->api_key || c->store_uri || c->lkg || c->interval))
            return fail(s, apr_psprintf(ptemp, "Decision* directives in server %s need "
                                               "DecisionEnvironment or DecisionBucketingFile",
                                        where));
        return OK;
    }
    if (!c->file && c->url && strcmp(c->url, "none") == 0)
        return fail(s, apr_psprintf(ptemp, "DecisionBucketingURL none needs a "
                                           "DecisionBucketingFile (server %s)", where));
    if (c->file) {
        dc_config_t *cfg;
        dc_config_error_t err;

        if (dc_config_load_file(c->file, &cfg, &err) < 0)
            return fail(s, apr_psprintf(ptemp, "DecisionBucketingFile %s: %s%s%s", c->file,
                                        err.path, err.path[0] ? ": " : "", err.text));
        dc_config_unref(cfg);
    }
    /* Stores whose open checks more than the URI (a Redis URI's parts, a plugin's
     * object and options) are opened once here, so configtest refuses them. */
    if (c->store_uri &&
        (strncmp(c->store_uri, "redis", 5) == 0 || strncmp(c->store_uri, "plugin:", 7) == 0)) {
        char err[512];
        dc_store_t *st = dc_store_open(ptemp, c->store_uri, err, sizeof(err));

        if (!st)
            return fail(s, apr_psprintf(ptemp, "DecisionStore: %s", err));
        dc_store_close(st);
    }
    if (!APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance))
        return fail(s, "mod_decision needs mod_watchdog to keep its configuration fresh "
                       "(LoadModule watchdog_module)");
    return OK;
}

static int decision_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                 server_rec *main_s)
{
    apr_hash_t *spools = apr_hash_make(ptemp);
    const char *otel_err = decision_otel_check(ptemp, main_s);

    if (otel_err)
        return fail(main_s, otel_err);
    for (server_rec *s = main_s; s; s = s->next) {
        decision_srv_conf_t *c = srv_conf(s);
        int rc = check_one(ptemp, s, c);

        if (rc != OK)
            return rc;
        /* one shipper per directory: two would send the same segments */
        if (c->spool_dir && is_configured(c) && (s == main_s || c->own)) {
            if (apr_hash_get(spools, c->spool_dir, APR_HASH_KEY_STRING))
                return fail(s, apr_psprintf(ptemp, "DecisionSpool %s: already the spool of "
                                                   "another configuration; give each its own",
                                            c->spool_dir));
            apr_hash_set(spools, c->spool_dir, APR_HASH_KEY_STRING, c);
        }
    }
    return OK;
}

/* ---- post_config: build the services ------------------------------------- */

/* What tells a service apart across restarts (its default file names, its
 * retained metrics). */
static const char *service_identity(apr_pool_t *p, server_rec *s, const decision_srv_conf_t *c)
{
    return apr_psprintf(p, "%s|%s|%s|%s:%u", c->env_id ? c->env_id : "", c->url ? c->url : "",
                        c->file ? c->file : "", s->server_hostname ? s->server_hostname : "",
                        s->port);
}

/* The default last-known-good file: DefaultRuntimeDir/decision/, in a
 * directory the child User owns, so the poller (in a child) can write it. */
static const char *default_lkg(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                               const decision_srv_conf_t *c)
{
    const char *dir = ap_runtime_dir_relative(pconf, "decision");
    const char *identity = service_identity(ptemp, s, c);
    apr_status_t rv = apr_dir_make_recursive(dir, APR_FPROT_UREAD | APR_FPROT_UWRITE |
                                                      APR_FPROT_UEXECUTE | APR_FPROT_GREAD |
                                                      APR_FPROT_GEXECUTE,
                                             ptemp);

    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv))
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     DCLOGNO(10401) "cannot create %s for the last-known-good files", dir);
    if (geteuid() == 0 && chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), s,
                     DCLOGNO(10402) "cannot give %s to the server's User: the last-known-good "
                                    "file will not be updated",
                     dir);
    return apr_psprintf(pconf, "%s/%s-%08x.json", dir, c->env_id ? c->env_id : "local",
                        dc_murmur3_32(identity, strlen(identity), 0));
}

/* The poller runs in a child, as User: say so at start when it could not
 * replace the last-known-good file, rather than at the first change. */
static void check_lkg_writable(apr_pool_t *ptemp, server_rec *s, const char *lkg)
{
    char *dir = ap_make_dirstr_parent(ptemp, lkg);
    apr_finfo_t fi;
    int writable;

    if (geteuid() != 0)
        return; /* children run as this user: dc_source reports what fails */
    if (apr_stat(&fi, dir, APR_FINFO_USER | APR_FINFO_GROUP | APR_FINFO_PROT, ptemp) !=
        APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     DCLOGNO(10406) "DecisionLastKnownGood %s: directory %s does not exist", lkg,
                     dir);
        return;
    }
    writable = (fi.user == ap_unixd_config.user_id && (fi.protection & APR_FPROT_UWRITE)) ||
               (fi.group == ap_unixd_config.group_id && (fi.protection & APR_FPROT_GWRITE)) ||
               (fi.protection & APR_FPROT_WWRITE);
    if (!writable)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     DCLOGNO(10407) "DecisionLastKnownGood %s: the server's User cannot write "
                                    "in %s, so new configurations will not be kept for the next "
                                    "start nor reach the other children",
                     lkg, dir);
}

/* A dbm store opened here, as root, has just created its files (the DBM
 * file or files, and any sidecar such as a lock file, all named PATH*): the
 * children run as User and must write them. */
static void give_dbm_files_to_user(apr_pool_t *ptemp, server_rec *s, const char *uri)
{
    const char *path = strchr(uri + 4, '/'), *base; /* absolute since set_store */
    char *dir;
    apr_dir_t *d;
    apr_finfo_t fi;

    if (geteuid() != 0 || !path)
        return;
    dir = ap_make_dirstr_parent(ptemp, path);
    base = path + strlen(dir);
    if (!*base || apr_dir_open(&d, dir, ptemp) != APR_SUCCESS)
        return;
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        const char *file;

        if (fi.filetype != APR_REG || strncmp(fi.name, base, strlen(base)) != 0)
            continue;
        file = apr_pstrcat(ptemp, dir, fi.name, NULL);
        if (chown(file, ap_unixd_config.user_id, ap_unixd_config.group_id) < 0)
            ap_log_error(APLOG_MARK, APLOG_WARNING, APR_FROM_OS_ERROR(errno), s,
                         DCLOGNO(10408) "DecisionStore %s: cannot give %s to the server's User",
                         uri, file);
    }
    apr_dir_close(d);
}

typedef struct {
    decision_service_t *svc;
    pid_t parent;
} service_cleanup_t;

static apr_status_t release_service(void *data)
{
    service_cleanup_t *sc = data;

    /* Children exit without tearing down what the parent owns. */
    if (getpid() != sc->parent)
        return APR_SUCCESS;
    dc_slot_clear(&sc->svc->api.slot);
    if (sc->svc->source)
        dc_source_destroy(sc->svc->source);
    if (sc->svc->api.store && strcmp(sc->svc->api.store->provider->name, "shm") != 0)
        dc_store_close(sc->svc->api.store);
    return APR_SUCCESS;
}

/* The service's metrics region: APR shared memory kept in retained data (it
 * outlives restarts, so counters stay monotonic across graceful restarts, as
 * dc_metrics_attach() expects), one slot per scoreboard worker (ServerLimit ×
 * ThreadLimit). Recreated only when that number changes. */
typedef struct {
    apr_shm_t *shm;
    size_t n_slots;
} retained_metrics_t;

static dc_metrics_t *metrics_region(server_rec *s, const char *identity, apr_pool_t *ptemp)
{
    const char *key = apr_psprintf(ptemp, "mod_decision:metrics:%08x",
                                   dc_murmur3_32(identity, strlen(identity), 0));
    retained_metrics_t *rm = ap_retained_data_get(key);
    int limit = 0, threads = 0;
    size_t n_slots;
    apr_status_t rv;

    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit);
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_THREADS, &threads);
    n_slots = (limit > 0 ? (size_t)limit : 1) * (threads > 0 ? (size_t)threads : 1);
    if (!rm)
        rm = ap_retained_data_create(key, sizeof(*rm));
    if (rm->shm && rm->n_slots != n_slots) {
        apr_shm_destroy(rm->shm);
        rm->shm = NULL;
    }
    if (!rm->shm) {
        rv = apr_shm_create(&rm->shm, dc_metrics_region_size(n_slots), NULL, s->process->pool);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                         DCLOGNO(10409) "cannot create the metrics region (%" APR_SIZE_T_FMT
                                        " slots); metrics are off",
                         n_slots);
            rm->shm = NULL;
            return NULL;
        }
        rm->n_slots = n_slots;
    }
    return dc_metrics_attach(apr_shm_baseaddr_get(rm->shm), n_slots);
}

/* A URL without its password, for the log. */
static const char *url_for_log(apr_pool_t *p, const char *url)
{
    apr_uri_t uri;

    if (apr_uri_parse(p, url, &uri) != APR_SUCCESS)
        return "(unparsable URL)";
    return apr_uri_unparse(p, &uri, APR_URI_UNP_OMITPASSWORD);
}

static int build_service(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                         decision_srv_conf_t *c, decision_service_t *svc)
{
    dc_source_options_t so;
    service_cleanup_t *sc;
    const char *store_uri = c->store_uri ? c->store_uri : "none", *err_msg;
    char err[512];

    svc->s = s;
    svc->name = c->env_id ? c->env_id : c->file;
    svc->interval = c->interval ? c->interval : DC_SOURCE_DEFAULT_INTERVAL;
    if (dc_service_init(&svc->api, pconf) < 0)
        return fail(s, "cannot initialise a decision service");
    sc = apr_pcalloc(pconf, sizeof(*sc));
    sc->svc = svc;
    sc->parent = getpid();
    apr_pool_cleanup_register(pconf, sc, release_service, apr_pool_cleanup_null);

    if (c->metrics != 0) {
        svc->api.metrics = metrics_region(s, service_identity(ptemp, s, c), ptemp);
    }
    svc->api.cmdline = s->process->argv;
    if (c->prometheus_path)
        svc->api.opt.prometheus_path = strcmp(c->prometheus_path, "none") ? c->prometheus_path
                                                                          : NULL;
    if (c->swagger_ui)
        svc->api.opt.swagger_ui = strcmp(c->swagger_ui, "none") ? c->swagger_ui : NULL;
    svc->api.opt.env_id = c->env_id;
    svc->api.opt.api_key = c->api_key;
    svc->api.opt.require_api_key =
        c->require_key > DC_API_KEY_OFF ? (dc_api_key_mode_e)c->require_key : DC_API_KEY_OFF;
    if (c->cors != -1)
        svc->api.opt.cors_enabled = c->cors;
    if (c->cors_origins)
        svc->api.opt.cors_origins = c->cors_origins;
    if (c->max_body)
        svc->api.opt.max_body_size = c->max_body;
    svc->api.opt.ofrep_activate = c->ofrep_activate == 1;

    memset(&so, 0, sizeof(so));
    if (c->url && strcmp(c->url, "none") != 0)
        so.url = c->url;
    else if (!c->url && c->env_id && !c->file)
        so.url = apr_psprintf(pconf, DC_SOURCE_DEFAULT_URL_FMT, c->env_id);
    so.file = c->file;
    so.last_known_good = svc->lkg = c->lkg ? c->lkg : default_lkg(pconf, ptemp, s, c);
    so.parse = decision_feed_parse;
    so.parse_baton = svc;
    svc->reload_path = so.url ? so.last_known_good : so.file;
    if (so.url && c->lkg)
        check_lkg_writable(ptemp, s, c->lkg);
    svc->source = dc_source_create(pconf, &so, err, sizeof(err));
    if (!svc->source)
        return fail(s, apr_psprintf(ptemp, "%s: %s", svc->name, err));
    svc->api.source = svc->source;
    svc->api.metrics_extra = decision_feed_status;
    svc->api.metrics_extra_baton = svc;

    if (strncmp(store_uri, "memory", 6) == 0)
        svc->api.store = decision_memstore_open(pconf, ptemp, s, store_uri, err, sizeof(err));
    else
        svc->api.store = dc_store_open(pconf, store_uri, err, sizeof(err));
    if (!svc->api.store)
        return fail(s, apr_psprintf(ptemp, "DecisionStore: %s", err)); /* err masks secrets */
    if (strncmp(store_uri, "dbm:", 4) == 0)
        give_dbm_files_to_user(ptemp, s, store_uri);

    if (c->spool_dir) {
        dc_spool_options_default(&svc->spool_opt);
        dc_spool_options_parse(&svc->spool_opt, c->spool_options, err, sizeof(err));
        svc->spool_opt.dir = c->spool_dir;
        dc_shipper_options_default(&svc->ship_opt);
        svc->ship_opt.collector = c->collector;
    }

    if (c->shared_config != 0) {
        apr_int64_t size = c->shared_config > 0 ? c->shared_config : DECISION_DEFAULT_SHARED_CONFIG;

        svc->share = dc_share_create(pconf, (size_t)size, err, sizeof(err));
        svc->parent = getpid();
        if (!svc->share)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         DCLOGNO(10446) "%s: each child will parse new configurations on its "
                                        "own: %s",
                         svc->name, err);
    }
    decision_feed_load_initial(svc, ptemp);
    decision_feed_register_poller(svc, pconf);
    if ((err_msg = decision_events_prepare(svc, pconf, ptemp)) != NULL)
        return fail(s, err_msg);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 DCLOGNO(10403) "%s: %s%s%s, every %" APR_TIME_T_FMT "s, last-known-good %s, "
                                "store %s",
                 svc->name, so.url ? url_for_log(ptemp, so.url) : "",
                 so.url && so.file ? " + " : "",
                 so.file ? so.file : "", apr_time_sec(svc->interval), svc->lkg,
                 svc->api.store->uri);
    return OK;
}

/* The event MPM: connections wait for their next request in its listener. */
static int mpm_is_async;

static int curl_initialised_in_parent;

static int decision_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *main_s)
{
    decision_generation_t *gens;
    unsigned n = 0, i = 0;
    int rc;
    const char *err_msg;

    install_log_sink(main_s);
    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &mpm_is_async) != APR_SUCCESS)
        mpm_is_async = 0;
    /* The first of the two start-up runs only checks the configuration. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;

    for (server_rec *s = main_s; s; s = s->next) {
        decision_srv_conf_t *c = srv_conf(s);

        if (is_configured(c) && (s == main_s || c->own))
            n++;
    }
    if (n == 0)
        return OK;
    /* libcurl (and the TLS library under it) initialised here, in the parent,
     * once for the life of the process: children inherit it, and their own
     * curl_global_init calls (the config poller, the shipper, the exporters,
     * in watchdog and exporter threads) only count. Initialised in a child's
     * thread instead, it raced with that child's exit at a graceful restart
     * (OpenSSL's exit handler freeing the locks its initialisation was
     * taking: a crash in a prefork child). */
    if (!curl_initialised_in_parent) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return fail(main_s, "cannot initialise libcurl");
        curl_initialised_in_parent = 1;
    }
    if (decision_feed_shm_create(pconf, main_s, n, &gens) != APR_SUCCESS)
        return HTTP_INTERNAL_SERVER_ERROR;
    if ((err_msg = decision_singleton_create(pconf, main_s)) != NULL)
        return fail(main_s, err_msg);

    for (server_rec *s = main_s; s; s = s->next) {
        decision_srv_conf_t *c = srv_conf(s);

        if (!is_configured(c))
            continue;
        if (s != main_s && !c->own) {
            c->svc = srv_conf(main_s)->svc; /* nothing of its own: the main server's */
            continue;
        }
        c->svc = apr_pcalloc(pconf, sizeof(*c->svc));
        c->svc->index = i;
        c->svc->shared = &gens[i++];
        if ((rc = build_service(pconf, ptemp, s, c, c->svc)) != OK)
            return rc;
    }
    if ((err_msg = decision_otel_post_config(pconf, ptemp, main_s)) != NULL ||
        (err_msg = decision_singleton_start(pconf)) != NULL)
        return fail(main_s, err_msg);
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, main_s,
                 DCLOGNO(10404) "mod_decision: %u decision service(s) ready", n);
    return OK;
}

static void decision_child_init(apr_pool_t *pchild, server_rec *main_s)
{
    for (server_rec *s = main_s; s; s = s->next) {
        decision_srv_conf_t *c = srv_conf(s);

        if (c->svc && (s == main_s || c->own)) {
            dc_store_child_init(c->svc->api.store, pchild);
            decision_feed_child_init(c->svc, pchild);
            decision_events_child_init(c->svc, pchild);
        }
    }
    decision_otel_child_init(pchild, main_s);
}

static int decision_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    decision_memstore_register_mutex(pconf);
    return OK;
}

/* ---- requests ------------------------------------------------------------ */

/* Reads at most limit bytes of body; *too_large when there was more. */
static int read_body(request_rec *r, apr_size_t limit, dc_request_t *req)
{
    apr_size_t cap, len = 0;
    char *buf;
    int rc;

    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK)
        return rc;
    req->body = "";
    req->body_len = 0;
    if (!ap_should_client_block(r))
        return OK;
    if (r->remaining > (apr_off_t)limit) {
        req->body_too_large = 1;
        r->connection->keepalive = AP_CONN_CLOSE; /* the rest is left unread */
        return OK;
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining + 1 : DECISION_READ_CHUNK;
    buf = apr_palloc(r->pool, cap);
    for (;;) {
        long n;

        if (len == cap) {
            apr_size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nbuf;

            if (ncap <= cap) {
                req->body_too_large = 1;
                r->connection->keepalive = AP_CONN_CLOSE;
                break;
            }
            nbuf = apr_palloc(r->pool, ncap);
            memcpy(nbuf, buf, len);
            buf = nbuf;
            cap = ncap;
        }
        n = ap_get_client_block(r, buf + len, cap - len);
        if (n < 0)
            return HTTP_BAD_REQUEST; /* the client went away or sent a broken chunk */
        if (n == 0)
            break;
        len += (apr_size_t)n;
        if (len > limit) {
            req->body_too_large = 1;
            r->connection->keepalive = AP_CONN_CLOSE;
            break;
        }
    }
    req->body = buf;
    req->body_len = len > limit ? limit : len;
    return OK;
}

static int copy_header(void *rv, const char *key, const char *value)
{
    apr_table_set(((request_rec *)rv)->headers_out, key, value);
    return 1;
}

static int write_response(request_rec *r, const dc_response_t *resp)
{
    r->status = resp->status;
    apr_table_do(copy_header, r, resp->headers, NULL);
    if (resp->content_type)
        ap_set_content_type(r, resp->content_type);
    if (resp->body_len > 0) {
        ap_set_content_length(r, (apr_off_t)resp->body_len);
        if (!r->header_only)
            ap_rwrite(resp->body, (int)resp->body_len, r);
    }
    return OK;
}

static int not_configured(request_rec *r)
{
    static const char body[] =
        "{\"message\":\"mod_decision is not configured for this server: set "
        "DecisionEnvironment or DecisionBucketingFile\"}\n";
    dc_response_t resp = {.status = HTTP_SERVICE_UNAVAILABLE,
                          .content_type = "application/json",
                          .body = body,
                          .body_len = sizeof(body) - 1,
                          .headers = apr_table_make(r->pool, 1)};

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  DCLOGNO(10405) "SetHandler decision in a server without DecisionEnvironment "
                                 "or DecisionBucketingFile");
    return write_response(r, &resp);
}

/* The metrics slot of the scoreboard worker serving r: one per thread, so
 * that no two threads (and no two cores) write the same counters. The
 * scoreboard's worker rows are one array, so a worker's index in it is its
 * offset from the first. Slot 0 when there is no worker (dc_api's default). */
static dc_metrics_slot_t *metrics_slot(decision_service_t *svc, request_rec *r)
{
    worker_score *ws;
    ptrdiff_t i;

    if (!svc->api.metrics || !ap_scoreboard_image || !r->connection->sbh ||
        (ws = ap_get_scoreboard_worker(r->connection->sbh)) == NULL)
        return NULL;
    i = ws - ap_scoreboard_image->servers[0];
    return i >= 0 ? dc_metrics_slot(svc->api.metrics, (size_t)i) : NULL;
}

static int decision_handler(request_rec *r)
{
    decision_srv_conf_t *conf;
    decision_service_t *svc;
    dc_request_t req;
    dc_response_t resp;
    int rc, status_page;

    if (!r->handler)
        return DECLINED;
    status_page = strcmp(r->handler, DECISION_STATUS_HANDLER) == 0;
    if (!status_page && strcmp(r->handler, DECISION_HANDLER) != 0)
        return DECLINED;
    conf = srv_conf(r->server);
    svc = conf->svc;
    if (!svc)
        return not_configured(r);
    decision_feed_catch_up(svc);
    if (conf->keepalive_on_worker == 1 && mpm_is_async)
        /* The event MPM then serves this connection's next requests on this thread
         * (its path for input filters that "clog", as mod_ssl's once did), instead of
         * handing it to the listener after each answer: no wake-up of two threads,
         * no pollset change per request. */
        r->connection->clogging_input_filters = 1;

    memset(&req, 0, sizeof(req));
    req.method = r->method;
    req.path = r->parsed_uri.path ? r->parsed_uri.path : r->uri;
    req.query = r->args;
    req.origin = apr_table_get(r->headers_in, "Origin");
    req.x_api_key = apr_table_get(r->headers_in, "X-API-Key");
    req.authorization = apr_table_get(r->headers_in, "Authorization");
    req.if_none_match = apr_table_get(r->headers_in, "If-None-Match");
    req.host = apr_table_get(r->headers_in, "Host");
    req.https = strcmp(ap_http_scheme(r), "https") == 0;
    req.received = r->request_time;
    req.metrics_slot = metrics_slot(svc, r);
    if (svc->api.otel) {
        req.traceparent = apr_table_get(r->headers_in, "traceparent");
        req.tracestate = apr_table_get(r->headers_in, "tracestate");
        req.server_name = r->hostname;
        req.server_port = ap_get_server_port(r);
    }
    if ((rc = read_body(r, svc->api.opt.max_body_size, &req)) != OK)
        return rc;
    if (status_page)
        dc_status_handle(&svc->api, r->pool, &req, &resp);
    else
        dc_api_handle(&svc->api, r->pool, &req, &resp);
    return write_response(r, &resp);
}

/* A request for our handlers maps to no file, so httpd's walk of the file
 * system (a stat per path component, <Directory> merging, the largest cost
 * of an API request after the decision itself) is skipped, as mod_proxy
 * does: the handler is known here from the <Location>'s SetHandler, and
 * map_to_storage then answers for the request. */
static int decision_translate_name(request_rec *r)
{
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    const char *handler, *err = NULL;

    if (!core->expr_handler)
        return DECLINED;
    handler = ap_expr_str_exec(r, core->expr_handler, &err);
    if (!err && handler &&
        (strcmp(handler, DECISION_HANDLER) == 0 || strcmp(handler, DECISION_STATUS_HANDLER) == 0))
        ap_set_module_config(r->request_config, &decision_module, (void *)handler);
    return DECLINED;
}

static int decision_map_to_storage(request_rec *r)
{
    return ap_get_module_config(r->request_config, &decision_module) ? OK : DECLINED;
}

/* DecisionExport: the visitor's /v2/flags answer for the handler that runs
 * next (PHP, CGI, SSI, mod_rewrite's %{ENV:...}), as DECISION_FLAGS in the
 * environment and the "decision-flags" note. */
static int decision_fixups(request_rec *r)
{
    decision_dir_conf_t *dc = ap_get_module_config(r->per_dir_config, &decision_module);
    decision_service_t *svc;
    const char *vid = NULL;
    dc_request_t req;
    dc_response_t resp;
    dc_buf_t body;

    if (dc->export_flags != 1 || !(svc = srv_conf(r->server)->svc))
        return DECLINED;
    if (r->main && apr_table_get(r->subprocess_env, "DECISION_FLAGS"))
        return DECLINED; /* a subrequest inherits its main request's answer */
    if (dc->visitor_cookie)
        ap_cookie_read(r, dc->visitor_cookie, &vid, 0);
    if ((!vid || !*vid) && dc->visitor_header)
        vid = apr_table_get(r->headers_in, dc->visitor_header);
    if (!vid || !*vid || strlen(vid) > DC_STORE_MAX_ID_LEN)
        return DECLINED;
    decision_feed_catch_up(svc);

    dc_buf_init(&body, r->pool, 64 + strlen(vid));
    dc_buf_puts(&body, "{\"visitor_id\":");
    dc_json_put_string(&body, vid, strlen(vid));
    dc_buf_puts(&body, ",\"context\":{},\"trigger_hit\":false}");
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.path = "/v2/flags";
    req.body = dc_buf_cstr(&body);
    req.body_len = body.len;
    req.x_api_key = svc->api.opt.api_key; /* an internal call, not a caller's */
    req.received = r->request_time;
    req.metrics_slot = metrics_slot(svc, r);
    dc_api_handle(&svc->api, r->pool, &req, &resp);
    if (resp.status != HTTP_OK)
        return DECLINED;
    while (resp.body_len > 0 && resp.body[resp.body_len - 1] == '\n')
        resp.body_len--;
    apr_table_setn(r->subprocess_env, "DECISION_VISITOR_ID", vid);
    apr_table_setn(r->subprocess_env, "DECISION_FLAGS",
                   apr_pstrmemdup(r->pool, resp.body, resp.body_len));
    apr_table_setn(r->notes, "decision-flags", apr_table_get(r->subprocess_env, "DECISION_FLAGS"));
    return DECLINED;
}

static void decision_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(decision_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(decision_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before mod_watchdog's (APR_HOOK_LAST), which starts the watchdogs that
     * have callbacks registered by then. */
    ap_hook_post_config(decision_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(decision_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(decision_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(decision_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(decision_translate_name, NULL, NULL, APR_HOOK_LAST);
    ap_hook_map_to_storage(decision_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
}

AP_DECLARE_MODULE(decision) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    create_server_conf,
    merge_server_conf,
    decision_cmds,
    decision_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE,
#endif
};

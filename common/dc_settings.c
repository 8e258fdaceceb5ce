/*
 * Settings by the decision-api's names (see dc_settings.h).
 *
 * One table describes every setting: environment name, YAML key, kind,
 * default text and a one-line meaning. Lookup, YAML walking, environment
 * scanning, validation and --help all read that table, so a new setting is
 * one line here plus its field.
 *
 * The YAML file is read with libyaml's document loader into a node tree and
 * walked; mappings nest keys with ".", like the decision-api's viper. The
 * file is bounded (1 MiB) and the walk is bounded in depth and node visits,
 * because YAML aliases can make a small document describe a huge tree.
 */
#include "dc_openapi.h"
#include "dc_settings.h"
#include "dc_cloud_http.h"
#include "dc_shipper.h"
#include "dc_source.h"
#include "dc_spool.h"
#include "dc_store.h"

#include <apr_strings.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_CONFIG_FILE (1024 * 1024)
#define MAX_YAML_DEPTH 8
#define MAX_YAML_VISITS 10000
#define MAX_BODY_LIMIT ((apr_size_t)256 * 1024 * 1024)
#define MAX_THREADS 1024

typedef enum {
    K_STRING,
    K_SECRET,   /* a string never shown */
    K_BOOL,
    K_KEY_MODE, /* a boolean or "decisions" */
    K_DURATION, /* a Go duration */
    K_SIZE,     /* bytes, with an optional k/m suffix */
    K_COUNT,
    K_LEVEL,
    K_FORMAT,
    K_CACHE,    /* a cache.options value, parsed by dc_store_uri_from_flagship */
    K_UNUSED    /* a decision-api name that has no meaning here: accepted, warned about */
} kind_e;

typedef struct {
    const char *env;
    const char *yaml;
    kind_e kind;
    const char *def;  /* default text shown in --help, NULL: unset */
    const char *help;
} setting_def_t;

enum {
    S_ENV_ID, S_API_KEY, S_REQUIRE_API_KEY, S_POLLING_INTERVAL,
    S_CORS_ENABLED, S_CORS_ORIGINS, S_CORS_HEADERS, S_LOG_LEVEL, S_LOG_FORMAT,
    S_CACHE_TYPE, S_CACHE_DBPATH, S_REDIS_HOST, S_REDIS_USERNAME, S_REDIS_PASSWORD, S_REDIS_DB,
    S_REDIS_TLS, S_REDIS_TTL, S_DYNAMO_TABLE, S_DYNAMO_SEPARATOR, S_DYNAMO_PK, S_DYNAMO_TIMEOUT,
    S_ADDRESS, S_STORE, S_BUCKETING_URL, S_BUCKETING_FILE, S_LAST_KNOWN_GOOD, S_MAX_BODY_SIZE,
    S_THREADS, S_LISTEN, S_SHUTDOWN_TIMEOUT,
    S_METRICS_ENABLED, S_PROMETHEUS_PATH, S_STATUS_PATH,
    S_SPOOL_DIR, S_SPOOL_OPTIONS, S_COLLECTOR, S_SHIPPER, S_OFREP_ACTIVATE,
    S_SWAGGER_UI,
    S_OTEL_SDK_DISABLED, S_OTEL_EXPORTER_OTLP_ENDPOINT, S_OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, S_OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, S_OTEL_EXPORTER_OTLP_PROTOCOL, S_OTEL_EXPORTER_OTLP_HEADERS, S_OTEL_EXPORTER_OTLP_COMPRESSION, S_OTEL_EXPORTER_OTLP_TIMEOUT, S_OTEL_TRACES_EXPORTER, S_OTEL_METRICS_EXPORTER, S_OTEL_SERVICE_NAME, S_OTEL_RESOURCE_ATTRIBUTES, S_OTEL_TRACES_SAMPLER, S_OTEL_TRACES_SAMPLER_ARG, S_OTEL_METRIC_EXPORT_INTERVAL, S_OTEL_BSP_SCHEDULE_DELAY, S_OTEL_BSP_MAX_QUEUE_SIZE, S_OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    S_COUNT
};

#ifdef DC_HAVE_HIREDIS_SSL
#define DC_REDIS_TLS_HELP "redis: connect with TLS (rediss://)"
#else
#define DC_REDIS_TLS_HELP                                                                          \
    "redis: connect with TLS; NOT in this build (its hiredis has no hiredis_ssl): true is refused"
#endif

static const setting_def_t defs[S_COUNT] = {
    [S_ENV_ID] = {"ENV_ID", "env_id", K_STRING, NULL,
                  "Flagship environment id: the CDN file polled, the cid /v2/activate accepts"},
    [S_API_KEY] = {"API_KEY", "api_key", K_SECRET, NULL,
                   "API key; checked only when REQUIRE_API_KEY is on (never logged)"},
    [S_REQUIRE_API_KEY] = {"REQUIRE_API_KEY", "require_api_key", K_KEY_MODE, "false",
                           "answer 401 unless X-API-Key or Authorization: Bearer carries API_KEY; "
                           "\"decisions\": everywhere but on /v2/activate (where Flagship SDKs "
                           "send none)"},
    [S_POLLING_INTERVAL] = {"POLLING_INTERVAL", "polling_interval", K_DURATION, "1m",
                            "how often the bucketing file is re-fetched (Go duration, >= 1s)"},
    [S_CORS_ENABLED] = {"CORS_ENABLED", "cors.enabled", K_BOOL, "true",
                        "CORS headers on answers and 204 to OPTIONS preflights"},
    [S_CORS_ORIGINS] = {"CORS_ALLOWED_ORIGINS", "cors.allowed_origins", K_STRING, "*",
                        "Access-Control-Allow-Origin value"},
    [S_CORS_HEADERS] = {"CORS_ALLOWED_HEADERS", "cors.allowed_headers", K_STRING,
                        DC_DEFAULT_CORS_HEADERS, "Access-Control-Allow-Headers value"},
    [S_LOG_LEVEL] = {"LOG_LEVEL", "log.level", K_LEVEL, "warning",
                     "trace, debug (one line per request), info, warn/warning, error"},
    [S_LOG_FORMAT] = {"LOG_FORMAT", "log.format", K_FORMAT, "text",
                      "text (key=value lines) or json (one object per line), on stderr"},
    [S_CACHE_TYPE] = {"CACHE_TYPE", "cache.type", K_STRING, NULL,
                      "assignment cache, the decision-api's way: memory, local, redis, dynamo "
                      "(or STORE)"},
    [S_CACHE_DBPATH] = {"CACHE_OPTIONS_DBPATH", "cache.options.dbPath", K_CACHE, "cache_data",
                        "local: the DBM file"},
    [S_REDIS_HOST] = {"CACHE_OPTIONS_REDISHOST", "cache.options.redisHost", K_CACHE,
                      "localhost:6379", "redis: host:port"},
    [S_REDIS_USERNAME] = {"CACHE_OPTIONS_REDISUSERNAME", "cache.options.redisUsername", K_CACHE,
                          NULL, "redis: ACL user name"},
    [S_REDIS_PASSWORD] = {"CACHE_OPTIONS_REDISPASSWORD", "cache.options.redisPassword", K_CACHE,
                          NULL, "redis: password (never logged)"},
    [S_REDIS_DB] = {"CACHE_OPTIONS_REDISDB", "cache.options.redisDb", K_CACHE, "0",
                    "redis: database number"},
    [S_REDIS_TLS] = {"CACHE_OPTIONS_REDISTLS", "cache.options.redisTls", K_CACHE, "false",
                     DC_REDIS_TLS_HELP},
    [S_REDIS_TTL] = {"CACHE_OPTIONS_REDISTTL", "cache.options.redisTtl", K_CACHE, "2160h",
                     "redis: how long a visitor's assignments live (Go duration)"},
    [S_DYNAMO_TABLE] = {"CACHE_OPTIONS_DYNAMOTABLENAME", "cache.options.dynamoTableName",
                        K_CACHE, "visitor-assignments", "dynamo: the table"},
    [S_DYNAMO_SEPARATOR] = {"CACHE_OPTIONS_DYNAMOPKSEPARATOR", "cache.options.dynamoPKSeparator",
                            K_CACHE, NULL,
                            "dynamo: between env id and visitor id in the key (default: a dot)"},
    [S_DYNAMO_PK] = {"CACHE_OPTIONS_DYNAMOPKFIELD", "cache.options.dynamoPKField", K_CACHE, "id",
                     "dynamo: the partition key attribute"},
    [S_DYNAMO_TIMEOUT] = {"CACHE_OPTIONS_DYNAMOGETTIMEOUT", "cache.options.dynamoGetTimeout",
                          K_CACHE, "1s", "dynamo: GetItem timeout (Go duration)"},
    [S_ADDRESS] = {"ADDRESS", "address", K_UNUSED, NULL,
                   "the decision-api's HTTP address: unused, the web server listens"},
    [S_STORE] = {"STORE", "store", K_SECRET, "none",
                 "assignment store URI: none, memory[?max_entries=N], dbm:PATH, "
                 "redis://[user:pass@]host:port[/db], dynamo://TABLE[?options] (instead of "
                 "CACHE_TYPE)"},
    [S_BUCKETING_URL] = {"BUCKETING_URL", "bucketing_url", K_STRING,
                         "https://cdn.flagship.io/ENV_ID/bucketing.json",
                         "where the bucketing file is polled; \"none\": never (the default when "
                         "BUCKETING_FILE is set)"},
    [S_BUCKETING_FILE] = {"BUCKETING_FILE", "bucketing_file", K_STRING, NULL,
                          "a local bucketing file, re-read when it changes"},
    [S_LAST_KNOWN_GOOD] = {"LAST_KNOWN_GOOD", "last_known_good", K_STRING, NULL,
                           "where each fetched file is kept, and served from at start"},
    [S_MAX_BODY_SIZE] = {"MAX_BODY_SIZE", "max_body_size", K_SIZE, "1m",
                         "largest request body (bytes, or with k/m); larger ones get 413"},
    [S_THREADS] = {"THREADS", "threads", K_COUNT, "cores x 2",
                   "FastCGI request threads (decision-fcgi --threads)"},
    [S_LISTEN] = {"LISTEN", "listen", K_STRING, "fd 0 from the web server",
                  "FastCGI socket to listen on: HOST:PORT, :PORT or unix:/PATH (--listen)"},
    [S_SHUTDOWN_TIMEOUT] = {"SHUTDOWN_TIMEOUT", "shutdown_timeout", K_DURATION, "10s",
                            "on SIGTERM, how long in-flight requests may take to finish"},
    [S_METRICS_ENABLED] = {"METRICS_ENABLED", "metrics.enabled", K_BOOL, "true",
                           "count requests for /v2/metrics, the Prometheus path, the status page"},
    [S_PROMETHEUS_PATH] = {"METRICS_PROMETHEUS_PATH", "metrics.prometheus_path", K_STRING,
                           "/metrics", "Prometheus text at a path ending so; \"none\": off"},
    [S_STATUS_PATH] = {"METRICS_STATUS_PATH", "metrics.status_path", K_STRING, NULL,
                       "the HTML status page at a path ending so (e.g. /v2/status)"},
    [S_SPOOL_DIR] = {"EVENTS_SPOOL_DIR", "events.spool_dir", K_STRING, NULL,
                     "the durable event spool; unset: events (hits) are not collected"},
    [S_SPOOL_OPTIONS] = {"EVENTS_SPOOL_OPTIONS", "events.spool_options", K_STRING, NULL,
                         "fsync=100ms|always|never, segment-bytes, segment-age, max-bytes, "
                         "on-full=refuse|drop-oldest"},
    [S_COLLECTOR] = {"EVENTS_COLLECTOR", "events.collector", K_STRING,
                     DC_SHIPPER_DEFAULT_COLLECTOR,
                     "where events go: http(s)://..., file:/DIR, s3://BUCKET/PREFIX or "
                     "azblob://ACCOUNT/CONTAINER/PREFIX (doc/cloud-sinks.md)"},
    [S_SHIPPER] = {"EVENTS_SHIPPER", "events.shipper", K_BOOL, "true",
                   "ship from this process (off: run `decision-fcgi ship` beside it)"},
    [S_OFREP_ACTIVATE] = {"OFREP_ACTIVATE", "ofrep.activate", K_BOOL, "false",
                          "OFREP evaluations send an activation hit for the campaigns they "
                          "show, like /v2/flags with trigger_hit"},
    [S_SWAGGER_UI] = {"SWAGGER_UI_URL", "swagger.ui_url", K_STRING, NULL,
                      "where Swagger UI (swagger-ui-dist's files) is installed: "
                      "/v2/swagger/index.html loads it instead of the plain reference page"},
    /* OpenTelemetry: the SDK's own variables (doc/opentelemetry.md), checked by dc_otel */
    [S_OTEL_SDK_DISABLED] = {"OTEL_SDK_DISABLED", "otel.sdk_disabled", K_STRING, "false",
        "true: no traces or metrics are exported, whatever else is set"},
    [S_OTEL_EXPORTER_OTLP_ENDPOINT] = {"OTEL_EXPORTER_OTLP_ENDPOINT", "otel.exporter_otlp_endpoint", K_STRING, NULL,
        "OTLP/HTTP collector base URL (/v1/traces, /v1/metrics are added); tracing is off without an endpoint"},
    [S_OTEL_EXPORTER_OTLP_TRACES_ENDPOINT] = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel.exporter_otlp_traces_endpoint", K_STRING, NULL,
        "traces URL, used as is"},
    [S_OTEL_EXPORTER_OTLP_METRICS_ENDPOINT] = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "otel.exporter_otlp_metrics_endpoint", K_STRING, NULL,
        "metrics URL, used as is"},
    [S_OTEL_EXPORTER_OTLP_PROTOCOL] = {"OTEL_EXPORTER_OTLP_PROTOCOL", "otel.exporter_otlp_protocol", K_STRING, "http/protobuf",
        "only http/protobuf"},
    [S_OTEL_EXPORTER_OTLP_HEADERS] = {"OTEL_EXPORTER_OTLP_HEADERS", "otel.exporter_otlp_headers", K_SECRET, NULL,
        "headers of every export request: key=value,... (values percent-encoded)"},
    [S_OTEL_EXPORTER_OTLP_COMPRESSION] = {"OTEL_EXPORTER_OTLP_COMPRESSION", "otel.exporter_otlp_compression", K_STRING, "none",
        "gzip or none"},
    [S_OTEL_EXPORTER_OTLP_TIMEOUT] = {"OTEL_EXPORTER_OTLP_TIMEOUT", "otel.exporter_otlp_timeout", K_STRING, "10000",
        "milliseconds an export request may take"},
    [S_OTEL_TRACES_EXPORTER] = {"OTEL_TRACES_EXPORTER", "otel.traces_exporter", K_STRING, "otlp",
        "otlp or none"},
    [S_OTEL_METRICS_EXPORTER] = {"OTEL_METRICS_EXPORTER", "otel.metrics_exporter", K_STRING, "otlp",
        "otlp or none"},
    [S_OTEL_SERVICE_NAME] = {"OTEL_SERVICE_NAME", "otel.service_name", K_STRING, "unknown_service:decision-fcgi",
        "service.name of the resource"},
    [S_OTEL_RESOURCE_ATTRIBUTES] = {"OTEL_RESOURCE_ATTRIBUTES", "otel.resource_attributes", K_STRING, NULL,
        "resource attributes: key=value,..."},
    [S_OTEL_TRACES_SAMPLER] = {"OTEL_TRACES_SAMPLER", "otel.traces_sampler", K_STRING, "parentbased_always_on",
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"},
    [S_OTEL_TRACES_SAMPLER_ARG] = {"OTEL_TRACES_SAMPLER_ARG", "otel.traces_sampler_arg", K_STRING, "1.0",
        "the ratio of the traceidratio samplers, 0 to 1"},
    [S_OTEL_METRIC_EXPORT_INTERVAL] = {"OTEL_METRIC_EXPORT_INTERVAL", "otel.metric_export_interval", K_STRING, "60000",
        "milliseconds between metric exports"},
    [S_OTEL_BSP_SCHEDULE_DELAY] = {"OTEL_BSP_SCHEDULE_DELAY", "otel.bsp_schedule_delay", K_STRING, "5000",
        "milliseconds between span exports"},
    [S_OTEL_BSP_MAX_QUEUE_SIZE] = {"OTEL_BSP_MAX_QUEUE_SIZE", "otel.bsp_max_queue_size", K_STRING, "2048",
        "spans held for export; more are dropped and counted"},
    [S_OTEL_BSP_MAX_EXPORT_BATCH_SIZE] = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "otel.bsp_max_export_batch_size", K_STRING, "512",
        "spans per export request"},
};

static const char *const env_prefixes[] = {"CACHE_", "CORS_", "BUCKETING_", "LOG_", "METRICS_",
                                           "EVENTS_", "OFREP_", "SWAGGER_"};

static void add_error(dc_settings_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_error(dc_settings_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    APR_ARRAY_PUSH(s->errors, const char *) = apr_pvsprintf(s->pool, fmt, ap);
    va_end(ap);
}

dc_settings_t *dc_settings_create(apr_pool_t *p)
{
    dc_settings_t *s = apr_pcalloc(p, sizeof(*s));

    s->pool = p;
    s->raw = apr_pcalloc(p, S_COUNT * sizeof(*s->raw));
    s->origin = apr_pcalloc(p, S_COUNT * sizeof(*s->origin));
    s->errors = apr_array_make(p, 4, sizeof(const char *));
    s->warnings = apr_array_make(p, 2, sizeof(const char *));
    s->polling_interval = DC_SOURCE_DEFAULT_INTERVAL;
    s->cors_enabled = 1;
    s->cors_allowed_origins = "*";
    s->cors_allowed_headers = DC_DEFAULT_CORS_HEADERS;
    s->log_level = DC_LOG_WARN;
    s->log_format = DC_LOG_FORMAT_TEXT;
    s->store_uri = "none";
    s->max_body_size = DC_DEFAULT_MAX_BODY_SIZE;
    s->shutdown_timeout = apr_time_from_sec(10);
    s->metrics_enabled = 1;
    s->prometheus_path = "/metrics";
    s->collector = DC_SHIPPER_DEFAULT_COLLECTOR;
    s->shipper_enabled = 1;
    return s;
}

/* ---- names -------------------------------------------------------------- */

static int find_setting(const char *name)
{
    for (int i = 0; i < S_COUNT; i++)
        if (strcasecmp(name, defs[i].env) == 0 || strcasecmp(name, defs[i].yaml) == 0)
            return i;
    return -1;
}

/* Edit distance, case-insensitive, for "did you mean" (names are short). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;

            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The first and last words of a name ("CORS" and "ORIGINS" of CORS_ALLOWED_ORIGINS). */
static int same_ends(const char *a, const char *b)
{
    size_t fa = strcspn(a, "_."), fb = strcspn(b, "_.");
    const char *la = a + strlen(a), *lb = b + strlen(b);

    while (la > a && la[-1] != '_' && la[-1] != '.')
        la--;
    while (lb > b && lb[-1] != '_' && lb[-1] != '.')
        lb--;
    return la > a && lb > b && fa == fb && strncasecmp(a, b, fa) == 0 && strcasecmp(la, lb) == 0;
}

/* The closest known name (of the same spelling family), when close enough to be a typo,
 * else one with the same first and last words (a word left out). */
static const char *closest(const char *name, int yaml)
{
    const char *best = NULL;
    size_t best_d = 4;

    for (int i = 0; i < S_COUNT; i++) {
        const char *candidate = yaml ? defs[i].yaml : defs[i].env;
        size_t d = distance(name, candidate);

        if (d < best_d) {
            best_d = d;
            best = candidate;
        }
    }
    for (int i = 0; !best && i < S_COUNT; i++)
        if (same_ends(name, yaml ? defs[i].yaml : defs[i].env))
            best = yaml ? defs[i].yaml : defs[i].env;
    return best;
}

static const char *did_you_mean(apr_pool_t *p, const char *name, int yaml)
{
    const char *c = closest(name, yaml);

    return c ? apr_psprintf(p, " (did you mean %s?)", c) : "";
}

int dc_settings_set(dc_settings_t *s, const char *name, const char *value, const char *origin)
{
    int i = find_setting(name);

    if (i < 0) {
        add_error(s, "%s: unknown setting \"%s\"%s", origin ? origin : "settings", name,
                  did_you_mean(s->pool, name, strchr(name, '.') || islower((unsigned char)*name)));
        return -1;
    }
    s->raw[i] = value ? apr_pstrdup(s->pool, value) : NULL;
    s->origin[i] = origin ? apr_pstrdup(s->pool, origin) : NULL;
    return 0;
}

/* ---- YAML --------------------------------------------------------------- */

typedef struct {
    dc_settings_t *s;
    yaml_document_t *doc;
    const char *path;
    unsigned visits;
    int failed;
} yaml_walk_t;

static int is_prefix_of_a_key(const char *key)
{
    size_t len = strlen(key);

    for (int i = 0; i < S_COUNT; i++)
        if (strncasecmp(defs[i].yaml, key, len) == 0 && defs[i].yaml[len] == '.')
            return 1;
    return 0;
}

static int is_yaml_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;

    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return !*v || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

static void walk(yaml_walk_t *w, yaml_node_t *node, const char *prefix, int depth)
{
    dc_settings_t *s = w->s;

    if (++w->visits > MAX_YAML_VISITS || depth > MAX_YAML_DEPTH) {
        if (!w->failed)
            add_error(s, "%s: too deeply nested or too many keys", w->path);
        w->failed = 1;
        return;
    }
    if (node->type != YAML_MAPPING_NODE) {
        add_error(s, "%s:%lu: %s%sexpected a mapping of settings", w->path,
                  (unsigned long)node->start_mark.line + 1, prefix ? prefix : "",
                  prefix ? ": " : "");
        w->failed = 1;
        return;
    }
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pair->value);
        unsigned long line;
        const char *key, *origin;
        int i;

        if (!k || !v)
            continue;
        line = (unsigned long)k->start_mark.line + 1;
        if (k->type != YAML_SCALAR_NODE) {
            add_error(s, "%s:%lu: a key must be a plain name", w->path, line);
            w->failed = 1;
            continue;
        }
        key = prefix ? apr_pstrcat(s->pool, prefix, ".", (const char *)k->data.scalar.value, NULL)
                     : (const char *)k->data.scalar.value;
        i = find_setting(key);
        if (i >= 0 && strchr(key, '.') == NULL && strcasecmp(key, defs[i].yaml) != 0)
            i = -1; /* environment spellings are not YAML keys */
        if (i < 0 && v->type == YAML_MAPPING_NODE && is_prefix_of_a_key(key)) {
            walk(w, v, key, depth + 1);
            continue;
        }
        if (i < 0) {
            add_error(s, "%s:%lu: unknown key \"%s\"%s", w->path, line, key,
                      did_you_mean(s->pool, key, 1));
            w->failed = 1;
            continue;
        }
        if (v->type != YAML_SCALAR_NODE) {
            add_error(s, "%s:%lu: %s: expected a single value", w->path, line, defs[i].yaml);
            w->failed = 1;
            continue;
        }
        origin = apr_psprintf(s->pool, "%s:%lu", w->path, line);
        s->raw[i] = is_yaml_null(v) ? NULL
                                    : apr_pstrmemdup(s->pool, (const char *)v->data.scalar.value,
                                                     v->data.scalar.length);
        s->origin[i] = origin;
    }
}

int dc_settings_load_yaml(dc_settings_t *s, const char *path)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    yaml_walk_t w = {s, &doc, path, 0, 0};
    apr_pool_t *tmp;
    char *data;
    size_t len;
    FILE *f = fopen(path, "rb");

    if (!f) {
        add_error(s, "%s: cannot open the config file: %s", path, strerror(errno));
        return -1;
    }
    apr_pool_create(&tmp, s->pool); /* the file's bytes are not kept */
    data = apr_palloc(tmp, MAX_CONFIG_FILE + 1);
    len = fread(data, 1, MAX_CONFIG_FILE + 1, f);
    if (ferror(f) || len > MAX_CONFIG_FILE) {
        add_error(s, "%s: %s", path,
                  ferror(f) ? "cannot read the config file" : "config file larger than 1 MiB");
        fclose(f);
        apr_pool_destroy(tmp);
        return -1;
    }
    fclose(f);
    if (!yaml_parser_initialize(&parser)) {
        add_error(s, "%s: cannot start the YAML parser", path);
        apr_pool_destroy(tmp);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        add_error(s, "%s:%lu:%lu: YAML: %s", path, (unsigned long)parser.problem_mark.line + 1,
                  (unsigned long)parser.problem_mark.column + 1,
                  parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        apr_pool_destroy(tmp);
        return -1;
    }
    root = yaml_document_get_root_node(&doc);
    if (root && !(root->type == YAML_SCALAR_NODE && is_yaml_null(root)))
        walk(&w, root, NULL, 0);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    apr_pool_destroy(tmp);
    return w.failed ? -1 : 0;
}

/* ---- environment -------------------------------------------------------- */

/* A variable we take for a misspelling of ours: one of our prefixes and a known name close to
 * it (LOG_DIR of another program is left alone), or very close to one of our longer names. */
static int typo_candidate(const char *name)
{
    for (size_t i = 0; i < sizeof(env_prefixes) / sizeof(env_prefixes[0]); i++)
        if (strncmp(name, env_prefixes[i], strlen(env_prefixes[i])) == 0)
            return closest(name, 0) != NULL;
    /* Near misses of our longer names (POLING_INTERVAL); short names would catch unrelated
     * variables. */
    for (int i = 0; i < S_COUNT; i++)
        if (strlen(defs[i].env) >= 10 && distance(name, defs[i].env) <= 2)
            return 1;
    return 0;
}

int dc_settings_load_env(dc_settings_t *s, const char *const *envp)
{
    int rc = 0;

    for (; envp && *envp; envp++) {
        const char *eq = strchr(*envp, '=');
        char *name;
        int i;

        if (!eq || eq == *envp)
            continue;
        name = apr_pstrmemdup(s->pool, *envp, (apr_size_t)(eq - *envp));
        for (i = 0; i < S_COUNT; i++)
            if (strcmp(name, defs[i].env) == 0)
                break;
        if (i < S_COUNT) {
            if (!eq[1])
                continue; /* empty is unset, as viper has it: it does not hide the file's value */
            s->raw[i] = eq + 1;
            s->origin[i] = "environment";
        } else if (typo_candidate(name)) {
            add_error(s, "environment: unknown setting %s%s", name,
                      did_you_mean(s->pool, name, 0));
            rc = -1;
        }
    }
    return rc;
}

/* ---- values ------------------------------------------------------------- */

int dc_parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"1", "t", "true", "on", "yes", "y"};
    static const char *const no[] = {"0", "f", "false", "off", "no", "n"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int dc_parse_api_key_mode(const char *text, dc_api_key_mode_e *out)
{
    int on;

    if (strcasecmp(text, "decisions") == 0) {
        *out = DC_API_KEY_DECISIONS;
        return 0;
    }
    if (dc_parse_bool(text, &on) < 0)
        return -1;
    *out = on ? DC_API_KEY_ALL : DC_API_KEY_OFF;
    return 0;
}

int dc_parse_go_duration(const char *text, apr_interval_time_t *out)
{
    static const struct {
        const char *unit;
        double us;
    } units[] = {{"ns", 0.001}, {"us", 1}, {"\xc2\xb5s", 1}, {"ms", 1000}, {"s", 1e6},
                 {"m", 60e6},   {"h", 3600e6}};
    const char *p = text;
    double total = 0;
    int negative = 0;

    if (*p == '+' || *p == '-')
        negative = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        double v;
        size_t best = 0, ulen = 0;

        /* digits [. digits]: Go takes no exponent, sign or hex here */
        end = (char *)p;
        while (isdigit((unsigned char)*end))
            end++;
        if (*end == '.') {
            end++;
            while (isdigit((unsigned char)*end))
                end++;
        }
        if (end == p || (end == p + 1 && *p == '.'))
            return -1;
        errno = 0;
        v = strtod(p, NULL);
        if (errno)
            return -1;
        p = end;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].unit);

            if (strncmp(p, units[i].unit, l) == 0 && l > ulen) {
                best = i;
                ulen = l;
            }
        }
        if (!ulen)
            return -1; /* Go accepts a bare number only for 0 */
        total += v * units[best].us;
        p += ulen;
    }
    if (total > 9.2e15) /* ~290 years, Go's own limit */
        return -1;
    *out = (apr_interval_time_t)(negative ? -total : total);
    return 0;
}

static int parse_size(const char *text, apr_size_t *out)
{
    char *end;
    unsigned long long v;
    unsigned long long mult = 1;

    if (!isdigit((unsigned char)*text))
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno)
        return -1;
    if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mult = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 ||
             strcasecmp(end, "mib") == 0)
        mult = 1024 * 1024;
    else if (*end)
        return -1;
    if (v > MAX_BODY_LIMIT / mult)
        return -1;
    *out = (apr_size_t)(v * mult);
    return 0;
}

/* "NAME (where)": the spelling of where the value came from. */
static const char *label(const dc_settings_t *s, int i)
{
    const char *origin = s->origin[i];

    if (!origin)
        return defs[i].env;
    if (strcmp(origin, "environment") == 0)
        return apr_psprintf(s->pool, "%s (environment)", defs[i].env);
    return apr_psprintf(s->pool, "%s (%s)", defs[i].yaml, origin);
}

/* The value for the error message: secrets are never shown. */
static const char *shown(const dc_settings_t *s, int i)
{
    if (defs[i].kind == K_SECRET || i == S_REDIS_PASSWORD)
        return "(hidden)";
    return apr_psprintf(s->pool, "\"%s\"", s->raw[i]);
}

static int valid_env_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 128)
        return 0;
    for (const char *c = id; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
            return 0;
    return 1;
}

static const char *value_of(const dc_settings_t *s, int i)
{
    return s->raw[i] && *s->raw[i] ? s->raw[i] : NULL;
}

/* dc_store_setting_fn over the raw values, by environment name. */
/* dc_otel_getter_fn: an OTEL_* setting's raw text. */
static const char *otel_setting(void *baton, const char *name)
{
    const dc_settings_t *s = baton;

    for (int i = S_OTEL_SDK_DISABLED; i < S_COUNT; i++)
        if (strcmp(defs[i].env, name) == 0)
            return s->raw[i];
    return NULL;
}

static const char *cache_setting(void *baton, const char *name)
{
    dc_settings_t *s = baton;

    for (int i = S_CACHE_TYPE; i <= S_DYNAMO_TIMEOUT; i++)
        if (strcmp(name, defs[i].env) == 0)
            return value_of(s, i);
    return NULL;
}

static void finish_store(dc_settings_t *s)
{
    const char *store = value_of(s, S_STORE), *type = value_of(s, S_CACHE_TYPE);
    char err[256];

    if (store && type) {
        add_error(s, "%s and %s are both set: use one of them", label(s, S_STORE),
                  label(s, S_CACHE_TYPE));
        return;
    }
    if (store) {
        s->store_uri = store;
        return;
    }
    err[0] = '\0';
    s->store_uri = dc_store_uri_from_flagship(s->pool, cache_setting, s, err, sizeof(err));
    if (!s->store_uri)
        add_error(s, "%s", err);
}

static int is_path(const char *v)
{
    return v[0] == '/' && !strpbrk(v, "?# \t\r\n");
}

static void finish_observability(dc_settings_t *s)
{
    const char *v;
    char err[256];

    if ((v = value_of(s, S_PROMETHEUS_PATH)) != NULL) {
        if (strcasecmp(v, "none") == 0)
            s->prometheus_path = NULL;
        else if (is_path(v))
            s->prometheus_path = v;
        else
            add_error(s, "%s: expected a path such as /metrics, or none, not %s",
                      label(s, S_PROMETHEUS_PATH), shown(s, S_PROMETHEUS_PATH));
    }
    if ((v = value_of(s, S_STATUS_PATH)) != NULL) {
        if (is_path(v))
            s->status_path = v;
        else
            add_error(s, "%s: expected a path such as /v2/status, not %s",
                      label(s, S_STATUS_PATH), shown(s, S_STATUS_PATH));
    }
    if ((v = value_of(s, S_SWAGGER_UI)) != NULL) {
        if (dc_openapi_ui_url_valid(v))
            s->swagger_ui = v;
        else
            add_error(s, "%s: expected a path (/swagger-ui) or an http(s):// URL, not %s",
                      label(s, S_SWAGGER_UI), shown(s, S_SWAGGER_UI));
    }
    s->spool_dir = value_of(s, S_SPOOL_DIR);
    s->spool_options = value_of(s, S_SPOOL_OPTIONS);
    if (s->spool_options) {
        dc_spool_options_t o;

        dc_spool_options_default(&o);
        if (dc_spool_options_parse(&o, s->spool_options, err, sizeof(err)) < 0)
            add_error(s, "%s: %s", label(s, S_SPOOL_OPTIONS), err);
        else if (!s->spool_dir)
            add_error(s, "%s is set but EVENTS_SPOOL_DIR is not", label(s, S_SPOOL_OPTIONS));
    }
    if ((v = value_of(s, S_COLLECTOR)) != NULL) {
        if (dc_shipper_check_collector(s->pool, v, err, sizeof(err)) == 0)
            s->collector = v;
        else
            add_error(s, "%s: %s (%s)", label(s, S_COLLECTOR), err,
                      dc_cloud_mask_uri(s->pool, v));
    }
}

int dc_settings_finish(dc_settings_t *s)
{
    for (int i = 0; i < S_COUNT; i++) {
        const char *v = value_of(s, i);

        if (!v)
            continue;
        switch (defs[i].kind) {
        case K_BOOL: {
            int b;

            if (dc_parse_bool(v, &b) < 0)
                add_error(s, "%s: expected true or false, not %s", label(s, i), shown(s, i));
            else if (i == S_CORS_ENABLED)
                s->cors_enabled = b;
            else if (i == S_METRICS_ENABLED)
                s->metrics_enabled = b;
            else if (i == S_OFREP_ACTIVATE)
                s->ofrep_activate = b;
            else
                s->shipper_enabled = b;
            break;
        }
        case K_KEY_MODE:
            if (dc_parse_api_key_mode(v, &s->require_api_key) < 0)
                add_error(s, "%s: expected true, false or decisions, not %s", label(s, i),
                          shown(s, i));
            break;
        case K_DURATION: {
            apr_interval_time_t d;
            apr_interval_time_t min = apr_time_from_sec(1), max = apr_time_from_sec(86400);

            if (i == S_SHUTDOWN_TIMEOUT)
                min = apr_time_from_msec(100), max = apr_time_from_sec(600);
            if (dc_parse_go_duration(v, &d) < 0 || d < min || d > max)
                add_error(s, "%s: expected a Go duration from %s to %s (\"30s\", \"2m\"), not %s",
                          label(s, i), i == S_SHUTDOWN_TIMEOUT ? "100ms" : "1s",
                          i == S_SHUTDOWN_TIMEOUT ? "10m" : "24h", shown(s, i));
            else if (i == S_POLLING_INTERVAL)
                s->polling_interval = d;
            else
                s->shutdown_timeout = d;
            break;
        }
        case K_SIZE:
            if (parse_size(v, &s->max_body_size) < 0 || s->max_body_size == 0)
                add_error(s,
                          "%s: expected a size from 1 byte to 256m (\"65536\", \"64k\", \"1m\"), "
                          "not %s",
                          label(s, i), shown(s, i));
            break;
        case K_COUNT: {
            char *end;
            long n = strtol(v, &end, 10);

            if (*end || n < 1 || n > MAX_THREADS)
                add_error(s, "%s: expected a number from 1 to %d, not %s", label(s, i),
                          MAX_THREADS, shown(s, i));
            else
                s->threads = (int)n;
            break;
        }
        case K_LEVEL:
            if (dc_log_level_parse(v, &s->log_level) < 0)
                add_error(s, "%s: expected trace, debug, info, warn, warning or error, not %s",
                          label(s, i), shown(s, i));
            break;
        case K_FORMAT:
            if (strcasecmp(v, "text") == 0)
                s->log_format = DC_LOG_FORMAT_TEXT;
            else if (strcasecmp(v, "json") == 0)
                s->log_format = DC_LOG_FORMAT_JSON;
            else
                add_error(s, "%s: expected text or json, not %s", label(s, i), shown(s, i));
            break;
        case K_UNUSED:
            APR_ARRAY_PUSH(s->warnings, const char *) =
                apr_psprintf(s->pool, "%s is set but not used: %s", label(s, i), defs[i].help);
            break;
        default:
            break;
        }
    }

    {
        const char *err = dc_otel_options_read(&s->otel, s->pool, otel_setting, s,
                                               "decision-fcgi");

        if (err)
            add_error(s, "%s", err);
    }

    s->env_id = value_of(s, S_ENV_ID);
    if (s->env_id && !valid_env_id(s->env_id))
        add_error(s, "%s: expected letters, digits, '-', '_' or '.', not %s", label(s, S_ENV_ID),
                  shown(s, S_ENV_ID));
    s->api_key = value_of(s, S_API_KEY);
    if (s->require_api_key && !s->api_key)
        add_error(s, "%s is %s but API_KEY is not set", label(s, S_REQUIRE_API_KEY),
                  s->require_api_key == DC_API_KEY_DECISIONS ? "decisions" : "on");
    s->cors_allowed_origins = s->raw[S_CORS_ORIGINS] ? s->raw[S_CORS_ORIGINS] : "*";
    s->cors_allowed_headers =
        s->raw[S_CORS_HEADERS] ? s->raw[S_CORS_HEADERS] : DC_DEFAULT_CORS_HEADERS;
    /* They become response header values. */
    for (int i = S_CORS_ORIGINS; i <= S_CORS_HEADERS; i++)
        if (s->raw[i] && strpbrk(s->raw[i], "\r\n"))
            add_error(s, "%s: a header value cannot hold a line break", label(s, i));
    s->bucketing_file = value_of(s, S_BUCKETING_FILE);
    s->last_known_good = value_of(s, S_LAST_KNOWN_GOOD);
    s->listen = value_of(s, S_LISTEN);

    s->bucketing_url = value_of(s, S_BUCKETING_URL);
    if (s->bucketing_url && strcasecmp(s->bucketing_url, "none") == 0) {
        s->bucketing_url = NULL;
    } else if (s->bucketing_url) {
        if (strncasecmp(s->bucketing_url, "http://", 7) != 0 &&
            strncasecmp(s->bucketing_url, "https://", 8) != 0)
            add_error(s, "%s: expected an http:// or https:// URL, or none, not %s",
                      label(s, S_BUCKETING_URL), shown(s, S_BUCKETING_URL));
    } else if (s->env_id && !s->bucketing_file && valid_env_id(s->env_id)) {
        s->bucketing_url = apr_psprintf(s->pool, DC_SOURCE_DEFAULT_URL_FMT, s->env_id);
    }
    if (!s->bucketing_url && !s->bucketing_file && !value_of(s, S_BUCKETING_URL))
        add_error(s, "ENV_ID: missing: set ENV_ID (its file is polled from the Flagship CDN), "
                     "BUCKETING_URL or BUCKETING_FILE");
    else if (!s->bucketing_url && !s->bucketing_file)
        add_error(s, "%s is none and BUCKETING_FILE is not set: no bucketing file to serve",
                  label(s, S_BUCKETING_URL));
    finish_store(s);
    finish_observability(s);
    return s->errors->nelts ? -1 : 0;
}

void dc_settings_api_options(const dc_settings_t *s, dc_api_options_t *opt)
{
    dc_api_options_default(opt);
    opt->env_id = s->env_id;
    opt->api_key = s->api_key;
    opt->require_api_key = s->require_api_key;
    opt->cors_enabled = s->cors_enabled;
    opt->cors_origins = s->cors_allowed_origins;
    opt->cors_headers = s->cors_allowed_headers;
    opt->max_body_size = s->max_body_size;
    opt->prometheus_path = s->prometheus_path;
    opt->ofrep_activate = s->ofrep_activate;
    opt->swagger_ui = s->swagger_ui;
}

void dc_settings_write_help(FILE *out)
{
    fprintf(out, "Settings (environment name, config-file key; the environment wins):\n");
    for (int i = 0; i < S_COUNT; i++) {
        fprintf(out, "  %-30s %s\n", defs[i].env, defs[i].yaml);
        fprintf(out, "      %s", defs[i].help);
        if (defs[i].def)
            fprintf(out, " [default: %s]", defs[i].def);
        fputc('\n', out);
    }
}

/*
 * dc_settings: the service's settings, by the Flagship decision-api's names.
 *
 * Every setting has a YAML key ("cors.enabled") and an environment name
 * (CORS_ENABLED: upper case, "." → "_"), the decision-api's convention, plus
 * ours (BUCKETING_URL, STORE, MAX_BODY_SIZE, ...). A front end feeds raw
 * text values in, in increasing priority (YAML file, then the environment,
 * then its own command line or directives), and then calls
 * dc_settings_finish(), which parses and checks them all at once and reports
 * every problem by name, so an operator fixes a configuration in one pass.
 *
 * Raw values are kept as text until the end so that "last one wins" holds
 * for every source and so that a reload (SIGHUP) is just a new settings
 * object built the same way. Secret values (API_KEY, the Redis password)
 * never appear in a message; a store URI is only ever shown masked.
 */
#ifndef DC_SETTINGS_H
#define DC_SETTINGS_H

#include "dc_api.h"
#include "dc_log.h"

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <stdio.h>

typedef enum { DC_LOG_FORMAT_TEXT = 0, DC_LOG_FORMAT_JSON } dc_log_format_e;

typedef struct dc_settings {
    apr_pool_t *pool;

    /* The parsed values, valid after a successful dc_settings_finish(). */
    const char *env_id;            /* NULL when not set */
    const char *api_key;           /* secret */
    dc_api_key_mode_e require_api_key;
    apr_interval_time_t polling_interval;
    int cors_enabled;
    const char *cors_allowed_origins;
    const char *cors_allowed_headers;
    dc_log_level_e log_level;
    dc_log_format_e log_format;
    const char *store_uri;         /* secret (may hold a password): give it to dc_store_open only */
    const char *bucketing_url;     /* NULL: no remote polling */
    const char *bucketing_file;
    const char *last_known_good;
    apr_size_t max_body_size;
    int threads;                   /* 0: the front end's default */
    const char *listen;            /* NULL: the front end's default */
    apr_interval_time_t shutdown_timeout;
    int metrics_enabled;
    const char *prometheus_path;   /* NULL: not served */
    const char *status_path;       /* NULL: no status page */
    const char *spool_dir;         /* NULL: events are not collected */
    const char *spool_options;     /* "key=value,..." for dc_spool_options_parse, NULL: defaults */
    const char *collector;         /* the shipper's sink */
    int shipper_enabled;
    int ofrep_activate;            /* OFREP evaluations send activation hits */

    /* Raw text by setting, and where each came from ("environment", "file.yaml:3"). */
    const char **raw;
    const char **origin;
    apr_array_header_t *errors;    /* const char *: one message per problem */
    apr_array_header_t *warnings;
} dc_settings_t;

/* Starts an empty settings object (every value at its default) in p. */
dc_settings_t *dc_settings_create(apr_pool_t *p);

/*
 * Sets one raw value by its environment name or YAML key, case-insensitively
 * ("CORS_ENABLED", "cors.enabled", "cache.options.redisHost"). A NULL value
 * unsets it. Returns 0, or -1 for an unknown name (recorded as an error).
 */
int dc_settings_set(dc_settings_t *s, const char *name, const char *value, const char *origin);

/* Reads a YAML file (nested mappings of scalars, like the decision-api's
 * config.yaml). Unknown keys and non-scalar values are errors naming the key
 * and line. Returns 0, or -1 when there were errors (also recorded). */
int dc_settings_load_yaml(dc_settings_t *s, const char *path);

/* Takes every known variable of envp (NULL-terminated "NAME=value"), and
 * records an error for an unknown one that starts with one of our prefixes
 * (CACHE_, CORS_, BUCKETING_, LOG_) and is close to a known name, naming it. Empty
 * variables are unset (as viper has it), so they do not hide the file's value. */
int dc_settings_load_env(dc_settings_t *s, const char *const *envp);

/* Parses and checks everything; returns 0, or -1 with s->errors filled. */
int dc_settings_finish(dc_settings_t *s);

/* The API options these settings give (strings stay in s's pool). */
void dc_settings_api_options(const dc_settings_t *s, dc_api_options_t *opt);

/* Every setting, one per line group: environment name, YAML key, default, meaning. */
void dc_settings_write_help(FILE *out);

/* A Go duration ("1m30s", "500ms", "2h"); a bare number other than 0 needs a unit.
 * Returns 0 and the value in microseconds, or -1. */
int dc_parse_go_duration(const char *text, apr_interval_time_t *out);
/* Go's strconv.ParseBool words (1, t, true, 0, f, false in any case) and on/off, yes/no. */
int dc_parse_bool(const char *text, int *out);
/* REQUIRE_API_KEY / DecisionRequireApiKey: a boolean word, or "decisions" (the key
 * for everything but /v2/activate). Returns 0, or -1 for anything else. */
int dc_parse_api_key_mode(const char *text, dc_api_key_mode_e *out);

#endif

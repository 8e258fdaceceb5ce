/*
 * dc_source: where a service's bucketing file comes from, and keeping it fresh.
 *
 * A source has up to three places, any of which may be unset:
 *   - url: the remote file (the Flagship CDN by default, or any HTTP(S) URL),
 *     polled with a conditional GET (If-None-Match / If-Modified-Since);
 *   - file: a local bucketing file (offline use, or the first config before
 *     the first fetch); re-read when its modification time or size changes;
 *   - last_known_good: where every accepted remote config is written (temp
 *     file + rename, so a reader never sees half a file) and read back at
 *     start, so a restart serves the last good config before the network
 *     answers.
 *
 * Nothing is published that did not parse completely: a fetch that fails, a
 * 4xx/5xx, an oversized body or a file that does not parse keeps the current
 * config, and is logged once per failure streak (and once when it recovers).
 *
 * The refresh is blocking network I/O with bounded timeouts: call it from a
 * background thread (decision-fcgi) or the httpd watchdog, never from a
 * request. One source must not be refreshed from two threads at once.
 */
#ifndef DC_SOURCE_H
#define DC_SOURCE_H

#include "dc_config.h"

#include <apr_pools.h>
#include <apr_time.h>

#define DC_SOURCE_DEFAULT_URL_FMT "https://cdn.flagship.io/%s/bucketing.json"
#define DC_SOURCE_DEFAULT_INTERVAL apr_time_from_sec(60)
#define DC_SOURCE_DEFAULT_TIMEOUT_MS 10000
#define DC_SOURCE_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DC_SOURCE_DEFAULT_MAX_SIZE (32 * 1024 * 1024)

typedef struct {
    const char *url;              /* NULL: no remote polling */
    const char *file;             /* NULL: no local file */
    const char *last_known_good;  /* NULL: not kept */
    long timeout_ms;              /* whole transfer; 0 = default */
    long connect_timeout_ms;      /* 0 = default */
    apr_size_t max_size;          /* largest body accepted; 0 = default */
    const char *ca_file;          /* extra CA bundle for TLS, NULL = system */
    const char *user_agent;       /* NULL = "mod_decision/VERSION" */
    dc_config_parse_fn *parse;    /* how files become snapshots; NULL = dc_config_parse */
    void *parse_baton;
} dc_source_options_t;

typedef enum {
    DC_SOURCE_CHANGED = 0,  /* a new config was parsed (and written as last-known-good) */
    DC_SOURCE_UNCHANGED,    /* 304, or the same bytes/file as before */
    DC_SOURCE_FAILED        /* fetch, HTTP status, size or parse error: keep the current one */
} dc_source_result_e;

/* What the health and status pages show (a copy, safe to read while a refresh runs). */
typedef struct {
    const char *origin;            /* where the current config came from: "url", "file",
                                      "last-known-good", or "none" */
    char digest[17];               /* of the current config's bytes, "" when none */
    apr_time_t last_attempt;       /* 0 before the first refresh */
    apr_time_t last_success;       /* last CHANGED or UNCHANGED */
    apr_time_t last_change;        /* when the current config was accepted */
    char last_error[256];          /* "" when the last refresh succeeded */
    unsigned failures_in_a_row;
    unsigned long fetches, changes, not_modified, errors;
} dc_source_status_t;

typedef struct dc_source dc_source_t;

/* Copies the options into p (which must outlive the source). Returns NULL if
 * none of url and file is set, with a message in err. */
dc_source_t *dc_source_create(apr_pool_t *p, const dc_source_options_t *o, char *err,
                              size_t err_len);

/*
 * The config to serve at start, without the network: the last-known-good file
 * when it exists and parses, else the local file. Returns 0 with a new
 * reference in *cfg, or -1 with err filled (no file yet, or none parses; the
 * caller may still refresh from the URL).
 */
int dc_source_load_initial(dc_source_t *s, dc_config_t **cfg, char *err, size_t err_len);

/*
 * One refresh: with a URL, a conditional GET; without, a stat() of the local
 * file. On DC_SOURCE_CHANGED, *cfg holds a new reference the caller publishes.
 */
dc_source_result_e dc_source_refresh(dc_source_t *s, dc_config_t **cfg);

/* The digest of the config being served when another process accepted it
 * (httpd's poller moved to another child): refreshes compare with it, so that
 * a file that went back to what this process last saw is not taken for
 * unchanged. */
void dc_source_set_served(dc_source_t *s, const char *digest);

void dc_source_status(dc_source_t *s, dc_source_status_t *st);

/* Frees what the source holds outside its pool (curl handle). */
void dc_source_destroy(dc_source_t *s);

#endif

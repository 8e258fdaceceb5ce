/*
 * The decision-api's cache settings → our store URI (see dc_store_flagship.h).
 *
 * Only the mapping lives here; what each URI means is dc_store_open()'s
 * business. The Redis password is percent-encoded into the URI's userinfo
 * (so any byte survives) and is never put into an error message.
 */
#include "dc_store_flagship.h"
#include "dc_settings.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Userinfo characters that need no escaping (RFC 3986 unreserved). */
static char *percent_encode(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            *o++ = (char)*c;
        } else {
            *o++ = '%';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o = '\0';
    return out;
}

typedef struct {
    dc_store_setting_fn *get;
    void *baton;
} settings_t;

static const char *option(const settings_t *o, const char *name)
{
    const char *v = o->get(o->baton, name);

    return v && *v ? v : NULL;
}

/* host:port with a numeric port; a bare host gets the default port. */
static const char *redis_address(apr_pool_t *p, const char *host, char *err, size_t err_len)
{
    const char *colon = strrchr(host, ':');
    char *end;
    long port;

    if (strpbrk(host, "/@?# \t")) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISHOST: expected host:port");
        return NULL;
    }
    if (!colon || (host[0] == '[' && colon[-1] != ']'))
        return apr_pstrcat(p, host, ":6379", NULL);
    port = strtol(colon + 1, &end, 10);
    if (colon == host || *end || end == colon + 1 || port < 1 || port > 65535) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISHOST: expected host:port with a port 1-65535");
        return NULL;
    }
    return host;
}

static const char *redis_uri(apr_pool_t *p, const settings_t *o, char *err, size_t err_len)
{
    const char *host = option(o, "CACHE_OPTIONS_REDISHOST");
    const char *user = option(o, "CACHE_OPTIONS_REDISUSERNAME");
    const char *password = option(o, "CACHE_OPTIONS_REDISPASSWORD");
    const char *db = option(o, "CACHE_OPTIONS_REDISDB"), *tls = option(o, "CACHE_OPTIONS_REDISTLS");
    const char *ttl = option(o, "CACHE_OPTIONS_REDISTTL");
    const char *address, *userinfo = "";
    apr_interval_time_t ttl_us = apr_time_from_sec(2160 * 3600);
    int use_tls = 0;
    long db_index = 0;

    address = redis_address(p, host ? host : "localhost:6379", err, err_len);
    if (!address)
        return NULL;
    if (db) {
        char *end;

        db_index = strtol(db, &end, 10);
        if (*end || db_index < 0 || db_index > 1000000) {
            snprintf(err, err_len, "CACHE_OPTIONS_REDISDB: expected a database number, not \"%s\"",
                     db);
            return NULL;
        }
    }
    if (tls && dc_parse_bool(tls, &use_tls) < 0) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISTLS: expected true or false, not \"%s\"", tls);
        return NULL;
    }
    if (ttl && (dc_parse_go_duration(ttl, &ttl_us) < 0 || ttl_us < apr_time_from_sec(1))) {
        snprintf(err, err_len,
                 "CACHE_OPTIONS_REDISTTL: expected a Go duration of at least 1s (\"2160h\"), not "
                 "\"%s\"",
                 ttl);
        return NULL;
    }
    if (user || password)
        userinfo = apr_pstrcat(p, user ? percent_encode(p, user) : "", ":",
                               password ? percent_encode(p, password) : "", "@", NULL);
    return apr_psprintf(p, "%s://%s%s/%ld?ttl=%" APR_INT64_T_FMT, use_tls ? "rediss" : "redis",
                        userinfo, address, db_index, (apr_int64_t)apr_time_sec(ttl_us));
}

const char *dc_store_uri_from_flagship(apr_pool_t *p, dc_store_setting_fn *get, void *baton,
                                       char *err, size_t err_len)
{
    settings_t o = {get, baton};
    const char *cache_type = option(&o, "CACHE_TYPE");

    if (!cache_type || !*cache_type || strcasecmp(cache_type, "none") == 0)
        return "none";
    if (strcasecmp(cache_type, "memory") == 0)
        return "memory";
    if (strcasecmp(cache_type, "local") == 0) {
        const char *path = option(&o, "CACHE_OPTIONS_DBPATH");
        apr_finfo_t fi;

        if (!path)
            path = "cache_data";
        if (apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_DIR)
            path = apr_pstrcat(p, path, "/assignments", NULL);
        return apr_pstrcat(p, "dbm:", path, NULL);
    }
    if (strcasecmp(cache_type, "redis") == 0)
        return redis_uri(p, &o, err, err_len);
    if (strcasecmp(cache_type, "dynamo") == 0) {
        snprintf(err, err_len,
                 "CACHE_TYPE: dynamo is not supported here: use redis, local, memory or none");
        return NULL;
    }
    snprintf(err, err_len,
             "CACHE_TYPE: unknown cache type \"%s\": use none, memory, local or redis", cache_type);
    return NULL;
}

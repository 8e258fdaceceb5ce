/*
 * dc_uri: the small pieces every backend URI parser needs ("redis://...?a=1&b=2",
 * "dynamo://TABLE?..."): %-decoding, bounded decimal numbers, and a walk over
 * the NAME=VALUE options of a query.
 */
#ifndef DC_URI_H
#define DC_URI_H

#include <apr_pools.h>
#include <stddef.h>

/* %-decodes [s, s + len) into p; NULL on a bad escape or an escaped NUL. */
char *dc_uri_percent_decode(apr_pool_t *p, const char *s, size_t len);

/* A decimal number of [s, s + len) in [min, max] (digits only, at most 12): 0, or -1. */
int dc_uri_parse_long(const char *s, size_t len, long min, long max, long *out);

typedef struct {
    const char *name, *value; /* not NUL-terminated, not decoded */
    size_t name_len, value_len;
} dc_uri_option_t;

/* Takes the next option of *query (which it advances; NULL or "" at the end):
 * 1 with o filled, 0 at the end, -1 for an option without "=" (o->name is that
 * option, o->name_len its length). */
int dc_uri_next_option(const char **query, dc_uri_option_t *o);

/* Whether o's name is name. */
int dc_uri_option_is(const dc_uri_option_t *o, const char *name);

#endif

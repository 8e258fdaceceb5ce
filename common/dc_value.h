/*
 * dc_value: a typed JSON value as targeting sees it. Targeting values (from
 * the bucketing file) and context values (from a request) are both turned
 * into this form once, with the lower-cased and case-folded forms of strings
 * computed up front, so the evaluation loop never allocates.
 */
#ifndef DC_VALUE_H
#define DC_VALUE_H

#include "dc_arena.h"

#include <apr_pools.h>
#include <jansson.h>
#include <stddef.h>

typedef enum {
    DC_KIND_NULL = 0,
    DC_KIND_BOOL,
    DC_KIND_NUMBER,
    DC_KIND_STRING,
    DC_KIND_LIST,
    DC_KIND_OBJECT
} dc_kind_e;

typedef struct dc_value dc_value_t;
struct dc_value {
    dc_kind_e kind;
    int boolean;
    double number;
    const char *str;     /* DC_KIND_STRING: the bytes as given (not NUL-terminated semantics) */
    size_t len;
    const char *lower;   /* lower-cased (for ordering, contains, prefix, suffix) */
    size_t lower_len;
    const char *folded;  /* case-folded (for equality) */
    size_t folded_len;
    const dc_value_t *items; /* DC_KIND_LIST */
    size_t n_items;
};

/* Converts a JSON value into p; nested lists become lists, objects stay opaque. */
void dc_value_from_json(apr_pool_t *p, const json_t *json, dc_value_t *out);
/* The same into a snapshot's arena. */
void dc_value_from_json_in(dc_arena_t *a, const json_t *json, dc_value_t *out);

/* Sets up a string value, computing its lower/folded forms in p (shared when unchanged). */
void dc_value_set_string(apr_pool_t *p, dc_value_t *out, const char *s, size_t len);

/* The same without the lower/folded forms (NULL): a request's context value that
 * dc_value_fold() completes only if a targeting reads its key. */
void dc_value_set_string_raw(dc_value_t *out, const char *s, size_t len);

/* Computes the forms a raw string value (or the strings of a list) lacks. */
void dc_value_fold(apr_pool_t *p, dc_value_t *v);

#endif

#include "dc_value.h"
#include "dc_unicode.h"

#include <string.h>

static const char *lowered(dc_arena_t *a, const char *s, size_t len, int fold, size_t *out_len)
{
    char *buf;

    if (dc_utf8_is_lower(s, len, fold)) {
        *out_len = len;
        return s;
    }
    buf = dc_arena_alloc(a, dc_utf8_lower_bound(len));
    *out_len = dc_utf8_lower(s, len, buf, fold);
    buf[*out_len] = '\0';
    return buf;
}

static void set_string(dc_arena_t *a, dc_value_t *out, const char *s, size_t len)
{
    memset(out, 0, sizeof(*out));
    out->kind = DC_KIND_STRING;
    out->str = s;
    out->len = len;
    out->lower = lowered(a, s, len, 0, &out->lower_len);
    out->folded = lowered(a, s, len, 1, &out->folded_len);
}

void dc_value_set_string(apr_pool_t *p, dc_value_t *out, const char *s, size_t len)
{
    dc_arena_t a;

    dc_arena_init_pool(&a, p);
    set_string(&a, out, s, len);
}

void dc_value_set_string_raw(dc_value_t *out, const char *s, size_t len)
{
    memset(out, 0, sizeof(*out));
    out->kind = DC_KIND_STRING;
    out->str = s;
    out->len = len;
}

static void fold(dc_arena_t *a, dc_value_t *v)
{
    if (v->kind == DC_KIND_STRING && !v->lower) {
        v->lower = lowered(a, v->str, v->len, 0, &v->lower_len);
        v->folded = lowered(a, v->str, v->len, 1, &v->folded_len);
    } else if (v->kind == DC_KIND_LIST) {
        for (size_t i = 0; i < v->n_items; i++)
            fold(a, (dc_value_t *)&v->items[i]); /* items belong to v */
    }
}

void dc_value_fold(apr_pool_t *p, dc_value_t *v)
{
    dc_arena_t a;

    dc_arena_init_pool(&a, p);
    fold(&a, v);
}

void dc_value_from_json_in(dc_arena_t *a, const json_t *json, dc_value_t *out)
{
    memset(out, 0, sizeof(*out));
    switch (json_typeof(json)) {
    case JSON_TRUE:
    case JSON_FALSE:
        out->kind = DC_KIND_BOOL;
        out->boolean = json_is_true(json);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        out->kind = DC_KIND_NUMBER;
        out->number = json_number_value(json);
        break;
    case JSON_STRING: {
        size_t len = json_string_length(json);
        set_string(a, out, dc_arena_strndup(a, json_string_value(json), len), len);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(json);
        dc_value_t *items = n ? dc_arena_calloc(a, n * sizeof(*items)) : NULL;

        for (size_t i = 0; i < n; i++)
            dc_value_from_json_in(a, json_array_get(json, i), &items[i]);
        out->kind = DC_KIND_LIST;
        out->items = items;
        out->n_items = n;
        break;
    }
    case JSON_OBJECT:
        out->kind = DC_KIND_OBJECT;
        break;
    case JSON_NULL:
    default:
        out->kind = DC_KIND_NULL;
        break;
    }
}

void dc_value_from_json(apr_pool_t *p, const json_t *json, dc_value_t *out)
{
    dc_arena_t a;

    dc_arena_init_pool(&a, p);
    dc_value_from_json_in(&a, json, out);
}

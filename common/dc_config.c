/*
 * Bucketing-file parser. The whole file is validated and converted before a
 * snapshot exists, so a bad file can never half-replace a good one: either
 * dc_config_parse() returns a complete snapshot or it returns an error that
 * names where the file is wrong.
 *
 * What we reject (the decision-api would crash or refuse the file): wrong
 * JSON types, a variation, variation group or campaign without an id, a
 * bucket range with fewer than two numbers, a modifications.value that is not
 * an object. What we accept with a warning: a campaign without bucket ranges
 * (served to nobody, as upstream), fractional allocations, unknown operators
 * (that targeting never matches), duplicate campaign ids (the first wins).
 */
#include "dc_config.h"
#include "dc_index.h"
#include "dc_arena.h"
#include "dc_buf.h"
#include "dc_log.h"

#include <apr_allocator.h>
#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const operator_names[] = {
    [DC_OP_UNKNOWN] = "NULL",
    [DC_OP_EQUALS] = "EQUALS",
    [DC_OP_NOT_EQUALS] = "NOT_EQUALS",
    [DC_OP_CONTAINS] = "CONTAINS",
    [DC_OP_NOT_CONTAINS] = "NOT_CONTAINS",
    [DC_OP_GREATER_THAN] = "GREATER_THAN",
    [DC_OP_LOWER_THAN] = "LOWER_THAN",
    [DC_OP_GREATER_THAN_OR_EQUALS] = "GREATER_THAN_OR_EQUALS",
    [DC_OP_LOWER_THAN_OR_EQUALS] = "LOWER_THAN_OR_EQUALS",
    [DC_OP_STARTS_WITH] = "STARTS_WITH",
    [DC_OP_ENDS_WITH] = "ENDS_WITH",
    [DC_OP_EXISTS] = "EXISTS",
    [DC_OP_NOT_EXISTS] = "NOT_EXISTS",
    [DC_OP_SEMVER_EQUALS] = "SEMVER_EQUALS",
    [DC_OP_SEMVER_NOT_EQUALS] = "SEMVER_NOT_EQUALS",
    [DC_OP_SEMVER_GREATER_THAN] = "SEMVER_GREATER_THAN",
    [DC_OP_SEMVER_LOWER_THAN] = "SEMVER_LOWER_THAN",
    [DC_OP_SEMVER_GREATER_THAN_OR_EQUALS] = "SEMVER_GREATER_THAN_OR_EQUALS",
    [DC_OP_SEMVER_LOWER_THAN_OR_EQUALS] = "SEMVER_LOWER_THAN_OR_EQUALS",
};

/* The protobuf enum numbers of targeting.proto (0-12); JSON may use them. */
static const dc_operator_e operator_numbers[] = {
    DC_OP_UNKNOWN,      DC_OP_LOWER_THAN, DC_OP_GREATER_THAN_OR_EQUALS, DC_OP_LOWER_THAN_OR_EQUALS,
    DC_OP_EQUALS,       DC_OP_NOT_EQUALS, DC_OP_STARTS_WITH,            DC_OP_ENDS_WITH,
    DC_OP_CONTAINS,     DC_OP_NOT_CONTAINS, DC_OP_GREATER_THAN,         DC_OP_EXISTS,
    DC_OP_NOT_EXISTS,
};

const char *dc_operator_name(dc_operator_e op)
{
    return (unsigned)op < sizeof(operator_names) / sizeof(operator_names[0]) ? operator_names[op]
                                                                             : "NULL";
}

dc_operator_e dc_operator_from_name(const char *name)
{
    for (size_t i = 1; i < sizeof(operator_names) / sizeof(operator_names[0]); i++)
        if (strcmp(name, operator_names[i]) == 0)
            return (dc_operator_e)i;
    return DC_OP_UNKNOWN;
}

typedef struct {
    dc_arena_t *mem;     /* the snapshot's memory */
    apr_pool_t *scratch; /* rendering buffers, cleared as parsing goes */
    dc_config_error_t *err;
    char path[256];
    size_t n_unknown_operators;
    size_t n_fractional;
    /* Every campaign's variation groups, one after the other in the file's order: a
     * decision walks them so (parse_document() counts them first). */
    dc_variation_group_t *groups;
    size_t n_groups_left;
} parser_t;

static int fail(parser_t *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser_t *ps, const char *fmt, ...)
{
    va_list ap;

    apr_cpystrn(ps->err->path, ps->path, sizeof(ps->err->path));
    va_start(ap, fmt);
    vsnprintf(ps->err->text, sizeof(ps->err->text), fmt, ap);
    va_end(ap);
    return -1;
}

/* Appends ".name" or "[i]" to the current path; returns the old length to restore. */
static size_t path_push(parser_t *ps, const char *name, long index)
{
    size_t old = strlen(ps->path);

    if (name)
        snprintf(ps->path + old, sizeof(ps->path) - old, "%s%s", old ? "." : "", name);
    else
        snprintf(ps->path + old, sizeof(ps->path) - old, "[%ld]", index);
    return old;
}

static void path_pop(parser_t *ps, size_t old)
{
    ps->path[old] = '\0';
}

/* A field under its camelCase or snake_case name; JSON null counts as absent. */
static json_t *field(const json_t *obj, const char *camel, const char *snake, const char **used)
{
    json_t *v = json_object_get(obj, camel);

    *used = camel;
    if ((!v || json_is_null(v)) && snake) {
        v = json_object_get(obj, snake);
        *used = snake;
    }
    return v && !json_is_null(v) ? v : NULL;
}

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a bool";
    default: return "null";
    }
}

static int get_string(parser_t *ps, const json_t *obj, const char *camel, const char *snake,
                      int required, const char **out, size_t *out_len)
{
    const char *used;
    json_t *v = field(obj, camel, snake, &used);
    size_t old;
    int rc = 0;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!v) {
        if (required) {
            old = path_push(ps, camel, 0);
            rc = fail(ps, "missing (required)");
            path_pop(ps, old);
        }
        return rc;
    }
    old = path_push(ps, used, 0);
    if (!json_is_string(v)) {
        rc = fail(ps, "expected a string, found %s", kind_name(v));
    } else if (required && json_string_length(v) == 0) {
        rc = fail(ps, "must not be empty");
    } else {
        *out = dc_arena_strndup(ps->mem, json_string_value(v), json_string_length(v));
        if (out_len)
            *out_len = json_string_length(v);
    }
    path_pop(ps, old);
    return rc;
}

static int get_bool(parser_t *ps, const json_t *obj, const char *camel, const char *snake, int *out)
{
    const char *used;
    json_t *v = field(obj, camel, snake, &used);
    size_t old;
    int rc = 0;

    *out = 0;
    if (!v)
        return 0;
    old = path_push(ps, used, 0);
    if (!json_is_boolean(v))
        rc = fail(ps, "expected a bool, found %s", kind_name(v));
    else
        *out = json_is_true(v);
    path_pop(ps, old);
    return rc;
}

/* Protobuf JSON accepts numbers and numeric strings for numeric fields. */
static int to_number(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return isfinite(*out) ? 0 : -1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;

        if (!*s)
            return -1;
        *out = strtod(s, &end);
        return *end == '\0' && isfinite(*out) ? 0 : -1;
    }
    return -1;
}

static int get_array(parser_t *ps, const json_t *obj, const char *camel, const char *snake,
                     json_t **out, const char **used)
{
    json_t *v = field(obj, camel, snake, used);
    size_t old;
    int rc = 0;

    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_array(v)) {
        old = path_push(ps, *used, 0);
        rc = fail(ps, "expected an array, found %s", kind_name(v));
        path_pop(ps, old);
        return rc;
    }
    *out = v;
    return 0;
}

static int expect_object(parser_t *ps, const json_t *v)
{
    return json_is_object(v) ? 0 : fail(ps, "expected an object, found %s", kind_name(v));
}

/* Operator names come from a remote file: keep control bytes out of the log. */
static void printable_copy(char *out, size_t cap, const char *in)
{
    size_t i = 0;

    for (; in[i] && i + 1 < cap; i++)
        out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[i] = '\0';
}

static int parse_targeting(parser_t *ps, const json_t *obj, dc_targeting_t *t)
{
    const char *used;
    json_t *op, *value;
    const char *provider;
    size_t old;

    if (expect_object(ps, obj) < 0)
        return -1;
    memset(t, 0, sizeof(*t));
    if (get_string(ps, obj, "key", NULL, 0, &t->key, &t->key_len) < 0)
        return -1;
    if (!t->key)
        t->key = "";
    if (get_string(ps, obj, "provider", NULL, 0, &provider, NULL) < 0)
        return -1;

    op = field(obj, "operator", NULL, &used);
    old = path_push(ps, "operator", 0);
    if (!op) {
        t->op = DC_OP_UNKNOWN;
    } else if (json_is_string(op)) {
        t->op = dc_operator_from_name(json_string_value(op));
        if (t->op == DC_OP_UNKNOWN && strcmp(json_string_value(op), "NULL") != 0 &&
            ps->n_unknown_operators++ < 3) {
            char name[48];

            printable_copy(name, sizeof(name), json_string_value(op));
            dc_log(DC_LOG_WARN,
                   DCLOGNO(10001) "bucketing file: %s: unknown operator \"%s\"; this targeting "
                                  "never matches (upgrade mod_decision if it is new)",
                   ps->path, name);
        }
    } else if (json_is_integer(op)) {
        json_int_t n = json_integer_value(op);

        t->op = n >= 0 && (size_t)n < sizeof(operator_numbers) / sizeof(operator_numbers[0])
                    ? operator_numbers[n]
                    : DC_OP_UNKNOWN;
        if (t->op == DC_OP_UNKNOWN && n != 0 && ps->n_unknown_operators++ < 3) {
            dc_log(DC_LOG_WARN,
                   DCLOGNO(10002) "bucketing file: %s: unknown operator number %" JSON_INTEGER_FORMAT
                                  "; this targeting never matches",
                   ps->path, n);
        }
    } else {
        int rc = fail(ps, "expected an operator name, found %s", kind_name(op));
        path_pop(ps, old);
        return rc;
    }
    path_pop(ps, old);

    value = json_object_get(obj, "value");
    if (value)
        dc_value_from_json_in(ps->mem, value, &t->value);
    else
        t->value.kind = DC_KIND_NULL;

    if (provider && *provider)
        t->key_kind = DC_KEY_PROVIDER;
    else if (strcmp(t->key, "fs_all_users") == 0)
        t->key_kind = DC_KEY_ALL_USERS;
    else if (strcmp(t->key, "fs_users") == 0)
        t->key_kind = DC_KEY_USERS;
    else
        t->key_kind = DC_KEY_CONTEXT;
    return 0;
}

static int parse_targeting_groups(parser_t *ps, const json_t *vg, dc_variation_group_t *out)
{
    const char *used;
    json_t *targeting = field(vg, "targeting", NULL, &used);
    json_t *groups;
    size_t old, n;
    dc_targeting_group_t *tg;

    out->groups = NULL;
    out->n_groups = 0;
    if (!targeting)
        return 0;
    old = path_push(ps, "targeting", 0);
    if (expect_object(ps, targeting) < 0 ||
        get_array(ps, targeting, "targetingGroups", "targeting_groups", &groups, &used) < 0)
        return -1;
    if (groups) {
        size_t old_groups = path_push(ps, used, 0);

        n = json_array_size(groups);
        tg = n ? dc_arena_calloc(ps->mem, n * sizeof(*tg)) : NULL;
        for (size_t i = 0; i < n; i++) {
            json_t *group = json_array_get(groups, i), *targetings;
            size_t old_i = path_push(ps, NULL, (long)i);
            dc_targeting_t *ts;
            size_t nt;

            if (expect_object(ps, group) < 0 ||
                get_array(ps, group, "targetings", NULL, &targetings, &used) < 0)
                return -1;
            nt = targetings ? json_array_size(targetings) : 0;
            ts = nt ? dc_arena_calloc(ps->mem, nt * sizeof(*ts)) : NULL;
            for (size_t j = 0; j < nt; j++) {
                size_t old_t = path_push(ps, "targetings", 0);
                size_t old_j = path_push(ps, NULL, (long)j);

                if (parse_targeting(ps, json_array_get(targetings, j), &ts[j]) < 0)
                    return -1;
                path_pop(ps, old_j);
                path_pop(ps, old_t);
            }
            tg[i].targetings = ts;
            tg[i].n_targetings = nt;
            path_pop(ps, old_i);
        }
        out->groups = tg;
        out->n_groups = n;
        path_pop(ps, old_groups);
    }
    path_pop(ps, old);
    return 0;
}

static int compare_flags(const void *a, const void *b)
{
    return strcmp(((const dc_flag_t *)a)->key, ((const dc_flag_t *)b)->key);
}

const char *dc_modification_content_type(const char *type)
{
    if (strcmp(type, "IMAGE") == 0)
        return "image";
    if (strcmp(type, "TEXT") == 0)
        return "text/plain";
    if (strcmp(type, "HTML") == 0)
        return "text/html";
    return NULL;
}

static int parse_modifications(parser_t *ps, const json_t *var, dc_variation_t *out)
{
    const char *used;
    json_t *mods = field(var, "modifications", NULL, &used);
    json_t *value;
    size_t old, n, i = 0;
    dc_flag_t *flags;
    const char *key;
    json_t *item;

    out->has_modifications = 0;
    out->modifications_type = "NULL";
    out->flags = NULL;
    out->n_flags = 0;
    if (!mods)
        return 0;
    old = path_push(ps, "modifications", 0);
    if (expect_object(ps, mods) < 0)
        return -1;
    out->has_modifications = 1;
    {
        json_t *type = field(mods, "type", NULL, &used);
        size_t old_t = path_push(ps, "type", 0);

        if (type && json_is_string(type))
            out->modifications_type = dc_arena_strdup(ps->mem, json_string_value(type));
        else if (type)
            return fail(ps, "expected a modification type name, found %s", kind_name(type));
        path_pop(ps, old_t);
    }
    value = field(mods, "value", NULL, &used);
    if (value) {
        size_t old_v = path_push(ps, "value", 0);

        if (expect_object(ps, value) < 0)
            return -1;
        n = json_object_size(value);
        flags = n ? dc_arena_calloc(ps->mem, n * sizeof(*flags)) : NULL;
        json_object_foreach(value, key, item)
        {
            dc_buf_t b;

            dc_buf_init(&b, ps->scratch, 64);
            dc_json_put_value(&b, item);
            flags[i].key = dc_arena_strdup(ps->mem, key);
            flags[i].key_len = strlen(key);
            flags[i].json = dc_arena_strndup(ps->mem, b.data, b.len);
            flags[i].json_len = b.len;
            flags[i].is_null = json_is_null(item);
            flags[i].is_scalar = json_is_number(item) || json_is_boolean(item);
            if (json_is_string(item) && dc_modification_content_type(out->modifications_type)) {
                flags[i].text_len = json_string_length(item);
                flags[i].text = dc_arena_strndup(ps->mem, json_string_value(item), flags[i].text_len);
            }
            i++;
        }
        if (n > 1)
            qsort(flags, n, sizeof(*flags), compare_flags);
        out->flags = flags;
        out->n_flags = n;
        path_pop(ps, old_v);
    }
    path_pop(ps, old);
    return 0;
}

static int parse_variation(parser_t *ps, const json_t *var, dc_variation_t *out)
{
    const char *used;
    json_t *alloc;

    if (expect_object(ps, var) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    if (get_string(ps, var, "id", NULL, 1, &out->id, &out->id_len) < 0 ||
        get_string(ps, var, "name", NULL, 0, &out->name, NULL) < 0 ||
        get_bool(ps, var, "reference", NULL, &out->reference) < 0)
        return -1;
    if (!out->name)
        out->name = "";
    alloc = field(var, "allocation", NULL, &used);
    if (alloc) {
        size_t old = path_push(ps, "allocation", 0);

        if (to_number(alloc, &out->allocation) < 0)
            return fail(ps, "expected a number, found %s", kind_name(alloc));
        if (out->allocation != floor(out->allocation))
            ps->n_fractional++;
        path_pop(ps, old);
    }
    return parse_modifications(ps, var, out);
}

/* Sorted union of the flag keys of every variation of a group. */
static void collect_all_keys(dc_arena_t *a, dc_variation_group_t *vg)
{
    size_t total = 0, n = 0;
    const char **keys;
    size_t *lens;

    for (size_t i = 0; i < vg->n_variations; i++)
        total += vg->variations[i].n_flags;
    if (total == 0)
        return;
    keys = dc_arena_alloc(a, total * sizeof(*keys));
    lens = dc_arena_alloc(a, total * sizeof(*lens));
    for (size_t i = 0; i < vg->n_variations; i++)
        for (size_t j = 0; j < vg->variations[i].n_flags; j++)
            keys[n++] = vg->variations[i].flags[j].key;
    {
        /* insertion into a sorted unique prefix of the same array; groups have few keys */
        size_t m = 0;

        for (size_t i = 0; i < n; i++) {
            const char *k = keys[i];
            size_t pos = 0;
            int found = 0;

            while (pos < m) {
                int c = strcmp(keys[pos], k);

                if (c == 0) {
                    found = 1;
                    break;
                }
                if (c > 0)
                    break;
                pos++;
            }
            if (found)
                continue;
            memmove(&keys[pos + 1], &keys[pos], (m - pos) * sizeof(*keys));
            keys[pos] = k;
            m++;
        }
        for (size_t i = 0; i < m; i++)
            lens[i] = strlen(keys[i]);
        vg->all_keys = keys;
        vg->all_key_lens = lens;
        vg->n_all_keys = m;
    }
}

void dc_variation_each_flag(const dc_variation_group_t *vg, const dc_variation_t *var,
                            int expose_all, dc_flag_fn *fn, void *baton)
{
    if (!expose_all) {
        for (size_t i = 0; i < var->n_flags; i++)
            if (!var->flags[i].is_null)
                fn(baton, var->flags[i].key, var->flags[i].key_len, &var->flags[i]);
        return;
    }
    /* Both lists are sorted: one merge pass. */
    for (size_t k = 0, f = 0; k < vg->n_all_keys; k++) {
        const dc_flag_t *flag = NULL;

        if (f < var->n_flags && strcmp(var->flags[f].key, vg->all_keys[k]) == 0)
            flag = &var->flags[f++];
        fn(baton, vg->all_keys[k], vg->all_key_lens[k], flag);
    }
}

typedef struct {
    dc_buf_t *b;
    int first;
} object_writer_t;

static void put_object_member(void *baton, const char *key, size_t key_len, const dc_flag_t *flag)
{
    object_writer_t *w = baton;

    if (!w->first)
        dc_buf_putc(w->b, ',');
    w->first = 0;
    dc_json_put_string(w->b, key, key_len);
    dc_buf_putc(w->b, ':');
    if (flag)
        dc_buf_append(w->b, flag->json, flag->json_len);
    else
        dc_buf_puts(w->b, "null");
}

/* What a decision for this variation shows in "campaigns": it depends on
 * nothing of the request but exposeAllKeys, so it is written here once. */
static void render_campaign_entry(parser_t *ps, const dc_variation_group_t *vg,
                                  dc_variation_t *v, int expose_all)
{
    const dc_campaign_t *c = vg->campaign;
    dc_buf_t b;

    dc_buf_init(&b, ps->scratch, 512); /* grown there, copied to the snapshot at its size */
    dc_buf_puts(&b, "{\"id\":");
    dc_json_put_string_or_null(&b, c->id);
    dc_buf_puts(&b, ",\"name\":");
    dc_json_put_string_or_null(&b, c->name);
    dc_buf_puts(&b, ",\"slug\":");
    dc_json_put_string_or_null(&b, c->slug);
    dc_buf_puts(&b, ",\"type\":");
    dc_json_put_string_or_null(&b, c->type);
    dc_buf_puts(&b, ",\"variationGroupId\":");
    dc_json_put_string(&b, vg->id, vg->id_len);
    dc_buf_puts(&b, ",\"variationGroupName\":");
    dc_json_put_string_or_null(&b, vg->name);
    dc_buf_puts(&b, ",\"variation\":{\"id\":");
    dc_json_put_string(&b, v->id, v->id_len);
    dc_buf_puts(&b, ",\"name\":");
    dc_json_put_string_or_null(&b, v->name);
    dc_buf_puts(&b, ",\"modifications\":");
    if (v->has_modifications) {
        object_writer_t w = {&b, 1};

        dc_buf_puts(&b, "{\"type\":");
        dc_json_put_string_or_null(&b, v->modifications_type);
        dc_buf_puts(&b, ",\"value\":{");
        dc_variation_each_flag(vg, v, expose_all, put_object_member, &w);
        dc_buf_puts(&b, "}}");
    } else {
        dc_buf_puts(&b, "null");
    }
    dc_buf_puts(&b, v->reference ? ",\"reference\":true}}" : ",\"reference\":false}}");
    if (expose_all && b.len == v->campaign_json_len[0] && memcmp(b.data, v->campaign_json[0], b.len) == 0)
        v->campaign_json[1] = v->campaign_json[0]; /* the variation has every key of its group */
    else
        v->campaign_json[expose_all] = dc_arena_strndup(ps->mem, b.data, b.len);
    v->campaign_json_len[expose_all] = b.len;
}

static int parse_variation_group(parser_t *ps, const json_t *obj, dc_campaign_t *campaign,
                                 dc_variation_group_t *out)
{
    const char *used;
    json_t *vars;
    dc_variation_t *variations;
    size_t n;

    if (expect_object(ps, obj) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    out->campaign = campaign;
    if (get_string(ps, obj, "id", NULL, 1, &out->id, &out->id_len) < 0 ||
        get_string(ps, obj, "name", NULL, 0, &out->name, NULL) < 0)
        return -1;
    dc_hash_feed(&out->id_hash, out->id, out->id_len);
    if (!out->name)
        out->name = "";
    if (parse_targeting_groups(ps, obj, out) < 0)
        return -1;
    if (get_array(ps, obj, "variations", NULL, &vars, &used) < 0)
        return -1;
    n = vars ? json_array_size(vars) : 0;
    variations = n ? dc_arena_calloc(ps->mem, n * sizeof(*variations)) : NULL;
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(ps, "variations", 0);
        size_t old_i = path_push(ps, NULL, (long)i);

        if (parse_variation(ps, json_array_get(vars, i), &variations[i]) < 0)
            return -1;
        path_pop(ps, old_i);
        path_pop(ps, old);
    }
    out->variations = variations;
    out->n_variations = n;
    collect_all_keys(ps->mem, out);
    for (size_t i = 0; i < n; i++) {
        render_campaign_entry(ps, out, &variations[i], 0);
        render_campaign_entry(ps, out, &variations[i], 1);
        apr_pool_clear(ps->scratch);
    }
    return 0;
}

static int parse_bucket_ranges(parser_t *ps, const json_t *obj, dc_campaign_t *out)
{
    const char *used;
    json_t *ranges;
    dc_bucket_range_t *r;
    size_t n, old;

    if (get_array(ps, obj, "bucketRanges", "bucket_ranges", &ranges, &used) < 0)
        return -1;
    n = ranges ? json_array_size(ranges) : 0;
    r = n ? dc_arena_calloc(ps->mem, n * sizeof(*r)) : NULL;
    old = path_push(ps, used, 0);
    for (size_t i = 0; i < n; i++) {
        json_t *range = json_array_get(ranges, i), *pair;
        size_t old_i = path_push(ps, NULL, (long)i);

        if (expect_object(ps, range) < 0)
            return -1;
        pair = json_object_get(range, "r");
        path_push(ps, "r", 0);
        if (!pair || !json_is_array(pair) || json_array_size(pair) < 2)
            return fail(ps, "expected an array of two numbers [from, to]");
        if (to_number(json_array_get(pair, 0), &r[i].from) < 0 ||
            to_number(json_array_get(pair, 1), &r[i].to) < 0)
            return fail(ps, "expected numbers");
        path_pop(ps, old_i);
    }
    path_pop(ps, old);
    out->ranges = r;
    out->n_ranges = n;
    out->buckets[0] = out->buckets[1] = 0;
    for (unsigned b = 0; b < 100; b++) /* as dc_in_bucket_ranges() reads them */
        for (size_t i = 0; i < n; i++)
            if (r[i].from <= (double)b && (double)b < r[i].to)
                out->buckets[b / 64] |= (uint64_t)1 << (b % 64);
    return 0;
}

static int parse_campaign(parser_t *ps, const json_t *obj, dc_campaign_t *out)
{
    const char *used;
    json_t *groups, *slug;
    dc_variation_group_t *vgs;
    size_t n;

    if (expect_object(ps, obj) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    if (get_string(ps, obj, "id", NULL, 1, &out->id, NULL) < 0 ||
        get_string(ps, obj, "name", NULL, 0, &out->name, NULL) < 0 ||
        get_string(ps, obj, "type", NULL, 0, &out->type, NULL) < 0)
        return -1;
    if (!out->name)
        out->name = "";
    if (!out->type)
        out->type = "";
    out->is_ab = strcmp(out->type, "ab") == 0;
    slug = field(obj, "slug", NULL, &used);
    if (slug) {
        size_t old = path_push(ps, "slug", 0);

        if (!json_is_string(slug))
            return fail(ps, "expected a string or null, found %s", kind_name(slug));
        out->slug = dc_arena_strdup(ps->mem, json_string_value(slug));
        path_pop(ps, old);
    }
    if (parse_bucket_ranges(ps, obj, out) < 0)
        return -1;
    if (get_array(ps, obj, "variationGroups", "variation_groups", &groups, &used) < 0)
        return -1;
    n = groups ? json_array_size(groups) : 0;
    if (n && n <= ps->n_groups_left) {
        vgs = ps->groups;
        ps->groups += n;
        ps->n_groups_left -= n;
    } else {
        vgs = n ? dc_arena_calloc(ps->mem, n * sizeof(*vgs)) : NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(ps, used, 0);
        size_t old_i = path_push(ps, NULL, (long)i);

        if (parse_variation_group(ps, json_array_get(groups, i), out, &vgs[i]) < 0)
            return -1;
        path_pop(ps, old_i);
        path_pop(ps, old);
    }
    out->groups = vgs;
    out->n_groups = n;
    return 0;
}

static void digest_hex(const char *data, size_t len, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 0x100000001b3ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int parse_document(parser_t *ps, dc_config_t *cfg, const json_t *root)
{
    const char *used;
    json_t *settings, *campaigns;
    dc_campaign_t *list;
    size_t n, kept = 0, no_ranges = 0;

    if (expect_object(ps, root) < 0)
        return -1;
    if (get_bool(ps, root, "panic", NULL, &cfg->panic) < 0 ||
        get_bool(ps, root, "visitorConsolidation", "visitor_consolidation",
                 &cfg->visitor_consolidation) < 0)
        return -1;
    settings = field(root, "accountSettings", "account_settings", &used);
    if (settings) {
        size_t old = path_push(ps, used, 0);

        if (expect_object(ps, settings) < 0 ||
            get_bool(ps, settings, "enabledXPC", "enabled_xpc", &cfg->enabled_xpc) < 0 ||
            get_bool(ps, settings, "enabled1V1T", "enabled_1v1t", &cfg->enabled_1v1t) < 0)
            return -1;
        path_pop(ps, old);
    }
    cfg->xpc = cfg->enabled_xpc || cfg->visitor_consolidation;

    if (get_array(ps, root, "campaigns", NULL, &campaigns, &used) < 0)
        return -1;
    n = campaigns ? json_array_size(campaigns) : 0;
    list = n ? dc_arena_calloc(ps->mem, n * sizeof(*list)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(campaigns, i), *g;

        if (!(g = json_object_get(c, "variationGroups")))
            g = json_object_get(c, "variation_groups");
        ps->n_groups_left += json_is_array(g) ? json_array_size(g) : 0;
    }
    if (ps->n_groups_left)
        ps->groups = dc_arena_calloc(ps->mem, ps->n_groups_left * sizeof(*ps->groups));
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(ps, "campaigns", 0);
        size_t old_i = path_push(ps, NULL, (long)i);
        int duplicate = 0;

        if (parse_campaign(ps, json_array_get(campaigns, i), &list[kept]) < 0)
            return -1;
        for (size_t j = 0; j < kept; j++) {
            if (strcmp(list[j].id, list[kept].id) == 0) {
                dc_log(DC_LOG_WARN,
                       DCLOGNO(10003) "bucketing file: %s: duplicate campaign id \"%s\"; the first "
                                      "one is used",
                       ps->path, list[kept].id);
                duplicate = 1;
                break;
            }
        }
        if (!duplicate) {
            if (list[kept].n_ranges == 0)
                no_ranges++;
            /* variation groups point back at their campaign */
            for (size_t g = 0; g < list[kept].n_groups; g++)
                ((dc_variation_group_t *)list[kept].groups)[g].campaign = &list[kept];
            kept++;
        }
        path_pop(ps, old_i);
        path_pop(ps, old);
    }
    cfg->campaigns = list;
    cfg->n_campaigns = kept;
    if (no_ranges)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10004) "bucketing file: %zu campaign(s) without bucketRanges are served to "
                              "no visitor (as the Flagship decision-api does)",
               no_ranges);
    if (ps->n_fractional)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10005) "bucketing file: %zu fractional variation allocation(s) accepted; "
                              "the Flagship decision-api would refuse this file",
               ps->n_fractional);
    if (ps->n_unknown_operators > 3)
        dc_log(DC_LOG_WARN,
               DCLOGNO(10006) "bucketing file: %zu targetings use an unknown operator in all "
                              "(the first 3 are logged above); they never match",
               ps->n_unknown_operators);
    cfg->n_unknown_operators = ps->n_unknown_operators;
    return 0;
}

/*
 * A pool with an allocator of its own that keeps at most max_free bytes of
 * free blocks (the snapshot's: none): destroying it gives all its memory back, so that an old snapshot released after a swap
 * does not stay in a process's footprint.
 */
#define DC_CONFIG_TRIM_BYTES (256u * 1024u)

static apr_pool_t *own_pool(apr_size_t max_free)
{
    apr_allocator_t *a;
    apr_pool_t *p;

    if (apr_allocator_create(&a) != APR_SUCCESS)
        return NULL;
    apr_allocator_max_free_set(a, max_free);
    if (apr_pool_create_ex(&p, NULL, NULL, a) != APR_SUCCESS) {
        apr_allocator_destroy(a);
        return NULL;
    }
    apr_allocator_owner_set(a, p);
    return p;
}

/* The parse itself: the snapshot, and everything it points to, in mem. Its
 * count of references is left at 0 for the caller to set. */
static int parse_snapshot(const char *data, size_t len, dc_arena_t *mem, dc_config_t **out,
                          dc_config_error_t *err)
{
    dc_config_t *cfg;
    json_error_t jerr;
    json_t *root;
    parser_t ps;

    *out = NULL;
    memset(err, 0, sizeof(*err));
    if (len > DC_CONFIG_MAX_BYTES) {
        snprintf(err->text, sizeof(err->text), "file too large (%zu bytes, limit %u)", len,
                 DC_CONFIG_MAX_BYTES);
        return -1;
    }
    root = json_loadb(data, len, 0, &jerr);
    if (!root) {
        snprintf(err->text, sizeof(err->text), "invalid JSON at line %d, column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    cfg = dc_arena_calloc(mem, sizeof(*cfg));
    cfg->source_len = len;
    digest_hex(data, len, cfg->digest);

    memset(&ps, 0, sizeof(ps));
    ps.mem = mem;
    ps.err = err;
    if (!(ps.scratch = own_pool(256 * 1024)) || parse_document(&ps, cfg, root) < 0) {
        if (!ps.scratch)
            snprintf(err->text, sizeof(err->text), "out of memory");
        else
            apr_pool_destroy(ps.scratch);
        json_decref(root);
        return -1;
    }
    apr_pool_destroy(ps.scratch);
    /* Everything requests need is in the snapshot now: the tree goes (half the
     * memory), and the index is built (its working tables reuse the tree's
     * memory). After a big file, the C library then gives the pages it held for
     * both back to the system (a third of the load time of a 1.6 MB file, for
     * 17 MB of memory in every httpd child after a swap; small files are not
     * worth it). */
    json_decref(root);
    cfg->index = dc_index_build(mem, cfg);
#ifdef __GLIBC__
    if (len >= DC_CONFIG_TRIM_BYTES)
        malloc_trim(0);
#endif
    *out = cfg;
    return 0;
}

int dc_config_parse(const char *data, size_t len, dc_config_t **out, dc_config_error_t *err)
{
    apr_pool_t *pool = own_pool(1);
    dc_arena_t mem;

    if (!pool) {
        *out = NULL;
        snprintf(err->text, sizeof(err->text), "out of memory");
        err->path[0] = '\0';
        return -1;
    }
    apr_pool_tag(pool, "dc_config");
    dc_arena_init_pool(&mem, pool);
    if (parse_snapshot(data, len, &mem, out, err) < 0) {
        apr_pool_destroy(pool);
        return -1;
    }
    (*out)->pool = pool;
    (*out)->refs = 1;
    return 0;
}

int dc_config_parse_block(const char *data, size_t len, void *block, size_t size,
                          dc_config_t **out, dc_config_error_t *err)
{
    dc_arena_t mem;
    int rc;

    dc_arena_init_block(&mem, block, size);
    rc = parse_snapshot(data, len, &mem, out, err);
    if (rc == 0 && dc_arena_overflowed(&mem)) {
        snprintf(err->text, sizeof(err->text),
                 "the snapshot of this file (%zu bytes) needs more than %zu bytes", len, size);
        *out = NULL;
        rc = 1;
    }
    if (rc == 0)
        (*out)->block_used = dc_arena_used(&mem, block);
    dc_arena_finish(&mem);
    return rc;
}

int dc_config_load_file(const char *path, dc_config_t **out, dc_config_error_t *err)
{
    return dc_config_load_file_with(path, NULL, NULL, out, err);
}

int dc_config_load_file_with(const char *path, dc_config_parse_fn *parse, void *baton,
                             dc_config_t **out, dc_config_error_t *err)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long size;
    int rc;

    memset(err, 0, sizeof(*err));
    *out = NULL;
    if (!f) {
        snprintf(err->text, sizeof(err->text), "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err->text, sizeof(err->text), "cannot read %s", path);
        fclose(f);
        return -1;
    }
    if ((unsigned long)size > DC_CONFIG_MAX_BYTES) {
        snprintf(err->text, sizeof(err->text), "%s: file too large (%ld bytes, limit %u)", path,
                 size, DC_CONFIG_MAX_BYTES);
        fclose(f);
        return -1;
    }
    data = malloc((size_t)size + 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        snprintf(err->text, sizeof(err->text), "cannot read %s", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    rc = parse ? parse(baton, data, (size_t)size, out, err)
               : dc_config_parse(data, (size_t)size, out, err);
    free(data);
    return rc;
}

dc_config_t *dc_config_ref(dc_config_t *cfg)
{
    if (cfg)
        apr_atomic_inc32(&cfg->refs);
    return cfg;
}

void dc_config_unref(dc_config_t *cfg)
{
    if (cfg && apr_atomic_dec32(&cfg->refs) == 0) {
        if (cfg->release)
            cfg->release(cfg);
        else
            apr_pool_destroy(cfg->pool);
    }
}

const dc_campaign_t *dc_config_find_campaign(const dc_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_campaigns; i++) {
        const dc_campaign_t *c = &cfg->campaigns[i];

        if ((strlen(c->id) == len && memcmp(c->id, name, len) == 0) ||
            (c->slug && strlen(c->slug) == len && memcmp(c->slug, name, len) == 0))
            return c;
    }
    return NULL;
}

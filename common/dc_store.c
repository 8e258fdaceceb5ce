/*
 * Store dispatch and the assignment record format shared by the backends.
 */
#include "dc_store.h"
#include "dc_buf.h"
#include "dc_log.h"

#include <apr_strings.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

const dc_assignment_t *dc_assignments_find(const dc_assignments_t *a, const char *vg_id,
                                           size_t vg_id_len)
{
    if (!a)
        return NULL;
    for (size_t i = 0; i < a->n; i++)
        if (a->items[i].vg_id_len == vg_id_len && memcmp(a->items[i].vg_id, vg_id, vg_id_len) == 0)
            return &a->items[i];
    return NULL;
}

void dc_assignments_set(apr_pool_t *p, dc_assignments_t *a, const char *vg_id, size_t vg_id_len,
                        const char *variation_id, size_t variation_id_len, int activated)
{
    dc_assignment_t *item = (dc_assignment_t *)dc_assignments_find(a, vg_id, vg_id_len);

    if (!item) {
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 8;
            dc_assignment_t *items = apr_palloc(p, cap * sizeof(*items));

            if (a->n)
                memcpy(items, a->items, a->n * sizeof(*items));
            a->items = items;
            a->cap = cap;
        }
        item = &a->items[a->n++];
        item->vg_id = apr_pstrmemdup(p, vg_id, vg_id_len);
        item->vg_id_len = vg_id_len;
    }
    item->variation_id = apr_pstrmemdup(p, variation_id, variation_id_len);
    item->variation_id_len = variation_id_len;
    item->activated = activated;
}

char *dc_assignment_encode_field(apr_pool_t *p, const dc_assignment_t *a, size_t *len)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 64 + a->variation_id_len);
    dc_buf_puts(&b, "{\"VariationID\":");
    dc_json_put_string(&b, a->variation_id, a->variation_id_len);
    dc_buf_puts(&b, a->activated ? ",\"Activated\":true}" : ",\"Activated\":false}");
    *len = b.len;
    return (char *)dc_buf_cstr(&b);
}

char *dc_assignments_encode(apr_pool_t *p, const dc_assignments_t *a, size_t *len)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 64 + a->n * 64);
    dc_buf_printf(&b, "{\"Timestamp\":%lld,\"Assignments\":{", (long long)a->ts_ms);
    for (size_t i = 0; i < a->n; i++) {
        if (i)
            dc_buf_putc(&b, ',');
        dc_json_put_string(&b, a->items[i].vg_id, a->items[i].vg_id_len);
        dc_buf_puts(&b, ":{\"VariationID\":");
        dc_json_put_string(&b, a->items[i].variation_id, a->items[i].variation_id_len);
        dc_buf_puts(&b, a->items[i].activated ? ",\"Activated\":true}" : ",\"Activated\":false}");
    }
    dc_buf_puts(&b, "}}");
    *len = b.len;
    return (char *)dc_buf_cstr(&b);
}

static int decode_entry(apr_pool_t *p, const char *vg_id, size_t vg_id_len, const json_t *entry,
                        dc_assignment_t *out)
{
    json_t *vid, *act;

    if (!json_is_object(entry))
        return -1;
    vid = json_object_get(entry, "VariationID");
    act = json_object_get(entry, "Activated");
    if (!json_is_string(vid) || json_string_length(vid) == 0 ||
        json_string_length(vid) > DC_STORE_MAX_FIELD_LEN || (act && !json_is_boolean(act)) ||
        vg_id_len == 0 || vg_id_len > DC_STORE_MAX_FIELD_LEN)
        return -1;
    out->vg_id = apr_pstrmemdup(p, vg_id, vg_id_len);
    out->vg_id_len = vg_id_len;
    out->variation_id = apr_pstrmemdup(p, json_string_value(vid), json_string_length(vid));
    out->variation_id_len = json_string_length(vid);
    out->activated = act && json_is_true(act);
    return 0;
}

int dc_assignment_decode_field(apr_pool_t *p, const char *vg_id, size_t vg_id_len,
                               const char *data, size_t len, dc_assignment_t *out)
{
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    int rc;

    if (!root)
        return -1;
    rc = decode_entry(p, vg_id, vg_id_len, root, out);
    json_decref(root);
    return rc;
}

int dc_assignments_decode(apr_pool_t *p, const char *data, size_t len, dc_assignments_t *out)
{
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *ts, *map, *entry;
    const char *key;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!root)
        return -1;
    ts = json_object_get(root, "Timestamp");
    map = json_object_get(root, "Assignments");
    if (!json_is_object(root) || (ts && !json_is_integer(ts)) || !json_is_object(map) ||
        json_object_size(map) > DC_STORE_MAX_ASSIGNMENTS) {
        json_decref(root);
        return -1;
    }
    out->ts_ms = ts ? (int64_t)json_integer_value(ts) : 0;
    json_object_foreach(map, key, entry)
    {
        dc_assignment_t a;

        if (decode_entry(p, key, strlen(key), entry, &a) < 0) {
            rc = -1;
            break;
        }
        dc_assignments_set(p, out, a.vg_id, a.vg_id_len, a.variation_id, a.variation_id_len,
                           a.activated);
    }
    json_decref(root);
    return rc;
}

static dc_store_status_e none_load(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                   const char *id, size_t id_len, dc_assignments_t *out)
{
    return DC_STORE_NOT_FOUND;
}

static dc_store_status_e none_save(dc_store_t *s, apr_pool_t *p, const char *env_id,
                                   const char *id, size_t id_len, const dc_assignments_t *changes,
                                   int64_t now_ms)
{
    return DC_STORE_OK;
}

static dc_store_health_e none_health(dc_store_t *s, const char **detail)
{
    *detail = "no assignment store";
    return DC_STORE_HEALTH_OK;
}

static const dc_store_provider_t none_provider = {
    .name = "none", .load = none_load, .save = none_save, .health = none_health,
};

static int parse_size_option(const char *query, const char *name, size_t *out)
{
    const char *p = query;
    size_t nlen = strlen(name);

    while (p && *p) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            char *end;
            unsigned long long v = strtoull(p + nlen + 1, &end, 10);

            if (end == p + nlen + 1 || (*end && *end != '&') || v == 0)
                return -1;
            *out = (size_t)v;
            return 0;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return 0;
}

dc_store_t *dc_store_open(apr_pool_t *p, const char *uri, char *err, size_t err_len)
{
    dc_store_t *s = apr_pcalloc(p, sizeof(*s));

    s->uri = uri;
    s->prefix = "";
    if (!uri || !*uri || strcmp(uri, "none") == 0) {
        s->provider = &none_provider;
        s->uri = "none";
        return s;
    }
    if (strcmp(uri, "memory") == 0 || strncmp(uri, "memory?", 7) == 0) {
        size_t max_entries = 100000;

        if (uri[6] == '?' && parse_size_option(uri + 7, "max_entries", &max_entries) < 0) {
            snprintf(err, err_len, "store \"%s\": max_entries must be a positive number", uri);
            return NULL;
        }
        s->provider = &dc_store_memory_provider;
        s->impl = dc_store_memory_create(p, max_entries);
        if (!s->impl) {
            snprintf(err, err_len, "store \"%s\": cannot create the memory store", uri);
            return NULL;
        }
        return s;
    }
    snprintf(err, err_len,
             "unknown store \"%s\": use none, memory, dbm:PATH or redis://host:port[/db]", uri);
    return NULL;
}

void dc_store_close(dc_store_t *s)
{
    if (s && s->provider && s->provider->close)
        s->provider->close(s);
}

void dc_store_child_init(dc_store_t *s, apr_pool_t *pchild)
{
    if (s && s->provider && s->provider->child_init)
        s->provider->child_init(s, pchild);
}

int dc_store_is_none(const dc_store_t *s)
{
    return !s || s->provider == &none_provider;
}

dc_store_status_e dc_store_load(dc_store_t *s, apr_pool_t *p, const char *env_id, const char *id,
                                size_t id_len, dc_assignments_t *out)
{
    memset(out, 0, sizeof(*out));
    if (dc_store_is_none(s) || id_len == 0)
        return DC_STORE_NOT_FOUND;
    if (id_len > DC_STORE_MAX_ID_LEN)
        return DC_STORE_NOT_FOUND; /* such ids are never stored, see dc_store_save */
    return s->provider->load(s, p, env_id ? env_id : "", id, id_len, out);
}

dc_store_status_e dc_store_save(dc_store_t *s, apr_pool_t *p, const char *env_id, const char *id,
                                size_t id_len, const dc_assignments_t *changes, int64_t now_ms)
{
    if (dc_store_is_none(s) || id_len == 0 || !changes || changes->n == 0)
        return DC_STORE_OK;
    if (id_len > DC_STORE_MAX_ID_LEN) {
        dc_log(DC_LOG_DEBUG, DCLOGNO(10101) "store: id of %zu bytes not stored (limit %d)", id_len,
               DC_STORE_MAX_ID_LEN);
        return DC_STORE_OK;
    }
    return s->provider->save(s, p, env_id ? env_id : "", id, id_len, changes, now_ms);
}

dc_store_health_e dc_store_health(dc_store_t *s, const char **detail)
{
    if (!s || !s->provider->health) {
        *detail = "no assignment store";
        return DC_STORE_HEALTH_OK;
    }
    return s->provider->health(s, detail);
}

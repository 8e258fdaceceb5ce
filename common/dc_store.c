/*
 * Store dispatch and the assignment record format shared by the backends.
 */
#include "dc_store.h"
#include "dc_uri.h"
#include "dc_buf.h"
#include "dc_log.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
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

dc_assignment_t *dc_assignments_append(apr_pool_t *p, dc_assignments_t *a, const char *vg_id,
                                       size_t vg_id_len)
{
    dc_assignment_t *item;

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
    item->variation_id = NULL;
    item->variation_id_len = 0;
    item->activated = 0;
    return item;
}

void dc_assignment_put(apr_pool_t *p, dc_assignment_t *item, const char *variation_id,
                       size_t variation_id_len, int activated)
{
    item->variation_id = apr_pstrmemdup(p, variation_id, variation_id_len);
    item->variation_id_len = variation_id_len;
    item->activated = activated;
}

void dc_assignments_set(apr_pool_t *p, dc_assignments_t *a, const char *vg_id, size_t vg_id_len,
                        const char *variation_id, size_t variation_id_len, int activated)
{
    dc_assignment_t *item = (dc_assignment_t *)dc_assignments_find(a, vg_id, vg_id_len);

    if (!item)
        item = dc_assignments_append(p, a, vg_id, vg_id_len);
    dc_assignment_put(p, item, variation_id, variation_id_len, activated);
}

#define VIEW_SCAN 16

static uint32_t id_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot holding vg_id, or the empty one where it would go. */
static uint32_t *view_slot(const dc_assignments_view_t *v, const char *vg_id, size_t len)
{
    for (size_t i = id_hash(vg_id, len) & v->mask;; i = (i + 1) & v->mask) {
        uint32_t at = v->slots[i];

        if (!at || (v->a->items[at - 1].vg_id_len == len &&
                    memcmp(v->a->items[at - 1].vg_id, vg_id, len) == 0))
            return &v->slots[i];
    }
}

void dc_assignments_view_init(apr_pool_t *p, dc_assignments_view_t *v, dc_assignments_t *a,
                              size_t more)
{
    size_t cap = 64;

    v->a = a;
    v->slots = NULL;
    v->mask = 0;
    if (a->n + more <= VIEW_SCAN)
        return;
    while (cap < 2 * (a->n + more))
        cap *= 2;
    v->slots = apr_pcalloc(p, cap * sizeof(*v->slots));
    v->mask = cap - 1;
    for (size_t i = 0; i < a->n; i++) {
        uint32_t *slot = view_slot(v, a->items[i].vg_id, a->items[i].vg_id_len);

        if (!*slot) /* the first of duplicates, as dc_assignments_find */
            *slot = (uint32_t)i + 1;
    }
}

const dc_assignment_t *dc_assignments_view_find(const dc_assignments_view_t *v, const char *vg_id,
                                                size_t vg_id_len)
{
    const uint32_t *slot;

    if (!v->slots)
        return dc_assignments_find(v->a, vg_id, vg_id_len);
    slot = view_slot(v, vg_id, vg_id_len);
    return *slot ? &v->a->items[*slot - 1] : NULL;
}

void dc_assignments_view_set(apr_pool_t *p, dc_assignments_view_t *v, const char *vg_id,
                             size_t vg_id_len, const char *variation_id, size_t variation_id_len,
                             int activated)
{
    uint32_t *slot;
    dc_assignment_t *item;

    if (!v->slots || 2 * (v->a->n + 1) > v->mask + 1) {
        if (v->a->n + 1 <= VIEW_SCAN) {
            dc_assignments_set(p, v->a, vg_id, vg_id_len, variation_id, variation_id_len,
                               activated);
            return;
        }
        dc_assignments_view_init(p, v, v->a, v->a->n + 1); /* twice the room */
    }
    slot = view_slot(v, vg_id, vg_id_len);
    if (*slot) {
        item = &v->a->items[*slot - 1];
    } else {
        item = dc_assignments_append(p, v->a, vg_id, vg_id_len);
        *slot = (uint32_t)v->a->n;
    }
    dc_assignment_put(p, item, variation_id, variation_id_len, activated);
}

void dc_assignments_merge(apr_pool_t *p, dc_assignments_t *record,
                          const dc_assignments_t *changes, int64_t now_ms)
{
    dc_assignments_view_t view;

    dc_assignments_view_init(p, &view, record, changes->n);
    for (size_t i = 0; i < changes->n; i++) {
        const dc_assignment_t *a = &changes->items[i];

        if (record->n >= DC_STORE_MAX_ASSIGNMENTS &&
            !dc_assignments_view_find(&view, a->vg_id, a->vg_id_len))
            continue;
        dc_assignments_view_set(p, &view, a->vg_id, a->vg_id_len, a->variation_id,
                                a->variation_id_len, a->activated);
    }
    record->ts_ms = now_ms;
}

char *dc_store_memory_key(apr_pool_t *p, const char *env_id, const char *id, size_t id_len,
                          size_t *len)
{
    size_t elen = strlen(env_id);
    char *key = apr_palloc(p, elen + 1 + id_len);

    memcpy(key, env_id, elen);
    key[elen] = '\0';
    memcpy(key + elen + 1, id, id_len);
    *len = elen + 1 + id_len;
    return key;
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

/* ---- the record as dc_assignments_encode writes it, read without jansson ---- */

typedef struct {
    const char *at, *end;
} scan_t;

static int scan_literal(scan_t *s, const char *text, size_t n)
{
    if ((size_t)(s->end - s->at) < n || memcmp(s->at, text, n) != 0)
        return -1;
    s->at += n;
    return 0;
}

/* An ASCII string without escapes; anything else is left to jansson. */
static int scan_plain_string(scan_t *s, const char **str, size_t *len)
{
    const char *start;

    if (s->at >= s->end || *s->at != '"')
        return -1;
    start = ++s->at;
    while (s->at < s->end && *s->at != '"') {
        unsigned char c = (unsigned char)*s->at;

        if (c == '\\' || c < 0x20 || c >= 0x80)
            return -1;
        s->at++;
    }
    if (s->at >= s->end)
        return -1;
    *str = start;
    *len = (size_t)(s->at - start);
    s->at++;
    return 0;
}

static int scan_integer(scan_t *s, int64_t *v)
{
    int negative = 0, digits = 0;
    int64_t n = 0;

    if (s->at < s->end && *s->at == '-') {
        negative = 1;
        s->at++;
    }
    if (s->at < s->end && *s->at == '0') {
        s->at++;
        *v = 0;
        return s->at < s->end && *s->at >= '0' && *s->at <= '9' ? -1 : 0;
    }
    while (s->at < s->end && *s->at >= '0' && *s->at <= '9' && digits < 18) {
        n = n * 10 + (*s->at++ - '0');
        digits++;
    }
    if (!digits || (s->at < s->end && ((*s->at >= '0' && *s->at <= '9') || *s->at == '.' ||
                                       *s->at == 'e' || *s->at == 'E')))
        return -1;
    *v = negative ? -n : n;
    return 0;
}

/* {"VariationID":"...","Activated":true|false}: 0, or -1 when not in that shape. */
static int scan_canonical_entry(scan_t *s, const char **var, size_t *var_len, int *activated)
{
    if (scan_literal(s, "{\"VariationID\":", 15) < 0 || scan_plain_string(s, var, var_len) < 0)
        return -1;
    if (scan_literal(s, ",\"Activated\":true}", 18) == 0)
        *activated = 1;
    else if (scan_literal(s, ",\"Activated\":false}", 19) == 0)
        *activated = 0;
    else
        return -1;
    return 0;
}

int dc_assignment_decode_field(apr_pool_t *p, const char *vg_id, size_t vg_id_len,
                               const char *data, size_t len, dc_assignment_t *out)
{
    json_t *root;
    scan_t s = {data, data + len};
    const char *var;
    size_t var_len;
    int rc, activated;

    if (scan_canonical_entry(&s, &var, &var_len, &activated) == 0 && s.at == s.end) {
        if (vg_id_len == 0 || vg_id_len > DC_STORE_MAX_FIELD_LEN || var_len == 0 ||
            var_len > DC_STORE_MAX_FIELD_LEN)
            return -1;
        out->vg_id = apr_pstrmemdup(p, vg_id, vg_id_len);
        out->vg_id_len = vg_id_len;
        out->variation_id = apr_pstrmemdup(p, var, var_len);
        out->variation_id_len = var_len;
        out->activated = activated;
        return 0;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    if (!root)
        return -1;
    rc = decode_entry(p, vg_id, vg_id_len, root, out);
    json_decref(root);
    return rc;
}

/* 0 = decoded; 1 = not in the canonical shape (jansson decides); -1 = a
 * canonical record that breaks a limit, which jansson would refuse too. */
static int decode_canonical(apr_pool_t *p, const char *data, size_t len, dc_assignments_t *out)
{
    scan_t s = {data, data + len};
    dc_assignments_view_t view;
    int64_t ts;

    if (scan_literal(&s, "{\"Timestamp\":", 13) < 0 || scan_integer(&s, &ts) < 0 ||
        scan_literal(&s, ",\"Assignments\":{", 16) < 0)
        return 1;
    out->ts_ms = ts;
    if (scan_literal(&s, "}}", 2) == 0)
        return s.at == s.end ? 0 : 1;
    dc_assignments_view_init(p, &view, out, 0);
    for (;;) {
        const char *vg, *var;
        size_t vg_len, var_len;
        int activated;

        if (scan_plain_string(&s, &vg, &vg_len) < 0 || scan_literal(&s, ":", 1) < 0 ||
            scan_canonical_entry(&s, &var, &var_len, &activated) < 0)
            return 1;
        if (vg_len == 0 || vg_len > DC_STORE_MAX_FIELD_LEN || var_len == 0 ||
            var_len > DC_STORE_MAX_FIELD_LEN || dc_assignments_view_find(&view, vg, vg_len) ||
            out->n >= DC_STORE_MAX_ASSIGNMENTS)
            return -1; /* jansson: an empty/long id, a duplicate key, too many entries */
        dc_assignments_view_set(p, &view, vg, vg_len, var, var_len, activated);
        if (scan_literal(&s, ",", 1) == 0)
            continue;
        if (scan_literal(&s, "}}", 2) == 0 && s.at == s.end)
            return 0;
        return 1;
    }
}

int dc_assignments_decode(apr_pool_t *p, const char *data, size_t len, dc_assignments_t *out)
{
    json_t *root, *ts, *map, *entry;
    const char *key;
    int rc = 0, canonical;

    memset(out, 0, sizeof(*out));
    if ((canonical = decode_canonical(p, data, len, out)) <= 0)
        return canonical;
    memset(out, 0, sizeof(*out));
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);

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
        /* an object's keys are distinct */
        dc_assignment_put(p, dc_assignments_append(p, out, a.vg_id, a.vg_id_len), a.variation_id,
                          a.variation_id_len, a.activated);
    }
    json_decref(root);
    return rc;
}

void dc_store_log_limited(dc_store_log_limit_t *l, dc_log_level_e level, const char *fmt, ...)
{
    apr_time_t now = apr_time_now();
    char msg[600];
    va_list ap;

    if (l->last && now - l->last < apr_time_from_sec(60)) {
        l->suppressed++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->suppressed)
        dc_log(level, "%s (and %u more like it in the last minute)", msg, l->suppressed);
    else
        dc_log(level, "%s", msg);
    l->last = now;
    l->suppressed = 0;
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

const dc_store_provider_t dc_store_none_provider = {
    .name = "none", .load = none_load, .save = none_save, .health = none_health,
};

const dc_store_backend_t *dc_store_backend_of(const char *uri)
{
    size_t len = strcspn(uri, ":?");

    for (size_t i = 0; i < dc_store_n_backends; i++)
        if (strlen(dc_store_backends[i].scheme) == len &&
            strncmp(uri, dc_store_backends[i].scheme, len) == 0)
            return &dc_store_backends[i];
    return NULL;
}

const char *dc_store_usage(apr_pool_t *p)
{
    const char *usage = "use ";

    for (size_t i = 0; i < dc_store_n_backends; i++)
        usage = apr_pstrcat(p, usage, i == 0 ? "" : i + 1 == dc_store_n_backends ? " or " : ", ",
                            dc_store_backends[i].usage, NULL);
    return usage;
}

/* The option walk and %-decoding are dc_uri's (redis:// and dynamo:// parse with them too). */
int dc_store_parse_query(apr_pool_t *p, const char *query, dc_store_option_t **out, char *err,
                         size_t err_len)
{
    size_t n = 0, cap = 1;
    dc_store_option_t *opts;
    dc_uri_option_t o;
    int rc;

    for (const char *q = query; q && *q; q++)
        cap += *q == '&';
    opts = apr_pcalloc(p, cap * sizeof(*opts));
    while ((rc = dc_uri_next_option(&query, &o)) != 0) {
        if (rc < 0 && o.name_len == 0)
            continue; /* "a=1&&b=2" */
        if (rc < 0 || o.name_len == 0) {
            size_t len = rc < 0 ? o.name_len : o.name_len + 1 + o.value_len;

            snprintf(err, err_len, "option \"%.*s\" needs a name and a value (key=value)",
                     (int)(len > 64 ? 64 : len), o.name);
            return -1;
        }
        opts[n].key = dc_uri_percent_decode(p, o.name, o.name_len);
        opts[n].value = dc_uri_percent_decode(p, o.value, o.value_len);
        if (!opts[n].key || !opts[n].value) {
            snprintf(err, err_len, "option \"%.*s\": bad %%-escape",
                     (int)(o.name_len > 64 ? 64 : o.name_len), o.name);
            return -1;
        }
        n++;
    }
    *out = opts;
    return (int)n;
}

const char *dc_store_option(const dc_store_open_args_t *args, const char *key)
{
    const char *value = NULL;

    for (size_t i = 0; i < args->n_options; i++)
        if (strcmp(args->options[i].key, key) == 0)
            value = args->options[i].value; /* the last one given wins */
    return value;
}

dc_store_t *dc_store_open(apr_pool_t *p, const char *uri, char *err, size_t err_len)
{
    dc_store_t *s = apr_pcalloc(p, sizeof(*s));
    const dc_store_backend_t *backend;
    dc_store_open_args_t args;
    dc_store_option_t *options = NULL;
    const char *colon, *query;
    char why[400];
    int n = 0;

    if (!uri || !*uri)
        uri = "none";
    backend = dc_store_backend_of(uri);
    if (!backend) {
        snprintf(err, err_len, "unknown store \"%s\": %s", dc_store_uri_masked(p, uri),
                 dc_store_usage(p));
        return NULL;
    }
    memset(&args, 0, sizeof(args));
    args.uri = uri;
    args.host = &dc_store_host;
    colon = uri + strcspn(uri, ":?");
    args.target = *colon == ':' ? colon + 1 : "";
    query = *colon == '?' ? colon : strchr(args.target, '?');
    if (backend->parse_options && query) {
        if (*colon == ':')
            args.target = apr_pstrmemdup(p, args.target, (size_t)(query - args.target));
        n = dc_store_parse_query(p, query + 1, &options, why, sizeof(why));
        if (n < 0) {
            snprintf(err, err_len, "store \"%s\": %s", dc_store_uri_masked(p, uri), why);
            return NULL;
        }
        args.options = options;
        args.n_options = (size_t)n;
    }
    s->provider = backend->provider;
    /* a scheme://user:password@ URI is masked here; others are shown as given (a DBM
     * path may hold "@"), a plugin's masks its options' secrets itself */
    s->uri = backend->provider == &dc_store_none_provider ? "none"
             : strstr(uri, "://")                          ? dc_store_uri_masked(p, uri)
                                                           : uri;
    s->prefix = "";
    if (backend->provider->open && backend->provider->open(s, p, &args, err, err_len) < 0)
        return NULL;
    return s;
}

const char *dc_store_userinfo_end(const char *authority)
{
    const char *at = NULL;

    for (const char *q = authority; *q && *q != '/' && *q != '?'; q++)
        if (*q == '@')
            at = q;
    return at;
}

const char *dc_store_uri_masked(apr_pool_t *p, const char *uri)
{
    const char *scheme_end = strstr(uri, "://");
    const char *authority = scheme_end ? scheme_end + 3 : uri;
    const char *at = dc_store_userinfo_end(authority), *colon;

    if (scheme_end && at && (colon = memchr(authority, ':', (size_t)(at - authority))))
        return apr_pstrcat(p, apr_pstrmemdup(p, uri, (size_t)(colon + 1 - uri)), "***", at, NULL);
    /* Not a URI the rule above can read ("redis//u:p@h", "u:p/w@h"): whatever stands
     * before the last "@" may be a password. */
    at = strrchr(uri, '@');
    return at ? apr_pstrcat(p, "***", at, NULL) : uri;
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
    return !s || s->provider == &dc_store_none_provider;
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

/* A Go duration in nanoseconds; -1 if bad. */
static double go_duration_ns(const char *s)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6},
                 {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    double total_ns = 0;

    if (!s || !*s)
        return -1;
    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0)
        return 0;
    while (*s) {
        const char *start = s;
        double value = 0, scale = 1;
        size_t best = 0, best_len = 0;

        while (*s >= '0' && *s <= '9')
            value = value * 10 + (*s++ - '0');
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                scale /= 10;
                value += (*s++ - '0') * scale;
            }
        }
        if (s == start || (s == start + 1 && *start == '.'))
            return -1;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t ulen = strlen(units[i].unit);

            if (strncmp(s, units[i].unit, ulen) == 0 && ulen > best_len) {
                best = i;
                best_len = ulen;
            }
        }
        if (!best_len)
            return -1; /* a bare number: Go wants a unit */
        total_ns += value * units[best].ns;
        s += best_len;
        if (total_ns > 1e9 * 86400.0 * 366 * 100)
            return -1;
    }
    return total_ns > 0 ? total_ns : 0;
}

long long dc_store_parse_go_duration_s(const char *s)
{
    double ns = go_duration_ns(s);

    return ns <= 0 ? (long long)ns : (long long)((ns + 1e9 - 1) / 1e9);
}

long long dc_store_parse_go_duration_ms(const char *s)
{
    double ns = go_duration_ns(s);

    return ns <= 0 ? (long long)ns : (long long)((ns + 1e6 - 1) / 1e6);
}

static const char *setting(dc_store_setting_fn *get, void *baton, const char *name)
{
    const char *v = get ? get(baton, name) : getenv(name);

    return v && *v ? v : NULL;
}

/* %-escapes everything but RFC 3986 unreserved characters. */
static char *uri_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Go's strconv.ParseBool, which viper uses. */
static int parse_go_bool(const char *v, int *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

const char *dc_store_uri_from_flagship(apr_pool_t *p, dc_store_setting_fn *get, void *baton,
                                       char *err, size_t err_len)
{
    const char *type = setting(get, baton, "CACHE_TYPE");
    const char *host, *user, *password, *db, *tls, *ttl, *auth = "";
    long long ttl_s = 7776000;
    int use_tls = 0;

    if (!type || strcmp(type, "none") == 0)
        return "none";
    if (strcmp(type, "memory") == 0)
        return "memory";
    if (strcmp(type, "local") == 0) {
        const char *path = setting(get, baton, "CACHE_OPTIONS_DBPATH");
        apr_finfo_t fi;

        if (!path)
            path = "cache_data";
        /* The decision-api's local cache is a directory (bitcask): our file goes inside it. */
        if (apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_DIR)
            path = apr_pstrcat(p, path, "/decision-assignments", NULL);
        return apr_pstrcat(p, "dbm:", path, NULL);
    }
    if (strcmp(type, "dynamo") == 0) {
        const char *table = setting(get, baton, "CACHE_OPTIONS_DYNAMOTABLENAME");
        const char *sep = setting(get, baton, "CACHE_OPTIONS_DYNAMOPKSEPARATOR");
        const char *field = setting(get, baton, "CACHE_OPTIONS_DYNAMOPKFIELD");
        const char *timeout = setting(get, baton, "CACHE_OPTIONS_DYNAMOGETTIMEOUT");
        long long ms = 1000;

        if (timeout && ((ms = dc_store_parse_go_duration_ms(timeout)) <= 0 || ms > 60000)) {
            snprintf(err, err_len,
                     "CACHE_OPTIONS_DYNAMOGETTIMEOUT must be a duration such as 1s (at most 1m)");
            return NULL;
        }
        return apr_psprintf(p, "dynamo://%s?pk_field=%s&pk_separator=%s&get_timeout_ms=%ld",
                            uri_escape(p, table ? table : "visitor-assignments"),
                            uri_escape(p, field ? field : "id"), uri_escape(p, sep ? sep : "."),
                            (long)ms);
    }
    if (strcmp(type, "redis") != 0) {
        snprintf(err, err_len,
                 "CACHE_TYPE \"%s\" is not supported here: use none, memory, local, redis or "
                 "dynamo",
                 type);
        return NULL;
    }
    host = setting(get, baton, "CACHE_OPTIONS_REDISHOST");
    user = setting(get, baton, "CACHE_OPTIONS_REDISUSERNAME");
    password = setting(get, baton, "CACHE_OPTIONS_REDISPASSWORD");
    db = setting(get, baton, "CACHE_OPTIONS_REDISDB");
    tls = setting(get, baton, "CACHE_OPTIONS_REDISTLS");
    ttl = setting(get, baton, "CACHE_OPTIONS_REDISTTL");
    if (!host)
        host = "localhost:6379";
    if (strpbrk(host, "/?@#") || strlen(host) > 255) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISHOST must be HOST:PORT");
        return NULL;
    }
    if (db && (strspn(db, "0123456789") != strlen(db) || strlen(db) > 7)) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISDB must be a database number");
        return NULL;
    }
    if (tls && parse_go_bool(tls, &use_tls) < 0) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISTLS must be true or false");
        return NULL;
    }
    if (ttl && (ttl_s = dc_store_parse_go_duration_s(ttl)) < 0) {
        snprintf(err, err_len, "CACHE_OPTIONS_REDISTTL must be a duration such as 2160h");
        return NULL;
    }
    if (password)
        auth = apr_pstrcat(p, user ? uri_escape(p, user) : "", ":", uri_escape(p, password), "@",
                           NULL);
    else if (user)
        dc_log(DC_LOG_WARN, DCLOGNO(10370) "CACHE_OPTIONS_REDISUSERNAME is set without "
                                           "CACHE_OPTIONS_REDISPASSWORD: connecting without AUTH");
    return apr_psprintf(p, "%s://%s%s/%s?ttl=%" APR_INT64_T_FMT, use_tls ? "rediss" : "redis",
                        auth, host, db ? db : "0", (apr_int64_t)ttl_s);
}

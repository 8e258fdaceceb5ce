#include "dc_hits.h"
#include "dc_buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_go_float(dc_buf_t *b, double d)
{
    char tmp[48], digits[24];
    int prec, exp, nd = 0;
    const char *e;

    if (isnan(d)) {
        dc_buf_puts(b, "NaN");
        return;
    }
    if (isinf(d)) {
        dc_buf_puts(b, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (d == 0) {
        dc_buf_puts(b, signbit(d) ? "-0" : "0");
        return;
    }
    /* Shortest digits that read back as d, laid out as Go's %v does
     * (strconv 'g' with shortest precision): exponent form when the decimal
     * exponent is below -4 or at least 6, hence 1e+06 but 123456. */
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    e = strchr(tmp, 'e');
    exp = atoi(e + 1);
    for (const char *p = tmp; p < e; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    digits[nd] = '\0';
    if (d < 0)
        dc_buf_putc(b, '-');
    if (exp < -4 || exp >= 6) {
        dc_buf_putc(b, digits[0]);
        if (nd > 1) {
            dc_buf_putc(b, '.');
            dc_buf_append(b, digits + 1, (size_t)nd - 1);
        }
        dc_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    if (exp < 0) {
        dc_buf_puts(b, "0.");
        for (int i = -1; i > exp; i--)
            dc_buf_putc(b, '0');
        dc_buf_append(b, digits, (size_t)nd);
        return;
    }
    for (int i = 0; i <= exp || i < nd; i++) {
        if (i == exp + 1)
            dc_buf_putc(b, '.');
        dc_buf_putc(b, i < nd ? digits[i] : '0');
    }
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void dc_hits_put_go_value(void *buf, const json_t *v)
{
    dc_buf_t *b = buf;

    switch (json_typeof(v)) {
    case JSON_STRING:
        dc_buf_append(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        put_go_float(b, json_number_value(v));
        break;
    case JSON_TRUE:
        dc_buf_puts(b, "true");
        break;
    case JSON_FALSE:
        dc_buf_puts(b, "false");
        break;
    case JSON_ARRAY:
        dc_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                dc_buf_putc(b, ' ');
            dc_hits_put_go_value(b, json_array_get(v, i));
        }
        dc_buf_putc(b, ']');
        break;
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = n ? apr_palloc(b->pool, n * sizeof(*keys)) : NULL;
        const char *key;
        json_t *item;

        json_object_foreach((json_t *)v, key, item) keys[i++] = key;
        if (n)
            qsort(keys, n, sizeof(*keys), compare_keys);
        dc_buf_puts(b, "map[");
        for (i = 0; i < n; i++) {
            if (i)
                dc_buf_putc(b, ' ');
            dc_buf_puts(b, keys[i]);
            dc_buf_putc(b, ':');
            dc_hits_put_go_value(b, json_object_get(v, keys[i]));
        }
        dc_buf_putc(b, ']');
        break;
    }
    default:
        dc_buf_puts(b, "<nil>");
    }
}

static void put_ids(dc_buf_t *b, const char *type, const char *env_id, const char *vid,
                    size_t vid_len, const char *cuid, size_t cuid_len)
{
    dc_buf_puts(b, "{\"t\":\"");
    dc_buf_puts(b, type);
    dc_buf_puts(b, "\",\"cid\":");
    dc_json_put_string(b, env_id ? env_id : "", env_id ? strlen(env_id) : 0);
    dc_buf_puts(b, ",\"vid\":");
    dc_json_put_string(b, vid, vid_len);
    if (cuid_len) {
        dc_buf_puts(b, ",\"cuid\":");
        dc_json_put_string(b, cuid, cuid_len);
    }
}

#define CAID ",\"caid\":"
#define VAID ",\"vaid\":"
#define QA_FALSE ",\"qa\":false}"
#define QA_TRUE ",\"qa\":true}"

/* What follows the ids in a CAMPAIGN hit. */
static void put_campaign(dc_buf_t *b, const char *caid, size_t caid_len, const char *vaid,
                         size_t vaid_len, int qa)
{
    dc_buf_append(b, CAID, sizeof(CAID) - 1);
    dc_json_put_string(b, caid, caid_len);
    dc_buf_append(b, VAID, sizeof(VAID) - 1);
    dc_json_put_string(b, vaid, vaid_len);
    if (qa)
        dc_buf_append(b, QA_TRUE, sizeof(QA_TRUE) - 1);
    else
        dc_buf_append(b, QA_FALSE, sizeof(QA_FALSE) - 1);
}

void dc_hit_campaign(apr_pool_t *p, dc_hit_t *out, const char *env_id, const char *vid,
                     size_t vid_len, const char *cuid, size_t cuid_len, const char *caid,
                     size_t caid_len, const char *vaid, size_t vaid_len, int qa, int64_t qt_base,
                     int64_t received_ms)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 160 + vid_len + cuid_len);
    put_ids(&b, "CAMPAIGN", env_id, vid, vid_len, cuid, cuid_len);
    put_campaign(&b, caid, caid_len, vaid, vaid_len, qa);
    out->json = dc_buf_cstr(&b);
    out->json_len = b.len;
    out->received_ms = received_ms;
    out->qt_base = qt_base;
}

void dc_hits_campaigns(apr_pool_t *p, dc_hit_t *out, const char *env_id, const char *vid,
                       size_t vid_len, const char *cuid, size_t cuid_len,
                       const dc_decision_t *decisions, size_t n, int64_t received_ms)
{
    dc_buf_t ids, b;
    size_t cap = 0, at = 0;

    if (n == 0)
        return;
    /* the ids every hit of the visitor starts with, escaped once */
    dc_buf_init(&ids, p, 64 + vid_len + cuid_len);
    put_ids(&ids, "CAMPAIGN", env_id, vid, vid_len, cuid, cuid_len);
    /* one buffer for them all, of the size they take when no id needs an escape */
    for (size_t i = 0; i < n; i++)
        cap += ids.len + sizeof(CAID) + sizeof(VAID) + sizeof(QA_FALSE) + 4 +
               decisions[i].group->id_len + decisions[i].variation->id_len;
    dc_buf_init(&b, p, cap);
    for (size_t i = 0; i < n; i++) {
        size_t start = b.len;

        dc_buf_append(&b, ids.data, ids.len);
        put_campaign(&b, decisions[i].group->id, decisions[i].group->id_len,
                     decisions[i].variation->id, decisions[i].variation->id_len, 0);
        dc_buf_putc(&b, '\0'); /* each hit a C string too, as dc_hit_campaign's */
        out[i].json_len = b.len - start - 1;
        out[i].received_ms = received_ms;
        out[i].qt_base = 0;
    }
    /* an escape may have moved the buffer: the hits point into it once it is written */
    for (size_t i = 0; i < n; i++) {
        out[i].json = b.data + at;
        at += out[i].json_len + 1;
    }
}

void dc_hit_segment(apr_pool_t *p, dc_hit_t *out, const char *env_id, const char *vid,
                    size_t vid_len, const char *cuid, size_t cuid_len, const json_t *context,
                    int64_t received_ms)
{
    dc_buf_t b, s;
    const char *key;
    json_t *value;
    int first = 1;

    dc_buf_init(&b, p, 256);
    put_ids(&b, "SEGMENT", env_id, vid, vid_len, cuid, cuid_len);
    dc_buf_puts(&b, ",\"s\":{");
    json_object_foreach((json_t *)context, key, value)
    {
        if (!first)
            dc_buf_putc(&b, ',');
        first = 0;
        dc_json_put_string(&b, key, strlen(key));
        dc_buf_putc(&b, ':');
        dc_buf_init(&s, p, 32);
        dc_hits_put_go_value(&s, value);
        dc_json_put_string(&b, s.data, s.len);
    }
    dc_buf_puts(&b, "}}");
    out->json = dc_buf_cstr(&b);
    out->json_len = b.len;
    out->received_ms = received_ms;
    out->qt_base = 0;
}

const char *dc_hits_batch_open(void)
{
    return "{\"t\":\"BATCH\",\"ds\":\"APP\",\"h\":[";
}

const char *dc_hits_batch_close(void)
{
    return "],\"cv\":{\"0\":\"runner, self-hosted\",\"1\":\"version, " PACKAGE_VERSION
           "\",\"2\":\"server, mod_decision\"}}";
}

/*
 * The decision API. Each handler parses and validates its input completely
 * before deciding, and every error is a JSON body {"message": "..."} with the
 * right status; nothing a caller sends can make this code fail otherwise.
 *
 * Responses are written directly into one buffer from the config's
 * pre-rendered pieces (each variation's whole "campaigns" entry, flag values)
 * rather than through a jansson tree, which keeps rendering proportional to
 * the answer's size. Decision bodies are read by a small scanner in the
 * common case and by jansson otherwise (see fast_parse_decision_body()), so
 * that jansson's tree is built only for bodies the scanner will not vouch for.
 */
#include "dc_api.h"
#include "dc_index.h"
#include "dc_otel.h"
#include "dc_buf.h"
#include "dc_engine.h"
#include "dc_hash.h"
#include "dc_hits.h"
#include "dc_log.h"
#include "dc_openapi.h"
#include "dc_status.h"

#include <apr_strings.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void dc_api_options_default(dc_api_options_t *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->cors_enabled = 1;
    opt->cors_origins = "*";
    opt->cors_headers = DC_DEFAULT_CORS_HEADERS;
    opt->max_body_size = DC_DEFAULT_MAX_BODY_SIZE;
    opt->prometheus_path = "/metrics";
}

int dc_service_init(dc_service_t *svc, apr_pool_t *p)
{
    memset(svc, 0, sizeof(*svc));
    dc_api_options_default(&svc->opt);
    return dc_slot_init(&svc->slot, p);
}

/* ---- responses ---------------------------------------------------------- */

static void respond(dc_response_t *resp, int status, const char *content_type, const char *body,
                    size_t len)
{
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = len;
}

static void respond_error(apr_pool_t *p, dc_response_t *resp, int status, const char *message)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 64 + strlen(message));
    dc_buf_puts(&b, "{\"message\":");
    dc_json_put_string(&b, message, strlen(message));
    dc_buf_puts(&b, "}\n");
    respond(resp, status, "application/json", b.data, b.len);
}

void dc_api_respond_error(apr_pool_t *p, dc_response_t *resp, int status, const char *message)
{
    respond_error(p, resp, status, message);
}

static void respond_buf(dc_response_t *resp, int status, dc_buf_t *b)
{
    dc_buf_cstr(b);
    respond(resp, status, "application/json", b->data, b->len);
}

/* ---- query string ------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into p; '+' is a space in queries only. */
static char *url_decode(apr_pool_t *p, const char *s, size_t len, int plus_is_space,
                        size_t *out_len)
{
    char *out = apr_palloc(p, len + 1);
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else if (plus_is_space && s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

typedef struct {
    const char *mode;      /* NULL when absent */
    const char *expose_all_keys;
    const char *send_context_event;
    int extras_account_settings;
    int has_nul;           /* a name or value decoded to a NUL byte (%00): refused */
} query_t;

static void parse_query(apr_pool_t *p, const char *query, query_t *q)
{
    memset(q, 0, sizeof(*q));
    while (query && *query) {
        const char *amp = strchr(query, '&');
        size_t len = amp ? (size_t)(amp - query) : strlen(query);
        const char *eq = memchr(query, '=', len);
        size_t klen = eq ? (size_t)(eq - query) : len, key_len, value_len = 0;
        const char *key = url_decode(p, query, klen, 1, &key_len);
        const char *value = eq ? url_decode(p, eq + 1, len - klen - 1, 1, &value_len) : "";

        /* C strings end at a NUL: "simple%00x" would read as "simple". */
        if (strlen(key) != key_len || strlen(value) != value_len)
            q->has_nul = 1;
        if (strcmp(key, "mode") == 0)
            q->mode = value;
        else if (strcmp(key, "exposeAllKeys") == 0)
            q->expose_all_keys = value;
        else if (strcmp(key, "sendContextEvent") == 0)
            q->send_context_event = value;
        else if ((strcmp(key, "extras") == 0 || strcmp(key, "extras[]") == 0) &&
                 strcmp(value, "accountSettings") == 0)
            q->extras_account_settings = 1;
        query = amp ? amp + 1 : NULL;
    }
}

/* ---- request bodies ----------------------------------------------------- */

typedef struct {
    const char *visitor_id;
    size_t visitor_id_len;
    int has_visitor_id;
    const char *anonymous_id;
    size_t anonymous_id_len;
    int has_anonymous_id;
    const char *decision_group;
    size_t decision_group_len;
    json_t *context; /* borrowed from root; NULL when absent or parsed by the fast path */
    const dc_context_entry_t *entries; /* the context as targeting sees it */
    size_t n_entries;
    const char *context_text; /* the context object's bytes in the body */
    size_t context_text_len;
    int trigger_hit;
    int visitor_consent;
    int format_response;
    json_t *root;
} decision_request_t;

typedef enum { FIELD_STRING, FIELD_BOOL, FIELD_OBJECT, FIELD_IGNORED_STRING } field_kind_e;

typedef struct {
    const char *snake, *camel;
    field_kind_e kind;
    size_t snake_len, camel_len;
} field_def_t;

#define FIELD(snake, camel, kind) {snake, camel, kind, sizeof(snake) - 1, sizeof(camel) - 1}

static const field_def_t decision_fields[] = {
    FIELD("visitor_id", "visitorId", FIELD_STRING),
    FIELD("anonymous_id", "anonymousId", FIELD_STRING),
    FIELD("decision_group", "decisionGroup", FIELD_STRING),
    FIELD("context", "context", FIELD_OBJECT),
    FIELD("trigger_hit", "triggerHit", FIELD_BOOL),
    FIELD("activate", "activate", FIELD_BOOL),
    FIELD("visitor_consent", "visitorConsent", FIELD_BOOL),
    FIELD("format_response", "formatResponse", FIELD_BOOL),
    FIELD("client_id", "clientId", FIELD_IGNORED_STRING),
    FIELD("campaign_id", "campaignId", FIELD_IGNORED_STRING),
    FIELD("custom_visitor_id", "customVisitorId", FIELD_IGNORED_STRING),
    FIELD("default_redirect_url", "defaultRedirectUrl", FIELD_IGNORED_STRING),
};

#define SYNTAX_PREFIX "syntax error in body json request. Must be a valid json : "

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "null";
    }
}

/*
 * The fast path of request bodies. jansson builds a tree (a hash table per
 * object, an allocation per value) that is thrown away at once; most of a
 * decision's CPU went there. This scanner reads the common body shape
 * straight into decision_request_t: one object of the known fields, strings
 * with plain escapes and well-formed UTF-8, numbers, and a context of
 * scalars and lists of scalars. Whatever else it meets (\u escapes, objects
 * inside the context, a field twice, any syntax or type error, numbers out
 * of range) it gives up on, and parse_decision_body() parses the body again
 * with jansson, so errors and their messages, and every value, stay exactly
 * what jansson's path gives: what this accepts, jansson accepts the same way.
 */
typedef struct {
    const char *s, *end;
    apr_pool_t *pool;
} scanner_t;

#define FAST_MAX_DEPTH 8
#define FAST_MAX_CONTEXT 64

static void scan_ws(scanner_t *sc)
{
    while (sc->s < sc->end &&
           (*sc->s == ' ' || *sc->s == '\n' || *sc->s == '\r' || *sc->s == '\t'))
        sc->s++;
}

static int scan_char(scanner_t *sc, char c)
{
    scan_ws(sc);
    if (sc->s < sc->end && *sc->s == c) {
        sc->s++;
        return 1;
    }
    return 0;
}

/* A string at the cursor (after its opening quote was seen), copied NUL-terminated into the
 * pool; 0, or -1 to give up. */
static int scan_string(scanner_t *sc, const char **out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)sc->s + 1, *end = (const unsigned char *)sc->end;
    const unsigned char *start = s;
    int escaped = 0;
    char *copy, *o;

    for (;;) {
        while (s < end && dc_json_plain[*s])
            s++;
        if (s >= end)
            return -1;
        if (*s == '"')
            break;
        if (*s == '\\') {
            if (s + 1 >= end || s[1] == 'u')
                return -1;
            escaped = 1;
            s += 2;
        } else if (*s < 0x20) {
            return -1;
        } else if (*s < 0x80) {
            s++;
        } else {
            size_t n = dc_utf8_sequence_len(s, (size_t)(end - s));

            if (!n)
                return -1;
            s += n;
        }
    }
    copy = o = apr_palloc(sc->pool, (size_t)(s - start) + 1);
    if (!escaped) {
        memcpy(copy, start, (size_t)(s - start));
        o += s - start;
    } else {
        for (const unsigned char *c = start; c < s; c++) {
            if (*c != '\\') {
                *o++ = (char)*c;
                continue;
            }
            switch (*++c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            default: return -1;
            }
        }
    }
    *o = '\0';
    *out = copy;
    *out_len = (size_t)(o - copy);
    sc->s = (const char *)s + 1;
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number by JSON's grammar, converted the way jansson does (integers with strtoll, others
 * with strtod); out of range gives up, as jansson's error or its underflow rule decide. */
static int scan_number(scanner_t *sc, double *out)
{
    const char *s = sc->s, *start = s, *end = sc->end;
    int integer = 1;
    char tmp[64], *stop;

    if (s < end && *s == '-')
        s++;
    if (s < end && *s == '0')
        s++;
    else if (s < end && *s >= '1' && *s <= '9')
        while (s < end && is_digit(*s))
            s++;
    else
        return -1;
    if (s < end && *s == '.') {
        integer = 0;
        if (++s >= end || !is_digit(*s))
            return -1;
        while (s < end && is_digit(*s))
            s++;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        integer = 0;
        if (++s < end && (*s == '+' || *s == '-'))
            s++;
        if (s >= end || !is_digit(*s))
            return -1;
        while (s < end && is_digit(*s))
            s++;
    }
    if ((size_t)(s - start) >= sizeof(tmp))
        return -1;
    memcpy(tmp, start, (size_t)(s - start));
    tmp[s - start] = '\0';
    errno = 0;
    if (integer) {
        long long v = strtoll(tmp, &stop, 10);

        if (errno == ERANGE)
            return -1;
        *out = (double)v;
    } else {
        *out = strtod(tmp, &stop);
        if (errno == ERANGE)
            return -1;
    }
    if (*stop != '\0') /* a locale whose decimal point is not '.' */
        return -1;
    sc->s = s;
    return 0;
}

static int scan_literal(scanner_t *sc, const char *word, size_t len)
{
    if ((size_t)(sc->end - sc->s) < len || memcmp(sc->s, word, len) != 0)
        return 0;
    sc->s += len;
    /* jansson reads a run of letters as one token: "truex" is no "true" */
    return sc->s == sc->end || !((*sc->s >= 'a' && *sc->s <= 'z') || (*sc->s >= 'A' && *sc->s <= 'Z'));
}

/* A context value as dc_value_from_json() would make it; objects give up. */
static int scan_value(scanner_t *sc, dc_value_t *out, int depth)
{
    memset(out, 0, sizeof(*out));
    scan_ws(sc);
    if (sc->s >= sc->end)
        return -1;
    switch (*sc->s) {
    case '"': {
        const char *str;
        size_t len;

        if (scan_string(sc, &str, &len) < 0)
            return -1;
        /* lower-cased and folded by build_context() if a targeting reads the key */
        dc_value_set_string_raw(out, str, len);
        return 0;
    }
    case 't':
    case 'f':
        out->kind = DC_KIND_BOOL;
        out->boolean = *sc->s == 't';
        return scan_literal(sc, out->boolean ? "true" : "false", out->boolean ? 4 : 5) ? 0 : -1;
    case 'n':
        out->kind = DC_KIND_NULL;
        return scan_literal(sc, "null", 4) ? 0 : -1;
    case '[': {
        dc_value_t stack_items[8], *items = stack_items, *list;
        size_t n = 0, cap = 8;

        if (depth >= FAST_MAX_DEPTH)
            return -1;
        sc->s++;
        if (!scan_char(sc, ']')) {
            do {
                if (n == cap) {
                    dc_value_t *more = apr_palloc(sc->pool, 2 * cap * sizeof(*more));

                    memcpy(more, items, n * sizeof(*items));
                    items = more;
                    cap *= 2;
                }
                if (scan_value(sc, &items[n++], depth + 1) < 0)
                    return -1;
            } while (scan_char(sc, ','));
            if (!scan_char(sc, ']'))
                return -1;
        }
        list = n ? apr_palloc(sc->pool, n * sizeof(*list)) : NULL;
        if (n)
            memcpy(list, items, n * sizeof(*items));
        out->kind = DC_KIND_LIST;
        out->items = list;
        out->n_items = n;
        return 0;
    }
    default:
        if (*sc->s == '-' || is_digit(*sc->s)) {
            out->kind = DC_KIND_NUMBER;
            return scan_number(sc, &out->number);
        }
        return -1;
    }
}

static int scan_context(scanner_t *sc, decision_request_t *dr)
{
    dc_context_entry_t entries[FAST_MAX_CONTEXT], *copy;
    const char *start = sc->s;
    size_t n = 0;

    sc->s++;
    if (!scan_char(sc, '}')) {
        do {
            const char *key;
            size_t key_len;

            if (n == FAST_MAX_CONTEXT || !scan_char(sc, '"'))
                return -1;
            sc->s--;
            if (scan_string(sc, &key, &key_len) < 0 || !scan_char(sc, ':'))
                return -1;
            for (size_t i = 0; i < n; i++) /* jansson refuses duplicate keys */
                if (entries[i].key_len == key_len && memcmp(entries[i].key, key, key_len) == 0)
                    return -1;
            if (memchr(key, '\0', key_len))
                return -1;
            entries[n].key = key;
            entries[n].key_len = key_len;
            if (scan_value(sc, &entries[n].value, 1) < 0)
                return -1;
            n++;
        } while (scan_char(sc, ','));
        if (!scan_char(sc, '}'))
            return -1;
    }
    copy = n ? apr_palloc(sc->pool, n * sizeof(*copy)) : NULL;
    if (n)
        memcpy(copy, entries, n * sizeof(*entries));
    dr->entries = copy;
    dr->n_entries = n;
    dr->context_text = start;
    dr->context_text_len = (size_t)(sc->s - start);
    return 0;
}

/* 0 with dr filled as parse_decision_body() would, or -1: let jansson decide. */
static int fast_parse_decision_body(apr_pool_t *p, const char *body, size_t len,
                                    decision_request_t *dr)
{
    enum { N_FIELDS = sizeof(decision_fields) / sizeof(decision_fields[0]) };
    scanner_t sc = {body, body + len, p};
    int present[N_FIELDS] = {0}, bools[N_FIELDS] = {0};
    const char *strings[N_FIELDS] = {0};
    size_t string_lens[N_FIELDS] = {0};

    if (!scan_char(&sc, '{'))
        return -1;
    if (!scan_char(&sc, '}')) {
        do {
            const char *key;
            size_t key_len, i;

            if (!scan_char(&sc, '"'))
                return -1;
            sc.s--;
            if (scan_string(&sc, &key, &key_len) < 0 || !scan_char(&sc, ':'))
                return -1;
            for (i = 0; i < N_FIELDS; i++)
                if ((key_len == decision_fields[i].snake_len &&
                     memcmp(key, decision_fields[i].snake, key_len) == 0) ||
                    (key_len == decision_fields[i].camel_len &&
                     memcmp(key, decision_fields[i].camel, key_len) == 0))
                    break;
            /* unknown, or twice (in any spelling, even as null): jansson's path words it */
            if (i == N_FIELDS || present[i] || memchr(key, '\0', key_len))
                return -1;
            present[i] = 1;
            scan_ws(&sc);
            if (sc.s < sc.end && *sc.s == 'n') {
                if (!scan_literal(&sc, "null", 4))
                    return -1;
                present[i] = 2; /* null = absent */
                continue;
            }
            switch (decision_fields[i].kind) {
            case FIELD_STRING:
            case FIELD_IGNORED_STRING:
                if (sc.s >= sc.end || *sc.s != '"' ||
                    scan_string(&sc, &strings[i], &string_lens[i]) < 0)
                    return -1;
                break;
            case FIELD_BOOL:
                if (scan_literal(&sc, "true", 4))
                    bools[i] = 1;
                else if (!scan_literal(&sc, "false", 5))
                    return -1;
                break;
            case FIELD_OBJECT:
                if (sc.s >= sc.end || *sc.s != '{' || scan_context(&sc, dr) < 0)
                    return -1;
                break;
            }
        } while (scan_char(&sc, ','));
        if (!scan_char(&sc, '}'))
            return -1;
    }
    scan_ws(&sc);
    if (sc.s != sc.end)
        return -1;

    /* The same conclusions as parse_decision_body() draws from its seen[]. */
    if (present[0] == 1) {
        dr->visitor_id = strings[0];
        dr->visitor_id_len = string_lens[0];
        dr->has_visitor_id = 1;
    } else {
        dr->visitor_id = "";
    }
    if (present[1] == 1) {
        dr->anonymous_id = strings[1];
        dr->anonymous_id_len = string_lens[1];
        dr->has_anonymous_id = 1;
    }
    if (present[2] == 1 && string_lens[2] > 0) {
        dr->decision_group = strings[2];
        dr->decision_group_len = string_lens[2];
    }
    if (present[3] != 1) {
        dr->entries = NULL;
        dr->n_entries = 0;
    }
    if ((present[4] == 1 && !bools[4]) || (present[5] == 1 && !bools[5]))
        dr->trigger_hit = 0;
    if (present[6] == 1 && !bools[6])
        dr->visitor_consent = 0;
    dr->format_response = present[7] == 1 && bools[7];
    return 0;
}

/* The entries of a context object (NULL or empty: none), as targeting sees them. */
static void context_from_json(apr_pool_t *p, json_t *context, decision_request_t *dr)
{
    dc_context_entry_t *entries;
    const char *key;
    json_t *value;
    size_t i = 0;

    if (!context || json_object_size(context) == 0)
        return;
    entries = apr_palloc(p, json_object_size(context) * sizeof(*entries));
    json_object_foreach(context, key, value)
    {
        entries[i].key = key;
        entries[i].key_len = strlen(key);
        dc_value_from_json(p, value, &entries[i].value);
        i++;
    }
    dr->entries = entries;
    dr->n_entries = i;
}

/*
 * Protobuf-JSON rules of the decision-api: each field in snake_case or
 * lowerCamelCase, null = absent, strict types, unknown fields and the same
 * field twice (in both spellings) refused. Returns NULL or the error message.
 */
static const char *parse_decision_body(apr_pool_t *p, const char *body, size_t len,
                                       decision_request_t *dr, int *unknown_field)
{
    json_t *seen[sizeof(decision_fields) / sizeof(decision_fields[0])] = {0};
    json_error_t jerr;
    const char *key;
    json_t *value;

    memset(dr, 0, sizeof(*dr));
    dr->trigger_hit = 1;
    dr->visitor_consent = 1;
    *unknown_field = 0;
    if (fast_parse_decision_body(p, body, len, dr) == 0)
        return NULL;
    memset(dr, 0, sizeof(*dr));
    dr->trigger_hit = 1;
    dr->visitor_consent = 1;
    dr->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!dr->root)
        return apr_psprintf(p, SYNTAX_PREFIX "%s (line %d, column %d)", jerr.text, jerr.line,
                            jerr.column);
    if (!json_is_object(dr->root))
        return apr_psprintf(p, SYNTAX_PREFIX "expected an object, found %s",
                            json_kind(dr->root));
    json_object_foreach(dr->root, key, value)
    {
        size_t i;

        for (i = 0; i < sizeof(decision_fields) / sizeof(decision_fields[0]); i++)
            if (strcmp(key, decision_fields[i].snake) == 0 ||
                strcmp(key, decision_fields[i].camel) == 0)
                break;
        if (i == sizeof(decision_fields) / sizeof(decision_fields[0])) {
            *unknown_field = 1;
            return apr_psprintf(p, "json body is not valid. unknown field \"%s\"", key);
        }
        if (seen[i])
            return apr_psprintf(p, SYNTAX_PREFIX "duplicate field \"%s\"", key);
        if (json_is_null(value))
            continue;
        seen[i] = value;
        switch (decision_fields[i].kind) {
        case FIELD_STRING:
        case FIELD_IGNORED_STRING:
            if (!json_is_string(value))
                return apr_psprintf(p, SYNTAX_PREFIX "field \"%s\": expected a string, found %s",
                                    key, json_kind(value));
            break;
        case FIELD_BOOL:
            if (!json_is_boolean(value))
                return apr_psprintf(p, SYNTAX_PREFIX "field \"%s\": expected a bool, found %s", key,
                                    json_kind(value));
            break;
        case FIELD_OBJECT:
            if (!json_is_object(value))
                return apr_psprintf(p, SYNTAX_PREFIX "field \"%s\": expected an object, found %s",
                                    key, json_kind(value));
            break;
        }
    }
    if (seen[0]) {
        dr->visitor_id = json_string_value(seen[0]);
        dr->visitor_id_len = json_string_length(seen[0]);
        dr->has_visitor_id = 1;
    } else {
        dr->visitor_id = "";
    }
    if (seen[1]) {
        dr->anonymous_id = json_string_value(seen[1]);
        dr->anonymous_id_len = json_string_length(seen[1]);
        dr->has_anonymous_id = 1;
    }
    if (seen[2] && json_string_length(seen[2]) > 0) {
        dr->decision_group = json_string_value(seen[2]);
        dr->decision_group_len = json_string_length(seen[2]);
    }
    dr->context = seen[3];
    if ((seen[4] && json_is_false(seen[4])) || (seen[5] && json_is_false(seen[5])))
        dr->trigger_hit = 0;
    if (seen[6] && json_is_false(seen[6]))
        dr->visitor_consent = 0;
    dr->format_response = seen[7] && json_is_true(seen[7]);
    context_from_json(p, dr->context, dr);
    return NULL;
}

static apr_status_t release_json(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

static apr_status_t release_config(void *data)
{
    dc_config_unref(data);
    return APR_SUCCESS;
}

/* ---- rendering ---------------------------------------------------------- */

/* An entry of "campaigns": pre-rendered by dc_config for each variation. */
static void put_campaign(dc_buf_t *b, const dc_decision_t *d, int expose_all)
{
    dc_buf_append(b, d->variation->campaign_json[expose_all != 0],
                  d->variation->campaign_json_len[expose_all != 0]);
}

/* mergedModifications and /v2/flags: later campaigns override earlier keys. */
typedef struct {
    const char *key;
    size_t key_len;
    const dc_flag_t *flag;
    const dc_decision_t *decision;
    size_t order;
} merged_t;

typedef struct {
    merged_t *items;
    size_t n, cap;
    apr_pool_t *pool;
    const dc_decision_t *current;
} merger_t;

static void merge_member(void *baton, const char *key, size_t key_len, const dc_flag_t *flag)
{
    merger_t *m = baton;

    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        merged_t *items = apr_palloc(m->pool, cap * sizeof(*items));

        if (m->n)
            memcpy(items, m->items, m->n * sizeof(*items));
        m->items = items;
        m->cap = cap;
    }
    m->items[m->n].key = key;
    m->items[m->n].key_len = key_len;
    m->items[m->n].flag = flag;
    m->items[m->n].decision = m->current;
    m->items[m->n].order = m->n;
    m->n++;
}

static int compare_merged(const void *a, const void *b)
{
    const merged_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Collects the members and sorts them; for each key the last one wins. */
static void merge(apr_pool_t *p, const dc_outcome_t *out, int expose_all, merger_t *m)
{
    memset(m, 0, sizeof(*m));
    m->pool = p;
    for (size_t i = 0; i < out->n_decisions; i++) {
        const dc_decision_t *d = &out->decisions[i];

        if (!d->variation->has_modifications)
            continue;
        m->current = d;
        dc_variation_each_flag(d->group, d->variation, expose_all, merge_member, m);
    }
    if (m->n > 1)
        qsort(m->items, m->n, sizeof(*m->items), compare_merged);
}

static int is_last_of_key(const merger_t *m, size_t i)
{
    return i + 1 == m->n || strcmp(m->items[i].key, m->items[i + 1].key) != 0;
}

static void put_merged_modifications(dc_buf_t *b, const merger_t *m)
{
    int first = 1;

    dc_buf_putc(b, '{');
    for (size_t i = 0; i < m->n; i++) {
        if (!is_last_of_key(m, i))
            continue;
        if (!first)
            dc_buf_putc(b, ',');
        first = 0;
        dc_json_put_string(b, m->items[i].key, m->items[i].key_len);
        dc_buf_putc(b, ':');
        if (m->items[i].flag)
            dc_buf_append(b, m->items[i].flag->json, m->items[i].flag->json_len);
        else
            dc_buf_puts(b, "null");
    }
    dc_buf_putc(b, '}');
}

/* A flag's "metadata" members (without braces): where its value comes from. With
 * omit_null, names the file lacks are left out instead of written as null. */
static void put_flag_metadata(dc_buf_t *b, const dc_decision_t *d, int omit_null)
{
    static const char *const names[] = {",\"campaignName\":", ",\"slug\":", ",\"type\":"};
    const char *values[] = {d->campaign->name, d->campaign->slug, d->campaign->type};

    dc_buf_puts(b, "\"campaignId\":");
    dc_json_put_string_or_null(b, d->campaign->id);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (omit_null && !values[i])
            continue;
        dc_buf_puts(b, names[i]);
        dc_json_put_string_or_null(b, values[i]);
    }
    dc_buf_puts(b, ",\"variationGroupId\":");
    dc_json_put_string(b, d->group->id, d->group->id_len);
    if (!omit_null || d->group->name) {
        dc_buf_puts(b, ",\"variationGroupName\":");
        dc_json_put_string_or_null(b, d->group->name);
    }
    dc_buf_puts(b, ",\"variationId\":");
    dc_json_put_string(b, d->variation->id, d->variation->id_len);
    if (!omit_null || d->variation->name) {
        dc_buf_puts(b, ",\"variationName\":");
        dc_json_put_string_or_null(b, d->variation->name);
    }
    dc_buf_puts(b, d->variation->reference ? ",\"reference\":true" : ",\"reference\":false");
}

static void put_flags(dc_buf_t *b, const merger_t *m)
{
    int first = 1;

    dc_buf_putc(b, '{');
    for (size_t i = 0; i < m->n; i++) {
        if (!is_last_of_key(m, i))
            continue;
        if (!first)
            dc_buf_putc(b, ',');
        first = 0;
        dc_json_put_string(b, m->items[i].key, m->items[i].key_len);
        dc_buf_puts(b, ":{\"value\":");
        if (m->items[i].flag)
            dc_buf_append(b, m->items[i].flag->json, m->items[i].flag->json_len);
        else
            dc_buf_puts(b, "null");
        dc_buf_puts(b, ",\"metadata\":{");
        put_flag_metadata(b, m->items[i].decision, 0);
        dc_buf_puts(b, "}}");
    }
    dc_buf_putc(b, '}');
}

static void put_account_settings(dc_buf_t *b, const dc_config_t *cfg)
{
    dc_buf_printf(b,
                  ",\"extras\":{\"accountSettings\":{\"@type\":\"type.googleapis.com/"
                  "flagship.protobuf.AccountSettings\",\"enabledXPC\":%s,\"enabled1V1T\":%s,"
                  "\"troubleshooting\":null}}",
                  cfg->enabled_xpc ? "true" : "false", cfg->enabled_1v1t ? "true" : "false");
}

/* ---- the decision routes ------------------------------------------------ */

typedef enum { ROUTE_CAMPAIGNS, ROUTE_CAMPAIGN, ROUTE_FLAGS } decision_route_e;
typedef enum { MODE_NORMAL, MODE_SIMPLE, MODE_FULL } mode_e;

static void build_context(apr_pool_t *p, const dc_config_t *cfg, const decision_request_t *dr,
                          dc_context_t *ctx, dc_value_t *visitor)
{
    /* The scanner left strings as given: only the keys a targeting of this
     * configuration reads get their lower-cased and folded forms. */
    for (size_t i = 0; i < dr->n_entries; i++) {
        dc_context_entry_t *e = (dc_context_entry_t *)&dr->entries[i]; /* the request's own */

        if ((e->value.kind == DC_KIND_STRING || e->value.kind == DC_KIND_LIST) &&
            dc_index_reads(cfg->index, e->key, e->key_len))
            dc_value_fold(p, &e->value);
    }
    dc_value_set_string(p, visitor, dr->visitor_id, dr->visitor_id_len);
    ctx->entries = dr->entries;
    ctx->n_entries = dr->n_entries;
    ctx->visitor = visitor;
}

static int64_t ms_of(apr_time_t t)
{
    return (int64_t)(t / 1000);
}

/* Hands a request's hits to the sink and counts them: 0, or -1 when refused. */
static int sink_hits(dc_service_t *svc, apr_pool_t *p, dc_metrics_slot_t *slot,
                     const dc_hit_t *hits, size_t n)
{
    int rc = svc->hit_sink(svc->hit_baton, p, hits, n);

    dc_metrics_observe_hits(slot, n, rc >= 0);
    if (rc > 0)
        dc_metrics_observe_ring_full(slot);
    return rc < 0 ? -1 : 0;
}

static void emit_decision_hits(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                               dc_metrics_slot_t *slot, const decision_request_t *dr,
                               const dc_config_t *cfg, const dc_outcome_t *out, int send_context)
{
    size_t cap = out->n_decisions + 1, n = 0;
    dc_hit_t *hits;
    int64_t received = ms_of(req->received);

    if (!svc->hit_sink)
        return;
    hits = apr_palloc(p, cap * sizeof(*hits));
    if (send_context && dr->visitor_consent && dr->n_entries > 0) {
        /* The SEGMENT vid is the anonymous id whenever one was sent (even
         * with XPC off): the decision-api's rule, kept for the collector. */
        const char *vid = dr->has_anonymous_id ? dr->anonymous_id : dr->visitor_id;
        size_t vid_len = dr->has_anonymous_id ? dr->anonymous_id_len : dr->visitor_id_len;
        json_t *context = dr->context;

        /* The fast path kept only the context's text: jansson reads it (it read it as
         * valid) for the hit's Go-style values. */
        if (!context && (context = json_loadb(dr->context_text, dr->context_text_len,
                                              JSON_REJECT_DUPLICATES, NULL)) != NULL)
            apr_pool_cleanup_register(p, context, release_json, apr_pool_cleanup_null);
        if (context)
            dc_hit_segment(p, &hits[n++], svc->opt.env_id, vid, vid_len, dr->visitor_id,
                           dr->visitor_id_len, context, received);
    }
    if (dr->trigger_hit) {
        int xpc = cfg->xpc && dr->anonymous_id_len > 0;
        const char *vid = xpc ? dr->anonymous_id : dr->visitor_id;
        size_t vid_len = xpc ? dr->anonymous_id_len : dr->visitor_id_len;

        dc_hits_campaigns(p, hits + n, svc->opt.env_id, vid, vid_len, dr->visitor_id,
                          dr->visitor_id_len, out->decisions, out->n_decisions, received);
        n += out->n_decisions;
    }
    if (n && sink_hits(svc, p, slot, hits, n) < 0)
        dc_log(DC_LOG_DEBUG, DCLOGNO(10201) "api: %zu hit(s) of a decision were refused by the "
                                            "event spool",
               n);
}

/* A visitor's decision, as every decision route makes it. */
typedef struct {
    dc_config_t *cfg;
    dc_context_t ctx;
    dc_value_t visitor_value;
    dc_visitor_t visitor;
    dc_outcome_t out;
} decided_t;

#define NO_CONFIG_MESSAGE                                                                          \
    "no bucketing configuration is loaded yet; see the server log and /v2/ready"

/* Counts the visitor and takes the current configuration (released with p), or NULL when
 * none is loaded yet. */
static dc_config_t *begin_decision(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                                   dc_metrics_slot_t *slot, const decision_request_t *dr)
{
    dc_config_t *cfg;

    if (slot && dr->visitor_id_len)
        dc_metrics_observe_visitor(svc->metrics, dr->visitor_id, dr->visitor_id_len,
                                   req->received ? req->received : apr_time_now());
    cfg = dc_slot_acquire(&svc->slot);
    if (cfg)
        apr_pool_cleanup_register(p, cfg, release_config, apr_pool_cleanup_null);
    return cfg;
}

/* Decides for the visitor of dr against cfg (only: that campaign alone, or NULL). */
static void decide(dc_service_t *svc, apr_pool_t *p, dc_store_t *store, dc_config_t *cfg,
                   const decision_request_t *dr, const dc_campaign_t *only, decided_t *d)
{
    d->cfg = cfg;
    build_context(p, cfg, dr, &d->ctx, &d->visitor_value);
    memset(&d->visitor, 0, sizeof(d->visitor));
    d->visitor.context = &d->ctx;
    d->visitor.visitor_id = dr->visitor_id;
    d->visitor.visitor_id_len = dr->visitor_id_len;
    if (dr->has_anonymous_id) {
        d->visitor.anonymous_id = dr->anonymous_id;
        d->visitor.anonymous_id_len = dr->anonymous_id_len;
    }
    if (dr->decision_group)
        d->visitor.decision_group = dc_base64(p, dr->decision_group, dr->decision_group_len,
                                              &d->visitor.decision_group_len);
    d->visitor.trigger_hit = dr->trigger_hit;
    d->out.decisions =
        apr_palloc(p, (cfg->n_campaigns ? cfg->n_campaigns : 1) * sizeof(dc_decision_t));
    dc_decide(p, cfg, store, svc->opt.env_id, &d->visitor, only, &d->out);
}

/* After the answer is built: saves the decision's assignments and sends the hits of the
 * decisions in shown (d->out, or the part of it the caller showed). */
static void end_decision(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                         dc_store_t *store, dc_metrics_slot_t *slot, const decision_request_t *dr,
                         const decided_t *d, const dc_outcome_t *shown, int send_context)
{
    if (dc_engine_save(p, store, svc->opt.env_id, &d->visitor, &d->out, ms_of(apr_time_now())))
        dc_log(DC_LOG_DEBUG, DCLOGNO(10202) "api: assignments not saved (store unavailable)");
    emit_decision_hits(svc, p, req, slot, dr, d->cfg, shown, send_context);
}

/* format_response: the raw value of an IMAGE/TEXT/HTML modification. */
static int respond_formatted(apr_pool_t *p, dc_response_t *resp, const dc_variation_t *v)
{
    const char *content_type = dc_modification_content_type(v->modifications_type);
    const dc_flag_t *flag = v->n_flags ? &v->flags[0] : NULL;

    if (!v->has_modifications || !flag || !content_type)
        return 0;
    if (flag->text)
        respond(resp, 200, content_type, flag->text, flag->text_len);
    else if (flag->is_scalar)
        respond(resp, 200, content_type, flag->json, flag->json_len);
    else
        respond(resp, 200, content_type, "", 0);
    return 1;
}

/* Room for the usual answer (visitorId and the pre-rendered campaign entries, with slack for
 * the campaignsVariation of full mode), so that the buffer is not grown and copied. */
static size_t answer_size_estimate(const decision_request_t *dr, const dc_outcome_t *out,
                                   int expose_all)
{
    size_t n = 128 + 6 * dr->visitor_id_len;

    for (size_t i = 0; i < out->n_decisions; i++)
        n += out->decisions[i].variation->campaign_json_len[expose_all != 0] + 96;
    return n;
}

static void handle_decision(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                            dc_response_t *resp, dc_store_t *store, dc_metrics_slot_t *slot,
                            dc_otel_span_t *span, decision_route_e route,
                            const char *campaign_ref, size_t campaign_ref_len)
{
    decision_request_t dr;
    query_t q;
    mode_e mode = MODE_NORMAL;
    int expose_all, send_context, unknown_field;
    const char *error;
    dc_config_t *cfg;
    const dc_campaign_t *only = NULL;
    decided_t d;
    dc_outcome_t *out = &d.out;
    dc_buf_t b;

    parse_query(p, req->query, &q);
    if (q.has_nul) {
        respond_error(p, resp, 400, "the query string holds an encoded NUL byte (%00)");
        return;
    }
    if (q.mode && *q.mode) {
        if (strcmp(q.mode, "simple") == 0)
            mode = MODE_SIMPLE;
        else if (strcmp(q.mode, "full") == 0)
            mode = MODE_FULL;
        else if (strcmp(q.mode, "normal") != 0) {
            respond_error(p, resp, 400,
                          apr_psprintf(p, "unknown mode \"%s\": use simple, normal or full",
                                       q.mode));
            return;
        }
    }
    expose_all = q.expose_all_keys ? strcmp(q.expose_all_keys, "true") == 0 : route == ROUTE_FLAGS;
    send_context = !q.send_context_event || strcmp(q.send_context_event, "false") != 0;

    error = parse_decision_body(p, req->body, req->body_len, &dr, &unknown_field);
    if (dr.root)
        apr_pool_cleanup_register(p, dr.root, release_json, apr_pool_cleanup_null);
    if (error) {
        respond_error(p, resp, 400, error);
        return;
    }

    cfg = begin_decision(svc, p, req, slot, &dr);
    if (!cfg) {
        respond_error(p, resp, 503, NO_CONFIG_MESSAGE);
        return;
    }

    if (route == ROUTE_CAMPAIGN && campaign_ref_len > 0) {
        only = dc_config_find_campaign(cfg, campaign_ref, campaign_ref_len);
        if (!only) {
            respond_error(p, resp, 400,
                          apr_psprintf(p,
                                       "The campaign %s is paused or doesn\xe2\x80\x99t exist. "
                                       "Verify your customId or campaignId.",
                                       campaign_ref));
            return;
        }
    }
    if (cfg->panic) {
        dc_buf_init(&b, p, 64);
        dc_buf_puts(&b, "{\"visitorId\":");
        if (dr.has_visitor_id)
            dc_json_put_string(&b, dr.visitor_id, dr.visitor_id_len);
        else
            dc_buf_puts(&b, "null");
        dc_buf_puts(&b, ",\"campaigns\":[],\"panic\":true}");
        respond_buf(resp, 200, &b);
        return;
    }

    decide(svc, p, store, cfg, &dr, only, &d);

    if (span)
        span->campaigns = (int32_t)d.out.n_decisions;

    dc_buf_init(&b, p, answer_size_estimate(&dr, out, expose_all));
    if (route == ROUTE_CAMPAIGN && only) {
        if (out->n_decisions == 0) {
            if (out->single_error == DC_CHOICE_UNTRACKED)
                respond_error(p, resp, 400, "Visitor untracked");
            else if (out->single_error == DC_CHOICE_DELETED_VARIATION)
                respond_error(p, resp, 400, "visitor ID assigned to deleted variation");
            else
                respond(resp, 204, NULL, "", 0);
        } else if (!(dr.format_response && respond_formatted(p, resp, out->decisions[0].variation))) {
            put_campaign(&b, &out->decisions[0], expose_all);
            respond_buf(resp, 200, &b);
        }
    } else if (route == ROUTE_CAMPAIGN && out->n_decisions == 0) {
        respond(resp, 204, NULL, "", 0);
    } else if (route == ROUTE_FLAGS) {
        merger_t m;

        merge(p, out, expose_all, &m);
        put_flags(&b, &m);
        respond_buf(resp, 200, &b);
    } else {
        int comma = 0;

        dc_buf_putc(&b, '{');
        if (mode != MODE_SIMPLE) {
            dc_buf_puts(&b, "\"visitorId\":");
            dc_json_put_string(&b, dr.visitor_id, dr.visitor_id_len);
            dc_buf_puts(&b, ",\"campaigns\":[");
            for (size_t i = 0; i < out->n_decisions; i++) {
                if (i)
                    dc_buf_putc(&b, ',');
                put_campaign(&b, &out->decisions[i], expose_all);
            }
            dc_buf_putc(&b, ']');
            comma = 1;
        }
        if (mode != MODE_NORMAL) {
            merger_t m;

            if (comma)
                dc_buf_putc(&b, ',');
            dc_buf_puts(&b, "\"campaignsVariation\":[");
            for (size_t i = 0; i < out->n_decisions; i++) {
                if (i)
                    dc_buf_putc(&b, ',');
                dc_buf_puts(&b, "{\"campaignId\":");
                dc_json_put_string_or_null(&b, out->decisions[i].campaign->id);
                dc_buf_puts(&b, ",\"variationId\":");
                dc_json_put_string(&b, out->decisions[i].variation->id,
                                   out->decisions[i].variation->id_len);
                dc_buf_putc(&b, '}');
            }
            dc_buf_puts(&b, "],\"mergedModifications\":");
            merge(p, out, expose_all, &m);
            put_merged_modifications(&b, &m);
        }
        if (q.extras_account_settings)
            put_account_settings(&b, cfg);
        dc_buf_putc(&b, '}');
        respond_buf(resp, 200, &b);
    }

    end_decision(svc, p, req, store, slot, &dr, &d, &d.out, send_context);
}

/* One visitor one test needs to know which "ab" test a visitor saw: records that visitor
 * vid was shown variation vaid of variation group caid, unless the store knows it already. */
static void save_activation(dc_service_t *svc, apr_pool_t *p, dc_store_t *store,
                            const char *vid, size_t vid_len, const char *caid, size_t caid_len,
                            const char *vaid, size_t vaid_len)
{
    dc_assignments_t current, change;
    const dc_assignment_t *have;

    memset(&change, 0, sizeof(change));
    if (dc_store_load(store, p, svc->opt.env_id, vid, vid_len, &current) == DC_STORE_UNAVAILABLE)
        memset(&current, 0, sizeof(current));
    have = dc_assignments_find(&current, caid, caid_len);
    if (have && have->activated && have->variation_id_len == vaid_len &&
        memcmp(have->variation_id, vaid, vaid_len) == 0)
        return;
    dc_assignments_set(p, &change, caid, caid_len, vaid, vaid_len, 1);
    if (dc_store_save(store, p, svc->opt.env_id, vid, vid_len, &change, ms_of(apr_time_now())) ==
        DC_STORE_UNAVAILABLE)
        dc_log(DC_LOG_DEBUG, DCLOGNO(10203) "activate: assignment not saved (store unavailable)");
}

/* ---- OFREP -------------------------------------------------------------- */

/*
 * The OpenFeature Remote Evaluation Protocol (doc/ofrep.md):
 * POST .../ofrep/v1/evaluate/flags/{key} and POST .../ofrep/v1/evaluate/flags.
 * The body {"context": {"targetingKey": ..., ...}} is a /v2/flags request:
 * targetingKey is the visitor id, anonymousId its anonymous id (for XPC), the
 * rest its context. The flags are /v2/flags's (every key of the visitor's
 * variations, later campaigns winning), decided by the same steps, each with
 * an OpenFeature reason. Errors have OFREP's shapes: {"key", "errorCode",
 * "errorDetails"} for one flag, {"errorCode", "errorDetails"} for the bulk
 * request, {"errorDetails"} for everything else.
 */

#define OFREP_TARGETING_KEY "targetingKey"
#define OFREP_ANONYMOUS_ID "anonymousId"

typedef enum {
    OFREP_OK = 0,
    OFREP_PARSE_ERROR,
    OFREP_TARGETING_KEY_MISSING,
    OFREP_INVALID_CONTEXT
} ofrep_error_e;

static const char *const ofrep_error_codes[] = {"", "PARSE_ERROR", "TARGETING_KEY_MISSING",
                                                "INVALID_CONTEXT"};

static void ofrep_respond_general(apr_pool_t *p, dc_response_t *resp, int status,
                                  const char *details)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 64 + strlen(details));
    dc_buf_puts(&b, "{\"errorDetails\":");
    dc_json_put_string(&b, details, strlen(details));
    dc_buf_puts(&b, "}\n");
    respond_buf(resp, status, &b);
}

/* An evaluation's failure; key NULL for the bulk request's. */
static void ofrep_respond_failure(apr_pool_t *p, dc_response_t *resp, int status,
                                  const char *key, size_t key_len, const char *code,
                                  const char *details)
{
    dc_buf_t b;

    dc_buf_init(&b, p, 96 + key_len + strlen(details));
    dc_buf_putc(&b, '{');
    if (key) {
        dc_buf_puts(&b, "\"key\":");
        dc_json_put_string(&b, key, key_len);
        dc_buf_putc(&b, ',');
    }
    dc_buf_puts(&b, "\"errorCode\":\"");
    dc_buf_puts(&b, code);
    dc_buf_puts(&b, "\",\"errorDetails\":");
    dc_json_put_string(&b, details, strlen(details));
    dc_buf_puts(&b, "}\n");
    respond_buf(resp, status, &b);
}

/* The common body, {"context": {scalars and lists}}, read by the scanner; -1: let jansson
 * read it. */
static int fast_parse_ofrep_body(apr_pool_t *p, const char *body, size_t len,
                                 decision_request_t *dr)
{
    scanner_t sc = {body, body + len, p};
    const char *key;
    size_t key_len;

    if (!scan_char(&sc, '{') || !scan_char(&sc, '"'))
        return -1;
    sc.s--;
    if (scan_string(&sc, &key, &key_len) < 0 || !scan_char(&sc, ':') || key_len != 7 ||
        memcmp(key, "context", 7) != 0)
        return -1;
    scan_ws(&sc);
    if (sc.s >= sc.end || *sc.s != '{' || scan_context(&sc, dr) < 0 || !scan_char(&sc, '}'))
        return -1;
    scan_ws(&sc);
    return sc.s == sc.end ? 0 : -1;
}

static const char *value_kind(const dc_value_t *v)
{
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};

    return names[v->kind];
}

/* Takes targetingKey (the visitor id) and anonymousId out of the context's entries. */
static ofrep_error_e take_identity(apr_pool_t *p, decision_request_t *dr, const char **details)
{
    dc_context_entry_t *rest = apr_palloc(p, (dr->n_entries + 1) * sizeof(*rest));
    size_t n = 0;

    for (size_t i = 0; i < dr->n_entries; i++) {
        const dc_context_entry_t *e = &dr->entries[i];
        int is_key = e->key_len == sizeof(OFREP_TARGETING_KEY) - 1 &&
                     memcmp(e->key, OFREP_TARGETING_KEY, e->key_len) == 0;
        int is_anonymous = e->key_len == sizeof(OFREP_ANONYMOUS_ID) - 1 &&
                           memcmp(e->key, OFREP_ANONYMOUS_ID, e->key_len) == 0;

        if (!is_key && !is_anonymous) {
            rest[n++] = *e;
            continue;
        }
        if (e->value.kind == DC_KIND_NULL)
            continue;
        if (e->value.kind != DC_KIND_STRING) {
            *details = apr_psprintf(p, "context.%s must be a string, not %s",
                                    is_key ? OFREP_TARGETING_KEY : OFREP_ANONYMOUS_ID,
                                    value_kind(&e->value));
            return OFREP_INVALID_CONTEXT;
        }
        if (is_key) {
            dr->visitor_id = e->value.str;
            dr->visitor_id_len = e->value.len;
            dr->has_visitor_id = 1;
        } else if (e->value.len) {
            dr->anonymous_id = e->value.str;
            dr->anonymous_id_len = e->value.len;
            dr->has_anonymous_id = 1;
        }
    }
    dr->entries = rest;
    dr->n_entries = n;
    if (dr->visitor_id_len == 0) {
        *details = "context." OFREP_TARGETING_KEY " (the visitor id) is missing or empty";
        return OFREP_TARGETING_KEY_MISSING;
    }
    return OFREP_OK;
}

/* An OFREP request body into dr; OFREP_OK, or the error with *details. */
static ofrep_error_e parse_ofrep_body(apr_pool_t *p, const char *body, size_t len,
                                      decision_request_t *dr, const char **details)
{
    json_error_t jerr;
    json_t *context;

    memset(dr, 0, sizeof(*dr));
    dr->visitor_id = "";
    if (fast_parse_ofrep_body(p, body, len, dr) == 0)
        return take_identity(p, dr, details);
    memset(dr, 0, sizeof(*dr));
    dr->visitor_id = "";
    dr->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!dr->root) {
        *details = apr_psprintf(p, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                                jerr.column);
        return OFREP_PARSE_ERROR;
    }
    apr_pool_cleanup_register(p, dr->root, release_json, apr_pool_cleanup_null);
    if (!json_is_object(dr->root)) {
        *details = apr_psprintf(p, "the body must be an object, not %s", json_kind(dr->root));
        return OFREP_PARSE_ERROR;
    }
    context = json_object_get(dr->root, "context");
    if (!context || json_is_null(context)) {
        *details = "the request has no context: context." OFREP_TARGETING_KEY
                   " is the visitor id";
        return OFREP_TARGETING_KEY_MISSING;
    }
    if (!json_is_object(context)) {
        *details = apr_psprintf(p, "context must be an object, not %s", json_kind(context));
        return OFREP_INVALID_CONTEXT;
    }
    dr->context = context;
    context_from_json(p, context, dr);
    return take_identity(p, dr, details);
}

/* Whether every visitor falls in the campaign's bucket ranges. */
static int covers_everyone(const dc_campaign_t *c)
{
    for (unsigned bucket = 0; bucket < 100; bucket++)
        if (!dc_in_bucket_ranges(c, bucket))
            return 0;
    return 1;
}

/*
 * The OpenFeature reason of a served value: SPLIT when the visitor's hash
 * chose it (the group has more than one variation with traffic, or less than
 * 100% on its one, or the campaign's bucket ranges leave visitors out);
 * otherwise TARGETING_MATCH when the group's targeting selects visitors, and
 * STATIC when it takes everyone (fs_all_users or no targeting).
 */
static const char *ofrep_reason(const dc_decision_t *d)
{
    const dc_variation_group_t *g = d->group;
    size_t with_traffic = 0, full = 0;

    for (size_t i = 0; i < g->n_variations; i++) {
        with_traffic += g->variations[i].allocation > 0;
        full += g->variations[i].allocation >= 100;
    }
    if (with_traffic != 1 || full != 1 || !covers_everyone(d->campaign))
        return "SPLIT";
    for (size_t i = 0; i < g->n_groups; i++) {
        size_t everyone = 0;

        for (size_t j = 0; j < g->groups[i].n_targetings; j++)
            everyone += g->groups[i].targetings[j].key_kind == DC_KEY_ALL_USERS;
        if (everyone == g->groups[i].n_targetings)
            return "STATIC";
    }
    return g->n_groups ? "TARGETING_MATCH" : "STATIC";
}

/* One evaluation, reason the served value's (ofrep_reason of its decision): a null (or, with
 * exposeAllKeys, absent) value of the visitor's variation has no "value" and reason DEFAULT,
 * so that the caller's default applies. */
static void put_ofrep_flag(dc_buf_t *b, const merged_t *item, const char *reason)
{
    const dc_decision_t *d = item->decision;
    int has_value = item->flag && !item->flag->is_null;

    dc_buf_puts(b, "{\"key\":");
    dc_json_put_string(b, item->key, item->key_len);
    if (has_value) {
        dc_buf_puts(b, ",\"value\":");
        dc_buf_append(b, item->flag->json, item->flag->json_len);
    }
    dc_buf_puts(b, ",\"reason\":\"");
    dc_buf_puts(b, has_value ? reason : "DEFAULT");
    dc_buf_puts(b, "\",\"variant\":");
    dc_json_put_string(b, d->variation->id, d->variation->id_len);
    dc_buf_puts(b, ",\"metadata\":{");
    put_flag_metadata(b, d, 1);
    dc_buf_puts(b, "}}");
}

/* The winning entry of key, or NULL. */
static const merged_t *find_merged(const merger_t *m, const char *key, size_t key_len)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->items[i].key_len == key_len && memcmp(m->items[i].key, key, key_len) == 0 &&
            is_last_of_key(m, i))
            return &m->items[i];
    return NULL;
}

typedef struct {
    const char *key;
    size_t key_len;
} flag_key_t;

static int compare_flag_keys(const void *a, const void *b)
{
    const flag_key_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);

    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Every flag key of the configuration, sorted and unique; with only, whether that one is
 * there (*n 0 or 1). */
static flag_key_t *config_flag_keys(apr_pool_t *p, const dc_config_t *cfg, const char *only,
                                    size_t only_len, size_t *n)
{
    size_t cap = 0, k = 0;
    flag_key_t *keys;

    for (size_t c = 0; c < cfg->n_campaigns; c++)
        for (size_t g = 0; g < cfg->campaigns[c].n_groups; g++)
            cap += cfg->campaigns[c].groups[g].n_all_keys;
    keys = apr_palloc(p, (cap + 1) * sizeof(*keys));
    for (size_t c = 0; c < cfg->n_campaigns; c++) {
        for (size_t g = 0; g < cfg->campaigns[c].n_groups; g++) {
            const dc_variation_group_t *vg = &cfg->campaigns[c].groups[g];

            for (size_t i = 0; i < vg->n_all_keys; i++) {
                if (only && (vg->all_key_lens[i] != only_len ||
                             memcmp(vg->all_keys[i], only, only_len) != 0))
                    continue;
                keys[k].key = vg->all_keys[i];
                keys[k++].key_len = vg->all_key_lens[i];
            }
        }
    }
    if (k > 1)
        qsort(keys, k, sizeof(*keys), compare_flag_keys);
    *n = 0;
    for (size_t i = 0; i < k; i++)
        if (*n == 0 || compare_flag_keys(&keys[*n - 1], &keys[i]) != 0)
            keys[(*n)++] = keys[i];
    return keys;
}

/* A bulk answer's entity tag: the configuration's digest and a hash of the answer, so it is
 * the same for the same configuration and answer, on any server. */
static const char *ofrep_etag(apr_pool_t *p, const dc_config_t *cfg, const char *body,
                              size_t len)
{
    return apr_psprintf(p, "\"%s-%08x%08x\"", cfg->digest, dc_murmur3_32(body, len, 0),
                        dc_murmur3_32(body, len, 0x9e3779b9u));
}

/* Whether If-None-Match (a list of entity tags, weak or strong, or "*") names etag. */
static int etag_matches(const char *header, const char *etag)
{
    size_t etag_len = strlen(etag);

    while (header && *header) {
        header += strspn(header, " \t,");
        if (*header == '*')
            return 1;
        if (strncmp(header, "W/", 2) == 0)
            header += 2;
        if (*header == '"') {
            const char *end = strchr(header + 1, '"');

            if (!end)
                return 0;
            if ((size_t)(end + 1 - header) == etag_len && memcmp(header, etag, etag_len) == 0)
                return 1;
            header = end + 1;
        } else {
            header += strcspn(header, ",");
        }
    }
    return 0;
}

/* The bulk answer in b: 200 with its ETag, or 304 when If-None-Match names it. */
static void ofrep_respond_bulk(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                               dc_response_t *resp, const dc_config_t *cfg, dc_buf_t *b)
{
    const char *etag = ofrep_etag(p, cfg, b->data, b->len);

    apr_table_setn(resp->headers, "ETag", etag);
    if (svc->opt.cors_enabled)
        apr_table_setn(resp->headers, "Access-Control-Expose-Headers", "ETag");
    if (req->if_none_match && etag_matches(req->if_none_match, etag))
        respond(resp, 304, NULL, "", 0);
    else
        respond_buf(resp, 200, b);
}

/* Panic mode (every campaign off): each flag of the configuration is DISABLED, with no
 * value, so that the caller's default applies. key NULL: the bulk answer. */
static void ofrep_respond_panic(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                                dc_response_t *resp, const dc_config_t *cfg, const char *key,
                                size_t key_len)
{
    size_t n;
    flag_key_t *keys = config_flag_keys(p, cfg, key, key_len, &n);
    dc_buf_t b;

    if (key && n == 0) {
        ofrep_respond_failure(p, resp, 404, key, key_len, "FLAG_NOT_FOUND",
                              "no campaign of the configuration has this flag");
        return;
    }
    dc_buf_init(&b, p, 64 + n * 48);
    if (!key)
        dc_buf_puts(&b, "{\"flags\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            dc_buf_putc(&b, ',');
        dc_buf_puts(&b, "{\"key\":");
        dc_json_put_string(&b, keys[i].key, keys[i].key_len);
        dc_buf_puts(&b, ",\"reason\":\"DISABLED\",\"metadata\":{\"panic\":true}}");
    }
    if (key) {
        respond_buf(resp, 200, &b);
        return;
    }
    dc_buf_puts(&b, "]}");
    dc_buf_cstr(&b);
    ofrep_respond_bulk(svc, p, req, resp, cfg, &b);
}

/* POST .../ofrep/v1/evaluate/flags/{key} (key given) and .../ofrep/v1/evaluate/flags. */
static void handle_ofrep(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                         dc_response_t *resp, dc_store_t *store, dc_metrics_slot_t *slot,
                         dc_otel_span_t *span, const char *key, size_t key_len)
{
    decision_request_t dr;
    const char *details = NULL;
    ofrep_error_e error = parse_ofrep_body(p, req->body, req->body_len, &dr, &details);
    dc_config_t *cfg;
    decided_t d;
    dc_outcome_t shown;
    dc_decision_t one;
    merger_t m;
    dc_buf_t b;

    if (error) {
        ofrep_respond_failure(p, resp, 400, key, key_len, ofrep_error_codes[error], details);
        return;
    }
    /* One flag activates only the campaign that served it (below), not every one decided. */
    dr.trigger_hit = key ? 0 : svc->opt.ofrep_activate;
    cfg = begin_decision(svc, p, req, slot, &dr);
    if (!cfg) {
        ofrep_respond_general(p, resp, 503, NO_CONFIG_MESSAGE);
        return;
    }
    if (cfg->panic) {
        ofrep_respond_panic(svc, p, req, resp, cfg, key, key_len);
        return;
    }
    decide(svc, p, store, cfg, &dr, NULL, &d);
    if (span)
        span->campaigns = (int32_t)d.out.n_decisions;
    merge(p, &d.out, 1, &m);
    shown = d.out;
    if (key) {
        const merged_t *item = find_merged(&m, key, key_len);

        shown.n_decisions = 0;
        if (item) {
            one = *item->decision;
            shown.decisions = &one;
            shown.n_decisions = 1;
            dr.trigger_hit = svc->opt.ofrep_activate;
            dc_buf_init(&b, p, 256 + key_len + (item->flag ? item->flag->json_len : 0));
            put_ofrep_flag(&b, item, ofrep_reason(item->decision));
            respond_buf(resp, 200, &b);
        } else {
            size_t n;

            config_flag_keys(p, cfg, key, key_len, &n);
            ofrep_respond_failure(p, resp, 404, key, key_len, "FLAG_NOT_FOUND",
                                  n ? "no campaign serves this flag to this visitor"
                                    : "no campaign of the configuration has this flag");
        }
    } else {
        const char **reasons = apr_palloc(p, (d.out.n_decisions + 1) * sizeof(*reasons));
        int first = 1;

        /* once per decision, not per flag */
        for (size_t i = 0; i < d.out.n_decisions; i++)
            reasons[i] = ofrep_reason(&d.out.decisions[i]);
        dc_buf_init(&b, p, 64 + m.n * 256);
        dc_buf_puts(&b, "{\"flags\":[");
        for (size_t i = 0; i < m.n; i++) {
            if (!is_last_of_key(&m, i))
                continue;
            if (!first)
                dc_buf_putc(&b, ',');
            first = 0;
            put_ofrep_flag(&b, &m.items[i], reasons[m.items[i].decision - d.out.decisions]);
        }
        dc_buf_puts(&b, "]}");
        dc_buf_cstr(&b);
        ofrep_respond_bulk(svc, p, req, resp, cfg, &b);
    }
    end_decision(svc, p, req, store, slot, &dr, &d, &shown, 0);
    if (key && dr.trigger_hit && cfg->enabled_1v1t && !dc_store_is_none(store))
        save_activation(svc, p, store, dr.visitor_id, dr.visitor_id_len, one.group->id,
                        one.group->id_len, one.variation->id, one.variation->id_len);
}

/* ---- /v2/activate ------------------------------------------------------- */

typedef struct {
    const char *cid, *vid, *aid, *caid, *vaid;
    size_t vid_len, aid_len, caid_len, vaid_len;
    int64_t qt;
    int qa;
} activation_t;

static const char *const activation_fields[] = {"cid", "vid", "aid", "caid", "vaid",
                                                "cvid", "qt", "qa"};

/* One activation object; batch items may not carry "batch". */
static const char *parse_activation(apr_pool_t *p, const json_t *obj, activation_t *a)
{
    const char *key;
    json_t *value;

    memset(a, 0, sizeof(*a));
    if (!json_is_object(obj))
        return apr_psprintf(p, "expected an object, found %s", json_kind(obj));
    json_object_foreach((json_t *)obj, key, value)
    {
        size_t i;

        for (i = 0; i < sizeof(activation_fields) / sizeof(activation_fields[0]); i++)
            if (strcmp(key, activation_fields[i]) == 0)
                break;
        if (i == sizeof(activation_fields) / sizeof(activation_fields[0]))
            return apr_psprintf(p, "unknown field \"%s\"", key);
        if (json_is_null(value))
            continue;
        if (i <= 5) {
            if (!json_is_string(value))
                return apr_psprintf(p, "field \"%s\": expected a string, found %s", key,
                                    json_kind(value));
            switch (i) {
            case 0: a->cid = json_string_value(value); break;
            case 1: a->vid = json_string_value(value); a->vid_len = json_string_length(value); break;
            case 2: a->aid = json_string_value(value); a->aid_len = json_string_length(value); break;
            case 3: a->caid = json_string_value(value); a->caid_len = json_string_length(value); break;
            case 4: a->vaid = json_string_value(value); a->vaid_len = json_string_length(value); break;
            default: break; /* cvid: accepted, unused */
            }
        } else if (i == 6) {
            double qt = json_is_number(value) ? json_number_value(value) : 0.5;

            if (qt != (double)(int64_t)qt)
                return apr_psprintf(p, "field \"qt\": expected an integer, found %s",
                                    json_kind(value));
            a->qt = (int64_t)qt;
        } else {
            if (!json_is_boolean(value))
                return apr_psprintf(p, "field \"qa\": expected a bool, found %s",
                                    json_kind(value));
            a->qa = json_is_true(value);
        }
    }
    return NULL;
}

/* The field errors of one activation, or NULL when it is valid. */
static json_t *validate_activation(const dc_service_t *svc, const activation_t *a)
{
    json_t *errors = json_object();

    if (!a->caid || !*a->caid)
        json_object_set_new(errors, "caid", json_string("Field is mandatory."));
    if (!a->cid || !*a->cid)
        json_object_set_new(errors, "cid", json_string("Field is mandatory."));
    else if (svc->opt.env_id && strcmp(a->cid, svc->opt.env_id) != 0)
        json_object_set_new(errors, "cid", json_string("Invalid cid."));
    if (!a->vaid || !*a->vaid)
        json_object_set_new(errors, "vaid", json_string("Field is mandatory."));
    if (!a->vid || !*a->vid)
        json_object_set_new(errors, "vid", json_string("Field is mandatory."));
    if (json_object_size(errors) == 0) {
        json_decref(errors);
        return NULL;
    }
    return errors;
}

static void handle_activate(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                            dc_response_t *resp, dc_store_t *store, dc_metrics_slot_t *slot)
{
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    activation_t *items;
    size_t n = 0;
    const char *error;
    dc_config_t *cfg;
    dc_hit_t *hits;

    if (!root) {
        respond_error(p, resp, 400,
                      apr_psprintf(p, "invalid JSON: %s (line %d, column %d)", jerr.text,
                                   jerr.line, jerr.column));
        return;
    }
    apr_pool_cleanup_register(p, root, release_json, apr_pool_cleanup_null);
    if (!json_is_object(root)) {
        respond_error(p, resp, 400, "expected an activation object");
        return;
    }

    /* A single activation first; a body with "batch" is the batch form. */
    if (json_object_get(root, "batch")) {
        json_t *batch = json_object_get(root, "batch"), *cid = json_object_get(root, "cid");
        const char *key;
        json_t *value;

        json_object_foreach(root, key, value)
        {
            if (strcmp(key, "batch") != 0 && strcmp(key, "cid") != 0) {
                respond_error(p, resp, 400, apr_psprintf(p, "unknown field \"%s\"", key));
                return;
            }
        }
        if (!json_is_array(batch) || (cid && !json_is_string(cid) && !json_is_null(cid))) {
            respond_error(p, resp, 400, "\"batch\" must be an array and \"cid\" a string");
            return;
        }
        if (json_array_size(batch) == 0 || json_array_size(batch) > 1000) {
            respond_error(p, resp, 400, "\"batch\" must hold 1 to 1000 activations");
            return;
        }
        n = json_array_size(batch);
        items = apr_palloc(p, n * sizeof(*items));
        for (size_t i = 0; i < n; i++) {
            if ((error = parse_activation(p, json_array_get(batch, i), &items[i]))) {
                respond_error(p, resp, 400, apr_psprintf(p, "batch[%" APR_SIZE_T_FMT "]: %s", i, error));
                return;
            }
            items[i].cid = json_is_string(cid) ? json_string_value(cid) : NULL;
        }
    } else {
        n = 1;
        items = apr_palloc(p, sizeof(*items));
        if ((error = parse_activation(p, root, &items[0]))) {
            respond_error(p, resp, 400, error);
            return;
        }
    }

    for (size_t i = 0; i < n; i++) {
        json_t *errors = validate_activation(svc, &items[i]);

        if (errors) {
            /* The decision-api's shape, but as plain JSON rather than a JSON
             * string inside "message". */
            json_t *body = json_pack("{s:s,s:s,s:o}", "message", "activation is not valid",
                                     "status", "error", "errors", errors);
            dc_buf_t b;

            dc_buf_init(&b, p, 256);
            dc_json_put_value(&b, body);
            dc_buf_putc(&b, '\n');
            json_decref(body);
            respond_buf(resp, 400, &b);
            return;
        }
    }

    /* One visitor one test needs to know which "ab" test a visitor saw. */
    cfg = dc_slot_acquire(&svc->slot);
    if (cfg) {
        if (cfg->enabled_1v1t && !dc_store_is_none(store))
            for (size_t i = 0; i < n; i++)
                save_activation(svc, p, store, items[i].vid, items[i].vid_len, items[i].caid,
                                items[i].caid_len, items[i].vaid, items[i].vaid_len);
        dc_config_unref(cfg);
    }

    if (svc->hit_sink) {
        hits = apr_palloc(p, n * sizeof(*hits));
        for (size_t i = 0; i < n; i++) {
            const activation_t *a = &items[i];
            int has_aid = a->aid && a->aid_len;

            dc_hit_campaign(p, &hits[i], svc->opt.env_id ? svc->opt.env_id : a->cid,
                            has_aid ? a->aid : a->vid, has_aid ? a->aid_len : a->vid_len, a->vid,
                            a->vid_len, a->caid, a->caid_len, a->vaid, a->vaid_len, a->qa, a->qt,
                            ms_of(req->received));
        }
        if (sink_hits(svc, p, slot, hits, n) < 0) {
            respond_error(p, resp, 503,
                          "the activation could not be stored for delivery; retry later");
            return;
        }
    }
    respond(resp, 204, NULL, "", 0);
}

/* ---- routing ------------------------------------------------------------ */

/* The part of the path after its first "/v2/" segment, or NULL. */
static const char *after_v2(const char *path)
{
    const char *s = path;

    while ((s = strstr(s, "/v2")) != NULL) {
        if (s[3] == '/')
            return s + 4;
        if (s[3] == '\0')
            return "";
        s += 3;
    }
    return NULL;
}

/* Whether path ends with suffix (which starts with '/', so it is whole segments). */
static int path_ends_with(const char *path, const char *suffix)
{
    size_t plen = strlen(path), slen = suffix ? strlen(suffix) : 0;

    return slen > 0 && plen >= slen && strcmp(path + plen - slen, suffix) == 0;
}

/* The part of the path after its first "/ofrep/v1/" segment, or NULL. */
static const char *after_ofrep(const char *path)
{
    const char *s = strstr(path, "/ofrep/v1");

    if (!s || (s[9] != '/' && s[9] != '\0'))
        return NULL;
    return s[9] ? s + 10 : "";
}

#define NSESSIONS_PATH "/iserver/nsessions"

int dc_api_owns_path(const char *path)
{
    return after_v2(path) != NULL || after_ofrep(path) != NULL ||
           path_ends_with(path, NSESSIONS_PATH);
}

static int constant_time_equals(const char *a, const char *b)
{
    size_t alen = strlen(a), blen = strlen(b);
    unsigned char diff = (unsigned char)(alen != blen);

    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)(a[i < alen ? i : 0] ^ b[i]);
    return alen > 0 && diff == 0;
}

const char *dc_api_key_mode_describe(dc_api_key_mode_e mode)
{
    switch (mode) {
    case DC_API_KEY_OFF: return "not required";
    case DC_API_KEY_DECISIONS: return "required except on /v2/activate";
    default: return "required";
    }
}

/* The API key the request carries (X-API-Key, else Authorization: Bearer), or NULL. */
static const char *presented_key(const dc_request_t *req)
{
    const char *key = req->x_api_key;

    if (!key && req->authorization && strncasecmp(req->authorization, "Bearer ", 7) == 0) {
        key = req->authorization + 7;
        while (*key == ' ')
            key++;
    }
    return key;
}

int dc_api_authorized(const dc_service_t *svc, const dc_request_t *req)
{
    const char *key = presented_key(req);

    if (!svc->opt.require_api_key)
        return 1;
    if (!svc->opt.api_key || !*svc->opt.api_key)
        return 0;
    return key && constant_time_equals(key, svc->opt.api_key);
}

static void method_not_allowed(apr_pool_t *p, dc_response_t *resp)
{
    apr_table_setn(resp->headers, "Allow", "POST, OPTIONS");
    respond_error(p, resp, 405, "only POST http method is allowed");
}

typedef enum {
    R_NONE,
    R_CAMPAIGNS,
    R_CAMPAIGN,
    R_FLAGS,
    R_ACTIVATE,
    R_OFREP_FLAG,  /* .../ofrep/v1/evaluate/flags/{key} */
    R_OFREP_BULK,  /* .../ofrep/v1/evaluate/flags */
    R_OFREP_OTHER, /* any other .../ofrep/v1/...: 404 in OFREP's shape */
    /* read-only routes (GET/HEAD) */
    R_METRICS,
    R_PROMETHEUS,
    R_HEALTH,
    R_READY,
    R_NSESSIONS,
    R_SWAGGER
} route_e;

static dc_endpoint_e endpoint_of(route_e route)
{
    switch (route) {
    case R_CAMPAIGNS: return DC_EP_CAMPAIGNS;
    case R_CAMPAIGN: return DC_EP_CAMPAIGN;
    case R_FLAGS:
    case R_OFREP_FLAG:
    case R_OFREP_BULK: return DC_EP_FLAGS;
    case R_ACTIVATE: return DC_EP_ACTIVATE;
    case R_METRICS:
    case R_PROMETHEUS: return DC_EP_METRICS;
    default: return DC_EP_OTHER;
    }
}

static void route_request(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                          dc_response_t *resp, dc_store_t *store, dc_metrics_slot_t *slot,
                          dc_otel_span_t *span, route_e *routed)
{
    const char *path = req->path ? req->path : "";
    const char *ofrep = after_ofrep(path);
    const char *rest = ofrep ? NULL : after_v2(path);
    const char *slash, *ref = "";
    size_t ref_len;
    route_e route = R_NONE;
    int read_only, is_ofrep;

    if (ofrep) {
        route = R_OFREP_OTHER;
        if (strcmp(ofrep, "evaluate/flags") == 0)
            route = R_OFREP_BULK;
        else if (strncmp(ofrep, "evaluate/flags/", 15) == 0)
            route = R_OFREP_FLAG, ref = ofrep + 15;
    } else if (rest) {
        if (strcmp(rest, "campaigns") == 0)
            route = R_CAMPAIGNS;
        else if (strncmp(rest, "campaigns/", 10) == 0)
            route = R_CAMPAIGN, ref = rest + 10;
        else if (strcmp(rest, "flags") == 0)
            route = R_FLAGS;
        else if (strcmp(rest, "activate") == 0)
            route = R_ACTIVATE;
        else if (strcmp(rest, "metrics") == 0)
            route = R_METRICS;
        else if (strcmp(rest, "health") == 0)
            route = R_HEALTH;
        else if (strcmp(rest, "ready") == 0)
            route = R_READY;
        else if (strncmp(rest, "swagger", 7) == 0 && (rest[7] == '\0' || rest[7] == '/'))
            route = R_SWAGGER;
        else if ((slash = strchr(rest, '/')) != NULL && slash > rest &&
                 (strcmp(slash, "/campaigns") == 0 || strncmp(slash, "/campaigns/", 11) == 0 ||
                  strcmp(slash, "/flags") == 0)) {
            /* /v2/{envId}/campaigns: the Flagship cloud path SDKs call. */
            size_t env_len;
            char *env = url_decode(p, rest, (size_t)(slash - rest), 0, &env_len);

            if (strlen(env) != env_len || (svc->opt.env_id && strcmp(env, svc->opt.env_id) != 0)) {
                if (svc->opt.cors_enabled) {
                    apr_table_setn(resp->headers, "Access-Control-Allow-Origin", svc->opt.cors_origins);
                    apr_table_setn(resp->headers, "Access-Control-Allow-Headers", svc->opt.cors_headers);
                }
                if (strlen(env) != env_len)
                    respond_error(p, resp, 400, "the path holds an encoded NUL byte (%00)");
                else
                    respond_error(p, resp, 404,
                                  apr_psprintf(p, "environment %s is not served here", env));
                return;
            }
            if (strcmp(slash, "/campaigns") == 0)
                route = R_CAMPAIGNS;
            else if (strcmp(slash, "/flags") == 0)
                route = R_FLAGS;
            else
                route = R_CAMPAIGN, ref = slash + 11;
        }
    } else if (path_ends_with(path, NSESSIONS_PATH)) {
        route = R_NSESSIONS;
    } else if (path_ends_with(path, svc->opt.prometheus_path)) {
        route = R_PROMETHEUS;
    }
    *routed = route;
    if (route == R_NONE) {
        respond_error(p, resp, 404, "not found");
        return;
    }
    read_only = route >= R_METRICS;
    is_ofrep = route == R_OFREP_FLAG || route == R_OFREP_BULK || route == R_OFREP_OTHER;

    if (svc->opt.cors_enabled) {
        apr_table_setn(resp->headers, "Access-Control-Allow-Origin", svc->opt.cors_origins);
        apr_table_setn(resp->headers, "Access-Control-Allow-Headers", svc->opt.cors_headers);
        if (strcmp(req->method, "OPTIONS") == 0) {
            apr_table_setn(resp->headers, "Access-Control-Allow-Methods",
                           read_only ? "GET, HEAD, OPTIONS" : "POST, OPTIONS");
            apr_table_setn(resp->headers, "Access-Control-Max-Age", "600");
            respond(resp, 204, NULL, "", 0);
            return;
        }
    }
    if (read_only) {
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            apr_table_setn(resp->headers, "Allow", "GET, HEAD, OPTIONS");
            respond_error(p, resp, 405, "only GET and HEAD http methods are allowed");
            return;
        }
    } else if (strcmp(req->method, "POST") != 0) {
        if (is_ofrep) {
            apr_table_setn(resp->headers, "Allow", "POST, OPTIONS");
            ofrep_respond_general(p, resp, 405, "only POST http method is allowed");
        } else {
            method_not_allowed(p, resp);
        }
        return;
    }
    /* Liveness stays open: it says nothing but "this process answers", and
     * probes (load balancers, kubelet) often cannot send a key. Activations
     * may be open too (DC_API_KEY_DECISIONS): SDKs send them without one. */
    if (route != R_HEALTH &&
        !(route == R_ACTIVATE && svc->opt.require_api_key == DC_API_KEY_DECISIONS) &&
        !dc_api_authorized(svc, req)) {
        apr_table_setn(resp->headers, "WWW-Authenticate", "Bearer");
        if (!is_ofrep)
            respond_error(p, resp, 401,
                          "missing or invalid API key (X-API-Key or Authorization: Bearer)");
        else if (presented_key(req)) /* OFREP tells a wrong key (403) from none (401) */
            ofrep_respond_general(p, resp, 403, "invalid API key");
        else
            ofrep_respond_general(p, resp, 401,
                                  "missing API key (X-API-Key or Authorization: Bearer)");
        return;
    }
    if (req->body_too_large || req->body_len > svc->opt.max_body_size) {
        const char *m = apr_psprintf(p, "request body too large (limit %" APR_SIZE_T_FMT " bytes)",
                                     svc->opt.max_body_size);

        if (is_ofrep)
            ofrep_respond_general(p, resp, 413, m);
        else
            respond_error(p, resp, 413, m);
        return;
    }

    switch (route) {
    case R_CAMPAIGNS:
        handle_decision(svc, p, req, resp, store, slot, span, ROUTE_CAMPAIGNS, NULL, 0);
        break;
    case R_CAMPAIGN:
        ref = url_decode(p, ref, strlen(ref), 0, &ref_len);
        if (strlen(ref) != ref_len) {
            respond_error(p, resp, 400, "the path holds an encoded NUL byte (%00)");
            break;
        }
        handle_decision(svc, p, req, resp, store, slot, span, ROUTE_CAMPAIGN, ref, ref_len);
        break;
    case R_FLAGS:
        handle_decision(svc, p, req, resp, store, slot, span, ROUTE_FLAGS, NULL, 0);
        break;
    case R_ACTIVATE:
        handle_activate(svc, p, req, resp, store, slot);
        break;
    case R_OFREP_FLAG:
        ref = url_decode(p, ref, strlen(ref), 0, &ref_len);
        handle_ofrep(svc, p, req, resp, store, slot, span, ref, ref_len);
        break;
    case R_OFREP_BULK:
        handle_ofrep(svc, p, req, resp, store, slot, span, NULL, 0);
        break;
    case R_OFREP_OTHER:
        ofrep_respond_general(p, resp, 404, "not found: OFREP's routes are POST "
                                            "/ofrep/v1/evaluate/flags and "
                                            "/ofrep/v1/evaluate/flags/{key}");
        break;
    case R_METRICS:
        dc_status_respond_metrics(svc, p, resp);
        break;
    case R_PROMETHEUS:
        dc_status_respond_prometheus(svc, p, resp);
        break;
    case R_HEALTH:
        dc_status_respond_health(svc, p, resp);
        break;
    case R_READY:
        dc_status_respond_ready(svc, p, resp);
        break;
    case R_SWAGGER:
        /* the mount: what comes before "/v2/" */
        dc_openapi_respond(svc, p, req, apr_pstrndup(p, path, (apr_size_t)(rest - path) - 4),
                           rest + 7, resp);
        break;
    default:
        dc_status_respond_nsessions(svc, p, resp);
    }
}

/* http.route of a traced route (NULL: none to name, e.g. an unknown OFREP path). */
static const char *route_template(route_e route)
{
    switch (route) {
    case R_CAMPAIGNS: return "/v2/campaigns";
    case R_CAMPAIGN: return "/v2/campaigns/{id}";
    case R_FLAGS: return "/v2/flags";
    case R_ACTIVATE: return "/v2/activate";
    case R_OFREP_FLAG: return "/ofrep/v1/evaluate/flags/{key}";
    case R_OFREP_BULK: return "/ofrep/v1/evaluate/flags";
    default: return NULL;
    }
}

/* The server span of a traced request: what the request and its answer say,
 * copied into the fixed-size record (long paths and names are cut). */
static void end_span(dc_service_t *svc, const dc_request_t *req, const dc_response_t *resp,
                     route_e route, dc_otel_span_t *span, apr_time_t end)
{
    size_t n;

    span->end_ns = (int64_t)end * 1000;
    span->route = route_template(route);
    span->status = (int16_t)resp->status;
    n = strlen(req->method);
    n = n < sizeof(span->method) - 1 ? n : 0; /* an unknown long method: "_OTHER" */
    memcpy(span->method, req->method, n);
    span->method[n] = '\0';
#define COPY(dst, src)                                                                         \
    do {                                                                                       \
        size_t len_ = (src) ? strlen(src) : 0;                                                 \
        if (len_ >= sizeof(dst))                                                               \
            len_ = sizeof(dst) - 1;                                                            \
        memcpy((dst), (src) ? (src) : "", len_);                                               \
        (dst)[len_] = '\0';                                                                    \
    } while (0)
    COPY(span->path, req->path);
    COPY(span->host, req->server_name);
    COPY(span->env_id, svc->opt.env_id);
#undef COPY
    span->port = (uint16_t)req->server_port;
    if (!dc_store_is_none(svc->store))
        span->store_backend = (uint8_t)dc_backend_of(svc->store->provider->name);
    dc_otel_end(svc->otel, span);
}

void dc_api_handle(dc_service_t *svc, apr_pool_t *p, const dc_request_t *req, dc_response_t *resp)
{
    dc_metrics_slot_t *slot =
        req->metrics_slot ? req->metrics_slot : dc_metrics_slot(svc->metrics, 0);
    dc_metered_store_t metered;
    dc_otel_span_t span, *traced = NULL;
    apr_time_t start, end;
    route_e route = R_NONE;

    memset(resp, 0, sizeof(*resp));
    resp->headers = apr_table_make(p, 4);
    if (!svc->metrics && !svc->otel) {
        route_request(svc, p, req, resp, svc->store, NULL, NULL, &route);
        return;
    }
    /* The front end's arrival time when it gave one: one clock read less. */
    start = req->received ? req->received : apr_time_now();
    if (svc->otel && dc_otel_begin(svc->otel, &span, req->traceparent, req->tracestate, start))
        traced = &span;
    route_request(svc, p, req, resp,
                  dc_metrics_meter_store(&metered, svc->store, svc->metrics, slot, svc->otel,
                                         traced),
                  slot, traced, &route);
    end = apr_time_now();
    if (slot)
        dc_metrics_observe_request(slot, endpoint_of(route), resp->status, end - start, end);
    /* Spans for the decision API and OFREP only: probes and scrapes would drown the traces. */
    if (traced && route >= R_CAMPAIGNS && route <= R_OFREP_OTHER)
        end_span(svc, req, resp, route, traced, end);
}

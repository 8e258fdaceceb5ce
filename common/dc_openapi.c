/*
 * The API described (see dc_openapi.h): common/openapi.yaml, compiled in,
 * turned into JSON with libyaml on each request, and rendered as a reference
 * page. The page is made for reading without a script: a table of contents,
 * then each operation (parameters, body, answers with their schemas and
 * examples), then each schema, its properties in a table and its JSON Schema
 * in a <details> block. Every string from the document goes through
 * dc_html_put(); the one caller-controlled value in any answer, the server
 * URL of doc.json, is checked character by character first.
 */
#include "dc_openapi.h"
#include "dc_log.h"

#include <apr_strings.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* ---- YAML → JSON --------------------------------------------------------- */

#define YAML_MAX_DEPTH 64

static int plain_is(const yaml_node_t *n, const char *const *words)
{
    for (; *words; words++)
        if (n->data.scalar.length == strlen(*words) &&
            memcmp(n->data.scalar.value, *words, n->data.scalar.length) == 0)
            return 1;
    return 0;
}

/* A scalar by YAML 1.2's core schema: quoted scalars are strings. */
static json_t *yaml_scalar(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    const char *text = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;

    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        char *end;

        if (plain_is(n, nulls))
            return json_null();
        if (plain_is(n, trues))
            return json_true();
        if (plain_is(n, falses))
            return json_false();
        if (len > 0 && strspn(text + (text[0] == '-' || text[0] == '+'), "0123456789") ==
                           len - (text[0] == '-' || text[0] == '+') &&
            len > (size_t)(text[0] == '-' || text[0] == '+')) {
            long long v;

            errno = 0;
            v = strtoll(text, &end, 10);
            if (errno == 0 && *end == '\0')
                return json_integer(v);
        }
        if (len > 0 && strspn(text, "0123456789+-.eE") == len && strpbrk(text, "0123456789")) {
            double d;

            errno = 0;
            d = strtod(text, &end);
            if (errno == 0 && *end == '\0' && isfinite(d))
                return json_real(d);
        }
    }
    return json_stringn(text, len);
}

static json_t *yaml_node_json(yaml_document_t *doc, yaml_node_t *n, int depth, char *err,
                              size_t err_size)
{
    json_t *out = NULL;

    if (!n || depth > YAML_MAX_DEPTH) {
        snprintf(err, err_size, "nested deeper than %d levels", YAML_MAX_DEPTH);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (!(out = yaml_scalar(n)))
            snprintf(err, err_size, "line %lu: not UTF-8", (unsigned long)n->start_mark.line + 1);
        return out;
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++) {
            json_t *item = yaml_node_json(doc, yaml_document_get_node(doc, *i), depth + 1, err,
                                          err_size);

            if (!item || json_array_append_new(out, item) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start;
             pair < n->data.mapping.pairs.top; pair++) {
            yaml_node_t *k = yaml_document_get_node(doc, pair->key);
            json_t *value;

            if (!k || k->type != YAML_SCALAR_NODE) {
                snprintf(err, err_size, "line %lu: a mapping key that is not a scalar",
                         k ? (unsigned long)k->start_mark.line + 1 : 0UL);
                json_decref(out);
                return NULL;
            }
            value = yaml_node_json(doc, yaml_document_get_node(doc, pair->value), depth + 1, err,
                                   err_size);
            if (!value) {
                json_decref(out);
                return NULL;
            }
            /* json_object_set_new takes value even when it fails (a key not UTF-8); a key
             * with a NUL is refused before (json_object_setn_new is jansson 2.14, we ask 2.11) */
            if (strlen((const char *)k->data.scalar.value) != k->data.scalar.length) {
                json_decref(value);
                value = NULL;
            }
            if (!value || json_object_set_new(out, (const char *)k->data.scalar.value, value) < 0) {
                snprintf(err, err_size, "line %lu: a key that is not UTF-8 text",
                         (unsigned long)k->start_mark.line + 1);
                json_decref(out);
                return NULL;
            }
        }
        return out;
    default:
        snprintf(err, err_size, "an empty node");
        return NULL;
    }
}

json_t *dc_yaml_to_json(const char *text, size_t len, char *err, size_t err_size)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    json_t *out = NULL;

    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, err_size, "line %lu: %s", (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "not YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    out = yaml_node_json(&doc, yaml_document_get_root_node(&doc), 0, err, err_size);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}

/* ---- the document -------------------------------------------------------- */

json_t *dc_openapi_document(const dc_service_t *svc, const char *server_url)
{
    char err[160];
    json_t *doc = dc_yaml_to_json((const char *)dc_openapi_yaml, dc_openapi_yaml_len, err,
                                  sizeof(err));
    json_t *paths, *prometheus;

    if (!doc || !json_is_object(doc)) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10901) "openapi: the compiled-in document does not parse: "
                                            "%s",
               doc ? "not a mapping" : err);
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "servers",
                        json_pack("[{s:s,s:s}]", "url", server_url, "description",
                                  "where this document was fetched"));
    paths = json_object_get(doc, "paths");
    prometheus = json_incref(json_object_get(paths, "/metrics"));
    json_object_del(paths, "/metrics");
    if (prometheus && svc->opt.prometheus_path && *svc->opt.prometheus_path == '/' &&
        !json_object_get(paths, svc->opt.prometheus_path))
        json_object_set(paths, svc->opt.prometheus_path, prometheus);
    json_decref(prometheus);
    return doc;
}

#define URL_ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* A Host header we may print: host name or IP literal, optional port. */
static int host_is_plain(const char *host)
{
    size_t n = host ? strlen(host) : 0;

    return n > 0 && n < 256 && strspn(host, URL_ALNUM ".-:[]_") == n;
}

/* A mount we may print: the path as sent, in the characters a URL path may hold. */
static int path_is_plain(const char *path)
{
    return strspn(path, URL_ALNUM "-._~!$&'()*+,;=:@%/") == strlen(path);
}

static const char *server_url(apr_pool_t *p, const dc_request_t *req, const char *mount)
{
    if (!path_is_plain(mount))
        mount = "";
    if (host_is_plain(req->host))
        return apr_pstrcat(p, req->https ? "https://" : "http://", req->host, mount, NULL);
    return *mount ? mount : "/";
}

int dc_openapi_ui_url_valid(const char *v)
{
    if (!v || !(v[0] == '/' || strncasecmp(v, "http://", 7) == 0 ||
                strncasecmp(v, "https://", 8) == 0))
        return 0;
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || strchr("\"'<>\\`", *c))
            return 0;
    return 1;
}

/* ---- the page ------------------------------------------------------------ */

#define OPENAPI_CSP                                                                           \
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " \
    "frame-ancestors 'self'"

static const char page_css[] =
    "body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",sans-serif;color:#1d2733;"
    "margin:0 auto;max-width:72em;padding:0 1.5em 4em}\n"
    "h1{margin:1em 0 .2em}h2{margin-top:2em;border-bottom:2px solid #d5dde6;padding-bottom:.2em}\n"
    "h3{margin:1.6em 0 .4em}h4{margin:1em 0 .3em;font-size:1em}\n"
    ".desc{white-space:pre-line}code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}\n"
    "code{background:#eef2f6;padding:0 .25em;border-radius:3px}\n"
    "pre{background:#f4f6f8;border:1px solid #dde3ea;padding:.6em;overflow:auto}\n"
    "table{border-collapse:collapse;margin:.4em 0;width:100%}\n"
    "th,td{border:1px solid #dde3ea;padding:.3em .5em;text-align:left;vertical-align:top}\n"
    "th{background:#f4f6f8}\n"
    ".op{border:1px solid #cfd8e2;border-radius:6px;padding:0 1em .6em;margin:1.2em 0}\n"
    ".method{display:inline-block;min-width:4.5em;text-align:center;border-radius:4px;"
    "color:#fff;font-weight:600;padding:.1em .4em;margin-right:.4em;font-size:.9em}\n"
    ".post{background:#2f7d4a}.get{background:#2563a8}.options{background:#6b7280}\n"
    ".head{background:#4b5563}.put,.patch{background:#a86b25}.delete{background:#b3342d}\n"
    ".toc li{margin:.15em 0;list-style:none}.toc{padding-left:0}\n"
    ".status{font-weight:600}.req{color:#b3342d}\n";

static void put_html_str(dc_buf_t *b, const char *s)
{
    if (s)
        dc_html_put(b, s, strlen(s));
}

/* A description: HTML-escaped, `code` spans shown as code, line breaks kept by the CSS. */
static void put_text(dc_buf_t *b, const char *s)
{
    const char *tick;

    while (s && (tick = strchr(s, '`')) != NULL) {
        const char *close = strchr(tick + 1, '`');

        if (!close)
            break;
        dc_html_put(b, s, (size_t)(tick - s));
        dc_buf_puts(b, "<code>");
        dc_html_put(b, tick + 1, (size_t)(close - tick - 1));
        dc_buf_puts(b, "</code>");
        s = close + 1;
    }
    put_html_str(b, s);
}

static void put_description(dc_buf_t *b, const json_t *obj)
{
    const char *d = json_string_value(json_object_get(obj, "description"));

    if (d) {
        dc_buf_puts(b, "<p class=\"desc\">");
        put_text(b, d);
        dc_buf_puts(b, "</p>\n");
    }
}

/* An id attribute from arbitrary text: letters and digits kept, the rest '-'. */
static void put_anchor(dc_buf_t *b, const char *prefix, const char *a, const char *c)
{
    dc_buf_puts(b, prefix);
    for (const char *parts[2] = {a, c}, **part = parts; part < parts + 2; part++) {
        if (!*part)
            continue;
        if (part > parts)
            dc_buf_putc(b, '-');
        for (const char *s = *part; *s; s++)
            dc_buf_putc(b, ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                            (*s >= '0' && *s <= '9'))
                               ? *s
                               : '-');
    }
}

static void put_pretty_json(dc_buf_t *b, const json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);

    dc_buf_puts(b, "<pre>");
    put_html_str(b, text);
    dc_buf_puts(b, "</pre>\n");
    free(text);
}

/* "#/components/<kind>/<name>" → the object there (borrowed), or NULL. */
static const json_t *resolve(const json_t *doc, const json_t *obj)
{
    const char *ref = json_string_value(json_object_get(obj, "$ref"));
    const char *kind, *slash;
    char section[32];

    if (!ref)
        return obj;
    if (strncmp(ref, "#/components/", 13) != 0)
        return NULL;
    kind = ref + 13;
    if (!(slash = strchr(kind, '/')) || (size_t)(slash - kind) >= sizeof(section))
        return NULL;
    memcpy(section, kind, (size_t)(slash - kind));
    section[slash - kind] = '\0';
    return json_object_get(json_object_get(json_object_get(doc, "components"), section),
                           slash + 1);
}

static const char *ref_name(const json_t *schema)
{
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    const char *slash = ref ? strrchr(ref, '/') : NULL;

    return slash ? slash + 1 : NULL;
}

/* A schema in a few words: its $ref as a link, type(s), enum, const, alternatives. */
static void put_schema_summary(dc_buf_t *b, const json_t *schema, int depth)
{
    const json_t *type = json_object_get(schema, "type"), *v;
    const char *name = ref_name(schema), *joiner = NULL;
    size_t i;

    if (!json_is_object(schema) || depth > 6) {
        dc_buf_puts(b, "any");
        return;
    }
    if (name) {
        dc_buf_puts(b, "<a href=\"#");
        put_anchor(b, "schema-", name, NULL);
        dc_buf_puts(b, "\">");
        put_html_str(b, name);
        dc_buf_puts(b, "</a>");
        return;
    }
    if ((v = json_object_get(schema, "const"))) {
        char *text = json_dumps(v, JSON_ENCODE_ANY);

        dc_buf_puts(b, "<code>");
        put_html_str(b, text);
        dc_buf_puts(b, "</code>");
        free(text);
        return;
    }
    if ((v = json_object_get(schema, "anyOf")) || ((v = json_object_get(schema, "oneOf")))) {
        joiner = json_object_get(schema, "anyOf") ? " or " : " or (exactly one) ";
    } else if ((v = json_object_get(schema, "allOf")) && !type) {
        joiner = " and ";
    }
    if (joiner && json_is_array(v)) {
        json_array_foreach(v, i, type)
        {
            if (i)
                dc_buf_puts(b, joiner);
            put_schema_summary(b, type, depth + 1);
        }
        return;
    }
    if (json_is_array(type)) {
        json_array_foreach(type, i, v)
        {
            if (i)
                dc_buf_puts(b, " | ");
            put_html_str(b, json_string_value(v));
        }
    } else if (json_is_string(type)) {
        put_html_str(b, json_string_value(type));
    } else {
        dc_buf_puts(b, "any");
    }
    if ((v = json_object_get(schema, "items"))) {
        dc_buf_puts(b, " of ");
        put_schema_summary(b, v, depth + 1);
    }
    if ((v = json_object_get(schema, "additionalProperties")) && json_is_object(v) &&
        !json_object_get(schema, "properties")) {
        dc_buf_puts(b, " of ");
        put_schema_summary(b, v, depth + 1);
    }
    if ((v = json_object_get(schema, "enum"))) {
        dc_buf_puts(b, ", one of ");
        json_array_foreach(v, i, type)
        {
            char *text = json_dumps(type, JSON_ENCODE_ANY);

            dc_buf_puts(b, i ? ", <code>" : "<code>");
            put_html_str(b, text);
            dc_buf_puts(b, "</code>");
            free(text);
        }
    }
    if ((v = json_object_get(schema, "minLength")))
        dc_buf_printf(b, ", at least %lld character(s)", (long long)json_integer_value(v));
    if ((v = json_object_get(schema, "maxItems")))
        dc_buf_printf(b, ", at most %lld item(s)", (long long)json_integer_value(v));
}

static int is_required(const json_t *schema, const char *name)
{
    size_t i;
    const json_t *v;

    json_array_foreach(json_object_get(schema, "required"), i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return 1;
    return 0;
}

static void put_properties(dc_buf_t *b, const json_t *schema)
{
    const json_t *props = json_object_get(schema, "properties"), *v;
    const char *key;

    if (!json_is_object(props) || json_object_size(props) == 0)
        return;
    dc_buf_puts(b, "<table><tr><th>property</th><th>type</th><th>description</th></tr>\n");
    json_object_foreach((json_t *)props, key, v)
    {
        dc_buf_puts(b, "<tr><td><code>");
        put_html_str(b, key);
        dc_buf_puts(b, "</code>");
        if (is_required(schema, key))
            dc_buf_puts(b, " <span class=\"req\">required</span>");
        dc_buf_puts(b, "</td><td>");
        put_schema_summary(b, v, 0);
        dc_buf_puts(b, "</td><td>");
        put_text(b, json_string_value(json_object_get(v, "description")));
        dc_buf_puts(b, "</td></tr>\n");
    }
    dc_buf_puts(b, "</table>\n");
}

static void put_content(dc_buf_t *b, const json_t *content)
{
    const char *type;
    const json_t *media, *v;

    json_object_foreach((json_t *)content, type, media)
    {
        const char *name;

        dc_buf_puts(b, "<p><code>");
        put_html_str(b, type);
        dc_buf_puts(b, "</code>: ");
        put_schema_summary(b, json_object_get(media, "schema"), 0);
        dc_buf_puts(b, "</p>\n");
        if ((v = json_object_get(media, "example"))) {
            dc_buf_puts(b, "<h4>Example</h4>\n");
            put_pretty_json(b, v);
        }
        json_object_foreach((json_t *)json_object_get(media, "examples"), name, v)
        {
            dc_buf_puts(b, "<h4>Example: ");
            put_html_str(b, name);
            if (json_object_get(v, "summary")) {
                dc_buf_puts(b, " (");
                put_text(b, json_string_value(json_object_get(v, "summary")));
                dc_buf_putc(b, ')');
            }
            dc_buf_puts(b, "</h4>\n");
            put_pretty_json(b, json_object_get(v, "value"));
        }
    }
}

static void put_parameters(dc_buf_t *b, const json_t *doc, const json_t *params)
{
    size_t i;
    const json_t *param;

    if (!json_is_array(params) || json_array_size(params) == 0)
        return;
    dc_buf_puts(b, "<h4>Parameters</h4>\n<table><tr><th>name</th><th>in</th><th>type</th>"
                   "<th>description</th></tr>\n");
    json_array_foreach(params, i, param)
    {
        const json_t *p = resolve(doc, param);

        dc_buf_puts(b, "<tr><td><code>");
        put_html_str(b, json_string_value(json_object_get(p, "name")));
        dc_buf_puts(b, "</code>");
        if (json_is_true(json_object_get(p, "required")))
            dc_buf_puts(b, " <span class=\"req\">required</span>");
        dc_buf_puts(b, "</td><td>");
        put_html_str(b, json_string_value(json_object_get(p, "in")));
        dc_buf_puts(b, "</td><td>");
        put_schema_summary(b, json_object_get(p, "schema"), 0);
        dc_buf_puts(b, "</td><td>");
        put_text(b, json_string_value(json_object_get(p, "description")));
        dc_buf_puts(b, "</td></tr>\n");
    }
    dc_buf_puts(b, "</table>\n");
}

static void put_responses(dc_buf_t *b, const json_t *doc, const json_t *responses)
{
    const char *status;
    const json_t *r;

    dc_buf_puts(b, "<h4>Responses</h4>\n<table><tr><th>status</th><th>description</th></tr>\n");
    json_object_foreach((json_t *)responses, status, r)
    {
        const json_t *resp = resolve(doc, r), *headers = json_object_get(resp, "headers"), *h;
        const char *name;

        dc_buf_puts(b, "<tr><td class=\"status\">");
        put_html_str(b, status);
        dc_buf_puts(b, "</td><td><p class=\"desc\">");
        put_text(b, json_string_value(json_object_get(resp, "description")));
        dc_buf_puts(b, "</p>\n");
        put_content(b, json_object_get(resp, "content"));
        if (json_object_size(headers)) {
            dc_buf_puts(b, "<p>Headers: ");
            json_object_foreach((json_t *)headers, name, h)
            {
                const json_t *header = resolve(doc, h);

                dc_buf_puts(b, "<code>");
                put_html_str(b, name);
                dc_buf_puts(b, "</code>");
                if (json_is_true(json_object_get(header, "required")))
                    dc_buf_puts(b, " (always)");
                dc_buf_puts(b, " ");
            }
            dc_buf_puts(b, "</p>\n");
        }
        dc_buf_puts(b, "</td></tr>\n");
    }
    dc_buf_puts(b, "</table>\n");
}

static const char *const methods[] = {"get", "head", "post", "put", "patch", "delete", "options"};

static void upper(dc_buf_t *b, const char *s)
{
    for (; *s; s++)
        dc_buf_putc(b, (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s));
}

static void put_operation(dc_buf_t *b, const json_t *doc, const char *path, const char *method,
                          const json_t *item, const json_t *op)
{
    const json_t *security = json_object_get(op, "security"), *body;

    dc_buf_puts(b, "<section class=\"op\" id=\"");
    put_anchor(b, "op-", method, path);
    dc_buf_printf(b, "\">\n<h3><span class=\"method %s\">", method);
    upper(b, method);
    dc_buf_puts(b, "</span> <code>");
    put_html_str(b, path);
    dc_buf_puts(b, "</code></h3>\n<p><strong>");
    put_text(b, json_string_value(json_object_get(op, "summary")));
    dc_buf_puts(b, "</strong></p>\n");
    put_description(b, op);
    if (json_is_array(security) && json_array_size(security) == 0)
        dc_buf_puts(b, "<p>No API key needed.</p>\n");
    else
        dc_buf_puts(b, "<p>API key (<code>X-API-Key</code> or <code>Authorization: Bearer</code>) "
                       "when the server requires one.</p>\n");
    put_parameters(b, doc, json_object_get(item, "parameters"));
    put_parameters(b, doc, json_object_get(op, "parameters"));
    if ((body = resolve(doc, json_object_get(op, "requestBody")))) {
        dc_buf_puts(b, "<h4>Request body</h4>\n");
        put_description(b, body);
        put_content(b, json_object_get(body, "content"));
    }
    put_responses(b, doc, json_object_get(op, "responses"));
    dc_buf_puts(b, "</section>\n");
}

void dc_openapi_render_page(dc_buf_t *b, const json_t *doc)
{
    const json_t *info = json_object_get(doc, "info"), *paths = json_object_get(doc, "paths");
    const json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    const json_t *item, *schema;
    const char *path, *name;

    dc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<title>");
    put_html_str(b, json_string_value(json_object_get(info, "title")));
    dc_buf_puts(b, "</title>\n<link rel=\"stylesheet\" href=\"reference.css\">\n</head>\n<body>\n"
                   "<header>\n<h1>");
    put_html_str(b, json_string_value(json_object_get(info, "title")));
    dc_buf_puts(b, "</h1>\n<p>Version ");
    put_html_str(b, json_string_value(json_object_get(info, "version")));
    dc_buf_puts(b, " &middot; OpenAPI ");
    put_html_str(b, json_string_value(json_object_get(doc, "openapi")));
    dc_buf_puts(b, " &middot; <a href=\"doc.json\">doc.json</a></p>\n");
    put_description(b, info);
    dc_buf_puts(b, "</header>\n<nav>\n<h2>Routes</h2>\n<ul class=\"toc\" id=\"routes\">\n");
    json_object_foreach((json_t *)paths, path, item)
    {
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            const json_t *op = json_object_get(item, methods[m]);

            if (!op)
                continue;
            dc_buf_puts(b, "<li><a href=\"#");
            put_anchor(b, "op-", methods[m], path);
            dc_buf_printf(b, "\"><span class=\"method %s\">", methods[m]);
            upper(b, methods[m]);
            dc_buf_puts(b, "</span> <code>");
            put_html_str(b, path);
            dc_buf_puts(b, "</code></a> ");
            put_text(b, json_string_value(json_object_get(op, "summary")));
            dc_buf_puts(b, "</li>\n");
        }
    }
    dc_buf_puts(b, "</ul>\n</nav>\n<main>\n<h2>Operations</h2>\n");
    json_object_foreach((json_t *)paths, path, item)
    {
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            const json_t *op = json_object_get(item, methods[m]);

            if (op)
                put_operation(b, doc, path, methods[m], item, op);
        }
    }
    dc_buf_puts(b, "<h2>Schemas</h2>\n");
    json_object_foreach((json_t *)schemas, name, schema)
    {
        dc_buf_puts(b, "<section id=\"");
        put_anchor(b, "schema-", name, NULL);
        dc_buf_puts(b, "\">\n<h3>");
        put_html_str(b, name);
        dc_buf_puts(b, "</h3>\n<p>");
        put_schema_summary(b, schema, 1); /* depth 1: a $ref-free summary of the schema itself */
        dc_buf_puts(b, "</p>\n");
        put_description(b, schema);
        put_properties(b, schema);
        dc_buf_puts(b, "<details><summary>JSON Schema</summary>\n");
        put_pretty_json(b, schema);
        dc_buf_puts(b, "</details>\n</section>\n");
    }
    dc_buf_puts(b, "</main>\n</body>\n</html>\n");
}

/* ---- the routes ----------------------------------------------------------- */

static void answer(dc_response_t *resp, int status, const char *type, dc_buf_t *b)
{
    dc_buf_cstr(b);
    resp->status = status;
    resp->content_type = type;
    resp->body = b->data;
    resp->body_len = b->len;
}

static apr_status_t release_json(void *data)
{
    json_decref(data);
    return APR_SUCCESS;
}

static void swagger_ui_page(const dc_service_t *svc, dc_buf_t *b)
{
    const char *ui = svc->opt.swagger_ui;
    size_t n = strlen(ui);

    while (n > 0 && ui[n - 1] == '/')
        n--;
    dc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<title>API reference</title>\n<link rel=\"stylesheet\" href=\"");
    dc_html_put(b, ui, n);
    dc_buf_puts(b, "/swagger-ui.css\">\n</head>\n<body>\n<div id=\"swagger-ui\"></div>\n"
                   "<script src=\"");
    dc_html_put(b, ui, n);
    dc_buf_puts(b, "/swagger-ui-bundle.js\"></script>\n"
                   "<script src=\"swagger-initializer.js\"></script>\n</body>\n</html>\n");
}

void dc_openapi_respond(const dc_service_t *svc, apr_pool_t *p, const dc_request_t *req,
                        const char *mount, const char *sub, dc_response_t *resp)
{
    dc_buf_t b;
    json_t *doc;

    if (strcmp(sub, "") == 0 || strcmp(sub, "/") == 0) {
        /* the path as sent, so that the mount and any prefix survive */
        const char *path = req->path ? req->path : "";
        size_t keep = strlen(path) - strlen(sub);

        if (path_is_plain(path))
            apr_table_setn(resp->headers, "Location",
                           apr_pstrcat(p, apr_pstrndup(p, path, keep), "/index.html", NULL));
        else /* relative to the path as sent, which we would rather not repeat */
            apr_table_setn(resp->headers, "Location", *sub ? "index.html" : "swagger/index.html");
        dc_api_respond_error(p, resp, 301, "moved to index.html");
        return;
    }
    if (strcmp(sub, "/reference.css") == 0) {
        resp->status = 200;
        resp->content_type = "text/css; charset=utf-8";
        resp->body = page_css;
        resp->body_len = sizeof(page_css) - 1;
        return;
    }
    if (strcmp(sub, "/swagger-initializer.js") == 0) {
        static const char init[] =
            "window.addEventListener(\"load\", function () {\n"
            "  window.ui = SwaggerUIBundle({url: \"doc.json\", dom_id: \"#swagger-ui\"});\n"
            "});\n";

        if (!svc->opt.swagger_ui || !*svc->opt.swagger_ui) {
            dc_api_respond_error(p, resp, 404, "not found");
            return;
        }
        resp->status = 200;
        resp->content_type = "text/javascript; charset=utf-8";
        resp->body = init;
        resp->body_len = sizeof(init) - 1;
        return;
    }
    if (strcmp(sub, "/doc.json") != 0 && strcmp(sub, "/index.html") != 0) {
        dc_api_respond_error(p, resp, 404, "not found");
        return;
    }
    if (strcmp(sub, "/index.html") == 0 && svc->opt.swagger_ui && *svc->opt.swagger_ui) {
        dc_buf_init(&b, p, 1024);
        swagger_ui_page(svc, &b);
        answer(resp, 200, "text/html; charset=utf-8", &b);
        return;
    }
    doc = dc_openapi_document(svc, server_url(p, req, mount));
    if (!doc) {
        dc_api_respond_error(p, resp, 500,
                             "the API description could not be read; see the server log");
        return;
    }
    apr_pool_cleanup_register(p, doc, release_json, apr_pool_cleanup_null);
    dc_buf_init(&b, p, 192 * 1024);
    if (strcmp(sub, "/doc.json") == 0) {
        /* jansson keeps the document's order (paths as written), which readers expect */
        char *text = json_dumps(doc, JSON_COMPACT);

        if (text) {
            dc_buf_puts(&b, text);
            free(text);
        }
        dc_buf_putc(&b, '\n');
        answer(resp, 200, "application/json", &b);
        return;
    }
    dc_openapi_render_page(&b, doc);
    apr_table_setn(resp->headers, "Content-Security-Policy", OPENAPI_CSP);
    answer(resp, 200, "text/html; charset=utf-8", &b);
}

#include "dc_uri.h"

#include <ctype.h>
#include <string.h>

static int hex_value(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

char *dc_uri_percent_decode(apr_pool_t *p, const char *s, size_t len)
{
    char *out = apr_palloc(p, len + 1), *o = out;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int v;

            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return NULL;
            v = hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]);
            if (v == 0)
                return NULL;
            *o++ = (char)v;
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

int dc_uri_parse_long(const char *s, size_t len, long min, long max, long *out)
{
    long v = 0;

    if (len == 0 || len > 12)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int dc_uri_next_option(const char **query, dc_uri_option_t *o)
{
    const char *q = *query, *amp, *eq;
    size_t len;

    if (!q || !*q)
        return 0;
    amp = strchr(q, '&');
    len = amp ? (size_t)(amp - q) : strlen(q);
    *query = amp ? amp + 1 : NULL;
    o->name = q;
    eq = memchr(q, '=', len);
    if (!eq) {
        o->name_len = len;
        o->value = NULL;
        o->value_len = 0;
        return -1;
    }
    o->name_len = (size_t)(eq - q);
    o->value = eq + 1;
    o->value_len = len - o->name_len - 1;
    return 1;
}

int dc_uri_option_is(const dc_uri_option_t *o, const char *name)
{
    return o->name_len == strlen(name) && strncmp(o->name, name, o->name_len) == 0;
}

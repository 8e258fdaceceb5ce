/*
 * dc_buf: an append-only byte buffer in an APR pool, and the JSON writing
 * helpers built on it. Responses are written straight into one buffer from
 * pre-rendered pieces of the config, instead of building a jansson tree per
 * request and dumping it.
 */
#ifndef DC_BUF_H
#define DC_BUF_H

#include <apr_pools.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    apr_pool_t *pool;
    char *data;
    size_t len;
    size_t cap;
} dc_buf_t;

void dc_buf_init(dc_buf_t *b, apr_pool_t *p, size_t initial);
/* A bigger copy of the data (what dc_buf_reserve calls; not inline). */
void dc_buf_grow(dc_buf_t *b, size_t need);

/* Room for extra more bytes and a NUL. The appends are inline: a response or an
 * event is many small pieces, most of them literals of a known length. */
static inline void dc_buf_reserve(dc_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (need > b->cap)
        dc_buf_grow(b, need);
}

static inline void dc_buf_append(dc_buf_t *b, const void *data, size_t len)
{
    dc_buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static inline void dc_buf_putc(dc_buf_t *b, char c)
{
    dc_buf_reserve(b, 1);
    b->data[b->len++] = c;
}

static inline void dc_buf_puts(dc_buf_t *b, const char *s)
{
    dc_buf_append(b, s, strlen(s));
}

void dc_buf_printf(dc_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A decimal integer, without printf's parsing of a format (hot paths). */
void dc_buf_put_i64(dc_buf_t *b, int64_t v);
/* The same into out (at least 20 bytes); the length written, no NUL. */
size_t dc_fmt_u64(char *out, uint64_t v);
size_t dc_fmt_i64(char *out, int64_t v);
/* printf into p with the C library's formats (apr_psprintf lacks %llu and friends). */
const char *dc_pstrfmt(apr_pool_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file of at most max bytes into p, NUL-terminated; 0, or -1 with
 * errno set (EFBIG when larger than max). */
int dc_read_file(apr_pool_t *p, const char *path, size_t max, char **data, size_t *len);
/* The same, mapped read-only until p goes (no copy; not NUL-terminated). For
 * files nobody truncates while they are read: reading a page past a cut is a
 * SIGBUS. */
int dc_map_file(apr_pool_t *p, const char *path, size_t max, const char **data, size_t *len);

/* NUL-terminates and returns the data (the NUL is not counted in len). */
const char *dc_buf_cstr(dc_buf_t *b);

/* 1 for the bytes a JSON string holds as they are (printable ASCII but '"' and '\\'),
 * 0 for the ones to escape or decode, and for every byte >= 0x80. */
extern const unsigned char dc_json_plain[256];

/* Length of the well-formed UTF-8 sequence at s[0..len) (2 to 4; no overlong
 * forms, surrogates or code points past U+10FFFF), or 0 when it is not one. */
size_t dc_utf8_sequence_len(const unsigned char *s, size_t len);

/* A JSON string literal (quotes included); invalid UTF-8 bytes become U+FFFD. */
void dc_json_put_string(dc_buf_t *b, const char *s, size_t len);
/* A JSON string literal of a NUL-terminated string, or null when s is NULL. */
void dc_json_put_string_or_null(dc_buf_t *b, const char *s);
/* A JSON number, shortest text that reads back as the same double. */
void dc_json_put_number(dc_buf_t *b, double d);
/* Any jansson value, object keys sorted, numbers shortest. */
void dc_json_put_value(dc_buf_t *b, const json_t *v);

/* s[0..len) as HTML text or attribute value (& < > " ' escaped). */
void dc_html_put(dc_buf_t *b, const char *s, size_t len);

#endif

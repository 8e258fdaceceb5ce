#include "dc_buf.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dc_buf_init(dc_buf_t *b, apr_pool_t *p, size_t initial)
{
    b->pool = p;
    b->cap = initial < 64 ? 64 : initial;
    b->data = apr_palloc(p, b->cap);
    b->len = 0;
}

void dc_buf_grow(dc_buf_t *b, size_t need)
{
    size_t cap = b->cap * 2;
    char *data;

    while (cap < need)
        cap *= 2;
    data = apr_palloc(b->pool, cap);
    memcpy(data, b->data, b->len);
    b->data = data;
    b->cap = cap;
}

size_t dc_fmt_u64(char *out, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    static const uint64_t tens[] = {
        10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u,
        10000000000u, 100000000000u, 1000000000000u, 10000000000000u, 100000000000000u,
        1000000000000000u, 10000000000000000u, 100000000000000000u, 1000000000000000000u,
        10000000000000000000u};
    size_t len = 1;
    char *w;

    /* two digits a division: the spool formats several numbers per event */
    while (len < 20 && v >= tens[len - 1])
        len++;
    w = out + len;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);

        v /= 100;
        w -= 2;
        w[0] = pairs[2 * r];
        w[1] = pairs[2 * r + 1];
    }
    if (v >= 10) {
        w[-2] = pairs[2 * v];
        w[-1] = pairs[2 * v + 1];
    } else {
        w[-1] = (char)('0' + v);
    }
    return len;
}

size_t dc_fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return dc_fmt_u64(out, (uint64_t)v);
    *out = '-';
    return 1 + dc_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

void dc_buf_put_i64(dc_buf_t *b, int64_t v)
{
    char tmp[21];

    dc_buf_append(b, tmp, dc_fmt_i64(tmp, v));
}

void dc_buf_printf(dc_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    dc_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *dc_buf_cstr(dc_buf_t *b)
{
    dc_buf_reserve(b, 0);
    b->data[b->len] = '\0';
    return b->data;
}

size_t dc_utf8_sequence_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

#define ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
const unsigned char dc_json_plain[256] = {
    ROW(0), ROW(0),                                 /* 0x00-0x1f: control */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: '"' at 0x22 */
    ROW(1), ROW(1),                                 /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: '\\' at 0x5c */
    ROW(1), ROW(1),                                 /* 0x60-0x7f */
    ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), ROW(0), /* 0x80-0xff */
};
#undef ROW

#define BYTES(c) (0x0101010101010101u * (uint64_t)(c))
/* Whether a byte of x is zero, and whether one is below n (n <= 128): exact, no false hits. */
#define HAS_ZERO(x) (((x) - BYTES(1)) & ~(x) & BYTES(0x80))
#define HAS_LESS(x, n) (((x) - BYTES(n)) & ~(x) & BYTES(0x80))

/* All eight bytes of w are dc_json_plain ones. */
static inline int plain_word(uint64_t w)
{
    return !((w & BYTES(0x80)) | HAS_LESS(w, 0x20) | HAS_ZERO(w ^ BYTES('"')) |
             HAS_ZERO(w ^ BYTES('\\')));
}

void dc_json_put_string(dc_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    dc_buf_reserve(b, len + 2);
    b->data[b->len++] = '"';
    for (;;) {
        const unsigned char *run = p;
        unsigned char c;

        /* The longest run that needs no escape, copied at once. */
        while (p < end) {
            size_t n;

            /* eight bytes a test while none is a control, '"', '\\' or past ASCII */
            while (end - p >= 8) {
                uint64_t w;

                memcpy(&w, p, 8);
                if (!plain_word(w))
                    break;
                p += 8;
            }
            if (p == end)
                break;
            if (dc_json_plain[*p]) {
                p++;
                continue;
            }
            if (*p >= 0x80 && (n = dc_utf8_sequence_len(p, (size_t)(end - p))) != 0) {
                p += n;
                continue;
            }
            break;
        }
        if (p > run) {
            dc_buf_reserve(b, (size_t)(p - run) + 1);
            memcpy(b->data + b->len, run, (size_t)(p - run));
            b->len += (size_t)(p - run);
        }
        if (p == end)
            break;
        c = *p++;
        if (c >= 0x80) {
            dc_buf_append(b, "\xef\xbf\xbd", 3); /* not UTF-8: U+FFFD */
            continue;
        }
        switch (c) {
        case '"': dc_buf_append(b, "\\\"", 2); break;
        case '\\': dc_buf_append(b, "\\\\", 2); break;
        case '\n': dc_buf_append(b, "\\n", 2); break;
        case '\r': dc_buf_append(b, "\\r", 2); break;
        case '\t': dc_buf_append(b, "\\t", 2); break;
        case '\b': dc_buf_append(b, "\\b", 2); break;
        case '\f': dc_buf_append(b, "\\f", 2); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

            dc_buf_append(b, esc, 6);
        }
        }
    }
    dc_buf_reserve(b, 1);
    b->data[b->len++] = '"';
}

void dc_json_put_string_or_null(dc_buf_t *b, const char *s)
{
    if (s)
        dc_json_put_string(b, s, strlen(s));
    else
        dc_buf_append(b, "null", 4);
}

void dc_json_put_number(dc_buf_t *b, double d)
{
    char tmp[40];

    if (!isfinite(d)) {
        dc_buf_puts(b, "null");
        return;
    }
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(tmp, sizeof(tmp), "%.0f", d);
        if (strcmp(tmp, "-0") == 0)
            strcpy(tmp, "0");
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
    }
    dc_buf_puts(b, tmp);
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void dc_json_put_value(dc_buf_t *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys;
        const char *key;
        json_t *item;

        if (n == 0) {
            dc_buf_puts(b, "{}");
            break;
        }
        keys = apr_palloc(b->pool, n * sizeof(*keys));
        json_object_foreach((json_t *)v, key, item) keys[i++] = key;
        qsort(keys, n, sizeof(*keys), compare_keys);
        dc_buf_putc(b, '{');
        for (i = 0; i < n; i++) {
            if (i)
                dc_buf_putc(b, ',');
            dc_json_put_string(b, keys[i], strlen(keys[i]));
            dc_buf_putc(b, ':');
            dc_json_put_value(b, json_object_get(v, keys[i]));
        }
        dc_buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY:
        dc_buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                dc_buf_putc(b, ',');
            dc_json_put_value(b, json_array_get(v, i));
        }
        dc_buf_putc(b, ']');
        break;
    case JSON_STRING:
        dc_json_put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        dc_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        dc_json_put_number(b, json_real_value(v));
        break;
    case JSON_TRUE:
        dc_buf_puts(b, "true");
        break;
    case JSON_FALSE:
        dc_buf_puts(b, "false");
        break;
    default:
        dc_buf_puts(b, "null");
    }
}

const char *dc_pstrfmt(apr_pool_t *p, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return "";
    if ((size_t)n < sizeof(small))
        return apr_pstrmemdup(p, small, (size_t)n);
    {
        char *big = apr_palloc(p, (size_t)n + 1);

        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return big;
    }
}

/* The file opened for reading when it holds at most max bytes; -1 with errno. */
static int open_bounded(const char *path, size_t max, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    if (fstat(fd, st) < 0 || (size_t)st->st_size > max) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    return fd;
}

int dc_read_file(apr_pool_t *p, const char *path, size_t max, char **data, size_t *len)
{
    struct stat st;
    int fd = open_bounded(path, max, &st);
    size_t got = 0;

    if (fd < 0)
        return -1;
    *data = apr_palloc(p, (size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, *data + got, (size_t)st.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    (*data)[got] = '\0';
    *len = got;
    return 0;
}

typedef struct {
    void *addr;
    size_t len;
} mapping_t;

static apr_status_t unmap_file(void *data)
{
    mapping_t *m = data;

    munmap(m->addr, m->len);
    return APR_SUCCESS;
}

int dc_map_file(apr_pool_t *p, const char *path, size_t max, const char **data, size_t *len)
{
    struct stat st;
    int fd = open_bounded(path, max, &st);
    mapping_t *m;
    void *addr;

    if (fd < 0)
        return -1;
    if (st.st_size == 0) {
        close(fd);
        *data = "";
        *len = 0;
        return 0;
    }
    addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (addr == MAP_FAILED) /* a file system without mmap: read it */
        return dc_read_file(p, path, max, (char **)data, len);
    m = apr_palloc(p, sizeof(*m));
    m->addr = addr;
    m->len = (size_t)st.st_size;
    apr_pool_cleanup_register(p, m, unmap_file, apr_pool_cleanup_null);
    *data = addr;
    *len = m->len;
    return 0;
}

void dc_html_put(dc_buf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&': dc_buf_puts(b, "&amp;"); break;
        case '<': dc_buf_puts(b, "&lt;"); break;
        case '>': dc_buf_puts(b, "&gt;"); break;
        case '"': dc_buf_puts(b, "&quot;"); break;
        case '\'': dc_buf_puts(b, "&#39;"); break;
        default: dc_buf_putc(b, s[i]);
        }
    }
}

/*
 * decision-fcgi's log sink: stderr, in the decision-api's shapes.
 *
 *   text: time="2026-01-02T03:04:05Z" level=warning msg="DC10513: ..."
 *   json: {"level":"warning","msg":"DC10513: ...","time":"2026-01-02T03:04:05Z"}
 *
 * Web servers collect a FastCGI/CGI child's stderr into their error log, so
 * stderr is the one destination that works everywhere. Each line is built in
 * a stack buffer and written with one write(2), so lines from concurrent
 * threads never interleave and logging allocates nothing.
 */
#include "app.h"

#include "dc_log.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static dc_log_format_e sink_format;

/* The decision-api (logrus) says "warning". */
static const char *level_word(dc_log_level_e level)
{
    return level == DC_LOG_WARN ? "warning" : dc_log_level_name(level);
}

typedef struct {
    char *data;
    size_t len, cap;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    if (n > l->cap - l->len)
        n = l->cap - l->len;
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

/* A quoted string, escaped for both formats (JSON escapes are also valid logfmt ones). */
static void put_quoted(line_t *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    put(l, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};

            put(l, esc, 2);
        } else if (*c == '\n') {
            put(l, "\\n", 2);
        } else if (*c < 0x20 || *c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};

            put(l, esc, 6);
        } else {
            put(l, (const char *)c, 1);
        }
    }
    put(l, "\"", 1);
}

static void stderr_sink(void *baton, dc_log_level_e level, const char *msg)
{
    char buf[8192], when[32];
    line_t l = {buf, 0, sizeof(buf) - 1};
    struct tm tm;
    time_t now = time(NULL);
    ssize_t w;

    (void)baton;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (sink_format == DC_LOG_FORMAT_JSON) {
        puts_(&l, "{\"level\":\"");
        puts_(&l, level_word(level));
        puts_(&l, "\",\"msg\":");
        put_quoted(&l, msg);
        puts_(&l, ",\"time\":\"");
        puts_(&l, when);
        puts_(&l, "\"}");
    } else {
        puts_(&l, "time=\"");
        puts_(&l, when);
        puts_(&l, "\" level=");
        puts_(&l, level_word(level));
        puts_(&l, " msg=");
        put_quoted(&l, msg);
    }
    buf[l.len++] = '\n';
    w = write(STDERR_FILENO, buf, l.len);
    (void)w; /* nowhere left to report a failing stderr */
}

void dc_fcgi_log_init(dc_log_format_e format, dc_log_level_e level)
{
    sink_format = format;
    dc_log_set_sink(stderr_sink, NULL, level);
}

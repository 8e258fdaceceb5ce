#include "dc_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void default_sink(void *baton, dc_log_level_e level, const char *msg)
{
    (void)baton;
    fprintf(stderr, "[decision:%s] %s\n", dc_log_level_name(level), msg);
}

static dc_log_sink_fn *log_sink = default_sink;
static void *log_baton;
static dc_log_level_e log_max = DC_LOG_WARN;

void dc_log_set_sink(dc_log_sink_fn *sink, void *baton, dc_log_level_e max_level)
{
    log_sink = sink ? sink : default_sink;
    log_baton = baton;
    log_max = max_level;
}

int dc_log_enabled(dc_log_level_e level)
{
    return level <= log_max;
}

void dc_logv(dc_log_level_e level, const char *fmt, va_list ap)
{
    char msg[1024];

    if (!dc_log_enabled(level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_sink(log_baton, level, msg);
}

void dc_log(dc_log_level_e level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dc_logv(level, fmt, ap);
    va_end(ap);
}

const char *dc_log_level_name(dc_log_level_e level)
{
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};

    return (unsigned)level < sizeof(names) / sizeof(names[0]) ? names[level] : "?";
}

int dc_log_level_parse(const char *name, dc_log_level_e *level)
{
    static const struct {
        const char *name;
        dc_log_level_e level;
    } names[] = {
        {"trace", DC_LOG_TRACE}, {"debug", DC_LOG_DEBUG}, {"info", DC_LOG_INFO},
        {"warn", DC_LOG_WARN},   {"warning", DC_LOG_WARN}, {"error", DC_LOG_ERROR},
        {"fatal", DC_LOG_ERROR}, {"panic", DC_LOG_ERROR},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    }
    return -1;
}

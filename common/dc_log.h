/*
 * dc_log: the library's one way to speak to the operator.
 *
 * common/ never includes httpd or fcgi headers, so it cannot call ap_log_error
 * or write to a chosen stream itself. Each front end installs a sink at start
 * (ap_log_error in the module, stderr text/json in decision-fcgi) and the
 * library formats its lines through it. Every line carries a stable tag,
 * DCLOGNO(nnnnn), so an operator can look a message up; httpd's own APLOGNO()
 * numbers are reserved for httpd's modules.
 */
#ifndef DC_LOG_H
#define DC_LOG_H

#include <stdarg.h>

typedef enum {
    DC_LOG_ERROR = 0,
    DC_LOG_WARN,
    DC_LOG_INFO,
    DC_LOG_DEBUG,
    DC_LOG_TRACE
} dc_log_level_e;

#define DCLOGNO(n) "DC" #n ": "

typedef void dc_log_sink_fn(void *baton, dc_log_level_e level, const char *msg);

/* Installs the process's sink; NULL restores the default (stderr, warn and above). */
void dc_log_set_sink(dc_log_sink_fn *sink, void *baton, dc_log_level_e max_level);
int dc_log_enabled(dc_log_level_e level);
void dc_log(dc_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dc_logv(dc_log_level_e level, const char *fmt, va_list ap);
const char *dc_log_level_name(dc_log_level_e level);
/* Parses Flagship's level names (trace, debug, info, warn/warning, error, fatal, panic). */
int dc_log_level_parse(const char *name, dc_log_level_e *level);

#endif

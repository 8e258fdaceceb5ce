/*
 * One request, FastCGI or CGI: the CGI/1.1 variables and body in, through
 * dc_api_handle(), the CGI response (Status: header, headers, body) out.
 * The two transports differ only in where variables, stdin and stdout are,
 * so they sit behind this small table.
 */
#ifndef DC_FCGI_REQUEST_H
#define DC_FCGI_REQUEST_H

#include "app.h"

typedef struct {
    /* The request's variables, "NAME=value", NULL-terminated (FCGX_Request.envp, or environ). */
    char **(*vars)(void *baton);
    /* Up to n body bytes; 0 at the end, < 0 on error. */
    int (*read)(void *baton, char *buf, int n);
    /* All of n bytes, or < 0. */
    int (*write)(void *baton, const char *buf, int n);
    void *baton;
    /* Without CONTENT_LENGTH: FastCGI's stdin has an end, CGI's has not (no body then). */
    int body_until_eof;
    dc_metrics_slot_t *metrics_slot; /* this thread's, NULL when metrics are off */
} dc_fcgi_io_t;

/* Handles one request completely; everything is allocated in p. */
void dc_fcgi_handle(dc_fcgi_app_t *app, apr_pool_t *p, const dc_fcgi_io_t *io);

/* The path dc_api routes on (exposed for the unit test). */
const char *dc_fcgi_route_path(apr_pool_t *p, const char *script_name, const char *path_info,
                               const char *request_uri);

#endif

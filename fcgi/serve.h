/*
 * decision-fcgi's two ways of answering: the FastCGI responder (threads,
 * signals, graceful shutdown) and one CGI request.
 */
#ifndef DC_FCGI_SERVE_H
#define DC_FCGI_SERVE_H

#include "app.h"

/* Blocks SIGTERM, SIGINT, SIGUSR1 and SIGHUP (for sigtimedwait) and ignores SIGPIPE: call before any
 * thread starts (the spool and the config source start some), so all inherit the mask. */
void dc_fcgi_block_signals(void);
/* Serves until SIGTERM/SIGINT; returns the process's exit code. */
int dc_fcgi_serve(dc_fcgi_app_t *app);
/* Answers the one request of the CGI environment; returns the exit code. */
int dc_fcgi_serve_cgi(dc_fcgi_app_t *app);

#endif

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
/* systemd's socket activation (sd_listen_fds(3)'s convention, without libsystemd): the first
 * passed descriptor. */
#define DC_LISTEN_FDS_START 3
/* The listening socket passed to this process (LISTEN_PID is ours, LISTEN_FDS=1): returns its
 * descriptor, 0 when none was passed, -1 when what was passed is unusable (logged). Clears the
 * LISTEN_* variables. */
int dc_fcgi_inherited_socket(void);
/* Serves until SIGTERM/SIGINT; returns the process's exit code. */
int dc_fcgi_serve(dc_fcgi_app_t *app);
/* Answers the one request of the CGI environment; returns the exit code. */
int dc_fcgi_serve_cgi(dc_fcgi_app_t *app);

#endif

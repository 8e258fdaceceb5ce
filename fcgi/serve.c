/*
 * decision-fcgi serving: the FastCGI responder and the one-shot CGI mode.
 *
 * FastCGI: THREADS workers each loop on FCGX_Accept_r() over one listen
 * socket (fd 0 when the web server spawned us, or one we open for
 * --listen). Each worker owns a pool, cleared after every request, and its
 * own allocator, so request memory never takes a process-wide lock.
 *
 * Signals are blocked in every thread and taken by the main thread with
 * sigtimedwait(): SIGHUP asks the poller thread for a reload; SIGTERM/SIGINT
 * start a shutdown that loses no request the web server already handed us:
 *   1. keep accepting while the listen queue still holds connections
 *      (requests sent before the signal), up to SHUTDOWN_TIMEOUT;
 *   2. shutdown() the listen socket: every FCGX_Accept_r() blocked in
 *      accept() returns an error and its worker ends; kept-alive FastCGI
 *      connections are closed after their current request;
 *   3. wait for the workers until SHUTDOWN_TIMEOUT, then exit: 0 when no
 *      request was left unfinished, 1 otherwise.
 * libfcgi's own handling is no help here: its SIGTERM and SIGUSR1 handlers
 * (installed by FCGX_Init) do what FCGX_ShutdownPending() does, which makes
 * every later read and write of libfcgi fail, cutting the requests in
 * flight, and wakes only the one thread the signal happened to interrupt.
 * So dc_fcgi_block_signals() puts the defaults back and blocks them.
 *
 * A listening socket passed by systemd (socket activation) belongs to the
 * socket unit, which keeps listening after this process ends: step 2 must not
 * shutdown() it. Workers then wait in poll() on it and on a pipe before each
 * accept, the socket is non-blocking (an accept another worker won returns
 * EAGAIN and its worker polls again), and a byte in the pipe ends them. What
 * arrives after the stop stays queued for the next instance.
 */
#include "serve.h"

#include "request.h"

#include "dc_log.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- FastCGI transport -------------------------------------------------- */

static char **fcgi_vars(void *baton)
{
    FCGX_Request *r = baton;

    return r->envp;
}

static int fcgi_read(void *baton, char *buf, int n)
{
    FCGX_Request *r = baton;

    return FCGX_GetStr(buf, n, r->in);
}

static int fcgi_write(void *baton, const char *buf, int n)
{
    FCGX_Request *r = baton;

    return FCGX_PutStr(buf, n, r->out) == n ? n : -1;
}

typedef struct {
    dc_fcgi_app_t *app;
    int listen_fd;
    int inherited;            /* listen_fd is the socket unit's: never shut down */
    int stop_pipe[2];         /* inherited: a byte in it ends the workers */
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    int live_workers;         /* under mutex */
    volatile int busy;        /* requests between accept and finish (__atomic) */
    volatile int stopping;    /* (__atomic) */
} server_t;

typedef struct {
    server_t *server;
    pthread_t thread;
    int index;
} worker_t;

/* Inherited socket: waits until a connection is queued (0) or the stop pipe has a byte (-1). */
static int wait_for_connection(server_t *srv)
{
    struct pollfd pfd[2] = {{srv->listen_fd, POLLIN, 0}, {srv->stop_pipe[0], POLLIN, 0}};

    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (pfd[1].revents)
            return -1;
        if (pfd[0].revents)
            return 0;
    }
}

static void *worker_main(void *data)
{
    worker_t *w = data;
    server_t *srv = w->server;
    apr_allocator_t *allocator;
    apr_pool_t *pool;
    FCGX_Request req;
    dc_fcgi_io_t io = {fcgi_vars, fcgi_read, fcgi_write, &req, 1, NULL};

    apr_allocator_create(&allocator);
    apr_allocator_max_free_set(allocator, 4 * 1024 * 1024);
    apr_pool_create_ex(&pool, NULL, NULL, allocator);
    apr_allocator_owner_set(allocator, pool);
    FCGX_InitRequest(&req, srv->listen_fd, 0);
    if (srv->app->svc.metrics)
        io.metrics_slot = dc_metrics_slot(srv->app->svc.metrics, (size_t)w->index);

    for (;;) {
        int rc;

        if (srv->inherited && req.ipcFd < 0 && wait_for_connection(srv) < 0)
            break;
        rc = FCGX_Accept_r(&req);
        if (rc < 0) {
            if (srv->inherited && (rc == -EAGAIN || rc == -EWOULDBLOCK))
                continue; /* another worker took it */
            if (!__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
                dc_log(DC_LOG_ERROR, DCLOGNO(10530) "worker %d: accepting failed (%s); it ends",
                       w->index, strerror(-rc > 0 ? -rc : EIO));
            break;
        }
        __atomic_add_fetch(&srv->busy, 1, __ATOMIC_ACQ_REL);
        dc_fcgi_handle(srv->app, pool, &io);
        FCGX_Finish_r(&req); /* the answer is out: the request is done */
        __atomic_sub_fetch(&srv->busy, 1, __ATOMIC_ACQ_REL);
        /* Once stopping, do not wait on a kept-alive connection for a next request. (libfcgi's
         * close waits up to 2 s for the peer to close first, so it is not counted as busy.) */
        if (__atomic_load_n(&srv->stopping, __ATOMIC_ACQUIRE))
            FCGX_Free(&req, 1);
        apr_pool_clear(pool);
    }
    FCGX_Free(&req, 1);
    apr_pool_destroy(pool);

    pthread_mutex_lock(&srv->mutex);
    srv->live_workers--;
    pthread_cond_broadcast(&srv->changed);
    pthread_mutex_unlock(&srv->mutex);
    return NULL;
}

/* Is a connection waiting in the listen queue? */
static int listen_queue_nonempty(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};

    return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* "unix:/path", "/path", "host:port" or ":port" → what FCGX_OpenSocket takes. */
static int open_listen_socket(apr_pool_t *p, const char *spec, const char **unix_path)
{
    const char *path = spec;
    struct stat st;
    int fd;

    *unix_path = NULL;
    if (strncmp(spec, "unix:", 5) == 0)
        path = spec + 5;
    if (*path == '/') {
        /* A socket left by an earlier run would make bind() fail. */
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        *unix_path = path;
    } else if (!strchr(path, ':')) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10531) "LISTEN \"%s\": use HOST:PORT, :PORT or unix:/PATH",
               spec);
        return -1;
    }
    fd = FCGX_OpenSocket(path, 1024);
    if (fd < 0) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10532) "cannot listen on %s: %s", spec, strerror(errno));
        return -1;
    }
    return fd;
}

int dc_fcgi_inherited_socket(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int type = 0, listening = 0;
    socklen_t len = sizeof(int);
    char *end;
    long n;

    if (!pid || !fds)
        return 0;
    errno = 0;
    n = strtol(pid, &end, 10);
    if (errno || end == pid || *end || n != (long)getpid())
        return 0; /* meant for another process (a parent that did not clear them) */
    errno = 0;
    n = strtol(fds, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (errno || end == fds || *end || n != 1) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10543) "LISTEN_FDS=%s: decision-fcgi listens on exactly one "
                                            "socket (give its socket unit one ListenStream=)",
               fds);
        return -1;
    }
    if (getsockopt(DC_LISTEN_FDS_START, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        type != SOCK_STREAM ||
        getsockopt(DC_LISTEN_FDS_START, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10544) "LISTEN_FDS=1, but fd %d is not a listening stream "
                                            "socket (ListenStream= is needed, Accept=no)",
               DC_LISTEN_FDS_START);
        return -1;
    }
    fcntl(DC_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
    return DC_LISTEN_FDS_START;
}

static void shutdown_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1); /* how Apache's old mod_fastcgi asks for a graceful stop */
}

void dc_fcgi_block_signals(void)
{
    sigset_t set;

    /* An ignored signal is discarded even while blocked (nohup ignores SIGHUP): take them back. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    shutdown_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int dc_fcgi_serve(dc_fcgi_app_t *app)
{
    const dc_settings_t *settings = app->settings;
    int n_threads = app->n_threads;
    apr_interval_time_t grace = settings->shutdown_timeout;
    const char *unix_path = NULL;
    server_t srv;
    worker_t *workers;
    sigset_t signals;
    apr_time_t deadline;
    int started = 0, left, unfinished, rc, poller_stopped;

    memset(&srv, 0, sizeof(srv));
    srv.app = app;
    srv.listen_fd = 0;
    if (app->args.inherited_fd > 0) {
        srv.listen_fd = app->args.inherited_fd;
        srv.inherited = 1;
        if (pipe2(srv.stop_pipe, O_CLOEXEC) < 0 ||
            fcntl(srv.listen_fd, F_SETFL, fcntl(srv.listen_fd, F_GETFL) | O_NONBLOCK) < 0) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10545) "cannot set up the inherited socket: %s",
                   strerror(errno));
            return 1;
        }
        if (settings->listen)
            dc_log(DC_LOG_INFO, DCLOGNO(10546) "listening on the socket passed by systemd "
                                               "(LISTEN_FDS); LISTEN=%s is not used",
                   settings->listen);
    } else if (settings->listen &&
               (srv.listen_fd = open_listen_socket(app->pool, settings->listen, &unix_path)) < 0)
        return 1;

    /* Blocked since main() (dc_fcgi_block_signals), so every thread inherited the mask: only
     * sigtimedwait() below sees these signals. */
    shutdown_signals(&signals);

    pthread_mutex_init(&srv.mutex, NULL);
    pthread_cond_init(&srv.changed, NULL);
    if (dc_fcgi_app_start_threads(app) < 0)
        return 1;
    workers = apr_pcalloc(app->pool, (apr_size_t)n_threads * sizeof(*workers));
    for (int i = 0; i < n_threads; i++) {
        workers[i].server = &srv;
        workers[i].index = i;
        pthread_mutex_lock(&srv.mutex);
        srv.live_workers++;
        pthread_mutex_unlock(&srv.mutex);
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            pthread_mutex_lock(&srv.mutex);
            srv.live_workers--;
            pthread_mutex_unlock(&srv.mutex);
            dc_log(DC_LOG_ERROR, DCLOGNO(10533) "cannot start request thread %d", i);
            break;
        }
        started++;
    }
    dc_log(DC_LOG_INFO, DCLOGNO(10534) "FastCGI responder ready: %d threads on %s", started,
           srv.inherited     ? "the socket passed by systemd (LISTEN_FDS)"
           : settings->listen ? settings->listen
                              : "the socket given by the web server (fd 0)");

    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&signals, NULL, &tick);

        if (sig == SIGHUP) {
            dc_log(DC_LOG_WARN, DCLOGNO(10535) "SIGHUP: reloading the configuration");
            dc_fcgi_app_request_reload(app);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT || sig == SIGUSR1) {
            dc_log(DC_LOG_WARN, DCLOGNO(10536) "%s: finishing the requests in flight, then exiting",
                   sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGUSR1");
            break;
        }
        pthread_mutex_lock(&srv.mutex);
        left = srv.live_workers;
        pthread_mutex_unlock(&srv.mutex);
        if (left == 0) {
            dc_log(DC_LOG_ERROR, DCLOGNO(10537) "every request thread ended: exiting");
            dc_fcgi_app_stop_threads(app, apr_time_now() + apr_time_from_sec(1),
                                     apr_time_now() + grace);
            return 1;
        }
    }

    deadline = apr_time_now() + grace;
    __atomic_store_n(&srv.stopping, 1, __ATOMIC_RELEASE);
    while (listen_queue_nonempty(srv.listen_fd) && apr_time_now() < deadline)
        sleep_ms(5);
    if (srv.inherited) {
        if (write(srv.stop_pipe[1], "x", 1) != 1)
            dc_log(DC_LOG_ERROR, DCLOGNO(10547) "cannot wake the request threads: %s",
                   strerror(errno));
    } else
        shutdown(srv.listen_fd, SHUT_RDWR);

    pthread_mutex_lock(&srv.mutex);
    while (srv.live_workers > 0 && apr_time_now() < deadline) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv.changed, &srv.mutex, &ts);
    }
    left = srv.live_workers;
    pthread_mutex_unlock(&srv.mutex);
    unfinished = __atomic_load_n(&srv.busy, __ATOMIC_ACQUIRE);
    /* The poller has nothing to flush (a last-known-good file is written whole or not at all):
     * it gets a second to end a fetch, not the whole timeout. The shipper delivers what it can
     * in what is left of SHUTDOWN_TIMEOUT (at least a second); what it cannot stays spooled. */
    poller_stopped =
        dc_fcgi_app_stop_threads(app, apr_time_now() + apr_time_from_sec(1),
                                 deadline > apr_time_now() + apr_time_from_sec(1)
                                     ? deadline
                                     : apr_time_now() + apr_time_from_sec(1)) == 0;
    if (unix_path)
        unlink(unix_path);

    if (left == 0 && poller_stopped) {
        for (int i = 0; i < started; i++)
            pthread_join(workers[i].thread, NULL);
        close(srv.listen_fd);
        if (srv.inherited) {
            close(srv.stop_pipe[0]);
            close(srv.stop_pipe[1]);
        }
        dc_fcgi_app_destroy(app);
        dc_log(DC_LOG_INFO, DCLOGNO(10538) "stopped");
        return 0;
    }
    /* Threads still blocked on idle kept-alive connections, or a poller inside a fetch, are
     * harmless: exit without freeing what they use. Busy request threads are not harmless. */
    rc = unfinished > 0 ? 1 : 0;
    if (rc)
        dc_log(DC_LOG_ERROR, DCLOGNO(10539) "SHUTDOWN_TIMEOUT passed with %d request%s unfinished: "
                                            "exiting anyway",
               unfinished, unfinished > 1 ? "s" : "");
    else
        dc_log(DC_LOG_INFO, DCLOGNO(10540) "stopped (%d idle kept-alive connection%s closed)", left,
               left == 1 ? "" : "s");
    fflush(NULL);
    _exit(rc);
}

/* ---- CGI transport ------------------------------------------------------ */

static char **cgi_vars(void *baton)
{
    (void)baton;
    return environ;
}

static int cgi_read(void *baton, char *buf, int n)
{
    size_t got = fread(buf, 1, (size_t)n, stdin);

    (void)baton;
    return got > 0 ? (int)got : (ferror(stdin) ? -1 : 0);
}

static int cgi_write(void *baton, const char *buf, int n)
{
    (void)baton;
    return fwrite(buf, 1, (size_t)n, stdout) == (size_t)n ? n : -1;
}

int dc_fcgi_serve_cgi(dc_fcgi_app_t *app)
{
    apr_pool_t *pool;
    dc_fcgi_io_t io = {cgi_vars, cgi_read, cgi_write, NULL, 0, NULL};

    apr_pool_create(&pool, app->pool);
    if (app->svc.metrics)
        io.metrics_slot = dc_metrics_slot(app->svc.metrics, 0);
    dc_fcgi_handle(app, pool, &io);
    fflush(stdout);
    apr_pool_destroy(pool);
    dc_fcgi_app_destroy(app);
    return ferror(stdout) ? 1 : 0;
}

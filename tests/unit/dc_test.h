/*
 * Shared bits of the Check suites: APR set-up, reading the spec fixtures,
 * and a main() that runs one suite.
 */
#ifndef DC_TEST_H
#define DC_TEST_H

#include <apr_general.h>
#include <apr_pools.h>
#include <check.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline json_t *dc_test_load_json(const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);

    if (!root) {
        fprintf(stderr, "cannot load %s: %s (line %d)\n", path, err.text, err.line);
        abort();
    }
    return root;
}

static inline json_t *dc_test_vectors(void)
{
    return dc_test_load_json(DC_FIXTURES "/vectors.json");
}

/* ---- real servers for the suites that need one (stand-in CDN, redis-server) ---- */

typedef struct {
    pid_t pid;
} dc_test_proc_t;

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
static inline int dc_test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Waits until something accepts on 127.0.0.1:port; 0, or -1 after timeout_ms. */
static inline int dc_test_wait_port(int port, int timeout_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct timespec pause = {0, 20 * 1000 * 1000};
    int waited;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    for (waited = 0; waited < timeout_ms; waited += 20) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

        if (fd >= 0)
            close(fd);
        if (ok)
            return 0;
        nanosleep(&pause, NULL);
    }
    return -1;
}

/* Starts argv (searched in PATH) with its output on stderr; 0 or -1. */
static inline int dc_test_spawn(dc_test_proc_t *proc, const char *const argv[])
{
    proc->pid = fork();
    if (proc->pid < 0)
        return -1;
    if (proc->pid == 0) {
        dup2(2, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return 0;
}

/* SIGTERM, then SIGKILL after five seconds; reaps the process. */
static inline void dc_test_stop(dc_test_proc_t *proc)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    int status, i;

    if (proc->pid <= 0)
        return;
    kill(proc->pid, SIGTERM);
    for (i = 0; i < 250; i++) {
        if (waitpid(proc->pid, &status, WNOHANG) == proc->pid) {
            proc->pid = 0;
            return;
        }
        nanosleep(&pause, NULL);
    }
    kill(proc->pid, SIGKILL);
    waitpid(proc->pid, &status, 0);
    proc->pid = 0;
}

#define DC_TEST_MAIN(suite_fn)                                                                     \
    int main(void)                                                                                 \
    {                                                                                              \
        SRunner *sr;                                                                               \
        int failed;                                                                                \
                                                                                                   \
        apr_initialize();                                                                          \
        sr = srunner_create(suite_fn());                                                           \
        srunner_run_all(sr, CK_NORMAL);                                                            \
        failed = srunner_ntests_failed(sr);                                                        \
        srunner_free(sr);                                                                          \
        apr_terminate();                                                                           \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                                          \
    }

#endif

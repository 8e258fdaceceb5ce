/*
 * Shared bits of the Check suites: APR set-up, reading the spec fixtures,
 * and a main() that runs one suite.
 */
#ifndef DC_TEST_H
#define DC_TEST_H

#include <apr_general.h>
#include <apr_pools.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ---- the stand-in for the remote platform (tests/standin.py), steered over HTTP ---- */

typedef struct {
    dc_test_proc_t proc;
    int port;
    char base_url[64];
} dc_test_standin_t;

static inline void dc_test_standin_start(dc_test_standin_t *s)
{
    char port_s[16];
    const char *argv[] = {"python3", DC_SRCDIR "/tests/standin.py", "--port", port_s, NULL};

    s->port = dc_test_free_port();
    snprintf(port_s, sizeof(port_s), "%d", s->port);
    snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%d", s->port);
    ck_assert_int_eq(dc_test_spawn(&s->proc, argv), 0);
    ck_assert_msg(dc_test_wait_port(s->port, 10000) == 0, "the stand-in did not start");
}

static inline void dc_test_standin_stop(dc_test_standin_t *s)
{
    dc_test_stop(&s->proc);
}

typedef struct {
    size_t len;
    char *data;
} dc_test_body_t;

static inline size_t dc_test_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    dc_test_body_t *b = userdata;

    size *= nmemb;
    b->data = realloc(b->data, b->len + size + 1);
    if (!b->data)
        abort();
    memcpy(b->data + b->len, ptr, size);
    b->len += size;
    b->data[b->len] = '\0';
    return size;
}

/* One control request to the stand-in (path under its base URL), which must
 * answer below 300. Returns its body (malloc'd, NUL-terminated; NULL when
 * empty). */
static inline char *dc_test_standin_control(const dc_test_standin_t *s, const char *method,
                                            const char *path, const char *body, size_t len)
{
    CURL *c = curl_easy_init();
    dc_test_body_t out = {0, NULL};
    char url[256];
    long status = 0;

    snprintf(url, sizeof(url), "%s%s", s->base_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dc_test_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    ck_assert_int_lt(status, 300);
    curl_easy_cleanup(c);
    return out.data;
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

/*
 * hello-fcgi: the baseline for bench/fcgi.sh. The smallest FastCGI responder
 * built like decision-fcgi's serving loop (THREADS threads on FCGX_Accept_r
 * over the socket on fd 0, the request body read, a small JSON answer), so
 * that the benchmark's ratio is the cost of deciding, not of FastCGI.
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char answer[] = "Status: 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 18\r\n\r\n{\"hello\":\"world\"}\n";

static void *worker(void *data)
{
    FCGX_Request req;
    char body[65536];

    (void)data;
    FCGX_InitRequest(&req, 0, 0);
    while (FCGX_Accept_r(&req) >= 0) {
        while (FCGX_GetStr(body, (int)sizeof(body), req.in) > 0)
            ;
        FCGX_PutStr(answer, (int)sizeof(answer) - 1, req.out);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(void)
{
    const char *env = getenv("THREADS");
    int n = env ? atoi(env) : 4;
    pthread_t *threads;

    if (n < 1 || n > 1024)
        n = 4;
    if (FCGX_Init() != 0 || FCGX_IsCGI()) {
        fprintf(stderr, "hello-fcgi: start me from a FastCGI web server (socket on fd 0)\n");
        return 2;
    }
    /* libfcgi catches SIGTERM only to stop the thread it interrupts: let lighttpd's end us. */
    signal(SIGTERM, SIG_DFL);
    threads = calloc((size_t)n, sizeof(*threads));
    for (int i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    return 0;
}

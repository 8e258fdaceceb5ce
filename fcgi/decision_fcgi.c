/*
 * decision-fcgi: the decision API for web servers that speak FastCGI or CGI,
 * and the command-line evaluator (decision-fcgi eval).
 */
#include "eval.h"
#include "ship.h"

#include <apr_general.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s eval --bucketing FILE [options]   decide from the command line\n"
            "       %s --help                            this text\n",
            prog, prog);
}

int main(int argc, const char *const *argv)
{
    int rc;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) {
        rc = dc_eval_main(argc - 1, argv + 1);
        return rc;
    }
    if (argc >= 2 && strcmp(argv[1], "ship") == 0)
        return dc_ship_main(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(argv[0]);
        dc_eval_usage(argv[0]);
        return 0;
    }
    usage(argv[0]);
    return 2;
}

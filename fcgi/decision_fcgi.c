/*
 * decision-fcgi: the decision API for web servers that speak FastCGI or CGI,
 * and the command-line evaluator (decision-fcgi eval).
 *
 * Which transport: a listening socket passed by systemd (LISTEN_FDS, socket
 * activation), --listen, or a FastCGI listen socket on fd 0 (the web server
 * spawned us: lighttpd bin-path, spawn-fcgi), means the threaded FastCGI
 * responder; a CGI environment (GATEWAY_INTERFACE, REQUEST_METHOD)
 * without one means one CGI request and exit.
 */
#include "app.h"
#include "eval.h"
#include "serve.h"
#include "ship.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--config FILE] [--listen HOST:PORT|unix:PATH] [--threads N]\n"
            "                  serve FastCGI (on fd 0 when spawned by the web server, on the\n"
            "                  socket systemd passes (LISTEN_FDS), or on --listen), or answer\n"
            "                  one CGI request when run as a CGI script\n"
            "       %s --check [--config FILE]   check the settings and exit (0: valid)\n"
            "       %s eval --bucketing FILE [options]   decide from the command line\n"
            "       %s ship [options]            deliver an event spool (see ship --help)\n"
            "       %s --help                   this text\n"
            "\n"
            "--config FILE (or CONFIG_FILE=FILE) reads a YAML file with the decision-api's keys;\n"
            "the environment overrides it, the command line overrides both. Bad or unknown\n"
            "settings are reported by name and the process exits 2. SIGHUP re-reads the file,\n"
            "SIGTERM/SIGINT finish the requests in flight and exit.\n"
            "\n",
            prog, prog, prog, prog, prog);
    dc_settings_write_help(out);
    fputc('\n', out);
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t options[] = {
        {"config", 'c', 1, "YAML settings file"},
        {"listen", 'l', 1, "FastCGI socket"},
        {"threads", 't', 1, "request threads"},
        {"check", 'k', 0, "check the settings"},
        {"help", 'h', 0, "help"},
        {NULL, 0, 0, NULL},
    };
    dc_fcgi_args_t args = {getenv("CONFIG_FILE"), NULL, NULL, argv, 0};
    dc_settings_t *settings;
    dc_fcgi_app_t app;
    apr_pool_t *pool, *settings_pool;
    apr_getopt_t *opt;
    apr_status_t rv;
    const char *arg;
    int opt_ch, check = 0, cgi;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0)
        return dc_eval_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "ship") == 0)
        return dc_ship_main(argc - 1, argv + 1);

    apr_pool_create(&pool, NULL);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt_long(opt, options, &opt_ch, &arg)) == APR_SUCCESS) {
        switch (opt_ch) {
        case 'c': args.config_file = arg; break;
        case 'l': args.listen = arg; break;
        case 't': args.threads = arg; break;
        case 'k': check = 1; break;
        case 'h':
            usage(stdout, argv[0]);
            dc_eval_usage(argv[0]);
            return 0;
        }
    }
    if (rv != APR_EOF || opt->ind != argc) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (args.config_file && !*args.config_file)
        args.config_file = NULL;

    apr_pool_create(&settings_pool, pool);
    settings = dc_fcgi_read_settings(settings_pool, &args);
    if (!settings)
        return 2;
    if (check) {
        for (int i = 0; i < settings->warnings->nelts; i++)
            fprintf(stderr, "decision-fcgi: warning: %s\n",
                    APR_ARRAY_IDX(settings->warnings, i, const char *));
        printf("configuration OK\n");
        return 0;
    }
    dc_fcgi_log_init(settings->log_format, settings->log_level);
    for (int i = 0; i < settings->warnings->nelts; i++)
        dc_log(DC_LOG_WARN, DCLOGNO(10541) "%s",
               APR_ARRAY_IDX(settings->warnings, i, const char *));

    if (FCGX_Init() != 0) {
        dc_log(DC_LOG_ERROR, DCLOGNO(10542) "cannot initialise libfcgi");
        return 1;
    }
    if ((args.inherited_fd = dc_fcgi_inherited_socket()) < 0)
        return 2;
    cgi = !settings->listen && !args.inherited_fd && FCGX_IsCGI();
    if (cgi && !getenv("GATEWAY_INTERFACE") && !getenv("REQUEST_METHOD")) {
        fprintf(stderr, "%s: not started by a web server (no FastCGI socket on fd 0, no CGI "
                        "environment): use --listen, or see --help\n", argv[0]);
        return 2;
    }
    if (!cgi)
        dc_fcgi_block_signals();
    if (dc_fcgi_app_start(&app, pool, &args, settings, cgi) < 0)
        return 1;
    return cgi ? dc_fcgi_serve_cgi(&app) : dc_fcgi_serve(&app);
}

/*
 * libFuzzer target: any bytes as a request to the decision API. The first
 * byte picks the route and method, the rest is the body (and, after a NUL,
 * the query string), against the sample bucketing file and a memory store
 * so sticky-assignment paths run too. Every answer must be a well-formed
 * response; nothing may crash.
 */
#include "dc_api.h"
#include "dc_config.h"
#include "dc_log.h"

#include <apr_general.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static dc_service_t svc;
static apr_pool_t *root;

static void quiet(void *baton, dc_log_level_e level, const char *msg)
{
    (void)baton;
    (void)level;
    (void)msg;
}

/* The service lives for the whole run; release it at exit so LeakSanitizer's
 * final check sees only what a request leaked. */
static void cleanup(void)
{
    dc_store_close(svc.store);
    dc_slot_clear(&svc.slot);
    apr_pool_destroy(root);
    apr_terminate();
}

static void init(void)
{
    dc_config_t *cfg;
    dc_config_error_t err;
    char errbuf[128];

    apr_initialize();
    apr_pool_create(&root, NULL);
    dc_log_set_sink(quiet, NULL, DC_LOG_ERROR);
    dc_service_init(&svc, root);
    svc.opt.env_id = "env";
    if (dc_config_load_file(FUZZ_BUCKETING, &cfg, &err) < 0)
        abort();
    dc_slot_publish(&svc.slot, cfg);
    svc.store = dc_store_open(root, "memory?max_entries=1000", errbuf, sizeof(errbuf));
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/v2/campaigns", "/v2/flags", "/v2/activate",
                                        "/v2/campaigns/ab-button", "/v2/campaigns/",
                                        "/v2/env/campaigns", "/v2/campaigns/c_vip", "/x",
                                        /* OFREP (the query doubles as If-None-Match) */
                                        "/ofrep/v1/evaluate/flags",
                                        "/ofrep/v1/evaluate/flags/btnColor",
                                        "/v2/ofrep/v1/evaluate/flags/vipFeature",
                                        "/ofrep/v1/evaluate/flags/missing%2",
                                        "/ofrep/v1/evaluate/flags/",
                                        "/ofrep/v1/evaluate", "/ofrep/v1",
                                        "/api/ofrep/v1/evaluate/flags"};
    static const char *const methods[] = {"POST", "POST", "POST", "GET", "OPTIONS", "POST",
                                          "POST", "PUT"};
    dc_request_t req;
    dc_response_t resp;
    apr_pool_t *p;
    const char *nul;

    if (!root)
        init();
    if (size < 1)
        return 0;
    memset(&req, 0, sizeof(req));
    req.path = paths[(data[0] & 7) | ((data[0] >> 3) & 8)];
    req.method = methods[(data[0] >> 3) & 7];
    data++;
    size--;
    nul = memchr(data, '\0', size);
    req.body = (const char *)data;
    req.body_len = nul ? (size_t)(nul - (const char *)data) : size;
    if (nul) {
        size_t qlen = size - req.body_len - 1;
        char *q = malloc(qlen + 1);

        memcpy(q, nul + 1, qlen);
        q[qlen] = '\0';
        req.query = q;
        req.if_none_match = q;
    }
    req.received = apr_time_now();
    apr_pool_create(&p, root);
    dc_api_handle(&svc, p, &req, &resp);
    if (resp.status < 200 || resp.status > 599 || (resp.body_len && !resp.body))
        abort();
    apr_pool_destroy(p);
    free((char *)req.query);
    return 0;
}

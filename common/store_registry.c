/*
 * The registry of store backends: the table dc_store_open() reads to turn a
 * URI's scheme into a provider. A new backend is one line here (and its file
 * in Makefile.am); nothing else in the dispatcher names it. Order is the
 * order of the "use ..." list in messages.
 */
#include "dc_store.h"

const dc_store_backend_t dc_store_backends[] = {
    {"none", "none", &dc_store_none_provider, 0},
    {"memory", "memory", &dc_store_memory_provider, 1},
    {"dbm", "dbm:PATH", &dc_store_dbm_provider, 0},
    {"redis", "redis://host:port[/db]", &dc_store_redis_provider, 0},
    {"rediss", "rediss://host:port[/db]", &dc_store_redis_provider, 0},
    {"dynamo", "dynamo://TABLE", &dc_store_dynamo_provider, 0},
    {"plugin", "plugin:/path/to/store.so", &dc_store_plugin_provider, 1},
};

const size_t dc_store_n_backends = sizeof(dc_store_backends) / sizeof(dc_store_backends[0]);

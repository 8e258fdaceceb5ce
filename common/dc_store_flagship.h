/*
 * dc_store_flagship: the decision-api's cache settings as a dc_store URI.
 *
 * The Flagship decision-api picks its assignment cache with CACHE_TYPE and
 * CACHE_OPTIONS_*; we pick a store with one URI (dc_store_open()). This maps
 * the former onto the latter, so a decision-api configuration works unchanged:
 *
 *   (unset) | none          → none
 *   memory                  → memory
 *   local   (DBPATH)        → dbm:PATH (default "cache_data"; a directory, such as
 *                             the decision-api's bitcask one, gets PATH/assignments)
 *   redis   (REDISHOST, REDISUSERNAME, REDISPASSWORD, REDISDB, REDISTLS, REDISTTL)
 *                           → redis[s]://[user:password@]host:port/db?ttl=SECONDS
 *   dynamo                  → refused: not supported
 *
 * The declaration is the one the stores work puts in dc_store.h (same name,
 * same signature), so either implementation can serve dc_settings.
 */
#ifndef DC_STORE_FLAGSHIP_H
#define DC_STORE_FLAGSHIP_H

#include <apr_pools.h>
#include <stddef.h>

/* get(baton, name): the setting by its environment name (CACHE_TYPE,
 * CACHE_OPTIONS_REDISHOST, ...) or NULL. Returns the URI in p (it may hold the
 * Redis password: log the opened store's masked uri, never this), or NULL with
 * err naming the bad setting (never its value when it is the password). */
typedef const char *dc_store_setting_fn(void *baton, const char *name);
const char *dc_store_uri_from_flagship(apr_pool_t *p, dc_store_setting_fn *get, void *baton,
                                       char *err, size_t err_len);

#endif

/*
 * dc_store_flagship: the decision-api's cache settings as a dc_store URI.
 *
 * The Flagship decision-api picks its assignment cache with cache.type
 * (CACHE_TYPE) and cache.options.* (CACHE_OPTIONS_*); we pick a store with
 * one URI (dc_store_open()). This maps the former onto the latter, so a
 * decision-api configuration works unchanged:
 *
 *   (unset) | none          → none
 *   memory                  → memory
 *   local   (dbPath)        → dbm:PATH (a directory, such as the decision-api's
 *                             default "cache_data", gets PATH/assignments)
 *   redis   (redisHost, redisUsername, redisPassword, redisDb, redisTls,
 *            redisTtl)      → redis[s]://[user:password@]host:port/db?ttl=SECONDS
 *   dynamo                  → refused: not supported
 */
#ifndef DC_STORE_FLAGSHIP_H
#define DC_STORE_FLAGSHIP_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <stddef.h>

/* options: the cache.options values by name (apr tables ignore case, as the
 * decision-api does). Returns the URI (which may hold the Redis password:
 * never log it), or NULL with a message naming the bad option in err. */
const char *dc_store_uri_from_flagship(apr_pool_t *p, const char *cache_type,
                                       apr_table_t *options, char *err, size_t err_len);

#endif

/*
 * dc_share: config snapshots parsed once for every process of a server.
 *
 * httpd's children are forked from one parent. After a config swap each
 * child used to parse the new file into its own heap: 8 MB of its own for a
 * 1.65 MB file, in every child. A share is a region of shared memory the
 * parent maps before forking, so it lies at the same address in every child,
 * cut into a few slots: a snapshot parsed into a slot (dc_config_parse_block,
 * pointers and all) can be read by every child. The process that polls the
 * source parses each new file into a free slot and publishes it; the others
 * take a reference to it instead of parsing.
 *
 * A shared snapshot counts its references in the slot, across processes. A
 * reference is taken only while the count is not zero and then checked
 * against the publication asked for (its tag), so a process that looked at
 * a slot as it was being released and reused never keeps the wrong snapshot.
 * The last reference given back returns the slot's pages to the system and
 * frees the slot. A slot is held as long as any process holds its snapshot:
 * an idle child keeps the one it served last until its next request, and a
 * child killed while holding one leaks it until the next restart. When no
 * slot is free, or a snapshot does not fit in one, the callers parse
 * privately, as without a share.
 */
#ifndef DC_SHARE_H
#define DC_SHARE_H

#include "dc_config.h"

#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>

#define DC_SHARE_SLOTS 4

typedef struct dc_share dc_share_t;

/* Creates a share of DC_SHARE_SLOTS slots of slot_bytes each in anonymous
 * shared memory, released with p; NULL with err on failure. Call before
 * forking. */
dc_share_t *dc_share_create(apr_pool_t *p, size_t slot_bytes, char *err, size_t err_len);

/* Parses data into a free slot for publication tag. 0: *out holds one
 * reference; -1: the file is invalid (err); 1: it could not be shared (no
 * free slot, or too big for one: err says which) and is still to be parsed. */
int dc_share_parse(dc_share_t *sh, uint32_t tag, const char *data, size_t len,
                   dc_config_t **out, dc_config_error_t *err);

/* Makes cfg the one processes catch up with (none when cfg is NULL or not
 * from dc_share_parse); the share keeps a reference to it and drops the
 * previous one's. */
void dc_share_publish(dc_share_t *sh, dc_config_t *cfg);

/* A new reference to the published snapshot if it is publication tag, else
 * NULL. */
dc_config_t *dc_share_acquire(dc_share_t *sh, uint32_t tag);

/* Slots in use (for status pages and tests). */
unsigned dc_share_slots_in_use(const dc_share_t *sh);

#endif

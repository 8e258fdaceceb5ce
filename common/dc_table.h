/*
 * dc_table: a bounded key → value table laid out in one block of memory
 * (APR shared memory in httpd, so every child sees it; the heap elsewhere),
 * read without any lock and written by one writer at a time.
 *
 * Records go one after another into a ring of bytes; a small open-addressed
 * index (a window of DC_TABLE_WINDOW entries per hash) points at the newest
 * record of each key. When the ring wraps, the oldest records are overwritten:
 * that is the eviction, first in first out, with no work on the read path.
 *
 * Readers never block: each index entry is a sequence lock, and a record is
 * checked against the ring's write position after it is copied, so a record
 * being overwritten is seen as gone rather than read torn. Every read stays
 * inside the block whatever another process writes (or has corrupted), so a
 * bad record can only be "not found".
 *
 * Writers must hold one lock shared by every process that writes (the
 * caller's: an apr_global_mutex in httpd).
 */
#ifndef DC_TABLE_H
#define DC_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define DC_TABLE_WINDOW 8
#define DC_TABLE_MAX_RECORD (64 * 1024)

typedef struct dc_table_header dc_table_header_t;
typedef struct dc_table_entry dc_table_entry_t;

/* A process's view of a table: the geometry is kept here, not read back from
 * the shared block, so nothing written into the block can send a reader
 * outside it. Copied into a child by fork like any other memory. */
typedef struct {
    dc_table_header_t *header;
    dc_table_entry_t *index;
    unsigned char *ring;
    uint64_t mask;       /* index entries - 1 */
    uint64_t ring_size;
    uint64_t max_record; /* key + value + 4 */
} dc_table_t;

/* Lays a table out in block[0, size): `entries` index entries (rounded up to
 * a power of two; 0 = one per 256 bytes of block), the rest is the ring.
 * -1 when the block is too small for them and a 16 KiB ring. */
int dc_table_init(dc_table_t *t, void *block, size_t size, size_t entries);

/* Copies the value of key into buf[0, cap). 1: found, *len set; 0: not found;
 * -1: found but larger than cap (*len is the size needed). Lock-free. */
int dc_table_get(const dc_table_t *t, const void *key, size_t key_len, void *buf, size_t cap,
                 size_t *len);

/* Stores value under key (the caller holds the writers' lock). 0, or -1 when
 * the record is larger than the table takes (max_record). */
int dc_table_put(dc_table_t *t, const void *key, size_t key_len, const void *value,
                 size_t value_len);

static inline size_t dc_table_entries(const dc_table_t *t)
{
    return (size_t)t->mask + 1;
}

#endif

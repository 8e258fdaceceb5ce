/*
 * dc_table: see dc_table.h. The read side is a sequence lock per index
 * entry (Boehm, "Can seqlocks get along with programming language memory
 * models?", 2012) plus a check of the ring's reserved end after the copy:
 * bytes at logical offset o are intact while reserved - o <= ring_size.
 */
#include "dc_table.h"
#include "dc_hash.h"

#include <sched.h>
#include <string.h>

#define TABLE_MIN_RING (16 * 1024)
#define TABLE_BYTES_PER_ENTRY 256
#define READ_TRIES 64

struct dc_table_header {
    uint64_t reserved; /* the ring is (being) written up to here; read by readers */
    uint64_t written;  /* the end of the last whole record; the writer's own */
    uint64_t pad[6];   /* the index starts on its own cache line */
};

struct dc_table_entry {
    uint32_t seq;    /* odd while the writer changes the entry */
    uint32_t len;    /* of the record: 4 (key length) + key + value */
    uint64_t hash;   /* 0 = never used */
    uint64_t offset; /* logical offset of the record in the ring */
};

static uint64_t next_pow2(uint64_t n)
{
    uint64_t p = DC_TABLE_WINDOW;

    while (p < n)
        p <<= 1;
    return p;
}

int dc_table_init(dc_table_t *t, void *block, size_t size, size_t entries)
{
    size_t fixed;

    if (!entries) {
        entries = DC_TABLE_WINDOW;
        while (entries * 2 <= size / TABLE_BYTES_PER_ENTRY)
            entries *= 2;
    }
    entries = next_pow2(entries);
    fixed = sizeof(dc_table_header_t) + entries * sizeof(dc_table_entry_t);
    if (size < fixed || size - fixed < TABLE_MIN_RING)
        return -1;
    memset(block, 0, fixed);
    t->header = block;
    t->index = (dc_table_entry_t *)((char *)block + sizeof(dc_table_header_t));
    t->ring = (unsigned char *)block + fixed;
    t->mask = entries - 1;
    t->ring_size = size - fixed;
    t->max_record = t->ring_size / 4 < DC_TABLE_MAX_RECORD ? t->ring_size / 4 : DC_TABLE_MAX_RECORD;
    return 0;
}

static uint64_t key_hash(const void *key, size_t len)
{
    uint64_t h = (uint64_t)dc_murmur3_32(key, len, 0x9747b28cu) << 32 | dc_murmur3_32(key, len, 0);

    return h ? h : 1;
}

static void ring_read(const dc_table_t *t, uint64_t off, void *dst, size_t n)
{
    size_t pos = (size_t)(off % t->ring_size), first = t->ring_size - pos < n ? t->ring_size - pos : n;

    memcpy(dst, t->ring + pos, first);
    memcpy((char *)dst + first, t->ring, n - first);
}

static int ring_equal(const dc_table_t *t, uint64_t off, const void *src, size_t n)
{
    size_t pos = (size_t)(off % t->ring_size), first = t->ring_size - pos < n ? t->ring_size - pos : n;

    return memcmp(t->ring + pos, src, first) == 0 &&
           memcmp(t->ring, (const char *)src + first, n - first) == 0;
}

static void ring_write(dc_table_t *t, uint64_t off, const void *src, size_t n)
{
    size_t pos = (size_t)(off % t->ring_size), first = t->ring_size - pos < n ? t->ring_size - pos : n;

    memcpy(t->ring + pos, src, first);
    memcpy(t->ring, (const char *)src + first, n - first);
}

/* Whether a record at off has been (or is being) overwritten. */
static int overwritten(const dc_table_t *t, uint64_t off, uint64_t reserved)
{
    return reserved < off || reserved - off > t->ring_size;
}

/* The value of key at the record (off, len) if that record is key's:
 * 1 copied, -1 too large for cap, 0 another key's. */
static int read_record(const dc_table_t *t, uint64_t off, uint32_t len, const void *key,
                       size_t key_len, void *buf, size_t cap, size_t *value_len)
{
    uint32_t stored_key_len;

    if (len < 4 + key_len || len > t->max_record)
        return 0;
    ring_read(t, off, &stored_key_len, 4);
    if (stored_key_len != key_len || !ring_equal(t, off + 4, key, key_len))
        return 0;
    *value_len = len - 4 - key_len;
    if (*value_len > cap)
        return -1;
    ring_read(t, off + 4 + key_len, buf, *value_len);
    return 1;
}

int dc_table_get(const dc_table_t *t, const void *key, size_t key_len, void *buf, size_t cap,
                 size_t *len)
{
    uint64_t h = key_hash(key, key_len);

    for (unsigned i = 0; i < DC_TABLE_WINDOW; i++) {
        const dc_table_entry_t *e = &t->index[(h + i) & t->mask];

        for (int tries = 0; tries < READ_TRIES; tries++) {
            uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE), rec_len;
            uint64_t hash, off;
            size_t value_len = 0;
            int found = 0;

            if (seq & 1) {
                if (tries >= 8)
                    sched_yield(); /* the writer may have been preempted mid-update */
                continue;
            }
            hash = __atomic_load_n(&e->hash, __ATOMIC_RELAXED);
            off = __atomic_load_n(&e->offset, __ATOMIC_RELAXED);
            rec_len = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
            if (hash == h &&
                !overwritten(t, off, __atomic_load_n(&t->header->reserved, __ATOMIC_ACQUIRE)))
                found = read_record(t, off, rec_len, key, key_len, buf, cap, &value_len);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != seq)
                continue; /* rewritten while read: read it again */
            if (found &&
                overwritten(t, off, __atomic_load_n(&t->header->reserved, __ATOMIC_RELAXED)))
                found = 0; /* the ring wrapped over it while it was copied: evicted */
            if (found) {
                *len = value_len;
                return found;
            }
            break;
        }
    }
    return 0;
}

int dc_table_put(dc_table_t *t, const void *key, size_t key_len, const void *value,
                 size_t value_len)
{
    uint64_t h = key_hash(key, key_len), reserved = t->header->reserved, off;
    dc_table_entry_t *mine = NULL, *free_entry = NULL, *oldest = NULL;
    uint32_t stored_key_len = (uint32_t)key_len, seq;
    size_t len = 4 + key_len + value_len;

    if (key_len > DC_TABLE_MAX_RECORD || value_len > DC_TABLE_MAX_RECORD || len > t->max_record)
        return -1;
    /* key's own entry, else an unused or evicted one, else the oldest */
    for (unsigned i = 0; i < DC_TABLE_WINDOW && !mine; i++) {
        dc_table_entry_t *e = &t->index[(h + i) & t->mask];
        uint32_t k;

        if (e->hash == 0 || overwritten(t, e->offset, reserved)) {
            if (!free_entry)
                free_entry = e;
            continue;
        }
        if (e->hash == h && e->len >= 4 + key_len && e->len <= t->max_record) {
            ring_read(t, e->offset, &k, 4);
            if (k == key_len && ring_equal(t, e->offset + 4, key, key_len))
                mine = e;
        }
        if (!oldest || e->offset < oldest->offset)
            oldest = e;
    }
    if (!mine)
        mine = free_entry ? free_entry : oldest;

    off = t->header->written;
    /* Readers must see the reservation before any byte it covers changes. */
    __atomic_store_n(&t->header->reserved, off + len, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ring_write(t, off, &stored_key_len, 4);
    ring_write(t, off + 4, key, key_len);
    ring_write(t, off + 4 + key_len, value, value_len);
    t->header->written = off + len;

    /* | 1: a writer that died mid-update left the entry odd */
    seq = __atomic_load_n(&mine->seq, __ATOMIC_RELAXED) | 1;
    __atomic_store_n(&mine->seq, seq, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&mine->hash, h, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->offset, off, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->len, (uint32_t)len, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->seq, seq + 1, __ATOMIC_RELEASE);
    return 0;
}

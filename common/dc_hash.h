/*
 * dc_hash: the bucketing hash. MurmurHash3 x86 32-bit, seed 0, over the
 * bytes given (the UTF-8 of ids), reduced modulo 100. Every server computes
 * the same bucket for the same visitor, which is what lets any number of
 * servers agree without talking to each other.
 */
#ifndef DC_HASH_H
#define DC_HASH_H

#include <stddef.h>
#include <stdint.h>

uint32_t dc_murmur3_32(const void *data, size_t len, uint32_t seed);

/* MurmurHash3 (seed 0) fed in pieces: the state after some bytes. */
typedef struct {
    uint32_t h;
    uint32_t len;
    unsigned char carry[4];
    unsigned ncarry;
} dc_hash_state_t;

void dc_hash_feed(dc_hash_state_t *st, const void *data, size_t n);
/* Bucket 0..99 of what was fed. */
unsigned dc_hash_bucket(const dc_hash_state_t *st);
/* Bucket 0..99 of prefix's bytes followed by b. */
unsigned dc_bucket_after(const dc_hash_state_t *prefix, const char *b, size_t blen);

/* A key hashed after many prefixes (the visitor id after each variation
 * group's id): its blocks are mixed once per decision, not once per prefix.
 * Keys longer than DC_HASH_KEY_MAX bytes are hashed as dc_bucket_after does. */
#define DC_HASH_KEY_MAX 256
typedef struct {
    const unsigned char *s;
    size_t len;
    unsigned ready; /* bit o: k[o] holds the blocks that start at s + o */
    uint32_t k[4][DC_HASH_KEY_MAX / 4 + 1];
} dc_hash_key_t;

void dc_hash_key_init(dc_hash_key_t *key, const char *s, size_t len);
/* Prepares the key's blocks for prefixes that leave no carry (dc_bucket_after_key's common
 * path) now rather than when first needed: 1 when they are ready, 0 for a key too long. */
int dc_hash_key_blocks(dc_hash_key_t *key);
/* dc_bucket_after_key() when key has no blocks for the prefix's alignment yet, or is long. */
unsigned dc_bucket_after_key_slow(const dc_hash_state_t *prefix, dc_hash_key_t *key);

/* MurmurHash3's steps, for the inline dc_bucket_after_key() and dc_hash.c. */
static inline uint32_t dc_mm3_rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static inline uint32_t dc_mm3_fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* A block's own mixing, which does not depend on the state h. */
static inline uint32_t dc_mm3_premix(uint32_t k)
{
    k *= 0xcc9e2d51u;
    k = dc_mm3_rotl32(k, 15);
    return k * 0x1b873593u;
}

static inline uint32_t dc_mm3_mix_premixed(uint32_t h, uint32_t k)
{
    h ^= k;
    h = dc_mm3_rotl32(h, 13);
    return h * 5 + 0xe6546b64u;
}

/* The bucket of state h followed by n bytes whose blocks are premixed in k (the last one
 * partial when n is not a multiple of 4), total bytes in all. */
static inline unsigned dc_mm3_bucket_after_blocks(uint32_t h, const uint32_t *k, size_t n,
                                                  uint32_t total)
{
    size_t j;

    for (j = 0; j < n / 4; j++)
        h = dc_mm3_mix_premixed(h, k[j]);
    if (n & 3)
        h ^= k[j];
    return dc_mm3_fmix32(h ^ total) % 100u;
}

/* dc_bucket_after(prefix, s, len) of the key's s and len. Inline: a decision calls it for
 * every group it serves; its common path (no carry, the blocks ready) is a fold of the
 * key's blocks into the prefix's state. */
static inline unsigned dc_bucket_after_key(const dc_hash_state_t *prefix, dc_hash_key_t *key)
{
    if (prefix->ncarry || !(key->ready & 1u))
        return dc_bucket_after_key_slow(prefix, key);
    return dc_mm3_bucket_after_blocks(prefix->h, key->k[0], key->len,
                                      prefix->len + (uint32_t)key->len);
}

/* Bucket 0..99 of the concatenation a + b (either may be empty). */
unsigned dc_bucket2(const char *a, size_t alen, const char *b, size_t blen);

static inline unsigned dc_bucket(const char *s, size_t len)
{
    return dc_murmur3_32(s, len, 0) % 100u;
}

#endif

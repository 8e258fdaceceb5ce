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
/* dc_bucket_after(prefix, s, len) of the key's s and len. */
unsigned dc_bucket_after_key(const dc_hash_state_t *prefix, dc_hash_key_t *key);

/* Bucket 0..99 of the concatenation a + b (either may be empty). */
unsigned dc_bucket2(const char *a, size_t alen, const char *b, size_t blen);

static inline unsigned dc_bucket(const char *s, size_t len)
{
    return dc_murmur3_32(s, len, 0) % 100u;
}

#endif

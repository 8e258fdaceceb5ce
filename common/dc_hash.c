#include "dc_hash.h"

#include <string.h>

static inline uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static inline uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t mix_block(uint32_t h, uint32_t k)
{
    k *= 0xcc9e2d51u;
    k = rotl32(k, 15);
    k *= 0x1b873593u;
    h ^= k;
    h = rotl32(h, 13);
    return h * 5 + 0xe6546b64u;
}

static inline uint32_t mix_tail(uint32_t h, uint32_t k)
{
    k *= 0xcc9e2d51u;
    k = rotl32(k, 15);
    k *= 0x1b873593u;
    return h ^ k;
}

static inline uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t dc_murmur3_32(const void *data, size_t len, uint32_t seed)
{
    const unsigned char *p = data;
    size_t nblocks = len / 4;
    uint32_t h = seed;
    uint32_t k = 0;

    for (size_t i = 0; i < nblocks; i++)
        h = mix_block(h, load_le32(p + i * 4));

    p += nblocks * 4;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        k ^= p[0];
        h = mix_tail(h, k);
    }
    h ^= (uint32_t)len;
    return fmix32(h);
}

/*
 * The allocation hash runs over "variation group id + visitor id". Hashing
 * the two pieces as one stream avoids building the concatenated string on
 * every decision: a 4-byte block may straddle the two pieces, so carry the
 * partial block across.
 */
unsigned dc_bucket2(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char carry[4];
    size_t ncarry = 0;
    uint32_t h = 0;
    const unsigned char *pieces[2] = {(const unsigned char *)a, (const unsigned char *)b};
    size_t lens[2] = {alen, blen};
    uint32_t k = 0;

    for (int piece = 0; piece < 2; piece++) {
        const unsigned char *p = pieces[piece];
        size_t n = lens[piece];

        while (ncarry > 0 && ncarry < 4 && n > 0) {
            carry[ncarry++] = *p++;
            n--;
        }
        if (ncarry == 4) {
            h = mix_block(h, load_le32(carry));
            ncarry = 0;
        }
        if (ncarry == 0) {
            while (n >= 4) {
                h = mix_block(h, load_le32(p));
                p += 4;
                n -= 4;
            }
            while (n > 0) {
                carry[ncarry++] = *p++;
                n--;
            }
        }
    }
    switch (ncarry) {
    case 3:
        k ^= (uint32_t)carry[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)carry[1] << 8;
        /* fall through */
    case 1:
        k ^= carry[0];
        h = mix_tail(h, k);
    }
    h ^= (uint32_t)(alen + blen);
    return fmix32(h) % 100u;
}

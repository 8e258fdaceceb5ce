#include "dc_hash.h"

#include <string.h>

static inline uint32_t mix_block(uint32_t h, uint32_t k)
{
    return dc_mm3_mix_premixed(h, dc_mm3_premix(k));
}

static inline uint32_t mix_tail(uint32_t h, uint32_t k)
{
    return h ^ dc_mm3_premix(k);
}

static inline uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The last 1-3 bytes as MurmurHash3 folds them (n is len & 3). */
static inline uint32_t load_tail(const unsigned char *p, size_t n)
{
    uint32_t k = 0;

    switch (n) {
    case 3:
        k ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        k ^= p[0];
    }
    return k;
}

uint32_t dc_murmur3_32(const void *data, size_t len, uint32_t seed)
{
    const unsigned char *p = data;
    size_t nblocks = len / 4;
    uint32_t h = seed;

    for (size_t i = 0; i < nblocks; i++)
        h = mix_block(h, load_le32(p + i * 4));

    p += nblocks * 4;
    if (len & 3)
        h = mix_tail(h, load_tail(p, len & 3));
    h ^= (uint32_t)len;
    return dc_mm3_fmix32(h);
}

/*
 * The allocation hash runs over "variation group id + visitor id". Hashing
 * the pieces as one stream avoids building the concatenated string on every
 * decision: a 4-byte block may straddle two pieces, so the partial block is
 * carried across. A snapshot keeps each variation group's state after its id
 * (dc_hash_feed), so a decision hashes only the visitor's part.
 */
void dc_hash_feed(dc_hash_state_t *st, const void *data, size_t n)
{
    const unsigned char *p = data;

    st->len += (uint32_t)n;
    while (st->ncarry > 0 && st->ncarry < 4 && n > 0) {
        st->carry[st->ncarry++] = *p++;
        n--;
    }
    if (st->ncarry == 4) {
        st->h = mix_block(st->h, load_le32(st->carry));
        st->ncarry = 0;
    }
    if (st->ncarry == 0) {
        while (n >= 4) {
            st->h = mix_block(st->h, load_le32(p));
            p += 4;
            n -= 4;
        }
        while (n > 0) {
            st->carry[st->ncarry++] = *p++;
            n--;
        }
    }
}

unsigned dc_hash_bucket(const dc_hash_state_t *st)
{
    uint32_t h = st->h, k = 0;

    switch (st->ncarry) {
    case 3:
        k ^= (uint32_t)st->carry[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)st->carry[1] << 8;
        /* fall through */
    case 1:
        k ^= st->carry[0];
        h = mix_tail(h, k);
    }
    h ^= st->len;
    return dc_mm3_fmix32(h) % 100u;
}

unsigned dc_bucket_after(const dc_hash_state_t *prefix, const char *b, size_t blen)
{
    dc_hash_state_t st = *prefix;

    dc_hash_feed(&st, b, blen);
    return dc_hash_bucket(&st);
}

unsigned dc_bucket2(const char *a, size_t alen, const char *b, size_t blen)
{
    dc_hash_state_t st = {0};

    dc_hash_feed(&st, a, alen);
    dc_hash_feed(&st, b, blen);
    return dc_hash_bucket(&st);
}

/*
 * A prefix leaves 0-3 bytes in its carry; the key's first 4 - that many
 * bytes (mod 4) complete that block, and its blocks start after them. Their
 * premixed words do not depend on the prefix's state, so they are computed
 * once per alignment, when first needed.
 */
void dc_hash_key_init(dc_hash_key_t *key, const char *s, size_t len)
{
    key->s = (const unsigned char *)s;
    key->len = len;
    key->ready = 0;
}

static void key_prepare(dc_hash_key_t *key, unsigned o)
{
    const unsigned char *p = key->s + o;
    size_t n = key->len - o, j;

    for (j = 0; j < n / 4; j++)
        key->k[o][j] = dc_mm3_premix(load_le32(p + j * 4));
    p += j * 4;
    if (n & 3)
        key->k[o][j] = dc_mm3_premix(load_tail(p, n & 3));
    key->ready |= 1u << o;
}

int dc_hash_key_blocks(dc_hash_key_t *key)
{
    if (key->len > DC_HASH_KEY_MAX)
        return 0;
    if (!(key->ready & 1u))
        key_prepare(key, 0);
    return 1;
}

/* Every alignment a prefix can leave (its carry of 0-3 bytes), and the blocks of the key for
 * it prepared when first needed; dc_bucket_after_key() inline is the common case, no carry
 * and the blocks ready. */
unsigned dc_bucket_after_key_slow(const dc_hash_state_t *prefix, dc_hash_key_t *key)
{
    unsigned o = (4 - prefix->ncarry) % 4;
    uint32_t h = prefix->h;

    if (key->len > DC_HASH_KEY_MAX || key->len < o)
        return dc_bucket_after(prefix, (const char *)key->s, key->len);
    if (!(key->ready & 1u << o))
        key_prepare(key, o);
    if (o) { /* the block the prefix began: its carry, then the key's first o bytes */
        uint32_t k = 0;
        unsigned i;

        for (i = 0; i < prefix->ncarry; i++)
            k |= (uint32_t)prefix->carry[i] << 8 * i;
        for (; i < 4; i++)
            k |= (uint32_t)key->s[i - prefix->ncarry] << 8 * i;
        h = mix_block(h, k);
    }
    return dc_mm3_bucket_after_blocks(h, key->k[o], key->len - o,
                                      prefix->len + (uint32_t)key->len);
}

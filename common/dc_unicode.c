#include "dc_unicode.h"

#include <stdint.h>

/* Decodes one UTF-8 sequence; returns its length, or 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf && len >= 2 && (s[1] & 0xc0) == 0x80) {
        *cp = (uint32_t)(c & 0x1f) << 6 | (s[1] & 0x3f);
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef && len >= 3 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
        *cp = (uint32_t)(c & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
        return *cp >= 0x800 && (*cp < 0xd800 || *cp > 0xdfff) ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4 && len >= 4 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
        (s[3] & 0xc0) == 0x80) {
        *cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
              (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
        return *cp >= 0x10000 && *cp <= 0x10ffff ? 4 : 0;
    }
    return 0;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Pairs laid out as upper = even, lower = odd (or the other way round). */
static int in_pair_range(uint32_t cp, uint32_t lo, uint32_t hi, unsigned upper_parity)
{
    return cp >= lo && cp <= hi && (cp & 1) == upper_parity;
}

static uint32_t to_lower(uint32_t cp, int fold)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (fold) {
        switch (cp) {
        case 0x00b5: return 0x03bc; /* micro sign → mu */
        case 0x017f: return 's';    /* long s */
        case 0x03c2: return 0x03c3; /* final sigma */
        case 0x0345: return 0x03b9;
        case 0x03d0: return 0x03b2;
        case 0x03d1: return 0x03b8;
        case 0x03d5: return 0x03c6;
        case 0x03d6: return 0x03c0;
        case 0x03f0: return 0x03ba;
        case 0x03f1: return 0x03c1;
        case 0x03f5: return 0x03b5;
        case 0x1e9b: return 0x1e61;
        case 0x1fbe: return 0x03b9;
        }
    }
    if ((cp >= 0xc0 && cp <= 0xde && cp != 0xd7))
        return cp + 32;
    if (cp >= 0x100 && cp <= 0x17f) {
        if (cp == 0x130)
            return 'i';
        if (cp == 0x178)
            return 0xff;
        if (in_pair_range(cp, 0x100, 0x12f, 0) || in_pair_range(cp, 0x132, 0x137, 0) ||
            in_pair_range(cp, 0x139, 0x148, 1) || in_pair_range(cp, 0x14a, 0x177, 0) ||
            in_pair_range(cp, 0x179, 0x17e, 1))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x370 && cp <= 0x3ff) {
        if (cp >= 0x391 && cp <= 0x3ab && cp != 0x3a2)
            return cp + 32;
        switch (cp) {
        case 0x386: return 0x3ac;
        case 0x388: case 0x389: case 0x38a: return cp + 37;
        case 0x38c: return 0x3cc;
        case 0x38e: case 0x38f: return cp + 63;
        case 0x3cf: return 0x3d7;
        }
        if (in_pair_range(cp, 0x3d8, 0x3ef, 0))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x400 && cp <= 0x52f) {
        if (cp <= 0x40f)
            return cp + 80;
        if (cp <= 0x42f)
            return cp + 32;
        if (cp == 0x4c0)
            return 0x4cf;
        if (in_pair_range(cp, 0x460, 0x481, 0) || in_pair_range(cp, 0x48a, 0x4bf, 0) ||
            in_pair_range(cp, 0x4c1, 0x4ce, 1) || in_pair_range(cp, 0x4d0, 0x52f, 0))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x531 && cp <= 0x556)
        return cp + 48;
    if (cp >= 0x1e00 && cp <= 0x1eff) {
        if (cp == 0x1e9e)
            return 0xdf;
        if (in_pair_range(cp, 0x1e00, 0x1e95, 0) || in_pair_range(cp, 0x1ea0, 0x1eff, 0))
            return cp + 1;
        return cp;
    }
    switch (cp) {
    case 0x2126: return 0x3c9; /* ohm sign */
    case 0x212a: return 'k';   /* kelvin sign */
    case 0x212b: return 0xe5;  /* angstrom sign */
    }
    if (cp >= 0xff21 && cp <= 0xff3a)
        return cp + 32;
    return cp;
}

size_t dc_utf8_lower(const char *s, size_t len, char *out, int fold)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;

        if (p[i] < 0x80) {
            out[o++] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
            i++;
            continue;
        }
        n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            out[o++] = (char)p[i++];
            continue;
        }
        o += utf8_encode(to_lower(cp, fold), out + o);
        i += n;
    }
    return o;
}

int dc_utf8_is_lower(const char *s, size_t len, int fold)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;

        if (p[i] < 0x80) {
            if (p[i] >= 'A' && p[i] <= 'Z')
                return 0;
            i++;
            continue;
        }
        n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            i++;
            continue;
        }
        if (to_lower(cp, fold) != cp)
            return 0;
        i += n;
    }
    return 1;
}

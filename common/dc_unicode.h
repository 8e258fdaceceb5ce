/*
 * dc_unicode: the string case rules of targeting. The decision-api compares
 * strings case-insensitively with Unicode lower-casing (and simple case
 * folding for equality); we do the same for Latin, Greek, Cyrillic, Armenian
 * and full-width letters, which covers the scripts that have case and that
 * visitor contexts carry in practice. Bytes that are not valid UTF-8 are
 * copied unchanged, so no input can make these functions fail.
 */
#ifndef DC_UNICODE_H
#define DC_UNICODE_H

#include <stddef.h>

/*
 * Writes the lower-cased form of s[0..len) into out (capacity at least
 * dc_utf8_lower_bound(len)) and returns its length. With fold set, letters
 * whose simple case folding differs from their lower case (final sigma, long
 * s, Kelvin sign, micro sign, ...) are folded too, for equality tests.
 */
size_t dc_utf8_lower(const char *s, size_t len, char *out, int fold);

/* Lower-casing can grow a string (U+023A → U+2C65 is 2 → 3 bytes); bound it. */
static inline size_t dc_utf8_lower_bound(size_t len)
{
    return len + len / 2 + 1;
}

/* 1 when s needs no change under dc_utf8_lower(fold): the common, ASCII-lower case. */
int dc_utf8_is_lower(const char *s, size_t len, int fold);

#endif

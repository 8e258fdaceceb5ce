/*
 * dc_semver: semantic versions as the SEMVER_* operators read them (the rules
 * of Go's golang.org/x/mod/semver, which the decision-api uses, after adding
 * the optional leading "v"): "2.1" == "2.1.0", prereleases sort before the
 * release, build metadata is ignored, and anything invalid (including "")
 * compares as nothing — the caller treats it as no match.
 */
#ifndef DC_SEMVER_H
#define DC_SEMVER_H

#include <stddef.h>

/* A valid version, parsed: pointers into the string it was parsed from. */
typedef struct {
    const char *major, *minor, *patch; /* digit runs; NULL for an implied 0 */
    size_t major_len, minor_len, patch_len;
    const char *pre; /* after '-', NULL when none */
    size_t pre_len;
} dc_semver_t;

/* Returns 0 and fills *v, or -1 when s is not a valid version. */
int dc_semver_parse(const char *s, size_t len, dc_semver_t *v);
/* -1, 0 or 1 as a sorts before, with or after b. */
int dc_semver_cmp(const dc_semver_t *a, const dc_semver_t *b);

/* Sets *cmp to <0, 0 or >0 and returns 0; returns -1 when either side is invalid. */
int dc_semver_compare(const char *a, size_t alen, const char *b, size_t blen, int *cmp);
int dc_semver_valid(const char *s, size_t len);

#endif

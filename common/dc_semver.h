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

/* Sets *cmp to <0, 0 or >0 and returns 0; returns -1 when either side is invalid. */
int dc_semver_compare(const char *a, size_t alen, const char *b, size_t blen, int *cmp);
int dc_semver_valid(const char *s, size_t len);

#endif

#include "dc_semver.h"

#include <string.h>

static int is_ident_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

/* A number: digits without a leading zero (but "0" itself). */
static size_t scan_number(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && s[n] >= '0' && s[n] <= '9')
        n++;
    if (n == 0 || (n > 1 && s[0] == '0'))
        return 0;
    return n;
}

/* Dot-separated non-empty identifiers; numeric ones without leading zeros when strict. */
static int valid_idents(const char *s, size_t len, int numeric_rule)
{
    size_t start = 0;

    if (len == 0)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            size_t n = i - start;

            if (n == 0)
                return 0;
            if (numeric_rule && all_digits(s + start, n) && n > 1 && s[start] == '0')
                return 0;
            start = i + 1;
        } else if (!is_ident_char(s[i])) {
            return 0;
        }
    }
    return 1;
}

int dc_semver_parse(const char *s, size_t len, dc_semver_t *v)
{
    size_t n;

    memset(v, 0, sizeof(*v));
    /* Go's rule needs a lower-case "v"; anything else gets one prepended, so
     * "V1.0.0" becomes "vV1.0.0" and is invalid. */
    if (len > 0 && s[0] == 'v') {
        s++;
        len--;
    }
    n = scan_number(s, len);
    if (!n)
        return -1;
    v->major = s;
    v->major_len = n;
    s += n;
    len -= n;
    if (len == 0)
        return 0;
    if (s[0] != '.')
        return -1;
    s++;
    len--;
    n = scan_number(s, len);
    if (!n)
        return -1;
    v->minor = s;
    v->minor_len = n;
    s += n;
    len -= n;
    if (len == 0)
        return 0;
    if (s[0] != '.')
        return -1;
    s++;
    len--;
    n = scan_number(s, len);
    if (!n)
        return -1;
    v->patch = s;
    v->patch_len = n;
    s += n;
    len -= n;
    if (len > 0 && s[0] == '-') {
        const char *plus = memchr(s, '+', len);
        size_t pre_len = plus ? (size_t)(plus - s) - 1 : len - 1;

        if (!valid_idents(s + 1, pre_len, 1))
            return -1;
        v->pre = s + 1;
        v->pre_len = pre_len;
        s += 1 + pre_len;
        len -= 1 + pre_len;
    }
    if (len > 0 && s[0] == '+') {
        if (!valid_idents(s + 1, len - 1, 0))
            return -1;
        len = 0;
    }
    return len == 0 ? 0 : -1;
}

static int compare_numbers(const char *a, size_t alen, const char *b, size_t blen)
{
    if (!a) {
        a = "0";
        alen = 1;
    }
    if (!b) {
        b = "0";
        blen = 1;
    }
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

static int compare_prerelease(const char *a, size_t alen, const char *b, size_t blen)
{
    const char *pa = a, *ea, *pb = b, *eb;

    if (!a && !b)
        return 0;
    if (!a)
        return 1; /* a release sorts after any of its prereleases */
    if (!b)
        return -1;
    ea = a + alen; /* not before: NULL + 0 is undefined too */
    eb = b + blen;
    while (pa < ea && pb < eb) {
        const char *da = memchr(pa, '.', (size_t)(ea - pa));
        const char *db = memchr(pb, '.', (size_t)(eb - pb));
        size_t na, nb;
        int anum, bnum, c;

        da = da ? da : ea;
        db = db ? db : eb;
        na = (size_t)(da - pa);
        nb = (size_t)(db - pb);
        anum = all_digits(pa, na);
        bnum = all_digits(pb, nb);
        if (anum && bnum) {
            c = compare_numbers(pa, na, pb, nb);
        } else if (anum != bnum) {
            c = anum ? -1 : 1; /* numeric identifiers sort first */
        } else {
            c = memcmp(pa, pb, na < nb ? na : nb);
            if (c == 0 && na != nb)
                c = na < nb ? -1 : 1;
        }
        if (c)
            return c < 0 ? -1 : 1;
        pa = da < ea ? da + 1 : ea;
        pb = db < eb ? db + 1 : eb;
    }
    if (pa >= ea && pb >= eb)
        return 0;
    return pa >= ea ? -1 : 1;
}

int dc_semver_valid(const char *s, size_t len)
{
    dc_semver_t v;

    return dc_semver_parse(s, len, &v) == 0;
}

int dc_semver_cmp(const dc_semver_t *a, const dc_semver_t *b)
{
    int c = compare_numbers(a->major, a->major_len, b->major, b->major_len);

    if (!c)
        c = compare_numbers(a->minor, a->minor_len, b->minor, b->minor_len);
    if (!c)
        c = compare_numbers(a->patch, a->patch_len, b->patch, b->patch_len);
    if (!c)
        c = compare_prerelease(a->pre, a->pre_len, b->pre, b->pre_len);
    return c < 0 ? -1 : c > 0;
}

int dc_semver_compare(const char *a, size_t alen, const char *b, size_t blen, int *cmp)
{
    dc_semver_t va, vb;

    if (dc_semver_parse(a, alen, &va) < 0 || dc_semver_parse(b, blen, &vb) < 0)
        return -1;
    *cmp = dc_semver_cmp(&va, &vb);
    return 0;
}

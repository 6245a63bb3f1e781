/* range.c — single byte-range parsing (see range.h). */
#include "api/range.h"

#include <string.h>
#include <strings.h>

/* Reads decimal digits at *p into *out; 0 when at least one digit and no overflow. */
static int read_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

RangeResult range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len)
{
    if (!header) return RANGE_NONE;
    const char *p = skip_ws(header);
    if (strncasecmp(p, "bytes", 5) != 0) return RANGE_NONE;
    p = skip_ws(p + 5);
    if (*p != '=') return RANGE_NONE;
    p = skip_ws(p + 1);
    if (strchr(p, ',')) return RANGE_NONE;  /* several ranges: the whole file instead */

    uint64_t a = 0, b = 0;
    int have_a = 0, have_b = 0;
    if (*p != '-') {
        if (read_u64(&p, &a) != 0) return RANGE_NONE;
        have_a = 1;
    }
    p = skip_ws(p);
    if (*p != '-') return RANGE_NONE;
    p = skip_ws(p + 1);
    if (*p >= '0' && *p <= '9') {
        if (read_u64(&p, &b) != 0) return RANGE_NONE;
        have_b = 1;
    }
    if (*skip_ws(p) != '\0') return RANGE_NONE;
    if (!have_a && !have_b) return RANGE_NONE;

    if (!have_a) {  /* suffix: the last b bytes */
        if (b == 0 || size == 0) return RANGE_UNSATISFIABLE;
        if (b > size) b = size;
        *start = size - b;
        *len = b;
        return RANGE_PARTIAL;
    }
    if (have_b && b < a) return RANGE_NONE;  /* invalid syntax: ignored per the RFC */
    if (a >= size) return RANGE_UNSATISFIABLE;
    uint64_t last = (have_b && b < size - 1) ? b : size - 1;
    *start = a;
    *len = last - a + 1;
    return RANGE_PARTIAL;
}

/* params.c — strict integers and flags from URLs (see params.h). */
#include "api/params.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int parse_i64_strict(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s) return -1;
    const char *p = s;
    if (*p == '-') {
        if (lo >= 0) return -1;  /* "-0" is not a way to write a non-negative number */
        p++;
    }
    if (*p == '\0') return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return -1;
    if (strlen(p) > 19) {
        /* More than 19 digits overflows int64 unless they are leading zeros. */
        while (*p == '0' && p[1]) p++;
        if (strlen(p) > 19) return -1;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0') return -1;
    if (v < lo || v > hi) return -1;
    *out = (int64_t)v;
    return 0;
}

int parse_job_id(const char *s, int64_t *out)
{
    if (!s || s[0] == '-') return -1;
    return parse_i64_strict(s, 1, INT64_MAX, out);
}

int parse_flag(const char *s)
{
    if (!s || !*s) return 0;
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) return 1;
    if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0) return 0;
    return -1;
}

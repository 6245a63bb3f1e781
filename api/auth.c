/* auth.c — Bearer token comparison in constant time (see auth.h). */
#include "api/auth.h"

#include <string.h>
#include <strings.h>

/* Walks the whole expected token whatever the candidate holds: the time depends only on the
 * token's length, which is not the secret. */
static int equal_constant_time(const char *candidate, const char *expected)
{
    size_t clen = strlen(candidate), elen = strlen(expected);
    volatile unsigned char diff = (unsigned char)(clen != elen);
    for (size_t i = 0; i < elen; i++) {
        unsigned char c = i < clen ? (unsigned char)candidate[i] : 0;
        diff |= (unsigned char)(c ^ (unsigned char)expected[i]);
    }
    return diff == 0;
}

int auth_bearer_ok(const char *authorization, const char *token)
{
    if (!authorization || !token || !token[0]) return 0;
    const char *p = authorization;
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) return 0;
    p += 6;
    while (*p == ' ' || *p == '\t') p++;
    /* trailing whitespace is not part of the token */
    char candidate[512];
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (n >= sizeof candidate) return 0;
    memcpy(candidate, p, n);
    candidate[n] = '\0';
    return equal_constant_time(candidate, token);
}

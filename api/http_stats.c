/* http_stats.c — atomic per-status request counters and their Prometheus text (http_stats.h). */
#include "api/http_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void http_stats_count(HttpStats *st, int status)
{
    if (status >= 100 && status < 600) atomic_fetch_add_explicit(&st->by_code[status], 1, memory_order_relaxed);
}

char *http_stats_prometheus(HttpStats *st, const char *prefix)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    /* 500 codes at most, each line under 64 bytes, plus HELP/TYPE */
    size_t cap = plen + 2 + 256 + 500 * 64;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = 0;
    if (plen) {
        memcpy(out, prefix, plen);
        n = plen;
        if (out[n - 1] != '\n') out[n++] = '\n';
    }
    n += (size_t)snprintf(out + n, cap - n,
                          "# HELP mocod_http_requests_total HTTP requests answered, by status code.\n"
                          "# TYPE mocod_http_requests_total counter\n");
    for (int code = 100; code < 600; code++) {
        uint64_t v = atomic_load_explicit(&st->by_code[code], memory_order_relaxed);
        if (v == 0) continue;
        n += (size_t)snprintf(out + n, cap - n, "mocod_http_requests_total{code=\"%d\"} %" PRIu64 "\n", code, v);
    }
    return out;
}

/* http_stats.h — request counters by status code, for /metrics (mocod_http_requests_total). */
#ifndef MOCOD_API_HTTP_STATS_H
#define MOCOD_API_HTTP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    _Atomic uint64_t by_code[600];  /* index = HTTP status; 100..599 */
} HttpStats;

void http_stats_count(HttpStats *st, int status);
/* Appends the Prometheus lines for the counters to prefix (which may be NULL) into a new
 * malloc'd string; NULL when out of memory. */
char *http_stats_prometheus(HttpStats *st, const char *prefix);

#endif

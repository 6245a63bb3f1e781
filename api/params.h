/* params.h — strict parsing of numbers that arrive in URLs (job ids, query parameters).
 *
 * Strict means: decimal digits only (an optional leading '-' where negatives are allowed), no
 * spaces, no '+', no trailing text, no overflow. "12abc", " 5", "1e3" and "99999999999999999999"
 * are all rejected, never silently truncated.
 */
#ifndef MOCOD_API_PARAMS_H
#define MOCOD_API_PARAMS_H

#include <stdint.h>

/* 0 and *out set when s is an integer in [lo, hi]; -1 otherwise. */
int parse_i64_strict(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* A job id: a positive integer (1 .. INT64_MAX). 0 or -1. */
int parse_job_id(const char *s, int64_t *out);
/* A boolean query flag: "1"/"true"/"yes" → 1, "0"/"false"/"no"/"" → 0; -1 for anything else. */
int parse_flag(const char *s);

#endif

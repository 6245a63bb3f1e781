/* range.h — the one HTTP Range form checkpoint downloads support: a single byte range.
 *
 * "bytes=a-b", "bytes=a-" and "bytes=-n" (the last n bytes), RFC 9110 §14. A header that is
 * not of this form (another unit, several ranges, a < b reversed, garbage) is ignored and the
 * whole file is sent, as the RFC allows; a well-formed range that misses the file is
 * unsatisfiable (416).
 */
#ifndef MOCOD_API_RANGE_H
#define MOCOD_API_RANGE_H

#include <stdint.h>

typedef enum {
    RANGE_NONE,           /* no usable Range header: send everything (200) */
    RANGE_PARTIAL,        /* send [*start, *start + *len) (206) */
    RANGE_UNSATISFIABLE,  /* 416 with Content-Range: bytes * / size */
} RangeResult;

RangeResult range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len);

#endif

/* safetensors_internal.h — what the safetensors reader and writer share (train/safetensors*.c
 * only): dtype names, byte counts of shapes, error formatting.
 */
#ifndef MOCO_SAFETENSORS_INTERNAL_H
#define MOCO_SAFETENSORS_INTERNAL_H

#include "common/error.h"
#include "train/safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* A header larger than this is not a checkpoint but a corrupt length field (the reference
 * implementation uses the same 100 MB limit). */
#define ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)

/* "F32", "I64", ... as the format spells them; NULL for an unknown dtype. */
const char *st_dtype_name(StDtype dtype);
/* 0 and *out set when name is a supported dtype, -1 otherwise. */
int st_dtype_from_name(const char *name, StDtype *out);
/* Byte count of a tensor of this shape, or -1 when it overflows or a dimension is negative. */
int64_t st_shape_bytes(StDtype dtype, int ndim, const int64_t *shape);
/* snprintf into err (when err is not NULL). */
void st_set_err(char *err, size_t errlen, const char *fmt, ...) MOCO_PRINTF(3, 4);

#endif

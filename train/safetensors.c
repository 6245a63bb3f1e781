/* safetensors.c — the safetensors format's shared pieces: dtypes, shape sizes, errors.
 *
 * Format (as the reference implementation, huggingface/safetensors, writes it): an 8-byte
 * little-endian header length N, N bytes of JSON, then the data section. The JSON maps each
 * tensor name to {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the
 * data section, plus an optional "__metadata__" object whose values are strings. The writer is
 * in safetensors_write.c, the validating reader in safetensors_read.c.
 */
#include "train/safetensors_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const dtype_names[] = {"F32", "I64", "I32", "U8", "F64"};
static const size_t dtype_sizes[] = {4, 8, 4, 1, 8};
#define ST_NUM_DTYPES 5

size_t st_dtype_size(StDtype dtype)
{
    return ((unsigned)dtype < ST_NUM_DTYPES) ? dtype_sizes[dtype] : 0;
}

const char *st_dtype_name(StDtype dtype)
{
    return ((unsigned)dtype < ST_NUM_DTYPES) ? dtype_names[dtype] : NULL;
}

int st_dtype_from_name(const char *name, StDtype *out)
{
    for (int i = 0; i < ST_NUM_DTYPES; i++)
        if (strcmp(name, dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

void st_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t st_shape_bytes(StDtype dtype, int ndim, const int64_t *shape)
{
    uint64_t n = st_dtype_size(dtype);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return -1;
        uint64_t dim = (uint64_t)shape[d];
        if (dim != 0 && n > (uint64_t)INT64_MAX / dim) return -1;
        n *= dim;
    }
    return (int64_t)n;
}

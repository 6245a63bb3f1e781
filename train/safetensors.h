/* safetensors.h — reading and writing safetensors files (the checkpoint format, DESIGN §4).
 *
 * Layout: 8-byte little-endian header length, a JSON header mapping tensor names to
 * {dtype, shape, data_offsets} plus an optional "__metadata__" object of string values, then
 * the raw little-endian tensor bytes. Writes are atomic and durable: a temporary file in the
 * same folder, fsync, rename over the target, fsync of the folder — a crash at any instant
 * leaves either the old file or the new one, never a torn one.
 */
#ifndef MOCO_SAFETENSORS_H
#define MOCO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32 = 0, ST_I64 = 1, ST_I32 = 2, ST_U8 = 3, ST_F64 = 4 } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data;   /* writer: borrowed pointer; reader: points into the loaded file */
} StTensor;

/* ---- writing ---- */
typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
/* The data pointer is borrowed until st_writer_save returns. */
void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const void *data);
void st_writer_add_metadata(StWriter *w, const char *key, const char *value);
/* 0 on success, -1 with a message (disk full, permission...) in err; the target is untouched
 * on failure. Problems in st_writer_add (a name added twice, too many dimensions) are reported
 * here. Header keys keep the order of adding; the data section holds 8-byte dtypes first, then
 * 4-byte, then 1-byte ones, so every tensor is aligned to its element size and there are no
 * gaps. The temporary file is <dir>/.<name>.tmp.<pid>; it never survives a failed save. */
int st_writer_save(StWriter *w, const char *path, char *err, size_t errlen);
void st_writer_free(StWriter *w);

/* ---- reading ---- */
typedef struct {
    void *file_bytes;       /* the whole file as read (header included) */
    size_t file_size;
    int count;
    StTensor *tensors;
    int meta_count;
    char **meta_keys, **meta_values;
    void *allocation;       /* what st_free releases; the data section in it is 64-byte aligned */
} StFile;

/* 0 on success; -1 with a message naming the file and the problem (truncated, bad header,
 * offsets out of range, unsupported dtype). Tensor data points into one buffer whose data
 * section is 64-byte aligned; a tensor is aligned to its element size when its offset is (files
 * from st_writer_save always are; for foreign files memcpy is the safe way to read). */
int st_load(const char *path, StFile *out, char *err, size_t errlen);
const StTensor *st_find(const StFile *f, const char *name);
const char *st_metadata(const StFile *f, const char *key);
void st_free(StFile *f);
size_t st_dtype_size(StDtype dtype);

#endif

/* safetensors_read.c — the validating safetensors reader (see safetensors.h).
 *
 * The whole file is read into one buffer placed so that the data section is 64-byte aligned
 * in memory; tensors point into it. Everything in the header is checked before a pointer is
 * handed out: the header length, the JSON, dtypes, shapes against byte spans, spans inside the
 * data section and not overlapping each other. Every message names the file.
 */
#include "train/safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void free_partial(StFile *f)
{
    if (f->tensors)
        for (int i = 0; i < f->count; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->allocation);
    memset(f, 0, sizeof *f);
}

void st_free(StFile *f)
{
    if (f) free_partial(f);
}

/* pread until len bytes are in or the file ends; returns bytes read or -1. */
static ssize_t read_full(int fd, void *buf, size_t len, off_t offset)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, offset + (off_t)done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *node, uint64_t *out)
{
    if (!cJSON_IsNumber(node)) return -1;
    double v = node->valuedouble;
    if (!(v >= 0) || v > 9007199254740992.0 || v != (double)(uint64_t)v) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int cmp_span(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Parses one tensor entry of the header into t; data pointers are set by the caller. */
static int parse_entry(const char *path, const cJSON *entry, uint64_t data_size, StTensor *t,
                       uint64_t span[2], char *err, size_t errlen)
{
    const char *name = entry->string;
    if (!cJSON_IsObject(entry)) {
        st_set_err(err, errlen, "%s: header entry '%s' is not an object", path, name);
        return -1;
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs)) {
        st_set_err(err, errlen, "%s: tensor '%s' needs a string dtype, a shape list and a "
                "data_offsets list", path, name);
        return -1;
    }
    if (st_dtype_from_name(dtype->valuestring, &t->dtype) != 0) {
        st_set_err(err, errlen, "%s: tensor '%s' has unsupported dtype \"%s\" (supported: F32, "
                "F64, I64, I32, U8)", path, name, dtype->valuestring);
        return -1;
    }
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS) {
        st_set_err(err, errlen, "%s: tensor '%s' has %d dimensions (at most %d)", path, name, ndim,
                ST_MAX_DIMS);
        return -1;
    }
    t->ndim = ndim;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (json_uint(dim, &v) != 0 || v > (uint64_t)INT64_MAX) {
            st_set_err(err, errlen, "%s: tensor '%s' has a shape entry that is not a "
                    "non-negative integer", path, name);
            return -1;
        }
        t->shape[d++] = (int64_t)v;
    }
    if (cJSON_GetArraySize(offs) != 2 || json_uint(cJSON_GetArrayItem(offs, 0), &span[0]) != 0 ||
        json_uint(cJSON_GetArrayItem(offs, 1), &span[1]) != 0 || span[1] < span[0]) {
        st_set_err(err, errlen, "%s: tensor '%s' needs data_offsets [begin, end] with "
                "0 <= begin <= end", path, name);
        return -1;
    }
    if (span[1] > data_size) {
        st_set_err(err, errlen, "%s: tensor '%s' ends at byte %" PRIu64 " of a %" PRIu64
                "-byte data section (file truncated?)", path, name, span[1], data_size);
        return -1;
    }
    int64_t want = st_shape_bytes(t->dtype, t->ndim, t->shape);
    if (want < 0 || (uint64_t)want != span[1] - span[0]) {
        st_set_err(err, errlen, "%s: tensor '%s' has %" PRIu64 " bytes but its shape and dtype "
                "need %" PRId64, path, name, span[1] - span[0], want);
        return -1;
    }
    t->nbytes = (size_t)want;
    return 0;
}

static int parse_metadata(const char *path, const cJSON *meta, StFile *out, char *err,
                          size_t errlen)
{
    if (!cJSON_IsObject(meta)) {
        st_set_err(err, errlen, "%s: __metadata__ is not an object", path);
        return -1;
    }
    int n = cJSON_GetArraySize(meta);
    out->meta_keys = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    out->meta_values = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    const cJSON *item;
    cJSON_ArrayForEach(item, meta) {
        if (!cJSON_IsString(item)) {
            st_set_err(err, errlen, "%s: __metadata__ value '%s' is not a string", path,
                    item->string);
            return -1;
        }
        out->meta_keys[out->meta_count] = xstrdup(item->string);
        out->meta_values[out->meta_count] = xstrdup(item->valuestring);
        out->meta_count++;
    }
    return 0;
}

/* Checks the parsed header against the data section and fills out->tensors. */
static int parse_header(const char *path, const cJSON *root, const unsigned char *data,
                        uint64_t data_size, StFile *out, char *err, size_t errlen)
{
    if (!cJSON_IsObject(root)) {
        st_set_err(err, errlen, "%s: the header is not a JSON object", path);
        return -1;
    }
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (out->meta_keys) {
                st_set_err(err, errlen, "%s: __metadata__ appears twice", path);
                return -1;
            }
            if (parse_metadata(path, item, out, err, errlen) != 0) return -1;
        } else {
            n++;
        }
    }
    out->tensors = xcalloc((size_t)(n ? n : 1), sizeof(StTensor));
    uint64_t *spans = xmalloc((size_t)(n ? n : 1) * 2 * sizeof(uint64_t));
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        for (int i = 0; i < out->count; i++)
            if (strcmp(out->tensors[i].name, item->string) == 0) {
                st_set_err(err, errlen, "%s: tensor '%s' appears twice in the header", path,
                        item->string);
                free(spans);
                return -1;
            }
        StTensor *t = &out->tensors[out->count];
        t->name = xstrdup(item->string);
        out->count++;
        if (parse_entry(path, item, data_size, t, &spans[2 * (out->count - 1)], err,
                        errlen) != 0) {
            free(spans);
            return -1;
        }
        t->data = data + spans[2 * (out->count - 1)];
    }
    /* Two tensors sharing bytes would alias each other: sort spans, compare neighbours. */
    qsort(spans, (size_t)n, 2 * sizeof(uint64_t), cmp_span);
    for (int i = 1; i < n; i++)
        if (spans[2 * i] < spans[2 * i - 1]) {
            st_set_err(err, errlen, "%s: tensors overlap in the data section (bytes %" PRIu64
                    "..%" PRIu64 " and %" PRIu64 "..%" PRIu64 ")", path, spans[2 * i - 2],
                    spans[2 * i - 1], spans[2 * i], spans[2 * i + 1]);
            free(spans);
            return -1;
        }
    free(spans);
    return 0;
}

int st_load(const char *path, StFile *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        st_set_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        st_set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    uint64_t file_size = (uint64_t)st.st_size;
    unsigned char len_le[8];
    if (file_size < 8 || read_full(fd, len_le, 8, 0) != 8) {
        st_set_err(err, errlen, "%s: not a safetensors file: %" PRIu64 " bytes, shorter than the "
                "8-byte header length", path, file_size);
        close(fd);
        return -1;
    }
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)len_le[i] << (8 * i);
    if (header_len < 2 || header_len > ST_MAX_HEADER_BYTES || header_len > file_size - 8) {
        st_set_err(err, errlen, "%s: not a safetensors file or truncated: header length %" PRIu64
                " does not fit a %" PRIu64 "-byte file", path, header_len, file_size);
        close(fd);
        return -1;
    }
    if (file_size > (uint64_t)SIZE_MAX - 128) {
        st_set_err(err, errlen, "%s: too large to load", path);
        close(fd);
        return -1;
    }
    /* Place the file so that its data section (at byte 8 + header_len) is 64-byte aligned;
     * one extra zero byte after the end lets cJSON parse the header in place. */
    size_t shift = (size_t)((64 - (8 + header_len) % 64) % 64);
    unsigned char *buf = xaligned_alloc((size_t)file_size + shift + 1);
    unsigned char *bytes = buf + shift;
    ssize_t got = read_full(fd, bytes, (size_t)file_size, 0);
    int saved = errno;
    close(fd); /* read-only descriptor: nothing to lose on close */
    if (got != (ssize_t)file_size) {
        st_set_err(err, errlen, "%s: read failed: %s", path,
                got < 0 ? strerror(saved) : "file shrank while being read");
        free(buf);
        return -1;
    }
    out->allocation = buf;
    out->file_bytes = bytes;
    out->file_size = (size_t)file_size;

    const char *header = (const char *)bytes + 8;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &parse_end, 0);
    if (!root) {
        st_set_err(err, errlen, "%s: header is not valid JSON (near byte %ld of the header)", path,
                parse_end ? (long)(parse_end - header) : -1L);
        free_partial(out);
        return -1;
    }
    /* The reference pads with spaces; anything else after the JSON value is corruption. */
    for (const char *p = parse_end; p < header + header_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_set_err(err, errlen, "%s: unexpected bytes after the JSON header (at byte %ld of "
                    "the header)", path, (long)(p - header));
            cJSON_Delete(root);
            free_partial(out);
            return -1;
        }
    const unsigned char *data = bytes + 8 + header_len;
    int rc = parse_header(path, root, data, file_size - 8 - header_len, out, err, errlen);
    cJSON_Delete(root);
    if (rc != 0) {
        free_partial(out);
        return -1;
    }
    return 0;
}

const StTensor *st_find(const StFile *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_metadata(const StFile *f, const char *key)
{
    for (int i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

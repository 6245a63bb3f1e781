/* safetensors_write.c — the safetensors writer: atomic and durable saves (see safetensors.h).
 *
 * Header keys appear in the order tensors were added ("__metadata__" first, as the reference
 * does); the data section holds the tensors stable-sorted by element size, largest first, so
 * every tensor starts aligned to its element size and the section has no gaps (the reference
 * reader rejects gaps). Offsets are printed as exact integers, never through doubles. The
 * header is padded with spaces so that the data section starts on an 8-byte boundary.
 *
 * Durability follows redis' rdbSave: write a temporary file in the target's folder, fsync it,
 * rename it over the target, fsync the folder. Any failure before the rename removes the
 * temporary file and leaves the target as it was.
 */
#include "train/safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct StWriter {
    StTensor *tensors;
    int count, cap;
    char **meta_keys, **meta_values;
    int meta_count, meta_cap;
    /* st_writer_add cannot return an error; the first problem is kept and reported by save. */
    char *deferred_error;
};

StWriter *st_writer_new(void) { return xcalloc(1, sizeof(StWriter)); }

static void defer_error(StWriter *w, const char *fmt, ...) MOCO_PRINTF(2, 3);
static void defer_error(StWriter *w, const char *fmt, ...)
{
    if (w->deferred_error) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w->deferred_error = xstrdup(buf);
}

void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                   const void *data)
{
    if (strcmp(name, "__metadata__") == 0) {
        defer_error(w, "tensor name '__metadata__' is reserved by the format");
        return;
    }
    if (st_dtype_size(dtype) == 0) {
        defer_error(w, "tensor '%s': unknown dtype %d", name, (int)dtype);
        return;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS) {
        defer_error(w, "tensor '%s': %d dimensions (at most %d)", name, ndim, ST_MAX_DIMS);
        return;
    }
    int64_t nbytes = st_shape_bytes(dtype, ndim, shape);
    if (nbytes < 0) {
        defer_error(w, "tensor '%s': negative or overflowing shape", name);
        return;
    }
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->tensors[i].name, name) == 0) {
            defer_error(w, "tensor '%s' added twice", name);
            return;
        }
    if (nbytes > 0 && !data) {
        defer_error(w, "tensor '%s': no data", name);
        return;
    }
    if (w->count == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->tensors = xrealloc(w->tensors, (size_t)w->cap * sizeof(StTensor));
    }
    StTensor *t = &w->tensors[w->count++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    t->nbytes = (size_t)nbytes;
    t->data = data;
}

void st_writer_add_metadata(StWriter *w, const char *key, const char *value)
{
    for (int i = 0; i < w->meta_count; i++)
        if (strcmp(w->meta_keys[i], key) == 0) { /* the later value wins */
            free(w->meta_values[i]);
            w->meta_values[i] = xstrdup(value);
            return;
        }
    if (w->meta_count == w->meta_cap) {
        w->meta_cap = w->meta_cap ? 2 * w->meta_cap : 16;
        w->meta_keys = xrealloc(w->meta_keys, (size_t)w->meta_cap * sizeof(char *));
        w->meta_values = xrealloc(w->meta_values, (size_t)w->meta_cap * sizeof(char *));
    }
    w->meta_keys[w->meta_count] = xstrdup(key);
    w->meta_values[w->meta_count] = xstrdup(value);
    w->meta_count++;
}

void st_writer_free(StWriter *w)
{
    if (!w) return;
    for (int i = 0; i < w->count; i++) free(w->tensors[i].name);
    free(w->tensors);
    for (int i = 0; i < w->meta_count; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    free(w->deferred_error);
    free(w);
}

/* Order of tensors in the data section: larger elements first, otherwise as added, so each
 * tensor's offset is a multiple of its element size (the section itself starts 8-aligned). */
static int *data_section_order(const StWriter *w)
{
    int *order = xmalloc((size_t)(w->count ? w->count : 1) * sizeof(int));
    int n = 0;
    static const size_t sizes_desc[] = {8, 4, 2, 1};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < w->count; i++)
            if (st_dtype_size(w->tensors[i].dtype) == sizes_desc[s]) order[n++] = i;
    return order;
}

static cJSON *raw_int(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON *node = cJSON_CreateRaw(buf);
    if (!node) die("out of memory building a safetensors header");
    return node;
}

static void add_item(cJSON *parent, const char *key, cJSON *item)
{
    if (!item || !cJSON_AddItemToObject(parent, key, item))
        die("out of memory building a safetensors header");
}

/* The JSON header, space-padded so that 8 + length is a multiple of 8. Sets *data_bytes. */
static char *build_header(const StWriter *w, size_t *header_len, uint64_t *data_bytes)
{
    int *order = data_section_order(w);
    int64_t *begin = xmalloc((size_t)(w->count ? w->count : 1) * sizeof(int64_t));
    uint64_t offset = 0;
    for (int j = 0; j < w->count; j++) {
        begin[order[j]] = (int64_t)offset;
        offset += w->tensors[order[j]].nbytes;
    }
    *data_bytes = offset;

    cJSON *root = cJSON_CreateObject();
    if (!root) die("out of memory building a safetensors header");
    if (w->meta_count > 0) {
        cJSON *meta = cJSON_CreateObject();
        add_item(root, "__metadata__", meta);
        for (int i = 0; i < w->meta_count; i++)
            add_item(meta, w->meta_keys[i], cJSON_CreateString(w->meta_values[i]));
    }
    for (int i = 0; i < w->count; i++) {
        const StTensor *t = &w->tensors[i];
        cJSON *entry = cJSON_CreateObject();
        add_item(root, t->name, entry);
        add_item(entry, "dtype", cJSON_CreateString(st_dtype_name(t->dtype)));
        cJSON *shape = cJSON_CreateArray();
        add_item(entry, "shape", shape);
        for (int d = 0; d < t->ndim; d++)
            if (!cJSON_AddItemToArray(shape, raw_int(t->shape[d])))
                die("out of memory building a safetensors header");
        cJSON *offsets = cJSON_CreateArray();
        add_item(entry, "data_offsets", offsets);
        if (!cJSON_AddItemToArray(offsets, raw_int(begin[i])) ||
            !cJSON_AddItemToArray(offsets, raw_int(begin[i] + (int64_t)t->nbytes)))
            die("out of memory building a safetensors header");
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(order);
    free(begin);
    if (!json) die("out of memory printing a safetensors header");

    size_t len = strlen(json);
    size_t padded = (len + 7) / 8 * 8; /* 8 + padded is then a multiple of 8 as well */
    char *header = xmalloc(padded + 1);
    memcpy(header, json, len);
    memset(header + len, ' ', padded - len);
    header[padded] = '\0';
    cJSON_free(json);
    *header_len = padded;
    return header;
}

/* write() until everything is out; partial writes and EINTR are normal, anything else fails. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t n = write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) { /* no progress and no error: treat as out of space */
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Splits path into its folder ("." when none) and file name, both malloc'd. */
static void split_path(const char *path, char **dir, char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = xstrdup(".");
        *base = xstrdup(path);
    } else if (slash == path) {
        *dir = xstrdup("/");
        *base = xstrdup(slash + 1);
    } else {
        size_t n = (size_t)(slash - path);
        *dir = xmalloc(n + 1);
        memcpy(*dir, path, n);
        (*dir)[n] = '\0';
        *base = xstrdup(slash + 1);
    }
}

/* Makes the rename durable: the directory entry itself must reach the disk. */
static int fsync_directory(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int saved = errno;
    /* Some file systems cannot fsync a directory and say so; there is nothing more to do. */
    if (rc != 0 && (saved == EINVAL || saved == ENOTSUP)) rc = 0;
    if (close(fd) != 0 && rc == 0) return -1;
    errno = saved;
    return rc;
}

int st_writer_save(StWriter *w, const char *path, char *err, size_t errlen)
{
    if (w->deferred_error) {
        st_set_err(err, errlen, "%s: not written: %s", path, w->deferred_error);
        return -1;
    }
    char *dir, *base;
    split_path(path, &dir, &base);
    if (base[0] == '\0') {
        st_set_err(err, errlen, "%s: not a file name", path);
        free(dir);
        free(base);
        return -1;
    }
    size_t tmp_len = strlen(dir) + strlen(base) + 64;
    char *tmp = xmalloc(tmp_len);
    snprintf(tmp, tmp_len, "%s/.%s.tmp.%ld", dir, base, (long)getpid());

    size_t header_len;
    uint64_t data_bytes;
    char *header = build_header(w, &header_len, &data_bytes);
    int rc = -1;
    const char *step = "create";

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) { /* left by a crashed earlier process with our pid */
        if (unlink(tmp) == 0) fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0) goto fail_open;

    step = "write";
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    if (write_all(fd, len_le, 8) != 0 || write_all(fd, header, header_len) != 0) goto fail_fd;
    {
        int *order = data_section_order(w);
        for (int j = 0; j < w->count; j++) {
            const StTensor *t = &w->tensors[order[j]];
            if (t->nbytes > 0 && write_all(fd, t->data, t->nbytes) != 0) {
                free(order);
                goto fail_fd;
            }
        }
        free(order);
    }
    step = "fsync";
    if (fsync(fd) != 0) goto fail_fd;
    step = "close";
    if (close(fd) != 0) {
        fd = -1;
        goto fail_fd;
    }
    fd = -1;
    step = "rename";
    if (rename(tmp, path) != 0) goto fail_fd;
    /* From here the new file is in place; a failure only means its durability is unknown. */
    if (fsync_directory(dir) != 0) {
        st_set_err(err, errlen, "%s: written, but syncing its folder %s failed: %s", path, dir,
                strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;

fail_fd: {
    int saved = errno;
    if (fd >= 0) close(fd); /* already failing; the temporary file is removed below */
    unlink(tmp);
    errno = saved;
}
fail_open:
    st_set_err(err, errlen, "%s: cannot save (%s of %s failed: %s); the previous file, if any, is "
            "unchanged", path, step, tmp, strerror(errno));
done:
    free(header);
    free(tmp);
    free(dir);
    free(base);
    return rc;
}

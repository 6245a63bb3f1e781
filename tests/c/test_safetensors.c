/* test_safetensors.c — the checkpoint file format: round trip, layout, validation of broken
 * files, and that a failing save leaves the previous file untouched and no temporary behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "train/safetensors.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/moco_test_st_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d) return 0;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            remove(p);
        }
    closedir(d);
    rmdir(tmpdir);
    return 0;
}

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

/* Number of directory entries other than . and .. — a leftover temporary would show here. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* ---- round trip --------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    float f32[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    int64_t i64[1] = {-1234567890123LL};
    int32_t i32[4] = {1, -2, 2147483647, -2147483647 - 1};
    uint8_t u8[3] = {0, 127, 255};
    double f64[4] = {3.141592653589793, -1e300, 5e-324, 2.0};
    float scalar = 42.0f;

    StWriter *w = st_writer_new();
    /* u8 first: the writer must still place every tensor at an offset aligned to its size */
    st_writer_add(w, "bytes", ST_U8, 1, (int64_t[]){3}, u8);
    st_writer_add(w, "encoder_q.conv1.weight", ST_F32, 2, (int64_t[]){2, 3}, f32);
    st_writer_add(w, "queue_ptr", ST_I64, 1, (int64_t[]){1}, i64);
    st_writer_add(w, "ints", ST_I32, 1, (int64_t[]){4}, i32);
    st_writer_add(w, "doubles", ST_F64, 2, (int64_t[]){2, 2}, f64);
    st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar);
    st_writer_add(w, "empty", ST_F32, 2, (int64_t[]){0, 5}, NULL);
    st_writer_add_metadata(w, "format", "mocod");
    st_writer_add_metadata(w, "config", "{\"a\": \"quote\\\" and \\n newline\"}");
    st_writer_add_metadata(w, "format", "mocod-checkpoint"); /* the later value wins */

    char path[512], err[512] = "";
    path_in_tmp(path, sizeof path, "ckpt.safetensors");
    write_bytes(path, "old", 3); /* an existing file gets replaced */
    int entries_before = count_entries(tmpdir);
    assert_int_equal(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    assert_int_equal(count_entries(tmpdir), entries_before); /* no temporary left behind */

    /* the raw layout: header length, space padding, 8-aligned data section */
    size_t n;
    unsigned char *raw = read_bytes(path, &n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal((8 + hlen) % 8, 0);
    assert_int_equal(raw[8], '{');
    assert_true(8 + hlen <= n);
    size_t data_bytes = 3 + 24 + 8 + 16 + 32 + 4 + 0;
    assert_int_equal(n, 8 + hlen + data_bytes); /* no gaps between tensors */
    /* header keys come in the order added, metadata first */
    const char *h = (const char *)raw + 8;
    const char *pm = strstr(h, "__metadata__"), *pb = strstr(h, "\"bytes\""),
               *pw = strstr(h, "\"encoder_q.conv1.weight\""), *pe = strstr(h, "\"empty\"");
    assert_true(pm && pb && pw && pe && pm < pb && pb < pw && pw < pe);
    free(raw);

    StFile f;
    assert_int_equal(st_load(path, &f, err, sizeof err), 0);
    assert_int_equal(f.count, 7);
    assert_string_equal(f.tensors[0].name, "bytes");
    assert_string_equal(f.tensors[6].name, "empty");
    const StTensor *t = st_find(&f, "encoder_q.conv1.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->nbytes, sizeof f32);
    assert_memory_equal(t->data, f32, sizeof f32);
    t = st_find(&f, "queue_ptr");
    assert_int_equal(t->dtype, ST_I64);
    assert_memory_equal(t->data, i64, sizeof i64);
    assert_int_equal((uintptr_t)t->data % 8, 0);
    t = st_find(&f, "ints");
    assert_int_equal(t->dtype, ST_I32);
    assert_memory_equal(t->data, i32, sizeof i32);
    assert_int_equal((uintptr_t)t->data % 4, 0);
    t = st_find(&f, "doubles");
    assert_int_equal(t->dtype, ST_F64);
    assert_memory_equal(t->data, f64, sizeof f64);
    assert_int_equal((uintptr_t)t->data % 8, 0);
    t = st_find(&f, "bytes");
    assert_int_equal(t->dtype, ST_U8);
    assert_memory_equal(t->data, u8, sizeof u8);
    t = st_find(&f, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->nbytes, 4);
    assert_memory_equal(t->data, &scalar, 4);
    t = st_find(&f, "empty");
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 5);
    assert_null(st_find(&f, "missing"));
    assert_int_equal(f.meta_count, 2);
    assert_string_equal(st_metadata(&f, "format"), "mocod-checkpoint");
    assert_string_equal(st_metadata(&f, "config"), "{\"a\": \"quote\\\" and \\n newline\"}");
    assert_null(st_metadata(&f, "nope"));
    st_free(&f);
    remove(path);
}

static void test_dtype_sizes(void **state)
{
    (void)state;
    assert_int_equal(st_dtype_size(ST_F32), 4);
    assert_int_equal(st_dtype_size(ST_I64), 8);
    assert_int_equal(st_dtype_size(ST_I32), 4);
    assert_int_equal(st_dtype_size(ST_U8), 1);
    assert_int_equal(st_dtype_size(ST_F64), 8);
}

/* ---- broken files ------------------------------------------------------------------------- */

/* Writes a file from a header string (padded to keep the data 8-aligned) and data bytes,
 * loads it and checks that loading fails with a message naming the file and containing
 * `expect`. */
static void expect_rejected(const char *header, const void *data, size_t data_len,
                            const char *expect)
{
    char path[512], err[512] = "";
    path_in_tmp(path, sizeof path, "broken.safetensors");
    size_t hlen = strlen(header);
    size_t n = 8 + hlen + data_len;
    unsigned char *buf = malloc(n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (data_len) memcpy(buf + 8 + hlen, data, data_len);
    write_bytes(path, buf, n);
    free(buf);

    StFile f;
    assert_int_equal(st_load(path, &f, err, sizeof err), -1);
    if (!strstr(err, path) || !strstr(err, expect))
        fail_msg("message \"%s\" should name %s and say \"%s\"", err, path, expect);
    assert_null(f.tensors); /* nothing half-loaded is handed out */
    remove(path);
}

static void test_rejects_bad_headers(void **state)
{
    (void)state;
    float data[4] = {1, 2, 3, 4};
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 8,
                    "truncated");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16}", data, 16,
                    "not valid JSON");
    expect_rejected("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", data, 8,
                    "unsupported dtype \"BF16\"");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", data, 16,
                    "shape and dtype need 12");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    data, 16, "overlap");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", data, 16,
                    "0 <= begin <= end");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 16,
                    "non-negative integer");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", data, 16, "data_offsets");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} x", data,
                    16, "unexpected bytes");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    data, 8, "appears twice");
    expect_rejected("{\"__metadata__\":{\"step\":5}}", NULL, 0, "not a string");
    expect_rejected("[1,2]", NULL, 0, "not a JSON object");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                    "\"data_offsets\":[0,4]}}", data, 4, "dimensions");
}

static void test_rejects_short_and_missing_files(void **state)
{
    (void)state;
    char path[512], err[512] = "";
    StFile f;

    path_in_tmp(path, sizeof path, "does-not-exist.safetensors");
    assert_int_equal(st_load(path, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));

    path_in_tmp(path, sizeof path, "tiny");
    write_bytes(path, "\x05\x00\x00", 3);
    assert_int_equal(st_load(path, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "shorter than"));

    /* a header length far beyond the file (e.g. a text file read as safetensors) */
    write_bytes(path, "hello world, this is not a checkpoint", 37);
    assert_int_equal(st_load(path, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "header length"));
    remove(path);
}

/* A valid file cut short anywhere must be rejected, never read out of bounds. */
static void test_rejects_every_truncation(void **state)
{
    (void)state;
    float v[32];
    for (int i = 0; i < 32; i++) v[i] = (float)i;
    StWriter *w = st_writer_new();
    st_writer_add(w, "v", ST_F32, 2, (int64_t[]){4, 8}, v);
    st_writer_add_metadata(w, "k", "v");
    char path[512], cut[512], err[512];
    path_in_tmp(path, sizeof path, "whole.safetensors");
    path_in_tmp(cut, sizeof cut, "cut.safetensors");
    assert_int_equal(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    size_t n;
    unsigned char *raw = read_bytes(path, &n);
    for (size_t len = 0; len < n; len++) {
        write_bytes(cut, raw, len);
        StFile f;
        err[0] = '\0';
        if (st_load(cut, &f, err, sizeof err) != -1) fail_msg("a %zu-byte prefix loaded", len);
        assert_non_null(strstr(err, cut));
    }
    free(raw);
    remove(cut);
    remove(path);
}

/* ---- failing saves ------------------------------------------------------------------------ */

static void test_save_into_missing_folder_fails(void **state)
{
    (void)state;
    float v = 1;
    StWriter *w = st_writer_new();
    st_writer_add(w, "v", ST_F32, 1, (int64_t[]){1}, &v);
    char path[512], err[512] = "";
    path_in_tmp(path, sizeof path, "no/such/folder/ckpt.safetensors");
    assert_int_equal(st_writer_save(w, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));
    st_writer_free(w);
}

/* A write that fails midway (here: the file size limit, which behaves like a full disk) must
 * leave the previous checkpoint byte-for-byte intact and remove the temporary file. This works
 * as root too, where a read-only folder would not stop the write. */
static void test_failed_write_keeps_old_file(void **state)
{
    (void)state;
    char path[512], err[512] = "";
    path_in_tmp(path, sizeof path, "keep.safetensors");
    float small = 7;
    StWriter *w = st_writer_new();
    st_writer_add(w, "small", ST_F32, 1, (int64_t[]){1}, &small);
    assert_int_equal(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    size_t old_n;
    unsigned char *old = read_bytes(path, &old_n);

    size_t big_n = 1 << 20;
    float *big = calloc(big_n, sizeof(float));
    w = st_writer_new();
    st_writer_add(w, "big", ST_F32, 1, (int64_t[]){(int64_t)big_n}, big);
    int entries_before = count_entries(tmpdir);

    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    struct rlimit lim = saved;
    lim.rlim_cur = 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of a signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = st_writer_save(w, path, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "File too large"));
    assert_int_equal(count_entries(tmpdir), entries_before); /* the temporary is gone */
    size_t now_n;
    unsigned char *now = read_bytes(path, &now_n);
    assert_int_equal(now_n, old_n);
    assert_memory_equal(now, old, old_n);
    StFile f;
    assert_int_equal(st_load(path, &f, err, sizeof err), 0);
    assert_non_null(st_find(&f, "small"));
    st_free(&f);
    free(now);
    free(old);
    free(big);
    st_writer_free(w);
    remove(path);
}

static void test_writer_misuse_reported_at_save(void **state)
{
    (void)state;
    float v = 1;
    char path[512], err[512] = "";
    path_in_tmp(path, sizeof path, "dup.safetensors");

    StWriter *w = st_writer_new();
    st_writer_add(w, "v", ST_F32, 1, (int64_t[]){1}, &v);
    st_writer_add(w, "v", ST_F32, 1, (int64_t[]){1}, &v);
    assert_int_equal(st_writer_save(w, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "'v' added twice"));
    st_writer_free(w);
    assert_int_equal(access(path, F_OK), -1); /* nothing written */

    w = st_writer_new();
    st_writer_add(w, "deep", ST_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, &v);
    assert_int_equal(st_writer_save(w, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "dimensions"));
    st_writer_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_dtype_sizes),
        cmocka_unit_test(test_rejects_bad_headers),
        cmocka_unit_test(test_rejects_short_and_missing_files),
        cmocka_unit_test(test_rejects_every_truncation),
        cmocka_unit_test(test_save_into_missing_folder_fails),
        cmocka_unit_test(test_failed_write_keeps_old_file),
        cmocka_unit_test(test_writer_misuse_reported_at_save),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

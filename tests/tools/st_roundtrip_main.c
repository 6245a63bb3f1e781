/* st_roundtrip_main.c — a small driver of the safetensors reader and writer for the Python
 * interoperability test (tests/python/test_safetensors_torch.py).
 *
 *   st_roundtrip write OUT   writes a fixed set of tensors (every dtype, a scalar, an empty
 *                            tensor, unaligned sizes) and metadata; Python recomputes the values
 *   st_roundtrip dump IN     loads IN and prints one JSON object on stdout:
 *                            {"tensors": [{"name", "dtype", "shape", "hex"}...], "metadata": {}}
 *                            with the raw little-endian bytes of each tensor as hex, in header
 *                            order; on a bad file prints the loader's message and exits 1
 *   st_roundtrip copy IN OUT loads IN and writes every tensor and metadata entry to OUT
 */
#include "train/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dtype_name(StDtype d)
{
    switch (d) {
    case ST_F32: return "F32";
    case ST_I64: return "I64";
    case ST_I32: return "I32";
    case ST_U8: return "U8";
    case ST_F64: return "F64";
    }
    return "?";
}

/* The values here are recomputed by the Python test; keep both in step. */
static int write_fixed(const char *out)
{
    float f32[15];
    for (int i = 0; i < 15; i++) f32[i] = (float)i * 0.375f - 2.0f;
    int64_t i64[2] = {-5, (int64_t)1 << 40};
    int32_t i32[3] = {7, -8, 2147483647};
    uint8_t u8[7];
    for (int i = 0; i < 7; i++) u8[i] = (uint8_t)(i * 40);
    double f64[6];
    for (int i = 0; i < 6; i++) f64[i] = 1.0 / (i + 1);
    float scalar = -0.5f;

    StWriter *w = st_writer_new();
    st_writer_add(w, "u8", ST_U8, 1, (int64_t[]){7}, u8);
    st_writer_add(w, "f32", ST_F32, 2, (int64_t[]){3, 5}, f32);
    st_writer_add(w, "i32", ST_I32, 1, (int64_t[]){3}, i32);
    st_writer_add(w, "i64", ST_I64, 1, (int64_t[]){2}, i64);
    st_writer_add(w, "f64", ST_F64, 3, (int64_t[]){1, 2, 3}, f64);
    st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar);
    st_writer_add(w, "empty", ST_F32, 1, (int64_t[]){0}, NULL);
    st_writer_add_metadata(w, "format", "mocod-test");
    st_writer_add_metadata(w, "note", "caf\xc3\xa9 \"quoted\"");
    char err[1024];
    int rc = st_writer_save(w, out, err, sizeof err);
    st_writer_free(w);
    if (rc != 0) fprintf(stderr, "st_roundtrip: %s\n", err);
    return rc == 0 ? 0 : 1;
}

static int dump(const char *in)
{
    StFile f;
    char err[1024];
    if (st_load(in, &f, err, sizeof err) != 0) {
        fprintf(stderr, "st_roundtrip: %s\n", err);
        return 1;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *tensors = cJSON_AddArrayToObject(root, "tensors");
    for (int i = 0; i < f.count; i++) {
        const StTensor *t = &f.tensors[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(tensors, e);
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddStringToObject(e, "dtype", dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        char *hex = malloc(2 * t->nbytes + 1);
        const unsigned char *b = t->data;
        for (size_t k = 0; k < t->nbytes; k++) sprintf(hex + 2 * k, "%02x", b[k]);
        hex[2 * t->nbytes] = '\0';
        cJSON_AddStringToObject(e, "hex", hex);
        free(hex);
    }
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    for (int i = 0; i < f.meta_count; i++)
        cJSON_AddStringToObject(meta, f.meta_keys[i], f.meta_values[i]);
    char *s = cJSON_PrintUnformatted(root);
    if (!s) {
        fprintf(stderr, "st_roundtrip: out of memory\n");
        return 1;
    }
    puts(s);
    cJSON_free(s);
    cJSON_Delete(root);
    st_free(&f);
    return 0;
}

static int copy(const char *in, const char *out)
{
    StFile f;
    char err[1024];
    if (st_load(in, &f, err, sizeof err) != 0) {
        fprintf(stderr, "st_roundtrip: %s\n", err);
        return 1;
    }
    StWriter *w = st_writer_new();
    for (int i = 0; i < f.count; i++) {
        const StTensor *t = &f.tensors[i];
        st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    for (int i = 0; i < f.meta_count; i++)
        st_writer_add_metadata(w, f.meta_keys[i], f.meta_values[i]);
    int rc = st_writer_save(w, out, err, sizeof err);
    if (rc != 0) fprintf(stderr, "st_roundtrip: %s\n", err);
    st_writer_free(w);
    st_free(&f);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0) return write_fixed(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
    if (argc == 4 && strcmp(argv[1], "copy") == 0) return copy(argv[2], argv[3]);
    fprintf(stderr, "usage: st_roundtrip write OUT | dump IN | copy IN OUT\n");
    return 2;
}

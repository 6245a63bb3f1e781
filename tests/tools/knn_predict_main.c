/* knn_predict — runs knn_predict (train/knn.h) on given features for tests/python/test_knn.py.
 *
 *   knn_predict IN.safetensors OUT.safetensors
 *
 * IN: bank F32 [n_bank, dim], bank_labels I64|I32 [n_bank], queries F32 [n_q, dim], optional
 * query_labels I64|I32 [n_q]; metadata k, t, classes (decimal strings).
 * OUT: top I32 [n_q, min(5, classes)] (class indices, best first) and, with query_labels,
 * correct I64 [2]: queries right at top-1 and at top-5 (-1 with fewer than 5 classes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/knn.h"
#include "train/safetensors.h"

static const StTensor *need(const StFile *f, const char *name, int ndim)
{
    const StTensor *t = st_find(f, name);
    if (!t || t->ndim != ndim) die("knn_predict: input needs %s with %d dimensions", name, ndim);
    return t;
}

/* Copies (the file's data need not be aligned) a float tensor. */
static float *floats(const StTensor *t)
{
    if (t->dtype != ST_F32) die("knn_predict: %s must be F32", t->name);
    float *p = xmalloc(t->nbytes ? t->nbytes : 1);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static int32_t *labels(const StTensor *t)
{
    size_t n = (size_t)t->shape[0];
    int32_t *out = xmalloc((n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == ST_I64) {
            int64_t v;
            memcpy(&v, (const char *)t->data + 8 * i, 8);
            out[i] = (int32_t)v;
        } else if (t->dtype == ST_I32) {
            memcpy(&out[i], (const char *)t->data + 4 * i, 4);
        } else {
            die("knn_predict: %s must be I64 or I32", t->name);
        }
    }
    return out;
}

static const char *meta(const StFile *f, const char *key)
{
    const char *v = st_metadata(f, key);
    if (!v) die("knn_predict: input metadata needs %s", key);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 3) die("usage: knn_predict IN.safetensors OUT.safetensors");
    char err[1024];
    StFile f;
    if (st_load(argv[1], &f, err, sizeof err)) die("%s", err);
    const StTensor *bt = need(&f, "bank", 2), *qt = need(&f, "queries", 2);
    const StTensor *blt = need(&f, "bank_labels", 1), *qlt = st_find(&f, "query_labels");
    const int n_bank = (int)bt->shape[0], dim = (int)bt->shape[1], n_q = (int)qt->shape[0];
    if (qt->shape[1] != dim || blt->shape[0] != n_bank) die("knn_predict: shapes disagree");
    const int k = atoi(meta(&f, "k")), classes = atoi(meta(&f, "classes"));
    const float t = strtof(meta(&f, "t"), NULL);

    float *bank = floats(bt), *queries = floats(qt);
    int32_t *bank_labels = labels(blt);
    const int top_n = knn_top_n(classes);
    int32_t *top = xmalloc(((size_t)n_q * top_n + 1) * sizeof *top);
    knn_predict(bank, bank_labels, n_bank, queries, n_q, dim, classes, k, t, top);

    StWriter *w = st_writer_new();
    int64_t shape[2] = {n_q, top_n}, cshape[1] = {2};
    st_writer_add(w, "top", ST_I32, 2, shape, top);
    int64_t correct[2];
    int32_t *query_labels = NULL;
    if (qlt) {
        if (qlt->ndim != 1 || qlt->shape[0] != n_q) die("knn_predict: query_labels must be [n_q]");
        query_labels = labels(qlt);
        KnnCounts c = knn_count(top, query_labels, n_q, classes);
        correct[0] = c.correct1;
        correct[1] = c.has_top5 ? c.correct5 : -1;
        st_writer_add(w, "correct", ST_I64, 1, cshape, correct);
    }
    if (st_writer_save(w, argv[2], err, sizeof err)) die("%s", err);
    st_writer_free(w);
    free(query_labels);
    free(top);
    free(bank_labels);
    free(bank);
    free(queries);
    st_free(&f);
    return 0;
}

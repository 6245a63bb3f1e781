/* augment_resize.c — antialiased bilinear resampling of a uint8 crop into float [0,1].
 *
 * The weights follow PyTorch's _upsample_bilinear2d_aa (itself a port of PIL's resampling):
 * a triangle filter whose support widens with the downscale factor, weights normalized per
 * output pixel, computed in float as PyTorch does for float tensors; one horizontal pass over
 * the source rows that the vertical pass needs, then the vertical pass.
 */
#include "data/augment.h"
#include "common/error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *first;    /* [n] first source index of each output's taps */
    int *count;    /* [n] taps (0: the output lies outside the image: zero) */
    float *weight; /* [n * max_taps] */
    int max_taps;
} Taps;

static inline float triangle(float x)
{
    if (x < 0.0f) x = -x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* Taps for n outputs taken at offset `window` from a box of box_len source samples (starting
 * at box_start in a source of src_len) resized to resized_len. Box samples outside the source
 * are zeros: they keep their weight in the normalization and are then dropped. */
static void taps_build(Taps *t, int n, int window, int resized_len, int box_start, int box_len,
                       int src_len)
{
    float scale = (float)box_len / (float)resized_len;
    float support = scale >= 1.0f ? 1.0f * scale : 1.0f; /* interp_size 2, half of it */
    float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    t->max_taps = (int)(2.0f * support) + 3;
    t->first = xmalloc(sizeof(int) * n);
    t->count = xmalloc(sizeof(int) * n);
    t->weight = xcalloc((size_t)n * t->max_taps, sizeof(float));
    for (int i = 0; i < n; i++) {
        int k = window + i;
        t->first[i] = 0;
        t->count[i] = 0;
        if (k < 0 || k >= resized_len) continue;
        float center = scale * ((float)k + 0.5f);
        long xmin = (long)(center - support + 0.5f);
        if (xmin < 0) xmin = 0;
        long xmax = (long)(center + support + 0.5f);
        if (xmax > box_len) xmax = box_len;
        int size = (int)(xmax - xmin);
        if (size > t->max_taps) size = t->max_taps; /* cannot happen; keeps writes in bounds */
        float *w = t->weight + (size_t)i * t->max_taps;
        float total = 0.0f;
        for (int j = 0; j < size; j++) {
            w[j] = triangle(((float)(j + xmin) - center + 0.5f) * invscale);
            total += w[j];
        }
        if (total != 0.0f)
            for (int j = 0; j < size; j++) w[j] /= total;
        /* Drop the zero-padding taps at either end. */
        int lo = 0, hi = size;
        while (lo < hi && box_start + xmin + lo < 0) lo++;
        while (hi > lo && box_start + xmin + hi - 1 >= src_len) hi--;
        if (lo > 0) memmove(w, w + lo, sizeof(float) * (hi - lo));
        t->first[i] = box_start + (int)xmin + lo;
        t->count[i] = hi - lo;
    }
}

static void taps_free(Taps *t)
{
    free(t->first);
    free(t->count);
    free(t->weight);
}

static float unit_lut[256];
static pthread_once_t unit_lut_once = PTHREAD_ONCE_INIT;

static void unit_lut_fill(void)
{
    for (int v = 0; v < 256; v++) unit_lut[v] = (float)v / 255.0f; /* as ToTensor's / 255 */
}

/* uint8 -> float in [0,1], filled once for all loader threads. */
static const float *u8_to_unit(void)
{
    pthread_once(&unit_lut_once, unit_lut_fill);
    return unit_lut;
}

static void resample(const Image8 *src, const Taps *tx, const Taps *ty, int out_h, int out_w,
                     float *out)
{
    const float *lut = u8_to_unit();
    int row0 = src->h, row1 = 0; /* source rows the vertical pass reads */
    for (int y = 0; y < out_h; y++) {
        if (!ty->count[y]) continue;
        if (ty->first[y] < row0) row0 = ty->first[y];
        if (ty->first[y] + ty->count[y] > row1) row1 = ty->first[y] + ty->count[y];
    }
    if (row1 <= row0) {
        memset(out, 0, sizeof(float) * (size_t)out_h * out_w * 3);
        return;
    }
    size_t stride = (size_t)out_w * 3;
    float *tmp = xmalloc(sizeof(float) * stride * (row1 - row0));
    for (int r = row0; r < row1; r++) {
        const uint8_t *s = src->data + (size_t)r * src->w * 3;
        float *d = tmp + (size_t)(r - row0) * stride;
        for (int x = 0; x < out_w; x++) {
            int n = tx->count[x];
            const float *w = tx->weight + (size_t)x * tx->max_taps;
            const uint8_t *p = s + (size_t)tx->first[x] * 3;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
            if (n) {
                a0 = lut[p[0]] * w[0];
                a1 = lut[p[1]] * w[0];
                a2 = lut[p[2]] * w[0];
                for (int j = 1; j < n; j++) {
                    a0 += lut[p[3 * j + 0]] * w[j];
                    a1 += lut[p[3 * j + 1]] * w[j];
                    a2 += lut[p[3 * j + 2]] * w[j];
                }
            }
            d[3 * x + 0] = a0;
            d[3 * x + 1] = a1;
            d[3 * x + 2] = a2;
        }
    }
    for (int y = 0; y < out_h; y++) {
        float *o = out + (size_t)y * stride;
        int n = ty->count[y];
        if (!n) {
            memset(o, 0, sizeof(float) * stride);
            continue;
        }
        const float *w = ty->weight + (size_t)y * ty->max_taps;
        const float *t0 = tmp + (size_t)(ty->first[y] - row0) * stride;
        for (size_t i = 0; i < stride; i++) o[i] = t0[i] * w[0];
        for (int j = 1; j < n; j++) {
            const float *tj = t0 + (size_t)j * stride;
            float wj = w[j];
            for (size_t i = 0; i < stride; i++) o[i] += tj[i] * wj;
        }
    }
    free(tmp);
}

void resized_crop(const Image8 *src, int top, int left, int h, int w, int out_h, int out_w,
                  float *out)
{
    Taps tx, ty;
    taps_build(&tx, out_w, 0, out_w, left, w, src->w);
    taps_build(&ty, out_h, 0, out_h, top, h, src->h);
    resample(src, &tx, &ty, out_h, out_w, out);
    taps_free(&tx);
    taps_free(&ty);
}

void resize_then_crop(const Image8 *src, int resize_h, int resize_w, int top, int left,
                      int out_h, int out_w, float *out)
{
    Taps tx, ty;
    taps_build(&tx, out_w, left, resize_w, 0, src->w, src->w);
    taps_build(&ty, out_h, top, resize_h, 0, src->h, src->h);
    resample(src, &tx, &ty, out_h, out_w, out);
    taps_free(&tx);
    taps_free(&ty);
}

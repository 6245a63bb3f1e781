/* pool.c — max pooling (with argmax for backward) and global average pooling on the CPU.
 * NHWC keeps the channel contiguous, so every window is reduced as whole rows of c values.
 * References: ref_maxpool_*, ref_avgpool_* in kernels/reference/pool_ref.c. */
#include "kernels/kernels.h"
#include "common/error.h"

#include <math.h>
#include <string.h>

PoolShape pool_shape_make(int n, int h, int w, int c, int k, int stride, int pad)
{
    if (n <= 0 || h <= 0 || w <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0 ||
        pad * 2 > k)
        die("pool_shape_make: invalid shape n=%d h=%d w=%d c=%d k=%d stride=%d pad=%d", n, h, w,
            c, k, stride, pad);
    PoolShape s = {.n = n, .h = h, .w = w, .c = c, .k = k, .stride = stride, .pad = pad};
    /* PyTorch's floor mode; pad <= k/2 guarantees every window holds an input pixel */
    s.oh = (h + 2 * pad - k) / stride + 1;
    s.ow = (w + 2 * pad - k) / stride + 1;
    if (s.oh <= 0 || s.ow <= 0) die("pool_shape_make: window %d larger than input %dx%d", k, h, w);
    return s;
}

void maxpool_forward(const PoolShape *s, const float *x, float *y, int32_t *argmax)
{
    const int c = s->c;
#pragma omp parallel for collapse(2) schedule(static)
    for (int img = 0; img < s->n; img++)
        for (int oy = 0; oy < s->oh; oy++) {
            const float *ximg = x + (size_t)img * s->h * s->w * c;
            for (int ox = 0; ox < s->ow; ox++) {
                size_t o = (((size_t)img * s->oh + oy) * s->ow + ox) * c;
                float *yo = y + o;
                int32_t *ao = argmax + o;
                /* PyTorch's rule: start at -inf with the index of the window's first input
                 * pixel, then take a value when it is strictly greater (so the first maximum
                 * wins) or NaN (so NaN propagates) */
                int iy0 = oy * s->stride - s->pad, ix0 = ox * s->stride - s->pad;
                int32_t first = (iy0 < 0 ? 0 : iy0) * s->w + (ix0 < 0 ? 0 : ix0);
                for (int ch = 0; ch < c; ch++) {
                    yo[ch] = -INFINITY;
                    ao[ch] = first;
                }
                for (int ky = 0; ky < s->k; ky++) {
                    int iy = iy0 + ky;
                    if (iy < 0 || iy >= s->h) continue;
                    for (int kx = 0; kx < s->k; kx++) {
                        int ix = ix0 + kx;
                        if (ix < 0 || ix >= s->w) continue;
                        int32_t off = iy * s->w + ix;
                        const float *xi = ximg + (size_t)off * c;
                        for (int ch = 0; ch < c; ch++)
                            if (xi[ch] > yo[ch] || isnan(xi[ch])) {
                                yo[ch] = xi[ch];
                                ao[ch] = off;
                            }
                    }
                }
            }
        }
}

void maxpool_backward(const PoolShape *s, const float *dy, const int32_t *argmax, float *dx)
{
    const int c = s->c;
    const size_t in_img = (size_t)s->h * s->w * c, out_img = (size_t)s->oh * s->ow * c;
    /* windows overlap, so each thread owns whole images of dx */
#pragma omp parallel for schedule(static)
    for (int img = 0; img < s->n; img++) {
        float *dimg = dx + img * in_img;
        memset(dimg, 0, in_img * sizeof(float));
        const float *g = dy + img * out_img;
        const int32_t *a = argmax + img * out_img;
        for (size_t p = 0; p < (size_t)s->oh * s->ow; p++, g += c, a += c)
            for (int ch = 0; ch < c; ch++) dimg[(size_t)a[ch] * c + ch] += g[ch];
    }
}

void avgpool_forward(int n, int hw, int c, const float *x, float *y)
{
#pragma omp parallel for schedule(static)
    for (int img = 0; img < n; img++) {
        float *yi = y + (size_t)img * c;
        const float *xi = x + (size_t)img * hw * c;
        for (int ch = 0; ch < c; ch++) yi[ch] = 0.0f;
        for (int p = 0; p < hw; p++, xi += c)
            for (int ch = 0; ch < c; ch++) yi[ch] += xi[ch];
        const float inv = 1.0f / (float)hw;
        for (int ch = 0; ch < c; ch++) yi[ch] *= inv;
    }
}

void avgpool_backward(int n, int hw, int c, const float *dy, float *dx)
{
    const float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static)
    for (int img = 0; img < n; img++) {
        const float *g = dy + (size_t)img * c;
        float *di = dx + (size_t)img * hw * c;
        for (int p = 0; p < hw; p++, di += c)
            for (int ch = 0; ch < c; ch++) di[ch] = g[ch] * inv;
    }
}

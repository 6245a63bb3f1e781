/* conv.c — 2-D convolution on the CPU: forward, backward-data, backward-weight.
 *
 * Activations are NHWC and weights OHWI ([c_out][kh][kw][c_in]), so one output pixel's
 * receptive field, read in (ky, kx, ci) order, lines up with one row of the weight matrix.
 * That makes every pass a GEMM over an im2col matrix col[P, K] with P = output pixels and
 * K = kh*kw*c_in:
 *   forward          y[P, c_out]   = col[P, K] · W[c_out, K]^T
 *   backward data    dcol[P, K]    = dy[P, c_out] · W[c_out, K]      then col2im(dcol) -> dx
 *   backward weight  dW[c_out, K] += dy[P, c_out]^T · col[P, K]
 * A 1x1 stride-1 unpadded conv needs no im2col at all: col is x itself. Otherwise col is built
 * in chunks of output pixels (across image boundaries) so the workspace stays bounded while
 * each GEMM stays large. Everything runs inside one OpenMP team (see cpu_internal.h): in the
 * forward pass each thread builds its own slice of the chunk and multiplies it, so the rows it
 * just wrote are still in its cache.
 * 3x3 stride-1 pad-1 convs may instead run Winograd F(4x4, 3x3) or, forward, F(2x2, 3x3)
 * (conv_winograd.c); the choice
 * per shape and pass, and MOCO_CONV_ALGO, are in conv_algo.c.
 * The plain reference is ref_conv2d_* in kernels/reference/conv_ref.c.
 */
#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/winograd.h"
#include "common/error.h"

#include <omp.h>
#include <string.h>

/* Largest im2col chunk in floats (16 MiB): for every ResNet layer a chunk holds at least ~900
 * output pixels (K <= 4608), so each thread's GEMM is large enough that repacking the weights
 * per call costs little, while the workspace stays well below the activations' size.
 * A variable only so tests can force many small chunks. */
size_t cpu_conv_chunk_floats = (size_t)4 << 20;

/* Thread slices of a chunk are multiples of this many rows (BLAS micro-kernel height). */
#define ROW_GRAIN 16

ConvShape conv_shape_make(int n, int h, int w, int c_in, int c_out, int k, int stride, int pad)
{
    if (n <= 0 || h <= 0 || w <= 0 || c_in <= 0 || c_out <= 0 || k <= 0 || stride <= 0 ||
        pad < 0)
        die("conv_shape_make: invalid shape n=%d h=%d w=%d c_in=%d c_out=%d k=%d stride=%d pad=%d",
            n, h, w, c_in, c_out, k, stride, pad);
    ConvShape s = {.n = n, .h = h, .w = w, .c_in = c_in, .c_out = c_out, .kh = k, .kw = k,
                   .stride = stride, .pad = pad};
    if (h + 2 * pad < k || w + 2 * pad < k)
        die("conv_shape_make: kernel %d larger than padded input %dx%d (pad %d)", k, h, w, pad);
    s.oh = (h + 2 * pad - k) / stride + 1;
    s.ow = (w + 2 * pad - k) / stride + 1;
    return s;
}

static int conv_is_pointwise(const ConvShape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

static size_t conv_k(const ConvShape *s) { return (size_t)s->kh * s->kw * s->c_in; }
static size_t conv_p(const ConvShape *s) { return (size_t)s->n * s->oh * s->ow; }

/* Output pixels per im2col chunk: as many as fit the chunk budget, at least one. */
static size_t conv_chunk_rows(const ConvShape *s)
{
    size_t rows = cpu_conv_chunk_floats / conv_k(s);
    if (rows < 1) rows = 1;
    return rows < conv_p(s) ? rows : conv_p(s);
}

/* Enough for either algorithm where Winograd applies: MOCO_CONV_ALGO or a test may switch
 * between them after the caller has sized its workspace. */
size_t conv2d_workspace_bytes(const ConvShape *s)
{
    if (conv_is_pointwise(s)) return 0;
    size_t im2col = conv_chunk_rows(s) * conv_k(s) * sizeof(float);
    size_t winograd = winograd_workspace_bytes(s);
    return im2col > winograd ? im2col : winograd;
}

/* Fill col[r - p0][ky][kx][ci] for output pixels r in [p0, p1), zero where the window
 * leaves the input. A filter row that lies wholly inside the input is one contiguous copy. */
static void im2col_rows(const ConvShape *s, const float *x, size_t p0, size_t p1, float *col)
{
    const size_t ohw = (size_t)s->oh * s->ow, c = s->c_in;
    const size_t span = (size_t)s->kw * c;
    float *dst = col;
    for (size_t r = p0; r < p1; r++) {
        size_t img = r / ohw, rem = r % ohw;
        int oy = (int)(rem / s->ow), ox = (int)(rem % s->ow);
        int iy0 = oy * s->stride - s->pad, ix0 = ox * s->stride - s->pad;
        const float *ximg = x + img * s->h * s->w * c;
        int full_row = ix0 >= 0 && ix0 + s->kw <= s->w;
        for (int ky = 0; ky < s->kh; ky++, dst += span) {
            int iy = iy0 + ky;
            if (iy < 0 || iy >= s->h) {
                memset(dst, 0, span * sizeof(float));
                continue;
            }
            const float *xrow = ximg + (size_t)iy * s->w * c;
            if (full_row) {
                memcpy(dst, xrow + (size_t)ix0 * c, span * sizeof(float));
                continue;
            }
            for (int kx = 0; kx < s->kw; kx++) {
                int ix = ix0 + kx;
                if (ix < 0 || ix >= s->w)
                    memset(dst + (size_t)kx * c, 0, c * sizeof(float));
                else
                    memcpy(dst + (size_t)kx * c, xrow + (size_t)ix * c, c * sizeof(float));
            }
        }
    }
}

/* dx += scatter of the dcol rows [p0, p1). Windows of neighbouring output pixels overlap in
 * dx, so the team splits the work by input row (image, iy) instead: each thread owns whole
 * rows of dx and gathers from the output pixels whose windows touch them — no atomics, and
 * each dx element receives its contributions in a fixed order whatever the thread count.
 * Called by every thread of a team (orphaned work-sharing loop, barrier at the end). */
static void col2im_rows_team(const ConvShape *s, const float *dcol, size_t p0, size_t p1,
                             float *dx)
{
    const size_t ohw = (size_t)s->oh * s->ow, c = s->c_in, krow = conv_k(s);
    const int st = s->stride;
    const size_t img0 = p0 / ohw, img1 = (p1 - 1) / ohw;
    const long nrows = (long)(img1 - img0 + 1) * s->h;
#pragma omp for schedule(static)
    for (long t = 0; t < nrows; t++) {
        size_t img = img0 + (size_t)(t / s->h);
        int iy = (int)(t % s->h);
        float *dxrow = dx + (img * s->h + iy) * s->w * c;
        /* output rows oy whose window covers iy: oy*st - pad <= iy <= oy*st - pad + kh - 1 */
        int oy_lo = iy + s->pad - s->kh + 1;
        oy_lo = oy_lo <= 0 ? 0 : (oy_lo + st - 1) / st;
        int oy_hi = (iy + s->pad) / st;
        if (oy_hi >= s->oh) oy_hi = s->oh - 1;
        for (int oy = oy_lo; oy <= oy_hi; oy++) {
            size_t rrow = img * ohw + (size_t)oy * s->ow; /* pixel index of (oy, ox = 0) */
            if (rrow + s->ow <= p0 || rrow >= p1) continue; /* row outside this chunk */
            int ky = iy + s->pad - oy * st;
            for (int ox = 0; ox < s->ow; ox++) {
                size_t r = rrow + ox;
                if (r < p0 || r >= p1) continue;
                const float *src = dcol + (r - p0) * krow + (size_t)ky * s->kw * c;
                int ix0 = ox * st - s->pad;
                for (int kx = 0; kx < s->kw; kx++) {
                    int ix = ix0 + kx;
                    if (ix < 0 || ix >= s->w) continue;
                    float *d = dxrow + (size_t)ix * c;
                    const float *g = src + (size_t)kx * c;
                    for (size_t ci = 0; ci < c; ci++) d[ci] += g[ci];
                }
            }
        }
    }
}

void conv2d_forward(const ConvShape *s, const float *x, const float *w, float *y, void *workspace)
{
    switch (conv_use_winograd(s, 0)) {
    case 4: winograd_conv2d_forward(s, x, w, y, workspace); return;
    case 2: winograd2_conv2d_forward(s, x, w, y, workspace); return;
    default: break;
    }
    const int k = (int)conv_k(s), co = s->c_out;
    const size_t p = conv_p(s);
    if (conv_is_pointwise(s)) {
        gemm(0, 1, (int)p, co, k, 1.0f, x, k, w, k, 0.0f, y, co);
        return;
    }
    cpu_blas_setup();
    float *col = workspace;
    const size_t rows = conv_chunk_rows(s);
#pragma omp parallel
    for (size_t p0 = 0; p0 < p; p0 += rows) {
        size_t p1 = p0 + rows < p ? p0 + rows : p, lo, hi;
        cpu_team_range(p1 - p0, ROW_GRAIN, &lo, &hi);
        if (lo < hi) {
            im2col_rows(s, x, p0 + lo, p0 + hi, col + lo * k);
            cpu_sgemm(0, 1, (int)(hi - lo), co, k, 1.0f, col + lo * k, k, w, k, 0.0f,
                      y + (p0 + lo) * co, co);
        }
#pragma omp barrier /* the next chunk overwrites col */
    }
}

void conv2d_backward_data(const ConvShape *s, const float *dy, const float *w, float *dx,
                          void *workspace)
{
    if (conv_use_winograd(s, 1)) {
        winograd_conv2d_backward_data(s, dy, w, dx, workspace);
        return;
    }
    const int k = (int)conv_k(s), co = s->c_out;
    const size_t p = conv_p(s);
    if (conv_is_pointwise(s)) {
        gemm(0, 0, (int)p, k, co, 1.0f, dy, co, w, k, 0.0f, dx, k);
        return;
    }
    cpu_blas_setup();
    float *dcol = workspace;
    const size_t rows = conv_chunk_rows(s), image = (size_t)s->h * s->w * s->c_in;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int img = 0; img < s->n; img++) memset(dx + img * image, 0, image * sizeof(float));
        for (size_t p0 = 0; p0 < p; p0 += rows) {
            size_t p1 = p0 + rows < p ? p0 + rows : p, lo, hi;
            cpu_team_range(p1 - p0, ROW_GRAIN, &lo, &hi);
            if (lo < hi)
                cpu_sgemm(0, 0, (int)(hi - lo), k, co, 1.0f, dy + (p0 + lo) * co, co, w, k, 0.0f,
                          dcol + lo * k, k);
#pragma omp barrier /* col2im reads every thread's rows */
            col2im_rows_team(s, dcol, p0, p1, dx); /* ends with a barrier */
        }
    }
}

void conv2d_backward_weight(const ConvShape *s, const float *x, const float *dy, float *dw,
                            void *workspace)
{
    if (conv_use_winograd(s, 2)) {
        winograd_conv2d_backward_weight(s, x, dy, dw, workspace);
        return;
    }
    const int k = (int)conv_k(s), co = s->c_out;
    const size_t p = conv_p(s);
    if (conv_is_pointwise(s)) {
        gemm(1, 0, co, k, (int)p, 1.0f, dy, co, x, k, 1.0f, dw, k);
        return;
    }
    cpu_blas_setup();
    float *col = workspace;
    const size_t rows = conv_chunk_rows(s);
#pragma omp parallel
    for (size_t p0 = 0; p0 < p; p0 += rows) {
        size_t p1 = p0 + rows < p ? p0 + rows : p, lo, hi;
        cpu_team_range(p1 - p0, ROW_GRAIN, &lo, &hi);
        if (lo < hi) im2col_rows(s, x, p0 + lo, p0 + hi, col + lo * k);
#pragma omp barrier /* the product reads every thread's rows */
        /* each thread owns a fixed slice of dW across chunks, so accumulation never races */
        cpu_gemm_team(1, 0, co, k, (int)(p1 - p0), 1.0f, dy + p0 * co, co, col, k, 1.0f, dw, k);
#pragma omp barrier /* the next chunk overwrites col */
    }
}

void conv_weight_from_oihw(const ConvShape *s, const float *oihw, float *internal)
{
    for (int o = 0; o < s->c_out; o++)
        for (int i = 0; i < s->c_in; i++)
            for (int ky = 0; ky < s->kh; ky++)
                for (int kx = 0; kx < s->kw; kx++)
                    internal[(((size_t)o * s->kh + ky) * s->kw + kx) * s->c_in + i] =
                        oihw[(((size_t)o * s->c_in + i) * s->kh + ky) * s->kw + kx];
}

void conv_weight_to_oihw(const ConvShape *s, const float *internal, float *oihw)
{
    for (int o = 0; o < s->c_out; o++)
        for (int i = 0; i < s->c_in; i++)
            for (int ky = 0; ky < s->kh; ky++)
                for (int kx = 0; kx < s->kw; kx++)
                    oihw[(((size_t)o * s->c_in + i) * s->kh + ky) * s->kw + kx] =
                        internal[(((size_t)o * s->kh + ky) * s->kw + kx) * s->c_in + i];
}

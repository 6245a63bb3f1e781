/* conv_winograd.c — Winograd F(4x4, 3x3) convolution for 3x3, stride-1, pad-1 convs (CPU),
 * and F(2x2, 3x3) for their forward pass (the same code with tile side m = 2: 4x4 transformed
 * tiles, 16 GEMMs, 16 multiply-adds per 2x2 output tile against im2col's 36; less saved, but
 * about as accurate as the direct sum).
 *
 * The output is cut into 4x4 tiles; each reads a 6x6 input window (4 + 2 halo, zero outside
 * the image). With the transforms of Lavin & Gray ("Fast Algorithms for Convolutional Neural
 * Networks", 2016; interpolation points 0, ±1, ±2, infinity):
 *   y_tile = A^T [ sum over c_in of (G g G^T) ⊙ (B^T d B) ] A
 * The elementwise product summed over input channels is, for each of the 36 positions of the
 * 6x6 transformed tile, a matrix product over channels:
 *   M[i][tile][c_out] = V[i][tile][c_in] · U[i][c_out][c_in]^T        i = 0..35
 * so the work is 36 GEMMs with 36 multiply-adds per tile and channel pair instead of im2col's
 * 144 (16 outputs x 9 taps).
 *
 * Passes:
 *  forward          U = G g G^T of w,       V = B^T x B,  M = V·U^T,  y = A^T M A
 *  backward data    the same with the filter rotated 180 degrees and channel roles swapped
 *                   (dx of a 3x3 s1 p1 conv is a 3x3 s1 p1 conv of dy), U read untransposed
 *  backward weight  V = B^T x B, E = A dy A^T, dU[i] = E[i]^T·V[i] over all tiles,
 *                   dw += G^T dU G
 *
 * Transforms run over channels innermost (NHWC keeps a pixel's channels contiguous), CB
 * channels at a time so a tile's buffers stay in L1. Tiles go in blocks of
 * cpu_winograd_tile_block: the team transforms a block's tiles (split by tile), then runs the
 * 36 GEMMs of the block (split by position i, each on one thread with single-threaded BLAS, so
 * each U[i] is packed once per block and results do not depend on the thread count), then
 * transforms the block's outputs back. The filter transform is recomputed on every call;
 * weights change every step and it costs 36·c_in·c_out·few flops against 72·tiles·c_in·c_out.
 *
 * Workspace (floats): U or dU [36][c_out][c_in], then V and M/E for one block
 * [36][block][c_in] and [36][block][c_out] (each position padded, see pos_stride).
 * Which passes use it is decided in conv_algo.c (under auto: the backward passes only).
 * The reference is the direct sum in kernels/reference/conv_ref.c; tests/c/test_winograd.c
 * compares the two.
 */
#include "kernels/cpu/winograd.h"
#include "kernels/cpu/cpu_internal.h"
#include "common/error.h"

#include <omp.h>
#include <stddef.h>
#include <string.h>

#define NPOS 36 /* positions of a 6x6 transformed tile (F(4x4, 3x3)): one GEMM each */
#define CB 64   /* channels transformed together */

/* 128 tiles: large enough that each GEMM (128 rows, K = c_in) runs near BLAS speed and
 * packing U[i] is amortized, small enough that a block's V and M stay near the cores for
 * the 64..128-channel layers. Measured in bench/conv_bench_main.c (--wino-block). */
size_t cpu_winograd_tile_block = 128;

int winograd_applies(const ConvShape *s)
{
    return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->pad == 1;
}

typedef struct {
    int m, a;             /* output tile side (4 or 2) and transformed tile side m + 2 */
    int n, h, w;          /* spatial size, the same for input and output */
    int tiles_y, tiles_x; /* m x m output tiles per image, the last ones partial */
    size_t tiles;         /* over the whole batch */
    size_t block;         /* tiles per block */
} Tiling;

static Tiling tiling_make(const ConvShape *s, int m)
{
    Tiling t = {.m = m, .a = m + 2, .n = s->n, .h = s->h, .w = s->w,
                .tiles_y = (s->h + m - 1) / m, .tiles_x = (s->w + m - 1) / m};
    t.tiles = (size_t)t.n * t.tiles_y * t.tiles_x;
    t.block = cpu_winograd_tile_block < 1 ? 1 : cpu_winograd_tile_block;
    if (t.block > t.tiles) t.block = t.tiles;
    return t;
}

/* Distance in floats between consecutive positions of a [36][rows][cols] array holding
 * `floats` = rows*cols per position. With power-of-two channel and block sizes the unpadded
 * distance is a multiple of 4 KiB, which puts the 36 streams a transform touches at once on
 * the same cache sets; 64 bytes of padding avoid that. (On the 512-channel layers it made no
 * measurable difference; it costs 36 * 64 bytes per array.) */
static size_t pos_stride(size_t floats) { return floats + 16; }

size_t winograd_workspace_bytes(const ConvShape *s)
{
    if (!winograd_applies(s)) return 0;
    size_t c = (size_t)s->c_in, k = (size_t)s->c_out, most = 0;
    for (int m = 2; m <= 4; m += 2) { /* enough for either tile size */
        Tiling t = tiling_make(s, m);
        size_t b = (size_t)t.a * t.a *
                   (pos_stride(c * k) + pos_stride(t.block * c) + pos_stride(t.block * k));
        if (b > most) most = b;
    }
    return most * sizeof(float);
}

/* ---- the 1-D transforms, each over `cb` channels: in[j] at in + j*is, out[j] at
 * out + j*os. A 2-D transform applies one along columns, then along rows. ---------------- */

/* The rows a transform reads and writes never overlap, but their strides are run-time
 * values, so without this the compiler kept some channel loops scalar (the strided writes
 * into U: the filter transform took 1.7x longer, 24% of a 512-channel forward pass). */
#define OMP_SIMD _Pragma("omp simd")

/* B^T: 6 input values -> 6 transformed values. */
static void input_rows(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *d0 = in, *d1 = in + is, *d2 = in + 2 * is, *d3 = in + 3 * is,
                *d4 = in + 4 * is, *d5 = in + 5 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os, *o3 = out + 3 * os, *o4 = out + 4 * os,
          *o5 = out + 5 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        float a = d4[c] - 4.0f * d2[c], b = d3[c] - 4.0f * d1[c]; /* shared by rows 1, 2 */
        float e = d4[c] - d2[c], f = 2.0f * (d3[c] - d1[c]);       /* shared by rows 3, 4 */
        o0[c] = 4.0f * d0[c] - 5.0f * d2[c] + d4[c];
        o1[c] = a + b;
        o2[c] = a - b;
        o3[c] = e + f;
        o4[c] = e - f;
        o5[c] = 4.0f * d1[c] - 5.0f * d3[c] + d5[c];
    }
}

/* A^T: 6 products -> 4 outputs. */
static void output_rows(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *m0 = in, *m1 = in + is, *m2 = in + 2 * is, *m3 = in + 3 * is,
                *m4 = in + 4 * is, *m5 = in + 5 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os, *o3 = out + 3 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        float p1 = m1[c] + m2[c], q1 = m1[c] - m2[c];
        float p2 = m3[c] + m4[c], q2 = m3[c] - m4[c];
        o0[c] = m0[c] + p1 + p2;
        o1[c] = q1 + 2.0f * q2;
        o2[c] = p1 + 4.0f * p2;
        o3[c] = q1 + 8.0f * q2 + m5[c];
    }
}

/* G: 3 filter taps -> 6 transformed values. */
static void filter_rows(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *g0 = in, *g1 = in + is, *g2 = in + 2 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os, *o3 = out + 3 * os, *o4 = out + 4 * os,
          *o5 = out + 5 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        float s = g0[c] + g2[c];
        float t = g0[c] * (1.0f / 24.0f) + g2[c] * (1.0f / 6.0f);
        o0[c] = g0[c] * 0.25f;
        o1[c] = -(s + g1[c]) * (1.0f / 6.0f);
        o2[c] = -(s - g1[c]) * (1.0f / 6.0f);
        o3[c] = t + g1[c] * (1.0f / 12.0f);
        o4[c] = t - g1[c] * (1.0f / 12.0f);
        o5[c] = g2[c];
    }
}

/* A (the transpose of output_rows): 4 output gradients -> 6 transformed values. */
static void output_grad_rows(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *e0 = in, *e1 = in + is, *e2 = in + 2 * is, *e3 = in + 3 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os, *o3 = out + 3 * os, *o4 = out + 4 * os,
          *o5 = out + 5 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        float p = e0[c] + e2[c], q = e1[c] + e3[c];
        float p4 = e0[c] + 4.0f * e2[c], q4 = 2.0f * e1[c] + 8.0f * e3[c];
        o0[c] = e0[c];
        o1[c] = p + q;
        o2[c] = p - q;
        o3[c] = p4 + q4;
        o4[c] = p4 - q4;
        o5[c] = e3[c];
    }
}

/* G^T (the transpose of filter_rows): 6 transformed gradients -> 3 tap gradients. */
static void filter_grad_rows(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *u0 = in, *u1 = in + is, *u2 = in + 2 * is, *u3 = in + 3 * is,
                *u4 = in + 4 * is, *u5 = in + 5 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        float p = u1[c] + u2[c], q = u2[c] - u1[c], r = u3[c] + u4[c], t = u3[c] - u4[c];
        o0[c] = u0[c] * 0.25f - p * (1.0f / 6.0f) + r * (1.0f / 24.0f);
        o1[c] = q * (1.0f / 6.0f) + t * (1.0f / 12.0f);
        o2[c] = (r - p) * (1.0f / 6.0f) + u5[c];
    }
}

/* F(2x2, 3x3) (interpolation points 0, ±1, infinity): its transforms hold only 0, ±1 and
 * ±1/2, so transformed values stay within 4x the inputs and the float error stays near the
 * direct sum's (measured in tests/c/test_winograd.c). Forward pass only. */

/* B^T: 4 input values -> 4 transformed values. */
static void input_rows2(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *d0 = in, *d1 = in + is, *d2 = in + 2 * is, *d3 = in + 3 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os, *o3 = out + 3 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        o0[c] = d0[c] - d2[c];
        o1[c] = d1[c] + d2[c];
        o2[c] = d2[c] - d1[c];
        o3[c] = d1[c] - d3[c];
    }
}

/* A^T: 4 products -> 2 outputs. */
static void output_rows2(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *m0 = in, *m1 = in + is, *m2 = in + 2 * is, *m3 = in + 3 * is;
    float *o0 = out, *o1 = out + os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        o0[c] = m0[c] + m1[c] + m2[c];
        o1[c] = m1[c] - m2[c] - m3[c];
    }
}

/* G: 3 filter taps -> 4 transformed values. */
static void filter_rows2(const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    const float *g0 = in, *g1 = in + is, *g2 = in + 2 * is;
    float *o0 = out, *o1 = out + os, *o2 = out + 2 * os, *o3 = out + 3 * os;
    OMP_SIMD
    for (int c = 0; c < cb; c++) {
        float s = g0[c] + g2[c];
        o0[c] = g0[c];
        o1[c] = (s + g1[c]) * 0.5f;
        o2[c] = (s - g1[c]) * 0.5f;
        o3[c] = g2[c];
    }
}

/* The transform of tile side m (a constant branch, so the row functions still inline). */
static void input_rows_m(int m, const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    if (m == 4) input_rows(in, is, out, os, cb);
    else input_rows2(in, is, out, os, cb);
}

static void output_rows_m(int m, const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    if (m == 4) output_rows(in, is, out, os, cb);
    else output_rows2(in, is, out, os, cb);
}

static void filter_rows_m(int m, const float *in, ptrdiff_t is, float *out, ptrdiff_t os, int cb)
{
    if (m == 4) filter_rows(in, is, out, os, cb);
    else filter_rows2(in, is, out, os, cb);
}

/* ---- tile gathers and scatters ------------------------------------------------------------ */

/* buf[r][s][0..cb) = a[img, y0 + r, x0 + s, c0..c0+cb) for r, s < side, zero outside the
 * h x w image (a has c channels per pixel). */
static void gather_tile(const Tiling *tl, const float *a, int c, size_t tile, int origin_shift,
                        int side, int c0, int cb, float *buf)
{
    size_t per_img = (size_t)tl->tiles_y * tl->tiles_x;
    int img = (int)(tile / per_img), rem = (int)(tile % per_img);
    int y0 = (rem / tl->tiles_x) * tl->m - origin_shift;
    int x0 = (rem % tl->tiles_x) * tl->m - origin_shift;
    for (int r = 0; r < side; r++) {
        int y = y0 + r;
        float *dst = buf + (size_t)r * side * CB;
        if (y < 0 || y >= tl->h) {
            for (int s = 0; s < side; s++) memset(dst + (size_t)s * CB, 0, cb * sizeof(float));
            continue;
        }
        const float *row = a + (((size_t)img * tl->h + y) * tl->w) * c + c0;
        for (int s = 0; s < side; s++) {
            int x = x0 + s;
            if (x < 0 || x >= tl->w)
                memset(dst + (size_t)s * CB, 0, cb * sizeof(float));
            else
                memcpy(dst + (size_t)s * CB, row + (size_t)x * c, cb * sizeof(float));
        }
    }
}

/* v[i][t - t0][0..c) = (B^T d B)[i] of the (m+2)x(m+2) input windows of tiles [lo, hi) (block of nb tiles
 * starting at t0). */
static void input_transform(const Tiling *tl, const float *x, int c, size_t lo, size_t hi,
                            size_t t0, size_t nb, float *v)
{
    float buf[NPOS * CB], tmp[NPOS * CB];
    const ptrdiff_t ps = (ptrdiff_t)pos_stride(nb * c);
    const int m = tl->m, a = tl->a;
    for (size_t t = lo; t < hi; t++)
        for (int c0 = 0; c0 < c; c0 += CB) {
            int cb = c - c0 < CB ? c - c0 : CB;
            gather_tile(tl, x, c, t, 1, a, c0, cb, buf);
            for (int s = 0; s < a; s++) /* columns: tmp[r][s] = (B^T d)[r][s] */
                input_rows_m(m, buf + s * CB, a * CB, tmp + s * CB, a * CB, cb);
            for (int r = 0; r < a; r++) /* rows: V[r*a + s] = (B^T d B)[r][s] */
                input_rows_m(m, tmp + r * a * CB, CB, v + r * a * ps + (t - t0) * c + c0, ps,
                             cb);
        }
}

/* e[i][t - t0][0..c) = (A dy A^T)[i] of the 4x4 output-gradient tiles [lo, hi) (zero past
 * the image edge, where the tiles overhang). */
static void output_grad_transform(const Tiling *tl, const float *dy, int c, size_t lo,
                                  size_t hi, size_t t0, size_t nb, float *e)
{
    float buf[NPOS * CB], tmp[NPOS * CB];
    const ptrdiff_t ps = (ptrdiff_t)pos_stride(nb * c);
    for (size_t t = lo; t < hi; t++)
        for (int c0 = 0; c0 < c; c0 += CB) {
            int cb = c - c0 < CB ? c - c0 : CB;
            gather_tile(tl, dy, c, t, 0, 4, c0, cb, buf); /* buf[r][s] with row length 4 */
            for (int s = 0; s < 4; s++) /* columns: tmp[k][s], k < 6, row length 4 */
                output_grad_rows(buf + s * CB, 4 * CB, tmp + s * CB, 4 * CB, cb);
            for (int k = 0; k < 6; k++) /* rows: E[k*6 + l] */
                output_grad_rows(tmp + k * 4 * CB, CB, e + k * 6 * ps + (t - t0) * c + c0, ps,
                                 cb);
        }
}

/* y[tile] = (A^T M A) for tiles [lo, hi), the parts of each m x m tile inside the image. */
static void output_transform(const Tiling *tl, const float *mm, int c, size_t lo, size_t hi,
                             size_t t0, size_t nb, float *y)
{
    float tmp[NPOS * CB], out[16 * CB];
    const ptrdiff_t ps = (ptrdiff_t)pos_stride(nb * c);
    const size_t per_img = (size_t)tl->tiles_y * tl->tiles_x;
    const int m = tl->m, a = tl->a;
    for (size_t t = lo; t < hi; t++) {
        int img = (int)(t / per_img), rem = (int)(t % per_img);
        int y0 = (rem / tl->tiles_x) * m, x0 = (rem % tl->tiles_x) * m;
        int rows = tl->h - y0 < m ? tl->h - y0 : m, cols = tl->w - x0 < m ? tl->w - x0 : m;
        for (int c0 = 0; c0 < c; c0 += CB) {
            int cb = c - c0 < CB ? c - c0 : CB;
            const float *mt = mm + (t - t0) * c + c0;
            for (int s = 0; s < a; s++) /* columns: tmp[r][s] = (A^T M)[r][s], r < m */
                output_rows_m(m, mt + s * ps, a * ps, tmp + s * CB, a * CB, cb);
            for (int r = 0; r < m; r++) /* rows: out[r][s] = (A^T M A)[r][s] */
                output_rows_m(m, tmp + r * a * CB, CB, out + r * m * CB, CB, cb);
            for (int r = 0; r < rows; r++) {
                float *dst = y + (((size_t)img * tl->h + y0 + r) * tl->w + x0) * c + c0;
                for (int s = 0; s < cols; s++)
                    memcpy(dst + (size_t)s * c, out + (r * m + s) * CB, cb * sizeof(float));
            }
        }
    }
}

/* u[i][o][0..wi) = (G g G^T)[i] for the filters o in [lo, hi) of w [wo][3][3][wi]; with
 * `rotate` the taps are read rotated by 180 degrees (g[ky][kx] = w[o][2-ky][2-kx]). */
static void filter_transform(int m, const float *w, int wo, int wi, int rotate, int lo, int hi,
                             float *u)
{
    const int a = m + 2;
    float tmp[18 * CB];
    const ptrdiff_t tap = rotate ? -(ptrdiff_t)wi : (ptrdiff_t)wi; /* next kx */
    const ptrdiff_t ps = (ptrdiff_t)pos_stride((size_t)wo * wi);
    for (int o = lo; o < hi; o++) {
        const float *g = w + ((size_t)o * 9 + (rotate ? 8 : 0)) * wi; /* tap (0, 0) */
        for (int c0 = 0; c0 < wi; c0 += CB) {
            int cb = wi - c0 < CB ? wi - c0 : CB;
            for (int kx = 0; kx < 3; kx++) /* columns: tmp[r][kx] = (G g)[r][kx] */
                filter_rows_m(m, g + kx * tap + c0, 3 * tap, tmp + kx * CB, 3 * CB, cb);
            for (int r = 0; r < a; r++) /* rows: U[r*a + s] = (G g G^T)[r][s] */
                filter_rows_m(m, tmp + r * 3 * CB, CB, u + r * a * ps + (size_t)o * wi + c0, ps,
                              cb);
        }
    }
}

/* dw[o] += (G^T dU G) for filters o in [lo, hi) of dU [36][wo][wi]. */
static void filter_grad_transform(const float *du, int wo, int wi, int lo, int hi, float *dw)
{
    float tmp[18 * CB], out[9 * CB];
    const ptrdiff_t ps = (ptrdiff_t)pos_stride((size_t)wo * wi);
    for (int o = lo; o < hi; o++)
        for (int c0 = 0; c0 < wi; c0 += CB) {
            int cb = wi - c0 < CB ? wi - c0 : CB;
            const float *d = du + (size_t)o * wi + c0;
            for (int s = 0; s < 6; s++) /* columns: tmp[ky][s] = (G^T dU)[ky][s] */
                filter_grad_rows(d + s * ps, 6 * ps, tmp + s * CB, 6 * CB, cb);
            for (int ky = 0; ky < 3; ky++) /* rows: out[ky][kx] = (G^T dU G)[ky][kx] */
                filter_grad_rows(tmp + ky * 6 * CB, CB, out + ky * 3 * CB, CB, cb);
            for (int k = 0; k < 9; k++) {
                float *dst = dw + ((size_t)o * 9 + k) * wi + c0;
                for (int c = 0; c < cb; c++) dst[c] += out[k * CB + c];
            }
        }
}

/* ---- passes -------------------------------------------------------------------------------- */

/* out = 3x3 s1 p1 conv of `in` (c_in channels) with the filter bank w [wo][3][3][wi]:
 * forward when !transposed (c_in = wi, c_out = wo), backward data when transposed
 * (c_in = wo, c_out = wi, taps rotated, U used untransposed). */
static void winograd_conv(const ConvShape *s, int m, const float *in, const float *w,
                          int transposed, float *out, void *workspace)
{
    cpu_blas_setup();
    const Tiling tl = tiling_make(s, m);
    const size_t npos = (size_t)tl.a * tl.a;
    const int wo = s->c_out, wi = s->c_in;
    const int c_in = transposed ? wo : wi, c_out = transposed ? wi : wo;
    const size_t ups = pos_stride((size_t)wo * wi), vps = pos_stride(tl.block * c_in);
    float *u = workspace, *v = u + npos * ups, *mm = v + npos * vps;
#pragma omp parallel
    {
        size_t lo, hi;
        cpu_team_range((size_t)wo, 1, &lo, &hi);
        filter_transform(m, w, wo, wi, transposed, (int)lo, (int)hi, u);
#pragma omp barrier /* every GEMM reads all of U */
        for (size_t t0 = 0; t0 < tl.tiles; t0 += tl.block) {
            size_t nb = tl.tiles - t0 < tl.block ? tl.tiles - t0 : tl.block;
            const size_t vs = pos_stride(nb * c_in), ms = pos_stride(nb * c_out);
            cpu_team_range(nb, 1, &lo, &hi);
            input_transform(&tl, in, c_in, t0 + lo, t0 + hi, t0, nb, v);
#pragma omp barrier /* each GEMM reads every thread's tiles */
            cpu_team_range(npos, 1, &lo, &hi);
            for (size_t i = lo; i < hi; i++)
                cpu_sgemm(0, !transposed, (int)nb, c_out, c_in, 1.0f, v + i * vs, c_in,
                          u + i * ups, wi, 0.0f, mm + i * ms, c_out);
#pragma omp barrier /* each tile's output reads all the GEMMs */
            cpu_team_range(nb, 1, &lo, &hi);
            output_transform(&tl, mm, c_out, t0 + lo, t0 + hi, t0, nb, out);
            /* no barrier: the next block writes V, which nobody reads until its GEMMs, and
             * its M only after the barrier that follows its input transform */
        }
    }
}

void winograd_conv2d_forward(const ConvShape *s, const float *x, const float *w, float *y,
                             void *workspace)
{
    winograd_conv(s, 4, x, w, 0, y, workspace);
}

void winograd2_conv2d_forward(const ConvShape *s, const float *x, const float *w, float *y,
                              void *workspace)
{
    winograd_conv(s, 2, x, w, 0, y, workspace);
}

void winograd_conv2d_backward_data(const ConvShape *s, const float *dy, const float *w, float *dx,
                                   void *workspace)
{
    winograd_conv(s, 4, dy, w, 1, dx, workspace);
}

void winograd_conv2d_backward_weight(const ConvShape *s, const float *x, const float *dy,
                                     float *dw, void *workspace)
{
    cpu_blas_setup();
    const Tiling tl = tiling_make(s, 4);
    const int wo = s->c_out, wi = s->c_in;
    const size_t ups = pos_stride((size_t)wo * wi), vps = pos_stride(tl.block * wi);
    float *du = workspace, *v = du + NPOS * ups, *e = v + NPOS * vps;
#pragma omp parallel
    {
        size_t lo, hi;
        for (size_t t0 = 0; t0 < tl.tiles; t0 += tl.block) {
            size_t nb = tl.tiles - t0 < tl.block ? tl.tiles - t0 : tl.block;
            const size_t vs = pos_stride(nb * wi), es = pos_stride(nb * wo);
            cpu_team_range(nb, 1, &lo, &hi);
            input_transform(&tl, x, wi, t0 + lo, t0 + hi, t0, nb, v);
            output_grad_transform(&tl, dy, wo, t0 + lo, t0 + hi, t0, nb, e);
#pragma omp barrier /* each GEMM reads every thread's tiles */
            /* a position's dU is owned by one thread for the whole pass: no races, and its
             * sum over blocks runs in a fixed order */
            cpu_team_range(NPOS, 1, &lo, &hi);
            for (size_t i = lo; i < hi; i++)
                cpu_sgemm(1, 0, wo, wi, (int)nb, 1.0f, e + i * es, wo, v + i * vs, wi,
                          t0 == 0 ? 0.0f : 1.0f, du + i * ups, wi);
#pragma omp barrier /* the next block overwrites V and E; the end needs all of dU */
        }
        cpu_team_range((size_t)wo, 1, &lo, &hi);
        filter_grad_transform(du, wo, wi, (int)lo, (int)hi, dw);
    }
}

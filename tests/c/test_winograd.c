/* test_winograd.c — the Winograd F(4x4, 3x3) convolution (kernels/cpu/conv_winograd.c), and its
 * F(2x2, 3x3) forward pass, against the double-precision direct sum (kernels/reference/conv_ref.c), all three passes, on shapes
 * with partial tiles (sizes not multiples of 4, maps smaller than one tile), channel counts
 * across the transforms' 64-channel chunks, and tile blocks small enough to force many blocks.
 *
 * Error is measured as in test_kernels.c: max |fast - ref| / max |ref| per tensor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "kernels/cpu/winograd.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_CHECK_SEED 0x2545f4914f6cdd1dull
#include "tests/c/kernel_check.h"

/* max |fast - ref| / max |ref| (NaN-safe: a NaN yields infinity). */
static double rel_error(const float *fast, const double *ref, size_t count)
{
    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs((double)fast[i] - ref[i]);
        if (!(e <= max_err)) max_err = isnan(e) ? INFINITY : e;
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    return max_err / (max_ref > 0 ? max_ref : 1);
}

/* Tolerance, relative to max |ref| of the tensor. F(4x4, 3x3) in float rounds transformed
 * values that reach ~100x the inputs (B^T and A^T hold 4, 5 and 8) and cancel in the output
 * transform, so its error is ~10x the direct sum's (CONV_TOL 3e-5 in test_kernels.c is the
 * direct sum's worst-case bound; its measured error is ~6e-7). Measured on the cases below
 * with inputs in [-1, 1]: at most 7.7e-6 forward, 6.3e-6 backward data, 3.6e-6 backward
 * weight (printed on each run); on ResNet shapes up to 512 channels at most 1.3e-5.
 * 5e-5 leaves over 6x margin here; a wrong tap, transform coefficient or tile offset changes
 * results by at least ~1/(9 c_in) of the scale (> 8e-4 for the widest case). */
#define WINO_TOL 5e-5
/* F(2x2, 3x3) forward: its transforms hold only 0, ±1 and ±1/2 (transformed values within 4x
 * the inputs), so its error stays at the direct sum's level: measured at most 3.8e-7 on the
 * cases below. The tolerance is the direct sum's own bound (CONV_TOL in test_kernels.c). */
#define WINO2_TOL 3e-6

typedef struct { int n, h, w, c_in, c_out; } Case;

static const Case cases[] = {
    {2, 5, 7, 3, 4},   {1, 3, 3, 5, 2},   {3, 1, 1, 4, 6},   {2, 1, 4, 7, 3},
    {2, 8, 8, 16, 8},  {1, 9, 6, 70, 33}, {2, 4, 4, 65, 130}, {1, 13, 11, 32, 40},
    {2, 17, 15, 33, 40},
};

static double worst[4]; /* forward, backward data, backward weight, forward F(2x2, 3x3) */

static void check_case(const Case *cc, int f2)
{
    ConvShape s = conv_shape_make(cc->n, cc->h, cc->w, cc->c_in, cc->c_out, 3, 1, 1);
    size_t nx = (size_t)s.n * s.h * s.w * s.c_in, ny = (size_t)s.n * s.oh * s.ow * s.c_out;
    size_t nw = (size_t)s.c_out * 9 * s.c_in;
    float *x = rand_floats(nx, 1.0f, 0.0f), *w = rand_floats(nw, 1.0f, 0.0f), *dy = rand_floats(ny, 1.0f, 0.0f);
    float *dw = rand_floats(nw, 1.0f, 0.0f); /* nonzero start: backward weight must accumulate */
    double *xd = widen(x, nx), *wd = widen(w, nw), *dyd = widen(dy, ny), *dwd = widen(dw, nw);
    float *y = xmalloc(ny * sizeof(float)), *dx = xmalloc(nx * sizeof(float));
    double *yr = xmalloc(ny * sizeof(double)), *dxr = xmalloc(nx * sizeof(double));
    void *ws = xaligned_alloc(conv2d_workspace_bytes(&s) + 64);
    assert_true(conv2d_workspace_bytes(&s) >= winograd_workspace_bytes(&s));

    for (size_t i = 0; i < ny; i++) y[i] = NAN; /* every output must be written */
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    conv2d_forward(&s, x, w, y, ws);
    conv2d_backward_data(&s, dy, w, dx, ws);
    conv2d_backward_weight(&s, x, dy, dw, ws);
    ref_conv2d_forward(&s, xd, wd, yr);
    ref_conv2d_backward_data(&s, dyd, wd, dxr);
    ref_conv2d_backward_weight(&s, xd, dyd, dwd);

    double e[3] = {rel_error(y, yr, ny), rel_error(dx, dxr, nx), rel_error(dw, dwd, nw)};
    const char *pass[3] = {f2 ? "F(2x2) forward" : "forward", "backward data", "backward weight"};
    for (int p = 0; p < 3; p++) {
        int slot = f2 && p == 0 ? 3 : p;
        double tol = f2 && p == 0 ? WINO2_TOL : WINO_TOL;
        if (e[p] > worst[slot]) worst[slot] = e[p];
        if (!(e[p] <= tol)) {
            print_error("winograd %s n%d h%d w%d ci%d co%d block %zu: error %.3g > %.3g\n",
                        pass[p], cc->n, cc->h, cc->w, cc->c_in, cc->c_out,
                        cpu_winograd_tile_block, e[p], tol);
            fail();
        }
    }
    free(x); free(w); free(dy); free(dw); free(xd); free(wd); free(dyd); free(dwd);
    free(y); free(dx); free(yr); free(dxr); free(ws);
}

static void test_winograd_matches_reference(void **state)
{
    (void)state;
    const size_t blocks[] = {1, 3, 7, 128};
    const size_t saved = cpu_winograd_tile_block;
    for (int f2 = 0; f2 < 2; f2++) {
        cpu_conv_set_algo(f2 ? CONV_ALGO_WINOGRAD2 : CONV_ALGO_WINOGRAD);
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
            cpu_winograd_tile_block = blocks[b];
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i], f2);
        }
    }
    cpu_winograd_tile_block = saved;
    cpu_conv_set_algo(CONV_ALGO_AUTO);
    printf("winograd: max relative error forward %.3g, backward data %.3g, backward weight "
           "%.3g (tolerance %.3g); F(2x2, 3x3) forward %.3g (tolerance %.3g)\n", worst[0],
           worst[1], worst[2], WINO_TOL, worst[3], WINO2_TOL);
}

/* The GEMMs are split over the team by transformed position, each on one thread, and
 * transforms by tile: results are bit-identical whatever the thread count. */
static void test_winograd_thread_count_does_not_change_results(void **state)
{
    (void)state;
    ConvShape s = conv_shape_make(3, 10, 9, 40, 36, 3, 1, 1);
    size_t nx = (size_t)s.n * s.h * s.w * s.c_in, ny = (size_t)s.n * s.oh * s.ow * s.c_out;
    size_t nw = (size_t)s.c_out * 9 * s.c_in;
    float *x = rand_floats(nx, 1.0f, 0.0f), *w = rand_floats(nw, 1.0f, 0.0f), *dy = rand_floats(ny, 1.0f, 0.0f);
    float *out[2][4];
    void *ws = xaligned_alloc(conv2d_workspace_bytes(&s) + 64);
    const size_t saved = cpu_winograd_tile_block;
    cpu_winograd_tile_block = 5;
    cpu_conv_set_algo(CONV_ALGO_WINOGRAD);
    for (int t = 0; t < 2; t++) {
        kernels_set_threads(t == 0 ? 1 : 3);
        out[t][0] = xmalloc(ny * sizeof(float));
        out[t][1] = xmalloc(nx * sizeof(float));
        out[t][2] = xcalloc(nw, sizeof(float));
        conv2d_forward(&s, x, w, out[t][0], ws);
        conv2d_backward_data(&s, dy, w, out[t][1], ws);
        conv2d_backward_weight(&s, x, dy, out[t][2], ws);
        out[t][3] = xmalloc(ny * sizeof(float));
        cpu_conv_set_algo(CONV_ALGO_WINOGRAD2);
        conv2d_forward(&s, x, w, out[t][3], ws);
        cpu_conv_set_algo(CONV_ALGO_WINOGRAD);
    }
    kernels_set_threads(0);
    cpu_conv_set_algo(CONV_ALGO_AUTO);
    cpu_winograd_tile_block = saved;
    assert_memory_equal(out[0][0], out[1][0], ny * sizeof(float));
    assert_memory_equal(out[0][1], out[1][1], nx * sizeof(float));
    assert_memory_equal(out[0][2], out[1][2], nw * sizeof(float));
    assert_memory_equal(out[0][3], out[1][3], ny * sizeof(float));
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < 4; p++) free(out[t][p]);
    free(x); free(w); free(dy); free(ws);
}

/* Winograd applies to 3x3 stride-1 pad-1 convs only; forcing im2col turns it off. */
static void test_winograd_dispatch(void **state)
{
    (void)state;
    ConvShape wide = conv_shape_make(2, 8, 8, 64, 64, 3, 1, 1);
    ConvShape strided = conv_shape_make(2, 8, 8, 64, 64, 3, 2, 1);
    ConvShape unpadded = conv_shape_make(2, 8, 8, 64, 64, 3, 1, 0);
    ConvShape pointwise = conv_shape_make(2, 8, 8, 64, 64, 1, 1, 0);
    assert_true(winograd_applies(&wide));
    assert_false(winograd_applies(&strided));
    assert_false(winograd_applies(&unpadded));
    assert_false(winograd_applies(&pointwise));
    assert_int_equal(winograd_workspace_bytes(&strided), 0);
    cpu_conv_set_algo(CONV_ALGO_WINOGRAD);
    assert_int_equal(conv_use_winograd(&wide, 0), 4);
    assert_false(conv_use_winograd(&strided, 0));
    cpu_conv_set_algo(CONV_ALGO_WINOGRAD2);
    assert_int_equal(conv_use_winograd(&wide, 0), 2);
    assert_int_equal(conv_use_winograd(&wide, 1), 4);
    assert_false(conv_use_winograd(&strided, 0));
    cpu_conv_set_algo(CONV_ALGO_IM2COL);
    assert_false(conv_use_winograd(&wide, 0));
    cpu_conv_set_algo(CONV_ALGO_AUTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_winograd_matches_reference),
        cmocka_unit_test(test_winograd_thread_count_does_not_change_results),
        cmocka_unit_test(test_winograd_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

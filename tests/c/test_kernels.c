/* test_kernels.c — every CPU kernel against its double-precision reference (kernels/reference.h)
 * on random shapes, odd sizes included.
 *
 * Inputs are random floats; the reference sees the same values widened to double, so every
 * difference is the fast kernel's own float rounding (or a bug). Errors are measured relative
 * to the largest reference magnitude of the tensor (max_i |fast_i - ref_i| / max_i |ref_i|),
 * which is the scale float rounding is proportional to; each check states its tolerance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------ */

#include "tests/c/kernel_check.h"

/* ---- convolution -------------------------------------------------------------------------- */

typedef struct { int n, h, w, c_in, c_out, k, stride, pad; } ConvCase;

/* Odd sizes everywhere, every kernel size ResNet uses (1, 3, 7) with its strides and pads,
 * plus non-ResNet combinations (pad 0 with k 3, stride 3, pad 2 with k 5). */
static const ConvCase conv_cases[] = {
    {3, 7, 5, 5, 7, 1, 1, 0}, {3, 7, 5, 5, 7, 1, 2, 0}, {3, 7, 5, 5, 7, 3, 1, 1},
    {3, 7, 5, 5, 7, 3, 2, 1}, {3, 7, 5, 5, 7, 7, 2, 3}, {3, 7, 5, 5, 7, 7, 1, 3},
    {3, 7, 5, 5, 7, 3, 1, 0}, {2, 9, 11, 3, 4, 5, 3, 2}, {1, 4, 4, 1, 1, 3, 2, 1},
    {2, 6, 6, 16, 8, 1, 1, 0}, {2, 8, 8, 3, 16, 7, 2, 3}, {2, 8, 6, 6, 5, 1, 2, 1},
    /* large enough that pointwise convs take the multi-threaded GEMM path */
    {2, 17, 15, 33, 40, 1, 1, 0}, {2, 17, 15, 33, 40, 3, 1, 1},
};

/* Tolerance for conv outputs and gradients: each output is a float sum of at most
 * c_in*k*k (<= 392 here) or n*oh*ow (<= 200) products of values in [-1, 1]. Float rounding
 * of such sums grows like sqrt(terms) * 6e-8 relative to the scale (~1e-6), with a worst
 * case of terms * 6e-8 (~2.4e-5). 3e-5 covers the worst case; a wrong tap, offset or
 * missing chunk changes results by at least ~1/terms of the scale (> 2.5e-3). */
#define CONV_TOL 3e-5

static void check_conv_case(const ConvCase *cc)
{
    ConvShape s = conv_shape_make(cc->n, cc->h, cc->w, cc->c_in, cc->c_out, cc->k, cc->stride,
                                  cc->pad);
    size_t nx = (size_t)s.n * s.h * s.w * s.c_in, ny = (size_t)s.n * s.oh * s.ow * s.c_out;
    size_t nw = (size_t)s.c_out * s.kh * s.kw * s.c_in;
    float *x = rand_floats(nx, 1, 0), *w = rand_floats(nw, 1, 0), *dy = rand_floats(ny, 1, 0);
    float *dw0 = rand_floats(nw, 1, 0); /* nonzero start: backward_weight must accumulate */
    double *xd = widen(x, nx), *wd = widen(w, nw), *dyd = widen(dy, ny), *dwd = widen(dw0, nw);
    float *y = xmalloc(ny * sizeof(float)), *dx = xmalloc(nx * sizeof(float));
    double *yr = xmalloc(ny * sizeof(double)), *dxr = xmalloc(nx * sizeof(double));
    void *ws = xmalloc(conv2d_workspace_bytes(&s) + 1);
    char label[160];
    snprintf(label, sizeof label, "conv n%d h%d w%d ci%d co%d k%d s%d p%d (chunk %zu)", cc->n,
             cc->h, cc->w, cc->c_in, cc->c_out, cc->k, cc->stride, cc->pad,
             cpu_conv_chunk_floats);

    /* dx is poisoned first: backward_data must overwrite, not accumulate */
    for (size_t i = 0; i < nx; i++) dx[i] = 1e6f;
    conv2d_forward(&s, x, w, y, ws);
    conv2d_backward_data(&s, dy, w, dx, ws);
    conv2d_backward_weight(&s, x, dy, dw0, ws);
    ref_conv2d_forward(&s, xd, wd, yr);
    ref_conv2d_backward_data(&s, dyd, wd, dxr);
    ref_conv2d_backward_weight(&s, xd, dyd, dwd);

    char what[200];
    snprintf(what, sizeof what, "%s forward", label);
    expect_close(what, y, yr, ny, CONV_TOL);
    snprintf(what, sizeof what, "%s backward_data", label);
    expect_close(what, dx, dxr, nx, CONV_TOL);
    snprintf(what, sizeof what, "%s backward_weight", label);
    expect_close(what, dw0, dwd, nw, CONV_TOL);

    free(x); free(w); free(dy); free(dw0); free(xd); free(wd); free(dyd); free(dwd);
    free(y); free(dx); free(yr); free(dxr); free(ws);
}

static void test_conv_matches_reference(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        check_conv_case(&conv_cases[i]);
}

/* The same shapes with a tiny im2col chunk, so chunks split images and even single output
 * rows; results must not depend on where chunk boundaries fall. */
static void test_conv_small_chunks_match_reference(void **state)
{
    (void)state;
    size_t saved = cpu_conv_chunk_floats;
    const size_t chunks[] = {1, 97, 1000};
    for (size_t c = 0; c < 3; c++) {
        cpu_conv_chunk_floats = chunks[c];
        for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
            check_conv_case(&conv_cases[i]);
    }
    cpu_conv_chunk_floats = saved;
}

static void test_conv_shape_and_weight_layout(void **state)
{
    (void)state;
    ConvShape s = conv_shape_make(2, 224, 224, 3, 64, 7, 2, 3);
    assert_int_equal(s.oh, 112); /* torchvision's conv1 */
    assert_int_equal(s.ow, 112);
    s = conv_shape_make(1, 7, 5, 4, 3, 3, 2, 1);
    assert_int_equal(s.oh, 4);
    assert_int_equal(s.ow, 3);
    ConvShape pw = conv_shape_make(2, 3, 3, 8, 4, 1, 1, 0);
    assert_int_equal(conv2d_workspace_bytes(&pw), 0); /* pointwise convs need no im2col */

    /* OIHW element (o, i, ky, kx) must land at OHWI (o, ky, kx, i), and back */
    size_t nw = (size_t)s.c_out * s.c_in * s.kh * s.kw;
    float *oihw = xmalloc(nw * sizeof(float)), *ohwi = xmalloc(nw * sizeof(float));
    float *back = xmalloc(nw * sizeof(float));
    for (size_t i = 0; i < nw; i++) oihw[i] = (float)i;
    conv_weight_from_oihw(&s, oihw, ohwi);
    for (int o = 0; o < s.c_out; o++)
        for (int i = 0; i < s.c_in; i++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    assert_true(ohwi[((o * 3 + ky) * 3 + kx) * s.c_in + i] ==
                                oihw[((o * s.c_in + i) * 3 + ky) * 3 + kx]);
    conv_weight_to_oihw(&s, ohwi, back);
    assert_memory_equal(back, oihw, nw * sizeof(float));
    free(oihw); free(ohwi); free(back);
}

/* ---- batch norm --------------------------------------------------------------------------- */

/* BN outputs are O(1) normalized values computed from float data with double statistics;
 * the float rounding of x, gamma*invstd etc. is a few ulp (~3e-7 relative). 1e-5 leaves
 * margin for the largest |xhat| (~2-3) while a wrong split grouping, a biased/unbiased mix-up
 * (factor count/(count-1) >= 1.0017 here) or a missing momentum term fails by far more. */
#define BN_TOL 1e-5

static void check_bn_case(int n, int m, int c, int splits, float offset)
{
    BNShape s = {.n = n, .m = m, .c = c, .splits = splits, .eps = 1e-5f, .momentum = 0.1f};
    size_t nx = (size_t)n * m * c, ns = (size_t)splits * c;
    float *x = rand_floats(nx, 2, offset), *dy = rand_floats(nx, 1, 0);
    float *gamma = rand_floats(c, 0.5f, 1), *beta = rand_floats(c, 0.5f, 0);
    float *rm = rand_floats(c, 1, 0), *rv = rand_floats(c, 0.5f, 1);
    float *dgamma = rand_floats(c, 1, 0), *dbeta = rand_floats(c, 1, 0);
    double *xd = widen(x, nx), *dyd = widen(dy, nx), *gd = widen(gamma, c), *bd = widen(beta, c);
    double *rmd = widen(rm, c), *rvd = widen(rv, c);
    double *dgd = widen(dgamma, c), *dbd = widen(dbeta, c);
    float *y = xmalloc(nx * sizeof(float)), *dx = xmalloc(nx * sizeof(float));
    float *sm = xmalloc(ns * sizeof(float)), *si = xmalloc(ns * sizeof(float));
    double *yr = xmalloc(nx * sizeof(double)), *dxr = xmalloc(nx * sizeof(double));
    double *smr = xmalloc(ns * sizeof(double)), *sir = xmalloc(ns * sizeof(double));
    char what[160];
#define LABEL(part) (snprintf(what, sizeof what, "bn n%d m%d c%d splits%d offset%g %s", n, m, c, \
                              splits, (double)offset, part), what)

    batchnorm_forward_train(&s, x, gamma, beta, rm, rv, sm, si, y);
    ref_batchnorm_forward_train(&s, xd, gd, bd, rmd, rvd, smr, sir, yr);
    expect_close(LABEL("train y"), y, yr, nx, BN_TOL);
    expect_close(LABEL("save_mean"), sm, smr, ns, BN_TOL);
    expect_close(LABEL("save_invstd"), si, sir, ns, BN_TOL);
    expect_close(LABEL("running_mean"), rm, rmd, c, BN_TOL);
    expect_close(LABEL("running_var"), rv, rvd, c, BN_TOL);

    for (size_t i = 0; i < nx; i++) dx[i] = 1e6f; /* dx must be overwritten */
    batchnorm_backward(&s, x, dy, gamma, sm, si, dx, dgamma, dbeta);
    ref_batchnorm_backward(&s, xd, dyd, gd, smr, sir, dxr, dgd, dbd);
    expect_close(LABEL("dx"), dx, dxr, nx, BN_TOL);
    expect_close(LABEL("dgamma"), dgamma, dgd, c, BN_TOL);
    expect_close(LABEL("dbeta"), dbeta, dbd, c, BN_TOL);

    batchnorm_forward_eval(&s, x, gamma, beta, rm, rv, y);
    ref_batchnorm_forward_eval(&s, xd, gd, bd, rmd, rvd, yr);
    expect_close(LABEL("eval y"), y, yr, nx, BN_TOL);
#undef LABEL
    free(x); free(dy); free(gamma); free(beta); free(rm); free(rv); free(dgamma); free(dbeta);
    free(xd); free(dyd); free(gd); free(bd); free(rmd); free(rvd); free(dgd); free(dbd);
    free(y); free(dx); free(sm); free(si); free(yr); free(dxr); free(smr); free(sir);
}

static void test_batchnorm_matches_reference(void **state)
{
    (void)state;
    check_bn_case(3, 35, 7, 1, 0);
    check_bn_case(8, 9, 5, 2, 0.5f);
    /* [N, C] input as after a linear layer. (With only 2 values per split, dx is a float
     * cancellation of terms ~invstd*|dy| that can exceed the result 100-fold, in PyTorch as
     * here, so the smallest split below holds 8 values.) */
    check_bn_case(32, 1, 13, 4, 0);
    check_bn_case(6, 25, 3, 3, -1);
    check_bn_case(16, 4, 64, 8, 0);  /* the CIFAR demo's bn_splits 8 */
    check_bn_case(4, 10, 9, 1, 30);  /* |mean| >> std: the statistics must not cancel */
}

/* Numbers computed with PyTorch 1.13 (the official SplitBatchNorm of the MoCo CIFAR demo):
 *   x = torch.arange(24.).reshape(4, 3, 2, 1) ** 1.5 / 10 (NCHW), bn = SplitBatchNorm(3, 2),
 *   running_mean = [0.5, -1, 2], running_var = [1, 2, 0.5], bn.train(); bn(x) once.
 * They pin the grouping i % splits and the unbiased, per-split-averaged running update. */
static void test_batchnorm_split_running_stats_match_pytorch(void **state)
{
    (void)state;
    const int n = 4, c = 3, m = 2;
    float x[24], rm[3] = {0.5f, -1, 2}, rv[3] = {1, 2, 0.5f}, gamma[3] = {1, 1, 1},
                 beta[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) /* NCHW value (i, ch, r) goes to NHWC (i, r, ch) */
        for (int ch = 0; ch < c; ch++)
            for (int r = 0; r < m; r++)
                x[(i * m + r) * c + ch] = powf((float)((i * c + ch) * m + r), 1.5f) / 10;
    float y[24], sm[6], si[6];
    BNShape s = {.n = n, .m = m, .c = c, .splits = 2, .eps = 1e-5f, .momentum = 0.1f};
    batchnorm_forward_train(&s, x, gamma, beta, rm, rv, sm, si, y);
    const double want_rm[3] = {0.8023065328598022, -0.45774152874946594, 2.343590021133423}, 
                 want_rv[3] = {1.8868755102157593, 3.017211437225342, 1.8910582065582275};
    /* 1e-6 relative: PyTorch computes these in float; ours differ by float rounding only */
    expect_close("split running_mean vs PyTorch", rm, want_rm, 3, 1e-6);
    expect_close("split running_var vs PyTorch", rv, want_rv, 3, 1e-6);
}

/* ---- elementwise, pooling, linear, head ---------------------------------------------------- */

static void test_elementwise_match_reference(void **state)
{
    (void)state;
    const size_t count = 1001;
    float *x = rand_floats(count, 1, 0), *b = rand_floats(count, 1, 0), *y = xmalloc(count * 4);
    float *dx = xmalloc(count * 4);
    double *xd = widen(x, count), *bd = widen(b, count), *yr = xmalloc(count * 8);
    double *dxr = xmalloc(count * 8);
    /* relu, add, accumulate are exact in float (add rounds once, as the double->float cast of
     * the reference does), so they must agree exactly: tolerance 0 */
    relu_forward(count, x, y);
    ref_relu_forward(count, xd, yr);
    expect_close("relu forward", y, yr, count, 0);
    relu_backward(count, y, b, dx);
    ref_relu_backward(count, yr, bd, dxr);
    expect_close("relu backward", dx, dxr, count, 0);
    relu_backward(count, y, b, b); /* dx may alias dy */
    expect_close("relu backward in place", b, dxr, count, 0);
    free(b);
    b = rand_floats(count, 1, 0);
    free(bd);
    bd = widen(b, count);
    add_forward(count, x, b, y);
    for (size_t i = 0; i < count; i++) yr[i] = (float)(xd[i] + bd[i]);
    expect_close("add", y, yr, count, 0);
    add_forward(count, x, b, x); /* y may alias a */
    expect_close("add in place", x, yr, count, 0);
    accumulate(count, b, x);
    ref_accumulate(count, bd, yr);
    for (size_t i = 0; i < count; i++) yr[i] = (float)yr[i];
    expect_close("accumulate", x, yr, count, 0);
    relu_forward(count, x, x); /* y may alias x */
    for (size_t i = 0; i < count; i++) assert_true(x[i] >= 0);
    free(x); free(b); free(y); free(dx); free(xd); free(bd); free(yr); free(dxr);
}

static void check_maxpool_case(int n, int h, int w, int c, int k, int stride, int pad)
{
    PoolShape s = pool_shape_make(n, h, w, c, k, stride, pad);
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * s.oh * s.ow * c;
    float *x = rand_floats(nx, 1, 0), *dy = rand_floats(ny, 1, 0), *y = xmalloc(ny * 4);
    float *dx = xmalloc(nx * 4);
    int32_t *am = xmalloc(ny * 4), *amr = xmalloc(ny * 4);
    double *xd = widen(x, nx), *dyd = widen(dy, ny), *yr = xmalloc(ny * 8), *dxr = xmalloc(nx * 8);
    maxpool_forward(&s, x, y, am);
    ref_maxpool_forward(&s, xd, yr, amr);
    expect_close("maxpool forward", y, yr, ny, 0); /* a max is exact */
    assert_memory_equal(am, amr, ny * sizeof(int32_t));
    for (size_t i = 0; i < nx; i++) dx[i] = 1e6f;
    maxpool_backward(&s, dy, am, dx);
    ref_maxpool_backward(&s, dyd, amr, dxr);
    /* overlapping windows (3x3/2) add up to 4 gradients: float rounding ~1e-7 of the scale */
    expect_close("maxpool backward", dx, dxr, nx, 1e-6);
    free(x); free(dy); free(y); free(dx); free(am); free(amr); free(xd); free(dyd); free(yr);
    free(dxr);
}

static void test_pool_match_reference(void **state)
{
    (void)state;
    check_maxpool_case(2, 7, 5, 3, 3, 2, 1);   /* odd sizes: the last window overhangs */
    check_maxpool_case(3, 8, 8, 5, 3, 2, 1);
    check_maxpool_case(1, 112, 112, 4, 3, 2, 1);
    check_maxpool_case(2, 6, 7, 2, 2, 2, 0);

    /* ties: the first maximum in row-major window order wins, as in PyTorch */
    PoolShape s = pool_shape_make(1, 3, 3, 1, 3, 2, 1);
    float x[9] = {1, 5, 5, 5, 5, 2, 0, 0, 0}, y[4];
    int32_t am[4];
    maxpool_forward(&s, x, y, am);
    assert_true(y[0] == 5 && am[0] == 1);
    assert_true(y[1] == 5 && am[1] == 1);
    assert_true(y[2] == 5 && am[2] == 3);
    /* -inf padding: an all-negative input must not pick up a zero from the padding */
    float xn[9] = {-3, -2, -4, -5, -6, -7, -8, -9, -1};
    maxpool_forward(&s, xn, y, am);
    assert_true(y[0] == -2 && y[3] == -1);

    const int n = 3, hw = 49, c = 11;
    float *x2 = rand_floats((size_t)n * hw * c, 1, 0), *y2 = xmalloc(n * c * 4);
    float *dx2 = xmalloc((size_t)n * hw * c * 4);
    double *xd = widen(x2, (size_t)n * hw * c), *yr = xmalloc(n * c * 8);
    double *dxr = xmalloc((size_t)n * hw * c * 8);
    avgpool_forward(n, hw, c, x2, y2);
    ref_avgpool_forward(n, hw, c, xd, yr);
    expect_close("avgpool forward", y2, yr, n * c, 1e-6); /* a float sum of 49 terms */
    avgpool_backward(n, hw, c, y2, dx2);
    double *y2d = widen(y2, n * c);
    ref_avgpool_backward(n, hw, c, y2d, dxr);
    expect_close("avgpool backward", dx2, dxr, (size_t)n * hw * c, 1e-6); /* one rounding */
    free(x2); free(y2); free(dx2); free(xd); free(yr); free(dxr); free(y2d);
}

static void test_linear_and_gemm_match_reference(void **state)
{
    (void)state;
    const int n = 5, in = 37, out = 11;
    float *x = rand_floats((size_t)n * in, 1, 0), *w = rand_floats((size_t)out * in, 1, 0);
    float *b = rand_floats(out, 1, 0), *dy = rand_floats((size_t)n * out, 1, 0);
    float *dw = rand_floats((size_t)out * in, 1, 0), *db = rand_floats(out, 1, 0);
    double *xd = widen(x, n * in), *wd = widen(w, out * in), *bd = widen(b, out);
    double *dyd = widen(dy, n * out), *dwd = widen(dw, out * in), *dbd = widen(db, out);
    float *y = xmalloc(n * out * 4), *dx = xmalloc(n * in * 4);
    double *yr = xmalloc(n * out * 8), *dxr = xmalloc(n * in * 8);
    /* sums of <= 37 products of values in [-1, 1]: 1e-5 is far above float rounding */
    linear_forward(n, in, out, x, w, b, y);
    ref_linear_forward(n, in, out, xd, wd, bd, yr);
    expect_close("linear forward", y, yr, n * out, 1e-5);
    linear_forward(n, in, out, x, w, NULL, y);
    ref_linear_forward(n, in, out, xd, wd, NULL, yr);
    expect_close("linear forward no bias", y, yr, n * out, 1e-5);
    linear_backward(n, in, out, x, w, dy, dx, dw, db);
    ref_linear_backward(n, in, out, xd, wd, dyd, dxr, dwd, dbd);
    expect_close("linear dx", dx, dxr, n * in, 1e-5);
    expect_close("linear dw (accumulated)", dw, dwd, out * in, 1e-5);
    expect_close("linear db (accumulated)", db, dbd, out, 1e-5);
    linear_backward(n, in, out, x, w, dy, NULL, dw, NULL); /* NULL dx and db are skipped */
    ref_linear_backward(n, in, out, xd, wd, dyd, NULL, dwd, NULL);
    expect_close("linear dw second accumulation", dw, dwd, out * in, 1e-5);

    /* gemm with every transpose combination and padded leading dimensions */
    const int m = 7, nn = 9, k = 13, ld = 20;
    float *a = rand_floats(20 * 20, 1, 0), *bb = rand_floats(20 * 20, 1, 0);
    double *ad = widen(a, 400), *bbd = widen(bb, 400);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *c = rand_floats(20 * 20, 1, 0);
            double *cd = widen(c, 400);
            gemm(ta, tb, m, nn, k, 0.5f, a, ld, bb, ld, 0.25f, c, ld);
            ref_gemm(ta, tb, m, nn, k, 0.5, ad, ld, bbd, ld, 0.25, cd, ld);
            expect_close("gemm", c, cd, 400, 1e-5); /* 13-term sums; padding must be untouched */
            free(c); free(cd);
        }
    free(a); free(bb); free(ad); free(bbd);

    /* products big enough to be split across the thread team, once by rows (m > n) and once
     * by columns (m < n), odd sizes so slices end off the 16-row grain; 29-term sums */
    const int shapes[2][3] = {{301, 67, 29}, {67, 301, 29}};
    for (int t = 0; t < 2; t++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int bm = shapes[t][0], bn = shapes[t][1], bk = shapes[t][2];
                int lda = (ta ? bm : bk) + 3, ldb = (tb ? bk : bn) + 5, ldc = bn + 7;
                size_t na = (size_t)(ta ? bk : bm) * lda, nb = (size_t)(tb ? bn : bk) * ldb;
                size_t nc = (size_t)bm * ldc;
                float *ba = rand_floats(na, 1, 0), *bbm = rand_floats(nb, 1, 0);
                float *bc = rand_floats(nc, 1, 0);
                double *bad = widen(ba, na), *bbmd = widen(bbm, nb), *bcd = widen(bc, nc);
                gemm(ta, tb, bm, bn, bk, 1.5f, ba, lda, bbm, ldb, -0.5f, bc, ldc);
                ref_gemm(ta, tb, bm, bn, bk, 1.5, bad, lda, bbmd, ldb, -0.5, bcd, ldc);
                expect_close("threaded gemm", bc, bcd, nc, 1e-5);
                free(ba); free(bbm); free(bc); free(bad); free(bbmd); free(bcd);
            }
    free(x); free(w); free(b); free(dy); free(dw); free(db); free(xd); free(wd); free(bd);
    free(dyd); free(dwd); free(dbd); free(y); free(dx); free(yr); free(dxr);
}

static void test_head_ops_match_reference(void **state)
{
    (void)state;
    const int n = 6, d = 128;
    float *x = rand_floats((size_t)n * d, 1, 0), *dy = rand_floats((size_t)n * d, 1, 0);
    for (int j = 0; j < d; j++) x[3 * d + j] = 0; /* an all-zero row takes the eps branch */
    x[5 * d] = 1e-14f; /* a tiny nonzero row too */
    for (int j = 1; j < d; j++) x[5 * d + j] = 0;
    float *y = xmalloc(n * d * 4), *norms = xmalloc(n * 4), *dx = xmalloc(n * d * 4);
    double *xd = widen(x, n * d), *dyd = widen(dy, n * d), *yr = xmalloc(n * d * 8);
    double *nr = xmalloc(n * 8), *dxr = xmalloc(n * d * 8);
    l2norm_forward(n, d, x, y, norms);
    ref_l2norm_forward(n, d, xd, yr, nr);
    /* a float division per element and a double norm: ~1 ulp */
    expect_close("l2norm forward", y, yr, n * d, 1e-6);
    for (int i = 0; i < n; i++) assert_true(fabs(norms[i] - nr[i]) <= 1e-6 * nr[i]);
    double *y_f = widen(y, n * d), *n_f = widen(norms, n);
    l2norm_backward(n, d, y, dy, norms, dx);
    ref_l2norm_backward(n, d, y_f, dyd, n_f, dxr);
    /* rows are compared separately: the eps rows have gradients ~1e12 times the others */
    for (int i = 0; i < n; i++)
        expect_close("l2norm backward row", dx + i * d, dxr + i * d, d, 1e-5);

    /* softmax cross-entropy: logits up to +-80 (the MoCo head divides by T = 0.07), where an
     * unstable exp would overflow */
    const int rows = 5, classes = 33;
    float *lg = rand_floats(rows * classes, 80, 0), *dl = xmalloc(rows * classes * 4);
    int32_t labels[5] = {0, 3, 32, 0, 17};
    double *lgd = widen(lg, rows * classes), *dlr = xmalloc(rows * classes * 8);
    float loss = softmax_xent_forward_backward(rows, classes, lg, labels, dl);
    double loss_r = ref_softmax_xent_forward_backward(rows, classes, lgd, labels, dlr);
    assert_true(fabs(loss - loss_r) <= 1e-6 * (1 + fabs(loss_r))); /* double inside, float out */
    expect_close("softmax xent dlogits", dl, dlr, rows * classes, 1e-6);
    assert_true(softmax_xent_forward_backward(rows, classes, lg, labels, NULL) == loss);

    /* top-k on random logits and on ties, which count in the label's favour */
    for (int k = 1; k <= 5; k++)
        assert_int_equal(topk_correct(rows, classes, lg, labels, k),
                         ref_topk_correct(rows, classes, lgd, labels, k));
    float tie[2 * 4] = {1, 1, 1, 0, 0, 2, 2, 2};
    int32_t tl[2] = {2, 0};
    assert_int_equal(topk_correct(2, 4, tie, tl, 1), 1); /* row 0: label ties the max */
    assert_int_equal(topk_correct(2, 4, tie, tl, 3), 1); /* row 1: three logits above label */
    assert_int_equal(topk_correct(2, 4, tie, tl, 4), 2);

    free(x); free(dy); free(y); free(norms); free(dx); free(xd); free(dyd); free(yr); free(nr);
    free(dxr); free(y_f); free(n_f); free(lg); free(dl); free(lgd); free(dlr);
}

/* Results must not depend on the thread count (each op partitions work, never races). */
static void test_thread_count_does_not_change_results(void **state)
{
    (void)state;
    ConvShape s = conv_shape_make(3, 9, 7, 6, 5, 3, 2, 1);
    size_t nx = (size_t)s.n * s.h * s.w * s.c_in, ny = (size_t)s.n * s.oh * s.ow * s.c_out;
    size_t nw = (size_t)s.c_out * 9 * s.c_in;
    float *x = rand_floats(nx, 1, 0), *w = rand_floats(nw, 1, 0), *dy = rand_floats(ny, 1, 0);
    float *dx1 = xmalloc(nx * 4), *dx2 = xmalloc(nx * 4);
    void *ws = xmalloc(conv2d_workspace_bytes(&s) + 1);
    kernels_set_threads(1);
    conv2d_backward_data(&s, dy, w, dx1, ws);
    kernels_set_threads(2);
    conv2d_backward_data(&s, dy, w, dx2, ws);
    kernels_set_threads(0);
    /* col2im adds each input's contributions in the same order whatever the threads: exact */
    assert_memory_equal(dx1, dx2, nx * sizeof(float));
    assert_non_null(kernels_backend_name());
    free(x); free(w); free(dy); free(dx1); free(dx2); free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shape_and_weight_layout),
        cmocka_unit_test(test_conv_matches_reference),
        cmocka_unit_test(test_conv_small_chunks_match_reference),
        cmocka_unit_test(test_batchnorm_matches_reference),
        cmocka_unit_test(test_batchnorm_split_running_stats_match_pytorch),
        cmocka_unit_test(test_elementwise_match_reference),
        cmocka_unit_test(test_pool_match_reference),
        cmocka_unit_test(test_linear_and_gemm_match_reference),
        cmocka_unit_test(test_head_ops_match_reference),
        cmocka_unit_test(test_thread_count_does_not_change_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_kernels_fused.c — the fused batch-norm ops (batchnorm_stats_*, batchnorm_apply,
 * batchnorm_backward_relu) against their double-precision references, and against the
 * unfused ops they replace in the ResNet step (bit for bit: stats + apply is exactly
 * batchnorm_forward_train's arithmetic).
 *
 * Errors are relative to the largest reference magnitude of each tensor, as in
 * test_kernels.c. The fused backward must agree with ReLU backward followed by plain BN
 * backward bit for bit: its mask is recomputed with the forward's own float arithmetic, and
 * a mask that differed from the forward output's sign anywhere would show up here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "kernels/kernels.h"
#include "kernels/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KERNEL_CHECK_SEED 0x2545f4914f6cdd1dull
#include "tests/c/kernel_check.h"

/* Float rounding of a few operations per element, relative to the tensor's scale: the same
 * tolerance test_kernels.c uses for plain BN. */
#define BN_TOL 1e-5

static void check_fused_case(int n, int m, int c, int splits, float offset)
{
    BNShape s = {.n = n, .m = m, .c = c, .splits = splits, .eps = 1e-5f, .momentum = 0.1f};
    size_t nx = (size_t)n * m * c, ns = (size_t)splits * c;
    float *x = rand_floats(nx, 2, offset), *z = rand_floats(nx, 1, 0), *dy = rand_floats(nx, 1, 0);
    float *gamma = rand_floats(c, 0.5f, 1), *beta = rand_floats(c, 0.5f, 0);
    float *rm = rand_floats(c, 1, 0), *rv = rand_floats(c, 0.5f, 1);
    float *rm2 = xmalloc(c * sizeof(float)), *rv2 = xmalloc(c * sizeof(float));
    memcpy(rm2, rm, c * sizeof(float));
    memcpy(rv2, rv, c * sizeof(float));
    float *sm = xmalloc(ns * 4), *si = xmalloc(ns * 4), *sm2 = xmalloc(ns * 4), *si2 = xmalloc(ns * 4);
    float *sc = xmalloc(ns * 4), *sh = xmalloc(ns * 4);
    float *y = xmalloc(nx * 4), *y2 = xmalloc(nx * 4), *dx = xmalloc(nx * 4), *dx2 = xmalloc(nx * 4);
    double *xd = widen(x, nx), *zd = widen(z, nx), *dyd = widen(dy, nx), *gd = widen(gamma, c);
    double *bd = widen(beta, c), *yr = xmalloc(nx * 8), *dxr = xmalloc(nx * 8);
    char what[160];
#define LABEL(part) (snprintf(what, sizeof what, "fused bn n%d m%d c%d splits%d offset%g %s", n, \
                              m, c, splits, (double)offset, part), what)

    /* statistics alone == the statistics of the unfused forward, bit for bit */
    batchnorm_stats_train(&s, x, gamma, beta, rm, rv, sm, si, sc, sh);
    batchnorm_forward_train(&s, x, gamma, beta, rm2, rv2, sm2, si2, y2);
    assert_memory_equal(sm, sm2, ns * 4);
    assert_memory_equal(si, si2, ns * 4);
    assert_memory_equal(rm, rm2, c * 4);
    assert_memory_equal(rv, rv2, c * 4);
    double *smd = widen(sm, ns), *sid = widen(si, ns);

    for (int mode = 0; mode < 4; mode++) {
        int has_z = mode & 2, relu = mode & 1;
        char part[64];
        snprintf(part, sizeof part, "apply z%d relu%d", has_z != 0, relu);
        batchnorm_apply(&s, x, sc, sh, has_z ? z : NULL, relu, y);
        ref_batchnorm_apply(&s, xd, gd, bd, smd, sid, has_z ? zd : NULL, relu, yr);
        expect_close(LABEL(part), y, yr, nx, BN_TOL);
        /* in place over x, and over z: the same values */
        memcpy(y2, x, nx * 4);
        batchnorm_apply(&s, y2, sc, sh, has_z ? z : NULL, relu, y2);
        assert_memory_equal(y, y2, nx * 4);
        if (has_z) {
            memcpy(y2, z, nx * 4);
            batchnorm_apply(&s, x, sc, sh, y2, relu, y2);
            assert_memory_equal(y, y2, nx * 4);
        }
    }
    /* without residual or ReLU, apply is the unfused forward's normalization exactly */
    batchnorm_apply(&s, x, sc, sh, NULL, 0, y);
    batchnorm_forward_train(&s, x, gamma, beta, rm2, rv2, sm2, si2, y2);
    assert_memory_equal(y, y2, nx * 4);

    for (int relu = 0; relu < 2; relu++) {
        float *dg = rand_floats(c, 1, 0), *db = rand_floats(c, 1, 0);
        double *dgd = widen(dg, c), *dbd = widen(db, c);
        float *dg2 = xmalloc(c * 4), *db2 = xmalloc(c * 4);
        memcpy(dg2, dg, c * 4);
        memcpy(db2, db, c * 4);
        for (size_t i = 0; i < nx; i++) dx[i] = 1e6f; /* dx must be overwritten */
        batchnorm_backward_relu(&s, x, dy, gamma, sm, si, sc, sh, relu, dx, dg, db);
        ref_batchnorm_backward_relu(&s, xd, dyd, gd, bd, smd, sid, relu, dxr, dgd, dbd);
        expect_close(LABEL(relu ? "backward relu dx" : "backward dx"), dx, dxr, nx, BN_TOL);
        expect_close(LABEL("backward dgamma"), dg, dgd, c, BN_TOL);
        expect_close(LABEL("backward dbeta"), db, dbd, c, BN_TOL);
        /* == ReLU backward on the forward's output, then the unfused BN backward */
        batchnorm_apply(&s, x, sc, sh, NULL, relu, y);
        memcpy(y2, dy, nx * 4);
        if (relu) relu_backward(nx, y, y2, y2);
        batchnorm_backward(&s, x, y2, gamma, sm, si, dx2, dg2, db2);
        assert_memory_equal(dx, dx2, nx * 4);
        /* in place: dx aliasing dy */
        memcpy(y2, dy, nx * 4);
        batchnorm_backward_relu(&s, x, y2, gamma, sm, si, sc, sh, relu, y2, dg2, db2);
        assert_memory_equal(dx, y2, nx * 4);
        free(dg); free(db); free(dgd); free(dbd); free(dg2); free(db2);
    }

    /* eval statistics: apply with them == the unfused eval forward */
    batchnorm_stats_eval(&s, gamma, beta, rm, rv, sc, sh);
    batchnorm_apply(&s, x, sc, sh, NULL, 0, y);
    batchnorm_forward_eval(&s, x, gamma, beta, rm, rv, y2);
    assert_memory_equal(y, y2, nx * 4);
#undef LABEL
    free(x); free(z); free(dy); free(gamma); free(beta); free(rm); free(rv); free(rm2); free(rv2);
    free(sm); free(si); free(sm2); free(si2); free(sc); free(sh); free(y); free(y2); free(dx); free(dx2);
    free(xd); free(zd); free(dyd); free(gd); free(bd); free(yr); free(dxr); free(smd); free(sid);
}

static void test_fused_batchnorm_matches_reference(void **state)
{
    (void)state;
    check_fused_case(3, 35, 7, 1, 0);
    check_fused_case(8, 9, 5, 2, 0.5f);
    check_fused_case(6, 25, 3, 3, -1);
    check_fused_case(16, 4, 64, 8, 0);  /* the CIFAR demo's bn_splits 8 */
    check_fused_case(4, 10, 9, 1, 30);  /* |mean| >> std */
    check_fused_case(2, 49, 256, 1, 0.2f); /* a ResNet-like channel count */
}

/* The fixed ReLU backward (select, not branch) keeps PyTorch's semantics at 0 and below. */
static void test_relu_backward_edges(void **state)
{
    (void)state;
    float y[6] = {-1, 0, 1e-30f, 2, -0.0f, 3}, dy[6] = {1, 2, 3, 4, 5, 6}, dx[6];
    relu_backward(6, y, dy, dx);
    float want[6] = {0, 0, 3, 4, 0, 6};
    assert_memory_equal(dx, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_batchnorm_matches_reference),
        cmocka_unit_test(test_relu_backward_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

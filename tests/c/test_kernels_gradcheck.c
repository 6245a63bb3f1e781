/* test_kernels_gradcheck.c — every reference backward (kernels/reference.h) against central
 * finite differences of the reference forward, in double precision.
 *
 * For an op y = f(x, params) and a fixed random r, the scalar L = sum(y * r) has gradient
 * dL/dx = backward(dy = r). Each input element is nudged by +-h and (L(+h) - L(-h)) / 2h is
 * compared with the analytic gradient. With h = 1e-5 in double, truncation error is
 * ~h^2 * |f'''| ~ 1e-10 and rounding ~1e-16 * |L| / h ~ 1e-10, so a tolerance of 1e-6 of the
 * gradient's scale is tight: any wrong term in a backward formula is off by far more.
 * Random inputs keep ReLU and max pool inputs away from their kinks (a tie within h has
 * probability ~1e-5 per element).
 * Together with test_kernels.c (fast == reference) this checks the fast backward passes too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/error.h"
#include "kernels/reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_STEP 1e-5
#define FD_TOL 1e-6

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static double rand_uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static double *rand_doubles(size_t count, double scale, double offset)
{
    double *p = xmalloc(count * sizeof(double) + 1);
    for (size_t i = 0; i < count; i++) p[i] = rand_uniform() * scale + offset;
    return p;
}

static double dot(const double *a, const double *b, size_t count)
{
    double acc = 0;
    for (size_t i = 0; i < count; i++) acc += a[i] * b[i];
    return acc;
}

typedef double (*LossFn)(void *ctx);

/* Compares analytic[i] with the central difference of loss() in param[i], for every i. */
static void fd_check(const char *what, double *param, size_t count, const double *analytic,
                     LossFn loss, void *ctx)
{
    double max_err = 0, scale = 0;
    size_t worst = 0;
    double worst_fd = 0;
    for (size_t i = 0; i < count; i++) {
        double saved = param[i];
        param[i] = saved + FD_STEP;
        double lp = loss(ctx);
        param[i] = saved - FD_STEP;
        double lm = loss(ctx);
        param[i] = saved;
        double fd = (lp - lm) / (2 * FD_STEP);
        double e = fabs(fd - analytic[i]);
        if (!(e <= max_err)) {
            max_err = e;
            worst = i;
            worst_fd = fd;
        }
        if (fabs(analytic[i]) > scale) scale = fabs(analytic[i]);
    }
    if (scale == 0) {
        print_error("%s: analytic gradient is all zeros, the check would be vacuous\n", what);
        fail();
    }
    if (!(max_err <= FD_TOL * scale)) {
        print_error("%s: max error %.3g at %zu (analytic %.12g, finite difference %.12g), "
                    "scale %.3g\n", what, max_err, worst, analytic[worst], worst_fd, scale);
        fail();
    }
}

/* ---- convolution -------------------------------------------------------------------------- */

typedef struct { ConvShape s; double *x, *w, *r, *y; } ConvCtx;

static double conv_loss(void *p)
{
    ConvCtx *c = p;
    ref_conv2d_forward(&c->s, c->x, c->w, c->y);
    return dot(c->y, c->r, (size_t)c->s.n * c->s.oh * c->s.ow * c->s.c_out);
}

static void test_conv_backward_matches_finite_differences(void **state)
{
    (void)state;
    const int cases[][8] = { /* n h w c_in c_out k stride pad */
        {3, 7, 5, 5, 7, 1, 1, 0}, {2, 7, 5, 3, 4, 1, 2, 0}, {2, 7, 5, 3, 4, 3, 1, 1},
        {2, 7, 5, 3, 4, 3, 2, 1}, {1, 9, 7, 2, 3, 7, 2, 3}, {2, 6, 5, 2, 3, 3, 1, 0},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *k = cases[t];
        ConvCtx c = {.s = conv_shape_make(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7])};
        size_t nx = (size_t)c.s.n * c.s.h * c.s.w * c.s.c_in;
        size_t ny = (size_t)c.s.n * c.s.oh * c.s.ow * c.s.c_out;
        size_t nw = (size_t)c.s.c_out * c.s.kh * c.s.kw * c.s.c_in;
        c.x = rand_doubles(nx, 1, 0);
        c.w = rand_doubles(nw, 1, 0);
        c.r = rand_doubles(ny, 1, 0);
        c.y = xmalloc(ny * sizeof(double));
        double *dx = xmalloc(nx * sizeof(double)), *dw = xcalloc(nw, sizeof(double));
        ref_conv2d_backward_data(&c.s, c.r, c.w, dx);
        ref_conv2d_backward_weight(&c.s, c.x, c.r, dw);
        char what[96];
        snprintf(what, sizeof what, "conv case %zu dx", t);
        fd_check(what, c.x, nx, dx, conv_loss, &c);
        snprintf(what, sizeof what, "conv case %zu dw", t);
        fd_check(what, c.w, nw, dw, conv_loss, &c);
        free(c.x); free(c.w); free(c.r); free(c.y); free(dx); free(dw);
    }
}

/* ---- batch norm --------------------------------------------------------------------------- */

typedef struct { BNShape s; double *x, *gamma, *beta, *r, *y, *rm, *rv, *sm, *si; } BNCtx;

static double bn_loss(void *p)
{
    BNCtx *c = p;
    /* running stats are outputs only; reset so every evaluation sees the same start */
    for (int ch = 0; ch < c->s.c; ch++) c->rm[ch] = 0, c->rv[ch] = 1;
    ref_batchnorm_forward_train(&c->s, c->x, c->gamma, c->beta, c->rm, c->rv, c->sm, c->si, c->y);
    return dot(c->y, c->r, (size_t)c->s.n * c->s.m * c->s.c);
}

static void test_batchnorm_backward_matches_finite_differences(void **state)
{
    (void)state;
    const int cases[][4] = {{3, 5, 4, 1}, {6, 3, 3, 3}, {8, 1, 5, 2}}; /* n m c splits */
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        BNCtx c = {.s = {.n = cases[t][0], .m = cases[t][1], .c = cases[t][2],
                         .splits = cases[t][3], .eps = 1e-5f, .momentum = 0.1f}};
        size_t nx = (size_t)c.s.n * c.s.m * c.s.c, ns = (size_t)c.s.splits * c.s.c;
        c.x = rand_doubles(nx, 2, 0.3);
        c.gamma = rand_doubles(c.s.c, 0.5, 1);
        c.beta = rand_doubles(c.s.c, 0.5, 0);
        c.r = rand_doubles(nx, 1, 0);
        c.y = xmalloc(nx * sizeof(double));
        c.rm = xmalloc(c.s.c * sizeof(double));
        c.rv = xmalloc(c.s.c * sizeof(double));
        c.sm = xmalloc(ns * sizeof(double));
        c.si = xmalloc(ns * sizeof(double));
        bn_loss(&c); /* fills save_mean / save_invstd at the unperturbed point */
        double *dx = xmalloc(nx * sizeof(double));
        double *dgamma = xcalloc(c.s.c, sizeof(double)), *dbeta = xcalloc(c.s.c, sizeof(double));
        double *sm = xmalloc(ns * sizeof(double)), *si = xmalloc(ns * sizeof(double));
        memcpy(sm, c.sm, ns * sizeof(double));
        memcpy(si, c.si, ns * sizeof(double));
        ref_batchnorm_backward(&c.s, c.x, c.r, c.gamma, sm, si, dx, dgamma, dbeta);
        char what[96];
        snprintf(what, sizeof what, "bn case %zu dx", t);
        fd_check(what, c.x, nx, dx, bn_loss, &c);
        snprintf(what, sizeof what, "bn case %zu dgamma", t);
        fd_check(what, c.gamma, c.s.c, dgamma, bn_loss, &c);
        snprintf(what, sizeof what, "bn case %zu dbeta", t);
        fd_check(what, c.beta, c.s.c, dbeta, bn_loss, &c);
        free(c.x); free(c.gamma); free(c.beta); free(c.r); free(c.y); free(c.rm); free(c.rv);
        free(c.sm); free(c.si); free(dx); free(dgamma); free(dbeta); free(sm); free(si);
    }
}

/* ---- relu, pooling ------------------------------------------------------------------------ */

typedef struct { size_t count; double *x, *r, *y; } ReluCtx;

static double relu_loss(void *p)
{
    ReluCtx *c = p;
    ref_relu_forward(c->count, c->x, c->y);
    return dot(c->y, c->r, c->count);
}

static void test_relu_backward_matches_finite_differences(void **state)
{
    (void)state;
    ReluCtx c = {.count = 257};
    c.x = rand_doubles(c.count, 1, 0);
    c.r = rand_doubles(c.count, 1, 0);
    c.y = xmalloc(c.count * sizeof(double));
    double *dx = xmalloc(c.count * sizeof(double));
    relu_loss(&c);
    ref_relu_backward(c.count, c.y, c.r, dx);
    fd_check("relu dx", c.x, c.count, dx, relu_loss, &c);
    free(c.x); free(c.r); free(c.y); free(dx);
}

typedef struct { PoolShape s; double *x, *r, *y; int32_t *am; } PoolCtx;

static double maxpool_loss(void *p)
{
    PoolCtx *c = p;
    ref_maxpool_forward(&c->s, c->x, c->y, c->am);
    return dot(c->y, c->r, (size_t)c->s.n * c->s.oh * c->s.ow * c->s.c);
}

static void test_pool_backward_matches_finite_differences(void **state)
{
    (void)state;
    PoolCtx c = {.s = pool_shape_make(2, 7, 6, 3, 3, 2, 1)};
    size_t nx = (size_t)2 * 7 * 6 * 3, ny = (size_t)2 * c.s.oh * c.s.ow * 3;
    c.x = rand_doubles(nx, 1, 0);
    c.r = rand_doubles(ny, 1, 0);
    c.y = xmalloc(ny * sizeof(double));
    c.am = xmalloc(ny * sizeof(int32_t));
    double *dx = xmalloc(nx * sizeof(double));
    maxpool_loss(&c);
    ref_maxpool_backward(&c.s, c.r, c.am, dx);
    fd_check("maxpool dx", c.x, nx, dx, maxpool_loss, &c);

    /* average pool is linear: its backward must be the exact adjoint of its forward,
     * <avgpool(x), r> == <x, avgpool_backward(r)> */
    const int n = 3, hw = 10, ch = 4;
    double *x = rand_doubles((size_t)n * hw * ch, 1, 0), *r = rand_doubles(n * ch, 1, 0);
    double *y = xmalloc(n * ch * sizeof(double)), *g = xmalloc((size_t)n * hw * ch * 8);
    ref_avgpool_forward(n, hw, ch, x, y);
    ref_avgpool_backward(n, hw, ch, r, g);
    /* two double dot products of ~120 terms: agreement to 1e-12 relative */
    assert_true(fabs(dot(y, r, n * ch) - dot(x, g, (size_t)n * hw * ch)) <=
                1e-12 * (1 + fabs(dot(y, r, n * ch))));
    free(c.x); free(c.r); free(c.y); free(c.am); free(dx); free(x); free(r); free(y); free(g);
}

/* ---- linear and head ops ------------------------------------------------------------------ */

typedef struct { int n, in, out; double *x, *w, *b, *r, *y; } LinCtx;

static double linear_loss(void *p)
{
    LinCtx *c = p;
    ref_linear_forward(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
    return dot(c->y, c->r, (size_t)c->n * c->out);
}

static void test_linear_backward_matches_finite_differences(void **state)
{
    (void)state;
    LinCtx c = {.n = 4, .in = 9, .out = 5};
    c.x = rand_doubles(36, 1, 0);
    c.w = rand_doubles(45, 1, 0);
    c.b = rand_doubles(5, 1, 0);
    c.r = rand_doubles(20, 1, 0);
    c.y = xmalloc(20 * sizeof(double));
    double *dx = xmalloc(36 * 8), *dw = xcalloc(45, 8), *db = xcalloc(5, 8);
    ref_linear_backward(c.n, c.in, c.out, c.x, c.w, c.r, dx, dw, db);
    fd_check("linear dx", c.x, 36, dx, linear_loss, &c);
    fd_check("linear dw", c.w, 45, dw, linear_loss, &c);
    fd_check("linear db", c.b, 5, db, linear_loss, &c);
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.y); free(dx); free(dw); free(db);
}

typedef struct { int n, d; double *x, *r, *y, *norms; } L2Ctx;

static double l2norm_loss(void *p)
{
    L2Ctx *c = p;
    ref_l2norm_forward(c->n, c->d, c->x, c->y, c->norms);
    return dot(c->y, c->r, (size_t)c->n * c->d);
}

typedef struct { int n, classes; double *logits; const int32_t *labels; } XentCtx;

static double xent_loss(void *p)
{
    XentCtx *c = p;
    return ref_softmax_xent_forward_backward(c->n, c->classes, c->logits, c->labels, NULL);
}

static void test_head_backward_matches_finite_differences(void **state)
{
    (void)state;
    L2Ctx c = {.n = 3, .d = 17};
    c.x = rand_doubles(51, 1, 0);
    c.r = rand_doubles(51, 1, 0);
    c.y = xmalloc(51 * 8);
    c.norms = xmalloc(3 * 8);
    double *dx = xmalloc(51 * 8);
    l2norm_loss(&c);
    ref_l2norm_backward(c.n, c.d, c.y, c.r, c.norms, dx);
    fd_check("l2norm dx", c.x, 51, dx, l2norm_loss, &c);

    int32_t labels[4] = {0, 2, 6, 0};
    XentCtx xc = {.n = 4, .classes = 7, .labels = labels};
    xc.logits = rand_doubles(28, 5, 0);
    double *dl = xmalloc(28 * 8);
    ref_softmax_xent_forward_backward(xc.n, xc.classes, xc.logits, labels, dl);
    fd_check("softmax xent dlogits", xc.logits, 28, dl, xent_loss, &xc);
    /* the loss itself, for one row of two equal logits: log 2 */
    double two[2] = {3, 3};
    int32_t zero = 0;
    assert_true(fabs(ref_softmax_xent_forward_backward(1, 2, two, &zero, NULL) - log(2)) < 1e-15);
    free(c.x); free(c.r); free(c.y); free(c.norms); free(dx); free(xc.logits); free(dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_backward_matches_finite_differences),
        cmocka_unit_test(test_batchnorm_backward_matches_finite_differences),
        cmocka_unit_test(test_relu_backward_matches_finite_differences),
        cmocka_unit_test(test_pool_backward_matches_finite_differences),
        cmocka_unit_test(test_linear_backward_matches_finite_differences),
        cmocka_unit_test(test_head_backward_matches_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

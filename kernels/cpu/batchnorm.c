/* batchnorm.c — batch normalization on the CPU (train and eval forward, backward), with the
 * split mode of the official SplitBatchNorm, and the fused forms the ResNet step uses
 * (BN + residual add + ReLU in one pass; BN backward with the ReLU mask recomputed).
 * The affine form y = x * scale + shift is computed once per (split, channel) by the stats
 * functions and shared by the apply pass and the backward's mask.
 *
 * x is [n, m, c] (NHWC, m = H*W), so every reduction is over rows of length c with the channel
 * contiguous: threads take ranges of rows, each keeps its own per-(split, channel) partial sums
 * (float over short row blocks, then double), and the partials are added at the end.
 * Sample i belongs to split i % splits. y = x * scale + shift with scale = gamma * invstd,
 * the same form (and rounding) as PyTorch's CPU batch norm. Each op is two passes over the
 * activations: one reduction, one elementwise pass (the minimum without the statistics
 * coming out of the conv itself).
 * The plain references are ref_batchnorm_* in kernels/reference/batchnorm_ref.c and
 * batchnorm_fused_ref.c.
 */
#include "kernels/kernels.h"
#include "common/error.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void bn_check(const BNShape *s, const char *who)
{
    if (s->n <= 0 || s->m <= 0 || s->c <= 0 || s->splits <= 0 || s->n % s->splits != 0)
        die("%s: invalid shape n=%d m=%d c=%d splits=%d (n must be a multiple of splits)", who,
            s->n, s->m, s->c, s->splits);
}

/* Rows summed in float before each flush into the double partials: short enough that float
 * rounding stays ~1e-7 relative, long enough that the inner loop is 4-wide float SIMD. */
#define BN_FLOAT_BLOCK 16

typedef enum {
    REDUCE_STATS,     /* a = sum (x - ref), b = sum (x - ref)^2, ref = the split's first row
                       * (shifting by a sample value keeps E[d^2] - E[d]^2 free of cancellation
                       * when |mean| >> std) */
    REDUCE_GRAD,      /* a = sum g, b = sum g * (x - ref), g = dy, ref = the saved mean */
    REDUCE_GRAD_RELU, /* the same with g = dy where x * scale + shift > 0, else 0 */
} ReduceKind;

/* One row's contribution to the float block sums fa, fb (the thread's own, hence restrict:
 * without it the compiler must assume fa may alias x and keeps the loop scalar, with a
 * mispredicted branch per element for the ReLU mask). `kind` is a constant at each call. */
static inline void reduce_row(ReduceKind kind, int c, const float *restrict x,
                              const float *restrict dy, const float *restrict ref,
                              const float *restrict scale, const float *restrict shift,
                              float *restrict fa, float *restrict fb)
{
    for (int ch = 0; ch < c; ch++) {
        float d = x[ch] - ref[ch];
        if (kind == REDUCE_STATS) {
            fa[ch] += d;
            fb[ch] += d * d;
        } else {
            float g = dy[ch];
            if (kind == REDUCE_GRAD_RELU) g = x[ch] * scale[ch] + shift[ch] > 0.0f ? g : 0.0f;
            fa[ch] += g;
            fb[ch] += g * d;
        }
    }
}

/* Per-(split, channel) sums over all rows of each split's samples, as `kind` says.
 * ref, scale, shift and the outputs out_a, out_b are [splits * c]. */
static void bn_reduce(const BNShape *s, ReduceKind kind, const float *x, const float *dy,
                      const float *ref, const float *scale, const float *shift, double *out_a,
                      double *out_b)
{
    const int c = s->c, splits = s->splits;
    const size_t per = (size_t)splits * c;
    const int nthreads = omp_get_max_threads();
    double *partial = xcalloc((size_t)nthreads * 2 * per, sizeof(double));
    float *blocks = xmalloc((size_t)nthreads * 2 * c * sizeof(float));
#pragma omp parallel num_threads(nthreads)
    {
        const int t = omp_get_thread_num();
        double *pa = partial + (size_t)t * 2 * per, *pb = pa + per;
        float *fa = blocks + (size_t)t * 2 * c, *fb = fa + c;
        int cur = -1, filled = 0;
        /* rows of all samples flattened, so the work splits evenly even when n is small; a
         * static schedule hands each thread one contiguous range */
#pragma omp for schedule(static)
        for (long row = 0; row < (long)s->n * s->m; row++) {
            int sp = (int)(row / s->m) % splits;
            if (sp != cur || filled == BN_FLOAT_BLOCK) {
                if (cur >= 0)
                    for (int ch = 0; ch < c; ch++) {
                        pa[(size_t)cur * c + ch] += fa[ch];
                        pb[(size_t)cur * c + ch] += fb[ch];
                    }
                memset(fa, 0, 2 * (size_t)c * sizeof(float));
                cur = sp;
                filled = 0;
            }
            filled++;
            const size_t o = (size_t)sp * c;
            const float *xi = x + (size_t)row * c, *gi = dy ? dy + (size_t)row * c : NULL;
            switch (kind) {
            case REDUCE_STATS: reduce_row(REDUCE_STATS, c, xi, NULL, ref + o, NULL, NULL, fa, fb); break;
            case REDUCE_GRAD: reduce_row(REDUCE_GRAD, c, xi, gi, ref + o, NULL, NULL, fa, fb); break;
            case REDUCE_GRAD_RELU:
                reduce_row(REDUCE_GRAD_RELU, c, xi, gi, ref + o, scale + o, shift + o, fa, fb);
                break;
            }
        }
        if (cur >= 0)
            for (int ch = 0; ch < c; ch++) {
                pa[(size_t)cur * c + ch] += fa[ch];
                pb[(size_t)cur * c + ch] += fb[ch];
            }
    }
    memset(out_a, 0, per * sizeof(double));
    memset(out_b, 0, per * sizeof(double));
    for (int t = 0; t < nthreads; t++) {
        const double *pa = partial + (size_t)t * 2 * per, *pb = pa + per;
        for (size_t j = 0; j < per; j++) {
            out_a[j] += pa[j];
            out_b[j] += pb[j];
        }
    }
    free(blocks);
    free(partial);
}

/* One row of y = act(x * scale + shift [+ z]); the flags are constants at each call site so
 * every combination compiles to its own vector loop. */
static inline void apply_row(int has_z, int relu, int c, const float *x, const float *sc,
                             const float *sh, const float *z, float *y)
{
    for (int ch = 0; ch < c; ch++) {
        float v = x[ch] * sc[ch] + sh[ch];
        if (has_z) v += z[ch];
        y[ch] = relu ? (v < 0.0f ? 0.0f : v) : v; /* NaN propagates, as torch.relu */
    }
}

static void bn_apply(const BNShape *s, const float *x, const float *scale, const float *shift,
                     const float *z, int relu, float *y)
{
    const int c = s->c;
    const int mode = (z ? 2 : 0) + (relu ? 1 : 0);
#pragma omp parallel for schedule(static)
    for (long row = 0; row < (long)s->n * s->m; row++) {
        size_t o = (size_t)((row / s->m) % s->splits) * c, at = (size_t)row * c;
        const float *sc = scale + o, *sh = shift + o, *xi = x + at, *zi = z ? z + at : NULL;
        float *yi = y + at;
        switch (mode) {
        case 0: apply_row(0, 0, c, xi, sc, sh, NULL, yi); break;
        case 1: apply_row(0, 1, c, xi, sc, sh, NULL, yi); break;
        case 2: apply_row(1, 0, c, xi, sc, sh, zi, yi); break;
        default: apply_row(1, 1, c, xi, sc, sh, zi, yi); break;
        }
    }
}

void batchnorm_stats_train(const BNShape *s, const float *x, const float *gamma,
                           const float *beta, float *running_mean, float *running_var,
                           float *save_mean, float *save_invstd, float *scale, float *shift)
{
    bn_check(s, "batchnorm_stats_train");
    const int c = s->c, splits = s->splits;
    const size_t per = (size_t)splits * c;
    const double count = (double)(s->n / splits) * s->m;
    if (count < 2)
        die("batchnorm_forward_train: expected more than 1 value per channel (n=%d m=%d splits=%d)",
            s->n, s->m, splits);
    double *sum = xmalloc(2 * per * sizeof(double)), *sumsq = sum + per;
    float *ref = xmalloc(per * sizeof(float));
    for (int sp = 0; sp < splits; sp++) /* split sp's first row: sample sp, pixel 0 */
        memcpy(ref + (size_t)sp * c, x + (size_t)sp * s->m * c, (size_t)c * sizeof(float));
    bn_reduce(s, REDUCE_STATS, x, NULL, ref, NULL, NULL, sum, sumsq);

    double *new_mean = xcalloc(2 * (size_t)c, sizeof(double)), *new_var = new_mean + c;
    const double mom = s->momentum;
    for (int sp = 0; sp < splits; sp++)
        for (int ch = 0; ch < c; ch++) {
            size_t j = (size_t)sp * c + ch;
            double dmean = sum[j] / count; /* mean of x - ref */
            double mean = ref[j] + dmean;
            double var = sumsq[j] / count - dmean * dmean;
            if (var < 0) var = 0;
            double invstd = 1.0 / sqrt(var + s->eps);
            save_mean[j] = (float)mean;
            save_invstd[j] = (float)invstd;
            /* from the unrounded statistics: a ReLU mask recomputed from these in backward
             * must agree with the exact one as often as possible, and rounding mean first
             * would add |mean| * 2^-24 * scale of error to every output */
            scale[j] = (float)(gamma[ch] * invstd);
            shift[j] = (float)(beta[ch] - mean * gamma[ch] * invstd);
            /* each split updates from the same old running values; the results are averaged */
            new_mean[ch] += (1 - mom) * running_mean[ch] + mom * mean;
            new_var[ch] += (1 - mom) * running_var[ch] + mom * var * count / (count - 1);
        }
    for (int ch = 0; ch < c; ch++) {
        running_mean[ch] = (float)(new_mean[ch] / splits);
        running_var[ch] = (float)(new_var[ch] / splits);
    }
    free(new_mean);
    free(ref);
    free(sum);
}

void batchnorm_stats_eval(const BNShape *s, const float *gamma, const float *beta,
                          const float *running_mean, const float *running_var, float *scale,
                          float *shift)
{
    bn_check(s, "batchnorm_stats_eval");
    for (int ch = 0; ch < s->c; ch++) {
        double invstd = 1.0 / sqrt((double)running_var[ch] + s->eps);
        for (int sp = 0; sp < s->splits; sp++) { /* repeated so apply can index by split */
            scale[(size_t)sp * s->c + ch] = (float)(gamma[ch] * invstd);
            shift[(size_t)sp * s->c + ch] = (float)(beta[ch] - running_mean[ch] * gamma[ch] * invstd);
        }
    }
}

void batchnorm_apply(const BNShape *s, const float *x, const float *scale, const float *shift,
                     const float *z, int relu, float *y)
{
    bn_check(s, "batchnorm_apply");
    bn_apply(s, x, scale, shift, z, relu, y);
}

void batchnorm_forward_train(const BNShape *s, const float *x, const float *gamma,
                             const float *beta, float *running_mean, float *running_var,
                             float *save_mean, float *save_invstd, float *y)
{
    const size_t per = (size_t)s->splits * s->c;
    float *scale = xmalloc(2 * per * sizeof(float)), *shift = scale + per;
    batchnorm_stats_train(s, x, gamma, beta, running_mean, running_var, save_mean, save_invstd,
                          scale, shift);
    bn_apply(s, x, scale, shift, NULL, 0, y);
    free(scale);
}

void batchnorm_forward_eval(const BNShape *s, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float *y)
{
    const size_t per = (size_t)s->splits * s->c;
    float *scale = xmalloc(2 * per * sizeof(float)), *shift = scale + per;
    batchnorm_stats_eval(s, gamma, beta, running_mean, running_var, scale, shift);
    bn_apply(s, x, scale, shift, NULL, 0, y);
    free(scale);
}

/* With xhat = (x - mean) * invstd, g the gradient at the BN output (dy, masked by the ReLU
 * when there is one) and N values per split:
 *   dbeta  = sum g,  dgamma = sum g * xhat   (summed over splits: gamma is shared)
 *   dx     = gamma * invstd * (g - dbeta_s / N - xhat * dgamma_s / N)
 * which is  dx = g * k1 + (x - mean) * k2 + k3  per (split, channel); keeping (x - mean)
 * rather than folding mean into k3 avoids cancellation when |mean| >> std. */
static inline void grad_row(int relu, int c, const float *x, const float *dy, const float *mu,
                            const float *k1, const float *k2, const float *k3,
                            const float *sc, const float *sh, float *dx)
{
    for (int ch = 0; ch < c; ch++) {
        float g = dy[ch];
        if (relu) g = x[ch] * sc[ch] + sh[ch] > 0.0f ? g : 0.0f;
        dx[ch] = g * k1[ch] + (x[ch] - mu[ch]) * k2[ch] + k3[ch];
    }
}

void batchnorm_backward_relu(const BNShape *s, const float *x, const float *dy,
                             const float *gamma, const float *save_mean,
                             const float *save_invstd, const float *scale, const float *shift,
                             int relu, float *dx, float *dgamma, float *dbeta)
{
    bn_check(s, "batchnorm_backward");
    if (relu && (!scale || !shift)) die("batchnorm_backward_relu: the ReLU mask needs scale and shift");
    const int c = s->c, splits = s->splits;
    const size_t per = (size_t)splits * c;
    const double count = (double)(s->n / splits) * s->m;
    double *sum_dy = xmalloc(2 * per * sizeof(double)), *sum_dyxc = sum_dy + per;
    bn_reduce(s, relu ? REDUCE_GRAD_RELU : REDUCE_GRAD, x, dy, save_mean, scale, shift, sum_dy,
              sum_dyxc);

    float *k1 = xmalloc(3 * per * sizeof(float)), *k2 = k1 + per, *k3 = k2 + per;
    for (int sp = 0; sp < splits; sp++)
        for (int ch = 0; ch < c; ch++) {
            size_t j = (size_t)sp * c + ch;
            double invstd = save_invstd[j];
            double sdy = sum_dy[j], sdyxhat = sum_dyxc[j] * invstd;
            dbeta[ch] += (float)sdy;
            dgamma[ch] += (float)sdyxhat;
            double g = gamma[ch] * invstd;
            double a = sdyxhat * invstd / count; /* coefficient of (x - mean) */
            k1[j] = (float)g;
            k2[j] = (float)(-g * a);
            k3[j] = (float)(-g * sdy / count);
        }
#pragma omp parallel for schedule(static)
    for (long row = 0; row < (long)s->n * s->m; row++) {
        size_t o = (size_t)((row / s->m) % splits) * c, at = (size_t)row * c;
        if (relu)
            grad_row(1, c, x + at, dy + at, save_mean + o, k1 + o, k2 + o, k3 + o, scale + o,
                     shift + o, dx + at);
        else
            grad_row(0, c, x + at, dy + at, save_mean + o, k1 + o, k2 + o, k3 + o, NULL, NULL,
                     dx + at);
    }
    free(k1);
    free(sum_dy);
}

void batchnorm_backward(const BNShape *s, const float *x, const float *dy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dx,
                        float *dgamma, float *dbeta)
{
    batchnorm_backward_relu(s, x, dy, gamma, save_mean, save_invstd, NULL, NULL, 0, dx, dgamma,
                            dbeta);
}

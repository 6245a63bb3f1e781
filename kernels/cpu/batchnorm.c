/* batchnorm.c — batch normalization on the CPU (train and eval forward, backward), with the
 * split mode of the official SplitBatchNorm.
 *
 * x is [n, m, c] (NHWC, m = H*W), so every reduction is over rows of length c with the channel
 * contiguous: threads take ranges of rows, each keeps its own per-(split, channel) partial sums
 * (float over short row blocks, then double), and the partials are added at the end.
 * Sample i belongs to split i % splits. y = x * scale + shift with scale = gamma * invstd,
 * the same form (and rounding) as PyTorch's CPU batch norm.
 * The plain reference is ref_batchnorm_* in kernels/reference/batchnorm_ref.c.
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

/* Per-(split, channel) sums over all rows of each split's samples, chosen by `kind`:
 *   0: a = sum (x - ref), b = sum (x - ref)^2, ref = the split's first row (forward stats;
 *      shifting by a sample value keeps E[d^2] - E[d]^2 free of cancellation when |mean|>>std)
 *   1: a = sum dy,        b = sum dy * (x - ref), ref = the saved mean (backward)
 * ref and the outputs out_a, out_b are [splits * c]. */
static void bn_reduce(const BNShape *s, int kind, const float *x, const float *dy,
                      const float *ref, double *out_a, double *out_b)
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
            const float *xi = x + (size_t)row * c, *r = ref + (size_t)sp * c;
            if (kind == 0) {
                for (int ch = 0; ch < c; ch++) {
                    float d = xi[ch] - r[ch];
                    fa[ch] += d;
                    fb[ch] += d * d;
                }
            } else {
                const float *gi = dy + (size_t)row * c;
                for (int ch = 0; ch < c; ch++) {
                    fa[ch] += gi[ch];
                    fb[ch] += gi[ch] * (xi[ch] - r[ch]);
                }
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

/* y = x * scale[split][c] + shift[split][c] for every row. */
static void bn_apply(const BNShape *s, const float *x, const float *scale, const float *shift,
                     float *y)
{
    const int c = s->c;
#pragma omp parallel for schedule(static)
    for (long row = 0; row < (long)s->n * s->m; row++) {
        size_t o = (size_t)((row / s->m) % s->splits) * c;
        const float *sc = scale + o, *sh = shift + o, *xi = x + (size_t)row * c;
        float *yi = y + (size_t)row * c;
        for (int ch = 0; ch < c; ch++) yi[ch] = xi[ch] * sc[ch] + sh[ch];
    }
}

void batchnorm_forward_train(const BNShape *s, const float *x, const float *gamma,
                             const float *beta, float *running_mean, float *running_var,
                             float *save_mean, float *save_invstd, float *y)
{
    bn_check(s, "batchnorm_forward_train");
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
    bn_reduce(s, 0, x, NULL, ref, sum, sumsq);

    float *scale = xmalloc(2 * per * sizeof(float)), *shift = scale + per;
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
    bn_apply(s, x, scale, shift, y);
    free(new_mean);
    free(scale);
    free(ref);
    free(sum);
}

void batchnorm_forward_eval(const BNShape *s, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float *y)
{
    bn_check(s, "batchnorm_forward_eval");
    const int c = s->c;
    /* one scale/shift per channel, repeated for every split so bn_apply can index by split */
    float *scale = xmalloc(2 * (size_t)s->splits * c * sizeof(float));
    float *shift = scale + (size_t)s->splits * c;
    for (int ch = 0; ch < c; ch++) {
        double invstd = 1.0 / sqrt((double)running_var[ch] + s->eps);
        for (int sp = 0; sp < s->splits; sp++) {
            scale[(size_t)sp * c + ch] = (float)(gamma[ch] * invstd);
            shift[(size_t)sp * c + ch] = (float)(beta[ch] - running_mean[ch] * gamma[ch] * invstd);
        }
    }
    bn_apply(s, x, scale, shift, y);
    free(scale);
}

/* With xhat = (x - mean) * invstd and N values per split:
 *   dbeta  = sum dy,  dgamma = sum dy * xhat   (summed over splits: gamma is shared)
 *   dx     = gamma * invstd * (dy - dbeta_s / N - xhat * dgamma_s / N)
 * which is  dx = dy * k1 + (x - mean) * k2 + k3  per (split, channel); keeping (x - mean)
 * rather than folding mean into k3 avoids cancellation when |mean| >> std. */
void batchnorm_backward(const BNShape *s, const float *x, const float *dy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dx,
                        float *dgamma, float *dbeta)
{
    bn_check(s, "batchnorm_backward");
    const int c = s->c, splits = s->splits;
    const size_t per = (size_t)splits * c;
    const double count = (double)(s->n / splits) * s->m;
    double *sum_dy = xmalloc(2 * per * sizeof(double)), *sum_dyxc = sum_dy + per;
    bn_reduce(s, 1, x, dy, save_mean, sum_dy, sum_dyxc);

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
        size_t o = (size_t)((row / s->m) % splits) * c;
        const float *a = k1 + o, *b = k2 + o, *d = k3 + o, *mu = save_mean + o;
        const float *xi = x + (size_t)row * c, *gi = dy + (size_t)row * c;
        float *di = dx + (size_t)row * c;
        for (int ch = 0; ch < c; ch++) di[ch] = gi[ch] * a[ch] + (xi[ch] - mu[ch]) * b[ch] + d[ch];
    }
    free(k1);
    free(sum_dy);
}

/* batchnorm_ref.c — reference batch normalization with SplitBatchNorm's grouping, double
 * precision, two-pass statistics. Sample i belongs to split i % splits. */
#include "kernels/reference.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>

#define AT(s, i, r, ch) ((((size_t)(i)) * (s)->m + (r)) * (s)->c + (ch))

void ref_batchnorm_forward_train(const BNShape *s, const double *x, const double *gamma,
                                 const double *beta, double *running_mean, double *running_var,
                                 double *save_mean, double *save_invstd, double *y)
{
    const double count = (double)(s->n / s->splits) * s->m;
    double *new_mean = xcalloc((size_t)s->c * 2, sizeof(double)), *new_var = new_mean + s->c;
    for (int sp = 0; sp < s->splits; sp++)
        for (int ch = 0; ch < s->c; ch++) {
            double mean = 0, var = 0;
            for (int i = sp; i < s->n; i += s->splits)
                for (int r = 0; r < s->m; r++) mean += x[AT(s, i, r, ch)];
            mean /= count;
            for (int i = sp; i < s->n; i += s->splits)
                for (int r = 0; r < s->m; r++) {
                    double d = x[AT(s, i, r, ch)] - mean;
                    var += d * d;
                }
            double biased = var / count, unbiased = var / (count - 1);
            double invstd = 1.0 / sqrt(biased + s->eps);
            save_mean[sp * s->c + ch] = mean;
            save_invstd[sp * s->c + ch] = invstd;
            for (int i = sp; i < s->n; i += s->splits)
                for (int r = 0; r < s->m; r++)
                    y[AT(s, i, r, ch)] =
                        (x[AT(s, i, r, ch)] - mean) * invstd * gamma[ch] + beta[ch];
            /* SplitBatchNorm: each split's momentum update starts from the same old values,
             * then the per-split results are averaged */
            new_mean[ch] += (1 - s->momentum) * running_mean[ch] + s->momentum * mean;
            new_var[ch] += (1 - s->momentum) * running_var[ch] + s->momentum * unbiased;
        }
    for (int ch = 0; ch < s->c; ch++) {
        running_mean[ch] = new_mean[ch] / s->splits;
        running_var[ch] = new_var[ch] / s->splits;
    }
    free(new_mean);
}

void ref_batchnorm_forward_eval(const BNShape *s, const double *x, const double *gamma,
                                const double *beta, const double *running_mean,
                                const double *running_var, double *y)
{
    for (int i = 0; i < s->n; i++)
        for (int r = 0; r < s->m; r++)
            for (int ch = 0; ch < s->c; ch++)
                y[AT(s, i, r, ch)] = (x[AT(s, i, r, ch)] - running_mean[ch]) /
                                         sqrt(running_var[ch] + s->eps) * gamma[ch] + beta[ch];
}

/* The textbook form: with xhat = (x - mean) * invstd over the N values of a split,
 * dxhat = dy * gamma and dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)). */
void ref_batchnorm_backward(const BNShape *s, const double *x, const double *dy,
                            const double *gamma, const double *save_mean,
                            const double *save_invstd, double *dx, double *dgamma, double *dbeta)
{
    const double count = (double)(s->n / s->splits) * s->m;
    for (int sp = 0; sp < s->splits; sp++)
        for (int ch = 0; ch < s->c; ch++) {
            double mean = save_mean[sp * s->c + ch], invstd = save_invstd[sp * s->c + ch];
            double mean_dxhat = 0, mean_dxhat_xhat = 0;
            for (int i = sp; i < s->n; i += s->splits)
                for (int r = 0; r < s->m; r++) {
                    double xhat = (x[AT(s, i, r, ch)] - mean) * invstd, g = dy[AT(s, i, r, ch)];
                    mean_dxhat += g * gamma[ch];
                    mean_dxhat_xhat += g * gamma[ch] * xhat;
                    dbeta[ch] += g;
                    dgamma[ch] += g * xhat;
                }
            mean_dxhat /= count;
            mean_dxhat_xhat /= count;
            for (int i = sp; i < s->n; i += s->splits)
                for (int r = 0; r < s->m; r++) {
                    double xhat = (x[AT(s, i, r, ch)] - mean) * invstd;
                    double dxhat = dy[AT(s, i, r, ch)] * gamma[ch];
                    dx[AT(s, i, r, ch)] = invstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
                }
        }
}

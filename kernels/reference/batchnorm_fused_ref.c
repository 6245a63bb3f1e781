/* batchnorm_fused_ref.c — references for the fused BN ops, built from the plain definitions:
 * normalize, add the residual, ReLU; and backward as ReLU backward (mask from the recomputed
 * output) followed by ref_batchnorm_backward. Double precision. */
#include "kernels/reference.h"
#include "common/error.h"

#include <stdlib.h>

void ref_batchnorm_apply(const BNShape *s, const double *x, const double *gamma,
                         const double *beta, const double *mean, const double *invstd,
                         const double *z, int relu, double *y)
{
    for (int i = 0; i < s->n; i++) {
        int sp = i % s->splits;
        for (int r = 0; r < s->m; r++)
            for (int ch = 0; ch < s->c; ch++) {
                size_t at = ((size_t)i * s->m + r) * s->c + ch;
                size_t j = (size_t)sp * s->c + ch;
                double v = (x[at] - mean[j]) * invstd[j] * gamma[ch] + beta[ch];
                if (z) v += z[at];
                y[at] = relu && !(v > 0) ? 0 : v;
            }
    }
}

void ref_batchnorm_backward_relu(const BNShape *s, const double *x, const double *dy,
                                 const double *gamma, const double *beta,
                                 const double *save_mean, const double *save_invstd, int relu,
                                 double *dx, double *dgamma, double *dbeta)
{
    size_t count = (size_t)s->n * s->m * s->c;
    double *g = xmalloc(count * sizeof(double));
    for (size_t i = 0; i < count; i++) g[i] = dy[i];
    if (relu) {
        double *y = xmalloc(count * sizeof(double));
        ref_batchnorm_apply(s, x, gamma, beta, save_mean, save_invstd, NULL, 1, y);
        ref_relu_backward(count, y, dy, g);
        free(y);
    }
    ref_batchnorm_backward(s, x, g, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
    free(g);
}

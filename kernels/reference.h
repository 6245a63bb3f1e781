/* reference.h — plain, obviously-correct versions of every op in kernels.h, in double precision.
 *
 * These exist for tests: the fast backends are compared against them, and their backward
 * passes are checked against central finite differences of their forward passes (double
 * precision makes those checks tight). They follow the same shapes, layouts (NHWC activations,
 * OHWI conv weights, [out][in] linear weights) and accumulate/overwrite rules as kernels.h,
 * written as direct loops over the mathematical definition with no attention to speed.
 */
#ifndef MOCO_KERNELS_REFERENCE_H
#define MOCO_KERNELS_REFERENCE_H

#include "kernels/kernels.h"

#include <stddef.h>
#include <stdint.h>

void ref_conv2d_forward(const ConvShape *s, const double *x, const double *w, double *y);
void ref_conv2d_backward_data(const ConvShape *s, const double *dy, const double *w, double *dx);
void ref_conv2d_backward_weight(const ConvShape *s, const double *x, const double *dy, double *dw);

void ref_batchnorm_forward_train(const BNShape *s, const double *x, const double *gamma,
                                 const double *beta, double *running_mean, double *running_var,
                                 double *save_mean, double *save_invstd, double *y);
void ref_batchnorm_forward_eval(const BNShape *s, const double *x, const double *gamma,
                                const double *beta, const double *running_mean,
                                const double *running_var, double *y);
void ref_batchnorm_backward(const BNShape *s, const double *x, const double *dy,
                            const double *gamma, const double *save_mean,
                            const double *save_invstd, double *dx, double *dgamma, double *dbeta);

/* The fused BN ops (kernels.h), composed from the definitions
 * (kernels/reference/batchnorm_fused_ref.c): ref_batchnorm_apply normalizes with the saved
 * statistics, adds z and applies the ReLU; ref_batchnorm_backward_relu is ReLU backward (mask
 * from that output) followed by ref_batchnorm_backward. */
void ref_batchnorm_apply(const BNShape *s, const double *x, const double *gamma,
                         const double *beta, const double *mean, const double *invstd,
                         const double *z, int relu, double *y);
void ref_batchnorm_backward_relu(const BNShape *s, const double *x, const double *dy,
                                 const double *gamma, const double *beta,
                                 const double *save_mean, const double *save_invstd, int relu,
                                 double *dx, double *dgamma, double *dbeta);
void ref_relu_forward(size_t count, const double *x, double *y);
void ref_relu_backward(size_t count, const double *y, const double *dy, double *dx);
void ref_add_forward(size_t count, const double *a, const double *b, double *y);
void ref_accumulate(size_t count, const double *x, double *y);

void ref_maxpool_forward(const PoolShape *s, const double *x, double *y, int32_t *argmax);
void ref_maxpool_backward(const PoolShape *s, const double *dy, const int32_t *argmax, double *dx);
void ref_avgpool_forward(int n, int hw, int c, const double *x, double *y);
void ref_avgpool_backward(int n, int hw, int c, const double *dy, double *dx);

void ref_linear_forward(int n, int in, int out, const double *x, const double *w,
                        const double *b, double *y);
void ref_linear_backward(int n, int in, int out, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db);

void ref_l2norm_forward(int n, int d, const double *x, double *y, double *norms);
void ref_l2norm_backward(int n, int d, const double *y, const double *dy, const double *norms,
                         double *dx);
double ref_softmax_xent_forward_backward(int n, int classes, const double *logits,
                                         const int32_t *labels, double *dlogits);
int ref_topk_correct(int n, int classes, const double *logits, const int32_t *labels, int k);

void ref_gemm(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
              int lda, const double *b, int ldb, double beta, double *c, int ldc);

#endif

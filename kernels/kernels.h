/* kernels.h — the backend-neutral numeric interface of moco-train.
 *
 * Every op the model needs, on raw float pointers with explicit shapes. The CPU backend
 * (kernels/cpu) implements these with BLAS and OpenMP; a CUDA backend implements the same
 * signatures on device pointers. Plain, obviously-correct versions of each op live in
 * kernels/reference.h (prefix ref_) and tests compare the two.
 *
 * Conventions:
 *  - Activations are NHWC, fp32, contiguous. A [N, C] matrix is NHWC with H = W = 1.
 *  - Conv weights use the backend's internal layout. On CPU that is OHWI
 *    ([c_out][kh][kw][c_in]); conv_weight_from_oihw / conv_weight_to_oihw convert to and from
 *    PyTorch's OIHW so checkpoints always hold PyTorch layouts (DESIGN §3).
 *  - Linear weights are [out][in] as in PyTorch.
 *  - Backward functions that produce parameter gradients ACCUMULATE into the gradient
 *    buffer (grad += ...), so the caller zeroes gradients once per step; backward functions
 *    that produce input gradients OVERWRITE dx unless named _accumulate.
 */
#ifndef MOCO_KERNELS_H
#define MOCO_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- convolution ------------------------------------------------------------------------ */

typedef struct {
    int n, h, w, c_in;   /* input, NHWC */
    int c_out, kh, kw;   /* filter */
    int stride, pad;     /* same stride and zero padding on both axes */
    int oh, ow;          /* output spatial size, filled by conv_shape_make */
} ConvShape;

ConvShape conv_shape_make(int n, int h, int w, int c_in, int c_out, int k, int stride, int pad);

/* Scratch bytes the three conv functions need for this shape (im2col buffer etc.). */
size_t conv2d_workspace_bytes(const ConvShape *s);

/* y[n, oh, ow, c_out] = conv(x, w). No bias (ResNet convs have none). */
void conv2d_forward(const ConvShape *s, const float *x, const float *w, float *y, void *workspace);
/* dx = conv^T(dy, w); overwrites dx. */
void conv2d_backward_data(const ConvShape *s, const float *dy, const float *w, float *dx,
                          void *workspace);
/* dw += conv_weight_grad(x, dy). */
void conv2d_backward_weight(const ConvShape *s, const float *x, const float *dy, float *dw,
                            void *workspace);

/* Layout conversion between PyTorch OIHW and the backend's internal conv weight layout. */
void conv_weight_from_oihw(const ConvShape *s, const float *oihw, float *internal);
void conv_weight_to_oihw(const ConvShape *s, const float *internal, float *oihw);

/* ---- batch normalization ----------------------------------------------------------------- */

/* x is [n, m, c] where m = H*W per sample (NHWC). splits > 1 normalizes each of `splits`
 * sub-batches separately, sub-batch s holding samples i with i % splits == s — exactly the
 * grouping of the official SplitBatchNorm (input.view(-1, C*splits, H, W)). n must be a multiple
 * of splits.
 *
 * Train forward: y = (x - mean_s) * invstd_s * gamma + beta with biased batch variance per
 * sub-batch; running_mean/var updated as PyTorch does with momentum (0.1) and the UNBIASED
 * variance, averaged over sub-batches as SplitBatchNorm does. save_mean/save_invstd
 * ([splits * c], sub-batch major) are kept for backward. */
typedef struct {
    int n, m, c, splits;
    float eps, momentum;
} BNShape;

void batchnorm_forward_train(const BNShape *s, const float *x, const float *gamma,
                             const float *beta, float *running_mean, float *running_var,
                             float *save_mean, float *save_invstd, float *y);
/* Eval: normalize with the running statistics. */
void batchnorm_forward_eval(const BNShape *s, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float *y);
/* dx overwritten; dgamma and dbeta accumulated. x is the forward input. */
void batchnorm_backward(const BNShape *s, const float *x, const float *dy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dx,
                        float *dgamma, float *dbeta);

/* ---- fused batch normalization (kernels/cpu/batchnorm.c) ---------------------------------
 * The ResNet step spends most of its non-GEMM time streaming activations through memory, so
 * BN, the residual add and the ReLU run as one pass each way, and the ReLU output need not be
 * kept for backward: its mask is recomputed from the BN input. */

/* The statistics half of batchnorm_forward_train: save_mean, save_invstd ([splits * c]), the
 * running-statistics update, and the affine form of the normalization, scale = gamma * invstd
 * and shift = beta - mean * scale per (split, channel), from the unrounded statistics exactly
 * as batchnorm_forward_train computes them. Nothing is written to an output tensor. */
void batchnorm_stats_train(const BNShape *s, const float *x, const float *gamma,
                           const float *beta, float *running_mean, float *running_var,
                           float *save_mean, float *save_invstd, float *scale, float *shift);
/* The same affine form for eval mode (running statistics), repeated for every split. */
void batchnorm_stats_eval(const BNShape *s, const float *gamma, const float *beta,
                          const float *running_mean, const float *running_var, float *scale,
                          float *shift);
/* y = act(x * scale + shift [+ z]): z (NULL: none) is a tensor of y's shape added after the
 * normalization (the residual), act is ReLU when relu is set, else identity. One pass.
 * y may alias x or z. */
void batchnorm_apply(const BNShape *s, const float *x, const float *scale, const float *shift,
                     const float *z, int relu, float *y);
/* Backward of y = relu(x * scale + shift) (relu set; scale, shift from the stats call) or of
 * plain BN (relu 0; scale, shift unused, may be NULL). dy is the gradient at y; the ReLU mask
 * is recomputed from x with batchnorm_apply's float arithmetic, so it matches the forward
 * exactly and y need not be kept. dx overwritten (may alias dy); dgamma, dbeta accumulated. */
void batchnorm_backward_relu(const BNShape *s, const float *x, const float *dy,
                             const float *gamma, const float *save_mean,
                             const float *save_invstd, const float *scale, const float *shift,
                             int relu, float *dx, float *dgamma, float *dbeta);

/* ---- elementwise and pooling ------------------------------------------------------------- */

void relu_forward(size_t count, const float *x, float *y);           /* y may alias x */
/* dx = dy * (y > 0); y is the ReLU output; dx may alias dy. */
void relu_backward(size_t count, const float *y, const float *dy, float *dx);
void add_forward(size_t count, const float *a, const float *b, float *y); /* y may alias a */
void accumulate(size_t count, const float *x, float *y);             /* y += x */

typedef struct { int n, h, w, c, k, stride, pad, oh, ow; } PoolShape;
PoolShape pool_shape_make(int n, int h, int w, int c, int k, int stride, int pad);
/* Max pool with -inf padding (PyTorch semantics); argmax [n, oh, ow, c] stores the input
 * offset (h*w + w index within the sample) of each maximum, first maximum wins. */
void maxpool_forward(const PoolShape *s, const float *x, float *y, int32_t *argmax);
void maxpool_backward(const PoolShape *s, const float *dy, const int32_t *argmax, float *dx);

/* Global average pool: x [n, h*w, c] -> y [n, c]. */
void avgpool_forward(int n, int hw, int c, const float *x, float *y);
void avgpool_backward(int n, int hw, int c, const float *dy, float *dx);

/* ---- linear ------------------------------------------------------------------------------ */

/* y[n, out] = x[n, in] · w[out, in]^T + b (b may be NULL). */
void linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                    float *y);
/* dx overwritten (skipped if dx is NULL); dw, db accumulated (db skipped if NULL). */
void linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db);

/* ---- MoCo head ops ----------------------------------------------------------------------- */

/* y[i] = x[i] / max(||x[i]||_2, 1e-12) for rows of length d (torch.nn.functional.normalize).
 * norms[n] saved for backward. */
void l2norm_forward(int n, int d, const float *x, float *y, float *norms);
/* dx = (dy - y * <dy, y>) / norm, for rows whose norm exceeded eps; overwrites dx. */
void l2norm_backward(int n, int d, const float *y, const float *dy, const float *norms, float *dx);

/* Mean softmax cross-entropy of logits [n, classes] against integer labels.
 * Returns the loss; writes dlogits = (softmax - onehot) / n when dlogits is non-NULL. */
float softmax_xent_forward_backward(int n, int classes, const float *logits, const int32_t *labels,
                                    float *dlogits);
/* Number of rows whose label is among the k largest logits: a row counts when fewer than k
 * logits are strictly greater than the label's logit (ties resolve in the label's favour). */
int topk_correct(int n, int classes, const float *logits, const int32_t *labels, int k);

/* ---- BLAS-level helpers the algorithm uses ------------------------------------------------ */

/* C[m, n] = alpha * op(A) · op(B) + beta * C, row-major, op = transpose when trans_x is set. */
void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc);

/* Name of the backend and its BLAS, for progress lines and benchmarks. */
const char *kernels_backend_name(void);
/* Number of threads the backend's loops and GEMMs use; 0 = all cores. (CPU: one OpenMP pool
 * runs everything, GEMMs included; OpenBLAS itself is kept single-threaded so that two thread
 * pools never compete for the cores — see kernels/cpu/cpu_internal.h.) */
void kernels_set_threads(int threads);

#endif

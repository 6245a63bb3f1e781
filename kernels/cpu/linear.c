/* linear.c — fully connected layer on the CPU (y = x W^T + b), PyTorch's [out][in] weights.
 * Reference: ref_linear_* in kernels/reference/linear_ref.c. */
#include "kernels/kernels.h"

void linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                    float *y)
{
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) y[(size_t)i * out + o] = b[o];
    }
    gemm(0, 1, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                     float *dx, float *dw, float *db)
{
    if (dx) gemm(0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in); /* dx = dy · W */
    gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);          /* dW += dy^T · x */
    if (db) {
        /* sum over rows in double, one output per iteration, so threads never share a slot */
#pragma omp parallel for schedule(static)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int i = 0; i < n; i++) acc += dy[(size_t)i * out + o];
            db[o] += (float)acc;
        }
    }
}

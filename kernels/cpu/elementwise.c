/* elementwise.c — ReLU, residual add and accumulation on the CPU: flat OpenMP loops that the
 * compiler vectorizes. References: ref_relu_*, ref_add_forward, ref_accumulate. */
#include "kernels/kernels.h"

#include <stddef.h>

void relu_forward(size_t count, const float *x, float *y)
{
    /* x < 0 ? 0 : x (not x > 0 ? x : 0) so that NaN propagates, as torch.relu does: a
     * diverged run must show a NaN loss, not a finite one. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_backward(size_t count, const float *y, const float *dy, float *dx)
{
    /* dy is loaded unconditionally so the select vectorizes; a conditional load compiles to a
     * branch per element that mispredicts on about half of a ReLU's inputs */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        float g = dy[i];
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

void add_forward(size_t count, const float *a, const float *b, float *y)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void accumulate(size_t count, const float *x, float *y)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) y[i] += x[i];
}

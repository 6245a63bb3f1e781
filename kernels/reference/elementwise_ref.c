/* elementwise_ref.c — reference ReLU, add and accumulate, double precision. */
#include "kernels/reference.h"

void ref_relu_forward(size_t count, const double *x, double *y)
{
    for (size_t i = 0; i < count; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void ref_relu_backward(size_t count, const double *y, const double *dy, double *dx)
{
    for (size_t i = 0; i < count; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}

void ref_add_forward(size_t count, const double *a, const double *b, double *y)
{
    for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void ref_accumulate(size_t count, const double *x, double *y)
{
    for (size_t i = 0; i < count; i++) y[i] += x[i];
}

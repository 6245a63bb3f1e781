/* linear_ref.c — reference fully connected layer and GEMM, double precision, row-major. */
#include "kernels/reference.h"

void ref_linear_forward(int n, int in, int out, const double *x, const double *w,
                        const double *b, double *y)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0;
            for (int j = 0; j < in; j++) acc += x[(size_t)i * in + j] * w[(size_t)o * in + j];
            y[(size_t)i * out + o] = acc;
        }
}

void ref_linear_backward(int n, int in, int out, const double *x, const double *w,
                         const double *dy, double *dx, double *dw, double *db)
{
    if (dx)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < in; j++) {
                double acc = 0;
                for (int o = 0; o < out; o++)
                    acc += dy[(size_t)i * out + o] * w[(size_t)o * in + j];
                dx[(size_t)i * in + j] = acc;
            }
    for (int o = 0; o < out; o++)
        for (int j = 0; j < in; j++) {
            double acc = 0;
            for (int i = 0; i < n; i++) acc += dy[(size_t)i * out + o] * x[(size_t)i * in + j];
            dw[(size_t)o * in + j] += acc;
        }
    if (db)
        for (int o = 0; o < out; o++)
            for (int i = 0; i < n; i++) db[o] += dy[(size_t)i * out + o];
}

void ref_gemm(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
              int lda, const double *b, int ldb, double beta, double *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                double av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += av * bv;
            }
            c[(size_t)i * ldc + j] = alpha * acc + beta * c[(size_t)i * ldc + j];
        }
}

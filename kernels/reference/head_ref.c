/* head_ref.c — reference L2 normalization, softmax cross-entropy and top-k counting. */
#include "kernels/reference.h"

#include <math.h>

void ref_l2norm_forward(int n, int d, const double *x, double *y, double *norms)
{
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int j = 0; j < d; j++) ss += x[(size_t)i * d + j] * x[(size_t)i * d + j];
        norms[i] = sqrt(ss);
        double denom = norms[i] > 1e-12 ? norms[i] : 1e-12; /* F.normalize: max(norm, eps) */
        for (int j = 0; j < d; j++) y[(size_t)i * d + j] = x[(size_t)i * d + j] / denom;
    }
}

/* Jacobian of x / ||x|| is (I - y y^T) / ||x||; below eps the map is x / eps. */
void ref_l2norm_backward(int n, int d, const double *y, const double *dy, const double *norms,
                         double *dx)
{
    for (int i = 0; i < n; i++) {
        const double *yi = y + (size_t)i * d, *gi = dy + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            if (!(norms[i] > 1e-12)) {
                dx[(size_t)i * d + j] = gi[j] / 1e-12;
                continue;
            }
            double acc = 0;
            for (int l = 0; l < d; l++) acc += ((j == l) - yi[j] * yi[l]) * gi[l];
            dx[(size_t)i * d + j] = acc / norms[i];
        }
    }
}

double ref_softmax_xent_forward_backward(int n, int classes, const double *logits,
                                         const int32_t *labels, double *dlogits)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        const double *li = logits + (size_t)i * classes;
        double mx = li[0];
        for (int j = 1; j < classes; j++) mx = fmax(mx, li[j]);
        double sum = 0;
        for (int j = 0; j < classes; j++) sum += exp(li[j] - mx);
        total += -(li[labels[i]] - mx - log(sum));
        if (dlogits)
            for (int j = 0; j < classes; j++)
                dlogits[(size_t)i * classes + j] =
                    (exp(li[j] - mx) / sum - (j == labels[i])) / n;
    }
    return total / n;
}

/* A row counts when its label is among the k best: fewer than k logits strictly exceed it. */
int ref_topk_correct(int n, int classes, const double *logits, const int32_t *labels, int k)
{
    int correct = 0;
    for (int i = 0; i < n; i++) {
        int above = 0;
        for (int j = 0; j < classes; j++)
            if (logits[(size_t)i * classes + j] > logits[(size_t)i * classes + labels[i]]) above++;
        if (above < k) correct++;
    }
    return correct;
}

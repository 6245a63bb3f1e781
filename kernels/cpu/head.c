/* head.c — the MoCo head ops on the CPU: row L2 normalization (F.normalize), mean softmax
 * cross-entropy with its gradient, and top-k accuracy counting.
 * References: ref_l2norm_*, ref_softmax_xent, ref_topk_correct in kernels/reference/head_ref.c. */
#include "kernels/kernels.h"

#include <math.h>

/* F.normalize's eps: rows with a smaller norm are divided by eps instead */
#define L2NORM_EPS 1e-12

void l2norm_forward(int n, int d, const float *x, float *y, float *norms)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        double norm = sqrt(ss);
        norms[i] = (float)norm;
        float inv = (float)(1.0 / (norm > L2NORM_EPS ? norm : L2NORM_EPS));
        for (int j = 0; j < d; j++) yi[j] = xi[j] * inv;
    }
}

/* For rows with norm > eps, y = x / ||x|| and dx = (dy - y <dy, y>) / ||x||.
 * Below eps the forward is y = x / eps, a linear map, so dx = dy / eps. */
void l2norm_backward(int n, int d, const float *y, const float *dy, const float *norms, float *dx)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * d, *gi = dy + (size_t)i * d;
        float *di = dx + (size_t)i * d;
        if (!(norms[i] > L2NORM_EPS)) {
            for (int j = 0; j < d; j++) di[j] = (float)(gi[j] / L2NORM_EPS);
            continue;
        }
        double dot = 0;
        for (int j = 0; j < d; j++) dot += (double)gi[j] * yi[j];
        float inv = 1.0f / norms[i], fdot = (float)dot;
        for (int j = 0; j < d; j++) di[j] = (gi[j] - yi[j] * fdot) * inv;
    }
}

float softmax_xent_forward_backward(int n, int classes, const float *logits, const int32_t *labels,
                                    float *dlogits)
{
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int i = 0; i < n; i++) {
        const float *li = logits + (size_t)i * classes;
        /* subtract the row maximum so exp never overflows */
        float mx = li[0];
        for (int j = 1; j < classes; j++) mx = li[j] > mx ? li[j] : mx;
        double sum = 0;
        for (int j = 0; j < classes; j++) sum += exp((double)(li[j] - mx));
        double lse = log(sum) + mx;
        total += lse - li[labels[i]];
        if (dlogits) {
            float *gi = dlogits + (size_t)i * classes;
            const double scale = 1.0 / n;
            for (int j = 0; j < classes; j++) gi[j] = (float)(exp(li[j] - lse) * scale);
            gi[labels[i]] -= (float)scale;
        }
    }
    return (float)(total / n);
}

int topk_correct(int n, int classes, const float *logits, const int32_t *labels, int k)
{
    int correct = 0;
#pragma omp parallel for schedule(static) reduction(+ : correct)
    for (int i = 0; i < n; i++) {
        const float *li = logits + (size_t)i * classes;
        float target = li[labels[i]];
        int greater = 0;
        for (int j = 0; j < classes; j++) greater += li[j] > target;
        correct += greater < k;
    }
    return correct;
}

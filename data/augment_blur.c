/* augment_blur.c — Gaussian blur of float HWC RGB, in place: F.gaussian_blur(img, k, sigma)
 * with k = 2*ceil(3*sigma)+1, so the kernel is a true Gaussian of standard deviation sigma
 * truncated at 3 sigma, and reflect padding (the edge pixel is not repeated).
 *
 * torchvision convolves with the outer product of two 1-D kernels; doing the two 1-D passes
 * (horizontal, then vertical) gives the same result up to float rounding, at 2k instead of k^2
 * multiply-adds per value.
 */
#include "data/augment.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>

int gaussian_kernel_size(float sigma) { return 2 * (int)ceilf(3.0f * sigma) + 1; }

/* torchvision's _get_gaussian_kernel1d, in float. */
static void gaussian_kernel1d(float sigma, int k, float *kernel)
{
    float half = (float)(k - 1) * 0.5f, total = 0.0f;
    for (int i = 0; i < k; i++) {
        /* torch.linspace(-half, half, k): the step is exact for these integer-spaced points */
        float x = (-half + (float)i) / sigma;
        kernel[i] = expf(-0.5f * x * x);
        total += kernel[i];
    }
    for (int i = 0; i < k; i++) kernel[i] /= total;
}

/* Reflect an index into [0, n) without repeating the edge; periodic for pads wider than n. */
static inline int reflect(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

void gaussian_blur(float *img, int h, int w, float sigma)
{
    int k = gaussian_kernel_size(sigma), r = k / 2;
    float *kernel = xmalloc(sizeof(float) * k);
    gaussian_kernel1d(sigma, k, kernel);
    size_t stride = (size_t)w * 3;
    float *tmp = xmalloc(sizeof(float) * stride * h);

    /* Horizontal: each row reflect-padded into pad[], then every tap is one pass over the
     * row (vectorizes; per output the taps still add up in kernel order). */
    float *pad = xmalloc(sizeof(float) * ((size_t)w + 2 * r) * 3);
    for (int y = 0; y < h; y++) {
        const float *s = img + (size_t)y * stride;
        float *d = tmp + (size_t)y * stride;
        for (int x = -r; x < w + r; x++)
            for (int c = 0; c < 3; c++) pad[3 * (x + r) + c] = s[3 * reflect(x, w) + c];
        for (size_t i = 0; i < stride; i++) d[i] = kernel[0] * pad[i];
        for (int j = 1; j < k; j++) {
            const float *pj = pad + 3 * j;
            float kj = kernel[j];
            for (size_t i = 0; i < stride; i++) d[i] += kj * pj[i];
        }
    }
    free(pad);
    /* Vertical: whole rows at once. */
    for (int y = 0; y < h; y++) {
        float *d = img + (size_t)y * stride;
        const float *s0 = tmp + (size_t)reflect(y - r, h) * stride;
        for (size_t i = 0; i < stride; i++) d[i] = kernel[0] * s0[i];
        for (int j = 1; j < k; j++) {
            const float *s = tmp + (size_t)reflect(y + j - r, h) * stride;
            float kj = kernel[j];
            for (size_t i = 0; i < stride; i++) d[i] += kj * s[i];
        }
    }
    free(tmp);
    free(kernel);
}

/* conv_ref.c — reference 2-D convolution: the defining sum, one output (or input) element at
 * a time, NHWC activations and OHWI weights, double precision. */
#include "kernels/reference.h"

#include <string.h>

#define X_AT(s, img, y, x, c) ((((size_t)(img) * (s)->h + (y)) * (s)->w + (x)) * (s)->c_in + (c))
#define Y_AT(s, img, y, x, c) ((((size_t)(img) * (s)->oh + (y)) * (s)->ow + (x)) * (s)->c_out + (c))
#define W_AT(s, o, ky, kx, i) ((((size_t)(o) * (s)->kh + (ky)) * (s)->kw + (kx)) * (s)->c_in + (i))

/* y[img, oy, ox, o] = sum over (ky, kx, i) of
 *                    x[img, oy*st - pad + ky, ox*st - pad + kx, i] * w[o, ky, kx, i],
 * taps outside the input contributing zero. */
void ref_conv2d_forward(const ConvShape *s, const double *x, const double *w, double *y)
{
    for (int img = 0; img < s->n; img++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++)
                for (int o = 0; o < s->c_out; o++) {
                    double acc = 0;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            int iy = oy * s->stride - s->pad + ky;
                            int ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                            for (int i = 0; i < s->c_in; i++)
                                acc += x[X_AT(s, img, iy, ix, i)] * w[W_AT(s, o, ky, kx, i)];
                        }
                    y[Y_AT(s, img, oy, ox, o)] = acc;
                }
}

/* dx = d(sum dy*y)/dx: every (output, tap) pair sends dy * w back to the input it read. */
void ref_conv2d_backward_data(const ConvShape *s, const double *dy, const double *w, double *dx)
{
    memset(dx, 0, (size_t)s->n * s->h * s->w * s->c_in * sizeof(double));
    for (int img = 0; img < s->n; img++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++)
                for (int o = 0; o < s->c_out; o++)
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            int iy = oy * s->stride - s->pad + ky;
                            int ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                            for (int i = 0; i < s->c_in; i++)
                                dx[X_AT(s, img, iy, ix, i)] +=
                                    dy[Y_AT(s, img, oy, ox, o)] * w[W_AT(s, o, ky, kx, i)];
                        }
}

/* dw[o, ky, kx, i] += sum over outputs of dy * the input that tap read. */
void ref_conv2d_backward_weight(const ConvShape *s, const double *x, const double *dy, double *dw)
{
    for (int o = 0; o < s->c_out; o++)
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++)
                for (int i = 0; i < s->c_in; i++) {
                    double acc = 0;
                    for (int img = 0; img < s->n; img++)
                        for (int oy = 0; oy < s->oh; oy++)
                            for (int ox = 0; ox < s->ow; ox++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                acc += x[X_AT(s, img, iy, ix, i)] * dy[Y_AT(s, img, oy, ox, o)];
                            }
                    dw[W_AT(s, o, ky, kx, i)] += acc;
                }
}

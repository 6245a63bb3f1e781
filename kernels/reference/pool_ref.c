/* pool_ref.c — reference max pooling (-inf padding, first maximum wins) and global average
 * pooling, double precision, NHWC. */
#include "kernels/reference.h"

#include <math.h>
#include <string.h>

void ref_maxpool_forward(const PoolShape *s, const double *x, double *y, int32_t *argmax)
{
    for (int img = 0; img < s->n; img++)
        for (int oy = 0; oy < s->oh; oy++)
            for (int ox = 0; ox < s->ow; ox++)
                for (int ch = 0; ch < s->c; ch++) {
                    double best = -INFINITY;
                    int32_t where = -1;
                    for (int ky = 0; ky < s->k; ky++)
                        for (int kx = 0; kx < s->k; kx++) {
                            int iy = oy * s->stride - s->pad + ky;
                            int ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                            int32_t off = iy * s->w + ix;
                            double v = x[(((size_t)img * s->h * s->w) + off) * s->c + ch];
                            if (where < 0 || v > best) {
                                best = v;
                                where = off;
                            }
                        }
                    size_t o = (((size_t)img * s->oh + oy) * s->ow + ox) * s->c + ch;
                    y[o] = best;
                    argmax[o] = where;
                }
}

void ref_maxpool_backward(const PoolShape *s, const double *dy, const int32_t *argmax, double *dx)
{
    memset(dx, 0, (size_t)s->n * s->h * s->w * s->c * sizeof(double));
    for (int img = 0; img < s->n; img++)
        for (int p = 0; p < s->oh * s->ow; p++)
            for (int ch = 0; ch < s->c; ch++) {
                size_t o = ((size_t)img * s->oh * s->ow + p) * s->c + ch;
                dx[((size_t)img * s->h * s->w + argmax[o]) * s->c + ch] += dy[o];
            }
}

void ref_avgpool_forward(int n, int hw, int c, const double *x, double *y)
{
    for (int img = 0; img < n; img++)
        for (int ch = 0; ch < c; ch++) {
            double acc = 0;
            for (int p = 0; p < hw; p++) acc += x[((size_t)img * hw + p) * c + ch];
            y[(size_t)img * c + ch] = acc / hw;
        }
}

void ref_avgpool_backward(int n, int hw, int c, const double *dy, double *dx)
{
    for (int img = 0; img < n; img++)
        for (int p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++)
                dx[((size_t)img * hw + p) * c + ch] = dy[(size_t)img * c + ch] / hw;
}

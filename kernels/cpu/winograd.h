/* winograd.h — Winograd F(4x4, 3x3) and F(2x2, 3x3) convolution of the CPU backend, and the
 * choice between them and im2col + GEMM (not part of the kernel API; conv.c dispatches here).
 *
 * Only 3x3 convolutions with stride 1 and padding 1 qualify: their backward-data pass is the
 * same kind of convolution (filter rotated 180 degrees, channel roles swapped), and they carry
 * nearly all the FLOPs of a ResNet-18 at 32x32. Winograd needs 36 multiplies per 4x4 output tile
 * and channel pair where the direct sum needs 144; it pays for that with transforms and a
 * larger float rounding error (measured in tests/c/test_winograd.c), which is why under
 * MOCO_CONV_ALGO=auto only the backward passes use it (conv_algo.c). The forward pass uses
 * F(2x2, 3x3) instead: 16 multiplies per 2x2 tile against 36, and the direct sum's accuracy.
 */
#ifndef MOCO_KERNELS_CPU_WINOGRAD_H
#define MOCO_KERNELS_CPU_WINOGRAD_H

#include "kernels/kernels.h"

#include <stddef.h>

/* WINOGRAD: F(4x4, 3x3) in every pass; WINOGRAD2: F(2x2, 3x3) forward, F(4x4, 3x3) backward. */
typedef enum { CONV_ALGO_AUTO, CONV_ALGO_IM2COL, CONV_ALGO_WINOGRAD, CONV_ALGO_WINOGRAD2 } ConvAlgo;

/* The algorithm in force: MOCO_CONV_ALGO=im2col|winograd|winograd2|auto (read once; default
 * auto) unless cpu_conv_set_algo was called. */
ConvAlgo cpu_conv_algo(void);
/* Overrides MOCO_CONV_ALGO for the rest of the process (tests and benchmarks). */
void cpu_conv_set_algo(ConvAlgo algo);

/* 1 when Winograd can compute this shape at all (3x3, stride 1, pad 1). */
int winograd_applies(const ConvShape *s);
/* The output tile side of the Winograd variant conv.c should run this shape (and pass) with
 * under the algorithm in force: 4 (F(4x4, 3x3)), 2 (F(2x2, 3x3), forward only) or 0 (im2col).
 * pass: 0 forward, 1 backward data, 2 backward weight. */
int conv_use_winograd(const ConvShape *s, int pass);

/* Workspace bytes the Winograd passes (either tile size) need for this shape (0 when it does
 * not apply). */
size_t winograd_workspace_bytes(const ConvShape *s);

/* Same contracts as conv2d_forward / conv2d_backward_data / conv2d_backward_weight in
 * kernels.h; the shape must satisfy winograd_applies. */
void winograd_conv2d_forward(const ConvShape *s, const float *x, const float *w, float *y,
                             void *workspace);
/* The same with F(2x2, 3x3). */
void winograd2_conv2d_forward(const ConvShape *s, const float *x, const float *w, float *y,
                              void *workspace);
void winograd_conv2d_backward_data(const ConvShape *s, const float *dy, const float *w, float *dx,
                                   void *workspace);
void winograd_conv2d_backward_weight(const ConvShape *s, const float *x, const float *dy,
                                     float *dw, void *workspace);

/* Output tiles per block: the transformed data of one block is what the team works on between
 * barriers. A variable only so tests can force many blocks and benchmarks can tune it. */
extern size_t cpu_winograd_tile_block;

#endif

/* conv_algo.c — which algorithm the CPU backend runs for a convolution: im2col + GEMM
 * (conv.c) or Winograd F(4x4, 3x3) (conv_winograd.c).
 *
 * MOCO_CONV_ALGO=im2col|winograd|auto (default auto) forces one where it applies, so tests
 * and benchmarks can compare the two on the same build; tests may also call cpu_conv_set_algo.
 */
#include "kernels/cpu/winograd.h"
#include "common/error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t algo_once = PTHREAD_ONCE_INIT;
static ConvAlgo algo = CONV_ALGO_AUTO;

static void algo_from_env(void)
{
    const char *v = getenv("MOCO_CONV_ALGO");
    if (!v || !*v || !strcmp(v, "auto")) algo = CONV_ALGO_AUTO;
    else if (!strcmp(v, "im2col")) algo = CONV_ALGO_IM2COL;
    else if (!strcmp(v, "winograd")) algo = CONV_ALGO_WINOGRAD;
    else die("MOCO_CONV_ALGO=%s: expected im2col, winograd or auto", v);
}

ConvAlgo cpu_conv_algo(void)
{
    pthread_once(&algo_once, algo_from_env);
    return algo;
}

void cpu_conv_set_algo(ConvAlgo a)
{
    pthread_once(&algo_once, algo_from_env); /* so the environment cannot override it later */
    algo = a;
}

/* The auto rule. Winograd needs c_in and c_out >= 32: below that the 36 GEMMs are too thin
 * (cifar conv1, 3 -> 64 at 32x32, runs 0.4-0.8x im2col's speed), and maps of at least 4x4:
 * a 2x2 map fills a quarter of its one 4x4 tile, leaving no FLOPs saved.
 * Measured with bench/conv_bench_main.c --threads 1 (process CPU time, batch 8, CIFAR layers
 * x8), im2col ms -> winograd ms, forward / backward data / backward weight:
 *   r50 3x3 64 @56    47 -> 21 / 56 -> 21 / 42 -> 22    cifar 3x3 64 @32    124 -> 42 / 114 -> 32 / 87 -> 38
 *   r50 3x3 128 @28   38 -> 19 / 41 -> 18 / 35 -> 18    cifar 3x3 128 @16    85 -> 37 /  90 -> 36 / 78 -> 38
 *   r50 3x3 256 @14   34 -> 19 / 35 -> 19 / 33 -> 19    cifar 3x3 256 @8     70 -> 28 /  65 -> 26 / 61 -> 25
 *   r50 3x3 512 @7    33 -> 31 / 33 -> 30 / 31 -> 28    cifar 3x3 512 @4     65 -> 30 /  61 -> 30 / 60 -> 31
 * The FORWARD pass stays on im2col under auto, for accuracy, not speed: F(4x4, 3x3) in float
 * is ~10x less accurate than the direct sum (max error ~1e-5 of max|y| against ~6e-7; see
 * tests/c/test_winograd.c), and the forward error propagates through every later layer. In
 * tests/python/test_align.py (batch 4, 16x16, BN over tiny groups) Winograd in the forward of
 * layer1 alone moves the one-step gradient of layer4.0.conv2 by 8e-2 (a ReLU or BN flip
 * downstream; tolerance 1e-4), while Winograd in both backward passes keeps every tensor
 * within tolerance: a gradient's error does not feed any other computation of the step. */
static int conv_winograd_auto(const ConvShape *s, int pass)
{
    return pass != 0 && s->c_in >= 32 && s->c_out >= 32 && s->h >= 4 && s->w >= 4;
}

int conv_use_winograd(const ConvShape *s, int pass)
{
    if (!winograd_applies(s)) return 0;
    switch (cpu_conv_algo()) {
    case CONV_ALGO_IM2COL: return 0;
    case CONV_ALGO_WINOGRAD: return 1;
    default: return conv_winograd_auto(s, pass);
    }
}

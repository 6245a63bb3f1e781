/* conv_algo.c — which algorithm the CPU backend runs for a convolution: im2col + GEMM
 * (conv.c) or Winograd F(4x4, 3x3) / F(2x2, 3x3) (conv_winograd.c).
 *
 * MOCO_CONV_ALGO=im2col|winograd|winograd2|auto (default auto) forces one where it applies, so
 * tests and benchmarks can compare them on the same build; tests may also call
 * cpu_conv_set_algo. winograd runs F(4x4, 3x3) in every pass; winograd2 runs F(2x2, 3x3)
 * forward and F(4x4, 3x3) backward (the auto choice, without the size rule).
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
    else if (!strcmp(v, "winograd2")) algo = CONV_ALGO_WINOGRAD2;
    else die("MOCO_CONV_ALGO=%s: expected im2col, winograd, winograd2 or auto", v);
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

/* The auto rule: F(2x2, 3x3) forward, F(4x4, 3x3) backward. Winograd needs c_in and c_out >= 32: below that the 36 GEMMs are too thin
 * (cifar conv1, 3 -> 64 at 32x32, runs 0.4-0.8x im2col's speed), and maps of at least 4x4:
 * a 2x2 map fills a quarter of its one 4x4 tile, leaving no FLOPs saved.
 * Measured with bench/conv_bench_main.c --threads 1 (process CPU time, batch 8, CIFAR layers
 * x8), im2col ms -> winograd ms, forward / backward data / backward weight:
 *   r50 3x3 64 @56    47 -> 21 / 56 -> 21 / 42 -> 22    cifar 3x3 64 @32    124 -> 42 / 114 -> 32 / 87 -> 38
 *   r50 3x3 128 @28   38 -> 19 / 41 -> 18 / 35 -> 18    cifar 3x3 128 @16    85 -> 37 /  90 -> 36 / 78 -> 38
 *   r50 3x3 256 @14   34 -> 19 / 35 -> 19 / 33 -> 19    cifar 3x3 256 @8     70 -> 28 /  65 -> 26 / 61 -> 25
 *   r50 3x3 512 @7    33 -> 31 / 33 -> 30 / 31 -> 28    cifar 3x3 512 @4     65 -> 30 /  61 -> 30 / 60 -> 31
 * The FORWARD pass does not use F(4x4, 3x3) under auto, for accuracy, not speed: in float it
 * is ~10x less accurate than the direct sum (max error ~1e-5 of max|y| against ~6e-7; see
 * tests/c/test_winograd.c), and the forward error propagates through every later layer. In
 * tests/python/test_align.py (batch 4, 16x16, BN over tiny groups) Winograd in the forward of
 * layer1 alone moves the one-step gradient of layer4.0.conv2 by 8e-2 (a ReLU or BN flip
 * downstream; tolerance 1e-4), while Winograd in both backward passes keeps every tensor
 * within tolerance: a gradient's error does not feed any other computation of the step.
 * The forward pass runs F(2x2, 3x3) instead: transforms of 0, ±1, ±1/2 only, max error
 * 3.8e-7 of max|y| in tests/c/test_winograd.c (the direct sum's level), and test_align.py and
 * test_resnet_torchvision.py pass with it. Same tool, forward im2col ms -> F(2x2) ms (noisy,
 * shared 2-core machine; the size rule above holds for it too: conv1 runs at 0.45-0.6x):
 *   r50 3x3 64 @56    34-41 -> 19-24     cifar 3x3 64 @32     95-108 -> 49-60
 *   r50 3x3 128 @28   28-33 -> 14-18     cifar 3x3 128 @16     77-84 -> 39-49
 *   r50 3x3 256 @14   25-29 -> 14-19     cifar 3x3 256 @8      66-80 -> 36-53
 *   r50 3x3 512 @7    24-26 -> 19-23     cifar 3x3 512 @4      63-75 -> 36-48
 * i.e. 1.7-2x on the CIFAR ResNet-18 layers, 1.1-1.3x at 7x7 (F(4x4, 3x3) forward: 2.2-2.7x).
 * MoCo v2 step, ResNet-18 CIFAR batch 64, 1 thread (bench/moco_step_vs_torch.py): 1.27x
 * PyTorch with im2col forward, 1.96x with F(2x2, 3x3) forward. */
static int conv_winograd_auto(const ConvShape *s, int pass)
{
    if (s->c_in < 32 || s->c_out < 32 || s->h < 4 || s->w < 4) return 0;
    return pass == 0 ? 2 : 4;
}

int conv_use_winograd(const ConvShape *s, int pass)
{
    if (!winograd_applies(s)) return 0;
    switch (cpu_conv_algo()) {
    case CONV_ALGO_IM2COL: return 0;
    case CONV_ALGO_WINOGRAD: return 4;
    case CONV_ALGO_WINOGRAD2: return pass == 0 ? 2 : 4;
    default: return conv_winograd_auto(s, pass);
    }
}

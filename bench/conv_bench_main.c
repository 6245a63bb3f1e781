/* conv_bench_main.c — CPU convolution throughput against the machine's sgemm rate.
 *
 * Runs forward, backward-data and backward-weight of the conv shapes of a ResNet-50 at 224x224
 * (and of the ResNet-18 CIFAR stem at 32x32), and prints each pass's GFLOP/s as a fraction of
 * cblas_sgemm's rate on a large square product measured in the same run (the named peer: the
 * best a GEMM-based convolution could hope for on this machine). GFLOP/s count the direct
 * convolution's FLOPs whatever algorithm ran, so Winograd layers can exceed the sgemm rate.
 *
 * Then, for every 3x3 stride-1 layer of both nets, it times each pass with im2col + GEMM and
 * with Winograd F(4x4, 3x3) (the named peer of conv_winograd.c), and the forward pass with
 * F(2x2, 3x3), and prints the speedups: the figures behind the auto rule in
 * kernels/cpu/conv_algo.c. With --threads 1 the times are the
 * process's CPU time, which other programs on the machine disturb less than wall time.
 *
 *   build/bin/conv_bench [--batch N] [--threads T] [--reps R] [--chunk-floats F]
 *                        [--wino-block B] [--winograd-only]
 * --chunk-floats overrides the im2col chunk size, --wino-block the Winograd tile block (tuning
 * experiments; see conv.c, conv_winograd.c); --winograd-only skips the sgemm-fraction tables.
 */
#include "common/error.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/winograd.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall time, or the process's CPU time when one thread runs everything (set in main). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(bench_clock, &ts) != 0) die("clock_gettime failed");
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *filled(size_t count)
{
    float *p = xaligned_alloc(count * sizeof(float) + 64);
    for (size_t i = 0; i < count; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* Best-of-reps GFLOP/s of a square sgemm of side n: OpenBLAS's own threaded cblas_sgemm when
 * `team` is 0, the backend's gemm() (OpenBLAS single-threaded, split over OpenMP) otherwise. */
static double sgemm_gflops(int n, int reps, int team)
{
    float *a = filled((size_t)n * n), *b = filled((size_t)n * n), *c = filled((size_t)n * n);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first run warms up threads and caches */
        double t0 = now_seconds();
        if (team)
            gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                        0.0f, c, n);
        double t = now_seconds() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

typedef struct { const char *name; int h, c_in, c_out, k, stride, pad; } Layer;

static const Layer resnet50_layers[] = {
    {"conv1 7x7/2 3->64 @224", 224, 3, 64, 7, 2, 3},
    {"l1 1x1 64->64 @56", 56, 64, 64, 1, 1, 0},
    {"l1 3x3 64->64 @56", 56, 64, 64, 3, 1, 1},
    {"l1 1x1 64->256 @56", 56, 64, 256, 1, 1, 0},
    {"l1 1x1 256->64 @56", 56, 256, 64, 1, 1, 0},
    {"l2 3x3/2 128->128 @56", 56, 128, 128, 3, 2, 1},
    {"l2 3x3 128->128 @28", 28, 128, 128, 3, 1, 1},
    {"l2 down 1x1/2 256->512 @56", 56, 256, 512, 1, 2, 0},
    {"l3 3x3 256->256 @14", 14, 256, 256, 3, 1, 1},
    {"l3 1x1 1024->256 @14", 14, 1024, 256, 1, 1, 0},
    {"l4 3x3 512->512 @7", 7, 512, 512, 3, 1, 1},
    {"l4 1x1 512->2048 @7", 7, 512, 2048, 1, 1, 0},
};

static const Layer cifar_layers[] = {
    {"cifar conv1 3x3 3->64 @32", 32, 3, 64, 3, 1, 1},
    {"cifar l1 3x3 64->64 @32", 32, 64, 64, 3, 1, 1},
    {"cifar l2 3x3/2 64->128 @32", 32, 64, 128, 3, 2, 1},
    {"cifar l3 3x3 256->256 @8", 8, 256, 256, 3, 1, 1},
};

/* Times the three passes of one layer; adds flops and seconds to the totals. */
static void bench_layer(const Layer *l, int batch, int reps, double peak, double totals[3][2])
{
    ConvShape s = conv_shape_make(batch, l->h, l->h, l->c_in, l->c_out, l->k, l->stride, l->pad);
    size_t nx = (size_t)s.n * s.h * s.w * s.c_in, ny = (size_t)s.n * s.oh * s.ow * s.c_out;
    size_t nw = (size_t)s.c_out * s.kh * s.kw * s.c_in;
    float *x = filled(nx), *w = filled(nw), *y = filled(ny), *dx = filled(nx), *dw = filled(nw);
    void *ws = xaligned_alloc(conv2d_workspace_bytes(&s) + 64);
    double flops = 2.0 * ny * s.kh * s.kw * s.c_in, best[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now_seconds();
        conv2d_forward(&s, x, w, y, ws);
        double t1 = now_seconds();
        conv2d_backward_data(&s, y, w, dx, ws);
        double t2 = now_seconds();
        conv2d_backward_weight(&s, x, y, dw, ws);
        double t3 = now_seconds();
        if (r == 0) continue; /* warm-up */
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
        if (t3 - t2 < best[2]) best[2] = t3 - t2;
    }
    printf("%-28s", l->name);
    for (int p = 0; p < 3; p++) {
        double g = flops / best[p] * 1e-9;
        printf("  %7.1f GF/s %5.2f", g, g / peak);
        totals[p][0] += flops;
        totals[p][1] += best[p];
    }
    printf("\n");
    free(x); free(w); free(y); free(dx); free(dw); free(ws);
}

static void bench_set(const char *title, const Layer *layers, size_t count, int batch, int reps,
                      double peak)
{
    double totals[3][2] = {{0}};
    printf("\n%s, batch %d: GFLOP/s and fraction of sgemm per pass\n", title, batch);
    printf("%-28s  %-18s  %-18s  %-18s\n", "layer", "forward", "backward data",
           "backward weight");
    for (size_t i = 0; i < count; i++) bench_layer(&layers[i], batch, reps, peak, totals);
    double f = 0, t = 0;
    printf("%-28s", "all layers");
    for (int p = 0; p < 3; p++) {
        double g = totals[p][0] / totals[p][1] * 1e-9;
        printf("  %7.1f GF/s %5.2f", g, g / peak);
        f += totals[p][0];
        t += totals[p][1];
    }
    printf("\nconv/sgemm ratio (%s, all passes): %.2f\n", title, f / t * 1e-9 / peak);
}

/* 3x3 stride-1 pad-1 layers, the ones Winograd applies to (batch: ResNet-50's, CIFAR x8). */
static const Layer winograd_layers[] = {
    {"r50 l1 3x3 64->64 @56", 56, 64, 64, 3, 1, 1},
    {"r50 l2 3x3 128->128 @28", 28, 128, 128, 3, 1, 1},
    {"r50 l3 3x3 256->256 @14", 14, 256, 256, 3, 1, 1},
    {"r50 l4 3x3 512->512 @7", 7, 512, 512, 3, 1, 1},
    {"cifar conv1 3x3 3->64 @32", 32, 3, 64, 3, 1, 1},
    {"cifar l1 3x3 64->64 @32", 32, 64, 64, 3, 1, 1},
    {"cifar l2 3x3 128->128 @16", 16, 128, 128, 3, 1, 1},
    {"cifar l3 3x3 256->256 @8", 8, 256, 256, 3, 1, 1},
    {"cifar l4 3x3 512->512 @4", 4, 512, 512, 3, 1, 1},
};

/* Best-of-reps seconds of each pass of one shape under one algorithm. */
static void time_passes(const ConvShape *s, ConvAlgo algo, int reps, const float *x,
                        const float *w, float *y, float *dx, float *dw, void *ws, double best[3])
{
    cpu_conv_set_algo(algo);
    best[0] = best[1] = best[2] = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now_seconds();
        conv2d_forward(s, x, w, y, ws);
        double t1 = now_seconds();
        conv2d_backward_data(s, y, w, dx, ws);
        double t2 = now_seconds();
        conv2d_backward_weight(s, x, y, dw, ws);
        double t3 = now_seconds();
        if (r == 0) continue; /* warm-up */
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
        if (t3 - t2 < best[2]) best[2] = t3 - t2;
    }
    cpu_conv_set_algo(CONV_ALGO_AUTO);
}

static void bench_winograd(int batch, int reps)
{
    printf("\nWinograd F(4x4,3x3) vs im2col+GEMM, ms per pass (best of %d) and speedup; last "
           "column F(2x2,3x3) forward; batch %d (CIFAR layers x8)\n", reps, batch);
    printf("%-28s  %-24s  %-24s  %-24s  %-14s\n", "layer", "forward", "backward data",
           "backward weight", "fwd F(2x2)");
    double sum[2] = {0, 0};
    for (size_t i = 0; i < sizeof winograd_layers / sizeof winograd_layers[0]; i++) {
        const Layer *l = &winograd_layers[i];
        int n = l->h <= 32 && !strncmp(l->name, "cifar", 5) ? batch * 8 : batch;
        ConvShape s = conv_shape_make(n, l->h, l->h, l->c_in, l->c_out, 3, 1, 1);
        size_t nx = (size_t)s.n * s.h * s.w * s.c_in, ny = (size_t)s.n * s.oh * s.ow * s.c_out;
        size_t nw = (size_t)s.c_out * 9 * s.c_in;
        float *x = filled(nx), *w = filled(nw), *y = filled(ny), *dx = filled(nx);
        float *dw = filled(nw);
        void *ws = xaligned_alloc(conv2d_workspace_bytes(&s) + 64);
        double direct[3], wino[3], wino2[3];
        time_passes(&s, CONV_ALGO_IM2COL, reps, x, w, y, dx, dw, ws, direct);
        time_passes(&s, CONV_ALGO_WINOGRAD, reps, x, w, y, dx, dw, ws, wino);
        time_passes(&s, CONV_ALGO_WINOGRAD2, reps, x, w, y, dx, dw, ws, wino2);
        printf("%-28s", l->name);
        for (int p = 0; p < 3; p++) {
            printf("  %7.2f %7.2f %5.2fx", direct[p] * 1e3, wino[p] * 1e3, direct[p] / wino[p]);
            sum[0] += direct[p];
            sum[1] += wino[p];
        }
        printf("  %7.2f %5.2fx\n", wino2[0] * 1e3, direct[0] / wino2[0]);
        free(x); free(w); free(y); free(dx); free(dw); free(ws);
    }
    printf("all passes of these layers: im2col %.1f ms, winograd %.1f ms, speedup %.2fx\n",
           sum[0] * 1e3, sum[1] * 1e3, sum[0] / sum[1]);
}

int main(int argc, char **argv)
{
    int batch = 8, threads = 0, reps = 3, winograd_only = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--chunk-floats"))
            cpu_conv_chunk_floats = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && !strcmp(argv[i], "--wino-block"))
            cpu_winograd_tile_block = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--winograd-only")) winograd_only = 1;
        else die("usage: %s [--batch N] [--threads T] [--reps R] [--chunk-floats F] "
                 "[--wino-block B] [--winograd-only]", argv[0]);
    }
    if (batch <= 0 || reps <= 0) die("--batch and --reps must be positive");
    if (threads == 1) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    /* The peer first, before any kernel runs: the backend pins OpenBLAS to one thread. */
    openblas_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
    double peak = sgemm_gflops(2048, reps, 0);
    kernels_set_threads(threads);
    /* let OpenBLAS's idle workers stop spinning before the backend's team starts */
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 500000000};
    nanosleep(&pause, NULL);
    printf("backend: %s\n", kernels_backend_name());
    printf("peer: OpenBLAS threaded cblas_sgemm 2048^3: %.1f GFLOP/s (backend gemm(): %.1f)\n",
           peak, sgemm_gflops(2048, reps, 1));
    if (!winograd_only) {
        bench_set("ResNet-50 @224", resnet50_layers,
                  sizeof resnet50_layers / sizeof resnet50_layers[0], batch, reps, peak);
        bench_set("ResNet-18 CIFAR @32", cifar_layers,
                  sizeof cifar_layers / sizeof cifar_layers[0], batch * 8, reps, peak);
    }
    bench_winograd(batch, reps);
    return 0;
}

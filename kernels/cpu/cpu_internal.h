/* cpu_internal.h — helpers shared by the CPU backend's files (not part of the kernel API).
 *
 * Threading model: the backend has ONE thread pool, OpenMP's. OpenBLAS is kept
 * single-threaded and every GEMM is split across the OpenMP team by the backend itself.
 * Two pools (OpenMP for im2col/BN/ReLU, OpenBLAS's pthreads for GEMM) fight over the cores:
 * each pool's idle threads busy-wait for a while after their work, and on a 2-core machine a
 * spinning OpenBLAS worker halves the speed of the next OpenMP loop and vice versa.
 */
#ifndef MOCO_KERNELS_CPU_INTERNAL_H
#define MOCO_KERNELS_CPU_INTERNAL_H

#include <stddef.h>

/* Makes OpenBLAS single-threaded (once per process); every entry point that calls BLAS
 * calls this first. */
void cpu_blas_setup(void);

/* Row-major sgemm C[m,n] = alpha op(A) op(B) + beta C with explicit leading dimensions on
 * the calling thread alone (op = transpose when trans_x is set). */
void cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* The same product called by EVERY thread of an OpenMP team (an orphaned work-sharing routine): each thread
 * computes its own slice of C's rows (or columns, when C is wider than tall) with a
 * single-threaded BLAS call. No barrier at the end; callers add one before reading C. */
void cpu_gemm_team(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* This thread's share [lo, hi) of `total` items split evenly over the team, in multiples of
 * `grain` items (the last share takes the remainder). */
void cpu_team_range(size_t total, size_t grain, size_t *lo, size_t *hi);

/* Upper bound of one im2col chunk, in floats (conv.c). Tests lower it to exercise chunking;
 * change it only before computing workspace sizes. */
extern size_t cpu_conv_chunk_floats;

#endif

/* backend.c — the CPU backend's BLAS entry points, thread control and name.
 * See cpu_internal.h for why OpenBLAS runs single-threaded under an OpenMP team. */
#include "kernels/kernels.h"
#include "kernels/cpu/cpu_internal.h"
#include "common/error.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>

/* Declared here as well as in OpenBLAS's cblas.h: Debian's cblas.h is an alternatives link
 * that can point at another BLAS's header without these, and an implicit declaration would
 * truncate the returned pointer to an int (a crash seen when the link changed). */
char *openblas_get_config(void);
void openblas_set_num_threads(int num_threads);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void) { openblas_set_num_threads(1); }

void cpu_blas_setup(void)
{
    int rc = pthread_once(&blas_once, blas_single_thread);
    if (rc != 0) die("pthread_once failed (%d) setting up OpenBLAS", rc);
}

void cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta C, spelled out: BLAS leaves C alone only when beta == 1 */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] *= beta;
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

void cpu_team_range(size_t total, size_t grain, size_t *lo, size_t *hi)
{
    size_t threads = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
    size_t blocks = (total + grain - 1) / grain;
    size_t b0 = blocks * id / threads, b1 = blocks * (id + 1) / threads;
    *lo = b0 * grain < total ? b0 * grain : total;
    *hi = b1 * grain < total ? b1 * grain : total;
}

/* Slices are multiples of 16 rows/columns so every thread's part stays aligned with the
 * BLAS micro-kernel tiles (a ragged edge costs a slower tail kernel per thread). */
#define GEMM_GRAIN 16

void cpu_gemm_team(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    size_t lo, hi;
    if (m >= n) {
        cpu_team_range((size_t)m, GEMM_GRAIN, &lo, &hi);
        if (lo < hi)
            cpu_sgemm(trans_a, trans_b, (int)(hi - lo), n, k, alpha,
                       trans_a ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
    } else {
        cpu_team_range((size_t)n, GEMM_GRAIN, &lo, &hi);
        if (lo < hi)
            cpu_sgemm(trans_a, trans_b, m, (int)(hi - lo), k, alpha, a, lda,
                       trans_b ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
    }
}

/* Products below this many multiply-adds run on the calling thread: waking the team costs
 * a few microseconds, more than such a product takes. */
#define GEMM_PARALLEL_MIN_FLOPS (1 << 18)

void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
    cpu_blas_setup();
    if (omp_in_parallel() || (double)m * n * k < GEMM_PARALLEL_MIN_FLOPS) {
        cpu_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel
    cpu_gemm_team(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

const char *kernels_backend_name(void)
{
    /* rebuilt on each call so it shows the current thread count; call from one thread */
    static char name[192];
    const char *config = openblas_get_config();
    snprintf(name, sizeof name, "cpu (OpenMP x%d, %s)", omp_get_max_threads(),
             config ? config : "BLAS");
    return name;
}

void kernels_set_threads(int threads)
{
    if (threads < 0) die("kernels_set_threads: negative thread count %d", threads);
    if (threads == 0) threads = omp_get_num_procs();
    cpu_blas_setup();
    omp_set_num_threads(threads); /* the one pool; OpenBLAS stays at 1 thread inside it */
}

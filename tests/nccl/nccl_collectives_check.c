/* nccl_collectives_check.c — runs every collective of the NCCL backend (train/comm_nccl.c) on
 * GPU buffers and compares with the values each must produce; exits non-zero on a mismatch.
 * Built by `make` when the CUDA toolkit has NCCL and OpenMPI is present; run on a GPU machine:
 *   mpirun -np 2 build/bin/nccl-collectives-check
 * (one rank per GPU). The values are small integers in float, so sums are exact.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "train/comm.h"

static int failures;

static void expect(int ok, const char *what, int rank)
{
    if (!ok) {
        fprintf(stderr, "rank %d: %s: WRONG\n", rank, what);
        failures++;
    }
}

int main(void)
{
    Comm *mpi = comm_init();
    Comm *c = comm_nccl_create(mpi);
    const int n = 1 << 20, R = c->size, r = c->rank;
    float *host = xmalloc((size_t)n * R * sizeof(float)), *dev = NULL;
    if (cudaMalloc((void **)&dev, (size_t)n * R * sizeof(float)) != cudaSuccess) die("cudaMalloc failed");

    for (int i = 0; i < n; i++) host[i] = (float)(r + 1 + i % 7);
    cudaMemcpy(dev, host, (size_t)n * sizeof(float), cudaMemcpyHostToDevice);
    c->ops->allreduce_sum_f32(c, dev, (size_t)n);
    cudaMemcpy(host, dev, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= host[i] == (float)(R * (R + 1) / 2 + R * (i % 7));
    expect(ok, "all-reduce sum", r);

    for (int i = 0; i < n; i++) host[i] = (float)(r * n + i);
    cudaMemcpy(dev + (size_t)r * n, host, (size_t)n * sizeof(float), cudaMemcpyHostToDevice);
    c->ops->allgather(c, dev + (size_t)r * n, dev, (size_t)n * sizeof(float));
    cudaMemcpy(host, dev, (size_t)n * R * sizeof(float), cudaMemcpyDeviceToHost);
    ok = 1;
    for (int i = 0; i < n * R; i++) ok &= host[i] == (float)i;
    expect(ok, "all-gather in rank order", r);

    for (int i = 0; i < n; i++) host[i] = r == 0 ? (float)(3 * i % 11) : -1.0f;
    cudaMemcpy(dev, host, (size_t)n * sizeof(float), cudaMemcpyHostToDevice);
    c->ops->bcast(c, dev, (size_t)n * sizeof(float), 0);
    cudaMemcpy(host, dev, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost);
    ok = 1;
    for (int i = 0; i < n; i++) ok &= host[i] == (float)(3 * i % 11);
    expect(ok, "broadcast from rank 0", r);

    c->ops->barrier(c);
    printf("rank %d of %d: NCCL collectives %s\n", r, R, failures ? "FAILED" : "ok");
    cudaFree(dev);
    free(host);
    comm_finalize(c);   /* NCCL first: its barrier and abort go through the MPI communicator */
    comm_finalize(mpi);
    return failures ? 1 : 0;
}

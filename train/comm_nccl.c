/* comm_nccl.c — the NCCL backend of comm.h: the same collectives over GPU memory, one rank per
 * GPU. The communicator is bootstrapped over MPI (rank 0 makes the unique id and broadcasts
 * it), as DESIGN §6 says; each operation runs on the rank's stream and is waited for, so
 * callers see the same blocking semantics as the MPI backend.
 *
 * Compiled with MOCO_HAVE_NCCL by the Makefile when the CUDA toolkit has nccl.h (the NCCL
 * check program, tests/nccl/); the CPU library gets an empty object. It runs when the CUDA
 * backend lands.
 */
#include "train/comm.h"

#ifdef MOCO_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/error.h"

typedef struct {
    Comm *bootstrap;   /* the MPI communicator (same ranks) */
    ncclComm_t nccl;
    cudaStream_t stream;
} NcclImpl;

#define CUDA_CHECK(call) cuda_check((call), #call, __FILE__, __LINE__)
#define NCCL_CHECK(call) nccl_check((call), #call, __FILE__, __LINE__)

static void cuda_check(cudaError_t rc, const char *what, const char *file, int line)
{
    if (rc != cudaSuccess) die("CUDA error at %s:%d: %s: %s", file, line, what, cudaGetErrorString(rc));
}

static void nccl_check(ncclResult_t rc, const char *what, const char *file, int line)
{
    if (rc != ncclSuccess) die("NCCL error at %s:%d: %s: %s", file, line, what, ncclGetErrorString(rc));
}

static NcclImpl *impl(Comm *c) { return (NcclImpl *)c->impl; }

static void wait_stream(Comm *c) { CUDA_CHECK(cudaStreamSynchronize(impl(c)->stream)); }

static void nccl_allreduce(Comm *c, void *buf, size_t n, ncclDataType_t type, ncclRedOp_t op)
{
    NCCL_CHECK(ncclAllReduce(buf, buf, n, type, op, impl(c)->nccl, impl(c)->stream));
    wait_stream(c);
}

static void nccl_sum_f32(Comm *c, float *buf, size_t n) { nccl_allreduce(c, buf, n, ncclFloat32, ncclSum); }
static void nccl_sum_f64(Comm *c, double *buf, size_t n) { nccl_allreduce(c, buf, n, ncclFloat64, ncclSum); }
static void nccl_max_int(Comm *c, int *buf, size_t n) { nccl_allreduce(c, buf, n, ncclInt32, ncclMax); }

static void nccl_allgather(Comm *c, const void *send, void *recv, size_t bytes)
{
    NCCL_CHECK(ncclAllGather(send, recv, bytes, ncclUint8, impl(c)->nccl, impl(c)->stream));
    wait_stream(c);
}

static void nccl_bcast(Comm *c, void *buf, size_t bytes, int root)
{
    NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, impl(c)->nccl, impl(c)->stream));
    wait_stream(c);
}

static void nccl_barrier(Comm *c)
{
    wait_stream(c);
    impl(c)->bootstrap->ops->barrier(impl(c)->bootstrap);
}

static void nccl_abort(Comm *c, int code)
{
    ncclCommAbort(impl(c)->nccl);
    impl(c)->bootstrap->ops->abort(impl(c)->bootstrap, code);
}

static void nccl_finalize(Comm *c)
{
    NcclImpl *p = impl(c);
    ncclCommDestroy(p->nccl);
    cudaStreamDestroy(p->stream);
    free(p);
    free(c);
}

static const CommOps nccl_ops = {
    nccl_sum_f32, nccl_sum_f64, nccl_max_int, nccl_allgather, nccl_bcast, nccl_barrier,
    nccl_abort, nccl_finalize,
};

/* One rank per GPU: the rank takes the local_rank-th visible device (the daemon gives each
 * rank exactly one through CUDA_VISIBLE_DEVICES, making that device 0). */
Comm *comm_nccl_create(Comm *bootstrap)
{
    int devices = 0;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices < 1) die("no CUDA device is visible to rank %d (CUDA_VISIBLE_DEVICES)", bootstrap->rank);
    int device = devices == 1 ? 0 : bootstrap->local_rank % devices;
    CUDA_CHECK(cudaSetDevice(device));

    ncclUniqueId id;
    if (bootstrap->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    bootstrap->ops->bcast(bootstrap, &id, sizeof id, 0);

    NcclImpl *p = xcalloc(1, sizeof *p);
    p->bootstrap = bootstrap;
    CUDA_CHECK(cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking));
    NCCL_CHECK(ncclCommInitRank(&p->nccl, bootstrap->size, id, bootstrap->rank));

    Comm *c = xcalloc(1, sizeof *c);
    c->ops = &nccl_ops;
    c->backend = "nccl";
    c->rank = bootstrap->rank;
    c->size = bootstrap->size;
    c->local_rank = bootstrap->local_rank;
    c->local_size = bootstrap->local_size;
    c->impl = p;
    return c;
}

#else
/* The CPU build: nothing here (ISO C wants a declaration in every translation unit). */
typedef int comm_nccl_not_built;
#endif

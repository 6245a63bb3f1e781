/* comm.h — collectives between the ranks of a data-parallel run (DESIGN §6).
 *
 * One process per device. A run started by mpirun (OpenMPI), srun or another MPI launcher has
 * R ranks that talk through MPI on the CPU (comm_mpi.c) or NCCL on GPUs (comm_nccl.c, its
 * communicator bootstrapped over MPI); a run started without a launcher is a single rank that
 * needs neither (every collective is then a copy or nothing). All backends implement CommOps
 * over buffers in their own memory (host for MPI, device for NCCL).
 *
 * Every rank must call the same collectives in the same order with the same sizes, as MPI
 * demands; a rank that dies (die()) takes the whole run down (comm_init installs that), so no
 * rank waits forever for a partner that is gone.
 */
#ifndef MOCO_COMM_H
#define MOCO_COMM_H

#include <stddef.h>

typedef struct Comm Comm;

typedef struct {
    void (*allreduce_sum_f32)(Comm *c, float *buf, size_t n);
    void (*allreduce_sum_f64)(Comm *c, double *buf, size_t n);
    void (*allreduce_max_int)(Comm *c, int *buf, size_t n);
    /* recv holds size * bytes: rank r's `bytes` at offset r * bytes (rank order). */
    void (*allgather)(Comm *c, const void *send, void *recv, size_t bytes);
    void (*bcast)(Comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(Comm *c);
    void (*abort)(Comm *c, int code);
    void (*finalize)(Comm *c);
} CommOps;

struct Comm {
    const CommOps *ops;
    const char *backend;   /* "single", "mpi", "nccl" */
    int rank, size;        /* in the whole run */
    int local_rank, local_size; /* among the ranks on this machine */
    double seconds;        /* wall time spent inside collectives (for the step profile) */
    void *impl;
};

/* Starts the run's communicator: MPI when a launcher started this process (mpirun, srun,
 * hydra: their environment says so), else a single rank. Installs the die() exit that aborts
 * every rank. Dies with the fix when the process was launched by mpirun but this build has no
 * MPI. */
Comm *comm_init(void);
/* The single-rank communicator (tests, tools). */
Comm *comm_single(void);
void comm_finalize(Comm *c);   /* the last call on c: it is freed */

/* Timed wrappers (c->seconds accumulates). */
void comm_allreduce_sum_f32(Comm *c, float *buf, size_t n);
void comm_allreduce_sum_f64(Comm *c, double *buf, size_t n);
/* 1 on every rank when flag is non-zero on any rank (e.g. a stop request seen by one). */
int comm_any(Comm *c, int flag);
void comm_allgather(Comm *c, const void *send, void *recv, size_t bytes);
void comm_bcast(Comm *c, void *buf, size_t bytes, int root);
void comm_barrier(Comm *c);

/* "host0 host1 ..." — the machine each rank runs on, in rank order (all ranks must call it). */
void comm_hosts(Comm *c, char *out, size_t len);

/* OpenMP threads a rank should use when resources.threads is 0: the cores this process may
 * run on, divided among the ranks of this machine that may run on the same cores. Collective:
 * every rank calls it. */
int comm_default_threads(Comm *c);

/* Backends (comm_mpi.c, comm_nccl.c). comm_mpi_create dies with the fix when built without
 * MPI; comm_mpi_started says whether the environment shows an MPI launcher. */
int comm_mpi_started(void);
/* What the launcher's environment says before any MPI call (-1: it does not say): for
 * commands that run as one process and refuse to be started as several. */
int comm_launcher_size(void);
int comm_launcher_rank(void);
Comm *comm_mpi_create(void);
/* GPU builds (MOCO_HAVE_NCCL): an NCCL communicator over the same ranks as `bootstrap` (MPI),
 * one GPU per rank; its collectives take device pointers. */
Comm *comm_nccl_create(Comm *bootstrap);

#endif

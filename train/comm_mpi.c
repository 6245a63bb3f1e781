/* comm_mpi.c — the MPI backend of comm.h: collectives over host memory between the ranks that
 * mpirun (OpenMPI), srun or another MPI launcher started. Only the main thread calls MPI
 * (MPI_THREAD_FUNNELED); loader and OpenMP threads never do.
 *
 * Built when the Makefile finds mpicc (MOCO_HAVE_MPI); without it, a process that a launcher
 * started dies with the packages to install instead of silently training R separate models.
 */
#include "train/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* The environment a launcher gives its ranks: OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE),
 * PMIx (srun --mpi=pmix, OpenMPI 5), PMI-1/2 (MPICH's hydra, srun --mpi=pmi2). */
int comm_mpi_started(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

/* The first of the variables set, as a number; -1 when none is. */
static int env_int(const char *const *vars, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return -1;
}

int comm_launcher_size(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
    return comm_mpi_started() ? env_int(vars, sizeof vars / sizeof vars[0]) : 1;
}

int comm_launcher_rank(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    return comm_mpi_started() ? env_int(vars, sizeof vars / sizeof vars[0]) : 0;
}

#ifndef MOCO_HAVE_MPI

Comm *comm_mpi_create(void)
{
    die("this process was started by an MPI launcher (mpirun/srun), but this moco-train was built "
        "without MPI; install OpenMPI (Debian: apt-get install openmpi-bin libopenmpi-dev) and "
        "rebuild with make, or run a single rank without mpirun");
}

#else

#include <mpi.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

/* MPI counts are int: larger buffers go in pieces. */
#define MPI_CHUNK ((size_t)1 << 28)

static void mpi_check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    die("MPI %s failed: %s (another rank probably died first: see its message above)", what, msg);
}

static void allreduce(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op, const char *what)
{
    for (size_t off = 0; off < n; off += MPI_CHUNK) {
        size_t len = n - off < MPI_CHUNK ? n - off : MPI_CHUNK;
        mpi_check(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)len, type, op,
                                MPI_COMM_WORLD), what);
    }
}

static void mpi_sum_f32(Comm *c, float *buf, size_t n)
{
    (void)c;
    allreduce(buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM, "all-reduce");
}

static void mpi_sum_f64(Comm *c, double *buf, size_t n)
{
    (void)c;
    allreduce(buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM, "all-reduce");
}

static void mpi_max_int(Comm *c, int *buf, size_t n)
{
    (void)c;
    allreduce(buf, n, sizeof *buf, MPI_INT, MPI_MAX, "all-reduce");
}

static void mpi_allgather(Comm *c, const void *send, void *recv, size_t bytes)
{
    (void)c;
    if (bytes > (size_t)0x7fffffff)
        die("all-gather of %zu bytes per rank exceeds MPI's limit of 2 GiB; lower optim.batch_size "
            "or data.image_size, or use more ranks", bytes);
    mpi_check(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE,
                            MPI_COMM_WORLD), "all-gather");
}

static void mpi_bcast(Comm *c, void *buf, size_t bytes, int root)
{
    (void)c;
    for (size_t off = 0; off < bytes; off += MPI_CHUNK) {
        size_t len = bytes - off < MPI_CHUNK ? bytes - off : MPI_CHUNK;
        mpi_check(MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
    }
}

static void mpi_barrier(Comm *c)
{
    (void)c;
    mpi_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

static void mpi_abort(Comm *c, int code)
{
    (void)c;
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
}

static void mpi_finalize(Comm *c)
{
    /* Everything is saved by now. When the first rank to exit does so with a non-zero status
     * (3: stopped), mpirun aborts the job and SIGTERMs the others; a rank still here must not
     * take that for a second, impatient stop request and die of it. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    MPI_Finalize();
    free(c);
}

static const CommOps mpi_ops = {
    mpi_sum_f32, mpi_sum_f64, mpi_max_int, mpi_allgather, mpi_bcast, mpi_barrier, mpi_abort,
    mpi_finalize,
};

Comm *comm_mpi_create(void)
{
    /* CPU ranks often share cores with each other and with the loader threads: waiting ranks
     * yield instead of spinning (OpenMPI reads MCA parameters from the environment). */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    /* A launcher killed hard (SIGKILL to mpirun, a node's daemon gone) must not leave ranks
     * training on their own; the check after prctl closes the race with a parent already gone. */
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);

    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        die("MPI_Init failed: start the ranks with mpirun (OpenMPI) or srun");
    Comm *c = xcalloc(1, sizeof *c);
    c->ops = &mpi_ops;
    c->backend = "mpi";
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm local;
    mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                                  &local), "split by machine");
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);
    return c;
}

#endif

/* launch_command.h — the command line and environment a job's worker runs with.
 *
 * One process (every lincls and knn job, and a pretraining with one rank):
 *   moco-train <kind> --config SPEC --events-fd 3 [--resume CKPT_DIR]
 * Several ranks (a pretraining with resources.ranks > 1 on the CPU, or resources.gpus > 1):
 *   mpirun --bind-to none --oversubscribe --mca odls_base_sigkill_timeout 2
 *          -np R moco-train pretrain --config SPEC --events-file EVENTS [--resume CKPT_DIR]
 * and for GPUs one app context per rank, each with its own device:
 *   mpirun ... -np 1 -x CUDA_VISIBLE_DEVICES=3 moco-train ... : -np 1 -x CUDA_VISIBLE_DEVICES=5 ...
 *
 * Why each piece (docs/mocod-api.md, "Multi-rank jobs"): OpenMPI replaces a rank's descriptors
 * above 2, so events travel by file name (rank 0 appends); --bind-to none because each rank
 * runs OpenMP threads (moco-train divides the cores among its local ranks); --oversubscribe
 * because mpirun counts one slot per core and a CPU job may ask for more ranks. As root, mpirun
 * refuses to start unless OMPI_ALLOW_RUN_AS_ROOT{,_CONFIRM}=1 are set.
 *
 * odls_base_sigkill_timeout is set short, on purpose. When a rank exits non-zero — every clean
 * stop ends with status 3 — mpirun aborts the job: SIGTERM to the other ranks, then it sleeps
 * this many seconds, whether or not they are already gone, then SIGKILL (OpenMPI 4.1.4, tried:
 * with 40 s, a cancel whose ranks had all exited took 40 s). The ranks do not need the time:
 * moco-train's ranks agree on the stop step, rank 0 writes the checkpoint and all meet in
 * MPI_Finalize before any exits, so the abort finds nothing left to save; a rank that failed
 * leaves the others blocked in a collective, where only SIGKILL ends them. mocod never sends
 * SIGTERM to mpirun (the clean stop is SIGUSR1, worker.h), so the timeout never cuts a
 * checkpoint mocod asked for; it is given explicitly so that a site-wide setting cannot turn
 * every stop into a long wait.
 *
 * Pure apart from reading PATH: the tests check what it builds without running it.
 */
#ifndef MOCOD_LAUNCH_COMMAND_H
#define MOCOD_LAUNCH_COMMAND_H

#include <stddef.h>

/* Seconds mpirun waits between its SIGTERM and SIGKILL to the ranks when it aborts a job (see
 * above why short). */
#define LAUNCH_MPIRUN_SIGKILL_S 2

typedef struct {
    const char *moco_train;  /* absolute path of the worker program */
    const char *mpirun;      /* absolute path of mpirun; only read when ranks > 1 */
    const char *kind;        /* "pretrain", "lincls", "knn" */
    const char *spec_path;   /* STATE/jobs/<id>/spec.json */
    const char *events_path; /* STATE/jobs/<id>/events.jsonl */
    const char *resume_dir;  /* the checkpoint folder to resume from, or NULL */
    int ranks;               /* launch_ranks() */
    const int *gpus;         /* the job's device indices (n_gpus of them) */
    int n_gpus;
    int as_root;             /* mocod runs as root: mpirun must be told that is fine */
    char *const *base_env;   /* the environment to start from (mocod's environ) */
} LaunchRequest;

typedef struct {
    char *program;  /* what execve runs: moco_train or mpirun */
    char **argv;    /* NULL-terminated; argv[0] == program */
    char **env;     /* NULL-terminated, complete */
    int ranks;      /* 1: moco-train alone; > 1: under mpirun */
    int events_fd3; /* the worker expects its events on fd 3 (single process only) */
    char *display;  /* the command line as one line of text, for the job's log */
} LaunchCommand;

/* How many processes a job runs as: a pretraining with GPUs one per GPU, on the CPU its
 * resources.ranks; lincls and knn always one (only pretraining is data-parallel). */
int launch_ranks(const char *kind, int spec_ranks, int n_gpus);

/* Fills out from req. 0, or -1 with err (out of memory). out is all NULL/0 on failure. */
int launch_command_build(const LaunchRequest *req, LaunchCommand *out, char *err, size_t errlen);

/* Frees what launch_command_build made. */
void launch_command_free(LaunchCommand *c);

/* Resolves a program the way a shell would: a name with a '/' is taken as it is (the settings
 * made it absolute), a bare name is looked up in the absolute folders of path_env (PATH; NULL
 * or empty means /usr/local/bin:/usr/bin:/bin). Writes the path of an executable regular file
 * to out. 0, or -1 when there is none. */
int launch_find_program(const char *name, const char *path_env, char *out, size_t n);

#endif

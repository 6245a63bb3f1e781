/* job_procs.h — finding (and killing) every process of a job by its command line.
 *
 * A job's worker is one process group when it is moco-train alone, but under mpirun each rank
 * is the leader of a process group of its own (OpenMPI 4.1 does setpgid in every rank), so a
 * signal to the worker's group reaches mpirun and not the ranks. When mpirun dies without
 * taking its ranks along (SIGKILL before a rank set its parent-death signal, a crash), or a
 * previous mocod left a job behind, those ranks must still be found: two workers of one job
 * would write the same checkpoints and events. Every process of a job — mpirun and each
 * moco-train rank — carries `--config STATE/jobs/<id>/spec.json` in its command line, and that
 * is what is looked for: the argument after a `--config` naming a file spec.json whose folder
 * is the job's folder (compared by device and inode, so another spelling of the state
 * directory still matches; a `tail -f .../spec.json` does not). A worker started by hand with
 * the job's spec.json (the log shows the command) counts too: next to mocod's own attempt it
 * would write the same checkpoints, so it is stopped the same way.
 */
#ifndef MOCOD_JOB_PROCS_H
#define MOCOD_JOB_PROCS_H

#include <sys/types.h>

/* Lists live processes of the job whose folder is job_dir (not mocod itself, not zombies) into
 * pids (at most max). Returns how many there are (which may exceed max), 0 when none or when
 * /proc or the folder cannot be read. */
int job_procs_find(const char *job_dir, pid_t *pids, int max);

/* Sends sig to each process job_procs_find lists. Returns how many there were. */
int job_procs_signal(const char *job_dir, int sig);

#endif

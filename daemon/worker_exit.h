/* worker_exit.h — what a worker's end means for its job (docs/mocod-api.md, "Worker exit").
 *
 *   status 0                          → completed
 *   status 3 (stopped, checkpointed)  → paused or canceled as requested; at mocod's shutdown
 *                                       queued again without counting a restart; unrequested
 *                                       (log.max_steps) → paused
 *   status 75, or a signal mocod did not send (the OOM killer's SIGKILL)
 *                                     → queued again with restarts + 1 while restarts <
 *                                       max_restarts, else failed
 *   any other status                  → failed, with the last log lines as the reason
 * A cancel always ends canceled, whatever the worker's status; a signal mocod sent (SIGKILL
 * past the grace period) ends the way the request asked.
 *
 * A pure function, so the table is tested without processes.
 *
 * Under mpirun the status is mpirun's, which passes the ranks' on (OpenMPI 4.1.4, tried): 0
 * when every rank exited 0; the first non-zero exit status of a rank (3 when they stopped;
 * mpirun then ends the other ranks); 128 + N when a rank was killed by signal N.
 * mpirun_rank_status() turns the last into "killed by signal N" before the table above is
 * applied, so a rank's crash or SIGKILL counts as a single worker's would.
 */
#ifndef MOCOD_WORKER_EXIT_H
#define MOCOD_WORKER_EXIT_H

#include <stddef.h>

#include "daemon/job_state.h"
#include "daemon/worker.h"

typedef struct {
    JobState to;
    int restart_delta;
    char reason[2048];
} WorkerExitOutcome;

/* status: waitpid's. sent_signal: mocod sent SIGTERM or SIGKILL to it. log_tail: the last
 * lines of its log (for failures; may be NULL). grace_s: for the message. */
void worker_exit_decide(int status, WorkerRequest request, int sent_signal, int restarts,
                        int max_restarts, const char *log_tail, int grace_s,
                        WorkerExitOutcome *out);

/* The wait status of a multi-rank worker (mpirun) as that of a single worker: "exited with
 * 128 + N" becomes "killed by signal N" (N from 1 to 64); anything else is returned as is. */
int mpirun_rank_status(int status);

/* Keeps, of a log tail of a multi-rank worker, what moco-train wrote: drops mpirun's boxed
 * notices (the text between two lines of dashes: "Primary job terminated normally, but 1
 * process returned a non-zero exit code...", the MPI_ABORT banner), its "[host:pid] ..." lines
 * and "mpirun: Forwarding signal" notes, which would otherwise push the rank's own error out of
 * a failure reason. Then keeps the last max_lines lines. When nothing is left (mpirun itself
 * failed, e.g. it could not start the program), the text is left as it was, but for the line
 * limit. In place. */
void mpirun_strip_chatter(char *text, int max_lines);

/* "exited with status 1", "killed by signal 9 (Killed)". */
void describe_wait_status(int status, char *buf, size_t n);

#endif

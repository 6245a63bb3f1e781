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

/* "exited with status 1", "killed by signal 9 (Killed)". */
void describe_wait_status(int status, char *buf, size_t n);

#endif

/* job_state.h — the job state machine (DESIGN §5, docs/mocod-api.md "Jobs").
 *
 *   queued → starting → running → completed | failed | canceled
 *   running → pausing → paused → queued            (pause, resume from the last checkpoint)
 *   queued | starting | running → canceling → canceled
 *
 * One table says which changes are legal (job_state.c, with the reason for each edge beyond
 * the diagram), and one function applies a change: job_transition validates it, writes the
 * new state and a transitions row in one SQLite transaction, and publishes a `state` event.
 */
#ifndef MOCOD_JOB_STATE_H
#define MOCOD_JOB_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/event_bus.h"
#include "db/db.h"

typedef enum {
    JOB_QUEUED,
    JOB_STARTING,
    JOB_RUNNING,
    JOB_PAUSING,
    JOB_PAUSED,
    JOB_CANCELING,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELED,
    JOB_STATE_COUNT
} JobState;

const char *job_state_name(JobState s);
/* 0 and *out, or -1 for an unknown name. */
int job_state_parse(const char *name, JobState *out);
/* Whether the table allows from → to. */
int job_state_allowed(JobState from, JobState to);
/* completed, failed, canceled */
int job_state_is_finished(JobState s);
/* starting, running, pausing, canceling: a worker process may exist. */
int job_state_has_worker(JobState s);

typedef struct {
    int restart_delta;   /* counted restarts added */
    int reset_restarts;  /* restarts back to 0 first (a failed job resumed by hand) */
} JobTransitionExtra;

enum { JOB_TRANSITION_OK = 0, JOB_TRANSITION_NOT_FOUND = 1, JOB_TRANSITION_ILLEGAL = 2 };

/* Moves job to `to` with reason (may be NULL). Also, in the same transaction: started_at on
 * the first start, finished_at on a finished state (cleared when a job is queued again), and
 * the worker's pid and devices cleared when no worker remains. Publishes
 * {"job", "from", "to", "reason"} as a `state` event on bus (may be NULL). Returns
 * JOB_TRANSITION_OK, _NOT_FOUND, _ILLEGAL (err says from what state) or -1 on a database
 * error. *from_out (may be NULL) receives the previous state; *restarts_out the restarts
 * count after the change. */
int job_transition(Db *db, EventBus *bus, int64_t job, JobState to, const char *reason,
                   const JobTransitionExtra *extra, JobState *from_out, int *restarts_out,
                   char *err, size_t errlen);

#endif

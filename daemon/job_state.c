/* job_state.c — the transition table and job_transition; see job_state.h. */
#include "daemon/job_state.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_jobs.h"

static const char *const names[JOB_STATE_COUNT] = {
    "queued", "starting", "running", "pausing", "paused",
    "canceling", "completed", "failed", "canceled",
};

#define Q (1u << JOB_QUEUED)
#define ST (1u << JOB_STARTING)
#define R (1u << JOB_RUNNING)
#define PG (1u << JOB_PAUSING)
#define P (1u << JOB_PAUSED)
#define CG (1u << JOB_CANCELING)
#define DONE (1u << JOB_COMPLETED)
#define F (1u << JOB_FAILED)
#define C (1u << JOB_CANCELED)

/* allowed[from] = the set of states `from` may change to. Edges beyond the diagram, and why:
 *   queued → paused      pause of a job that has not started (docs: "becomes paused at once")
 *   queued → failed      the job it waits for (`after`) failed or was canceled, or it can
 *                        never run here (more GPUs than the machine has)
 *   starting|running → queued   the worker crashed and the job is retried, or mocod stopped
 *                        (graceful shutdown, crash recovery)
 *   starting → failed|completed|paused   the worker ended before its `start` event was read
 *   starting → pausing   pause while the worker loads its data (it stops after one step)
 *   running → paused     the worker stopped on its own with a checkpoint (log.max_steps)
 *   pausing → completed|failed   the worker finished or failed before it could stop
 *   pausing → canceling  cancel while a pause is under way
 *   paused → canceling   cancel of a paused job (then canceled at once: no worker)
 *   failed → queued      resume of a failed job, from its last checkpoint (docs: resume)
 */
static const unsigned allowed[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = ST | CG | P | F,
    [JOB_STARTING] = R | PG | CG | Q | F | DONE | P,
    [JOB_RUNNING] = PG | CG | Q | F | DONE | P,
    [JOB_PAUSING] = P | CG | F | DONE,
    [JOB_PAUSED] = Q | CG,
    [JOB_CANCELING] = C,
    [JOB_COMPLETED] = 0,
    [JOB_FAILED] = Q,
    [JOB_CANCELED] = 0,
};

const char *job_state_name(JobState s)
{
    return s >= 0 && s < JOB_STATE_COUNT ? names[s] : "unknown";
}

int job_state_parse(const char *name, JobState *out)
{
    for (int i = 0; i < JOB_STATE_COUNT; i++)
        if (strcmp(names[i], name) == 0) {
            *out = (JobState)i;
            return 0;
        }
    return -1;
}

int job_state_allowed(JobState from, JobState to)
{
    if (from < 0 || from >= JOB_STATE_COUNT || to < 0 || to >= JOB_STATE_COUNT) return 0;
    return (allowed[from] >> to) & 1u;
}

int job_state_is_finished(JobState s)
{
    return s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELED;
}

int job_state_has_worker(JobState s)
{
    return s == JOB_STARTING || s == JOB_RUNNING || s == JOB_PAUSING || s == JOB_CANCELING;
}

/* The predicate db_job_change_state runs inside its transaction. */
static int allowed_by_name(const char *from, const char *to)
{
    JobState a, b;
    return job_state_parse(from, &a) == 0 && job_state_parse(to, &b) == 0 &&
           job_state_allowed(a, b);
}

static void publish_state(EventBus *bus, int64_t job, const char *from, JobState to,
                          const char *reason)
{
    cJSON *e = cJSON_CreateObject();
    char *text = NULL;
    if (e && cJSON_AddNumberToObject(e, "job", (double)job) &&
        cJSON_AddStringToObject(e, "from", from) &&
        cJSON_AddStringToObject(e, "to", job_state_name(to)) &&
        cJSON_AddStringToObject(e, "reason", reason ? reason : ""))
        text = cJSON_PrintUnformatted(e);
    if (text) event_bus_publish(bus, job, "state", text);
    cJSON_free(text);
    cJSON_Delete(e);
}

int job_transition(Db *db, EventBus *bus, int64_t job, JobState to, const char *reason,
                   const JobTransitionExtra *extra, JobState *from_out, int *restarts_out,
                   char *err, size_t errlen)
{
    DbStateUpdate u = {0};
    if (extra) {
        u.restart_delta = extra->restart_delta;
        u.reset_restarts = extra->reset_restarts;
    }
    u.set_started = to == JOB_STARTING;
    u.set_finished = job_state_is_finished(to);
    u.clear_finished = to == JOB_QUEUED;
    u.clear_worker = !job_state_has_worker(to);
    char from[16] = "";
    int restarts = 0;
    sqlite3 *c = db_write_begin(db);
    int rc = db_job_change_state(c, job, job_state_name(to), reason, &u, allowed_by_name, from,
                                 &restarts, err, errlen);
    db_write_end(db);
    if (rc == 1) {
        snprintf(err, errlen, "job %lld does not exist", (long long)job);
        return JOB_TRANSITION_NOT_FOUND;
    }
    if (rc == 2) {
        snprintf(err, errlen, "job %lld is %s; it cannot become %s", (long long)job, from,
                 job_state_name(to));
        return JOB_TRANSITION_ILLEGAL;
    }
    if (rc != 0) return -1;
    if (from_out && job_state_parse(from, from_out) != 0) *from_out = JOB_QUEUED;
    if (restarts_out) *restarts_out = restarts;
    publish_state(bus, job, from, to, reason);
    return JOB_TRANSITION_OK;
}

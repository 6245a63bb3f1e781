/* service_internal.h — what the parts of the daemon core share (daemon/service*.c,
 * supervisor.c, scheduler.c, submit.c, recovery.c, job_json.c).
 *
 * Threads and locks. HTTP threads call service_*; one supervisor thread owns the workers
 * (starts them, reads their events, reaps them) and runs the scheduler. `mu` (the jobs lock)
 * is held by whoever decides about a job's state: the supervisor for each round of work, an
 * HTTP thread for a whole submit/cancel/pause/resume/delete. So "cancel a queued job" can
 * never interleave with "start that job". Lock order: mu, then the database's writer mutex
 * (taken inside db_write_begin); never the other way round. Reads need no lock.
 */
#ifndef MOCOD_SERVICE_INTERNAL_H
#define MOCOD_SERVICE_INTERNAL_H

#include <pthread.h>

#include "daemon/event_bus.h"
#include "daemon/job_state.h"
#include "daemon/service.h"
#include "daemon/worker.h"
#include "db/db.h"
#include "db/db_jobs.h"

#define MOCOD_VERSION "0.1.0"

struct Service {
    DaemonConfig cfg;
    char jobs_dir[DAEMON_PATH_MAX + 8];   /* STATE_DIR/jobs */
    Db *db;
    EventBus *bus;
    int lock_fd;                          /* flock on STATE_DIR/mocod.lock */
    double opened_at;                     /* monotonic */

    pthread_mutex_t mu;                   /* the jobs lock, see above */
    Worker **workers;                     /* live workers (under mu) */
    int n_workers, cap_workers;
    int64_t *gpu_owner;                   /* [cfg.gpus]: job id using each GPU, 0 free */
    int cpu_used;                         /* CPU jobs running */
    int stopping;                         /* service_close began: start nothing new */

    int wake_pipe[2];                     /* self-pipe that wakes the supervisor */
    pthread_t thread;
    int thread_started;

    pthread_mutex_t export_mu;            /* one backbone export at a time */
};

/* ---- service.c ---- */
/* Wakes the supervisor (after a submit, an action, a priority change). */
void service_wake(Service *s);
/* Fills err (may be NULL): HTTP status, code, field ("" or NULL for none) and message. */
void service_error(ServiceError *err, int status, const char *code, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* STATE_DIR/jobs/<id> (and a suffix, e.g. "/checkpoints"), into buf. 0, or -1 if too long. */
int service_job_path(const Service *s, int64_t id, const char *suffix, char *buf, size_t n);
/* The job's row from a reader connection: 0, or -1 with err (404 for an unknown job). */
int service_read_job(Service *s, int64_t id, JobRow *row, ServiceError *err);
/* The worker of a job (under mu), or NULL. */
Worker *service_find_worker(Service *s, int64_t job);

/* ---- job_json.c ---- */
/* The job object of docs/mocod-api.md (without transitions). NULL when out of memory. */
cJSON *job_row_to_json(const JobRow *r);

/* ---- supervisor.c ---- */
/* The supervisor thread's body. */
void *supervisor_main(void *arg);

/* ---- scheduler.c ---- */
/* Starts what may start now (under mu). *next_wake (monotonic seconds, may be lowered)
 * receives the earliest not_before of a waiting job. */
void scheduler_run(Service *s, double *next_wake);

/* ---- launch.c ---- */
/* Starts the worker of a queued job (under mu): queued → starting, spec.json, fork/exec.
 * gpus: the device indices given to it. On failure the job is failed with the reason. */
void launch_job(Service *s, const JobRow *job, const int *gpus, int n_gpus);

/* ---- worker_events.c ---- */
/* Handles one event line of a worker (under mu): stores metrics and progress, trims history
 * on `start`, moves starting → running, and publishes the event with "job" added. 0, or -1
 * when its effects could not be stored (a WorkerLineFn: the line is handed out again). */
int worker_events_line(void *service, Worker *w, char *line);

/* ---- recovery.c ---- */
/* At startup, before the supervisor runs: jobs a previous mocod left with a worker are
 * settled (old workers waited for or killed, then canceling → canceled, pausing → paused,
 * others → queued with restarts + 1 or failed). 0, or -1 with err on a database error. */
int recover_jobs(Service *s, char *err, size_t errlen);

/* ---- submit.c ---- */
/* Parses an RFC 3339 time ("2026-05-01T12:00:00Z", "...+02:00", fractional seconds) into
 * Unix seconds. 0 or -1. */
int parse_rfc3339(const char *text, double *out);

#endif

/* recovery.c — settling the jobs a previous mocod left with a worker (DESIGN §5).
 *
 * A mocod that died (kill -9, a crash, power loss) leaves jobs in starting, running, pausing
 * or canceling. Their workers got their parent-death signal (SIGHUP; mpirun SIGUSR1, which it
 * forwards to its ranks: worker.h) and are writing a checkpoint and stopping; two workers of
 * one job must never run at once, so every process of the job still alive (the old worker,
 * the ranks of an mpirun worker, which run in process groups of their own: job_procs.h) is
 * waited for up to grace_period_s, then killed. No SIGTERM is sent: a second one would make moco-train stop without its checkpoint.
 * Then the events the old worker wrote after the last one the old mocod applied (its last
 * metrics, its last checkpoint) are applied from the job's events.jsonl, so the history ends
 * where the checkpoint the job resumes from does. Then: canceling → canceled; a job whose
 * worker finished it (its last event is `done` with status completed) → completed; pausing →
 * paused; the others → queued with restarts + 1 while restarts < max_restarts, else failed.
 */
#include "daemon/service_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "daemon/job_procs.h"
#include "daemon/json_util.h"

/* 1 while any process of the job still runs: the old worker and, under mpirun, every rank.
 * Each carries `--config STATE/jobs/<id>/spec.json`, matched by the folder's inode however the
 * previous mocod spelled the state directory (job_procs.h), so a reused pid of an unrelated
 * process is left alone. */
static int old_job_alive(const Service *s, const JobRow *r)
{
    char dir[DAEMON_PATH_MAX + 64];
    pid_t one;
    return service_job_path(s, r->id, "", dir, sizeof dir) == 0 && job_procs_find(dir, &one, 1) > 0;
}

static int count_alive(const Service *s, const JobRow *rows, int n)
{
    int alive = 0;
    for (int i = 0; i < n; i++) alive += old_job_alive(s, &rows[i]);
    return alive;
}

static void wait_for_old_workers(Service *s, const JobRow *rows, int n)
{
    int alive = count_alive(s, rows, n);
    if (!alive) return;
    fprintf(stderr, "mocod: waiting up to %d s for the worker(s) of the previous mocod (%d "
            "job(s)) to checkpoint and stop\n", s->cfg.grace_period_s, alive);
    double deadline = monotonic_now() + s->cfg.grace_period_s;
    while (alive && monotonic_now() < deadline) {
        usleep(100000);
        alive = count_alive(s, rows, n);
    }
    if (!alive) return;
    for (int i = 0; i < n; i++) {
        if (!old_job_alive(s, &rows[i])) continue;
        fprintf(stderr, "mocod: job %lld: old worker %lld still runs after %d s; SIGKILL\n",
                (long long)rows[i].id, (long long)rows[i].pid, s->cfg.grace_period_s);
        char dir[DAEMON_PATH_MAX + 64];
        if (service_job_path(s, rows[i].id, "", dir, sizeof dir) == 0) job_procs_signal(dir, SIGKILL);
    }
    /* SIGKILL is not instant for a process in the middle of I/O. */
    deadline = monotonic_now() + 10;
    do {
        usleep(50000);
        alive = count_alive(s, rows, n);
    } while (alive && monotonic_now() < deadline);
}

/* Applies what the old worker wrote after the recorded offset. */
static void apply_missed_events(Service *s, const JobRow *r)
{
    char path[DAEMON_PATH_MAX + 64], msg[512];
    if (service_job_path(s, r->id, "/events.jsonl", path, sizeof path) != 0) return;
    sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
    int64_t offset = c ? db_job_events_offset(c, r->id, msg, sizeof msg) : -1;
    if (c) db_read_end(s->db, c);
    if (offset < 0) return;
    Worker w;
    memset(&w, 0, sizeof w);
    w.job = r->id;
    w.events_fd = -1;
    w.total_steps = r->total_steps;
    w.steps_per_epoch = r->steps_per_epoch;
    w.epochs = r->epochs;
    cJSON *spec = cJSON_Parse(r->spec);
    cJSON *bs = json_at(spec, "optim.batch_size");
    w.batch_size = cJSON_IsNumber(bs) ? bs->valueint : 0;
    cJSON_Delete(spec);
    w.last = cJSON_Parse(r->last_metrics);
    if (worker_open_events(&w, path, offset) == 0) {
        int64_t before = w.consumed;
        worker_read(&w, worker_events_line, s, 1);
        if (w.consumed > before)
            fprintf(stderr, "mocod: job %lld: applied %lld bytes of events its worker wrote "
                    "after the previous mocod stopped\n", (long long)r->id,
                    (long long)(w.consumed - before));
    }
    worker_free(&w);
}

/* 1 when the job's worker ended by finishing the job: the last line of its events file (the
 * file holds only the latest attempt's events) is {"kind": "done", "status": "completed"}.
 * A worker that mocod's death reached during its last step, its final checkpoint or its final
 * evaluation does not stop early: it completes the job and exits 0 with nobody to see it. */
static int worker_completed(const Service *s, int64_t job)
{
    char path[DAEMON_PATH_MAX + 64];
    if (service_job_path(s, job, "/events.jsonl", path, sizeof path) != 0) return 0;
    char *tail = file_last_lines(path, 1);
    if (!tail) return 0;
    cJSON *e = cJSON_Parse(tail);
    free(tail);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(e, "status");
    int done = cJSON_IsString(kind) && strcmp(kind->valuestring, "done") == 0 &&
               cJSON_IsString(status) && strcmp(status->valuestring, "completed") == 0;
    cJSON_Delete(e);
    return done;
}

int recover_jobs(Service *s, char *err, size_t errlen)
{
    static const char *const active[] = {"starting", "running", "pausing", "canceling"};
    sqlite3 *c = db_read_begin(s->db, err, errlen);
    if (!c) return -1;
    JobRow *rows;
    int n;
    int rc = db_jobs_list(c, active, 4, DB_ORDER_START, 0, 0, &rows, &n, err, errlen);
    db_read_end(s->db, c);
    if (rc != 0) return -1;
    if (n > 0) wait_for_old_workers(s, rows, n);
    for (int i = 0; i < n; i++) apply_missed_events(s, &rows[i]);
    int ret = 0;
    for (int i = 0; i < n && ret == 0; i++) {
        const JobRow *r = &rows[i];
        JobState to;
        JobTransitionExtra extra = {0, 0};
        char reason[512];
        if (strcmp(r->state, "canceling") == 0) {
            to = JOB_CANCELED;
            snprintf(reason, sizeof reason, "canceled (mocod restarted while the job stopped)");
        } else if (worker_completed(s, r->id)) {
            /* before pausing → paused and the retry below: the work is done, and rerunning
             * it would count a restart (or fail a job that has none left) for nothing */
            to = JOB_COMPLETED;
            snprintf(reason, sizeof reason, "completed (its worker finished while mocod was "
                     "not running)");
        } else if (strcmp(r->state, "pausing") == 0) {
            to = JOB_PAUSED;
            snprintf(reason, sizeof reason, "paused (mocod restarted while the job stopped); "
                     "resume continues from the last checkpoint");
        } else if (r->restarts < r->max_restarts) {
            to = JOB_QUEUED;
            extra.restart_delta = 1;
            snprintf(reason, sizeof reason, "mocod did not stop cleanly while the job was %s; "
                     "restart %d of max_restarts %d from the last checkpoint", r->state,
                     r->restarts + 1, r->max_restarts);
        } else {
            to = JOB_FAILED;
            snprintf(reason, sizeof reason, "mocod did not stop cleanly while the job was %s, "
                     "and the job has no restarts left (restarts %d, max_restarts %d); resume "
                     "it to try again", r->state, r->restarts, r->max_restarts);
        }
        rc = job_transition(s->db, s->bus, r->id, to, reason, &extra, NULL, NULL, err, errlen);
        if (rc < 0) ret = -1;
        else if (rc == JOB_TRANSITION_OK)
            fprintf(stderr, "mocod: job %lld: %s → %s (recovery)\n", (long long)r->id, r->state,
                    job_state_name(to));
    }
    for (int i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);
    return ret;
}

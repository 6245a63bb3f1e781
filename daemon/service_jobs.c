/* service_jobs.c — listing, reading and acting on jobs: service_list_jobs, service_get_job,
 * service_job_action (cancel, pause, resume), service_set_priority, service_delete_job.
 *
 * Actions hold the jobs lock for their whole decision, so they never race the supervisor:
 * a job without a worker (queued, paused) changes state at once; a job with a worker is
 * marked (canceling, pausing), its worker gets its clean-stop signal (SIGTERM; SIGUSR1 for
 * mpirun, worker.h) and checkpoints and exits with status 3, or gets SIGKILL after
 * grace_period_s, and the supervisor settles the state when it exits.
 */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIST_MAX 500

/* Parses "a,b,c" into state names; 0, or -1 with a 400 naming the bad one. */
static int parse_states(const char *text, const char *names[JOB_STATE_COUNT], int *n,
                        char buf[256], ServiceError *err)
{
    *n = 0;
    if (!text || !text[0]) return 0;
    snprintf(buf, 256, "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        size_t l = strlen(tok);
        while (l > 0 && tok[l - 1] == ' ') tok[--l] = '\0';
        if (!*tok) continue;
        JobState st;
        if (job_state_parse(tok, &st) != 0) {
            service_error(err, 400, "bad_request", NULL, "state: unknown state '%s'; states are "
                          "queued, starting, running, pausing, paused, canceling, completed, "
                          "failed, canceled", tok);
            return -1;
        }
        int dup = 0;
        for (int i = 0; i < *n; i++) dup |= strcmp(names[i], job_state_name(st)) == 0;
        if (!dup) names[(*n)++] = job_state_name(st);
    }
    return 0;
}

cJSON *service_list_jobs(Service *s, const char *states, int limit, const char *page_token,
                         ServiceError *err)
{
    const char *names[JOB_STATE_COUNT];
    char buf[256], msg[512];
    int n_states;
    if (parse_states(states, names, &n_states, buf, err) != 0) return NULL;
    if (limit < 1 || limit > LIST_MAX) {
        service_error(err, 400, "bad_request", NULL, "limit must be between 1 and %d, got %d",
                      LIST_MAX, limit);
        return NULL;
    }
    int64_t before = 0;
    if (page_token && page_token[0]) {
        char *end;
        errno = 0;
        long long v = strtoll(page_token, &end, 10);
        if (errno || *end || v < 1) {
            service_error(err, 400, "bad_request", NULL, "page_token '%.64s' was not given out "
                          "by this server; use next_page_token of the previous page", page_token);
            return NULL;
        }
        before = v;
    }
    sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
    if (!c) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        return NULL;
    }
    JobRow *rows;
    int n;
    int rc = db_jobs_list(c, names, n_states, DB_ORDER_NEWEST, before, limit + 1, &rows, &n, msg,
                          sizeof msg);
    db_read_end(s->db, c);
    if (rc != 0) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        return NULL;
    }
    cJSON *out = cJSON_CreateObject(), *jobs = cJSON_AddArrayToObject(out, "jobs");
    int ok = out && jobs;
    int shown = n > limit ? limit : n;
    for (int i = 0; ok && i < shown; i++) {
        cJSON *j = job_row_to_json(&rows[i]);
        ok = j && cJSON_AddItemToArray(jobs, j);
    }
    if (ok && n > limit) {
        char token[32];
        snprintf(token, sizeof token, "%lld", (long long)rows[shown - 1].id);
        ok = cJSON_AddStringToObject(out, "next_page_token", token) != NULL;
    } else if (ok) {
        ok = cJSON_AddNullToObject(out, "next_page_token") != NULL;
    }
    for (int i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);
    if (!ok) {
        cJSON_Delete(out);
        service_error(err, 500, "internal", NULL, "out of memory listing jobs");
        return NULL;
    }
    return out;
}

cJSON *service_get_job(Service *s, int64_t id, int with_history, ServiceError *err)
{
    JobRow row;
    if (service_read_job(s, id, &row, err) != 0) return NULL;
    cJSON *j = job_row_to_json(&row);
    job_row_free(&row);
    if (!j) {
        service_error(err, 500, "internal", NULL, "out of memory reading job %lld", (long long)id);
        return NULL;
    }
    if (with_history) {
        char msg[512];
        cJSON *t = cJSON_AddArrayToObject(j, "transitions");
        sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
        int rc = c && t ? db_job_transitions(c, id, t, msg, sizeof msg) : -1;
        if (c) db_read_end(s->db, c);
        if (rc != 0) {
            cJSON_Delete(j);
            service_error(err, 500, "internal", NULL, "%s", t ? msg : "out of memory");
            return NULL;
        }
    }
    return j;
}

/* Applies a transition for an action; a lost race or an illegal move is 409. */
static int act(Service *s, int64_t id, JobState to, const char *reason,
               const JobTransitionExtra *extra, ServiceError *err)
{
    char msg[1024];
    int rc = job_transition(s->db, s->bus, id, to, reason, extra, NULL, NULL, msg, sizeof msg);
    if (rc == JOB_TRANSITION_OK) return 0;
    if (rc == JOB_TRANSITION_NOT_FOUND)
        service_error(err, 404, "not_found", NULL, "%s", msg);
    else if (rc == JOB_TRANSITION_ILLEGAL)
        service_error(err, 409, "conflict", NULL, "%s", msg);
    else
        service_error(err, 500, "internal", NULL, "%s", msg);
    return -1;
}

/* Asks the job's worker to stop (its clean-stop signal now, SIGKILL after the grace period). */
static void stop_worker(Service *s, int64_t id, WorkerRequest request)
{
    Worker *w = service_find_worker(s, id);
    if (!w) return;
    /* A cancel overrides a pause under way; nothing overrides a cancel. */
    if (w->request != WORKER_REQ_CANCEL) w->request = request;
    if (!w->sent_stop) {
        worker_request_stop(w);
        w->kill_at = monotonic_now() + s->cfg.grace_period_s;
    }
}

static int do_cancel(Service *s, int64_t id, JobState st, ServiceError *err)
{
    if (job_state_is_finished(st)) {
        service_error(err, 409, "conflict", NULL, "job %lld is already %s; there is nothing to "
                      "cancel", (long long)id, job_state_name(st));
        return -1;
    }
    if (st == JOB_CANCELING) return 0; /* already on its way */
    if (act(s, id, JOB_CANCELING, "cancel requested", NULL, err) != 0) return -1;
    if (job_state_has_worker(st) && service_find_worker(s, id)) {
        stop_worker(s, id, WORKER_REQ_CANCEL);
        return 0;
    }
    return act(s, id, JOB_CANCELED, "canceled by request", NULL, err);
}

static int do_pause(Service *s, int64_t id, JobState st, ServiceError *err)
{
    if (st == JOB_PAUSING || st == JOB_PAUSED) return 0;
    if (st == JOB_QUEUED) return act(s, id, JOB_PAUSED, "paused by request before it started", NULL, err);
    if (st != JOB_RUNNING && st != JOB_STARTING) {
        service_error(err, 409, "conflict", NULL, "job %lld is %s; only a running or queued job "
                      "can be paused", (long long)id, job_state_name(st));
        return -1;
    }
    if (act(s, id, JOB_PAUSING, "pause requested", NULL, err) != 0) return -1;
    if (!service_find_worker(s, id)) /* no worker to wait for: paused now */
        return act(s, id, JOB_PAUSED, "paused by request", NULL, err);
    stop_worker(s, id, WORKER_REQ_PAUSE);
    return 0;
}

static int do_resume(Service *s, int64_t id, JobState st, ServiceError *err)
{
    if (st == JOB_PAUSED) return act(s, id, JOB_QUEUED, "resumed by request", NULL, err);
    if (st == JOB_FAILED) {
        /* A job that used up its restarts gets a fresh allowance when resumed by hand. */
        JobTransitionExtra reset = {0, 1};
        return act(s, id, JOB_QUEUED, "resumed by request after failing; continues from its "
                   "last checkpoint", &reset, err);
    }
    service_error(err, 409, "conflict", NULL, "job %lld is %s; only a paused or failed job can "
                  "be resumed", (long long)id, job_state_name(st));
    return -1;
}

cJSON *service_job_action(Service *s, int64_t id, JobAction action, ServiceError *err)
{
    pthread_mutex_lock(&s->mu);
    JobRow row;
    int rc = service_read_job(s, id, &row, err);
    if (rc == 0) {
        JobState st;
        if (job_state_parse(row.state, &st) != 0) {
            service_error(err, 500, "internal", NULL, "job %lld has an unknown state '%s'",
                          (long long)id, row.state);
            rc = -1;
        } else if (action == JOB_ACTION_CANCEL) {
            rc = do_cancel(s, id, st, err);
        } else if (action == JOB_ACTION_PAUSE) {
            rc = do_pause(s, id, st, err);
        } else if (action == JOB_ACTION_RESUME) {
            rc = do_resume(s, id, st, err);
        } else {
            service_error(err, 400, "bad_request", NULL, "unknown action");
            rc = -1;
        }
        job_row_free(&row);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) return NULL;
    service_wake(s);
    return service_get_job(s, id, 0, err);
}

cJSON *service_set_priority(Service *s, int64_t id, int priority, ServiceError *err)
{
    char msg[512];
    if (priority < -1000000 || priority > 1000000) {
        service_error(err, 400, "bad_request", "priority", "priority must be between -1000000 "
                      "and 1000000, got %d", priority);
        return NULL;
    }
    /* Under the jobs lock, like the other actions: the state checked is the state changed. */
    pthread_mutex_lock(&s->mu);
    JobRow row;
    if (service_read_job(s, id, &row, err) != 0) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    JobState st;
    int finished = job_state_parse(row.state, &st) == 0 && job_state_is_finished(st);
    if (finished) /* docs/mocod-api.md: priority applies to any state not finished */
        service_error(err, 409, "conflict", NULL, "job %lld is %s; priority orders jobs that "
                      "have not finished", (long long)id, row.state);
    job_row_free(&row);
    int rc = 0;
    if (!finished) {
        sqlite3 *c = db_write_begin(s->db);
        rc = db_job_set_priority(c, id, priority, msg, sizeof msg);
        db_write_end(s->db);
        if (rc != 0) service_error(err, 500, "internal", NULL, "%s", msg);
    }
    pthread_mutex_unlock(&s->mu);
    if (finished || rc != 0) return NULL;
    service_wake(s);
    return service_get_job(s, id, 0, err);
}

/* nftw callback: removes each entry, children first; never follows a symlink (FTW_PHYS), so
 * a link inside the job folder cannot make mocod delete what it points to. */
static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = type == FTW_DP ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT) return -1;
    return 0;
}

int service_delete_job(Service *s, int64_t id, ServiceError *err)
{
    char dir[DAEMON_PATH_MAX + 64], msg[512];
    pthread_mutex_lock(&s->mu);
    JobRow row;
    int rc = service_read_job(s, id, &row, err);
    if (rc == 0) {
        JobState st;
        if (job_state_parse(row.state, &st) != 0 || !job_state_is_finished(st)) {
            service_error(err, 409, "conflict", NULL, "job %lld is %s; only a completed, failed "
                          "or canceled job can be deleted (cancel it first)", (long long)id,
                          row.state);
            rc = -1;
        }
        job_row_free(&row);
    }
    if (rc == 0 && service_job_path(s, id, "", dir, sizeof dir) != 0) {
        service_error(err, 500, "internal", NULL, "state directory path too long");
        rc = -1;
    }
    /* The folder first: if removing it fails half-way, the job (and a retry) remain. */
    if (rc == 0 && access(dir, F_OK) == 0 &&
        nftw(dir, remove_entry, 16, FTW_PHYS | FTW_DEPTH | FTW_MOUNT) != 0) {
        service_error(err, 500, "internal", NULL, "cannot remove %s: %s; remove it by hand and "
                      "delete the job again", dir, strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        sqlite3 *c = db_write_begin(s->db);
        int d = db_job_delete(c, id, msg, sizeof msg);
        db_write_end(s->db);
        if (d < 0) {
            service_error(err, 500, "internal", NULL, "%s", msg);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) fprintf(stderr, "mocod: job %lld: deleted\n", (long long)id);
    return rc;
}

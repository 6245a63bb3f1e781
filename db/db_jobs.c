/* db_jobs.c — the jobs and transitions tables; see db_jobs.h. */
#include "db/db_jobs.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

#define JOB_COLUMNS                                                                          \
    "id, name, kind, state, priority, spec, created_at, started_at, finished_at, not_before, " \
    "after_job, restarts, max_restarts, reason, gpus_needed, gpus, pid, step, total_steps, "   \
    "steps_per_epoch, epoch, epochs, images_per_s, eta_s, last_metrics"

void job_row_free(JobRow *r)
{
    if (!r) return;
    free(r->name);
    free(r->spec);
    free(r->reason);
    free(r->gpus);
    free(r->last_metrics);
    memset(r, 0, sizeof *r);
}

static void copy_text(sqlite3_stmt *st, int col, char *buf, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(buf, n, "%s", t ? (const char *)t : "");
}

/* Reads a row selected with JOB_COLUMNS. 0, or -1 when memory runs out. */
static int read_row(sqlite3_stmt *st, JobRow *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->name = db_column_strdup(st, 1);
    copy_text(st, 2, r->kind, sizeof r->kind);
    copy_text(st, 3, r->state, sizeof r->state);
    r->priority = sqlite3_column_int(st, 4);
    r->spec = db_column_strdup(st, 5);
    r->created_at = db_column_real_or(st, 6, NAN);
    r->started_at = db_column_real_or(st, 7, NAN);
    r->finished_at = db_column_real_or(st, 8, NAN);
    r->not_before = db_column_real_or(st, 9, NAN);
    r->after = db_column_int_or(st, 10, 0);
    r->restarts = sqlite3_column_int(st, 11);
    r->max_restarts = sqlite3_column_int(st, 12);
    r->reason = db_column_strdup(st, 13);
    r->gpus_needed = sqlite3_column_int(st, 14);
    r->gpus = db_column_strdup(st, 15);
    r->pid = db_column_int_or(st, 16, 0);
    r->step = db_column_int_or(st, 17, 0);
    r->total_steps = db_column_int_or(st, 18, -1);
    r->steps_per_epoch = db_column_int_or(st, 19, -1);
    r->epoch = (int)db_column_int_or(st, 20, 0);
    r->epochs = (int)db_column_int_or(st, 21, -1);
    r->images_per_s = db_column_real_or(st, 22, NAN);
    r->eta_s = db_column_real_or(st, 23, NAN);
    r->last_metrics = db_column_strdup(st, 24);
    if (!r->name || !r->spec || !r->reason || !r->gpus || !r->last_metrics) {
        job_row_free(r);
        snprintf(err, errlen, "out of memory reading a job");
        return -1;
    }
    return 0;
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double x)
{
    if (isnan(x))
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, x);
}

/* Steps a statement that returns no rows and finalizes it. 0 or -1. */
static int step_done(sqlite3 *c, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_fail(c, what, err, errlen);
    return 0;
}

static int insert_transition(sqlite3 *c, int64_t id, const char *from, const char *to,
                             const char *reason, double ts, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "INSERT INTO transitions (job, from_state, to_state, reason, ts) "
                   "VALUES (?, ?, ?, ?, ?)", &st, "record a transition", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    if (from)
        sqlite3_bind_text(st, 2, from, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, to, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, reason ? reason : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 5, ts);
    return step_done(c, st, "record a transition", err, errlen);
}

int db_job_insert(sqlite3 *c, JobRow *r, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "INSERT INTO jobs (name, kind, state, priority, spec, created_at, "
                   "not_before, after_job, max_restarts, reason, gpus_needed, epochs) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, "insert a job", err,
                   errlen) != 0)
        return -1;
    sqlite3_bind_text(st, 1, r->name ? r->name : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, r->state, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, r->priority);
    sqlite3_bind_text(st, 5, r->spec ? r->spec : "{}", -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 6, r->created_at);
    bind_real_or_null(st, 7, r->not_before);
    if (r->after > 0)
        sqlite3_bind_int64(st, 8, r->after);
    else
        sqlite3_bind_null(st, 8);
    sqlite3_bind_int(st, 9, r->max_restarts);
    sqlite3_bind_text(st, 10, r->reason ? r->reason : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 11, r->gpus_needed);
    if (r->epochs >= 0)
        sqlite3_bind_int(st, 12, r->epochs);
    else
        sqlite3_bind_null(st, 12);
    if (step_done(c, st, "insert a job", err, errlen) != 0) return -1;
    r->id = sqlite3_last_insert_rowid(c);
    return insert_transition(c, r->id, NULL, r->state, r->reason, r->created_at, err, errlen);
}

int db_job_set_spec(sqlite3 *c, int64_t id, const char *name, const char *spec, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "UPDATE jobs SET name = ?, spec = ? WHERE id = ?", &st, "store a job spec",
                   err, errlen) != 0)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, spec, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, id);
    return step_done(c, st, "store a job spec", err, errlen);
}

int db_job_get(sqlite3 *c, int64_t id, JobRow *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?", &st, "read a job", err,
                   errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW)
        ret = read_row(st, out, err, errlen);
    else if (rc == SQLITE_DONE)
        ret = 1;
    else
        ret = db_fail(c, "read a job", err, errlen);
    sqlite3_finalize(st);
    return ret;
}

int db_jobs_list(sqlite3 *c, const char *const *states, int n_states, DbJobOrder order,
                 int64_t before_id, int limit, JobRow **rows, int *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    /* The state list is bound as parameters: "?, ?, ?" for n_states (a handful at most). */
    char sql[1024];
    size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT " JOB_COLUMNS " FROM jobs WHERE 1");
    if (n_states > 0) {
        if (n_states > 32) {
            snprintf(err, errlen, "too many states in the filter (%d)", n_states);
            return -1;
        }
        len += (size_t)snprintf(sql + len, sizeof sql - len, " AND state IN (");
        for (int i = 0; i < n_states; i++)
            len += (size_t)snprintf(sql + len, sizeof sql - len, i ? ", ?" : "?");
        len += (size_t)snprintf(sql + len, sizeof sql - len, ")");
    }
    if (order == DB_ORDER_NEWEST && before_id > 0)
        len += (size_t)snprintf(sql + len, sizeof sql - len, " AND id < ?");
    snprintf(sql + len, sizeof sql - len, "%s LIMIT ?",
             order == DB_ORDER_NEWEST ? " ORDER BY id DESC" : " ORDER BY priority DESC, id ASC");
    sqlite3_stmt *st;
    if (db_prepare(c, sql, &st, "list jobs", err, errlen) != 0) return -1;
    int p = 1;
    for (int i = 0; i < n_states; i++) sqlite3_bind_text(st, p++, states[i], -1, SQLITE_TRANSIENT);
    if (order == DB_ORDER_NEWEST && before_id > 0) sqlite3_bind_int64(st, p++, before_id);
    sqlite3_bind_int64(st, p, limit > 0 ? limit : -1);

    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            JobRow *grown = realloc(*rows, (size_t)cap * sizeof **rows);
            if (!grown) {
                snprintf(err, errlen, "out of memory listing jobs");
                goto fail;
            }
            *rows = grown;
        }
        if (read_row(st, &(*rows)[*n], err, errlen) != 0) goto fail;
        (*n)++;
    }
    if (rc != SQLITE_DONE) {
        db_fail(c, "list jobs", err, errlen);
        goto fail;
    }
    sqlite3_finalize(st);
    return 0;
fail:
    sqlite3_finalize(st);
    for (int i = 0; i < *n; i++) job_row_free(&(*rows)[i]);
    free(*rows);
    *rows = NULL;
    *n = 0;
    return -1;
}

int db_jobs_count_by_state(sqlite3 *c, cJSON *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT state, COUNT(*) FROM jobs GROUP BY state", &st, "count jobs",
                   err, errlen) != 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        if (!cJSON_AddNumberToObject(out, state ? state : "?", sqlite3_column_int(st, 1))) {
            sqlite3_finalize(st);
            snprintf(err, errlen, "out of memory counting jobs");
            return -1;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_fail(c, "count jobs", err, errlen);
    return 0;
}

int db_job_change_state(sqlite3 *c, int64_t id, const char *to, const char *reason,
                        const DbStateUpdate *u, int (*allowed)(const char *from, const char *to),
                        char *from, int *restarts_after, char *err, size_t errlen)
{
    static const DbStateUpdate none = {0};
    if (!u) u = &none;
    if (db_begin(c, err, errlen) != 0) return -1;
    sqlite3_stmt *st;
    int ret = -1;
    if (db_prepare(c, "SELECT state FROM jobs WHERE id = ?", &st, "read a job's state", err,
                   errlen) != 0)
        goto out;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) copy_text(st, 0, from, 16);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) {
        ret = 1;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        db_fail(c, "read a job's state", err, errlen);
        goto out;
    }
    if (!allowed(from, to)) {
        ret = 2;
        goto out;
    }
    double now = db_now();
    if (db_prepare(c,
                   "UPDATE jobs SET state = ?1, reason = ?2,"
                   " restarts = CASE WHEN ?3 THEN 0 ELSE restarts END + ?4,"
                   " started_at = CASE WHEN ?5 AND started_at IS NULL THEN ?6 ELSE started_at END,"
                   " finished_at = CASE WHEN ?7 THEN ?6 WHEN ?8 THEN NULL ELSE finished_at END,"
                   " pid = CASE WHEN ?9 THEN NULL ELSE pid END,"
                   " gpus = CASE WHEN ?9 THEN '[]' ELSE gpus END,"
                   " images_per_s = CASE WHEN ?9 THEN NULL ELSE images_per_s END,"
                   " eta_s = CASE WHEN ?9 THEN NULL ELSE eta_s END"
                   " WHERE id = ?10 RETURNING restarts",
                   &st, "change a job's state", err, errlen) != 0)
        goto out;
    sqlite3_bind_text(st, 1, to, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, reason ? reason : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, u->reset_restarts);
    sqlite3_bind_int(st, 4, u->restart_delta);
    sqlite3_bind_int(st, 5, u->set_started);
    sqlite3_bind_double(st, 6, now);
    sqlite3_bind_int(st, 7, u->set_finished);
    sqlite3_bind_int(st, 8, u->clear_finished);
    sqlite3_bind_int(st, 9, u->clear_worker);
    sqlite3_bind_int64(st, 10, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && restarts_after) *restarts_after = sqlite3_column_int(st, 0);
    if (rc == SQLITE_ROW) rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        db_fail(c, "change a job's state", err, errlen);
        goto out;
    }
    if (insert_transition(c, id, from, to, reason, now, err, errlen) != 0 ||
        db_commit(c, err, errlen) != 0)
        goto out;
    return 0;
out:
    db_rollback(c);
    return ret;
}

int db_job_transitions(sqlite3 *c, int64_t id, cJSON *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT from_state, to_state, ts, reason FROM transitions WHERE job = ? "
                   "ORDER BY id", &st, "read a job's transitions", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *t = cJSON_CreateObject();
        const char *from = (const char *)sqlite3_column_text(st, 0);
        const char *to = (const char *)sqlite3_column_text(st, 1);
        const char *reason = (const char *)sqlite3_column_text(st, 3);
        int ok = t && cJSON_AddItemToArray(out, t) &&
                 (from ? cJSON_AddStringToObject(t, "from", from) != NULL
                       : cJSON_AddNullToObject(t, "from") != NULL) &&
                 cJSON_AddStringToObject(t, "to", to ? to : "") &&
                 cJSON_AddNumberToObject(t, "ts", sqlite3_column_double(st, 2)) &&
                 cJSON_AddStringToObject(t, "reason", reason ? reason : "");
        if (!ok) {
            sqlite3_finalize(st);
            snprintf(err, errlen, "out of memory reading transitions");
            return -1;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_fail(c, "read a job's transitions", err, errlen);
    return 0;
}

int db_job_set_priority(sqlite3 *c, int64_t id, int priority, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "UPDATE jobs SET priority = ? WHERE id = ?", &st, "set a job's priority",
                   err, errlen) != 0)
        return -1;
    sqlite3_bind_int(st, 1, priority);
    sqlite3_bind_int64(st, 2, id);
    return step_done(c, st, "set a job's priority", err, errlen);
}

int db_job_set_worker(sqlite3 *c, int64_t id, int64_t pid, const char *gpus_json, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "UPDATE jobs SET pid = ?, gpus = ? WHERE id = ?", &st,
                   "record a job's worker", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, pid);
    sqlite3_bind_text(st, 2, gpus_json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, id);
    return step_done(c, st, "record a job's worker", err, errlen);
}

int db_job_set_start(sqlite3 *c, int64_t id, int64_t step, int64_t total_steps,
                     int64_t steps_per_epoch, int epoch, int epochs, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "UPDATE jobs SET step = ?, total_steps = ?, steps_per_epoch = ?, "
                   "epoch = ?, epochs = CASE WHEN ? >= 0 THEN ? ELSE epochs END WHERE id = ?",
                   &st, "record a job's start", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, step);
    if (total_steps >= 0)
        sqlite3_bind_int64(st, 2, total_steps);
    else
        sqlite3_bind_null(st, 2);
    if (steps_per_epoch >= 0)
        sqlite3_bind_int64(st, 3, steps_per_epoch);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int(st, 4, epoch);
    sqlite3_bind_int(st, 5, epochs);
    sqlite3_bind_int(st, 6, epochs);
    sqlite3_bind_int64(st, 7, id);
    return step_done(c, st, "record a job's start", err, errlen);
}

int db_job_set_progress(sqlite3 *c, int64_t id, int64_t step, int epoch, double images_per_s,
                        double eta_s, const char *last_metrics, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "UPDATE jobs SET step = ?1, epoch = ?2,"
                   " images_per_s = COALESCE(?3, images_per_s), eta_s = COALESCE(?4, eta_s),"
                   " last_metrics = COALESCE(?5, last_metrics) WHERE id = ?6",
                   &st, "record a job's progress", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, step);
    sqlite3_bind_int(st, 2, epoch);
    bind_real_or_null(st, 3, images_per_s);
    bind_real_or_null(st, 4, eta_s);
    if (last_metrics)
        sqlite3_bind_text(st, 5, last_metrics, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, id);
    return step_done(c, st, "record a job's progress", err, errlen);
}

int db_job_set_events_offset(sqlite3 *c, int64_t id, int64_t offset, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "UPDATE jobs SET events_offset = ? WHERE id = ?", &st,
                   "record the events offset", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, offset);
    sqlite3_bind_int64(st, 2, id);
    return step_done(c, st, "record the events offset", err, errlen);
}

int64_t db_job_events_offset(sqlite3 *c, int64_t id, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT events_offset FROM jobs WHERE id = ?", &st,
                   "read the events offset", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int64_t off = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        off = sqlite3_column_int64(st, 0);
    else
        db_fail(c, "read the events offset", err, errlen);
    sqlite3_finalize(st);
    return off;
}

int db_job_delete(sqlite3 *c, int64_t id, char *err, size_t errlen)
{
    static const char *const sql[] = {
        "DELETE FROM metrics WHERE job = ?",
        "DELETE FROM checkpoints WHERE job = ?",
        "DELETE FROM transitions WHERE job = ?",
        "DELETE FROM jobs WHERE id = ?",
    };
    if (db_begin(c, err, errlen) != 0) return -1;
    int deleted = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st;
        if (db_prepare(c, sql[i], &st, "delete a job", err, errlen) != 0) goto fail;
        sqlite3_bind_int64(st, 1, id);
        if (step_done(c, st, "delete a job", err, errlen) != 0) goto fail;
        deleted = sqlite3_changes(c);
    }
    if (db_commit(c, err, errlen) != 0) goto fail;
    return deleted ? 0 : 1;
fail:
    db_rollback(c);
    return -1;
}

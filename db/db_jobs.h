/* db_jobs.h — the jobs table and its transitions history.
 *
 * Functions take a connection: the writer (between db_write_begin/end, inside a transaction
 * where several statements must land together) or a reader. States are stored as their names;
 * which transitions are legal is the caller's business (daemon/job_state.c), passed in as a
 * predicate so that the check and the write share one transaction.
 */
#ifndef MOCOD_DB_JOBS_H
#define MOCOD_DB_JOBS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;

/* One row of jobs. Text fields are malloc'd (job_row_free); NAN means NULL for times and
 * rates, 0 for after/pid, -1 for total_steps/steps_per_epoch/epochs. */
typedef struct {
    int64_t id;
    char *name;
    char kind[16];
    char state[16];
    int priority;
    char *spec;          /* resolved spec, JSON */
    double created_at, started_at, finished_at, not_before;
    int64_t after;
    int restarts, max_restarts;
    char *reason;
    int gpus_needed;
    char *gpus;          /* JSON array of device indices */
    int64_t pid;
    int64_t step, total_steps, steps_per_epoch;
    int epoch, epochs;
    double images_per_s, eta_s;
    char *last_metrics;  /* JSON object */
} JobRow;

void job_row_free(JobRow *r);

/* Inserts a new job (state from r->state) and its first transitions row (from NULL);
 * r->id receives the id. Call inside a transaction. 0 or -1. */
int db_job_insert(sqlite3 *c, JobRow *r, char *err, size_t errlen);
/* Replaces name and spec (the submission stores them once the id, and so the job folder and
 * the default name, are known). */
int db_job_set_spec(sqlite3 *c, int64_t id, const char *name, const char *spec, char *err,
                    size_t errlen);

/* 0 found, 1 no such job, -1 error. */
int db_job_get(sqlite3 *c, int64_t id, JobRow *out, char *err, size_t errlen);

/* Jobs in any of the given states (all when n_states is 0). order: DB_ORDER_NEWEST (id
 * descending, only ids < before_id when before_id > 0) or DB_ORDER_START (priority
 * descending, then id: the order the scheduler starts them). limit <= 0: no limit.
 * *rows is malloc'd (free each with job_row_free, then the array). 0 or -1. */
typedef enum { DB_ORDER_NEWEST, DB_ORDER_START } DbJobOrder;
int db_jobs_list(sqlite3 *c, const char *const *states, int n_states, DbJobOrder order,
                 int64_t before_id, int limit, JobRow **rows, int *n, char *err, size_t errlen);
/* Number of jobs per state name, into a cJSON object {"queued": 2, ...} (missing = 0). */
int db_jobs_count_by_state(sqlite3 *c, cJSON *out, char *err, size_t errlen);

/* What a state change writes besides the state, in the same transaction. */
typedef struct {
    int restart_delta;    /* added to restarts */
    int reset_restarts;   /* restarts = 0 first (a failed job resumed by hand) */
    int set_started;      /* started_at = now when it is NULL */
    int set_finished;     /* finished_at = now */
    int clear_finished;   /* finished_at = NULL */
    int clear_worker;     /* pid = NULL, gpus = [], images_per_s and eta_s = NULL */
} DbStateUpdate;

/* Validates and applies a state change in one transaction on the writer connection c: reads
 * the job's state, asks allowed(from, to), writes state, reason and the update, and a
 * transitions row. from (16 bytes) receives the old state. Returns 0, 1 when the job does
 * not exist, 2 when allowed() said no (nothing written), -1 on error. */
int db_job_change_state(sqlite3 *c, int64_t id, const char *to, const char *reason,
                        const DbStateUpdate *u, int (*allowed)(const char *from, const char *to),
                        char *from, int *restarts_after, char *err, size_t errlen);

/* The job's transitions as [{"from", "to", "ts", "reason"}] in order, into out (an array). */
int db_job_transitions(sqlite3 *c, int64_t id, cJSON *out, char *err, size_t errlen);

int db_job_set_priority(sqlite3 *c, int64_t id, int priority, char *err, size_t errlen);
/* Records the worker just started: pid and device indices (JSON array text). */
int db_job_set_worker(sqlite3 *c, int64_t id, int64_t pid, const char *gpus_json, char *err,
                      size_t errlen);
/* Live progress from a worker's `start` event. epochs < 0 leaves it. */
int db_job_set_start(sqlite3 *c, int64_t id, int64_t step, int64_t total_steps,
                     int64_t steps_per_epoch, int epoch, int epochs, char *err, size_t errlen);
/* Live progress from a `metric` or `eval` event. images_per_s/eta_s NAN leave them. */
int db_job_set_progress(sqlite3 *c, int64_t id, int64_t step, int epoch, double images_per_s,
                        double eta_s, const char *last_metrics, char *err, size_t errlen);
/* Records how far the job's events file has been applied (inside the transaction that
 * applied the event, so an event is applied exactly once across crashes). */
int db_job_set_events_offset(sqlite3 *c, int64_t id, int64_t offset, char *err, size_t errlen);
/* The recorded offset, or -1 with err. */
int64_t db_job_events_offset(sqlite3 *c, int64_t id, char *err, size_t errlen);
/* Deletes the job and everything recorded about it (one transaction). 0, 1 not found, -1. */
int db_job_delete(sqlite3 *c, int64_t id, char *err, size_t errlen);

#endif

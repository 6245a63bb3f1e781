/* scheduler.c — which queued jobs start now (DESIGN §5, "Scheduling").
 *
 * Queued jobs are considered in start order: priority descending, then submission (id). A job
 * waits while its not_before lies ahead or the job it runs `after` has not completed; if that
 * job ended failed or canceled (or was deleted), this one fails saying so. CPU jobs
 * (resources.gpus 0) take one of cfg.cpu_slots, also with several ranks: a slot is a job's
 * share of the machine, and a job's ranks split the cores one single-rank job would use
 * (moco-train gives each of R local ranks 1/R of them), so R ranks load the machine as one
 * job does; taking R slots would also leave a 2-rank job unable ever to start under the
 * default cpu_slots 1. GPU jobs take that many free device indices (one rank each), never
 * shared. Within each pool the order is strict: once the first job that is ready cannot
 * be placed, later jobs of the same pool wait too (no small job overtakes a big one forever).
 */
#include "daemon/service_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail_job(Service *s, const JobRow *r, const char *reason)
{
    char err[1024];
    if (job_transition(s->db, s->bus, r->id, JOB_FAILED, reason, NULL, NULL, NULL, err,
                       sizeof err) < 0)
        fprintf(stderr, "mocod: job %lld: %s\n", (long long)r->id, err);
}

/* 1 when the job's `after` is satisfied, 0 while it waits, -1 when it failed the job. */
static int dependency_ready(Service *s, sqlite3 *c, const JobRow *r)
{
    if (r->after <= 0) return 1;
    JobRow dep;
    char err[512], reason[1536];
    int rc = db_job_get(c, r->after, &dep, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "mocod: job %lld: cannot read job %lld it waits for: %s\n",
                (long long)r->id, (long long)r->after, err);
        return 0;
    }
    if (rc == 1) {
        snprintf(reason, sizeof reason, "job %lld, which this job runs after, was deleted",
                 (long long)r->after);
        fail_job(s, r, reason);
        return -1;
    }
    int ready = 0;
    if (strcmp(dep.state, "completed") == 0) {
        ready = 1;
    } else if (strcmp(dep.state, "failed") == 0 || strcmp(dep.state, "canceled") == 0) {
        snprintf(reason, sizeof reason, "job %lld, which this job runs after, ended %s%s%.1000s",
                 (long long)r->after, dep.state, dep.reason[0] ? ": " : "", dep.reason);
        fail_job(s, r, reason);
        ready = -1;
    }
    job_row_free(&dep);
    return ready;
}

/* Fills idx with n free GPU indices (lowest first). 1 when there are enough. */
static int free_gpus(const Service *s, int n, int *idx)
{
    int found = 0;
    for (int g = 0; g < s->cfg.gpus && found < n; g++)
        if (s->gpu_owner[g] == 0) idx[found++] = g;
    return found == n;
}

void scheduler_run(Service *s, double *next_wake)
{
    char err[512];
    sqlite3 *c = db_read_begin(s->db, err, sizeof err);
    if (!c) {
        fprintf(stderr, "mocod: scheduler: %s\n", err);
        return;
    }
    static const char *const queued[] = {"queued"};
    JobRow *rows;
    int n;
    if (db_jobs_list(c, queued, 1, DB_ORDER_START, 0, 0, &rows, &n, err, sizeof err) != 0) {
        fprintf(stderr, "mocod: scheduler: %s\n", err);
        db_read_end(s->db, c);
        return;
    }
    double wall = db_now(), mono = monotonic_now();
    int cpu_blocked = 0, gpu_blocked = 0;
    for (int i = 0; i < n; i++) {
        JobRow *r = &rows[i];
        if (!isnan(r->not_before) && r->not_before > wall) {
            double at = mono + (r->not_before - wall);
            if (at < *next_wake) *next_wake = at;
            continue;
        }
        if (dependency_ready(s, c, r) != 1) continue;
        if (r->gpus_needed <= 0) {
            if (cpu_blocked || s->cpu_used >= s->cfg.cpu_slots) {
                cpu_blocked = 1;
                continue;
            }
            launch_job(s, r, NULL, 0);
            continue;
        }
        if (r->gpus_needed > s->cfg.gpus || r->gpus_needed > WORKER_MAX_GPUS) {
            char reason[256];
            snprintf(reason, sizeof reason, "the job needs %d GPUs (resources.gpus) but this "
                     "machine offers %d (mocod's gpus setting)", r->gpus_needed, s->cfg.gpus);
            fail_job(s, r, reason);
            continue;
        }
        int idx[WORKER_MAX_GPUS];
        if (gpu_blocked || !free_gpus(s, r->gpus_needed, idx)) {
            gpu_blocked = 1;
            continue;
        }
        launch_job(s, r, idx, r->gpus_needed);
    }
    for (int i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);
    db_read_end(s->db, c);
}

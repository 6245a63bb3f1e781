/* test_mocod_store.c — mocod's SQLite store and state machine on a real database file in a
 * temporary folder: migrations (from empty, idempotent reopen, a newer schema refused), the
 * transition table against the documented diagram (every pair of states), job_transition's
 * single transaction and its `state` event, the metrics primary key, paging, downsampling,
 * trimming after a resume, the checkpoint cache, the event bus (filters, lag), the
 * worker-exit rules and RFC 3339 times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/event_bus.h"
#include "daemon/job_state.h"
#include "daemon/service_internal.h"
#include "daemon/worker_exit.h"
#include "db/db.h"
#include "db/db_checkpoints.h"
#include "db/db_jobs.h"
#include "db/db_metrics.h"
#include "db/db_migrate.h"

/* This cmocka has only a float comparison; times and means need doubles. */
#define assert_double_equal(a, b, eps) check_double((a), (b), (eps), __FILE__, __LINE__)
static void check_double(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) fail_msg("%s:%d: %.17g != %.17g (tolerance %g)", file, line, a, b, eps);
}

static char tmpdir[256];
static char db_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mocod_test_store_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(db_path, sizeof db_path, "%s/mocod.db", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static Db *open_db(void)
{
    char err[1024];
    Db *db = db_open(db_path, err, sizeof err);
    if (!db) fail_msg("db_open: %s", err);
    return db;
}

static int64_t add_job(Db *db, const char *state)
{
    char err[512];
    JobRow r;
    memset(&r, 0, sizeof r);
    r.name = "t";
    snprintf(r.kind, sizeof r.kind, "pretrain");
    snprintf(r.state, sizeof r.state, "%s", state);
    r.spec = "{}";
    r.created_at = db_now();
    r.not_before = NAN;
    r.max_restarts = 3;
    r.reason = "";
    r.epochs = 2;
    sqlite3 *c = db_write_begin(db);
    int rc = db_begin(c, err, sizeof err);
    if (rc == 0) rc = db_job_insert(c, &r, err, sizeof err);
    if (rc == 0) rc = db_commit(c, err, sizeof err);
    db_write_end(db);
    if (rc != 0) fail_msg("insert: %s", err);
    return r.id;
}

static void read_job(Db *db, int64_t id, JobRow *row)
{
    char err[512];
    sqlite3 *c = db_read_begin(db, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(db_job_get(c, id, row, err, sizeof err), 0);
    db_read_end(db, c);
}

static int count_rows(Db *db, const char *sql)
{
    char err[512];
    sqlite3 *c = db_read_begin(db, err, sizeof err);
    sqlite3_stmt *st;
    assert_int_equal(db_prepare(c, sql, &st, "count", err, sizeof err), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    db_read_end(db, c);
    return n;
}

/* ---- migrations ------------------------------------------------------------------------ */

static void test_migrate_from_empty(void **state)
{
    (void)state;
    Db *db = open_db();
    char err[256];
    sqlite3 *c = db_read_begin(db, err, sizeof err);
    assert_int_equal(db_user_version(c, err, sizeof err), db_schema_version());
    assert_true(db_schema_version() >= 1);
    /* WAL mode, and every table there */
    sqlite3_stmt *st;
    assert_int_equal(db_prepare(c, "PRAGMA journal_mode", &st, "mode", err, sizeof err), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    db_read_end(db, c);
    assert_int_equal(count_rows(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                                    "name IN ('jobs', 'transitions', 'metrics', 'checkpoints')"), 4);
    db_close(db);
}

static void test_reopen_is_idempotent(void **state)
{
    (void)state;
    Db *db = open_db();
    int64_t id = add_job(db, "queued");
    db_close(db);
    db = open_db(); /* no migration runs twice: the job survives, the version stays */
    JobRow row;
    read_job(db, id, &row);
    assert_string_equal(row.state, "queued");
    job_row_free(&row);
    char err[256];
    sqlite3 *c = db_read_begin(db, err, sizeof err);
    assert_int_equal(db_user_version(c, err, sizeof err), db_schema_version());
    db_read_end(db, c);
    assert_int_equal(count_rows(db, "SELECT COUNT(*) FROM jobs"), 1);
    db_close(db);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    Db *db = open_db();
    db_close(db);
    sqlite3 *c;
    assert_int_equal(sqlite3_open(db_path, &c), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", db_schema_version() + 1);
    assert_int_equal(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
    char err[1024];
    assert_null(db_open(db_path, err, sizeof err));
    assert_non_null(strstr(err, "newer mocod"));
    assert_non_null(strstr(err, db_path));
}

static void test_not_a_database_refused(void **state)
{
    (void)state;
    FILE *f = fopen(db_path, "w");
    assert_non_null(f);
    fputs("this is not a database, just text that happens to be long enough to have a header", f);
    fclose(f);
    char err[1024];
    assert_null(db_open(db_path, err, sizeof err));
    assert_true(strlen(err) > 0);
}

/* ---- the state machine ------------------------------------------------------------------ */

/* The documented diagram (docs/mocod-api.md, DESIGN §5) plus the edges job_state.c lists with
 * their reasons, written out independently of the table under test. */
static const char *const legal[] = {
    "queued>starting", "queued>canceling", "queued>paused", "queued>failed",
    "starting>running", "starting>pausing", "starting>canceling", "starting>queued",
    "starting>failed", "starting>completed", "starting>paused",
    "running>completed", "running>failed", "running>pausing", "running>canceling",
    "running>queued", "running>paused",
    "pausing>paused", "pausing>canceling", "pausing>failed", "pausing>completed",
    "paused>queued", "paused>canceling",
    "canceling>canceled",
    "failed>queued",
};

static int is_legal(JobState a, JobState b)
{
    char edge[64];
    snprintf(edge, sizeof edge, "%s>%s", job_state_name(a), job_state_name(b));
    for (size_t i = 0; i < sizeof legal / sizeof legal[0]; i++)
        if (strcmp(legal[i], edge) == 0) return 1;
    return 0;
}

static void test_transition_table(void **state)
{
    (void)state;
    int n_legal = 0;
    for (int a = 0; a < JOB_STATE_COUNT; a++)
        for (int b = 0; b < JOB_STATE_COUNT; b++) {
            int want = is_legal((JobState)a, (JobState)b);
            n_legal += want;
            if (job_state_allowed((JobState)a, (JobState)b) != want)
                fail_msg("%s -> %s: table says %d, diagram says %d", job_state_name((JobState)a),
                         job_state_name((JobState)b), !want, want);
        }
    assert_int_equal(n_legal, (int)(sizeof legal / sizeof legal[0]));
    /* finished states are final except failed (resume) */
    for (int b = 0; b < JOB_STATE_COUNT; b++) {
        assert_false(job_state_allowed(JOB_COMPLETED, (JobState)b));
        assert_false(job_state_allowed(JOB_CANCELED, (JobState)b));
    }
    JobState s;
    assert_int_equal(job_state_parse("pausing", &s), 0);
    assert_int_equal(s, JOB_PAUSING);
    assert_int_equal(job_state_parse("done", &s), -1);
}

/* Every legal edge applied through job_transition on a real row, every illegal one refused
 * with nothing written. */
static void test_job_transition_every_pair(void **state)
{
    (void)state;
    Db *db = open_db();
    char err[512];
    for (int a = 0; a < JOB_STATE_COUNT; a++)
        for (int b = 0; b < JOB_STATE_COUNT; b++) {
            int64_t id = add_job(db, job_state_name((JobState)a));
            JobState from;
            int rc = job_transition(db, NULL, id, (JobState)b, "why", NULL, &from, NULL, err,
                                    sizeof err);
            JobRow row;
            read_job(db, id, &row);
            char sql[128];
            snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM transitions WHERE job = %lld",
                     (long long)id);
            if (is_legal((JobState)a, (JobState)b)) {
                assert_int_equal(rc, JOB_TRANSITION_OK);
                assert_int_equal(from, a);
                assert_string_equal(row.state, job_state_name((JobState)b));
                assert_string_equal(row.reason, "why");
                assert_int_equal(count_rows(db, sql), 2); /* submission + this one */
            } else {
                assert_int_equal(rc, JOB_TRANSITION_ILLEGAL);
                assert_string_equal(row.state, job_state_name((JobState)a));
                assert_int_equal(count_rows(db, sql), 1);
                assert_non_null(strstr(err, job_state_name((JobState)a)));
            }
            job_row_free(&row);
        }
    assert_int_equal(job_transition(db, NULL, 99999, JOB_STARTING, "", NULL, NULL, NULL, err,
                                    sizeof err),
                     JOB_TRANSITION_NOT_FOUND);
    db_close(db);
}

/* A run through the life of a job: times, restarts, worker fields, history and events. */
static void test_job_transition_side_effects(void **state)
{
    (void)state;
    Db *db = open_db();
    EventBus *bus = event_bus_new();
    EventSub *sub = event_bus_subscribe(bus, 0);
    char err[512];
    int64_t id = add_job(db, "queued");
    assert_int_equal(job_transition(db, bus, id, JOB_STARTING, "", NULL, NULL, NULL, err, sizeof err), 0);
    sqlite3 *c = db_write_begin(db);
    assert_int_equal(db_job_set_worker(c, id, 4242, "[0,1]", err, sizeof err), 0);
    db_write_end(db);
    assert_int_equal(job_transition(db, bus, id, JOB_RUNNING, "", NULL, NULL, NULL, err, sizeof err), 0);
    JobRow row;
    read_job(db, id, &row);
    double started = row.started_at;
    assert_false(isnan(started));
    assert_int_equal(row.pid, 4242);
    assert_string_equal(row.gpus, "[0,1]");
    job_row_free(&row);

    JobTransitionExtra retry = {1, 0};
    int restarts = -1;
    assert_int_equal(job_transition(db, bus, id, JOB_QUEUED, "crashed", &retry, NULL, &restarts,
                                    err, sizeof err), 0);
    assert_int_equal(restarts, 1);
    read_job(db, id, &row);
    assert_int_equal(row.pid, 0);          /* worker fields cleared */
    assert_string_equal(row.gpus, "[]");
    job_row_free(&row);
    assert_int_equal(job_transition(db, bus, id, JOB_STARTING, "", NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(job_transition(db, bus, id, JOB_RUNNING, "", NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(job_transition(db, bus, id, JOB_FAILED, "boom", NULL, NULL, NULL, err, sizeof err), 0);
    read_job(db, id, &row);
    assert_double_equal(row.started_at, started, 0); /* the first start is kept */
    assert_false(isnan(row.finished_at));
    assert_int_equal(row.restarts, 1);
    job_row_free(&row);
    JobTransitionExtra reset = {0, 1};
    assert_int_equal(job_transition(db, bus, id, JOB_QUEUED, "resumed", &reset, NULL, &restarts,
                                    err, sizeof err), 0);
    assert_int_equal(restarts, 0);
    read_job(db, id, &row);
    assert_true(isnan(row.finished_at));
    job_row_free(&row);

    cJSON *hist = cJSON_CreateArray();
    c = db_read_begin(db, err, sizeof err);
    assert_int_equal(db_job_transitions(c, id, hist, err, sizeof err), 0);
    db_read_end(db, c);
    static const char *const path[] = {"queued", "starting", "running", "queued", "starting",
                                       "running", "failed", "queued"};
    assert_int_equal(cJSON_GetArraySize(hist), 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, i), "to")->valuestring,
                            path[i]);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 0), "from")));
    cJSON_Delete(hist);

    /* one `state` event per transition, in order, with job/from/to/reason */
    for (int i = 1; i < 8; i++) {
        const char *kind;
        char *json;
        assert_int_equal(event_bus_next(sub, &kind, &json, 100), 1);
        assert_string_equal(kind, "state");
        cJSON *e = cJSON_Parse(json);
        assert_int_equal(cJSON_GetObjectItem(e, "job")->valueint, (int)id);
        assert_string_equal(cJSON_GetObjectItem(e, "from")->valuestring, path[i - 1]);
        assert_string_equal(cJSON_GetObjectItem(e, "to")->valuestring, path[i]);
        cJSON_Delete(e);
        free(json);
    }
    /* an illegal transition publishes nothing */
    assert_int_equal(job_transition(db, bus, id, JOB_COMPLETED, "", NULL, NULL, NULL, err, sizeof err),
                     JOB_TRANSITION_ILLEGAL);
    const char *kind;
    char *json;
    assert_int_equal(event_bus_next(sub, &kind, &json, 20), 0);
    event_bus_unsubscribe(sub);
    event_bus_release(bus);
    db_close(db);
}

/* ---- metrics ------------------------------------------------------------------------------ */

static void add_points(Db *db, int64_t job, const char *key, int first, int last, double scale)
{
    char err[512];
    sqlite3 *c = db_write_begin(db);
    assert_int_equal(db_begin(c, err, sizeof err), 0);
    for (int s = first; s <= last; s++) {
        double v = s * scale;
        const char *keys[1] = {key};
        assert_int_equal(db_metrics_add(c, job, s, 1000.0 + s, keys, &v, 1, err, sizeof err), 0);
    }
    assert_int_equal(db_commit(c, err, sizeof err), 0);
    db_write_end(db);
}

static void test_metrics_primary_key(void **state)
{
    (void)state;
    Db *db = open_db();
    int64_t id = add_job(db, "running");
    char err[512];
    sqlite3 *c = db_write_begin(db);
    assert_int_equal(db_metric_insert_strict(c, id, "loss", 7, 1.5, 1.0, err, sizeof err), 0);
    assert_int_equal(db_metric_insert_strict(c, id, "loss", 7, 2.5, 2.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "UNIQUE"));
    assert_int_equal(db_metric_insert_strict(c, id, "acc1", 7, 2.5, 2.0, err, sizeof err), 0);
    /* the upsert path replaces instead of duplicating */
    const char *keys[1] = {"loss"};
    double v = 9.0;
    assert_int_equal(db_metrics_add(c, id, 7, 3.0, keys, &v, 1, err, sizeof err), 0);
    db_write_end(db);
    assert_int_equal(count_rows(db, "SELECT COUNT(*) FROM metrics WHERE key = 'loss'"), 1);
    assert_int_equal(count_rows(db, "SELECT COUNT(*) FROM metrics WHERE key = 'loss' AND value = 9"), 1);
    db_close(db);
}

static void test_metrics_paging(void **state)
{
    (void)state;
    Db *db = open_db();
    int64_t id = add_job(db, "running");
    add_points(db, id, "loss", 1, 25, 1.0);
    add_points(db, id, "lr", 1, 3, 1.0);
    char err[512];
    sqlite3 *c = db_read_begin(db, err, sizeof err);
    int64_t after = 0, expect = 1;
    int pages = 0, more;
    do {
        cJSON *pts = cJSON_CreateArray();
        assert_int_equal(db_metrics_page(c, id, "loss", after, 10, pts, &more, err, sizeof err), 0);
        int n = cJSON_GetArraySize(pts);
        assert_int_equal(n, pages < 2 ? 10 : 5);
        for (int i = 0; i < n; i++) {
            cJSON *p = cJSON_GetArrayItem(pts, i);
            assert_int_equal((int64_t)cJSON_GetObjectItem(p, "step")->valuedouble, expect);
            assert_double_equal(cJSON_GetObjectItem(p, "value")->valuedouble, (double)expect, 0);
            assert_double_equal(cJSON_GetObjectItem(p, "ts")->valuedouble, 1000.0 + expect, 0);
            expect++;
        }
        after = (int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(pts, n - 1), "step")->valuedouble;
        cJSON_Delete(pts);
        pages++;
    } while (more);
    assert_int_equal(pages, 3);
    assert_int_equal(expect, 26);
    /* exactly a page's worth: no next page */
    cJSON *pts = cJSON_CreateArray();
    assert_int_equal(db_metrics_page(c, id, "loss", 15, 10, pts, &more, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(pts), 10);
    assert_int_equal(more, 0);
    cJSON_Delete(pts);
    cJSON *keys = cJSON_CreateArray();
    assert_int_equal(db_metrics_keys(c, id, keys, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(keys), 2);
    assert_string_equal(cJSON_GetArrayItem(keys, 0)->valuestring, "loss");
    assert_string_equal(cJSON_GetArrayItem(keys, 1)->valuestring, "lr");
    cJSON_Delete(keys);
    db_read_end(db, c);
    db_close(db);
}

static void test_metrics_downsample(void **state)
{
    (void)state;
    Db *db = open_db();
    int64_t id = add_job(db, "running");
    add_points(db, id, "loss", 1, 100, 1.0);
    char err[512];
    sqlite3 *c = db_read_begin(db, err, sizeof err);
    /* 100 steps into 10 buckets: steps 1-10, 11-20, ...; mean of step values, at the last step */
    cJSON *pts = cJSON_CreateArray();
    assert_int_equal(db_metrics_downsample(c, id, "loss", 0, 10, pts, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(pts), 10);
    for (int b = 0; b < 10; b++) {
        cJSON *p = cJSON_GetArrayItem(pts, b);
        assert_int_equal((int)cJSON_GetObjectItem(p, "step")->valuedouble, 10 * b + 10);
        assert_double_equal(cJSON_GetObjectItem(p, "value")->valuedouble, 10 * b + 5.5, 1e-9);
        assert_double_equal(cJSON_GetObjectItem(p, "ts")->valuedouble, 1000.0 + 10 * b + 10, 0);
    }
    cJSON_Delete(pts);
    /* since_step 50, 5 buckets over 51..100: 51-60 ... 91-100 */
    pts = cJSON_CreateArray();
    assert_int_equal(db_metrics_downsample(c, id, "loss", 50, 5, pts, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(pts), 5);
    assert_double_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 0), "value")->valuedouble, 55.5, 1e-9);
    assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 4), "step")->valuedouble, 100);
    cJSON_Delete(pts);
    /* fewer points than buckets: the points themselves */
    pts = cJSON_CreateArray();
    assert_int_equal(db_metrics_downsample(c, id, "loss", 95, 10, pts, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(pts), 5);
    assert_double_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 0), "value")->valuedouble, 96, 0);
    cJSON_Delete(pts);
    /* 7 points into 3 buckets: range [1, 7] cut at (s-1)*3/7 → {1,2,3}, {4,5}, {6,7} */
    int64_t id2 = add_job(db, "running");
    db_read_end(db, c);
    add_points(db, id2, "x", 1, 7, 1.0);
    c = db_read_begin(db, err, sizeof err);
    pts = cJSON_CreateArray();
    assert_int_equal(db_metrics_downsample(c, id2, "x", 0, 3, pts, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(pts), 3);
    static const double means[] = {2.0, 4.5, 6.5};
    static const int steps[] = {3, 5, 7};
    for (int b = 0; b < 3; b++) {
        cJSON *p = cJSON_GetArrayItem(pts, b);
        assert_double_equal(cJSON_GetObjectItem(p, "value")->valuedouble, means[b], 1e-9);
        assert_int_equal((int)cJSON_GetObjectItem(p, "step")->valuedouble, steps[b]);
    }
    cJSON_Delete(pts);
    /* a gap in the steps leaves empty buckets out: steps 1..5 and 96..100 into 10 buckets */
    int64_t id3 = add_job(db, "running");
    db_read_end(db, c);
    add_points(db, id3, "y", 1, 5, 1.0);
    add_points(db, id3, "y", 96, 100, 1.0);
    c = db_read_begin(db, err, sizeof err);
    pts = cJSON_CreateArray();
    assert_int_equal(db_metrics_downsample(c, id3, "y", 0, 8, pts, err, sizeof err), 0);
    assert_int_equal(cJSON_GetArraySize(pts), 2);
    assert_double_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 0), "value")->valuedouble, 3, 1e-9);
    assert_double_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 1), "value")->valuedouble, 98, 1e-9);
    cJSON_Delete(pts);
    db_read_end(db, c);
    db_close(db);
}

static void test_trim_after_resume(void **state)
{
    (void)state;
    Db *db = open_db();
    int64_t a = add_job(db, "running"), b = add_job(db, "running");
    add_points(db, a, "loss", 1, 10, 1.0);
    add_points(db, a, "acc1", 1, 10, 1.0);
    add_points(db, b, "loss", 1, 10, 1.0);
    char err[512];
    sqlite3 *c = db_write_begin(db);
    assert_int_equal(db_metrics_trim(c, a, 6, err, sizeof err), 0);
    db_write_end(db);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM metrics WHERE job = %lld", (long long)a);
    assert_int_equal(count_rows(db, sql), 12);
    snprintf(sql, sizeof sql, "SELECT MAX(step) FROM metrics WHERE job = %lld", (long long)a);
    assert_int_equal(count_rows(db, sql), 6);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM metrics WHERE job = %lld", (long long)b);
    assert_int_equal(count_rows(db, sql), 10); /* other jobs untouched */
    /* the resumed worker reports steps 7.. again: each step once */
    add_points(db, a, "loss", 7, 10, 2.0);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM metrics WHERE job = %lld AND key = 'loss'",
             (long long)a);
    assert_int_equal(count_rows(db, sql), 10);
    /* delete removes the job and everything about it */
    c = db_write_begin(db);
    assert_int_equal(db_job_delete(c, a, err, sizeof err), 0);
    assert_int_equal(db_job_delete(c, a, err, sizeof err), 1);
    db_write_end(db);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM metrics WHERE job = %lld", (long long)a);
    assert_int_equal(count_rows(db, sql), 0);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM transitions WHERE job = %lld", (long long)a);
    assert_int_equal(count_rows(db, sql), 0);
    db_close(db);
}

static void test_checkpoint_cache(void **state)
{
    (void)state;
    Db *db = open_db();
    int64_t id = add_job(db, "running");
    char err[512];
    DbCheckpoint ck = {.step = 4, .epoch = 2, .size = 100, .mtime = 1234.5};
    snprintf(ck.sha256, sizeof ck.sha256, "%064d", 7);
    sqlite3 *c = db_write_begin(db);
    assert_int_equal(db_checkpoint_store(c, id, "ckpt-e0002-s000000004.safetensors", &ck, err, sizeof err), 0);
    assert_int_equal(db_checkpoint_store(c, id, "old.safetensors", &ck, err, sizeof err), 0);
    DbCheckpoint got;
    assert_int_equal(db_checkpoint_lookup(c, id, "ckpt-e0002-s000000004.safetensors", 100, 1234.5,
                                          &got, err, sizeof err), 1);
    assert_string_equal(got.sha256, ck.sha256);
    assert_int_equal(got.step, 4);
    /* a changed file (size or mtime) misses the cache */
    assert_int_equal(db_checkpoint_lookup(c, id, "ckpt-e0002-s000000004.safetensors", 101, 1234.5,
                                          &got, err, sizeof err), 0);
    assert_int_equal(db_checkpoint_lookup(c, id, "ckpt-e0002-s000000004.safetensors", 100, 1235.5,
                                          &got, err, sizeof err), 0);
    char *present[] = {"ckpt-e0002-s000000004.safetensors"};
    assert_int_equal(db_checkpoint_forget_others(c, id, present, 1, err, sizeof err), 0);
    assert_int_equal(db_checkpoint_lookup(c, id, "old.safetensors", 100, 1234.5, &got, err, sizeof err), 0);
    db_write_end(db);
    db_close(db);
}

/* ---- event bus ---------------------------------------------------------------------------- */

static void test_event_bus(void **state)
{
    (void)state;
    EventBus *bus = event_bus_new();
    event_bus_publish(bus, 1, "metric", "{\"before\": 1}"); /* before subscribing: not seen */
    EventSub *all = event_bus_subscribe(bus, 0), *two = event_bus_subscribe(bus, 2);
    event_bus_publish(bus, 1, "metric", "{\"a\": 1}");
    event_bus_publish(bus, 2, "log", "{\"b\": 2}");
    event_bus_publish(bus, 2, "nonsense", "{}"); /* unknown kinds are dropped */
    const char *kind;
    char *json;
    assert_int_equal(event_bus_next(all, &kind, &json, 100), 1);
    assert_string_equal(kind, "metric");
    assert_string_equal(json, "{\"a\": 1}");
    free(json);
    assert_int_equal(event_bus_next(all, &kind, &json, 100), 1);
    assert_string_equal(json, "{\"b\": 2}");
    free(json);
    assert_int_equal(event_bus_next(all, &kind, &json, 10), 0);
    assert_int_equal(event_bus_next(two, &kind, &json, 100), 1); /* job 1's event filtered out */
    assert_string_equal(kind, "log");
    free(json);
    /* overrun: a subscriber more than the capacity behind gets `lagged` once, then the oldest
     * event still held */
    for (int i = 0; i < EVENT_BUS_CAPACITY + 10; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "{\"i\": %d}", i);
        event_bus_publish(bus, 1, "metric", buf);
    }
    assert_int_equal(event_bus_next(all, &kind, &json, 100), 1);
    assert_string_equal(kind, "lagged");
    cJSON *lag = cJSON_Parse(json);
    assert_int_equal(cJSON_GetObjectItem(lag, "missed")->valueint, 10);
    cJSON_Delete(lag);
    free(json);
    assert_int_equal(event_bus_next(all, &kind, &json, 100), 1);
    assert_string_equal(json, "{\"i\": 10}");
    free(json);
    /* release ends waits with -1; the bus lives until the last subscription goes */
    event_bus_release(bus);
    assert_int_equal(event_bus_next(all, &kind, &json, 1000), -1);
    event_bus_unsubscribe(two);
    event_bus_unsubscribe(all);
}

/* ---- worker exit rules -------------------------------------------------------------------- */

static int exited(int code) { return code << 8; }      /* waitpid status of exit(code) */
static int signaled(int sig) { return sig; }            /* ... of death by sig */

static void test_worker_exit_rules(void **state)
{
    (void)state;
    WorkerExitOutcome o;
    worker_exit_decide(exited(0), WORKER_REQ_NONE, 0, 0, 3, "tail", 30, &o);
    assert_int_equal(o.to, JOB_COMPLETED);
    worker_exit_decide(exited(3), WORKER_REQ_PAUSE, 1, 0, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_PAUSED);
    worker_exit_decide(exited(3), WORKER_REQ_CANCEL, 1, 0, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_CANCELED);
    worker_exit_decide(exited(3), WORKER_REQ_SHUTDOWN, 1, 2, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_QUEUED);
    assert_int_equal(o.restart_delta, 0); /* a graceful stop does not count */
    worker_exit_decide(exited(3), WORKER_REQ_NONE, 0, 0, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_PAUSED);
    assert_non_null(strstr(o.reason, "log.max_steps"));
    /* SIGKILL after the grace period: as requested */
    worker_exit_decide(signaled(SIGKILL), WORKER_REQ_PAUSE, 1, 0, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_PAUSED);
    worker_exit_decide(signaled(SIGKILL), WORKER_REQ_CANCEL, 1, 0, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_CANCELED);
    /* a signal nobody in mocod sent, or status 75: retried while restarts remain */
    worker_exit_decide(signaled(SIGKILL), WORKER_REQ_NONE, 0, 0, 1, "last words", 30, &o);
    assert_int_equal(o.to, JOB_QUEUED);
    assert_int_equal(o.restart_delta, 1);
    worker_exit_decide(exited(75), WORKER_REQ_NONE, 0, 2, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_QUEUED);
    worker_exit_decide(signaled(SIGKILL), WORKER_REQ_NONE, 0, 1, 1, "last words", 30, &o);
    assert_int_equal(o.to, JOB_FAILED);
    assert_non_null(strstr(o.reason, "last words"));
    assert_non_null(strstr(o.reason, "signal 9"));
    /* any other status fails with the log's last lines */
    worker_exit_decide(exited(1), WORKER_REQ_NONE, 0, 0, 3, "data.train: no such folder", 30, &o);
    assert_int_equal(o.to, JOB_FAILED);
    assert_non_null(strstr(o.reason, "status 1"));
    assert_non_null(strstr(o.reason, "data.train: no such folder"));
    /* a cancel wins whatever happened */
    worker_exit_decide(exited(1), WORKER_REQ_CANCEL, 1, 0, 3, NULL, 30, &o);
    assert_int_equal(o.to, JOB_CANCELED);
    /* the real thing: a child killed by a signal gives the status the rules expect */
    pid_t pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    worker_exit_decide(status, WORKER_REQ_NONE, 0, 0, 0, "x", 30, &o);
    assert_int_equal(o.to, JOB_FAILED);
}

static void test_rfc3339(void **state)
{
    (void)state;
    double t;
    assert_int_equal(parse_rfc3339("1970-01-01T00:00:00Z", &t), 0);
    assert_double_equal(t, 0, 0);
    assert_int_equal(parse_rfc3339("2026-05-01T12:30:15Z", &t), 0);
    assert_double_equal(t, 1777638615.0, 0);
    assert_int_equal(parse_rfc3339("2026-05-01T14:30:15.25+02:00", &t), 0);
    assert_double_equal(t, 1777638615.25, 1e-6);
    assert_int_equal(parse_rfc3339("2026-05-01T07:30:15-05:00", &t), 0);
    assert_double_equal(t, 1777638615.0, 0);
    assert_int_equal(parse_rfc3339("2024-02-29T00:00:00Z", &t), 0);
    assert_int_equal(parse_rfc3339("2026-05-01", &t), -1);
    assert_int_equal(parse_rfc3339("2026-05-01T12:30:15", &t), -1); /* no zone */
    assert_int_equal(parse_rfc3339("2026-13-01T12:30:15Z", &t), -1);
    assert_int_equal(parse_rfc3339("tomorrow", &t), -1);
    assert_int_equal(parse_rfc3339("2026-05-01T12:30:15Zjunk", &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database_refused, setup, teardown),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test_setup_teardown(test_job_transition_every_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_transition_side_effects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_primary_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_downsample, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_after_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_cache, setup, teardown),
        cmocka_unit_test(test_event_bus),
        cmocka_unit_test(test_worker_exit_rules),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* worker_events.c — what mocod does with each event line a worker writes (DESIGN §4).
 *
 *   start       live step/total/epoch; metric points after its step are dropped (a resumed
 *               worker starts from its checkpoint's step, so history matches the model);
 *               the job becomes running
 *   metric      every numeric field (loss, acc1, acc5, lr, images_per_s, ...) becomes a
 *               point at the event's step; live progress, images/s and ETA
 *   eval        <eval>_top1, <eval>_top5, <eval>_loss points (a null top5 is skipped)
 *   checkpoint  a checkpoints row for the file (step, epoch, size, mtime; sha256 later)
 *   log, done, error   only passed on
 * Every event is published on the event bus with "job" added. Lines that are not JSON
 * objects are ignored: a worker's output must never upset the daemon.
 *
 * The events file offset just past the event (w->consumed) is stored in the transaction that
 * applies it, so each event changes the database exactly once even when mocod dies between
 * two events: the next mocod continues from that offset (recovery.c). Events that change
 * nothing stored (log, done, error) do not move it; seeing them twice is harmless. An event
 * whose transaction fails (a locked database, a full disk) is not skipped: it is read again
 * next round until it is stored (worker.h, worker_read).
 */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/checkpoint_files.h"
#include "db/db_checkpoints.h"
#include "db/db_metrics.h"

#define MAX_KEYS 32

static int64_t int_field(const cJSON *e, const char *key, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? (int64_t)v->valuedouble : def;
}

/* A metric key from the worker: letters, digits and '_' only, at most 63 characters. */
static int key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 63) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
              (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
            return 0;
    return 1;
}

static void remember_last(Worker *w, const char *key, double value)
{
    if (!w->last) return;
    cJSON *v = cJSON_CreateNumber(value);
    if (!v) return;
    if (cJSON_GetObjectItemCaseSensitive(w->last, key))
        cJSON_ReplaceItemInObjectCaseSensitive(w->last, key, v);
    else if (!cJSON_AddItemToObject(w->last, key, v))
        cJSON_Delete(v);
}

static int on_start(Service *s, Worker *w, const cJSON *e, char *err, size_t errlen)
{
    int64_t step = int_field(e, "step", 0);
    w->started = 1;
    w->start_step = step;
    w->total_steps = int_field(e, "total_steps", -1);
    w->steps_per_epoch = int_field(e, "steps_per_epoch", -1);
    int epoch = (int)int_field(e, "epoch", 0) + 1;
    if (w->epochs > 0 && epoch > w->epochs) epoch = w->epochs;
    sqlite3 *c = db_write_begin(s->db);
    int rc = db_begin(c, err, errlen);
    if (rc == 0) rc = db_metrics_trim(c, w->job, step, err, errlen);
    if (rc == 0)
        rc = db_job_set_start(c, w->job, step, w->total_steps, w->steps_per_epoch, epoch,
                              w->epochs, err, errlen);
    if (rc == 0) rc = db_job_set_events_offset(c, w->job, w->consumed, err, errlen);
    if (rc == 0) rc = db_commit(c, err, errlen);
    db_write_end(s->db);
    if (rc != 0) return -1;

    JobRow row;
    ServiceError se;
    if (service_read_job(s, w->job, &row, &se) != 0) return 0;
    char terr[1024];
    if (strcmp(row.state, "starting") == 0 &&
        job_transition(s->db, s->bus, w->job, JOB_RUNNING, "", NULL, NULL, NULL, terr,
                       sizeof terr) < 0)
        fprintf(stderr, "mocod: job %lld: %s\n", (long long)w->job, terr);
    job_row_free(&row);
    return 0;
}

/* Stores points and live progress of a metric or eval event. */
static int store_points(Service *s, Worker *w, const cJSON *e, const char *const *keys,
                        const double *values, int n, int is_metric, char *err, size_t errlen)
{
    int64_t step = int_field(e, "step", 0);
    int epoch = (int)int_field(e, "epoch", 0) + 1;
    if (w->epochs > 0 && epoch > w->epochs) epoch = w->epochs;
    const cJSON *ts_node = cJSON_GetObjectItemCaseSensitive(e, "ts");
    double ts = cJSON_IsNumber(ts_node) ? ts_node->valuedouble : db_now();
    double ips = NAN, eta = NAN;
    for (int i = 0; i < n; i++) remember_last(w, keys[i], values[i]);
    if (is_metric) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "images_per_s");
        if (cJSON_IsNumber(v) && v->valuedouble > 0) {
            ips = v->valuedouble;
            if (w->total_steps >= step && w->batch_size > 0)
                eta = (double)(w->total_steps - step) * w->batch_size / ips;
        }
    }
    char *last = w->last ? cJSON_PrintUnformatted(w->last) : NULL;
    sqlite3 *c = db_write_begin(s->db);
    int rc = db_begin(c, err, errlen);
    if (rc == 0) rc = db_metrics_add(c, w->job, step, ts, keys, values, n, err, errlen);
    if (rc == 0)
        rc = db_job_set_progress(c, w->job, step, epoch, ips, eta, last, err, errlen);
    if (rc == 0) rc = db_job_set_events_offset(c, w->job, w->consumed, err, errlen);
    if (rc == 0) rc = db_commit(c, err, errlen);
    db_write_end(s->db);
    cJSON_free(last);
    return rc == 0 ? 0 : -1;
}

static int on_metric(Service *s, Worker *w, const cJSON *e, char *err, size_t errlen)
{
    const char *keys[MAX_KEYS];
    double values[MAX_KEYS];
    int n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, e) {
        if (n == MAX_KEYS) break;
        if (!f->string || !cJSON_IsNumber(f) || !isfinite(f->valuedouble) || !key_ok(f->string))
            continue;
        if (!strcmp(f->string, "step") || !strcmp(f->string, "epoch") ||
            !strcmp(f->string, "ts") || !strcmp(f->string, "job"))
            continue;
        keys[n] = f->string;
        values[n++] = f->valuedouble;
    }
    return n > 0 ? store_points(s, w, e, keys, values, n, 1, err, errlen) : 0;
}

static int on_eval(Service *s, Worker *w, const cJSON *e, char *err, size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "eval");
    if (!cJSON_IsString(name) || strlen(name->valuestring) > 32 || !key_ok(name->valuestring))
        return 0;
    static const char *const fields[] = {"top1", "top5", "loss"};
    char key_buf[3][48];
    const char *keys[3];
    double values[3];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, fields[i]);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) continue; /* top5 null: < 5 classes */
        snprintf(key_buf[n], sizeof key_buf[n], "%s_%s", name->valuestring, fields[i]);
        keys[n] = key_buf[n];
        values[n++] = v->valuedouble;
    }
    return n > 0 ? store_points(s, w, e, keys, values, n, 0, err, errlen) : 0;
}

static int on_checkpoint(Service *s, Worker *w, const cJSON *e, char *err, size_t errlen)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
    if (!cJSON_IsString(p)) return 0;
    const char *slash = strrchr(p->valuestring, '/');
    const char *name = slash ? slash + 1 : p->valuestring;
    char dir[DAEMON_PATH_MAX + 64], path[DAEMON_PATH_MAX + 320];
    if (!checkpoint_name_ok(name) ||
        service_job_path(s, w->job, "/checkpoints", dir, sizeof dir) != 0)
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, name); /* only files in the job's own folder */
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    DbCheckpoint ck = {.size = st.st_size,
                       .mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9};
    checkpoint_read_position(path, &ck.step, &ck.epoch);
    sqlite3 *c = db_write_begin(s->db);
    int rc = db_begin(c, err, errlen);
    if (rc == 0) rc = db_checkpoint_store(c, w->job, name, &ck, err, errlen);
    if (rc == 0) rc = db_job_set_events_offset(c, w->job, w->consumed, err, errlen);
    if (rc == 0) rc = db_commit(c, err, errlen);
    db_write_end(s->db);
    return rc == 0 ? 0 : -1;
}

int worker_events_line(void *service, Worker *w, char *line)
{
    Service *s = service;
    cJSON *e = cJSON_Parse(line);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
    if (!cJSON_IsObject(e) || !cJSON_IsString(kind)) {
        cJSON_Delete(e);
        return 0;
    }
    const char *k = kind->valuestring;
    char err[1024] = "";
    int rc = 0;
    if (!strcmp(k, "start"))
        rc = on_start(s, w, e, err, sizeof err);
    else if (!strcmp(k, "metric"))
        rc = on_metric(s, w, e, err, sizeof err);
    else if (!strcmp(k, "eval"))
        rc = on_eval(s, w, e, err, sizeof err);
    else if (!strcmp(k, "checkpoint"))
        rc = on_checkpoint(s, w, e, err, sizeof err);
    if (rc != 0) {
        /* Not stored (the database is locked, its disk full): the event is read again next
         * round (worker_read), and published once stored. Said once per event, not on every
         * retry. */
        if (!w->failing || w->failed_at != w->line_start)
            fprintf(stderr, "mocod: job %lld: cannot store its %s event yet, retrying: %s\n",
                    (long long)w->job, k, err);
        w->failing = 1;
        w->failed_at = w->line_start;
        cJSON_Delete(e);
        return -1;
    }
    if (w->failing) {
        fprintf(stderr, "mocod: job %lld: its events are stored again\n", (long long)w->job);
        w->failing = 0;
    }
    /* Published as the worker wrote it, with the job's id. */
    cJSON_DeleteItemFromObjectCaseSensitive(e, "job");
    char kind_copy[32];
    snprintf(kind_copy, sizeof kind_copy, "%s", k);
    if (cJSON_AddNumberToObject(e, "job", (double)w->job)) {
        char *text = cJSON_PrintUnformatted(e);
        if (text) event_bus_publish(s->bus, w->job, kind_copy, text);
        cJSON_free(text);
    }
    cJSON_Delete(e);
    return 0;
}

/* service_machine.c — the machine and the queue as the API shows them: devices, queue,
 * health, Prometheus gauges; and live event subscriptions (event_bus.c underneath). */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

cJSON *service_devices(Service *s)
{
    cJSON *out = cJSON_CreateObject(), *gpus = cJSON_AddArrayToObject(out, "gpus");
    cJSON *cpu = cJSON_AddObjectToObject(out, "cpu");
    int ok = out && gpus && cpu;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    pthread_mutex_lock(&s->mu);
    for (int g = 0; ok && g < s->cfg.gpus; g++) {
        cJSON *d = cJSON_CreateObject();
        ok = d && cJSON_AddItemToArray(gpus, d) && cJSON_AddNumberToObject(d, "index", g) &&
             (s->gpu_owner[g] ? cJSON_AddNumberToObject(d, "job", (double)s->gpu_owner[g]) != NULL
                              : cJSON_AddNullToObject(d, "job") != NULL);
    }
    ok = ok && cJSON_AddNumberToObject(cpu, "cores", cores > 0 ? (double)cores : 1) &&
         cJSON_AddNumberToObject(cpu, "slots", s->cfg.cpu_slots) &&
         cJSON_AddNumberToObject(cpu, "used", s->cpu_used);
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* Appends the jobs in the given states, in the order asked, to a new array under key. */
static int add_jobs(Service *s, sqlite3 *c, cJSON *out, const char *key,
                    const char *const *states, int n_states)
{
    char msg[512];
    cJSON *arr = cJSON_AddArrayToObject(out, key);
    JobRow *rows;
    int n;
    if (!arr || db_jobs_list(c, states, n_states, DB_ORDER_START, 0, 0, &rows, &n, msg,
                             sizeof msg) != 0) {
        if (arr) fprintf(stderr, "mocod: queue: %s\n", msg);
        return -1;
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        cJSON *j = ok ? job_row_to_json(&rows[i]) : NULL;
        if (ok) ok = j && cJSON_AddItemToArray(arr, j);
        job_row_free(&rows[i]);
    }
    free(rows);
    (void)s;
    return ok ? 0 : -1;
}

cJSON *service_queue(Service *s)
{
    static const char *const running[] = {"starting", "running", "pausing", "canceling"};
    static const char *const queued[] = {"queued"};
    char msg[512];
    sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
    if (!c) return NULL;
    cJSON *out = cJSON_CreateObject();
    /* Queued in start order (priority, then submission); a job held by not_before or after
     * keeps its place but starts only when free to. */
    int ok = out && add_jobs(s, c, out, "running", running, 4) == 0 &&
             add_jobs(s, c, out, "queued", queued, 1) == 0;
    db_read_end(s->db, c);
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

cJSON *service_health(Service *s)
{
    pthread_mutex_lock(&s->mu);
    int running = s->n_workers;
    pthread_mutex_unlock(&s->mu);
    cJSON *out = cJSON_CreateObject();
    if (!out || !cJSON_AddStringToObject(out, "status", "ok") ||
        !cJSON_AddStringToObject(out, "version", MOCOD_VERSION) ||
        !cJSON_AddNumberToObject(out, "uptime_s", round((monotonic_now() - s->opened_at) * 10) / 10) ||
        !cJSON_AddNumberToObject(out, "jobs_running", running)) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* A growing text buffer for the Prometheus page. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} Text;

static void text_add(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(Text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *grown = realloc(t->p, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->p = grown;
        t->cap = cap;
    }
}

char *service_prometheus(Service *s)
{
    char msg[512];
    Text t = {malloc(4096), 0, 4096, 0};
    if (!t.p) return NULL;
    t.p[0] = '\0';
    sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
    cJSON *counts = cJSON_CreateObject();
    if (!c || !counts || db_jobs_count_by_state(c, counts, msg, sizeof msg) != 0) {
        if (c) db_read_end(s->db, c);
        cJSON_Delete(counts);
        free(t.p);
        return NULL;
    }
    text_add(&t, "# HELP mocod_jobs Jobs per state.\n# TYPE mocod_jobs gauge\n");
    for (int st = 0; st < JOB_STATE_COUNT; st++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(counts, job_state_name((JobState)st));
        text_add(&t, "mocod_jobs{state=\"%s\"} %d\n", job_state_name((JobState)st),
                 cJSON_IsNumber(v) ? v->valueint : 0);
    }
    cJSON_Delete(counts);
    static const char *const active[] = {"starting", "running", "pausing", "canceling"};
    JobRow *rows = NULL;
    int n = 0;
    if (db_jobs_list(c, active, 4, DB_ORDER_START, 0, 0, &rows, &n, msg, sizeof msg) != 0) n = 0;
    db_read_end(s->db, c);
    text_add(&t, "# HELP mocod_job_images_per_second Training throughput of a running job.\n"
             "# TYPE mocod_job_images_per_second gauge\n");
    for (int i = 0; i < n; i++)
        if (!isnan(rows[i].images_per_s))
            text_add(&t, "mocod_job_images_per_second{job=\"%lld\"} %.6g\n",
                     (long long)rows[i].id, rows[i].images_per_s);
    text_add(&t, "# HELP mocod_job_step Optimizer steps taken by a running job.\n"
             "# TYPE mocod_job_step gauge\n");
    for (int i = 0; i < n; i++)
        text_add(&t, "mocod_job_step{job=\"%lld\"} %lld\n", (long long)rows[i].id,
                 (long long)rows[i].step);
    for (int i = 0; i < n; i++) job_row_free(&rows[i]);
    free(rows);
    text_add(&t, "# HELP mocod_uptime_seconds Seconds since mocod started.\n"
             "# TYPE mocod_uptime_seconds gauge\nmocod_uptime_seconds %.1f\n",
             monotonic_now() - s->opened_at);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

EventSub *service_subscribe(Service *s, int64_t job_id)
{
    return event_bus_subscribe(s->bus, job_id);
}

int service_next_event(EventSub *sub, const char **kind, char **json, int timeout_ms)
{
    return event_bus_next(sub, kind, json, timeout_ms);
}

void service_unsubscribe(EventSub *sub)
{
    event_bus_unsubscribe(sub);
}

/* job_json.c — a jobs row as the job object of docs/mocod-api.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "daemon/service_internal.h"

static int add_real_or_null(cJSON *o, const char *key, double x)
{
    return (isnan(x) ? cJSON_AddNullToObject(o, key) : cJSON_AddNumberToObject(o, key, x)) != NULL;
}

static int add_count_or_null(cJSON *o, const char *key, int64_t x)
{
    return (x < 0 ? cJSON_AddNullToObject(o, key) : cJSON_AddNumberToObject(o, key, (double)x)) != NULL;
}

/* A JSON text column as a tree; `fallback` ("{}" or "[]") when it does not parse. */
static cJSON *parsed(const char *text, const char *fallback)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    return v ? v : cJSON_Parse(fallback);
}

cJSON *job_row_to_json(const JobRow *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    double progress = NAN;
    if (r->total_steps > 0) {
        progress = (double)r->step / (double)r->total_steps;
        if (progress > 1) progress = 1;
        progress = round(progress * 1000.0) / 1000.0;
    } else if (strcmp(r->state, "completed") == 0) {
        progress = 1; /* a job without steps (knn) that finished */
    }
    int ok = cJSON_AddNumberToObject(o, "id", (double)r->id) &&
             cJSON_AddStringToObject(o, "name", r->name) &&
             cJSON_AddStringToObject(o, "kind", r->kind) &&
             cJSON_AddStringToObject(o, "state", r->state) &&
             cJSON_AddNumberToObject(o, "priority", r->priority) &&
             add_real_or_null(o, "created_at", r->created_at) &&
             add_real_or_null(o, "started_at", r->started_at) &&
             add_real_or_null(o, "finished_at", r->finished_at) &&
             add_real_or_null(o, "not_before", r->not_before) &&
             (r->after > 0 ? cJSON_AddNumberToObject(o, "after", (double)r->after) != NULL
                           : cJSON_AddNullToObject(o, "after") != NULL) &&
             cJSON_AddNumberToObject(o, "restarts", r->restarts) &&
             cJSON_AddNumberToObject(o, "max_restarts", r->max_restarts) &&
             cJSON_AddStringToObject(o, "reason", r->reason) &&
             cJSON_AddItemToObject(o, "gpus", parsed(r->gpus, "[]")) &&
             cJSON_AddNumberToObject(o, "gpus_requested", r->gpus_needed) &&
             (r->pid > 0 ? cJSON_AddNumberToObject(o, "pid", (double)r->pid) != NULL
                         : cJSON_AddNullToObject(o, "pid") != NULL) &&
             cJSON_AddNumberToObject(o, "step", (double)r->step) &&
             add_count_or_null(o, "total_steps", r->total_steps) &&
             cJSON_AddNumberToObject(o, "epoch", r->epoch) &&
             add_count_or_null(o, "epochs", r->epochs) &&
             add_real_or_null(o, "progress", progress) &&
             add_real_or_null(o, "images_per_s", r->images_per_s) &&
             add_real_or_null(o, "eta_s", r->eta_s) &&
             cJSON_AddItemToObject(o, "last", parsed(r->last_metrics, "{}")) &&
             cJSON_AddItemToObject(o, "spec", parsed(r->spec, "{}"));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* jobs_table.c — one table row per job object (jobs_table.h). */
#include "cli/jobs_table.h"

#include <stdio.h>
#include <string.h>

static const char *headers[] = {"ID", "NAME", "KIND", "STATE", "PROGRESS",
                                "STEP", "LOSS", "IMG/S", "ETA", "AGE"};

void jobs_table_init(Table *t)
{
    table_init(t, 10, headers, "rlllrrrrrr");
}

int job_state_finished(const char *state)
{
    return state && (strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
                     strcmp(state, "canceled") == 0);
}

void jobs_table_add(Table *t, const cJSON *job)
{
    char id[32] = "-", progress[16] = "-", step[48] = "-", loss[32] = "-", ips[32] = "-",
         eta[32] = "-", age[32] = "-";
    double v, total;
    if (json_num(job, "id", &v)) snprintf(id, sizeof id, "%.0f", v);
    const char *state = json_str(job, "state");
    if (json_num(job, "progress", &v)) snprintf(progress, sizeof progress, "%.0f%%", v * 100);
    if (json_num(job, "step", &v)) {
        if (json_num(job, "total_steps", &total) && total > 0)
            snprintf(step, sizeof step, "%.0f/%.0f", v, total);
        else
            snprintf(step, sizeof step, "%.0f", v);
    }
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(job, "last");
    if (json_num(last, "loss", &v)) snprintf(loss, sizeof loss, "%.4f", v);
    int finished = job_state_finished(state);
    if (!finished && json_num(job, "images_per_s", &v) && v > 0)
        snprintf(ips, sizeof ips, "%.1f", v);
    if (!finished && json_num(job, "eta_s", &v)) fmt_duration(v, eta, sizeof eta);
    fmt_age(json_num_or(job, "created_at", 0), age, sizeof age);
    const char *cells[10] = {id,   json_str(job, "name"), json_str(job, "kind"), state,
                             progress, step, loss, ips, eta, age};
    table_add(t, cells);
}

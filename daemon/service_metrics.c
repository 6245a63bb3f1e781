/* service_metrics.c — service_metrics: a job's metric keys, pages of points, and
 * downsampled series for charts (docs/mocod-api.md). */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_metrics.h"

#define MAX_RESULTS 10000

cJSON *service_metrics(Service *s, int64_t id, const char *key, int64_t since_step,
                       int max_results, const char *page_token, int downsample, ServiceError *err)
{
    char msg[512] = "out of memory";
    JobRow row;
    if (service_read_job(s, id, &row, err) != 0) return NULL;
    job_row_free(&row);
    if (key && (!key[0] || strlen(key) > 128)) {
        service_error(err, 400, "bad_request", NULL, "key must name a metric (GET "
                      "/api/v1/jobs/%lld/metrics lists them)", (long long)id);
        return NULL;
    }
    if (key && downsample <= 0 && (max_results < 1 || max_results > MAX_RESULTS)) {
        service_error(err, 400, "bad_request", NULL, "max_results must be between 1 and %d, got "
                      "%d", MAX_RESULTS, max_results);
        return NULL;
    }
    if (key && downsample > MAX_RESULTS) {
        service_error(err, 400, "bad_request", NULL, "downsample must be between 1 and %d, got "
                      "%d", MAX_RESULTS, downsample);
        return NULL;
    }
    int64_t after = since_step;
    if (key && page_token && page_token[0] && downsample <= 0) {
        char *end;
        errno = 0;
        long long v = strtoll(page_token, &end, 10);
        if (errno || *end || v < 0) {
            service_error(err, 400, "bad_request", NULL, "page_token '%.64s' was not given out "
                          "by this server; use next_page_token of the previous page", page_token);
            return NULL;
        }
        if (v > after) after = v;
    }
    sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
    if (!c) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        return NULL;
    }
    cJSON *out = cJSON_CreateObject();
    int rc = -1;
    if (out && !key) {
        cJSON *keys = cJSON_AddArrayToObject(out, "keys");
        rc = keys ? db_metrics_keys(c, id, keys, msg, sizeof msg) : -1;
    } else if (out) {
        cJSON *points = NULL;
        int ok = cJSON_AddStringToObject(out, "key", key) &&
                 (points = cJSON_AddArrayToObject(out, "points")) != NULL;
        int more = 0;
        if (ok && downsample > 0)
            rc = db_metrics_downsample(c, id, key, since_step, downsample, points, msg, sizeof msg);
        else if (ok)
            rc = db_metrics_page(c, id, key, after, max_results, points, &more, msg, sizeof msg);
        if (rc == 0) {
            int n = cJSON_GetArraySize(points);
            if (more && n > 0) {
                char token[32];
                cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(points, n - 1), "step");
                snprintf(token, sizeof token, "%lld", (long long)last->valuedouble);
                rc = cJSON_AddStringToObject(out, "next_page_token", token) ? 0 : -1;
            } else {
                rc = cJSON_AddNullToObject(out, "next_page_token") ? 0 : -1;
            }
        }
    }
    db_read_end(s->db, c);
    if (rc != 0) {
        cJSON_Delete(out);
        service_error(err, 500, "internal", NULL, "%s", msg);
        return NULL;
    }
    return out;
}

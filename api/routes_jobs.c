/* routes_jobs.c — submitting, listing, reading and steering jobs, and their metric history.
 *
 * Each handler checks what the URL carries (ids, query numbers) and hands the rest to the
 * daemon core; the core's errors come back with their status, code and field unchanged.
 */
#include "api/handlers.h"
#include "api/request.h"
#include "api/respond.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* "Application/JSON; charset=utf-8" → "application/json": the media type the core sniffs on. */
static const char *media_type(Request *req, char *buf, size_t buflen)
{
    const char *ct = req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return NULL;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = 0;
    while (ct[n] && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t' && n + 1 < buflen) {
        buf[n] = (char)tolower((unsigned char)ct[n]);
        n++;
    }
    buf[n] = '\0';
    return n ? buf : NULL;
}

void h_submit(Request *req)
{
    if (req->body_len == 0) {
        respond_error(req, 400, "bad_request", NULL,
                      "the body is empty: send a job spec (YAML or JSON, docs/job-spec.md), "
                      "e.g. `mococtl submit job.yaml`");
        return;
    }
    char ctbuf[128];
    ServiceError err = {0};
    cJSON *job = service_submit(req->srv->svc, req->body, req->body_len, media_type(req, ctbuf, sizeof ctbuf),
                                &err);
    if (!job) {
        respond_service_error(req, &err);
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
    char location[64] = "";
    if (cJSON_IsNumber(id)) snprintf(location, sizeof location, "/api/v1/jobs/%.0f", id->valuedouble);
    struct MHD_Response *r = json_response(job);
    if (!r) {
        respond_error(req, 500, "internal", NULL, "out of memory answering the submission (the job was created)");
        return;
    }
    if (location[0]) MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    respond(req, 201, r);
}

void h_list_jobs(Request *req)
{
    int64_t limit;
    if (req_query_int(req, "limit", 1, 500, 50, &limit)) return;
    const char *states = req_query(req, "state");
    const char *token = req_query(req, "page_token");
    if (states && !states[0]) states = NULL;
    if (token && !token[0]) token = NULL;
    ServiceError err = {0};
    cJSON *list = service_list_jobs(req->srv->svc, states, (int)limit, token, &err);
    if (!list) respond_service_error(req, &err);
    else respond_json(req, 200, list);
}

void h_get_job(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    ServiceError err = {0};
    cJSON *job = service_get_job(req->srv->svc, id, 1, &err);
    if (!job) respond_service_error(req, &err);
    else respond_json(req, 200, job);
}

void h_delete_job(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    ServiceError err = {0};
    if (service_delete_job(req->srv->svc, id, &err) != 0) respond_service_error(req, &err);
    else respond_empty(req, 204);
}

static void job_action(Request *req, JobAction action)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    ServiceError err = {0};
    cJSON *job = service_job_action(req->srv->svc, id, action, &err);
    if (!job) respond_service_error(req, &err);
    else respond_json(req, 202, job);
}

void h_cancel(Request *req) { job_action(req, JOB_ACTION_CANCEL); }
void h_pause(Request *req) { job_action(req, JOB_ACTION_PAUSE); }
void h_resume(Request *req) { job_action(req, JOB_ACTION_RESUME); }

/* Body {"priority": N}, N a whole number that fits an int. */
void h_priority(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    cJSON *body = req->body_len ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
    const cJSON *p = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "priority") : NULL;
    if (!cJSON_IsNumber(p) || !isfinite(p->valuedouble) || p->valuedouble != floor(p->valuedouble) ||
        p->valuedouble < INT_MIN || p->valuedouble > INT_MAX) {
        respond_error(req, 400, "bad_request", "priority",
                      "send a JSON body {\"priority\": N} with N a whole number (higher runs first), "
                      "e.g. {\"priority\": 10}");
        cJSON_Delete(body);
        return;
    }
    int priority = (int)p->valuedouble;
    cJSON_Delete(body);
    ServiceError err = {0};
    cJSON *job = service_set_priority(req->srv->svc, id, priority, &err);
    if (!job) respond_service_error(req, &err);
    else respond_json(req, 200, job);
}

void h_job_metrics(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    const char *key = req_query(req, "key");
    int64_t since = -1, max_results = 1000, downsample = 0;
    if (key && !key[0]) {
        respond_error(req, 400, "bad_request", "key", "key is empty: leave it out to list the keys, or "
                      "name one, e.g. key=loss");
        return;
    }
    if (req_query_int(req, "since_step", -1, INT64_MAX, -1, &since)) return;
    if (req_query_int(req, "max_results", 1, 10000, 1000, &max_results)) return;
    if (req_query_int(req, "downsample", 0, 10000, 0, &downsample)) return;
    const char *token = req_query(req, "page_token");
    if (token && !token[0]) token = NULL;
    ServiceError err = {0};
    cJSON *out = service_metrics(req->srv->svc, id, key, since, (int)max_results, token, (int)downsample, &err);
    if (!out) respond_service_error(req, &err);
    else respond_json(req, 200, out);
}

/* respond.c — JSON bodies, JSON errors and the common headers of every answer (respond.h). */
#include "api/respond.h"

#include "daemon/json_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *status_code_name(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "payload_too_large";
    case 416: return "range_not_satisfiable";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal" : "bad_request";
    }
}

void respond(Request *req, int status, struct MHD_Response *response)
{
    if (req->answered) {
        /* a handler bug; the first answer stands */
        if (response) MHD_destroy_response(response);
        return;
    }
    req->answered = 1;
    req->status = status;
    if (!response) {
        fprintf(stderr, "mocod: %s %s: cannot build the response (out of memory?)\n", req->method,
                req->path_for_log);
        req->queue_result = MHD_NO;
        return;
    }
    if (!MHD_get_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL))
        MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    req->queue_result = MHD_queue_response(req->conn, (unsigned)status, response);
    MHD_destroy_response(response);
    if (req->queue_result == MHD_YES) http_stats_count(&req->srv->stats, status);
}

void respond_bytes(Request *req, int status, const char *content_type, const void *data, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r && content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    respond(req, status, r);
}

struct MHD_Response *json_response(cJSON *body)
{
    if (!body) return NULL;
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) return NULL;
    size_t n = strlen(text);
    /* Strings from outside (a failure reason quoting a worker's log, which may name a file of
     * the data set in a non-UTF-8 encoding) would make the answer invalid JSON for a strict
     * client: each stray byte becomes U+FFFD. */
    char *repaired;
    size_t repaired_len;
    int fixed = utf8_repair(text, n, &repaired, &repaired_len);
    if (fixed < 0) {
        free(text);
        return NULL;
    }
    if (fixed) {
        free(text);
        text = repaired;
        n = repaired_len;
    }
    /* a final newline, so that `curl` output ends its line */
    char *with_nl = realloc(text, n + 2);
    if (!with_nl) {
        free(text);
        return NULL;
    }
    with_nl[n] = '\n';
    with_nl[n + 1] = '\0';
    struct MHD_Response *r = MHD_create_response_from_buffer(n + 1, with_nl, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(with_nl);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    return r;
}

void respond_json(Request *req, int status, cJSON *body)
{
    struct MHD_Response *r = json_response(body);
    if (!r) {
        respond_error(req, 500, "internal", NULL, "out of memory building the answer");
        return;
    }
    respond(req, status, r);
}

struct MHD_Response *error_response(int status, const char *code, const char *field, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (!e || !cJSON_AddStringToObject(e, "code", code && code[0] ? code : status_code_name(status)) ||
        !cJSON_AddStringToObject(e, "message", message) ||
        (field && field[0] && !cJSON_AddStringToObject(e, "field", field))) {
        cJSON_Delete(root);
        return NULL;
    }
    struct MHD_Response *r = json_response(root);
    if (r && status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mocod\"");
    return r;
}

static void respond_error_text(Request *req, int status, const char *code, const char *field,
                               const char *message)
{
    if (status >= 500)
        fprintf(stderr, "mocod: %s %s -> %d: %s\n", req->method, req->path_for_log, status, message);
    struct MHD_Response *r = error_response(status, code, field, message);
    if (r && status == 405 && req->match.allow[0]) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, req->match.allow);
    respond(req, status, r);
}

void respond_error(Request *req, int status, const char *code, const char *field, const char *fmt, ...)
{
    char message[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    respond_error_text(req, status, code, field, message);
}

void respond_service_error(Request *req, const ServiceError *err)
{
    int status = err->status >= 400 && err->status < 600 ? err->status : 500;
    const char *message = err->message[0] ? err->message : "the daemon could not complete the request";
    respond_error_text(req, status, err->code, err->field, message);
}

void respond_empty(Request *req, int status)
{
    respond(req, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

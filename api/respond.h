/* respond.h — every answer mocod gives goes through here: JSON bodies, JSON errors
 * ({"error": {"code", "message"[, "field"]}}), plain responses; each counted for /metrics. */
#ifndef MOCOD_API_RESPOND_H
#define MOCOD_API_RESPOND_H

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "api/request.h"
#include "daemon/service.h"

/* Queues response with status (adding the headers every answer carries), records the answer
 * and releases the caller's reference. A NULL response (creation failed) closes the
 * connection. */
void respond(Request *req, int status, struct MHD_Response *response);
/* A JSON response of body (freed here); NULL when body is NULL or memory runs out. */
struct MHD_Response *json_response(cJSON *body);
/* The JSON error object as a response (with WWW-Authenticate for 401), for callers that add
 * headers of their own; NULL when memory runs out. */
struct MHD_Response *error_response(int status, const char *code, const char *field, const char *message);
/* Serializes and frees body (NULL body → 500). */
void respond_json(Request *req, int status, cJSON *body);
/* An error object; field may be NULL. */
void respond_error(Request *req, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void respond_service_error(Request *req, const ServiceError *err);
/* A status without a body (204). */
void respond_empty(Request *req, int status);
/* A memory buffer that the response copies; content_type may be NULL. */
void respond_bytes(Request *req, int status, const char *content_type, const void *data, size_t len);

/* The short code of an HTTP status ("not_found" for 404). */
const char *status_code_name(int status);

#endif

/* request.h — the server and one request as the route handlers see them.
 *
 * A Request lives from the first call of the access handler (headers read) to the
 * request-completed callback. Handlers read its path parameters, query and body, and answer
 * exactly once through respond.h; a handler that returns without answering gets a 500.
 */
#ifndef MOCOD_API_REQUEST_H
#define MOCOD_API_REQUEST_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "api/http_stats.h"
#include "api/router.h"

struct ApiServer {
    struct MHD_Daemon *mhd;
    const DaemonConfig *cfg;
    Service *svc;
    int port;
    atomic_int stopping;  /* set by api_stop: streams end */
    HttpStats stats;
};

struct Request {
    ApiServer *srv;
    struct MHD_Connection *conn;
    const char *method;
    char *path;           /* a copy of the URL path, split in place by the router */
    char *path_for_log;   /* the path as received, for error logs */
    RouteMatch match;
    int begun;            /* routing and auth done */
    /* body (POST), accumulated up to cfg->max_body_bytes */
    char *body;
    size_t body_len, body_cap;
    int body_too_large;
    uint64_t body_discarded;  /* bytes dropped after the limit was passed */
    /* the answer */
    int answered;
    int status;
    enum MHD_Result queue_result;
};

/* Query parameter or header value, NULL when absent. */
const char *req_query(Request *req, const char *key);
const char *req_header(Request *req, const char *name);
/* Path parameter i ({id} is 0 in "/api/v1/jobs/{id}/..."). */
const char *req_param(Request *req, int i);

/* Each of these answers 400 (naming the parameter) and returns -1 when the value is bad. */
int req_job_id(Request *req, int i, int64_t *id);
int req_query_int(Request *req, const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out);
int req_query_flag(Request *req, const char *key, int *out);

/* The connection's socket, for noticing that a streaming client went away. -1 if unknown. */
int req_socket(Request *req);

#endif

/* request.c — reading a request's parameters, with 400s that name the bad one (request.h). */
#include "api/request.h"

#include "api/params.h"
#include "api/respond.h"

#include <inttypes.h>
#include <string.h>

const char *req_query(Request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *req_header(Request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *req_param(Request *req, int i)
{
    return i >= 0 && i < req->match.n_params ? req->match.params[i] : NULL;
}

int req_job_id(Request *req, int i, int64_t *id)
{
    const char *s = req_param(req, i);
    if (s && parse_job_id(s, id) == 0) return 0;
    respond_error(req, 400, "bad_request", "id",
                  "job id \"%.64s%s\" is not a job number: use the positive integer `id` of a job "
                  "(GET /api/v1/jobs lists them)", s ? s : "", s && strlen(s) > 64 ? "..." : "");
    return -1;
}

int req_query_int(Request *req, const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    const char *s = req_query(req, key);
    if (!s) {
        *out = dflt;
        return 0;
    }
    if (parse_i64_strict(s, lo, hi, out) == 0) return 0;
    respond_error(req, 400, "bad_request", key,
                  "query parameter %s=\"%.64s\" must be a whole number from %" PRId64 " to %" PRId64,
                  key, s, lo, hi);
    return -1;
}

int req_query_flag(Request *req, const char *key, int *out)
{
    const char *s = req_query(req, key);
    int v = parse_flag(s);
    if (v >= 0) {
        *out = v;
        return 0;
    }
    respond_error(req, 400, "bad_request", key, "query parameter %s=\"%.64s\" must be 1 or 0 (true or false)",
                  key, s);
    return -1;
}

int req_socket(Request *req)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

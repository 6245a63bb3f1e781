/* routes_files.c — a job's log (from an offset, optionally followed) and its checkpoints (list,
 * download with single byte ranges, backbone export).
 *
 * Files are streamed from their descriptor (sendfile where the kernel can), never read into
 * memory: a ResNet-50 checkpoint with optimizer state is hundreds of megabytes.
 */
#include "api/handlers.h"
#include "api/range.h"
#include "api/request.h"
#include "api/respond.h"
#include "api/stream_logs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void h_logs(Request *req)
{
    int64_t id, offset;
    int follow = 0;
    if (req_job_id(req, 0, &id)) return;
    if (req_query_int(req, "offset", 0, INT64_MAX, 0, &offset)) return;
    if (req_query_flag(req, "follow", &follow)) return;
    char path[DAEMON_PATH_MAX];
    ServiceError err = {0};
    if (service_log_path(req->srv->svc, id, path, sizeof path, &err) != 0) {
        respond_service_error(req, &err);
        return;
    }
    /* The log appears when the worker first starts; until then it is empty. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        respond_error(req, 500, "internal", NULL, "cannot open the log of job %" PRId64 ": %s", id, strerror(errno));
        return;
    }
    uint64_t size = 0;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            respond_error(req, 500, "internal", NULL, "cannot stat the log of job %" PRId64 ": %s", id, strerror(errno));
            return;
        }
        size = (uint64_t)st.st_size;
    }
    if (follow) {
        logs_follow_respond(req, id, path, fd, (uint64_t)offset, size);
        return;
    }
    struct MHD_Response *r;
    if (fd >= 0 && (uint64_t)offset < size) {
        r = MHD_create_response_from_fd_at_offset64(size - (uint64_t)offset, fd, (uint64_t)offset);
        if (!r) close(fd);
    } else {
        if (fd >= 0) close(fd);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (r) {
        char sz[32];
        snprintf(sz, sizeof sz, "%" PRIu64, size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        MHD_add_response_header(r, "X-Log-Size", sz);
    }
    respond(req, 200, r);
}

void h_checkpoints(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    ServiceError err = {0};
    cJSON *list = service_list_checkpoints(req->srv->svc, id, &err);
    if (!list) respond_service_error(req, &err);
    else respond_json(req, 200, list);
}

/* The checkpoint file itself, or its backbone export; Range: bytes=a-b | a- | -n. */
void h_checkpoint_file(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    const char *name = req_param(req, 1);
    const char *format = req_query(req, "format");
    if (format && format[0] && strcmp(format, "backbone") != 0) {
        respond_error(req, 400, "bad_request", "format",
                      "format=\"%.64s\" is not known: leave it out for the checkpoint itself, or use "
                      "format=backbone for the torchvision backbone", format);
        return;
    }
    char path[DAEMON_PATH_MAX];
    ServiceError err = {0};
    if (service_checkpoint_file(req->srv->svc, id, name, format, path, sizeof path, &err) != 0) {
        respond_service_error(req, &err);
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0) close(fd);
        /* a checkpoint pruned (keep_last) between the lookup and the open */
        respond_error(req, 404, "not_found", "name", "checkpoint %.200s of job %" PRId64 " is gone (%s); list "
                      "the current ones with GET /api/v1/jobs/%" PRId64 "/checkpoints",
                      name, id, fd < 0 ? strerror(e) : "not a file", id);
        return;
    }
    uint64_t size = (uint64_t)st.st_size, start = 0, len = size;
    RangeResult rr = range_parse(req_header(req, MHD_HTTP_HEADER_RANGE), size, &start, &len);
    char content_range[96];
    if (rr == RANGE_UNSATISFIABLE) {
        close(fd);
        char msg[256];
        snprintf(msg, sizeof msg, "the range \"%.64s\" lies outside the file (%" PRIu64 " bytes)",
                 req_header(req, MHD_HTTP_HEADER_RANGE), size);
        struct MHD_Response *r = error_response(416, "range_not_satisfiable", NULL, msg);
        snprintf(content_range, sizeof content_range, "bytes */%" PRIu64, size);
        if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
        respond(req, 416, r);
        return;
    }
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, start);
    if (!r) {
        close(fd);
        respond(req, 500, NULL);
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char disposition[320];
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%.255s\"", base);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition);
    if (rr == RANGE_PARTIAL) {
        snprintf(content_range, sizeof content_range, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
                 start + len - 1, size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
        respond(req, 206, r);
    } else {
        respond(req, 200, r);
    }
}

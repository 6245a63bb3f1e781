/* stream_logs.c — a followed log as a chunked response (see stream_logs.h).
 *
 * libmicrohttpd calls the reader from this connection's own thread, so the reader may block:
 * it returns what the file has past the offset, or polls every 200 ms until more arrives, the
 * job stops writing, the client hangs up or mocod stops.
 */
#include "api/stream_logs.h"

#include "api/respond.h"
#include "api/stream_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 200

typedef struct {
    ApiServer *srv;
    int64_t job;
    char path[DAEMON_PATH_MAX];
    int fd;
    uint64_t offset;
    int sock;
} LogFollow;

static ssize_t follow_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    LogFollow *f = cls;
    for (;;) {
        if (f->fd < 0) f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        /* Asked before reading: when the job had stopped writing, the read below sees all of it. */
        int active = service_job_is_active(f->srv->svc, f->job);
        if (f->fd >= 0) {
            ssize_t n = pread(f->fd, buf, max, (off_t)f->offset);
            if (n > 0) {
                f->offset += (uint64_t)n;
                return n;
            }
            if (n < 0 && errno != EINTR) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (n < 0) continue;
        }
        if (active != 1) return MHD_CONTENT_READER_END_OF_STREAM;
        if (atomic_load(&f->srv->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        if (client_gone(f->sock, POLL_MS)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void follow_free(void *cls)
{
    LogFollow *f = cls;
    if (f->fd >= 0) close(f->fd);
    free(f);
}

void logs_follow_respond(Request *req, int64_t job_id, const char *path, int fd, uint64_t offset,
                         uint64_t size)
{
    LogFollow *f = calloc(1, sizeof *f);
    if (!f) {
        if (fd >= 0) close(fd);
        respond_error(req, 500, "internal", NULL, "out of memory following the log");
        return;
    }
    f->srv = req->srv;
    f->job = job_id;
    snprintf(f->path, sizeof f->path, "%s", path);
    f->fd = fd;
    f->offset = offset;
    f->sock = req_socket(req);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, follow_read, f,
                                                               follow_free);
    if (!r) {
        follow_free(f);
        respond(req, 500, NULL);
        return;
    }
    char sz[32];
    snprintf(sz, sizeof sz, "%" PRIu64, size);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(r, "X-Log-Size", sz);
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    stream_disable_timeout(req);
    respond(req, 200, r);
}

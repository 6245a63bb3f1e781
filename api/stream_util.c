/* stream_util.c — noticing a departed streaming client, and stream timeouts (stream_util.h). */
#include "api/stream_util.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

int client_gone(int sock, int wait_ms)
{
    if (sock < 0) {
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        return 0;
    }
    /* POLLRDHUP: the peer closed its side. Bytes the client sends (POLLIN) are not a hang-up. */
    struct pollfd p = {.fd = sock, .events = POLLRDHUP};
    int n = poll(&p, 1, wait_ms);
    if (n < 0) return 0;
    return n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

void stream_disable_timeout(Request *req)
{
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
}

double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* events.c — JSON-line job events on a file descriptor; see events.h. */
#include "train/events.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"

static int event_fd = -1;
static int64_t cur_step;
static int cur_epoch;

double wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void emit_error_on_die(const char *message)
{
    cJSON *e = event_new("error");
    cJSON_AddStringToObject(e, "message", message);
    events_emit(e);
}

void events_open(int fd)
{
    event_fd = fd;
    /* A reader that went away must not kill training with SIGPIPE: writes fail with EPIPE
     * instead, and we stop writing events (the run itself, and its checkpoints, go on). */
    signal(SIGPIPE, SIG_IGN);
    set_die_hook(emit_error_on_die);
}

void events_set_position(int64_t step, int epoch)
{
    cur_step = step;
    cur_epoch = epoch;
}

cJSON *event_new(const char *kind)
{
    cJSON *e = cJSON_CreateObject();
    if (!e) die("out of memory creating an event");
    cJSON_AddStringToObject(e, "kind", kind);
    cJSON_AddNumberToObject(e, "step", (double)cur_step);
    cJSON_AddNumberToObject(e, "epoch", cur_epoch);
    cJSON_AddNumberToObject(e, "ts", wall_time());
    return e;
}

void events_emit(cJSON *event)
{
    if (event_fd >= 0) {
        char *text = cJSON_PrintUnformatted(event);
        if (!text) die("out of memory formatting an event");
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the terminator; we write len + 1 bytes, never read it as a string */
        const char *p = text;
        size_t left = len + 1;
        while (left > 0) {
            ssize_t n = write(event_fd, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                warn("event stream closed (%s); continuing without events", strerror(errno));
                event_fd = -1;
                break;
            }
            p += n;
            left -= (size_t)n;
        }
        cJSON_free(text);
    }
    cJSON_Delete(event);
}

void events_log(const char *message)
{
    cJSON *e = event_new("log");
    cJSON_AddStringToObject(e, "message", message);
    events_emit(e);
}

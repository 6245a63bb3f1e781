/* worker_exit.c — from a worker's exit status to its job's next state; see worker_exit.h. */
#include "daemon/worker_exit.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* moco-train's statuses (train/pretrain.h, train/lincls.h) and the sysexits "try again". */
#define EXIT_STOPPED 3
#define EXIT_TEMPFAIL 75

void describe_wait_status(int status, char *buf, size_t n)
{
    if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, n, "ended with wait status 0x%x", (unsigned)status);
}

int mpirun_rank_status(int status)
{
    if (!WIFEXITED(status)) return status;
    int code = WEXITSTATUS(status);
    if (code <= 128 || code > 128 + 64) return status;
    return code - 128; /* a wait status whose low 7 bits are the signal: WIFSIGNALED */
}

/* A line of at least 10 dashes and nothing else: the frame of mpirun's notices. */
static int is_frame(const char *line, size_t len)
{
    size_t dashes = 0;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '-') dashes++;
        else if (line[i] != '\n' && line[i] != '\r' && line[i] != ' ') return 0;
    }
    return dashes >= 10;
}

/* "[host:1234] ..." from OpenMPI's runtime (help aggregation, its crash handler). */
static int is_runtime_line(const char *line, size_t len)
{
    if (len < 4 || line[0] != '[') return 0;
    const char *close = memchr(line, ']', len < 128 ? len : 128);
    const char *colon = memchr(line, ':', len < 128 ? len : 128);
    if (!close || !colon || colon > close) return 0;
    for (const char *q = colon + 1; q < close; q++)
        if (!isdigit((unsigned char)*q)) return 0;
    return 1;
}

static void keep_last_lines(char *text, int max_lines)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n') text[--n] = '\0';
    size_t start = n;
    int lines = 0;
    while (start > 0) {
        if (text[start - 1] == '\n' && ++lines == max_lines) break;
        start--;
    }
    memmove(text, text + start, n - start + 1);
}

void mpirun_strip_chatter(char *text, int max_lines)
{
    if (!text) return;
    size_t total = strlen(text);
    char *kept = malloc(total + 1);
    if (kept) {
        size_t n = 0;
        int in_box = 0, kept_any = 0;
        for (const char *p = text; *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
            int frame = is_frame(p, len);
            int drop = frame || in_box || is_runtime_line(p, len) ||
                       strncmp(p, "mpirun: Forwarding signal", 25) == 0;
            if (frame) in_box = !in_box;
            if (!drop) {
                for (size_t i = 0; i < len; i++) kept_any |= !isspace((unsigned char)p[i]);
                memcpy(kept + n, p, len);
                n += len;
            }
            p += len;
        }
        kept[n] = '\0';
        if (kept_any) memcpy(text, kept, n + 1); /* n <= total: fits */
        free(kept);
    }
    keep_last_lines(text, max_lines);
}

static void with_tail(WorkerExitOutcome *out, const char *what, const char *tail)
{
    if (tail && tail[0])
        snprintf(out->reason, sizeof out->reason, "%s; last log lines:\n%s", what, tail);
    else
        snprintf(out->reason, sizeof out->reason, "%s", what);
}

void worker_exit_decide(int status, WorkerRequest request, int sent_signal, int restarts,
                        int max_restarts, const char *log_tail, int grace_s,
                        WorkerExitOutcome *out)
{
    char how[128], what[512];
    describe_wait_status(status, how, sizeof how);
    out->restart_delta = 0;
    int exited = WIFEXITED(status), code = exited ? WEXITSTATUS(status) : -1;
    int killed_by_us = WIFSIGNALED(status) && sent_signal;

    if (request == WORKER_REQ_CANCEL) {
        out->to = JOB_CANCELED;
        snprintf(out->reason, sizeof out->reason, "canceled (the worker %s)", how);
        return;
    }
    if (exited && code == 0) {
        out->to = JOB_COMPLETED;
        out->reason[0] = '\0';
        return;
    }
    if ((exited && code == EXIT_STOPPED) || killed_by_us) {
        const char *kill_note = killed_by_us && WTERMSIG(status) == SIGKILL
                                    ? " after the grace period" : "";
        if (request == WORKER_REQ_PAUSE) {
            out->to = JOB_PAUSED;
            snprintf(out->reason, sizeof out->reason, "paused (the worker %s%s); resume "
                     "continues from the last checkpoint", how, kill_note);
            if (killed_by_us && WTERMSIG(status) == SIGKILL)
                snprintf(out->reason, sizeof out->reason, "paused: the worker did not stop "
                         "within grace_period_s (%d s) and was killed; resume continues from "
                         "the last checkpoint", grace_s);
            return;
        }
        if (request == WORKER_REQ_SHUTDOWN) {
            out->to = JOB_QUEUED;
            snprintf(out->reason, sizeof out->reason, "mocod stopped (the worker %s%s); the "
                     "job continues from its last checkpoint when mocod starts again", how,
                     kill_note);
            return;
        }
        if (exited) { /* status 3 that nobody asked for: log.max_steps reached */
            out->to = JOB_PAUSED;
            snprintf(out->reason, sizeof out->reason,
                     "stopped by log.max_steps; resume to continue");
            return;
        }
    }
    int retryable = (exited && code == EXIT_TEMPFAIL) || (WIFSIGNALED(status) && !sent_signal);
    if (retryable && request == WORKER_REQ_SHUTDOWN) {
        out->to = JOB_QUEUED;
        snprintf(out->reason, sizeof out->reason, "mocod stopped (the worker %s); the job "
                 "continues from its last checkpoint when mocod starts again", how);
        return;
    }
    if (retryable && request == WORKER_REQ_PAUSE) {
        out->to = JOB_PAUSED;
        snprintf(out->reason, sizeof out->reason, "paused (the worker %s while stopping); "
                 "resume continues from the last checkpoint", how);
        return;
    }
    if (retryable) {
        if (restarts < max_restarts) {
            out->to = JOB_QUEUED;
            out->restart_delta = 1;
            snprintf(what, sizeof what, "the worker %s; retry %d of max_restarts %d from the "
                     "last checkpoint", how, restarts + 1, max_restarts);
            with_tail(out, what, log_tail);
            return;
        }
        out->to = JOB_FAILED;
        snprintf(what, sizeof what, "the worker %s and the job has no restarts left "
                 "(restarts %d, max_restarts %d); resume it to try again", how, restarts,
                 max_restarts);
        with_tail(out, what, log_tail);
        return;
    }
    out->to = JOB_FAILED;
    snprintf(what, sizeof what, "moco-train %s", how);
    with_tail(out, what, log_tail);
}

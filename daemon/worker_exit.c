/* worker_exit.c — from a worker's exit status to its job's next state; see worker_exit.h. */
#include "daemon/worker_exit.h"

#include <signal.h>
#include <stdio.h>
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

/* supervisor.c — the supervisor thread: one loop that reads every worker's new events (from
 * their events files), notices workers that ended and settles their jobs, repeats mpirun's
 * stop signal, sends SIGKILL to workers past their grace period (and to every rank of a
 * multi-rank job, job_procs.h), and runs the scheduler. It sleeps in poll() on the self-pipe
 * (written on submit, cancel, pause, resume, priority, shutdown) until the next timer: a tenth
 * of a second while workers run (to pick up their events), else the next grace deadline or
 * not_before. The jobs lock is held for each round of work and released while it sleeps.
 */
#include "daemon/service_internal.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/job_procs.h"
#include "daemon/worker_exit.h"

/* Longest sleep with workers running: how late a live event (or a worker's exit) may be
 * seen. Idle, the timer only guards against a missed wake-up. */
#define POLL_WITH_WORKERS_S 0.1
#define POLL_IDLE_S 5.0
/* How long an ended mpirun's leftover ranks are waited for (SIGKILLed each round) before its
 * job is settled anyway: SIGKILL takes long only for a process stuck in the kernel. */
#define STRAYS_WAIT_S 10.0

/* Appends one line of mocod's own to the job's log, so the log tells the whole story. */
static void log_note(Service *s, int64_t job, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void log_note(Service *s, int64_t job, const char *fmt, ...)
{
    char path[DAEMON_PATH_MAX + 64];
    if (service_job_path(s, job, "/log.txt", path, sizeof path) != 0) return;
    FILE *f = fopen(path, "ae");
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("=== mocod: ", f);
    vfprintf(f, fmt, ap);
    fputs(" ===\n", f);
    va_end(ap);
    fclose(f); /* a note only: a failed write loses nothing else */
}

static void release_resources(Service *s, Worker *w)
{
    if (w->n_gpus == 0) {
        if (s->cpu_used > 0) s->cpu_used--;
    }
    for (int i = 0; i < w->n_gpus; i++)
        if (w->gpus[i] >= 0 && w->gpus[i] < s->cfg.gpus && s->gpu_owner[w->gpus[i]] == w->job)
            s->gpu_owner[w->gpus[i]] = 0;
}

static void remove_worker(Service *s, int index)
{
    Worker *w = s->workers[index];
    release_resources(s, w);
    worker_free(w);
    free(w);
    s->workers[index] = s->workers[--s->n_workers];
}

/* Keeps, of a log tail, only what the last attempt's worker wrote: the lines after the last
 * "=== mocod: job ..." header that launch.c writes before each attempt (the header itself and
 * an earlier attempt's lines would only pad a failure reason). In place. */
static void this_attempts_lines(char *tail)
{
    if (!tail) return;
    static const char header[] = "=== mocod: job ";
    char *start = NULL;
    for (char *p = tail; (p = strstr(p, header)); p++)
        if (p == tail || p[-1] == '\n') start = p;
    if (!start) return;
    char *nl = strchr(start, '\n');
    const char *after = nl ? nl + 1 : start + strlen(start);
    memmove(tail, after, strlen(after) + 1);
}

/* The worker ended: decide the job's next state (worker_exit.c) and apply it. 0, or -1 when
 * the database could not take the change now: the worker stays in the table and the next
 * round tries again (removing it would leave the job `running` with nothing running it). */
static int settle_exit(Service *s, Worker *w)
{
    char err[1024], log_path[DAEMON_PATH_MAX + 64];
    JobRow row;
    ServiceError se;
    if (service_read_job(s, w->job, &row, &se) != 0) {
        if (!w->failing || w->failed_at != -1)
            fprintf(stderr, "mocod: job %lld: worker ended but the job cannot be read%s: %s\n",
                    (long long)w->job, se.status == 404 ? "" : " yet, retrying", se.message);
        if (se.status == 404) return 0;
        w->failing = 1;
        w->failed_at = -1; /* -1: the exit, not an event line */
        return -1;
    }
    char *tail = NULL;
    /* Under mpirun, the rank's own last words come before mpirun's notices about its exit:
     * read further back and drop those notices. */
    if (service_job_path(s, w->job, "/log.txt", log_path, sizeof log_path) == 0)
        tail = file_last_lines(log_path, w->ranks > 1 ? 60 : 10);
    this_attempts_lines(tail);
    if (w->ranks > 1) mpirun_strip_chatter(tail, 10);
    WorkerExitOutcome out;
    int status = w->ranks > 1 ? mpirun_rank_status(w->status) : w->status;
    worker_exit_decide(status, w->request, w->sent_stop || w->sent_kill, row.restarts,
                       row.max_restarts, tail, s->cfg.grace_period_s, &out);
    free(tail);
    char how[192];
    describe_wait_status(w->status, how, sizeof how);
    if (status != w->status) { /* mpirun's 128 + N: say what happened to the rank */
        size_t len = strlen(how);
        snprintf(how + len, sizeof how - len, " (a rank was killed by signal %d)",
                 WTERMSIG(status));
    }
    JobTransitionExtra extra = {out.restart_delta, 0};
    int rc = job_transition(s->db, s->bus, w->job, out.to, out.reason, &extra, NULL, NULL, err,
                            sizeof err);
    job_row_free(&row);
    if (rc < 0) {
        if (!w->failing || w->failed_at != -1)
            fprintf(stderr, "mocod: job %lld: worker %s, but the job cannot become %s yet, "
                    "retrying: %s\n", (long long)w->job, how, job_state_name(out.to), err);
        w->failing = 1;
        w->failed_at = -1;
        return -1;
    }
    if (rc != JOB_TRANSITION_OK)
        fprintf(stderr, "mocod: job %lld: worker %s, but the job could not become %s: %s\n",
                (long long)w->job, how, job_state_name(out.to), err);
    else
        log_note(s, w->job, "worker %ld %s; job %s", (long)w->pid, how, job_state_name(out.to));
    return 0;
}

/* SIGKILL to the worker's process group and, since mpirun's ranks are process groups of their
 * own, to every process of its job. */
static void kill_worker(Service *s, Worker *w)
{
    char dir[DAEMON_PATH_MAX + 64];
    worker_signal(w, SIGKILL);
    if (service_job_path(s, w->job, "", dir, sizeof dir) == 0) job_procs_signal(dir, SIGKILL);
}

/* After an mpirun worker ended: 1 while processes of its job still run (each round they get
 * SIGKILL), so that the job is settled, and maybe started again, only once nothing of this
 * attempt can still write its checkpoints or events. mpirun waits for its ranks, so there are
 * none unless mpirun itself was killed before a rank set its parent-death signal. */
static int ranks_left_behind(Service *s, Worker *w, double now)
{
    char dir[DAEMON_PATH_MAX + 64];
    if (w->ranks <= 1 || service_job_path(s, w->job, "", dir, sizeof dir) != 0) return 0;
    int n = job_procs_signal(dir, SIGKILL);
    if (n == 0) return 0;
    if (w->strays_since == 0) {
        w->strays_since = now;
        fprintf(stderr, "mocod: job %lld: mpirun %ld ended, but %d process(es) of the job still "
                "run; SIGKILL\n", (long long)w->job, (long)w->pid, n);
        log_note(s, w->job, "mpirun ended but %d process(es) of this job still ran; SIGKILL", n);
    }
    if (now - w->strays_since < STRAYS_WAIT_S) return 1;
    fprintf(stderr, "mocod: job %lld: %d process(es) of the job survived SIGKILL for %.0f s "
            "(stuck in the kernel?); settling the job anyway\n", (long long)w->job, n,
            STRAYS_WAIT_S);
    return 0;
}

/* mpirun forwards SIGUSR1 only to the ranks that run when it comes: one sent while mpirun
 * launches them is lost (tried: a cancel 50 ms after the start waited out the whole grace
 * period). So the stop goes again after 1, 2, 4, ... s until the worker ends or the grace
 * period does; moco-train takes repeats as one request, and a rank that has not installed its
 * handlers yet dies of it, which ends the job as asked too. */
static void repeat_stop(Worker *w, double now, double *next_wake)
{
    if (w->resend_at <= 0 || w->sent_kill || w->exited) return;
    if (now >= w->resend_at) {
        worker_signal(w, w->stop_signal);
        w->resend_gap *= 2;
        w->resend_at = now + w->resend_gap;
    }
    if (w->resend_at < *next_wake) *next_wake = w->resend_at;
}

/* One round over the workers: events, exits, grace deadlines. Lowers *next_wake. */
static void tend_workers(Service *s, double now, double *next_wake)
{
    for (int i = 0; i < s->n_workers;) {
        Worker *w = s->workers[i];
        /* An ended worker is settled only once all its events are stored (they tell where
         * its history and checkpoints end); when the database refuses them or the state
         * change, the next round tries again. When mocod stops it gives up: the events stay
         * in the file past the stored offset, and the next mocod's recovery applies them. */
        int stored = worker_read(w, worker_events_line, s, 0) == 0;
        if ((stored || s->stopping) && worker_poll_exit(w)) {
            if (ranks_left_behind(s, w, now)) {
                i++;
                continue;
            }
            stored = worker_read(w, worker_events_line, s, 1) == 0; /* its last words */
            if ((stored && settle_exit(s, w) == 0) || s->stopping) {
                remove_worker(s, i);
                continue;
            }
        }
        repeat_stop(w, now, next_wake);
        if (w->kill_at > 0 && !w->sent_kill) {
            if (now >= w->kill_at) {
                fprintf(stderr, "mocod: job %lld: worker %ld did not stop within %d s of "
                        "%s; sending SIGKILL\n", (long long)w->job, (long)w->pid,
                        s->cfg.grace_period_s, w->stop_signal == SIGUSR1 ? "SIGUSR1" : "SIGTERM");
                log_note(s, w->job, "worker did not stop within grace_period_s (%d s); SIGKILL",
                         s->cfg.grace_period_s);
                kill_worker(s, w);
            } else if (w->kill_at < *next_wake) {
                *next_wake = w->kill_at;
            }
        }
        i++;
    }
}

static void drain_wake_pipe(Service *s)
{
    char buf[256];
    while (read(s->wake_pipe[0], buf, sizeof buf) > 0) {
    }
}

void *supervisor_main(void *arg)
{
    Service *s = arg;
    /* Signals meant for mocod (SIGTERM, SIGINT) go to the threads that wait for them, not
     * here: blocking them keeps poll() from being interrupted for nothing. Workers get a
     * clean mask at exec (worker.c). */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &block, NULL);

    pthread_mutex_lock(&s->mu);
    for (;;) {
        double now = monotonic_now();
        double next_wake = now + (s->n_workers > 0 ? POLL_WITH_WORKERS_S : POLL_IDLE_S);
        tend_workers(s, now, &next_wake);
        if (s->stopping && s->n_workers == 0) break;
        if (!s->stopping) scheduler_run(s, &next_wake);
        /* the scheduler may just have started the first worker */
        if (s->n_workers > 0 && next_wake > now + POLL_WITH_WORKERS_S)
            next_wake = now + POLL_WITH_WORKERS_S;
        double wait_s = next_wake - monotonic_now();
        int timeout_ms = wait_s <= 0 ? 0 : (int)ceil(wait_s * 1000.0);
        pthread_mutex_unlock(&s->mu);
        struct pollfd wake = {s->wake_pipe[0], POLLIN, 0};
        if (poll(&wake, 1, timeout_ms) < 0 && errno != EINTR) usleep(10000);
        drain_wake_pipe(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* worker.h — one worker that runs a job: start it, read its events, notice its end, signal it.
 *
 * A worker is moco-train alone, or mpirun with one moco-train per rank (a multi-rank
 * pretraining, launch_command.h). It runs in its own process group (signals reach it and
 * anything it starts in that group), with stdin from /dev/null, stdout and stderr appended to
 * the job's log.txt, and no other descriptor of mocod. moco-train alone gets its events file
 * as fd 3; under mpirun, which replaces a rank's descriptors above 2, rank 0 opens the file by
 * name (--events-file).
 *
 * Clean stop (cancel, pause, mocod's shutdown): moco-train alone gets SIGTERM. mpirun gets
 * SIGUSR1, which it forwards at once, unchanged, to every rank (moco-train takes it as a
 * clean stop, like SIGTERM); mpirun exits with the ranks' status (3 when they stopped). A
 * SIGTERM to mpirun would not do: mpirun reaches the ranks only after its
 * odls_base_sigkill_timeout, and exits 1 whatever they did (OpenMPI 4.1.4, tried). Ranks are
 * process groups of their own, so the SIGKILL past the grace period goes to the worker's
 * group and to every process of the job (job_procs.h).
 *
 * Parent death: PR_SET_PDEATHSIG makes a kill -9 of mocod a clean stop, as a pause would be,
 * so the next mocod resumes the job: SIGHUP for moco-train alone, SIGUSR1 for mpirun (which
 * turns SIGHUP into a late SIGTERM, as above). Either may come several times (see worker.c);
 * moco-train takes repeats as one request.
 *
 * Events (JSON lines, DESIGN §4 "Job events") go to the job's events.jsonl, opened for
 * appending, not to a pipe: a pipe loses whatever the worker writes after mocod died (the step
 * it finishes when stopping, its last checkpoint), and the history would have a hole where the
 * model has none. From a file the next mocod reads what it missed, starting at the offset the
 * database says was applied (worker_events.c stores it with each event's effects). mocod reads
 * the file as it grows; the supervisor looks at it several times a second.
 * Everything here runs on the supervisor thread (or in recovery, before it starts).
 */
#ifndef MOCOD_WORKER_H
#define MOCOD_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct cJSON cJSON;

/* What mocod asked of a running worker, which decides what its exit means. */
typedef enum {
    WORKER_REQ_NONE,
    WORKER_REQ_PAUSE,
    WORKER_REQ_CANCEL,
    WORKER_REQ_SHUTDOWN, /* mocod stops: requeue without counting a restart */
} WorkerRequest;

#define WORKER_MAX_GPUS 64

typedef struct {
    int64_t job;
    pid_t pid;              /* also its process group id */
    int events_fd;          /* events.jsonl, read-only, at the next unread byte; -1 none */
    int64_t consumed;       /* file offset just past the last complete line handed out */
    int64_t line_start;     /* file offset of the line being handed out */
    int failing;            /* the line at failed_at could not be stored yet (said once) */
    int64_t failed_at;
    size_t pending;         /* bytes of the current partial line (kept or dropped) */
    char *line;             /* the partial line read so far */
    size_t len, cap;
    int overlong;           /* inside a line longer than the limit: dropped */
    int n_gpus;
    int gpus[WORKER_MAX_GPUS];
    int ranks;              /* 1: moco-train alone; > 1: mpirun and that many ranks */
    int stop_signal;        /* the clean stop: SIGTERM, or SIGUSR1 for mpirun */
    WorkerRequest request;
    int sent_stop, sent_kill; /* signals mocod sent: the clean stop, SIGKILL */
    double kill_at;         /* monotonic seconds when SIGKILL follows the stop; 0 none */
    double strays_since;    /* mpirun ended while ranks of its job still ran; 0 none */
    double resend_at, resend_gap; /* mpirun: when the stop signal goes again; 0 never */
    int exited, status;     /* waitpid status once exited */
    /* progress bookkeeping of the supervisor */
    int started;            /* the `start` event was seen */
    int64_t start_step, total_steps, steps_per_epoch;
    int epochs, batch_size;
    cJSON *last;            /* the newest value of each metric key */
} Worker;

/* Starts program with argv/envp (NULL-terminated; envp complete) for job w->job. log_path is
 * opened for appending (created 0644) as stdout and stderr; events_path is created empty
 * (truncated), opened for reading into w->events_fd and, when events_fd3, for appending as the
 * worker's fd 3. cwd is the working directory. w->ranks and w->stop_signal must be set (the
 * parent-death signal follows them). Fills w->pid. 0, or -1 with err (fork or a file failing;
 * an exec failure shows up as exit status 127 with the reason in the log). */
int worker_spawn(Worker *w, const char *program, char *const argv[], char *const envp[],
                 const char *log_path, const char *events_path, int events_fd3, const char *cwd,
                 char *err, size_t errlen);

/* Opens events_path for reading at offset into w->events_fd (w->consumed = offset), for a
 * worker mocod did not start (recovery). 0, or -1 when the file cannot be opened. */
int worker_open_events(Worker *w, const char *events_path, int64_t offset);

/* Reads what the events file holds beyond what was read and calls on_line for each complete
 * line (without the newline), with w->consumed already past it and w->line_start at its
 * start. At the worker's end, call with at_end 1: a last line without newline is handed out
 * too when it is complete JSON (anything else there is a write cut short by a kill, and
 * dropped). on_line returns 0, or -1 when the line's effects cannot be stored now (the
 * database is locked or its disk full): reading then stops and goes back to that line, so
 * the next call hands it out again. A line is never skipped, or the metric history would
 * have a hole where the model has none. Returns 0, or -1 when it stopped so. */
typedef int (*WorkerLineFn)(void *ctx, Worker *w, char *line);
int worker_read(Worker *w, WorkerLineFn on_line, void *ctx, int at_end);

/* 1 when the worker has exited (w->exited, w->status set), else 0. Never blocks. */
int worker_poll_exit(Worker *w);

/* Sends sig to the worker's process group (its stop signal and SIGKILL are recorded). */
void worker_signal(Worker *w, int sig);

/* Asks the worker to checkpoint and stop: its stop_signal, once (for mpirun, repeated by the
 * supervisor a few times with growing gaps: mpirun forwards a signal only to ranks that
 * already run, and one that comes while it launches them is lost). */
void worker_request_stop(Worker *w);

/* Frees buffers and closes the pipe (not the process). */
void worker_free(Worker *w);

/* The last n lines of a text file (at most ~4 KiB), malloc'd; "" when unreadable. */
char *file_last_lines(const char *path, int n);

/* Monotonic seconds. */
double monotonic_now(void);

#endif

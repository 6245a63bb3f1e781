/* worker.h — one moco-train process that runs a job: start it, read its events, notice its
 * end, signal it.
 *
 * The worker runs in its own process group (signals reach it and anything it starts), with
 * stdin from /dev/null, stdout and stderr appended to the job's log.txt, its events on fd 3
 * and no other descriptor of mocod, and PR_SET_PDEATHSIG SIGHUP: if mocod dies (kill -9),
 * the worker is asked to checkpoint and stop like on a pause, so the next mocod resumes it.
 *
 * Events (JSON lines, DESIGN §4 "Job events") go to fd 3, which is the job's events.jsonl
 * opened for appending, not a pipe: a pipe loses whatever the worker writes after mocod died
 * (the step it finishes on SIGTERM, its last checkpoint), and the history would have a hole
 * where the model has none. From a file the next mocod reads what it missed, starting at the
 * offset the database says was applied (worker_events.c stores it with each event's effects).
 * mocod reads the file as it grows; the supervisor looks at it several times a second.
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
    WorkerRequest request;
    int sent_term, sent_kill; /* signals mocod sent */
    double kill_at;         /* monotonic seconds when SIGKILL follows the SIGTERM; 0 none */
    int exited, status;     /* waitpid status once exited */
    /* progress bookkeeping of the supervisor */
    int started;            /* the `start` event was seen */
    int64_t start_step, total_steps, steps_per_epoch;
    int epochs, batch_size;
    cJSON *last;            /* the newest value of each metric key */
} Worker;

/* Starts program with argv/envp (NULL-terminated; envp complete) for job w->job. log_path is
 * opened for appending (created 0644) as stdout and stderr, events_path (created empty,
 * truncated) for appending as fd 3 and, separately, for reading into w->events_fd. cwd is the
 * working directory. Fills w->pid. 0, or -1 with err (fork or a file failing; an exec failure
 * shows up as exit status 127 with the reason in the log). */
int worker_spawn(Worker *w, const char *program, char *const argv[], char *const envp[],
                 const char *log_path, const char *events_path, const char *cwd, char *err,
                 size_t errlen);

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

/* Sends sig to the worker's process group (SIGTERM and SIGKILL are recorded). */
void worker_signal(Worker *w, int sig);

/* Frees buffers and closes the pipe (not the process). */
void worker_free(Worker *w);

/* The last n lines of a text file (at most ~4 KiB), malloc'd; "" when unreadable. */
char *file_last_lines(const char *path, int n);

/* Monotonic seconds. */
double monotonic_now(void);

#endif

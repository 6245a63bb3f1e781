/* worker.c — starting and watching moco-train processes; see worker.h. */
#include "daemon/worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is not an event moco-train writes (its biggest, `start`, is well
 * under 1 KiB); it is dropped rather than grown without bound. */
#define WORKER_MAX_LINE (1u << 20)
/* Descriptors handed to the child are first moved at or above this, so that the dup2 calls
 * onto 0..3 never overwrite one another. */
#define WORKER_HIGH_FD 10

double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Moves fd to a close-on-exec descriptor >= WORKER_HIGH_FD. -1 on failure (fd closed). */
static int move_high(int fd)
{
    if (fd < 0) return -1;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, WORKER_HIGH_FD);
    close(fd);
    return high;
}

/* In the child between fork and exec only async-signal-safe calls are allowed (another
 * thread may have held malloc's lock when we forked): no stdio, no malloc. */
static void child_write(const char *s)
{
    ssize_t n = write(2, s, strlen(s));
    (void)n;
}

static void child_write_int(int x)
{
    char buf[16];
    int i = (int)sizeof buf;
    buf[--i] = '\0';
    unsigned u = x < 0 ? (unsigned)-x : (unsigned)x;
    do buf[--i] = (char)('0' + u % 10); while ((u /= 10) && i > 1);
    if (x < 0) buf[--i] = '-';
    child_write(buf + i);
}

static void child_fail(const char *what, const char *arg)
{
    int e = errno;
    child_write("mocod: worker setup failed: ");
    child_write(what);
    if (arg) {
        child_write(" ");
        child_write(arg);
    }
    child_write(": errno ");
    child_write_int(e);
    child_write("\n");
    _exit(127);
}

static void child_run(const char *program, char *const argv[], char *const envp[],
                      const char *cwd, int null_fd, int log_fd, int events_fd, int pdeath_sig,
                      pid_t parent, long max_fd)
{
    setpgid(0, 0);
    /* If mocod dies, ask the worker to checkpoint and stop (as a pause would). Not SIGTERM:
     * the parent-death signal comes each time the worker is handed from a dying mocod thread
     * to another one, so a kill -9 of mocod can deliver it several times, and a second SIGTERM
     * means "stop now, without a checkpoint" to moco-train; repeated SIGHUPs (moco-train
     * alone) or SIGUSR1s (forwarded by mpirun to every rank) are one clean stop
     * (train/stop_signal.c). The check after it closes the race of a parent that died before
     * prctl. */
    if (prctl(PR_SET_PDEATHSIG, pdeath_sig) != 0) child_fail("prctl", NULL);
    if (getppid() != parent) _exit(75);
    /* Signal mask and ignored signals survive exec: mocod's own (a blocked SIGTERM, an
     * ignored SIGPIPE) must not leak into the worker, or pause would never reach it. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    static const int reset[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT, SIGUSR1,
                                SIGUSR2};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) signal(reset[i], SIG_DFL);
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0 ||
        (events_fd >= 0 && dup2(events_fd, 3) < 0))
        child_fail("dup2", NULL);
    /* Nothing else of mocod's: the database, the listening socket, other workers' pipes. */
    unsigned first = events_fd >= 0 ? 4 : 3;
    if (close_range(first, ~0U, 0) != 0)
        for (long fd = first; fd < max_fd; fd++) close((int)fd);
    if (chdir(cwd) != 0) child_fail("chdir", cwd);
    execve(program, argv, envp);
    child_fail("cannot execute", program);
}

int worker_spawn(Worker *w, const char *program, char *const argv[], char *const envp[],
                 const char *log_path, const char *events_path, int events_fd3, const char *cwd,
                 char *err, size_t errlen)
{
    int null_fd = move_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
    int log_fd = move_high(open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    int ev_fd = move_high(open(events_path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC,
                               0644));
    int read_fd = open(events_path, O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || log_fd < 0 || ev_fd < 0 || read_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s",
                 null_fd < 0 ? "/dev/null" : log_fd < 0 ? log_path : events_path, strerror(errno));
        goto fail;
    }
    long max_fd = sysconf(_SC_OPEN_MAX);
    if (max_fd <= 0 || max_fd > 65536) max_fd = 65536;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start a worker process (fork): %s", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        child_run(program, argv, envp, cwd, null_fd, log_fd, events_fd3 ? ev_fd : -1,
                  w->ranks > 1 ? SIGUSR1 : SIGHUP, parent, max_fd);
    /* Also from this side: a signal sent before the child ran setpgid must find the group. */
    setpgid(pid, pid);
    close(null_fd);
    close(log_fd);
    close(ev_fd);
    w->pid = pid;
    w->events_fd = read_fd;
    w->consumed = 0;
    w->pending = w->len = 0;
    w->overlong = 0;
    return 0;
fail:
    if (null_fd >= 0) close(null_fd);
    if (log_fd >= 0) close(log_fd);
    if (ev_fd >= 0) close(ev_fd);
    if (read_fd >= 0) close(read_fd);
    return -1;
}

int worker_open_events(Worker *w, const char *events_path, int64_t offset)
{
    int fd = open(events_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (lseek(fd, (off_t)offset, SEEK_SET) != (off_t)offset) {
        close(fd);
        return -1;
    }
    w->events_fd = fd;
    w->consumed = offset;
    w->pending = w->len = 0;
    w->overlong = 0;
    return 0;
}

/* Goes back to the line that starts at offset: the next read hands it out again. 0, or -1
 * when the file cannot be repositioned (then reading simply goes on). */
static int rewind_to(Worker *w, int64_t offset)
{
    if (lseek(w->events_fd, (off_t)offset, SEEK_SET) != (off_t)offset) return -1;
    w->consumed = offset;
    w->len = w->pending = 0;
    w->overlong = 0;
    return 0;
}

/* Hands out one complete line that starts at `start`; 0, or -1 when on_line refused it and
 * the file went back to its start. */
static int hand_out(Worker *w, int64_t start, WorkerLineFn on_line, void *ctx)
{
    w->line_start = start;
    if (on_line(ctx, w, w->line) == 0) return 0;
    return rewind_to(w, start) == 0 ? -1 : 0;
}

/* Appends n bytes to the partial line, dropping lines past the limit. 0, or -1 when a line
 * could not be applied (see worker_read). */
static int take_bytes(Worker *w, const char *p, size_t n, WorkerLineFn on_line, void *ctx)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t chunk = nl ? (size_t)(nl - p) : n;
        w->pending += chunk;
        if (!w->overlong) {
            if (w->len + chunk + 1 > WORKER_MAX_LINE) {
                w->overlong = 1;
                w->len = 0;
            } else {
                if (w->len + chunk + 1 > w->cap) {
                    size_t cap = w->cap ? w->cap : 4096;
                    while (cap < w->len + chunk + 1) cap *= 2;
                    char *grown = realloc(w->line, cap);
                    if (!grown) { /* drop this line rather than the process */
                        w->overlong = 1;
                        w->len = 0;
                    } else {
                        w->line = grown;
                        w->cap = cap;
                    }
                }
                if (!w->overlong) {
                    memcpy(w->line + w->len, p, chunk);
                    w->len += chunk;
                }
            }
        }
        if (!nl) return 0;
        int64_t start = w->consumed;
        w->consumed += (int64_t)w->pending + 1;
        if (!w->overlong) {
            w->line[w->len] = '\0';
            if (hand_out(w, start, on_line, ctx) != 0) return -1;
        }
        w->len = w->pending = 0;
        w->overlong = 0;
        p = nl + 1;
        n -= chunk + 1;
    }
    return 0;
}

int worker_read(Worker *w, WorkerLineFn on_line, void *ctx, int at_end)
{
    if (w->events_fd < 0) return 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(w->events_fd, buf, sizeof buf);
        if (n > 0) {
            if (take_bytes(w, buf, (size_t)n, on_line, ctx) != 0) return -1;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break; /* nothing more for now (or an error that the next round retries) */
    }
    if (at_end && w->len > 0 && !w->overlong) {
        w->line[w->len] = '\0';
        cJSON *probe = cJSON_Parse(w->line);
        int complete = probe != NULL;
        cJSON_Delete(probe);
        if (complete) {
            int64_t start = w->consumed;
            w->consumed += (int64_t)w->pending;
            w->len = w->pending = 0;
            if (hand_out(w, start, on_line, ctx) != 0) return -1;
        }
    }
    return 0;
}

int worker_poll_exit(Worker *w)
{
    if (w->exited) return 1;
    int status;
    pid_t r = waitpid(w->pid, &status, WNOHANG);
    if (r == w->pid) {
        w->exited = 1;
        w->status = status;
        return 1;
    }
    if (r < 0 && errno == ECHILD) {
        /* Someone else reaped it (a SIGCHLD set to SIG_IGN): its status is lost. Report it
         * as killed by a signal nobody sent, which retries the job from its checkpoint. */
        w->exited = 1;
        w->status = SIGKILL; /* WIFSIGNALED, WTERMSIG == SIGKILL */
        return 1;
    }
    return 0;
}

void worker_signal(Worker *w, int sig)
{
    if (w->exited || w->pid <= 0) return;
    if (sig == w->stop_signal) w->sent_stop = 1;
    if (sig == SIGKILL) w->sent_kill = 1;
    if (kill(-w->pid, sig) != 0 && errno == ESRCH) kill(w->pid, sig);
}

void worker_request_stop(Worker *w)
{
    if (w->sent_stop) return;
    worker_signal(w, w->stop_signal ? w->stop_signal : SIGTERM);
    w->sent_stop = 1;
    if (w->ranks > 1) {
        w->resend_gap = 1.0;
        w->resend_at = monotonic_now() + w->resend_gap;
    }
}

void worker_free(Worker *w)
{
    if (!w) return;
    if (w->events_fd >= 0) close(w->events_fd);
    w->events_fd = -1;
    free(w->line);
    w->line = NULL;
    cJSON_Delete(w->last);
    w->last = NULL;
}

char *file_last_lines(const char *path, int n)
{
    enum { TAIL = 4096 };
    char buf[TAIL + 1];
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        off_t start = 0;
        if (fstat(fd, &st) == 0 && st.st_size > TAIL) start = st.st_size - TAIL;
        ssize_t r = pread(fd, buf, TAIL, start);
        if (r > 0) got = (size_t)r;
        close(fd);
    }
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) got--;
    buf[got] = '\0';
    /* walk back n newlines */
    size_t begin = got;
    int lines = 0;
    while (begin > 0) {
        if (buf[begin - 1] == '\n' && ++lines == n) break;
        begin--;
    }
    /* Progress lines use '\r' to redraw; keep what a terminal would show last on each line. */
    char *out = malloc(got - begin + 1);
    if (!out) return strdup("");
    size_t o = 0, line_start = 0;
    for (size_t i = begin; i < got; i++) {
        char ch = buf[i];
        if (ch == '\r') {
            o = line_start;
            continue;
        }
        out[o++] = ch;
        if (ch == '\n') line_start = o;
    }
    out[o] = '\0';
    return out;
}

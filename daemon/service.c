/* service.c — the daemon core's lifetime: service_open (state directory, lock, database,
 * crash recovery, supervisor thread) and service_close (graceful stop), plus the helpers the
 * other service_*.c files share. See service.h and service_internal.h.
 */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/launch_command.h"

void service_error(ServiceError *err, int status, const char *code, const char *field,
                   const char *fmt, ...)
{
    if (!err) return;
    err->status = status;
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void service_wake(Service *s)
{
    char b = 1;
    /* Non-blocking: a full pipe already means "wake up". */
    ssize_t n = write(s->wake_pipe[1], &b, 1);
    (void)n;
}

int service_job_path(const Service *s, int64_t id, const char *suffix, char *buf, size_t n)
{
    int len = snprintf(buf, n, "%s/%lld%s", s->jobs_dir, (long long)id, suffix ? suffix : "");
    return len < 0 || (size_t)len >= n ? -1 : 0;
}

int service_read_job(Service *s, int64_t id, JobRow *row, ServiceError *err)
{
    char msg[512];
    sqlite3 *c = db_read_begin(s->db, msg, sizeof msg);
    if (!c) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        return -1;
    }
    int rc = db_job_get(c, id, row, msg, sizeof msg);
    db_read_end(s->db, c);
    if (rc == 1) {
        service_error(err, 404, "not_found", NULL, "job %lld does not exist (`mococtl ls` or "
                      "GET /api/v1/jobs lists the jobs)", (long long)id);
        return -1;
    }
    if (rc != 0) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        return -1;
    }
    return 0;
}

Worker *service_find_worker(Service *s, int64_t job)
{
    for (int i = 0; i < s->n_workers; i++)
        if (s->workers[i]->job == job) return s->workers[i];
    return NULL;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s; create it or choose another --state-dir",
                 path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder; choose another --state-dir", path);
        return -1;
    }
    return 0;
}

/* Two mocods on one state directory would both start every queued job: the second is
 * refused. flock is released by the kernel when a mocod dies, even by kill -9. */
static int take_state_lock(Service *s, char *err, size_t errlen)
{
    char path[DAEMON_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/mocod.lock", s->cfg.state_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s; mocod needs a state directory it can write "
                 "(fix its permissions or mount, or choose another with --state-dir)", path,
                 strerror(errno));
        return -1;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char other[32] = "";
        ssize_t n = pread(s->lock_fd, other, sizeof other - 1, 0);
        if (n > 0) other[n] = '\0';
        other[strcspn(other, "\n")] = '\0';
        char who[64] = "";
        if (other[0]) snprintf(who, sizeof who, " (pid %s)", other);
        snprintf(err, errlen, "another mocod%s is using the state directory %s; stop it or "
                 "start this one with another --state-dir", who, s->cfg.state_dir);
        close(s->lock_fd);
        s->lock_fd = -1;
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)len, 0) != len) {
        /* only informative (the message above); the lock itself holds */
    }
    return 0;
}

static void free_service(Service *s)
{
    if (s->wake_pipe[0] >= 0) close(s->wake_pipe[0]);
    if (s->wake_pipe[1] >= 0) close(s->wake_pipe[1]);
    if (s->bus) event_bus_release(s->bus);
    if (s->db) db_close(s->db);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s->gpu_owner);
    free(s->workers);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->export_mu);
    free(s);
}

Service *service_open(const DaemonConfig *cfg, ServiceError *err)
{
    char msg[3 * DAEMON_PATH_MAX] = ""; /* room for two paths and a reason */
    Service *s = calloc(1, sizeof *s);
    if (!s) {
        service_error(err, 500, "internal", NULL, "out of memory starting the service");
        return NULL;
    }
    s->cfg = *cfg;
    s->lock_fd = s->wake_pipe[0] = s->wake_pipe[1] = -1;
    if (pthread_mutex_init(&s->mu, NULL) != 0 || pthread_mutex_init(&s->export_mu, NULL) != 0) {
        service_error(err, 500, "internal", NULL, "cannot create the service's mutexes");
        free(s);
        return NULL;
    }
    if (s->cfg.cpu_slots < 0) s->cfg.cpu_slots = 0;
    if (s->cfg.gpus < 0) s->cfg.gpus = 0;
    if (s->cfg.grace_period_s < 0) s->cfg.grace_period_s = 0;
    if (s->cfg.max_restarts < 0) s->cfg.max_restarts = 0;
    char db_path[DAEMON_PATH_MAX + 32];
    if (snprintf(s->jobs_dir, sizeof s->jobs_dir, "%s/jobs", s->cfg.state_dir) >=
        (int)sizeof s->jobs_dir) {
        snprintf(msg, sizeof msg, "state directory path too long: %s", s->cfg.state_dir);
        goto fail;
    }
    snprintf(db_path, sizeof db_path, "%s/mocod.db", s->cfg.state_dir);
    if (make_dir(s->cfg.state_dir, msg, sizeof msg) != 0 ||
        make_dir(s->jobs_dir, msg, sizeof msg) != 0 || take_state_lock(s, msg, sizeof msg) != 0)
        goto fail;
    s->db = db_open(db_path, msg, sizeof msg);
    if (!s->db) goto fail;
    s->bus = event_bus_new();
    s->gpu_owner = calloc((size_t)(s->cfg.gpus > 0 ? s->cfg.gpus : 1), sizeof *s->gpu_owner);
    if (!s->bus || !s->gpu_owner) {
        snprintf(msg, sizeof msg, "out of memory starting the service");
        goto fail;
    }
    if (pipe2(s->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(msg, sizeof msg, "cannot create the supervisor's wake-up pipe: %s",
                 strerror(errno));
        goto fail;
    }
    s->opened_at = monotonic_now();
    char mpirun[DAEMON_PATH_MAX];
    if (launch_find_program(s->cfg.mpirun, getenv("PATH"), mpirun, sizeof mpirun) != 0)
        fprintf(stderr, "mocod: note: mpirun (setting \"%s\") was not found: pretraining jobs "
                "with more than one rank will fail until it is (Debian: apt-get install "
                "openmpi-bin; or set `mpirun:` in mocod.yaml to its path)\n", s->cfg.mpirun);
    if (recover_jobs(s, msg, sizeof msg) != 0) goto fail;
    int rc = pthread_create(&s->thread, NULL, supervisor_main, s);
    if (rc != 0) {
        snprintf(msg, sizeof msg, "cannot start the supervisor thread: %s", strerror(rc));
        goto fail;
    }
    s->thread_started = 1;
    return s;
fail:
    service_error(err, 500, "internal", NULL, "%s", msg);
    free_service(s);
    return NULL;
}

void service_close(Service *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    double deadline = monotonic_now() + s->cfg.grace_period_s;
    for (int i = 0; i < s->n_workers; i++) {
        Worker *w = s->workers[i];
        /* A pause or cancel under way ends as asked; everything else comes back queued. */
        if (w->request == WORKER_REQ_NONE) w->request = WORKER_REQ_SHUTDOWN;
        worker_request_stop(w); /* once: a second SIGTERM would skip the checkpoint */
        if (w->kill_at == 0 || w->kill_at > deadline) w->kill_at = deadline;
    }
    if (s->n_workers > 0)
        fprintf(stderr, "mocod: stopping: asked %d worker(s) to checkpoint and stop (SIGKILL "
                "after %d s)\n", s->n_workers, s->cfg.grace_period_s);
    pthread_mutex_unlock(&s->mu);
    service_wake(s);
    if (s->thread_started) pthread_join(s->thread, NULL);
    free_service(s);
}

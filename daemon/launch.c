/* launch.c — starting a queued job's worker: queued → starting, the job folder, spec.json,
 * whether it resumes from the job's own checkpoints, the command line (launch_command.c:
 * moco-train alone, or under mpirun for a multi-rank pretraining), fork/exec (worker.c), and
 * the bookkeeping of devices and CPU slots.
 *
 * pretrain resumes when the folder holds a ckpt-*.safetensors, lincls when it holds
 * lincls-last.safetensors; knn has no state and simply runs again.
 */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/json_util.h"
#include "daemon/launch_command.h"

extern char **environ;

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* 1 when dir holds a pretraining checkpoint (ckpt-e*.safetensors). */
static int has_pretrain_checkpoint(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        found = strncmp(e->d_name, "ckpt-e", 6) == 0 && n > 12 &&
                strcmp(e->d_name + n - 12, ".safetensors") == 0;
    }
    closedir(d);
    return found;
}

/* Writes text to path atomically (temporary file, fsync, rename). 0 or -1 with err. */
static int write_file_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[DAEMON_PATH_MAX + 128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The spec the worker runs: the stored resolved spec with checkpoint.dir set to the job's
 * folder and model.pretrained "job:<id>" replaced by that job's checkpoint folder. */
static char *worker_spec(Service *s, const JobRow *job, const char *ckpt_dir, char *err,
                         size_t errlen)
{
    cJSON *spec = cJSON_Parse(job->spec);
    if (!spec) {
        snprintf(err, errlen, "the stored spec of job %lld is not valid JSON", (long long)job->id);
        return NULL;
    }
    char *text = NULL;
    cJSON *pre = json_at(spec, "model.pretrained");
    if (cJSON_IsString(pre) && strncmp(pre->valuestring, "job:", 4) == 0) {
        long long other = strtoll(pre->valuestring + 4, NULL, 10);
        char dir[DAEMON_PATH_MAX + 64];
        if (service_job_path(s, other, "/checkpoints", dir, sizeof dir) != 0) {
            snprintf(err, errlen, "path too long");
            goto out;
        }
        if (!has_pretrain_checkpoint(dir)) {
            snprintf(err, errlen, "model.pretrained job:%lld: that job has no checkpoint in %s "
                     "(was it deleted, or did it fail before its first checkpoint?)", other, dir);
            goto out;
        }
        if (json_set_string(spec, "model.pretrained", dir) != 0) goto oom;
    }
    if (json_set_string(spec, "checkpoint.dir", ckpt_dir) != 0) goto oom;
    text = json_print_exact(spec);
    if (!text) goto oom;
    goto out;
oom:
    snprintf(err, errlen, "out of memory writing the spec");
out:
    cJSON_Delete(spec);
    return text;
}

static void fail_launch(Service *s, int64_t id, const char *why)
{
    char err[512], reason[3 * DAEMON_PATH_MAX + 64];
    snprintf(reason, sizeof reason, "could not start the worker: %s", why);
    fprintf(stderr, "mocod: job %lld: %s\n", (long long)id, reason);
    if (job_transition(s->db, s->bus, id, JOB_FAILED, reason, NULL, NULL, NULL, err,
                       sizeof err) < 0)
        fprintf(stderr, "mocod: job %lld: %s\n", (long long)id, err);
}

/* Makes room for one more worker in the table. 0 or -1. */
static int reserve_worker_slot(Service *s)
{
    if (s->n_workers < s->cap_workers) return 0;
    int cap = s->cap_workers ? s->cap_workers * 2 : 8;
    Worker **grown = realloc(s->workers, (size_t)cap * sizeof *grown);
    if (!grown) return -1;
    s->workers = grown;
    s->cap_workers = cap;
    return 0;
}

/* The mpirun a multi-rank job runs under, resolved now (not when mocod started): installing
 * OpenMPI later needs no restart, and a machine without it still runs single-rank jobs.
 * 0, or -1 with a reason that says how to fix it. */
static int find_mpirun(const Service *s, int ranks, char *out, size_t n, char *err,
                       size_t errlen)
{
    if (launch_find_program(s->cfg.mpirun, getenv("PATH"), out, n) == 0) return 0;
    if (strchr(s->cfg.mpirun, '/'))
        snprintf(err, errlen, "this job runs %d ranks under mpirun, and the mpirun setting "
                 "names %s, which is not an executable file: install OpenMPI (Debian: apt-get "
                 "install openmpi-bin) or fix `mpirun:` in mocod.yaml (or --mpirun); resume "
                 "the job afterwards", ranks, s->cfg.mpirun);
    else
        snprintf(err, errlen, "this job runs %d ranks under mpirun, and there is no %s on "
                 "mocod's PATH: install OpenMPI (Debian: apt-get install openmpi-bin) or give "
                 "its path as `mpirun:` in mocod.yaml (or --mpirun); resume the job afterwards",
                 ranks, s->cfg.mpirun);
    return -1;
}

void launch_job(Service *s, const JobRow *job, const int *gpus, int n_gpus)
{
    char err[3 * DAEMON_PATH_MAX], dir[DAEMON_PATH_MAX + 64], ckpt[DAEMON_PATH_MAX + 64],
        spec_path[DAEMON_PATH_MAX + 64], log_path[DAEMON_PATH_MAX + 64],
        events_path[DAEMON_PATH_MAX + 64];
    if (service_job_path(s, job->id, "", dir, sizeof dir) != 0 ||
        service_job_path(s, job->id, "/checkpoints", ckpt, sizeof ckpt) != 0 ||
        service_job_path(s, job->id, "/spec.json", spec_path, sizeof spec_path) != 0 ||
        service_job_path(s, job->id, "/log.txt", log_path, sizeof log_path) != 0 ||
        service_job_path(s, job->id, "/events.jsonl", events_path, sizeof events_path) != 0) {
        fail_launch(s, job->id, "the state directory's path is too long");
        return;
    }
    int rc = job_transition(s->db, s->bus, job->id, JOB_STARTING, "", NULL, NULL, NULL, err,
                            sizeof err);
    if (rc != JOB_TRANSITION_OK) {
        fprintf(stderr, "mocod: job %lld: cannot start: %s\n", (long long)job->id, err);
        return;
    }
    if (make_dir(dir, err, sizeof err) != 0 || make_dir(ckpt, err, sizeof err) != 0) {
        fail_launch(s, job->id, err);
        return;
    }
    char *spec = worker_spec(s, job, ckpt, err, sizeof err);
    if (!spec) {
        fail_launch(s, job->id, err);
        return;
    }
    rc = write_file_atomic(spec_path, spec, err, sizeof err);
    cJSON *spec_tree = cJSON_Parse(spec);
    cJSON_free(spec);
    if (rc != 0) {
        cJSON_Delete(spec_tree);
        fail_launch(s, job->id, err);
        return;
    }

    int resume = 0;
    if (strcmp(job->kind, "pretrain") == 0) {
        resume = has_pretrain_checkpoint(ckpt);
    } else if (strcmp(job->kind, "lincls") == 0) {
        char last[DAEMON_PATH_MAX + 96];
        snprintf(last, sizeof last, "%s/lincls-last.safetensors", ckpt);
        resume = access(last, F_OK) == 0;
    }
    cJSON *ranks_item = json_at(spec_tree, "resources.ranks");
    int ranks = launch_ranks(job->kind, cJSON_IsNumber(ranks_item) ? ranks_item->valueint : 1,
                             n_gpus);
    char mpirun[DAEMON_PATH_MAX];
    mpirun[0] = '\0';
    if (ranks > 1 && find_mpirun(s, ranks, mpirun, sizeof mpirun, err, sizeof err) != 0) {
        cJSON_Delete(spec_tree);
        fail_launch(s, job->id, err);
        return;
    }
    LaunchRequest req = {s->cfg.moco_train, mpirun, job->kind, spec_path, events_path,
                         resume ? ckpt : NULL, ranks, gpus, n_gpus, geteuid() == 0, environ};
    LaunchCommand cmd;
    Worker *w = calloc(1, sizeof *w);
    /* Room in the table first: once the worker runs, it must be tracked. */
    if (launch_command_build(&req, &cmd, err, sizeof err) != 0 || !w ||
        reserve_worker_slot(s) != 0) {
        cJSON_Delete(spec_tree);
        free(w);
        launch_command_free(&cmd);
        fail_launch(s, job->id, "out of memory");
        return;
    }
    w->job = job->id;
    w->events_fd = -1;
    w->n_gpus = n_gpus;
    for (int i = 0; i < n_gpus; i++) w->gpus[i] = gpus[i];
    w->ranks = cmd.ranks;
    w->stop_signal = cmd.ranks > 1 ? SIGUSR1 : SIGTERM; /* worker.h says why */
    cJSON *bs = json_at(spec_tree, "optim.batch_size"), *ep = json_at(spec_tree, "optim.epochs");
    w->batch_size = cJSON_IsNumber(bs) ? bs->valueint : 0;
    /* A kNN evaluation is one pass without epochs (its spec still holds the default
     * optim.epochs, which would show as "epoch 1/200"). */
    w->epochs = strcmp(job->kind, "knn") == 0 ? 0 : cJSON_IsNumber(ep) ? ep->valueint : -1;
    cJSON_Delete(spec_tree);
    w->last = cJSON_Parse(job->last_metrics);
    if (!cJSON_IsObject(w->last)) {
        cJSON_Delete(w->last);
        w->last = cJSON_CreateObject();
    }
    w->total_steps = w->steps_per_epoch = -1;

    /* The log says what ran, so a user reading it can rerun the worker by hand. */
    FILE *log = fopen(log_path, "ae");
    if (log) {
        fprintf(log, "=== mocod: job %lld (restarts %d, %d rank%s): %s ===\n", (long long)job->id,
                job->restarts, cmd.ranks, cmd.ranks == 1 ? "" : "s", cmd.display);
        fclose(log);
    }
    /* Every event of earlier attempts was applied (by the supervisor at their exit, or by
     * recovery): the file starts empty. The offset goes to 0 first, so a crash in between
     * at worst replays events already applied, which changes nothing. */
    sqlite3 *c = db_write_begin(s->db);
    rc = db_job_set_events_offset(c, job->id, 0, err, sizeof err);
    db_write_end(s->db);
    if (rc == 0)
        rc = worker_spawn(w, cmd.program, cmd.argv, cmd.env, log_path, events_path,
                          cmd.events_fd3, dir, err, sizeof err);
    launch_command_free(&cmd);
    if (rc != 0) {
        worker_free(w);
        free(w);
        fail_launch(s, job->id, err);
        return;
    }
    char gpus_json[WORKER_MAX_GPUS * 8 + 8];
    size_t len = (size_t)snprintf(gpus_json, sizeof gpus_json, "[");
    for (int i = 0; i < n_gpus; i++)
        len += (size_t)snprintf(gpus_json + len, sizeof gpus_json - len, i ? ",%d" : "%d", gpus[i]);
    snprintf(gpus_json + len, sizeof gpus_json - len, "]");
    c = db_write_begin(s->db);
    if (db_job_set_worker(c, job->id, w->pid, gpus_json, err, sizeof err) != 0)
        fprintf(stderr, "mocod: job %lld: %s\n", (long long)job->id, err);
    db_write_end(s->db);
    s->workers[s->n_workers++] = w; /* the slot was reserved above */
    if (n_gpus == 0) s->cpu_used++;
    for (int i = 0; i < n_gpus; i++) s->gpu_owner[gpus[i]] = job->id;
    fprintf(stderr, "mocod: job %lld: started worker %ld%s%s\n", (long long)job->id,
            (long)w->pid, w->ranks > 1 ? " (mpirun)" : "",
            resume ? " (resuming from its checkpoint)" : "");
}

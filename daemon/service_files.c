/* service_files.c — a job's files: the log's path, whether it still grows, the checkpoint
 * list (files on disk are the truth; sha256 cached in SQLite by size and mtime), and the
 * path of one checkpoint or of its backbone export (made once by `moco-train --export
 * backbone`, kept in STATE_DIR/jobs/<id>/exports/ until the checkpoint changes).
 */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/checkpoint_files.h"
#include "db/db_checkpoints.h"

extern char **environ;

int service_log_path(Service *s, int64_t id, char *buf, size_t buflen, ServiceError *err)
{
    JobRow row;
    if (service_read_job(s, id, &row, err) != 0) return -1;
    job_row_free(&row);
    if (service_job_path(s, id, "/log.txt", buf, buflen) != 0) {
        service_error(err, 500, "internal", NULL, "log path too long");
        return -1;
    }
    return 0;
}

int service_job_is_active(Service *s, int64_t id)
{
    JobRow row;
    if (service_read_job(s, id, &row, NULL) != 0) return -1;
    JobState st;
    int active = job_state_parse(row.state, &st) == 0 && !job_state_is_finished(st) &&
                 st != JOB_PAUSED;
    job_row_free(&row);
    return active;
}

static double mtime_of(const struct stat *st)
{
    return (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec * 1e-9;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the checkpoint files in dir, sorted. *names malloc'd. 0 or -1 (errno). */
static int list_names(const char *dir, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!checkpoint_name_ok(e->d_name)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown) break;
            *names = grown;
        }
        char *copy = strdup(e->d_name);
        if (!copy) break;
        (*names)[(*n)++] = copy;
    }
    closedir(d);
    if (*n > 1) qsort(*names, (size_t)*n, sizeof **names, compare_names);
    return 0;
}

/* The cached facts of a checkpoint, computing (and caching) what is missing. */
static int describe_checkpoint(Service *s, int64_t id, const char *dir, const char *name,
                               const struct stat *st, DbCheckpoint *ck, char *msg, size_t n)
{
    char path[DAEMON_PATH_MAX + 320];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sqlite3 *c = db_read_begin(s->db, msg, n);
    if (!c) return -1;
    int hit = db_checkpoint_lookup(c, id, name, st->st_size, mtime_of(st), ck, msg, n);
    db_read_end(s->db, c);
    if (hit < 0) return -1;
    if (hit == 1 && ck->sha256[0] && ck->step >= 0) return 0;
    /* Hashing a large file takes a while: no lock is held meanwhile. */
    ck->size = st->st_size;
    ck->mtime = mtime_of(st);
    checkpoint_read_position(path, &ck->step, &ck->epoch);
    if (file_sha256(path, ck->sha256, msg, n) != 0) return -1;
    c = db_write_begin(s->db);
    int rc = db_checkpoint_store(c, id, name, ck, msg, n);
    db_write_end(s->db);
    return rc;
}

cJSON *service_list_checkpoints(Service *s, int64_t id, ServiceError *err)
{
    char dir[DAEMON_PATH_MAX + 64], msg[1024] = "out of memory";
    JobRow row;
    if (service_read_job(s, id, &row, err) != 0) return NULL;
    job_row_free(&row);
    if (service_job_path(s, id, "/checkpoints", dir, sizeof dir) != 0) {
        service_error(err, 500, "internal", NULL, "path too long");
        return NULL;
    }
    char **names;
    int n;
    if (list_names(dir, &names, &n) != 0) {
        service_error(err, 500, "internal", NULL, "cannot read %s: %s", dir, strerror(errno));
        return NULL;
    }
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "checkpoints");
    char **present = calloc((size_t)(n > 0 ? n : 1), sizeof *present); /* not owning */
    int ok = out && list && present;
    int kept = 0;
    for (int i = 0; ok && i < n; i++) {
        char path[DAEMON_PATH_MAX + 320];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        /* lstat: a symlink planted in the folder is not a checkpoint of this job */
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        present[kept++] = names[i];
        DbCheckpoint ck;
        if (describe_checkpoint(s, id, dir, names[i], &st, &ck, msg, sizeof msg) != 0) {
            if (errno == ENOENT) continue; /* removed by keep_last meanwhile */
            ok = 0;
            break;
        }
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(list, o) && cJSON_AddStringToObject(o, "name", names[i]) &&
             (ck.step >= 0 ? cJSON_AddNumberToObject(o, "step", (double)ck.step)
                           : cJSON_AddNullToObject(o, "step")) &&
             (ck.epoch >= 0 ? cJSON_AddNumberToObject(o, "epoch", (double)ck.epoch)
                            : cJSON_AddNullToObject(o, "epoch")) &&
             cJSON_AddNumberToObject(o, "size", (double)ck.size) &&
             cJSON_AddStringToObject(o, "sha256", ck.sha256) &&
             cJSON_AddNumberToObject(o, "mtime", ck.mtime);
    }
    if (ok) {
        sqlite3 *c = db_write_begin(s->db);
        ok = db_checkpoint_forget_others(c, id, present, kept, msg, sizeof msg) == 0;
        db_write_end(s->db);
    }
    free(present);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!ok) {
        cJSON_Delete(out);
        service_error(err, 500, "internal", NULL, "%s", msg);
        return NULL;
    }
    return out;
}

/* The __metadata__ format of a safetensors file, into buf ("" when unreadable). */
static void checkpoint_format(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    unsigned char len8[8];
    if (pread(fd, len8, 8, 0) == 8) {
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--) len = (len << 8) | len8[i];
        char *h = len > 0 && len < (16u << 20) ? malloc((size_t)len + 1) : NULL;
        if (h && pread(fd, h, (size_t)len, 8) == (ssize_t)len) {
            cJSON *root = cJSON_ParseWithLength(h, (size_t)len);
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), "format");
            if (cJSON_IsString(f)) snprintf(buf, n, "%s", f->valuestring);
            cJSON_Delete(root);
        }
        free(h);
    }
    close(fd);
}

/* Runs `moco-train --export backbone --checkpoint in --out out`, its output into log. */
static int run_export(Service *s, const char *in, const char *out, const char *log, char *msg,
                      size_t n)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        snprintf(msg, n, "cannot prepare the export process");
        return -1;
    }
    int ok = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) == 0 &&
             posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644) == 0 &&
             posix_spawn_file_actions_adddup2(&fa, 1, 2) == 0 &&
             posix_spawn_file_actions_addclosefrom_np(&fa, 3) == 0;
    char *argv[] = {s->cfg.moco_train, "--export", "backbone", "--checkpoint", (char *)in,
                    "--out", (char *)out, NULL};
    pid_t pid;
    int rc = ok ? posix_spawn(&pid, s->cfg.moco_train, &fa, NULL, argv, environ) : -1;
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(msg, n, "cannot run %s: %s", s->cfg.moco_train, strerror(rc > 0 ? rc : errno));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(msg, n, "lost the export process: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    char *tail = file_last_lines(log, 5);
    snprintf(msg, n, "moco-train --export backbone failed: %s", tail && tail[0] ? tail : "(no output)");
    free(tail);
    return -1;
}

/* The backbone export of checkpoint `path` (named `name`), made when missing or older than
 * the checkpoint. */
static int backbone_export(Service *s, int64_t id, const char *name, const char *path,
                           char *out, size_t outlen, ServiceError *err)
{
    char format[64], dir[DAEMON_PATH_MAX + 64], log[DAEMON_PATH_MAX + 128],
        msg[3 * DAEMON_PATH_MAX];
    checkpoint_format(path, format, sizeof format);
    if (strcmp(format, "mocod-checkpoint") != 0) {
        service_error(err, 400, "bad_request", NULL, "format=backbone exports pretraining "
                      "checkpoints (ckpt-*.safetensors); %s is %s%s", name,
                      format[0] ? "a file of format " : "not one", format);
        return -1;
    }
    if (service_job_path(s, id, "/exports", dir, sizeof dir) != 0 ||
        (mkdir(dir, 0755) != 0 && errno != EEXIST)) {
        service_error(err, 500, "internal", NULL, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t stem = strlen(name) - strlen(".safetensors");
    if ((size_t)snprintf(out, outlen, "%s/%.*s.backbone.safetensors", dir, (int)stem, name) >= outlen) {
        service_error(err, 500, "internal", NULL, "path too long");
        return -1;
    }
    snprintf(log, sizeof log, "%s/.export.log", dir);
    pthread_mutex_lock(&s->export_mu);
    struct stat cs, es;
    int fresh = stat(path, &cs) == 0 && stat(out, &es) == 0 &&
                (es.st_mtim.tv_sec > cs.st_mtim.tv_sec ||
                 (es.st_mtim.tv_sec == cs.st_mtim.tv_sec && es.st_mtim.tv_nsec >= cs.st_mtim.tv_nsec));
    int rc = fresh ? 0 : run_export(s, path, out, log, msg, sizeof msg);
    pthread_mutex_unlock(&s->export_mu);
    if (rc != 0) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        return -1;
    }
    return 0;
}

int service_checkpoint_file(Service *s, int64_t id, const char *name, const char *format,
                            char *path, size_t pathlen, ServiceError *err)
{
    JobRow row;
    if (service_read_job(s, id, &row, err) != 0) return -1;
    job_row_free(&row);
    char dir[DAEMON_PATH_MAX + 64], file[DAEMON_PATH_MAX + 320];
    struct stat st;
    if (!name || !checkpoint_name_ok(name) ||
        service_job_path(s, id, "/checkpoints", dir, sizeof dir) != 0 ||
        (size_t)snprintf(file, sizeof file, "%s/%s", dir, name) >= sizeof file ||
        lstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        service_error(err, 404, "not_found", NULL, "job %lld has no checkpoint named '%.200s' "
                      "(GET /api/v1/jobs/%lld/checkpoints lists them)", (long long)id,
                      name ? name : "", (long long)id);
        return -1;
    }
    if (format && format[0] && strcmp(format, "backbone") != 0) {
        service_error(err, 400, "bad_request", NULL, "format must be 'backbone' (or absent for "
                      "the checkpoint itself), got '%.64s'", format);
        return -1;
    }
    if (format && format[0]) return backbone_export(s, id, name, file, path, pathlen, err);
    if ((size_t)snprintf(path, pathlen, "%s", file) >= pathlen) {
        service_error(err, 500, "internal", NULL, "path too long");
        return -1;
    }
    return 0;
}

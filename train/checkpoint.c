/* checkpoint.c — see checkpoint.h. */
#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

int make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[CONFIG_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create folder %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s exists but is not a folder", path);
        return -1;
    }
    return 0;
}

static int is_checkpoint_name(const char *name)
{
    size_t n = strlen(name);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    return strncmp(name, "ckpt-e", 6) == 0 && n > e && strcmp(name + n - e, ext) == 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the checkpoints in dir (oldest first). */
static char **list_checkpoints(const char *dir, int *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!is_checkpoint_name(ent->d_name)) continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, (size_t)cap * sizeof *names);
        }
        names[(*count)++] = xstrdup(ent->d_name);
    }
    closedir(d);
    if (*count) qsort(names, (size_t)*count, sizeof *names, compare_names);
    return names;
}

static void free_names(char **names, int count)
{
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

static void remove_old_checkpoints(const char *dir, int keep_last)
{
    if (keep_last <= 0) return; /* 0 keeps everything */
    int count;
    char **names = list_checkpoints(dir, &count);
    for (int i = 0; i < count - keep_last; i++) {
        char path[CONFIG_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0) warn("could not remove old checkpoint %s: %s", path, strerror(errno));
    }
    free_names(names, count);
}

void checkpoint_remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        /* ".ckpt-e0003-s000000006.safetensors.tmp.<pid>", as st_writer_save names them
         * (".lincls-last..." for linear evaluation) */
        const char *name = ent->d_name, *tag = strstr(name, ".safetensors.tmp.");
        if ((strncmp(name, ".ckpt-e", 7) != 0 && strncmp(name, ".lincls-", 8) != 0) || !tag)
            continue;
        char *end;
        errno = 0;
        long pid = strtol(tag + strlen(".safetensors.tmp."), &end, 10);
        if (errno || *end || pid <= 0) continue;
        /* A live process other than us may be writing it (two runs sharing a folder). */
        if (pid != (long)getpid() && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) continue;
        char path[CONFIG_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (unlink(path) == 0)
            fprintf(stderr, "removed %s, an unfinished checkpoint of an interrupted run\n", path);
    }
    closedir(d);
}

int checkpoint_newest(const char *dir, char *out, size_t len)
{
    int count;
    char **names = list_checkpoints(dir, &count);
    if (count > 0) snprintf(out, len, "%s/%s", dir, names[count - 1]);
    free_names(names, count);
    return count > 0;
}

void checkpoint_save(Moco *m, const JobConfig *cfg, const CheckpointCursor *cur,
                     char *path_out, size_t path_len)
{
    char err[1024];
    if (make_dirs(cfg->checkpoint.dir, err, sizeof err) != 0)
        die("checkpoint.dir: %s; set checkpoint.dir to a writable folder", err);
    snprintf(path_out, path_len, "%s/ckpt-e%04d-s%09" PRId64 ".safetensors", cfg->checkpoint.dir,
             cur->epochs_done, cur->step);

    StWriter *w = st_writer_new();
    moco_write_state(m, w);
    char num[64];
    st_writer_add_metadata(w, "format", CHECKPOINT_FORMAT);
    st_writer_add_metadata(w, "format_version", CHECKPOINT_FORMAT_VERSION);
    snprintf(num, sizeof num, "%" PRId64, cur->step);
    st_writer_add_metadata(w, "step", num);
    snprintf(num, sizeof num, "%d", cur->epochs_done);
    st_writer_add_metadata(w, "epoch", num);
    st_writer_add_metadata(w, "arch", cfg->model.arch);
    st_writer_add_metadata(w, "config", cfg->resolved_json);
    snprintf(num, sizeof num, "{\"epoch\": %d, \"batch\": %d}", cur->next_epoch, cur->next_batch);
    st_writer_add_metadata(w, "cursor", num);
    int rc = st_writer_save(w, path_out, err, sizeof err);
    st_writer_free(w);
    if (rc != 0) die("could not write checkpoint: %s; free disk space or point checkpoint.dir elsewhere", err);
    remove_old_checkpoints(cfg->checkpoint.dir, cfg->checkpoint.keep_last);
}

static int read_int_meta(const StFile *f, const char *key, int64_t *out)
{
    const char *v = st_metadata(f, key);
    if (!v) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end) return -1;
    *out = x;
    return 0;
}

int checkpoint_open(const char *path, StFile *f, CheckpointCursor *cur, char *err, size_t errlen)
{
    char file[CONFIG_PATH_MAX + 256];
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "checkpoint %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        int count;
        char **names = list_checkpoints(path, &count);
        if (count == 0) {
            free_names(names, count);
            snprintf(err, errlen, "folder %s holds no ckpt-*.safetensors checkpoint", path);
            return -1;
        }
        snprintf(file, sizeof file, "%s/%s", path, names[count - 1]);
        free_names(names, count);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    if (st_load(file, f, err, errlen) != 0) return -1;

    const char *format = st_metadata(f, "format");
    if (!format || strcmp(format, CHECKPOINT_FORMAT) != 0) {
        snprintf(err, errlen, "%s is not a mocod checkpoint (metadata format is %s); "
                 "a backbone export or a converted PyTorch file cannot be resumed", file,
                 format ? format : "missing");
        st_free(f);
        return -1;
    }
    int64_t step, epoch;
    if (read_int_meta(f, "step", &step) || read_int_meta(f, "epoch", &epoch)) {
        snprintf(err, errlen, "%s: metadata step/epoch missing or not integers", file);
        st_free(f);
        return -1;
    }
    cJSON *c = cJSON_Parse(st_metadata(f, "cursor") ? st_metadata(f, "cursor") : "");
    cJSON *ce = c ? cJSON_GetObjectItem(c, "epoch") : NULL;
    cJSON *cb = c ? cJSON_GetObjectItem(c, "batch") : NULL;
    /* Checked, not trusted: a negative or saturated cursor would otherwise run epochs that
     * do not exist and name checkpoints "ckpt-e-005-...". */
    int cursor_ok = cJSON_IsNumber(ce) && cJSON_IsNumber(cb) && ce->valuedouble >= 0 &&
                    cb->valuedouble >= 0 && ce->valuedouble <= (1 << 30) &&
                    cb->valuedouble <= (1 << 30) && ce->valuedouble == floor(ce->valuedouble) &&
                    cb->valuedouble == floor(cb->valuedouble) && step >= 0 && epoch >= 0 &&
                    epoch <= (1 << 30);
    if (!cursor_ok) {
        cJSON_Delete(c);
        snprintf(err, errlen, "%s: metadata step, epoch or cursor missing, negative or malformed", file);
        st_free(f);
        return -1;
    }
    cur->step = step;
    cur->epochs_done = (int)epoch;
    cur->next_epoch = ce->valueint;
    cur->next_batch = cb->valueint;
    cJSON_Delete(c);
    return 0;
}

int checkpoint_export_backbone(const char *in, const char *out, char *err, size_t errlen)
{
    StFile f;
    if (st_load(in, &f, err, errlen) != 0) return -1;
    /* Accept a mocod checkpoint (encoder_q.* prefix) as well as an earlier export. */
    const char *prefix = "encoder_q.";
    size_t plen = strlen(prefix);
    int have_prefixed = 0;
    for (int i = 0; i < f.count; i++)
        if (strncmp(f.tensors[i].name, prefix, plen) == 0) have_prefixed = 1;
    if (!have_prefixed) {
        snprintf(err, errlen, "%s holds no encoder_q.* tensors: not a mocod checkpoint", in);
        st_free(&f);
        return -1;
    }
    StWriter *w = st_writer_new();
    for (int i = 0; i < f.count; i++) {
        const StTensor *t = &f.tensors[i];
        if (strncmp(t->name, prefix, plen) != 0) continue;
        const char *name = t->name + plen;
        if (strncmp(name, "fc.", 3) == 0) continue; /* the projection head is not backbone */
        st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data);
    }
    st_writer_add_metadata(w, "format", "mocod-backbone");
    st_writer_add_metadata(w, "format_version", CHECKPOINT_FORMAT_VERSION);
    const char *arch = st_metadata(&f, "arch");
    if (arch) st_writer_add_metadata(w, "arch", arch);
    /* The job spec tells a loader how to build the network (model.cifar_stem, model.arch). */
    const char *config = st_metadata(&f, "config");
    if (config) st_writer_add_metadata(w, "config", config);
    int rc = st_writer_save(w, out, err, errlen);
    st_writer_free(w);
    st_free(&f);
    return rc;
}

/* lincls_checkpoint.c — linear-evaluation checkpoints: lincls-last / lincls-best writing,
 * opening one for --resume, and the checks that a resume or a new run is consistent. The
 * tensors and metadata are listed in lincls.h. */
#include "train/lincls_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "train/checkpoint.h"
#include "train/events.h"
#include "train/pretrained.h"

static int64_t meta_int(const StFile *f, const char *file, const char *key)
{
    const char *v = st_metadata(f, key);
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : -1;
    if (!v || errno || end == v || *end || x < 0 || x > (1ll << 40))
        die("--resume %s: metadata '%s' is missing or not a non-negative integer", file, key);
    return x;
}

/* Opens lincls-last (a file, or the checkpoint.dir holding it) and reads its cursor. */
void lincls_open_resume(const char *arg, StFile *f, char *file, size_t len, LinclsCursor *cur)
{
    char err[1024];
    struct stat st;
    if (stat(arg, &st) != 0) die("--resume %s: %s", arg, strerror(errno));
    if (S_ISDIR(st.st_mode)) snprintf(file, len, "%s/%s", arg, LINCLS_LAST_NAME);
    else snprintf(file, len, "%s", arg);
    if (st_load(file, f, err, sizeof err) != 0) die("--resume: %s", err);
    const char *format = st_metadata(f, "format");
    if (!format || strcmp(format, PRETRAINED_FORMAT_LINCLS) != 0)
        die("--resume %s is not a lincls checkpoint (metadata format %s): lincls resumes from "
            "the %s in its checkpoint.dir; to evaluate a pretrained model start a new run with "
            "--set model.pretrained=%s", file, format ? format : "missing", LINCLS_LAST_NAME, file);
    cur->step = meta_int(f, file, "step");
    cur->epochs_done = (int)meta_int(f, file, "epoch");
    cJSON *c = cJSON_Parse(st_metadata(f, "cursor") ? st_metadata(f, "cursor") : "");
    cJSON *ce = cJSON_GetObjectItem(c, "epoch"), *cb = cJSON_GetObjectItem(c, "batch");
    if (!cJSON_IsNumber(ce) || !cJSON_IsNumber(cb) || ce->valueint < 0 || cb->valueint < 0)
        die("--resume %s: metadata cursor missing or malformed", file);
    cur->next_epoch = ce->valueint;
    cur->next_batch = cb->valueint;
    cJSON_Delete(c);
    const char *best = st_metadata(f, "best_top1");
    cur->best_top1 = best ? strtod(best, NULL) : -1;
}

/* With --config and --resume, the model keys must agree with the checkpoint's. */
void lincls_check_resume_model(const StFile *f, const char *file, const JobConfig *cfg)
{
    const char *arch = st_metadata(f, "arch"), *stem = st_metadata(f, "cifar_stem");
    if (arch && strcmp(arch, cfg->model.arch) != 0)
        die("--resume %s: the checkpoint holds a %s but model.arch is %s; resume with --set "
            "model.arch=%s", file, arch, cfg->model.arch, arch);
    if (stem && atoi(stem) != cfg->model.cifar_stem)
        die("--resume %s: the checkpoint was trained with model.cifar_stem=%s but the config "
            "gives %s; resume with --set model.cifar_stem=%s", file,
            atoi(stem) ? "true" : "false", cfg->model.cifar_stem ? "true" : "false",
            atoi(stem) ? "true" : "false");
}

/* A new run must not overwrite another run's lincls-last/best; the folder must be writable
 * now rather than when the first epoch ends. */
void lincls_check_checkpoint_dir(const JobConfig *cfg, int resuming)
{
    char err[1024], path[CONFIG_PATH_MAX + 64];
    if (make_dirs(cfg->checkpoint.dir, err, sizeof err) != 0)
        die("checkpoint.dir: %s; set checkpoint.dir to a writable folder", err);
    snprintf(path, sizeof path, "%s/%s", cfg->checkpoint.dir, LINCLS_LAST_NAME);
    if (!resuming && access(path, F_OK) == 0)
        die("checkpoint.dir %s already holds %s of another linear evaluation; continue that run "
            "with --resume %s, or start a new one with --set checkpoint.dir=OTHER_FOLDER",
            cfg->checkpoint.dir, LINCLS_LAST_NAME, cfg->checkpoint.dir);
    snprintf(path, sizeof path, "%s/.moco-write-test.%ld", cfg->checkpoint.dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("checkpoint.dir: cannot create files in %s: %s; set checkpoint.dir to a writable folder",
            cfg->checkpoint.dir, strerror(errno));
    close(fd);
    unlink(path);
    checkpoint_remove_stale_temps(cfg->checkpoint.dir);
}

static char *classes_json(const ImageFolder *f)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < f->num_classes; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(f->classes[i]));
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!s) die("out of memory listing the classes");
    return s;
}

void lincls_check_resume_classes(const StFile *f, const char *file, const ImageFolder *train)
{
    const char *theirs = st_metadata(f, "classes");
    char *ours = classes_json(train);
    if (theirs && strcmp(theirs, ours) != 0)
        die("--resume %s: the checkpoint was trained on the classes %s but data.train (%s) has "
            "%s; resume with the same data.train", file, theirs, train->root, ours);
    cJSON_free(ours);
}

void lincls_save(Lincls *m, const LinclsSaveInfo *info, const LinclsCursor *cur, const char *name)
{
    char path[CONFIG_PATH_MAX + 64], err[1024], num[64];
    snprintf(path, sizeof path, "%s/%s", info->cfg->checkpoint.dir, name);
    StWriter *w = st_writer_new();
    lincls_write_state(m, w);
    st_writer_add_metadata(w, "format", PRETRAINED_FORMAT_LINCLS);
    st_writer_add_metadata(w, "format_version", LINCLS_FORMAT_VERSION);
    snprintf(num, sizeof num, "%" PRId64, cur->step);
    st_writer_add_metadata(w, "step", num);
    snprintf(num, sizeof num, "%d", cur->epochs_done);
    st_writer_add_metadata(w, "epoch", num);
    snprintf(num, sizeof num, "{\"epoch\": %d, \"batch\": %d}", cur->next_epoch, cur->next_batch);
    st_writer_add_metadata(w, "cursor", num);
    snprintf(num, sizeof num, "%.17g", cur->best_top1);
    st_writer_add_metadata(w, "best_top1", num);
    st_writer_add_metadata(w, "arch", info->cfg->model.arch);
    st_writer_add_metadata(w, "cifar_stem", info->cfg->model.cifar_stem ? "1" : "0");
    char *classes = classes_json(info->train);
    st_writer_add_metadata(w, "classes", classes);
    st_writer_add_metadata(w, "config", info->cfg->resolved_json);
    st_writer_add_metadata(w, "pretrained", info->pretrained);
    int rc = st_writer_save(w, path, err, sizeof err);
    st_writer_free(w);
    cJSON_free(classes);
    if (rc != 0)
        die("could not write checkpoint: %s; free disk space or point checkpoint.dir elsewhere", err);
    cJSON *e = event_new("checkpoint");
    cJSON_AddStringToObject(e, "path", path);
    events_emit(e);
    fprintf(stderr, "checkpoint: %s\n", path);
}


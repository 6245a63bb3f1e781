/* submit.c — service_submit: a job spec from a request body becomes a queued job.
 *
 * The body is YAML or JSON (JSON is YAML; cJSON reads it when it looks like JSON, for byte
 * exact error positions). The daemon keys (priority, not_before, after, max_restarts) are
 * taken out and checked here; the rest is the job spec, checked by train/config.h exactly as
 * moco-train checks it, so a job that is accepted also starts. On top of that:
 *   - data.train, data.val and model.pretrained must exist, be readable and lie, after
 *     realpath(), under one of the daemon's data roots; the spec stores the real path, so the
 *     job reads what was checked;
 *   - model.pretrained "job:<id>" must name a pretrain job (and implies after: <id>);
 *   - resources.gpus must not exceed the GPUs the daemon offers; a pretraining on GPUs runs one
 *     rank per GPU (resources.ranks, if given, must say the same), one on the CPU at most
 *     RANKS_PER_CORE ranks per core (each rank is a process with its own copy of the model);
 *   - checkpoint.dir is always STATE_DIR/jobs/<id>/checkpoints.
 * Errors are 400 invalid_spec with the key in `field` where it can be named.
 */
#include "daemon/service_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/json_util.h"
#include "train/config.h"
#include "train/config_yaml.h"

#define CONFIG_PREFIX "job spec (JSON): "

/* The daemon keys of a submission. */
typedef struct {
    int priority;
    double not_before;   /* NAN: none */
    int64_t after;       /* 0: none */
    int max_restarts;
} DaemonKeys;

static int days_from_civil(int y, int m, int d)
{
    /* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm) */
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int parse_rfc3339(const char *t, double *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(t, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return -1;
    if (t[10] != 'T' && t[10] != 't' && t[10] != ' ') return -1;
    const char *p = t + 11;
    if (sscanf(p, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8) return -1;
    p += 8;
    double frac = 0;
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (*p < '0' || *p > '9') return -1;
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10) frac += (*p - '0') * scale;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
            return -1;
        offset = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -1;
    *out = (double)days_from_civil(y, mo, d) * 86400.0 + h * 3600 + mi * 60 + sec + frac - offset;
    return 0;
}

static int is_int_in(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

/* Takes the daemon keys out of the tree. 0, or -1 with err (400, field named). */
static int take_daemon_keys(Service *s, cJSON *tree, DaemonKeys *k, ServiceError *err)
{
    k->priority = 0;
    k->not_before = NAN;
    k->after = 0;
    k->max_restarts = s->cfg.max_restarts;
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(tree, "priority");
    int ok = 1;
    if (v && !cJSON_IsNull(v)) {
        if (!is_int_in(v, -1000000, 1000000)) {
            service_error(err, 400, "invalid_spec", "priority", "priority must be an integer "
                          "between -1000000 and 1000000 (higher runs first)");
            ok = 0;
        } else {
            k->priority = (int)v->valuedouble;
        }
    }
    cJSON_Delete(v);
    if (!ok) return -1;

    v = cJSON_DetachItemFromObjectCaseSensitive(tree, "not_before");
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0) {
            k->not_before = v->valuedouble;
        } else if (cJSON_IsString(v) && parse_rfc3339(v->valuestring, &k->not_before) == 0) {
        } else {
            service_error(err, 400, "invalid_spec", "not_before", "not_before must be Unix "
                          "seconds (a number) or an RFC 3339 time such as "
                          "\"2026-05-01T22:00:00Z\" or \"2026-05-01T22:00:00+02:00\"");
            ok = 0;
        }
    }
    cJSON_Delete(v);
    if (!ok) return -1;

    v = cJSON_DetachItemFromObjectCaseSensitive(tree, "after");
    if (v && !cJSON_IsNull(v)) {
        if (!is_int_in(v, 1, 9007199254740991.0)) {
            service_error(err, 400, "invalid_spec", "after", "after must be the id of another "
                          "job (a positive integer)");
            ok = 0;
        } else {
            k->after = (int64_t)v->valuedouble;
        }
    }
    cJSON_Delete(v);
    if (!ok) return -1;

    v = cJSON_DetachItemFromObjectCaseSensitive(tree, "max_restarts");
    if (v && !cJSON_IsNull(v)) {
        if (!is_int_in(v, 0, 1000)) {
            service_error(err, 400, "invalid_spec", "max_restarts", "max_restarts must be an "
                          "integer between 0 and 1000");
            ok = 0;
        } else {
            k->max_restarts = (int)v->valuedouble;
        }
    }
    cJSON_Delete(v);
    return ok ? 0 : -1;
}

/* The key a config error message is about: "unknown key 'x'" gives x; otherwise a message
 * that starts with a key path ("optim.lr must be ..."). "" when none can be named. */
static void field_of_message(const char *msg, char *field, size_t n)
{
    static const char *const tops[] = {"kind", "method", "name", "model", "moco", "data", "optim",
                                       "checkpoint", "eval", "resources", "log", "seed",
                                       "precision"};
    field[0] = '\0';
    const char *u = strstr(msg, "unknown key '");
    if (u == msg) {
        const char *start = u + strlen("unknown key '"), *end = strchr(start, '\'');
        if (end && (size_t)(end - start) < n) snprintf(field, n, "%.*s", (int)(end - start), start);
        return;
    }
    size_t len = strspn(msg, "abcdefghijklmnopqrstuvwxyz_.0123456789");
    if (len == 0 || len >= n) return;
    size_t top = strcspn(msg, ".");
    if (top > len) top = len;
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++)
        if (strlen(tops[i]) == top && strncmp(msg, tops[i], top) == 0) {
            snprintf(field, n, "%.*s", (int)len, msg);
            return;
        }
}

/* Loads the spec tree through train/config.h. 0, or -1 with a 400 naming the field. */
static int check_spec(cJSON *tree, JobConfig *cfg, ServiceError *err)
{
    char *text = json_print_exact(tree);
    if (!text) {
        service_error(err, 500, "internal", NULL, "out of memory checking the job spec");
        return -1;
    }
    char msg[2048];
    int rc = config_load_json(text, cfg, msg, sizeof msg);
    cJSON_free(text);
    if (rc == 0) return 0;
    const char *m = strncmp(msg, CONFIG_PREFIX, strlen(CONFIG_PREFIX)) == 0
                        ? msg + strlen(CONFIG_PREFIX) : msg;
    char field[128];
    field_of_message(m, field, sizeof field);
    service_error(err, 400, "invalid_spec", field, "%s", m);
    return -1;
}

/* Lists the data roots for messages: "/a, /b". */
static void roots_text(const Service *s, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->cfg.n_data_roots && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", s->cfg.data_roots[i]);
    if (s->cfg.n_data_roots == 0) snprintf(buf, n, "none configured");
}

static int under_root(const char *path, const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') n--; /* "/data/" is "/data" */
    if (n == 1 && root[0] == '/') return 1;
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* 1 when the folder holds at least one visible subfolder (a class of an ImageFolder root).
 * Stops at the first: a root has a handful to a thousand entries, a class folder many more. */
static int has_class_folder(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 1; /* unreadable is reported by the caller's access() check, or the worker */
    struct dirent *e;
    int found = 0;
    char path[PATH_MAX + 260];
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        found = stat(path, &st) == 0 && S_ISDIR(st.st_mode); /* symlinked classes count */
    }
    closedir(d);
    return found;
}

/* A data path of the spec: absolute, existing, readable, under a data root; replaced in the
 * tree by its real path. 0, or -1 with a 400 naming the field. */
static int check_data_path(Service *s, cJSON *tree, const char *field, const char *value,
                           ServiceError *err)
{
    char real[PATH_MAX], roots[2048];
    roots_text(s, roots, sizeof roots);
    if (value[0] != '/') {
        service_error(err, 400, "invalid_spec", field, "%s: '%s' is a relative path; give the "
                      "absolute path (mocod's data roots: %s)", field, value, roots);
        return -1;
    }
    if (!realpath(value, real)) {
        service_error(err, 400, "invalid_spec", field, "%s: %s: %s (on the machine mocod runs "
                      "on; its data roots: %s)", field, value, strerror(errno), roots);
        return -1;
    }
    int inside = 0;
    for (int i = 0; i < s->cfg.n_data_roots && !inside; i++)
        inside = under_root(real, s->cfg.data_roots[i]);
    if (!inside) {
        char shown[2 * PATH_MAX + 16];
        if (strcmp(real, value) != 0)
            snprintf(shown, sizeof shown, "%s (really %s)", value, real);
        else
            snprintf(shown, sizeof shown, "%s", value);
        service_error(err, 400, "invalid_spec", field, "%s: %s is not under a data root of "
                      "this mocod (%s); add its folder with --data-root DIR (or data_roots in "
                      "mocod.yaml) and restart mocod", field, shown, roots);
        return -1;
    }
    struct stat st;
    int readable = stat(real, &st) == 0 &&
                   access(real, S_ISDIR(st.st_mode) ? (R_OK | X_OK) : R_OK) == 0;
    if (!readable) {
        service_error(err, 400, "invalid_spec", field, "%s: %s is not readable by mocod (%s); "
                      "fix its permissions", field, real, strerror(errno));
        return -1;
    }
    /* Image folders (data.*) are ImageFolder roots; a file there is a mistake worth naming now
     * rather than when the worker starts. */
    if (strncmp(field, "data.", 5) == 0 && !S_ISDIR(st.st_mode)) {
        service_error(err, 400, "invalid_spec", field, "%s: %s is a file, not a folder; give the "
                      "image folder (ROOT/<class>/<images>)", field, real);
        return -1;
    }
    if (strncmp(field, "data.", 5) == 0 && !has_class_folder(real)) {
        service_error(err, 400, "invalid_spec", field, "%s: %s has no class folders; an image "
                      "folder holds one folder per class with the images inside "
                      "(ROOT/<class>/<images>): give its root, e.g. .../train, not a class "
                      "folder", field, real);
        return -1;
    }
    if (json_set_string(tree, field, real) != 0) {
        service_error(err, 500, "internal", NULL, "out of memory checking the job spec");
        return -1;
    }
    return 0;
}

/* CPU ranks beyond this many per core only slow a job down (they share the cores) and cost a
 * model's memory each; the limit keeps a typo from starting thousands of processes while
 * leaving room to try several ranks on a small machine. */
#define RANKS_PER_CORE 4

/* The processes a pretraining runs as (daemon/launch_command.h): one per GPU, or on the CPU
 * resources.ranks. lincls and knn always run as one process, whatever resources.ranks says. */
static int check_ranks(const JobConfig *cfg, ServiceError *err)
{
    if (cfg->kind != JOB_PRETRAIN) return 0;
    int ranks = cfg->resources.ranks, gpus = cfg->resources.gpus;
    if (gpus > 0 && ranks != gpus) {
        service_error(err, 400, "invalid_spec", "resources.ranks", "resources.ranks is %d but "
                      "resources.gpus is %d: a pretraining on GPUs runs one rank per GPU; leave "
                      "resources.ranks out (or set it to %d)", ranks, gpus, gpus);
        return -1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (gpus == 0 && ranks > RANKS_PER_CORE * cores) {
        service_error(err, 400, "invalid_spec", "resources.ranks", "resources.ranks is %d but "
                      "this machine has %ld cores: CPU ranks share the cores, so more than %d "
                      "per core (%ld) only slows the job down; lower resources.ranks", ranks,
                      cores, RANKS_PER_CORE, RANKS_PER_CORE * cores);
        return -1;
    }
    return 0;
}

/* "job:<id>" → id, or 0 when the text is not of that form. */
static int64_t job_reference(const char *text)
{
    if (strncmp(text, "job:", 4) != 0) return 0;
    const char *p = text + 4;
    if (*p < '1' || *p > '9' || strlen(p) > 15 || strspn(p, "0123456789") != strlen(p)) return -1;
    return strtoll(p, NULL, 10);
}

/* Checks what config.h cannot know: paths, job references, GPUs. */
static int check_against_daemon(Service *s, cJSON *tree, const JobConfig *cfg, DaemonKeys *k,
                                ServiceError *err)
{
    if (check_data_path(s, tree, "data.train", cfg->data.train, err) != 0) return -1;
    if (cfg->data.val[0] && check_data_path(s, tree, "data.val", cfg->data.val, err) != 0)
        return -1;
    if (cfg->kind != JOB_PRETRAIN && !cfg->model.pretrained[0]) {
        service_error(err, 400, "invalid_spec", "model.pretrained", "model.pretrained: a %s job "
                      "evaluates a pretrained backbone, and none is named; set it to job:<id> "
                      "(a pretraining job of this mocod; the job then waits for it) or to the "
                      "absolute path of a checkpoint or backbone export",
                      cfg->kind == JOB_KNN ? "knn" : "lincls");
        return -1;
    }
    if (cfg->model.pretrained[0]) {
        int64_t ref = job_reference(cfg->model.pretrained);
        if (ref < 0) {
            service_error(err, 400, "invalid_spec", "model.pretrained", "model.pretrained: "
                          "'%s' is not a job reference; write job:<id>, e.g. job:7",
                          cfg->model.pretrained);
            return -1;
        }
        if (ref > 0) {
            JobRow row;
            ServiceError lookup;
            if (service_read_job(s, ref, &row, &lookup) != 0) {
                if (lookup.status == 404)
                    service_error(err, 400, "invalid_spec", "model.pretrained", "model.pretrained: "
                                  "job %lld does not exist", (long long)ref);
                else
                    *err = lookup;
                return -1;
            }
            int is_pretrain = strcmp(row.kind, "pretrain") == 0;
            job_row_free(&row);
            if (!is_pretrain) {
                service_error(err, 400, "invalid_spec", "model.pretrained", "model.pretrained: "
                              "job %lld is not a pretrain job; name the pretraining whose "
                              "checkpoint to evaluate", (long long)ref);
                return -1;
            }
            if (k->after == 0) k->after = ref;
        } else if (check_data_path(s, tree, "model.pretrained", cfg->model.pretrained, err) != 0) {
            return -1;
        }
    }
    if (cfg->resources.gpus > s->cfg.gpus) {
        service_error(err, 400, "invalid_spec", "resources.gpus", "resources.gpus is %d but "
                      "this mocod offers %d GPU(s); lower resources.gpus (0 runs on the CPU)",
                      cfg->resources.gpus, s->cfg.gpus);
        return -1;
    }
    if (check_ranks(cfg, err) != 0) return -1;
    if (k->after > 0) {
        JobRow row;
        ServiceError lookup;
        if (service_read_job(s, k->after, &row, &lookup) != 0) {
            if (lookup.status == 404)
                service_error(err, 400, "invalid_spec", "after", "after: job %lld does not exist",
                              (long long)k->after);
            else
                *err = lookup;
            return -1;
        }
        job_row_free(&row);
    }
    return 0;
}

/* 1 when JSON text holds the escape \u0000 (an odd run of backslashes before "u0000"): cJSON
 * keeps such a string only up to the NUL, so a name "a\u0000b" would silently become "a". */
static int has_escaped_nul(const char *body, size_t len)
{
    for (size_t i = 1; i + 5 <= len; i++) {
        if (body[i] != 'u' || strncmp(body + i + 1, "0000", 4) != 0) continue;
        size_t slashes = 0;
        while (slashes < i && body[i - 1 - slashes] == '\\') slashes++;
        if (slashes % 2 == 1) return 1;
    }
    return 0;
}

static cJSON *parse_body(const char *body, size_t len, const char *content_type,
                         ServiceError *err)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) i++;
    if (i == len) {
        service_error(err, 400, "bad_request", NULL, "the request body is empty; send a job "
                      "spec (YAML or JSON, see docs/job-spec.md)");
        return NULL;
    }
    /* JSON and YAML are UTF-8 text. cJSON keeps other bytes as they are, and a name stored so
     * would make every answer that lists the job invalid JSON for strict clients. */
    size_t valid = utf8_valid_prefix(body, len);
    if (valid < len) {
        size_t line = 1, col = 1;
        for (size_t j = 0; j < valid; j++) {
            if (body[j] == '\n') { line++; col = 1; } else { col++; }
        }
        service_error(err, 400, "invalid_spec", NULL, "request body: byte %zu (line %zu, column "
                      "%zu) is not UTF-8; send the job spec as UTF-8 text", valid, line, col);
        return NULL;
    }
    int json = body[i] == '{' || (content_type && strstr(content_type, "json"));
    if (json && has_escaped_nul(body, len)) {
        service_error(err, 400, "invalid_spec", NULL, "request body: a string holds \\u0000 (a "
                      "NUL character), which would cut it short where mocod stores it; remove it");
        return NULL;
    }
    cJSON *tree;
    if (json) {
        const char *end = NULL;
        tree = cJSON_ParseWithLengthOpts(body, len, &end, 0);
        if (!tree) {
            size_t at = end ? (size_t)(end - body) : 0, line = 1, col = 1;
            for (size_t j = 0; j < at && j < len; j++) {
                if (body[j] == '\n') { line++; col = 1; } else { col++; }
            }
            service_error(err, 400, "invalid_spec", NULL, "request body: JSON syntax error at "
                          "line %zu, column %zu", line, col);
            return NULL;
        }
        for (const char *p = end; p && p < body + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
                cJSON_Delete(tree);
                service_error(err, 400, "invalid_spec", NULL, "request body: unexpected text "
                              "after the JSON object");
                return NULL;
            }
    } else {
        char msg[1024];
        tree = yaml_to_json(body, len, "request body", NULL, msg, sizeof msg);
        if (!tree) {
            service_error(err, 400, "invalid_spec", NULL, "%s", msg);
            return NULL;
        }
    }
    if (!cJSON_IsObject(tree)) {
        cJSON_Delete(tree);
        service_error(err, 400, "invalid_spec", NULL, "the job spec must be a mapping of keys "
                      "(kind, method, model, data, optim, ...)");
        return NULL;
    }
    return tree;
}

/* A folder left by an earlier database at this id (mocod.db removed by hand) must not be
 * mistaken for this job's: its checkpoints would be resumed. It is moved aside. */
static void move_stale_folder(Service *s, int64_t id)
{
    char dir[DAEMON_PATH_MAX + 64], aside[DAEMON_PATH_MAX + 128];
    if (service_job_path(s, id, "", dir, sizeof dir) != 0 || access(dir, F_OK) != 0) return;
    snprintf(aside, sizeof aside, "%s.stale-%ld", dir, (long)time(NULL));
    if (rename(dir, aside) == 0)
        fprintf(stderr, "mocod: job %lld: moved an old folder of the same id to %s\n",
                (long long)id, aside);
    else
        fprintf(stderr, "mocod: job %lld: cannot move the old folder %s aside: %s\n",
                (long long)id, dir, strerror(errno));
}

static const char *kind_name(JobKind k)
{
    return k == JOB_PRETRAIN ? "pretrain" : k == JOB_LINCLS ? "lincls" : "knn";
}

cJSON *service_submit(Service *s, const char *body, size_t len, const char *content_type,
                      ServiceError *err)
{
    cJSON *tree = parse_body(body, len, content_type, err);
    if (!tree) return NULL;
    DaemonKeys k;
    JobConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cJSON *result = NULL;
    if (take_daemon_keys(s, tree, &k, err) != 0) goto out;
    /* checkpoint.dir is the daemon's to choose; whatever the body says is dropped. */
    cJSON *section = cJSON_GetObjectItemCaseSensitive(tree, "checkpoint");
    if (cJSON_IsObject(section)) cJSON_DeleteItemFromObjectCaseSensitive(section, "dir");
    if (check_spec(tree, &cfg, err) != 0) goto out;
    if (check_against_daemon(s, tree, &cfg, &k, err) != 0) goto out;
    char given_name[256];
    snprintf(given_name, sizeof given_name, "%s",
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(tree, "name"))
                 ? cJSON_GetObjectItemCaseSensitive(tree, "name")->valuestring : "");
    JobKind kind = cfg.kind;
    int gpus = cfg.resources.gpus, epochs = kind == JOB_KNN ? -1 : cfg.optim.epochs;
    config_free(&cfg);

    char msg[2048];
    pthread_mutex_lock(&s->mu);
    sqlite3 *c = db_write_begin(s->db);
    JobRow row;
    memset(&row, 0, sizeof row);
    snprintf(row.kind, sizeof row.kind, "%s", kind_name(kind));
    snprintf(row.state, sizeof row.state, "queued");
    row.name = given_name;
    row.priority = k.priority;
    row.spec = "{}";
    row.created_at = db_now();
    row.not_before = k.not_before;
    row.after = k.after;
    row.max_restarts = k.max_restarts;
    row.reason = "submitted";
    row.gpus_needed = gpus;
    row.epochs = epochs;
    int ok = db_begin(c, msg, sizeof msg) == 0 && db_job_insert(c, &row, msg, sizeof msg) == 0;
    char ckpt[DAEMON_PATH_MAX + 64], name[256];
    if (ok && service_job_path(s, row.id, "/checkpoints", ckpt, sizeof ckpt) != 0) {
        snprintf(msg, sizeof msg, "the state directory's path is too long");
        ok = 0;
    }
    /* The final spec, with the job's own checkpoint.dir, is resolved once more: the stored
     * spec is exactly what config.h makes of it. */
    if (ok && json_set_string(tree, "checkpoint.dir", ckpt) != 0) {
        snprintf(msg, sizeof msg, "out of memory");
        ok = 0;
    }
    ServiceError second;
    if (ok && check_spec(tree, &cfg, &second) != 0) {
        snprintf(msg, sizeof msg, "%s", second.message);
        ok = 0;
    }
    if (ok) {
        snprintf(name, sizeof name, "%s", given_name);
        if (!name[0]) snprintf(name, sizeof name, "%s-%lld", kind_name(kind), (long long)row.id);
        ok = db_job_set_spec(c, row.id, name, cfg.resolved_json, msg, sizeof msg) == 0 &&
             db_commit(c, msg, sizeof msg) == 0;
    }
    db_write_end(s->db); /* rolls back when not committed */
    if (ok) move_stale_folder(s, row.id);
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        service_error(err, 500, "internal", NULL, "%s", msg);
        goto out;
    }
    fprintf(stderr, "mocod: job %lld: submitted (%s, priority %d)\n", (long long)row.id,
            kind_name(kind), k.priority);
    service_wake(s);
    result = service_get_job(s, row.id, 0, err);
out:
    config_free(&cfg);
    cJSON_Delete(tree);
    return result;
}

/* config_resolve.c — turns a checked cJSON tree into a JobConfig: method presets, official
 * defaults, type and range checks, cross-field rules, and the resolved spec as JSON.
 *
 * Every field is read by one getter call, in the order the keys appear in the resolved JSON.
 * A getter returns the value (or its default) and records the first error; the resolver keeps
 * going so the code reads straight down, and reports that first error at the end. Defaults
 * are those of the official code (facebookresearch/moco, main_moco.py and main_lincls.py).
 */
#include "train/config_internal.h"

#include "common/error.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Integers in JSON are doubles; beyond 2^53 they are no longer exact. */
#define MAX_EXACT_INT 9007199254740992.0

typedef struct {
    const cJSON *tree;
    const ConfigSource *src;
    cJSON *out; /* the resolved spec being built */
    char *err;
    size_t errlen;
    int failed;
} Resolver;

static void fail_at(Resolver *r, const char *path, const char *fmt, ...) MOCO_PRINTF(3, 4);
static void fail_at(Resolver *r, const char *path, const char *fmt, ...)
{
    if (r->failed) return;
    r->failed = 1;
    char where[512], msg[768];
    if (path)
        config_where(r->src, path, where, sizeof where);
    else
        snprintf(where, sizeof where, "%s: ", r->src->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errlen, "%s%s", where, msg);
}

/* The user's value at path, or NULL when absent or null (both mean "use the default"). */
static const cJSON *given(Resolver *r, const char *path)
{
    const cJSON *v = config_lookup(r->tree, path);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

/* Adds a resolved value at a dotted path of the output tree, creating sections. */
static void put(Resolver *r, const char *path, cJSON *value)
{
    if (!value) die("out of memory resolving the job spec");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *node = r->out;
    char *p = buf;
    char *dot;
    while ((dot = strchr(p, '.'))) {
        *dot = '\0';
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, p);
        if (!child) {
            child = cJSON_CreateObject();
            if (!child || !cJSON_AddItemToObject(node, p, child))
                die("out of memory resolving the job spec");
        }
        node = child;
        p = dot + 1;
    }
    if (!cJSON_AddItemToObject(node, p, value)) die("out of memory resolving the job spec");
}

static void got(const cJSON *v, char *buf, size_t n) { config_describe(v, buf, n); }

/* A number for the resolved spec, printed so that it reads back as exactly the same double:
 * the shortest of %.15g/%.16g/%.17g that round-trips. (cJSON's own printer compares with a
 * tolerance and can drop the last digits, e.g. of a 2^53 seed.) */
static cJSON *exact_number(double x)
{
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    return cJSON_CreateRaw(buf);
}

static int is_integer(const cJSON *v)
{
    return cJSON_IsNumber(v) && fabs(v->valuedouble) <= MAX_EXACT_INT &&
           v->valuedouble == floor(v->valuedouble);
}

static int64_t get_int(Resolver *r, const char *path, int64_t def, int64_t min, int64_t max)
{
    const cJSON *v = given(r, path);
    int64_t x = def;
    char g[128];
    if (v) {
        if (!is_integer(v)) {
            got(v, g, sizeof g);
            fail_at(r, path, "%s must be an integer, got %s", path, g);
        } else {
            x = (int64_t)v->valuedouble;
            if (x < min || x > max) {
                if (max == INT_MAX || max == (int64_t)MAX_EXACT_INT)
                    fail_at(r, path, "%s must be >= %lld, got %lld", path, (long long)min,
                            (long long)x);
                else
                    fail_at(r, path, "%s must be between %lld and %lld, got %lld", path,
                            (long long)min, (long long)max, (long long)x);
                x = def;
            }
        }
    }
    put(r, path, exact_number((double)x));
    return x;
}

/* A number in a range; lo/hi NAN mean unbounded, *_open excludes the bound itself. */
typedef struct { double lo; int lo_open; double hi; int hi_open; } Range;

static void describe_range(Range rg, char *buf, size_t n)
{
    if (isnan(rg.hi))
        snprintf(buf, n, "%s %g", rg.lo_open ? ">" : ">=", rg.lo);
    else if (isnan(rg.lo))
        snprintf(buf, n, "%s %g", rg.hi_open ? "<" : "<=", rg.hi);
    else
        snprintf(buf, n, "in %c%g, %g%c", rg.lo_open ? '(' : '[', rg.lo, rg.hi,
                 rg.hi_open ? ')' : ']');
}

static double get_number(Resolver *r, const char *path, double def, Range rg)
{
    const cJSON *v = given(r, path);
    double x = def;
    char g[128];
    if (v) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            got(v, g, sizeof g);
            fail_at(r, path, "%s must be a number, got %s", path, g);
        } else {
            x = v->valuedouble;
            int below = !isnan(rg.lo) && (rg.lo_open ? x <= rg.lo : x < rg.lo);
            int above = !isnan(rg.hi) && (rg.hi_open ? x >= rg.hi : x > rg.hi);
            if (below || above) {
                char want[96];
                describe_range(rg, want, sizeof want);
                fail_at(r, path, "%s must be %s, got %.17g", path, want, x);
                x = def;
            }
        }
    }
    put(r, path, exact_number(x));
    return x;
}

static int get_bool(Resolver *r, const char *path, int def)
{
    const cJSON *v = given(r, path);
    int x = def;
    char g[128];
    if (v) {
        if (!cJSON_IsBool(v)) {
            got(v, g, sizeof g);
            fail_at(r, path, "%s must be true or false, got %s", path, g);
        } else {
            x = cJSON_IsTrue(v);
        }
    }
    put(r, path, cJSON_CreateBool(x));
    return x;
}

/* Position of word in a "a|b|c" list, or -1. */
static int choice_index(const char *choices, const char *word)
{
    size_t wl = strlen(word);
    int index = 0;
    for (const char *c = choices; c; index++) {
        const char *bar = strchr(c, '|');
        size_t cl = bar ? (size_t)(bar - c) : strlen(c);
        if (cl == wl && strncmp(c, word, wl) == 0) return index;
        c = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Index of the chosen word in the field's "a|b|c" list (the default's index on error). */
static int get_choice(Resolver *r, const char *path, const char *def)
{
    const char *choices = config_field(path)->choices;
    const cJSON *v = given(r, path);
    const char *word = def;
    char g[128];
    if (v && !cJSON_IsString(v)) {
        got(v, g, sizeof g);
        fail_at(r, path, "%s must be one of %s, got %s", path, choices, g);
    } else if (v && choice_index(choices, v->valuestring) < 0) {
        fail_at(r, path, "%s must be one of %s, got \"%s\"", path, choices, v->valuestring);
    } else if (v) {
        word = v->valuestring;
    }
    put(r, path, cJSON_CreateString(word));
    return choice_index(choices, word);
}

static void get_string(Resolver *r, const char *path, const char *def, char *buf, size_t n)
{
    const cJSON *v = given(r, path);
    const char *s = def;
    char g[128];
    if (v) {
        if (!cJSON_IsString(v)) {
            got(v, g, sizeof g);
            fail_at(r, path, "%s must be a string, got %s", path, g);
        } else if (strlen(v->valuestring) >= n) {
            fail_at(r, path, "%s is too long (%zu characters, at most %zu)", path,
                    strlen(v->valuestring), n - 1);
        } else {
            s = v->valuestring;
        }
    }
    snprintf(buf, n, "%s", s);
    put(r, path, cJSON_CreateString(buf));
}

/* A strictly ascending list of positive integers, at most `cap` long. */
static int get_ascending_ints(Resolver *r, const char *path, const int *def, int n_def,
                              int *out, int cap)
{
    const cJSON *v = given(r, path);
    int n = n_def;
    for (int i = 0; i < n_def; i++) out[i] = def[i];
    char g[128];
    if (v) {
        const cJSON *item;
        int ok = cJSON_IsArray(v) && cJSON_GetArraySize(v) <= cap;
        if (ok) cJSON_ArrayForEach(item, v) ok = ok && is_integer(item) &&
                                                 item->valuedouble >= 1 &&
                                                 item->valuedouble <= INT_MAX;
        if (!ok) {
            got(v, g, sizeof g);
            fail_at(r, path, "%s must be a list of at most %d positive integers (epochs), "
                    "e.g. [120, 160], got %s", path, cap, g);
        } else {
            n = 0;
            cJSON_ArrayForEach(item, v) out[n++] = (int)item->valuedouble;
            for (int i = 1; i < n; i++)
                if (out[i] <= out[i - 1]) {
                    fail_at(r, path, "%s must be strictly ascending, got %d after %d", path,
                            out[i], out[i - 1]);
                    break;
                }
        }
    }
    cJSON *arr = cJSON_CreateArray();
    if (!arr) die("out of memory resolving the job spec");
    for (int i = 0; i < n; i++)
        if (!cJSON_AddItemToArray(arr, exact_number(out[i])))
            die("out of memory resolving the job spec");
    put(r, path, arr);
    return n;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static const Range POSITIVE = {0, 1, NAN, 0};
static const Range NON_NEGATIVE = {0, 0, NAN, 0};
static const Range UNIT_HALF_OPEN = {0, 0, 1, 1};

/* The rules that involve more than one field; run only when every field was valid. */
static void check_cross_fields(Resolver *r, const JobConfig *c)
{
    static const char *kind_names[] = {"pretrain", "lincls", "knn"};
    const char *kind = kind_names[c->kind];
    int data_needed = !(r->src->flags & CONFIG_DATA_OPTIONAL); /* align, bench: no folders */
    if (data_needed && c->data.train[0] == '\0')
        fail_at(r, NULL, "data.train is required for kind %s: the folder of training images "
                "(one sub-folder per class, as torchvision's ImageFolder reads it)", kind);
    else if (data_needed && c->kind == JOB_KNN && c->data.val[0] == '\0')
        fail_at(r, NULL, "data.val is required for kind knn: the folder of images to classify");
    else if (data_needed && c->kind == JOB_LINCLS && c->data.val[0] == '\0')
        fail_at(r, NULL, "data.val is required for kind lincls: the labelled images the linear "
                "classifier is evaluated on after every epoch (same class folders as data.train)");
    else if (data_needed && c->kind == JOB_PRETRAIN && c->eval.knn_every_epochs > 0 &&
             c->data.val[0] == '\0')
        fail_at(r, "eval.knn.every_epochs", "eval.knn.every_epochs is %d but data.val is not "
                "set: the kNN monitor classifies the validation folder; set data.val or "
                "eval.knn.every_epochs=0", c->eval.knn_every_epochs);
    /* Linear evaluation trains a classifier on a frozen, pretrained backbone: without one it
     * would measure a random network. */
    if (c->kind == JOB_LINCLS && c->model.pretrained[0] == '\0')
        fail_at(r, "model.pretrained", "model.pretrained is required for kind lincls: the "
                "pretrained model to evaluate (a pretraining checkpoint or its folder, a backbone "
                "export, or a PyTorch checkpoint converted by tools/convert_checkpoint.py "
                "from-torch)");
    if (c->data.val_resize < c->data.image_size)
        fail_at(r, "data.val_resize", "data.val_resize (%d) must be >= data.image_size (%d): "
                "validation images are resized, then center-cropped to image_size",
                c->data.val_resize, c->data.image_size);
    if (c->resources.gpus == 0 && strcmp(c->precision, "bf16") == 0)
        fail_at(r, "precision", "precision bf16 needs GPUs (resources.gpus is 0); the CPU "
                "backend computes in fp32: set precision: fp32");
    int batch = c->optim.batch_size, ranks = c->resources.ranks;
    if (batch % ranks != 0)
        fail_at(r, "optim.batch_size", "optim.batch_size (%d) must be divisible by "
                "resources.ranks (%d%s): it is the global batch, split evenly across ranks",
                batch, ranks, c->resources.gpus > 0 ? ", one per GPU of resources.gpus" : "");
    if (c->kind != JOB_PRETRAIN) return;
    int per_rank = batch / ranks;
    if (per_rank % c->moco.bn_splits != 0)
        fail_at(r, "moco.bn_splits", "the per-rank batch (optim.batch_size %d / "
                "resources.ranks %d = %d) must be divisible by moco.bn_splits (%d): split "
                "batch norm normalizes equal sub-batches", batch, ranks, per_rank,
                c->moco.bn_splits);
    if (c->moco.k % batch != 0) {
        int below = c->moco.k / batch * batch, above = below + batch;
        if (below > 0)
            fail_at(r, "moco.k", "moco.k (%d) must be a multiple of optim.batch_size (%d): the "
                    "queue takes whole batches of keys; choose e.g. moco.k=%d or %d",
                    c->moco.k, batch, below, above);
        else
            fail_at(r, "moco.k", "moco.k (%d) must be a multiple of optim.batch_size (%d): the "
                    "queue takes whole batches of keys; choose e.g. moco.k=%d", c->moco.k,
                    batch, above);
    }
}

int config_resolve(const cJSON *tree, const ConfigSource *src, JobConfig *c, char *err,
                   size_t errlen)
{
    memset(c, 0, sizeof *c);
    Resolver rs = {tree, src, cJSON_CreateObject(), err, errlen, 0};
    Resolver *r = &rs;
    if (!r->out) die("out of memory resolving the job spec");

    c->kind = (JobKind)get_choice(r, "kind", "pretrain");
    c->method = get_choice(r, "method", "moco_v2") == 0 ? METHOD_MOCO_V1 : METHOD_MOCO_V2;
    const cJSON *name = given(r, "name");
    if (name) {
        char buf[256];
        get_string(r, "name", "", buf, sizeof buf);
    }
    /* Presets (explicit fields win): v1 = fc head, T 0.07, v1 augmentation, step schedule;
     * v2 = MLP head, T 0.2, v2 augmentation (blur), cosine schedule. Linear evaluation follows
     * main_lincls.py instead: lr 30, no weight decay, 100 epochs, steps at 60 and 80. */
    int v1 = c->method == METHOD_MOCO_V1;
    int lincls = c->kind == JOB_LINCLS;

    static const char *arch_names[] = {"resnet18", "resnet34", "resnet50"};
    int arch = get_choice(r, "model.arch", "resnet50");
    snprintf(c->model.arch, sizeof c->model.arch, "%s", arch_names[arch]);
    c->model.cifar_stem = get_bool(r, "model.cifar_stem", 0);
    c->model.mlp = get_bool(r, "model.mlp", !v1);
    c->model.dim = (int)get_int(r, "model.dim", 128, 1, INT_MAX);
    get_string(r, "model.pretrained", "", c->model.pretrained, sizeof c->model.pretrained);

    c->moco.k = (int)get_int(r, "moco.k", 65536, 1, INT_MAX);
    c->moco.m = get_number(r, "moco.m", 0.999, UNIT_HALF_OPEN);
    c->moco.t = get_number(r, "moco.t", v1 ? 0.07 : 0.2, POSITIVE);
    c->moco.shuffle_bn = get_bool(r, "moco.shuffle_bn", 1);
    c->moco.bn_splits = (int)get_int(r, "moco.bn_splits", 1, 1, INT_MAX);

    get_string(r, "data.train", "", c->data.train, sizeof c->data.train);
    get_string(r, "data.val", "", c->data.val, sizeof c->data.val);
    c->data.image_size = (int)get_int(r, "data.image_size", 224, 1, 65536);
    /* The official validation resize is 256 for 224 crops; keep the ratio for other sizes. */
    int resize_def = (int)lround(c->data.image_size * 256.0 / 224.0);
    c->data.val_resize = (int)get_int(r, "data.val_resize", resize_def, 1, 65536);
    c->data.aug = get_choice(r, "data.aug", v1 ? "v1" : "v2") == 0 ? AUGSPEC_V1 : AUGSPEC_V2;
    int cores = cpu_count();
    c->data.workers = (int)get_int(r, "data.workers", cores < 8 ? cores : 8, 0, 1024);

    c->optim.lr = get_number(r, "optim.lr", lincls ? 30.0 : 0.03, POSITIVE);
    c->optim.momentum = get_number(r, "optim.momentum", 0.9, UNIT_HALF_OPEN);
    c->optim.weight_decay = get_number(r, "optim.weight_decay", lincls ? 0.0 : 1e-4,
                                       NON_NEGATIVE);
    c->optim.batch_size = (int)get_int(r, "optim.batch_size", 256, 1, INT_MAX);
    c->optim.epochs = (int)get_int(r, "optim.epochs", lincls ? 100 : 200, 1, INT_MAX);
    c->optim.schedule = get_choice(r, "optim.schedule", (v1 || lincls) ? "step" : "cos") == 0
                            ? SCHEDULE_COS : SCHEDULE_STEP;
    static const int milestones_pretrain[] = {120, 160}, milestones_lincls[] = {60, 80};
    c->optim.n_milestones = get_ascending_ints(
        r, "optim.milestones", lincls ? milestones_lincls : milestones_pretrain, 2,
        c->optim.milestones, CONFIG_MAX_MILESTONES);

    c->checkpoint.every_epochs = (int)get_int(r, "checkpoint.every_epochs", 1, 0, INT_MAX);
    c->checkpoint.keep_last = (int)get_int(r, "checkpoint.keep_last", 3, 0, INT_MAX);
    get_string(r, "checkpoint.dir", "checkpoints", c->checkpoint.dir, sizeof c->checkpoint.dir);

    c->eval.knn_every_epochs = (int)get_int(r, "eval.knn.every_epochs", 0, 0, INT_MAX);
    c->eval.knn_k = (int)get_int(r, "eval.knn.k", 200, 1, INT_MAX);
    c->eval.knn_t = get_number(r, "eval.knn.t", 0.1, POSITIVE);

    c->resources.gpus = (int)get_int(r, "resources.gpus", 0, 0, 4096);
    /* One process per GPU (DESIGN §6); on CPU one process unless asked for more. */
    c->resources.ranks = (int)get_int(r, "resources.ranks",
                                      c->resources.gpus > 0 ? c->resources.gpus : 1, 1, 65536);
    c->resources.threads = (int)get_int(r, "resources.threads", 0, 0, 65536);

    c->log.print_every = (int)get_int(r, "log.print_every", 10, 1, INT_MAX);
    c->log.max_steps = (int)get_int(r, "log.max_steps", 0, 0, INT_MAX);

    c->seed = (uint64_t)get_int(r, "seed", 0, 0, (int64_t)MAX_EXACT_INT);
    int bf16 = get_choice(r, "precision", c->resources.gpus > 0 ? "bf16" : "fp32") == 1;
    snprintf(c->precision, sizeof c->precision, "%s", bf16 ? "bf16" : "fp32");

    if (!r->failed) check_cross_fields(r, c);
    if (r->failed) {
        cJSON_Delete(r->out);
        return -1;
    }
    char *json = cJSON_PrintUnformatted(r->out);
    cJSON_Delete(r->out);
    if (!json) die("out of memory printing the resolved job spec");
    c->resolved_json = xstrdup(json);
    cJSON_free(json);
    return 0;
}

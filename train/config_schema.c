/* config_schema.c — the known keys of the job spec, unknown-key checks with suggestions,
 * `--set key.path=value` overrides, and the location prefix of error messages.
 *
 * The table below is the one list of keys: the checker, the override path check and the
 * suggestions all read it, so a key added to the resolver must be added here too (the
 * resolver's round-trip test catches a missing one).
 */
#include "train/config_internal.h"

#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ConfigField schema[] = {
    {"kind", FIELD_CHOICE, "pretrain|lincls|knn"},
    {"method", FIELD_CHOICE, "moco_v1|moco_v2"},
    {"name", FIELD_STRING, NULL},
    {"model", FIELD_SECTION, NULL},
    {"model.arch", FIELD_CHOICE, "resnet18|resnet34|resnet50"},
    {"model.cifar_stem", FIELD_BOOL, NULL},
    {"model.mlp", FIELD_BOOL, NULL},
    {"model.dim", FIELD_INT, NULL},
    {"model.pretrained", FIELD_STRING, NULL},
    {"moco", FIELD_SECTION, NULL},
    {"moco.k", FIELD_INT, NULL},
    {"moco.m", FIELD_NUMBER, NULL},
    {"moco.t", FIELD_NUMBER, NULL},
    {"moco.shuffle_bn", FIELD_BOOL, NULL},
    {"moco.bn_splits", FIELD_INT, NULL},
    {"data", FIELD_SECTION, NULL},
    {"data.train", FIELD_STRING, NULL},
    {"data.val", FIELD_STRING, NULL},
    {"data.image_size", FIELD_INT, NULL},
    {"data.val_resize", FIELD_INT, NULL},
    {"data.aug", FIELD_CHOICE, "v1|v2"},
    {"data.workers", FIELD_INT, NULL},
    {"optim", FIELD_SECTION, NULL},
    {"optim.lr", FIELD_NUMBER, NULL},
    {"optim.momentum", FIELD_NUMBER, NULL},
    {"optim.weight_decay", FIELD_NUMBER, NULL},
    {"optim.batch_size", FIELD_INT, NULL},
    {"optim.epochs", FIELD_INT, NULL},
    {"optim.schedule", FIELD_CHOICE, "cos|step"},
    {"optim.milestones", FIELD_INT_LIST, NULL},
    {"checkpoint", FIELD_SECTION, NULL},
    {"checkpoint.every_epochs", FIELD_INT, NULL},
    {"checkpoint.keep_last", FIELD_INT, NULL},
    {"checkpoint.dir", FIELD_STRING, NULL},
    {"eval", FIELD_SECTION, NULL},
    {"eval.knn", FIELD_SECTION, NULL},
    {"eval.knn.every_epochs", FIELD_INT, NULL},
    {"eval.knn.k", FIELD_INT, NULL},
    {"eval.knn.t", FIELD_NUMBER, NULL},
    {"resources", FIELD_SECTION, NULL},
    {"resources.gpus", FIELD_INT, NULL},
    {"resources.ranks", FIELD_INT, NULL},
    {"resources.threads", FIELD_INT, NULL},
    {"log", FIELD_SECTION, NULL},
    {"log.print_every", FIELD_INT, NULL},
    {"log.max_steps", FIELD_INT, NULL},
    {"seed", FIELD_INT, NULL},
    {"precision", FIELD_CHOICE, "fp32|bf16"},
};
#define N_FIELDS ((int)(sizeof schema / sizeof schema[0]))

const ConfigField *config_field(const char *path)
{
    for (int i = 0; i < N_FIELDS; i++)
        if (strcmp(schema[i].path, path) == 0) return &schema[i];
    return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = xmalloc((lb + 1) * sizeof(size_t));
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

static const char *last_component(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

const char *config_suggest(const char *path)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < N_FIELDS; i++) {
        size_t d = edit_distance(path, schema[i].path);
        /* the right key in the wrong section ("lr" at the top instead of "optim.lr") */
        if (strcmp(last_component(path), last_component(schema[i].path)) == 0 && d > 1) d = 1;
        if (d < best_d) {
            best_d = d;
            best = schema[i].path;
        }
    }
    size_t limit = strlen(path) / 3 > 2 ? strlen(path) / 3 : 2;
    return best_d <= limit ? best : NULL;
}

const cJSON *config_lookup(const cJSON *tree, const char *path)
{
    char part[128];
    const cJSON *node = tree;
    const char *p = path;
    while (node && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part || !cJSON_IsObject(node)) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        node = cJSON_GetObjectItemCaseSensitive(node, part);
        p = dot ? dot + 1 : p + n;
    }
    return node;
}

/* Whether `path` was set (itself or through a section above it) by a --set override. */
static const char *override_for(const ConfigSource *src, const char *path)
{
    for (int i = src->n_overrides - 1; i >= 0; i--) {
        const char *a = src->overrides[i];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, path, n) == 0 && (path[n] == '\0' || path[n] == '.')) return a;
    }
    return NULL;
}

void config_where(const ConfigSource *src, const char *path, char *buf, size_t n)
{
    const char *ov = override_for(src, path);
    if (ov) {
        const char *eq = strchr(ov, '=');
        snprintf(buf, n, "--set %.*s: ", eq ? (int)(eq - ov) : (int)strlen(ov), ov);
        return;
    }
    int line = yaml_line_of(src->lines, path);
    if (line > 0)
        snprintf(buf, n, "%s:%d: ", src->name, line);
    else
        snprintf(buf, n, "%s: ", src->name);
}

void config_describe(const cJSON *node, char *buf, size_t n)
{
    if (cJSON_IsString(node))
        snprintf(buf, n, "string \"%.60s\"%s", node->valuestring,
                 strlen(node->valuestring) > 60 ? "..." : "");
    else if (cJSON_IsNumber(node))
        snprintf(buf, n, "number %.17g", node->valuedouble);
    else if (cJSON_IsBool(node))
        snprintf(buf, n, "%s", cJSON_IsTrue(node) ? "true" : "false");
    else if (cJSON_IsNull(node))
        snprintf(buf, n, "null");
    else if (cJSON_IsArray(node))
        snprintf(buf, n, "a list");
    else if (cJSON_IsObject(node))
        snprintf(buf, n, "a mapping");
    else
        snprintf(buf, n, "an unknown value");
}

/* ---- unknown keys ---------------------------------------------------------------------- */

static int check_section(const cJSON *section, const char *prefix,
                         const ConfigSource *src, char *err, size_t errlen)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, section) {
        char path[256], where[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", item->string);
        const ConfigField *f = config_field(path);
        if (!f) {
            config_where(src, path, where, sizeof where);
            const char *hint = config_suggest(path);
            if (hint)
                snprintf(err, errlen, "%sunknown key '%s' \xe2\x80\x94 did you mean '%s'?", where,
                         path, hint);
            else
                snprintf(err, errlen, "%sunknown key '%s'", where, path);
            return -1;
        }
        if (f->type != FIELD_SECTION) continue;
        if (cJSON_IsNull(item)) continue; /* "optim:" with nothing under it */
        if (!cJSON_IsObject(item)) {
            char got[128];
            config_where(src, path, where, sizeof where);
            config_describe(item, got, sizeof got);
            snprintf(err, errlen, "%s%s must be a mapping of keys, got %s", where, path, got);
            return -1;
        }
        if (check_section(item, path, src, err, errlen) != 0) return -1;
    }
    return 0;
}

int config_check_keys(const cJSON *tree, const ConfigSource *src, char *err, size_t errlen)
{
    return check_section(tree, "", src, err, errlen);
}

/* ---- --set overrides ------------------------------------------------------------------- */

int config_apply_override(cJSON *tree, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        snprintf(err, errlen, "--set %s: expected key.path=value, e.g. --set optim.lr=0.06",
                 assignment);
        return -1;
    }
    char path[256];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof path) {
        snprintf(err, errlen, "--set: key path too long");
        return -1;
    }
    memcpy(path, assignment, n);
    path[n] = '\0';
    const ConfigField *field = config_field(path);
    if (!field) {
        const char *hint = config_suggest(path);
        if (hint)
            snprintf(err, errlen, "--set %s: unknown key '%s' \xe2\x80\x94 did you mean '%s'?",
                     path, path, hint);
        else
            snprintf(err, errlen, "--set %s: unknown key '%s'", path, path);
        return -1;
    }
    char source[300];
    snprintf(source, sizeof source, "--set %s", path);
    const char *value_text = eq + 1;
    cJSON *value = yaml_to_json(value_text, strlen(value_text), source, NULL, err, errlen);
    if (!value) return -1;

    /* Walk down, creating sections that the file did not have. */
    cJSON *node = tree;
    char *p = path;
    for (;;) {
        char *dot = strchr(p, '.');
        if (!dot) break;
        *dot = '\0';
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, p);
        if (!child || cJSON_IsNull(child)) {
            cJSON *section = cJSON_CreateObject();
            if (!section) die("out of memory applying --set");
            if (child)
                cJSON_ReplaceItemInObjectCaseSensitive(node, p, section);
            else
                cJSON_AddItemToObject(node, p, section);
            child = section;
        } else if (!cJSON_IsObject(child)) {
            snprintf(err, errlen, "--set %.*s: '%s' in the config is not a mapping", (int)n,
                     assignment, p);
            cJSON_Delete(value);
            return -1;
        }
        *dot = '.';
        node = child;
        p = dot + 1;
    }
    if (cJSON_GetObjectItemCaseSensitive(node, p))
        cJSON_ReplaceItemInObjectCaseSensitive(node, p, value);
    else
        cJSON_AddItemToObject(node, p, value);
    return 0;
}

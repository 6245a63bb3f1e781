/* config.c — the job spec's entry points: read the file (YAML, or JSON when it starts with
 * '{'), apply --set overrides, check the keys, resolve. See config.h; the steps live in
 * config_yaml.c, config_schema.c and config_resolve.c.
 */
#include "train/config.h"

#include "common/error.h"
#include "train/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Config files are small; a huge one is a mistake (a dataset path given as --config). */
#define CONFIG_MAX_FILE_BYTES (4u << 20)

static char *read_text_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open config: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= CONFIG_MAX_FILE_BYTES) {
            snprintf(err, errlen, "%s: larger than %u bytes; is this really a config file?",
                     path, CONFIG_MAX_FILE_BYTES);
            free(buf);
            fclose(f);
            return NULL;
        }
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    int read_failed = ferror(f);
    int saved = errno;
    fclose(f); /* opened read-only: closing cannot lose data */
    if (read_failed) {
        snprintf(err, errlen, "%s: cannot read config: %s", path, strerror(saved));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* 1-based line and column of a byte offset, for JSON syntax errors. */
static void line_col(const char *text, size_t offset, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* JSON is YAML, but cJSON reads it faster and its errors point at the right byte. */
static cJSON *parse_text(const char *text, size_t len, const char *source, YamlLines *lines,
                         char *err, size_t errlen)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != '{') return yaml_to_json(text, len, source, lines, err, errlen);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        int line, col;
        line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        snprintf(err, errlen, "%s:%d:%d: JSON syntax error", source, line, col);
        return NULL;
    }
    for (; end && end < text + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            int line, col;
            line_col(text, (size_t)(end - text), &line, &col);
            snprintf(err, errlen, "%s:%d:%d: unexpected text after the JSON object", source,
                     line, col);
            cJSON_Delete(root);
            return NULL;
        }
    return root;
}

/* Overrides, key check and resolution of a parsed tree (which this consumes). */
static int load_tree(cJSON *tree, const ConfigSource *src, JobConfig *out, char *err,
                     size_t errlen)
{
    int rc = -1;
    if (cJSON_IsNull(tree)) { /* an empty file: every field takes its default */
        cJSON_Delete(tree);
        tree = cJSON_CreateObject();
        if (!tree) die("out of memory loading the job spec");
    }
    if (!cJSON_IsObject(tree)) {
        char got[128];
        config_describe(tree, got, sizeof got);
        snprintf(err, errlen, "%s: the top level must be a mapping of keys (kind, method, "
                 "model, moco, data, optim, ...), got %s", src->name, got);
        goto out;
    }
    for (int i = 0; i < src->n_overrides; i++)
        if (config_apply_override(tree, src->overrides[i], err, errlen) != 0) goto out;
    if (config_check_keys(tree, src, err, errlen) != 0) goto out;
    rc = config_resolve(tree, src, out, err, errlen);
out:
    cJSON_Delete(tree);
    return rc;
}

int config_load(const char *path, const char *const *overrides, int n_overrides,
                JobConfig *out, char *err, size_t errlen)
{
    return config_load_ex(path, overrides, n_overrides, 0, out, err, errlen);
}

int config_load_ex(const char *path, const char *const *overrides, int n_overrides,
                   unsigned flags, JobConfig *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    YamlLines lines = {0};
    ConfigSource src = {path ? path : "defaults", &lines, overrides, n_overrides, flags};
    cJSON *tree;
    if (path) {
        size_t len;
        char *text = read_text_file(path, &len, err, errlen);
        if (!text) return -1;
        tree = parse_text(text, len, path, &lines, err, errlen);
        free(text);
        if (!tree) return -1;
    } else {
        tree = cJSON_CreateObject();
        if (!tree) die("out of memory loading the job spec");
    }
    int rc = load_tree(tree, &src, out, err, errlen);
    yaml_lines_free(&lines);
    return rc;
}

int config_load_json(const char *json, JobConfig *out, char *err, size_t errlen)
{
    return config_load_json_ex(json, NULL, 0, out, err, errlen);
}

int config_load_json_ex(const char *json, const char *const *overrides, int n_overrides,
                        JobConfig *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    ConfigSource src = {"job spec (JSON)", NULL, overrides, n_overrides, 0};
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithOpts(json, &end, 1);
    if (!tree) {
        snprintf(err, errlen, "job spec (JSON): syntax error at byte %ld",
                 end ? (long)(end - json) : -1L);
        return -1;
    }
    return load_tree(tree, &src, out, err, errlen);
}

void config_free(JobConfig *c)
{
    if (!c) return;
    free(c->resolved_json);
    c->resolved_json = NULL;
}

/* spec_file.c — reads the job spec for `mococtl submit`, applies --set overrides and turns
 * relative data paths into absolute ones (see spec_file.h).
 *
 * The YAML reader and the override code are moco-train's own (train/config_yaml.c,
 * train/config_schema.c), so a file and a --set mean the same to mococtl as to moco-train, and
 * an unknown key is caught here with the same "did you mean" hint. The daemon's scheduling keys
 * (priority, after, not_before, max_restarts) are not job-spec keys; --set sets them at the top.
 */
#include "cli/spec_file.h"

#include "cli/cli.h"
#include "common/error.h"
#include "train/config.h" /* config_apply_override */
#include "train/config_yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A spec is a few KiB; a huge file is a mistake (a dataset given instead of the config). */
#define SPEC_MAX_BYTES (4u << 20)

static const char *const daemon_keys[] = {"priority", "after", "not_before", "max_restarts"};

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        cli_error("cannot open the job spec %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= SPEC_MAX_BYTES) {
            cli_error("%s: larger than %u bytes; is this really a job spec?", path,
                      SPEC_MAX_BYTES);
            free(buf);
            if (f != stdin) fclose(f);
            return NULL;
        }
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    int failed = ferror(f);
    int saved = errno;
    if (f != stdin) fclose(f); /* read-only: closing cannot lose data */
    if (failed) {
        cli_error("cannot read the job spec %s: %s", path, strerror(saved));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* --set for a daemon key: the value parsed as YAML, put at the top of the spec. 1 when the
 * assignment was such a key, 0 when it is a job-spec key, -1 after an error. */
static int set_daemon_key(cJSON *spec, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq) return 0;
    size_t n = (size_t)(eq - assignment);
    for (size_t i = 0; i < sizeof daemon_keys / sizeof daemon_keys[0]; i++) {
        if (strlen(daemon_keys[i]) != n || strncmp(daemon_keys[i], assignment, n) != 0) continue;
        char err[512], source[64];
        snprintf(source, sizeof source, "--set %s", daemon_keys[i]);
        cJSON *value = yaml_to_json(eq + 1, strlen(eq + 1), source, NULL, err, sizeof err);
        if (!value) {
            cli_error("%s", err);
            return -1;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(spec, daemon_keys[i]);
        cJSON_AddItemToObject(spec, daemon_keys[i], value);
        return 1;
    }
    return 0;
}

cJSON *spec_file_load(const char *path, char *const *sets, int n_sets)
{
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) return NULL;
    char err[1024];
    const char *source = strcmp(path, "-") == 0 ? "stdin" : path;
    /* JSON is YAML, so one reader takes both; its errors say FILE:LINE:COLUMN. */
    cJSON *spec = yaml_to_json(text, len, source, NULL, err, sizeof err);
    free(text);
    if (!spec) {
        cli_error("%s", err);
        return NULL;
    }
    if (cJSON_IsNull(spec)) { /* an empty file: every key takes its default on the server */
        cJSON_Delete(spec);
        spec = cJSON_CreateObject();
        if (!spec) die("out of memory reading the job spec");
    }
    if (!cJSON_IsObject(spec)) {
        cli_error("%s: the top level must be a mapping of keys (kind, method, model, data, "
                  "optim, ...)", source);
        cJSON_Delete(spec);
        return NULL;
    }
    for (int i = 0; i < n_sets; i++) {
        int d = set_daemon_key(spec, sets[i]);
        if (d < 0) goto fail;
        if (d == 1) continue;
        if (config_apply_override(spec, sets[i], err, sizeof err) != 0) {
            cli_error("%s", err);
            goto fail;
        }
    }
    return spec;
fail:
    cJSON_Delete(spec);
    return NULL;
}

/* ---- relative paths ------------------------------------------------------------------------ */

/* Joins cwd and a relative path and removes "." and ".." parts lexically (the path need not
 * exist here: mocod may run on another machine that shares the file system layout). */
static char *absolute_path(const char *cwd, const char *rel)
{
    size_t n = strlen(cwd) + strlen(rel) + 2;
    char *joined = xmalloc(n);
    snprintf(joined, n, "%s/%s", cwd, rel);
    char *out = xmalloc(n + 1);
    size_t o = 0;
    char *save = NULL;
    for (char *part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0) continue;
        if (strcmp(part, "..") == 0) {
            while (o > 0 && out[o - 1] != '/') o--; /* drop the last component */
            if (o > 0) o--;                         /* and its slash */
            continue;
        }
        out[o++] = '/';
        size_t pl = strlen(part);
        memcpy(out + o, part, pl);
        o += pl;
    }
    if (o == 0) out[o++] = '/';
    out[o] = '\0';
    free(joined);
    return out;
}

int spec_absolute_paths(cJSON *spec)
{
    static const char *const keys[][2] = {
        {"data", "train"}, {"data", "val"}, {"model", "pretrained"}};
    char cwd[4096];
    int have_cwd = getcwd(cwd, sizeof cwd) != NULL;
    int saved = errno;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *section = cJSON_GetObjectItemCaseSensitive(spec, keys[i][0]);
        cJSON *value = cJSON_GetObjectItemCaseSensitive(section, keys[i][1]);
        if (!cJSON_IsString(value) || value->valuestring[0] == '\0') continue;
        const char *v = value->valuestring;
        if (v[0] == '/' || strncmp(v, "job:", 4) == 0) continue;
        if (!have_cwd) {
            cli_error("%s.%s is a relative path (%s) and the current directory is unknown (%s); "
                      "give an absolute path", keys[i][0], keys[i][1], v, strerror(saved));
            return -1;
        }
        char *abs = absolute_path(cwd, v);
        cJSON *replacement = cJSON_CreateString(abs);
        free(abs);
        if (!replacement || !cJSON_ReplaceItemInObjectCaseSensitive(section, keys[i][1],
                                                                     replacement))
            die("out of memory rewriting the path of %s.%s", keys[i][0], keys[i][1]);
    }
    return 0;
}

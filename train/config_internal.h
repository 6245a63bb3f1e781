/* config_internal.h — what the parts of the job-spec loader share (train/config*.c only).
 *
 *   config.c          reading files, the public entry points
 *   config_yaml.c     YAML text to a cJSON tree
 *   config_schema.c   the list of known keys, unknown-key checks, --set overrides, and the
 *                     "where" prefix of every error message
 *   config_resolve.c  defaults, presets, types, ranges: the tree becomes a JobConfig
 */
#ifndef MOCO_CONFIG_INTERNAL_H
#define MOCO_CONFIG_INTERNAL_H

#include "train/config.h"
#include "train/config_yaml.h"

#include <cjson/cJSON.h>

typedef enum {
    FIELD_SECTION, /* a mapping of further keys */
    FIELD_INT,
    FIELD_NUMBER,
    FIELD_BOOL,
    FIELD_STRING,
    FIELD_CHOICE,  /* a string from a fixed list */
    FIELD_INT_LIST,
} FieldType;

typedef struct {
    const char *path;    /* dotted key path, e.g. "optim.lr" */
    FieldType type;
    const char *choices; /* FIELD_CHOICE: "a|b|c" */
} ConfigField;

/* Where the tree came from, for error messages. */
typedef struct {
    const char *name;            /* file name, or "resolved spec" */
    const YamlLines *lines;      /* may be NULL (JSON input) */
    const char *const *overrides;
    int n_overrides;
    unsigned flags;              /* CONFIG_DATA_OPTIONAL ... */
} ConfigSource;

/* The schema entry for a dotted path, or NULL. */
const ConfigField *config_field(const char *path);
/* The known path closest to an unknown one (a typo, or a key in the wrong section), or NULL. */
const char *config_suggest(const char *path);

/* The node at a dotted path, or NULL when any part is missing. */
const cJSON *config_lookup(const cJSON *tree, const char *path);
/* Writes the prefix naming where the value at `path` came from: "--set optim.lr: ",
 * "FILE:LINE: " or "FILE: ". */
void config_where(const ConfigSource *src, const char *path, char *buf, size_t n);
/* A short description of a value for messages: string "fast", number 1.5, a list, ... */
void config_describe(const cJSON *node, char *buf, size_t n);

/* Every key in the tree must be in the schema, and every section a mapping (or null). */
int config_check_keys(const cJSON *tree, const ConfigSource *src, char *err, size_t errlen);

/* Defaults, presets, type and range checks: the tree becomes *out (resolved_json included). */
int config_resolve(const cJSON *tree, const ConfigSource *src, JobConfig *out, char *err,
                   size_t errlen);

#endif

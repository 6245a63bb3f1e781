/* config_yaml.h — YAML text to a cJSON tree, for the job spec (internal to train/config*.c).
 *
 * Mappings become objects, sequences arrays, and plain scalars are typed as the YAML 1.2 core
 * schema types them (null, true/false, integers, floats such as 1.0e-4 or .inf, everything
 * else a string); quoted scalars and `!!str` stay strings. Anchors and aliases work, duplicate
 * keys and multiple documents are errors. Errors read "SOURCE:LINE:COLUMN: message".
 */
#ifndef MOCO_CONFIG_YAML_H
#define MOCO_CONFIG_YAML_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Where each mapping value came from, by dotted key path ("optim.lr"), so that later errors
 * can name the line. Paths rather than node pointers, because --set overrides replace nodes. */
typedef struct {
    char **paths;
    int *lines;         /* 1-based */
    int count, cap;
} YamlLines;

/* Returns the document's root (cJSON null for an empty document) or NULL with a message in
 * err. lines may be NULL. */
cJSON *yaml_to_json(const char *text, size_t len, const char *source, YamlLines *lines,
                    char *err, size_t errlen);
/* The 1-based line of the value at a dotted key path, or 0 when unknown. */
int yaml_line_of(const YamlLines *lines, const char *path);
void yaml_lines_free(YamlLines *lines);

/* One plain (unquoted) scalar typed by the core schema; never NULL. */
cJSON *yaml_plain_scalar(const char *text);

#endif

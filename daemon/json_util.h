/* json_util.h — small cJSON helpers of the daemon core. */
#ifndef MOCOD_JSON_UTIL_H
#define MOCOD_JSON_UTIL_H

#include <stddef.h>

typedef struct cJSON cJSON;

/* Prints tree (unformatted) with every number written so that it reads back as exactly the
 * same double (cJSON's own printer may drop the last digits, e.g. of a seed near 2^53). The
 * tree's numbers become raw nodes on the way. malloc'd (free with cJSON_free), NULL when out
 * of memory. */
char *json_print_exact(cJSON *tree);

/* The node at a dotted path ("model.pretrained"), or NULL. */
cJSON *json_at(cJSON *tree, const char *path);

/* Sets a string at a dotted path, creating sections. 0, or -1 (out of memory, or a section
 * on the way is not an object). */
int json_set_string(cJSON *tree, const char *path, const char *value);

#endif

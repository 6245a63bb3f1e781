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

/* Length of the longest prefix of s[0..n) that is well-formed UTF-8 (no overlong forms,
 * surrogates or code points past U+10FFFF): n when all of it is. */
size_t utf8_valid_prefix(const char *s, size_t n);

/* JSON must be UTF-8 (RFC 8259), but some strings mocod prints come from outside: a worker's
 * log lines (file names of a data set) in a failure reason, a worker's events. cJSON prints
 * their bytes as they are. This makes s[0..n) well-formed: 0 when it already is (*out NULL);
 * 1 with *out (malloc'd, NUL-terminated, *out_len bytes) a copy where each byte that cannot
 * start a valid sequence became U+FFFD; -1 when out of memory. */
int utf8_repair(const char *s, size_t n, char **out, size_t *out_len);

#endif

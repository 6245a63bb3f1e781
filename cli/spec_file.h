/* spec_file.h — the job spec that `mococtl submit` sends: a YAML or JSON file read into a cJSON
 * tree, --set overrides applied as moco-train applies them, relative data paths made absolute.
 */
#ifndef MOCOCTL_SPEC_FILE_H
#define MOCOCTL_SPEC_FILE_H

#include <cjson/cJSON.h>

/* path "-" reads stdin. Returns the spec (a JSON object), or NULL after printing the problem
 * (a file that cannot be read or parsed, a bad --set). */
cJSON *spec_file_load(const char *path, char *const *sets, int n_sets);

/* Makes the relative paths of data.train, data.val and model.pretrained (not "job:ID")
 * absolute against the current directory, because mocod reads them relative to its own.
 * 0, or -1 after a message. */
int spec_absolute_paths(cJSON *spec);

#endif

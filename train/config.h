/* config.h — the job spec (DESIGN §4): parsing, defaults, presets, overrides, validation.
 *
 * A config file is YAML (JSON accepted, being YAML). It is read into a cJSON tree, `--set
 * key.path=value` overrides are applied to that tree (value parsed as a YAML scalar or flow
 * collection, so `--set optim.milestones=[120,160]` works), the method preset fills what the
 * user left out, every field gets its official default, and the result is checked: unknown
 * keys, wrong types and out-of-range values are errors that name the key path and say what is
 * expected. The resolved spec is also kept as JSON for checkpoints and events.
 */
#ifndef MOCO_CONFIG_H
#define MOCO_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JOB_PRETRAIN = 0, JOB_LINCLS = 1, JOB_KNN = 2 } JobKind;
typedef enum { METHOD_MOCO_V1 = 1, METHOD_MOCO_V2 = 2 } Method;
typedef enum { SCHEDULE_COS = 0, SCHEDULE_STEP = 1 } Schedule;
typedef enum { AUGSPEC_V1 = 1, AUGSPEC_V2 = 2 } AugSpec;

#define CONFIG_MAX_MILESTONES 16
#define CONFIG_PATH_MAX 4096

typedef struct {
    JobKind kind;
    Method method;
    struct {
        char arch[32]; int cifar_stem; int mlp; int dim;
        char pretrained[CONFIG_PATH_MAX]; /* lincls/knn: checkpoint to start from ("" = none) */
    } model;
    struct { int k; double m; double t; int shuffle_bn; int bn_splits; } moco;
    struct {
        char train[CONFIG_PATH_MAX]; char val[CONFIG_PATH_MAX];
        int image_size; int val_resize; AugSpec aug; int workers;
    } data;
    struct {
        double lr; double momentum; double weight_decay; int batch_size; int epochs;
        Schedule schedule; int n_milestones; int milestones[CONFIG_MAX_MILESTONES];
    } optim;
    struct { int every_epochs; int keep_last; char dir[CONFIG_PATH_MAX]; } checkpoint;
    struct { int knn_every_epochs; int knn_k; double knn_t; } eval;
    struct { int gpus; int ranks; int threads; } resources;
    struct { int print_every; int max_steps; } log;  /* max_steps: stop early (0 = no limit) */
    uint64_t seed;
    char precision[8];
    char *resolved_json;  /* the whole resolved spec, malloc'd */
} JobConfig;

/* Loads path (or only defaults when path is NULL), applies the n overrides "a.b=value" in
 * order, resolves presets and defaults, validates. 0 on success, -1 with a message in err
 * naming the file/key and the fix. */
int config_load(const char *path, const char *const *overrides, int n_overrides,
                JobConfig *out, char *err, size_t errlen);
/* config_load with flags: CONFIG_DATA_OPTIONAL skips the rule that a job names its image
 * folders (data.train, data.val), for `align` and `bench`, whose inputs come from elsewhere. */
#define CONFIG_DATA_OPTIONAL 1u
int config_load_ex(const char *path, const char *const *overrides, int n_overrides,
                   unsigned flags, JobConfig *out, char *err, size_t errlen);
/* Same from an in-memory JSON string (the resolved spec stored in a checkpoint). */
int config_load_json(const char *json, JobConfig *out, char *err, size_t errlen);
/* ... with "a.b=value" overrides applied on top (--resume without --config, plus --set). */
int config_load_json_ex(const char *json, const char *const *overrides, int n_overrides,
                        JobConfig *out, char *err, size_t errlen);
void config_free(JobConfig *c);

/* Applies one "a.b.c=value" override (value parsed as YAML) to a spec tree, as --set does;
 * mococtl uses it on the spec it sends. 0, or -1 with a message naming the key. */
typedef struct cJSON cJSON;
int config_apply_override(cJSON *tree, const char *assignment, char *err, size_t errlen);

#endif

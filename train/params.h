/* params.h — a registry of a model's tensors under their torchvision names.
 *
 * Each module registers its parameters and buffers (name, PyTorch shape, kind) while the model
 * is being built; params_finalize then places them all in one allocation per role (DESIGN §3):
 *   data  — learnable parameters first (offsets [0, n_learn)), then float buffers
 *           (BN running_mean / running_var);
 *   grad  — [n_learn], same offsets as the learnables in data;
 *   i64   — integer buffers (BN num_batches_tracked).
 * Because learnables are contiguous and two models built by the same code register the same
 * tensors in the same order, whole-model operations (momentum update, SGD, zeroing grads)
 * are single loops over one array.
 *
 * Conv weights are held in the backend's internal layout (kernels.h: OHWI on CPU); `conv`
 * marks them so that import/export converts to and from PyTorch's OIHW.
 */
#ifndef MOCO_PARAMS_H
#define MOCO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "train/safetensors.h"

#define PARAM_NAME_MAX 96

typedef enum {
    PARAM_LEARNABLE = 0,   /* float, has a gradient, seen by the optimizer */
    PARAM_BUFFER_F32 = 1,  /* float state without gradient (running statistics) */
    PARAM_BUFFER_I64 = 2,  /* integer state (num_batches_tracked) */
} ParamKind;

typedef struct {
    char name[PARAM_NAME_MAX];  /* torchvision name without prefix, e.g. "layer1.0.bn1.weight" */
    ParamKind kind;
    int ndim;
    int64_t shape[4];           /* PyTorch shape; [] (ndim 0) for num_batches_tracked */
    size_t count;               /* elements */
    int conv;                   /* 1: OIHW in PyTorch, backend layout internally */
    size_t offset;              /* into data/grad (floats) or i64 */
    /* Valid after params_finalize: */
    float *data;
    float *grad;                /* NULL unless PARAM_LEARNABLE */
    int64_t *i64;               /* PARAM_BUFFER_I64 only */
} Param;

typedef struct {
    Param *p;
    int count, cap;
    size_t n_learn, n_buf, n_i64;
    float *data;      /* n_learn + n_buf floats, one allocation */
    float *grad;      /* n_learn floats */
    int64_t *i64;     /* n_i64 */
    int finalized;
} ParamSet;

void params_init(ParamSet *ps);
/* Registers a tensor; returns its index (stable; pointers are valid only after finalize).
 * shape has ndim entries. */
int params_add(ParamSet *ps, const char *name, ParamKind kind, int ndim, const int64_t *shape,
               int conv);
/* Allocates the arenas (zeroed) and points every Param into them. */
void params_finalize(ParamSet *ps);
void params_free(ParamSet *ps);

Param *params_find(const ParamSet *ps, const char *name);
void params_zero_grad(ParamSet *ps);
/* dst := src for every tensor (params and buffers); the two sets must have the same layout. */
void params_copy(ParamSet *dst, const ParamSet *src);

/* Floats of scratch that params_export needs (conv weights converted to OIHW). */
size_t params_export_scratch_floats(const ParamSet *ps);

typedef enum {
    EXPORT_ALL = 0,          /* parameters and buffers, values */
    EXPORT_LEARNABLE = 1,    /* parameters only, values */
    EXPORT_GRADS = 2,        /* gradients of the parameters */
    EXPORT_EXTERNAL = 3,     /* a parallel [n_learn] array (optimizer state), learnables only */
} ExportWhat;

/* Adds tensors to w under prefix+name in PyTorch layouts. Conv weights are converted into
 * scratch (which must stay alive until the writer is saved); the rest is borrowed.
 * `external` is used with EXPORT_EXTERNAL; skip(name) == 1 leaves a tensor out (NULL: none). */
void params_export(const ParamSet *ps, StWriter *w, const char *prefix, ExportWhat what,
                   const float *external, float *scratch, int (*skip)(const char *name));

/* Loads every tensor of ps (what = EXPORT_ALL or EXPORT_LEARNABLE) or the external array
 * (EXPORT_EXTERNAL) from f under prefix+name, checking dtype and shape. Returns 0, 1 when
 * `optional` and the first tensor is absent (nothing loaded), or -1 with err naming the tensor. */
int params_import(ParamSet *ps, const StFile *f, const char *prefix, ExportWhat what,
                  float *external, int optional, char *err, size_t errlen);

#endif

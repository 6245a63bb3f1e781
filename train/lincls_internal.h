/* lincls_internal.h — what the parts of `moco-train lincls` share (train/lincls*.c only):
 *
 *   lincls.c             the epoch loop (lincls_main)
 *   lincls_model.c       the model: frozen backbone, fc, one step, state tensors
 *   lincls_checkpoint.c  lincls-last / lincls-best, --resume, folder and consistency checks
 *   lincls_sanity.c      the official sanity check
 */
#ifndef MOCO_LINCLS_INTERNAL_H
#define MOCO_LINCLS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "data/folder.h"
#include "train/config.h"
#include "train/lincls.h"
#include "train/safetensors.h"

#define LINCLS_LAST_NAME "lincls-last.safetensors"
#define LINCLS_BEST_NAME "lincls-best.safetensors"

typedef struct {
    int64_t step;
    int epochs_done, next_epoch, next_batch;
    double best_top1;   /* -1 until the first evaluation: the first epoch always sets a best */
} LinclsCursor;

typedef struct {
    const JobConfig *cfg;
    const ImageFolder *train;  /* its class names go into the metadata */
    const char *pretrained;    /* the file the backbone came from */
} LinclsSaveInfo;

/* Opens lincls-last (a file, or the checkpoint.dir holding it) and reads its cursor; die()s
 * naming the file when it is not a lincls checkpoint. */
void lincls_open_resume(const char *arg, StFile *f, char *file, size_t len, LinclsCursor *cur);
/* With --config and --resume: model.arch and model.cifar_stem must match the checkpoint. */
void lincls_check_resume_model(const StFile *f, const char *file, const JobConfig *cfg);
/* The checkpoint's classes must be data.train's. */
void lincls_check_resume_classes(const StFile *f, const char *file, const ImageFolder *train);
/* Creates and write-tests checkpoint.dir; a new run refuses one holding lincls-last. */
void lincls_check_checkpoint_dir(const JobConfig *cfg, int resuming);
/* Writes checkpoint.dir/name atomically with the current state and cursor; emits a
 * `checkpoint` event. die()s naming the path when the write fails. */
void lincls_save(Lincls *m, const LinclsSaveInfo *info, const LinclsCursor *cur, const char *name);

#endif

/* checkpoint.h — training checkpoints: save with rotation, load for resume, backbone export.
 *
 * A checkpoint is a safetensors file (DESIGN §4) holding the MoCo state (moco_write_state)
 * and, in __metadata__: format "mocod-checkpoint", format_version, step, epoch (completed
 * epochs), arch, config (the resolved job spec, JSON) and cursor (JSON {"epoch": e,
 * "batch": b}: the next batch to run — enough for an exact resume because every random draw
 * is keyed by seed, epoch, sample and step).
 *
 * Files are named ckpt-e<epoch>-s<step>.safetensors in checkpoint.dir (zero-padded so that
 * name order is time order); after each save only the newest keep_last remain.
 */
#ifndef MOCO_CHECKPOINT_H
#define MOCO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "train/config.h"
#include "train/moco.h"
#include "train/safetensors.h"

#define CHECKPOINT_FORMAT "mocod-checkpoint"
#define CHECKPOINT_FORMAT_VERSION "1"

typedef struct {
    int64_t step;        /* optimizer steps taken */
    int epochs_done;     /* completed epochs */
    int next_epoch;      /* cursor: where training continues */
    int next_batch;
} CheckpointCursor;

/* Saves m's state; writes the file's path into path_out. Dies with a message naming the
 * path and the reason (full disk, permissions) — the previous checkpoints stay intact. */
void checkpoint_save(Moco *m, const JobConfig *cfg, const CheckpointCursor *cur,
                     char *path_out, size_t path_len);

/* Removes the temporary files of checkpoint saves that a killed process left in dir (their
 * writer's pid no longer runs): each is as large as a checkpoint, and nothing else would. */
void checkpoint_remove_stale_temps(const char *dir);

/* Opens a checkpoint for resume: a file, or a folder whose newest ckpt-*.safetensors is
 * taken. Fills f and cur. 0, or -1 with err naming the file and the fix. */
int checkpoint_open(const char *path, StFile *f, CheckpointCursor *cur, char *err, size_t errlen);

/* Writes the encoder_q backbone of checkpoint `in` as torchvision names without prefix and
 * without fc.* to `out`. 0, or -1 with err. */
int checkpoint_export_backbone(const char *in, const char *out, char *err, size_t errlen);

/* 1 and the path of the newest ckpt-*.safetensors in dir, or 0 when it holds none. */
int checkpoint_newest(const char *dir, char *out, size_t len);

/* mkdir -p. 0, or -1 with err. */
int make_dirs(const char *path, char *err, size_t errlen);

#endif

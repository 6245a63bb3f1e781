/* pretrain.h — `moco-train pretrain`: MoCo pretraining on an image folder (main_moco.py). */
#ifndef MOCO_PRETRAIN_H
#define MOCO_PRETRAIN_H

#include "train/cli_args.h"

/* Exit status: 0 completed, 1 error, PRETRAIN_EXIT_STOPPED when stopped by SIGTERM/SIGINT
 * or log.max_steps after writing a checkpoint to resume from. */
#define PRETRAIN_EXIT_STOPPED 3

int pretrain_main(const CliArgs *args);

#endif

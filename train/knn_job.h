/* knn_job.h — `moco-train knn`: kNN accuracy of a pretrained backbone (the official CIFAR-10
 * demo's test(), on the backbone features; see docs/moco-train.md "kNN"). */
#ifndef MOCO_KNN_JOB_H
#define MOCO_KNN_JOB_H

#include "train/cli_args.h"

/* The options knn accepts (CLI_* bits). */
#define KNN_JOB_OPTIONS (CLI_CONFIG | CLI_SET | CLI_CHECKPOINT | CLI_EVENTS_FD)

/* --config FILE [--set ...] [--checkpoint CKPT] [--events-fd N]; the backbone comes from
 * --checkpoint, or model.pretrained without it. Returns the exit status (0). */
int knn_job_main(const CliArgs *args);

#endif

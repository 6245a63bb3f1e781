/* job_config.h — the config a training command runs with: --config FILE plus --set overrides,
 * or, when resuming without --config, the resolved spec stored in the checkpoint. Shared by
 * `moco-train pretrain` and `moco-train lincls`. */
#ifndef MOCO_JOB_CONFIG_H
#define MOCO_JOB_CONFIG_H

#include "train/cli_args.h"
#include "train/config.h"
#include "train/safetensors.h"

/* Fills cfg or dies with a message naming the fix: the file or spec does not load, or its kind
 * is not `kind` (the job of `command`, e.g. "lincls"). resumed: the checkpoint being resumed,
 * or NULL. */
void job_config_load(const CliArgs *args, const StFile *resumed, JobKind kind,
                     const char *command, JobConfig *cfg);

#endif

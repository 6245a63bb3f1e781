/* lincls.h — linear evaluation (`moco-train lincls`), following the official main_lincls.py.
 *
 * A ResNet backbone loaded from model.pretrained and frozen — every layer in eval mode, BN
 * normalizing with the pretrained running statistics, no gradient — under a new linear layer
 * fc [classes, features] initialised N(0, 0.01) with zero bias. Only fc.weight and fc.bias are
 * trained: SGD (momentum, coupled weight decay) on the cross-entropy of the logits, the
 * learning rate set per epoch by the schedule (main_lincls.py: lr 30, steps at 60 and 80).
 *
 * Because the backbone runs in eval mode and has no gradient, its features are computed by a
 * forward-only pass and never need a backward; backbone tensors, running statistics and
 * num_batches_tracked included, must come out of training bit-identical to the pretrained
 * file (lincls_sanity_check, the official sanity_check).
 *
 * Checkpoints (lincls-last.safetensors, lincls-best.safetensors in checkpoint.dir): metadata
 * format "mocod-lincls", format_version, step, epoch (completed), cursor, best_top1, arch,
 * cifar_stem, classes (JSON list of class names), config (resolved spec), pretrained (the path
 * loaded); tensors: the full torchvision state (backbone and fc.weight/fc.bias, PyTorch
 * layouts) and optim.momentum_buffer.fc.weight/.bias after the first step.
 */
#ifndef MOCO_LINCLS_H
#define MOCO_LINCLS_H

#include <stddef.h>
#include <stdint.h>

#include "train/cli_args.h"
#include "train/params.h"
#include "train/safetensors.h"

/* Exit status: 0 completed, 1 error, LINCLS_EXIT_STOPPED when stopped by SIGTERM/SIGINT or
 * log.max_steps after writing lincls-last to resume from. */
#define LINCLS_EXIT_STOPPED 3
#define LINCLS_FORMAT_VERSION "1"

typedef struct {
    const char *arch;      /* resnet18 | resnet34 | resnet50 */
    int cifar_stem;
    int image_size;
    int max_batch;
    int classes;
    float momentum, weight_decay;
} LinclsModelConfig;

typedef struct Lincls Lincls;

typedef struct {
    float loss;            /* mean cross-entropy over the batch */
    int n;                 /* rows */
    int64_t correct1;      /* rows whose label is the top-1 logit */
    int64_t correct5;      /* ... among the top 5; ACCURACY_UNDEFINED with fewer than 5 classes */
} LinclsBatchStats;

/* Builds backbone and fc (zeroed: load a backbone, then lincls_init_fc or a state). die()s on
 * an unknown arch. */
Lincls *lincls_create(const LinclsModelConfig *cfg);
void lincls_destroy(Lincls *l);
/* fc.weight ~ N(0, 0.01), fc.bias = 0, from the seed's own stream (main_lincls.py). */
void lincls_init_fc(Lincls *l, uint64_t seed);
ParamSet *lincls_backbone(Lincls *l);  /* torchvision names without prefix, no fc.* */
ParamSet *lincls_fc(Lincls *l);        /* fc.weight [classes, features], fc.bias; .grad holds
                                          the last step's gradients */

/* One training step on NHWC images x [n, S, S, 3] (normalized): eval-mode features, logits,
 * cross-entropy, fc gradients, SGD on fc with this step's lr. */
LinclsBatchStats lincls_train_step(Lincls *l, const float *x, const int32_t *labels, int n,
                                   float lr);
/* Logits, loss and accuracy of a batch without training. */
LinclsBatchStats lincls_evaluate(Lincls *l, const float *x, const int32_t *labels, int n);
const float *lincls_last_logits(const Lincls *l);  /* [n, classes] of the last call */

/* Adds the checkpoint tensors listed above to w (converted copies live inside l: save the
 * writer before the next call into l). */
void lincls_write_state(Lincls *l, StWriter *w);
/* Inverse; momentum buffers optional. 0, or -1 with err naming the tensor. */
int lincls_load_state(Lincls *l, const StFile *f, char *err, size_t errlen);

/* The official sanity check: every tensor of ps except fc.* (parameters, running statistics,
 * num_batches_tracked) must be bit-identical to the pretrained file's (any format
 * pretrained_load_backbone accepts). 0, or -1 with err naming the first tensor that differs,
 * how many elements differ and the largest difference. */
int lincls_sanity_check(const ParamSet *ps, const char *pretrained_path, char *err,
                        size_t errlen);

/* `moco-train lincls --config FILE [--set ...] [--resume CKPT|DIR] [--events-fd N]`. */
int lincls_main(const CliArgs *args);

#endif

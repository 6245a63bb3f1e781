/* resnet.h — ResNet-18/34/50 in torchvision's layout and names, with an optional CIFAR stem
 * and the MoCo projection heads, forward (train/eval) and backward on NHWC activations.
 *
 * Layout as torchvision.models.resnet (v1.5: the stride of a Bottleneck is on its 3x3 conv):
 *   conv1, bn1, relu, maxpool, layer1..layer4 (BasicBlock for 18/34, Bottleneck for 50),
 *   avgpool, head. CIFAR stem (the official CIFAR-10 demo): conv1 3x3 stride 1 pad 1, no max pool.
 * Heads: HEAD_NONE (features), HEAD_FC (fc: feat -> out, MoCo v1), HEAD_MLP (fc.0: feat ->
 * feat, ReLU, fc.2: feat -> out, MoCo v2).
 * BatchNorm: eps 1e-5, momentum 0.1, bn_splits > 1 normalizes sub-batches separately as the
 * official SplitBatchNorm (which, unlike nn.BatchNorm2d, does not count num_batches_tracked).
 *
 * Memory: parameters live in the ParamSet arenas; activations in one arena sized at build
 * time for max_batch images. RESNET_TRAIN keeps what backward needs (conv outputs and block
 * outputs; BN+ReLU outputs inside a block are recomputed in backward); RESNET_FORWARD_ONLY
 * (the key encoder) keeps nothing between layers. Buffers needed only during one forward or
 * backward live in a scratch region that several networks can share (resnet_use_scratch).
 */
#ifndef MOCO_RESNET_H
#define MOCO_RESNET_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "train/params.h"

typedef enum { HEAD_NONE = 0, HEAD_FC = 1, HEAD_MLP = 2 } HeadKind;
typedef enum { RESNET_TRAIN = 0, RESNET_FORWARD_ONLY = 1 } ResnetMemory;

typedef struct {
    int depth;          /* 18, 34 or 50 */
    int cifar_stem;
    HeadKind head;
    int out_dim;        /* head output (ignored for HEAD_NONE) */
    int bn_splits;      /* 1 = plain BatchNorm */
    int image_size;     /* square inputs */
    int max_batch;
    ResnetMemory memory;
} ResnetConfig;

typedef struct Resnet Resnet;

/* Parses "resnet18" / "resnet34" / "resnet50" into a depth; 0 if unknown. */
int resnet_depth_from_arch(const char *arch);

/* Builds the network and registers its tensors in ps (which the caller finalizes with
 * params_finalize before resnet_init / forward). */
Resnet *resnet_create(const ResnetConfig *cfg, ParamSet *ps);
void resnet_destroy(Resnet *net);
/* torchvision init from a seed: conv kaiming_normal(fan_out, relu), BN 1/0, Linear default
 * (U(±1/sqrt(fan_in)) for weight and bias); the CIFAR stem conv1 gets nn.Conv2d's default
 * (U(±1/sqrt(fan_in))) since the demo replaces it after torchvision's init. */
void resnet_init(Resnet *net, uint64_t seed);

/* Bytes of scratch the forward and backward passes use (buffers and conv workspace). */
size_t resnet_scratch_bytes(const Resnet *net);
/* Points the network at scratch (>= resnet_scratch_bytes, 64-byte aligned), which must
 * outlive it. Networks that never run at the same time (the query and key encoders of one
 * step) may share one region; its contents do not survive from one forward or backward call
 * to the next. Without this call the first forward allocates the network's own. */
void resnet_use_scratch(Resnet *net, void *scratch);

int resnet_feature_dim(const Resnet *net);   /* 512 (18/34) or 2048 (50) */
int resnet_output_dim(const Resnet *net);    /* head output, or the feature dim */

/* x: NHWC [n, S, S, 3], n <= max_batch; must stay alive until resnet_backward when training.
 * train_bn: 1 = batch statistics and running-stat update (module.train()), 0 = eval.
 * Returns [n, out] inside the activation arena. */
const float *resnet_forward(Resnet *net, const float *x, int n, int train_bn);
/* Eval-mode forward (BN running statistics, nothing updated) that stops at the global
 * average pool: the backbone features [n, resnet_feature_dim] inside the activation arena,
 * whatever the head. For the kNN monitor, which must read encoder_q's backbone without its
 * projection head. A following resnet_backward is refused (the last forward was not train). */
const float *resnet_forward_features(Resnet *net, const float *x, int n);
/* Backward of the last train_bn forward (RESNET_TRAIN only): dout [n, out]; parameter
 * gradients accumulate into ps->grad. */
void resnet_backward(Resnet *net, const float *dout);

#endif

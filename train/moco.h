/* moco.h — Momentum Contrast (MoCo v1/v2): two encoders, the queue, the InfoNCE loss and one
 * training step, with the semantics of the official moco/builder.py and main_moco.py.
 *
 * One step (moco_train_step), in the official order:
 *   q = normalize(encoder_q(im_q))
 *   no grad: θk = m·θk + (1−m)·θq over parameters only; k = normalize(encoder_k(im_k[perm]))
 *            in train mode (updates encoder_k's own BN running stats), unshuffled back
 *   logits = [q·k, q·queue] / T (positive in column 0); loss = CE(logits, 0), mean
 *   enqueue k at queue_ptr; backward into encoder_q; SGD (momentum, coupled weight decay).
 * On R ranks (comm.h) as the official code under DDP: each rank holds n = N/R rows of the
 * global batch; the key images are all-gathered and rank r encodes the rows that rank 0's
 * permutation sends it (shuffle BN, shuffle_bn.h); the keys are all-gathered, unshuffled and all
 * N enqueued on every rank; gradients are averaged over ranks before SGD; BN running
 * statistics of both encoders are rank 0's. Parameters and queue stay identical on every rank.
 *
 * Checkpoint tensors (moco_write_state / moco_load_state), PyTorch layouts (conv OIHW):
 *   encoder_q.<torchvision name>, encoder_k.<...>   parameters and BN buffers
 *                                                   (num_batches_tracked int64 [])
 *   queue F32 [dim, K], queue_ptr I64 [1]
 *   optim.momentum_buffer.encoder_q.<name>          SGD momentum buffers (after the first step)
 */
#ifndef MOCO_MOCO_H
#define MOCO_MOCO_H

#include <stddef.h>
#include <stdint.h>

#include "train/comm.h"
#include "train/config.h"
#include "train/params.h"
#include "train/safetensors.h"

typedef struct Moco Moco;

typedef struct {
    float loss;       /* mean cross-entropy over the batch */
    int correct1;     /* rows whose positive is the top-1 logit */
    int correct5;     /* ... among the top 5 */
    int n;            /* rows */
} MocoStepStats;

/* Builds both encoders (cfg->model: arch, cifar_stem, mlp, dim), the queue (cfg->moco.k,
 * normalized Gaussian columns), the optimizer state; everything initialised from cfg->seed
 * as torchvision does (encoder_k is a copy of encoder_q). Images are
 * cfg->data.image_size square. die()s when moco.k is not a multiple of optim.batch_size or of
 * local_batch, or local_batch is not a multiple of moco.bn_splits, or local_batch x ranks is
 * not optim.batch_size. Every rank starts from rank 0's state. */
Moco *moco_create(const JobConfig *cfg, int local_batch, Comm *comm);
void moco_destroy(Moco *m);

/* One step. im_q, im_k: this rank's rows, NHWC [local_batch, S, S, 3], already normalized.
 * perm: the key shuffle over the global batch (shuffled[j] = global row perm[j]), the same on
 * every rank, NULL = identity; ignored when moco.shuffle_bn is false. lr: this step's learning
 * rate. The stats are this rank's (callers reduce them across ranks for reports). */
MocoStepStats moco_train_step(Moco *m, const float *im_q, const float *im_k,
                              const int32_t *perm, float lr);

/* ---- inspection (alignment mode, tests) ---- */
int moco_batch(const Moco *m);
int moco_dim(const Moco *m);
int moco_queue_len(const Moco *m);                 /* K */
const float *moco_last_logits(const Moco *m);      /* [local_batch, 1+K], already divided by T */
const float *moco_last_q(const Moco *m);           /* [local_batch, dim] */
const float *moco_last_k(const Moco *m);           /* [local_batch, dim] (unshuffled) */
const float *moco_last_k_all(const Moco *m);       /* [global batch, dim], every rank's keys */
const float *moco_queue(const Moco *m);            /* [dim, K] */
int64_t moco_queue_ptr(const Moco *m);
/* encoder_q's tensors by torchvision name: Param.grad holds the last step's gradients. */
ParamSet *moco_encoder_q(Moco *m);
ParamSet *moco_encoder_k(Moco *m);

/* Embeddings for monitoring (kNN): normalize(encoder_q(im)) with BN in eval mode,
 * n <= local_batch images NHWC; returns [n, dim] valid until the next call into m. */
const float *moco_embed_eval(Moco *m, const float *im, int n);

/* encoder_q as a network, for resnet_forward_features (the kNN monitor reads its backbone
 * in eval mode; that forward changes no state a training step reads). */
struct Resnet *moco_encoder_q_net(Moco *m);

/* ---- checkpoints ---- */
/* Adds the tensors listed above to w. Converted copies live in a scratch buffer inside m, so
 * save the writer before the next moco_train_step / moco_write_* call on m. */
void moco_write_state(Moco *m, StWriter *w);
/* Inverse. encoder_k.* optional (copied from encoder_q when absent), optim.* optional (first
 * step then starts the buffers as PyTorch does). 0, or -1 with err naming the tensor. */
int moco_load_state(Moco *m, const StFile *f, char *err, size_t errlen);
/* encoder_q backbone only: torchvision names without prefix, no fc.* (loads into
 * torchvision.models.resnetXX() with strict=False leaving only fc missing). */
void moco_write_backbone(Moco *m, StWriter *w);
/* Adds grad.encoder_q.<name> for every parameter (alignment mode). Same lifetime rule. */
void moco_write_grads(Moco *m, StWriter *w);

#endif

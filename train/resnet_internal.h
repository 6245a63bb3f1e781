/* resnet_internal.h — the Resnet structure, shared by resnet.c (construction, memory plan,
 * initialisation) and resnet_pass.c (forward and backward). Not part of the model's API.
 *
 * Memory (see resnet.c, plan_memory): the activation arena holds only what backward reads —
 * every conv output (the BN input), the stem's trunk output and every block output (the
 * inputs of later convs), argmax of the max pool, BN statistics and the head's small
 * tensors. The output of a unit's BN+ReLU inside a block is not kept: forward writes it to a
 * scratch buffer, backward recomputes it from the conv output. Scratch — three "big" buffers
 * (block-sized), three "small" ones (inner-unit-sized) and the conv workspace — is used only
 * within one forward or one backward, so the query encoder, the key encoder and checkpoint
 * export can share one region (resnet_use_scratch).
 */
#ifndef MOCO_RESNET_INTERNAL_H
#define MOCO_RESNET_INTERNAL_H

#include <stddef.h>

#include "train/resnet.h"

#define RESNET_MAX_BLOCKS 16

typedef struct {
    int w;                      /* conv weight param index */
    ConvShape cs;               /* n = max_batch */
    int gamma, beta, rmean, rvar, nbt;  /* BN param indices */
    BNShape bs;
    int relu;                   /* ReLU after BN inside the unit */
    float *conv_out;            /* BN input, kept for backward (RESNET_TRAIN only) */
    float *save_mean, *save_invstd;
    float *scale, *shift;       /* BN as y = x * scale + shift, from the last forward */
} Unit;

typedef struct {
    Unit u[3];
    int n_units;
    Unit ds;
    int has_ds;
    float *in;   /* block input (RESNET_TRAIN) */
    float *out;  /* block output after the residual add and ReLU (RESNET_TRAIN) */
} Block;

struct Resnet {
    ResnetConfig cfg;
    ParamSet *ps;
    int feat;               /* 512 or 2048 */
    Unit stem;
    int has_pool;
    PoolShape pool;
    float *trunk;           /* stem output after the pool: block 0's input (RESNET_TRAIN) */
    int32_t *argmax;
    Block blocks[RESNET_MAX_BLOCKS];
    int n_blocks;
    int last_hw;            /* spatial size of layer4 output (h*w) */
    /* head */
    int fc0_w, fc0_b, fc_w, fc_b;  /* fc_* is "fc" (v1) or "fc.2" (v2) */
    float *feat_out;        /* [n, feat] after avgpool */
    float *hidden;          /* [n, feat] MLP hidden after ReLU */
    float *head_out;        /* [n, out] */
    float *dfeat, *dhidden;
    /* scratch */
    size_t big_floats, small_floats, workspace_bytes;
    float *big[3], *small[3];
    void *workspace;
    void *own_scratch;      /* allocated by the first forward when no shared one was set */
    char *arena;
    size_t arena_bytes;
    const float *input;     /* image of the last forward */
    int last_n;
    int last_train;
};

static inline size_t unit_out_floats(const Unit *u, int n)
{
    return (size_t)n * u->cs.oh * u->cs.ow * u->cs.c_out;
}

static inline size_t unit_in_floats(const Unit *u, int n)
{
    return (size_t)n * u->cs.h * u->cs.w * u->cs.c_in;
}

static inline Param *P(const Resnet *net, int idx) { return &net->ps->p[idx]; }

#endif

/* resnet_pass.c — forward and backward of the ResNet built by resnet.c (see resnet.h and
 * resnet_internal.h for the memory plan).
 *
 * Each unit is conv -> BN (-> ReLU), and the last unit of a block also takes the residual:
 * forward runs the conv, the BN statistics, then ONE fused pass that normalizes, adds the
 * identity and applies the ReLU (batchnorm_apply). Backward runs the fused BN+ReLU backward
 * (mask recomputed from the conv output), so no ReLU output is kept, and recomputes the one
 * inner BN+ReLU output each conv's weight gradient needs from that unit's conv output.
 */
#include "train/resnet.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/resnet_internal.h"
#include "train/step_profile.h"

/* Charges the time of one statement to an op kind of the step profile (MOCO_PROFILE=1). */
#define TIMED(op, stmt)                                                                      \
    do {                                                                                     \
        double t0_ = step_profile_begin();                                                   \
        stmt;                                                                                \
        step_profile_end(op, t0_);                                                           \
    } while (0)

static BNShape bn_shape(const Unit *u, int n)
{
    BNShape bs = u->bs;
    bs.n = n;
    return bs;
}

static ConvShape conv_shape(const Unit *u, int n)
{
    ConvShape cs = u->cs;
    cs.n = n;
    return cs;
}

/* ---- forward ----------------------------------------------------------------------------- */

/* conv(x) into conv_out, then this batch's BN statistics (train_bn) or the running ones. */
static void unit_conv_stats(Resnet *net, Unit *u, const float *x, float *conv_out, int n,
                            int train_bn)
{
    ConvShape cs = conv_shape(u, n);
    TIMED(OP_CONV_FWD, conv2d_forward(&cs, x, P(net, u->w)->data, conv_out, net->workspace));
    BNShape bs = bn_shape(u, n);
    double t = step_profile_begin();
    if (train_bn) {
        batchnorm_stats_train(&bs, conv_out, P(net, u->gamma)->data, P(net, u->beta)->data,
                              P(net, u->rmean)->data, P(net, u->rvar)->data, u->save_mean,
                              u->save_invstd, u->scale, u->shift);
        /* nn.BatchNorm2d counts batches; the demo's SplitBatchNorm overrides forward and
         * never does, so PyTorch leaves num_batches_tracked at 0 there. */
        if (bs.splits == 1) P(net, u->nbt)->i64[0] += 1;
    } else {
        batchnorm_stats_eval(&bs, P(net, u->gamma)->data, P(net, u->beta)->data,
                             P(net, u->rmean)->data, P(net, u->rvar)->data, u->scale, u->shift);
    }
    step_profile_end(OP_BN_FWD, t);
}

/* y = act(BN(conv_out) [+ z]) with the statistics unit_conv_stats left. */
static void unit_apply(Resnet *net, const Unit *u, const float *conv_out, const float *z,
                       int relu, float *y, int n)
{
    BNShape bs = bn_shape(u, n);
    TIMED(OP_BN_FWD, batchnorm_apply(&bs, conv_out, u->scale, u->shift, z, relu, y));
}

/* One residual block. Training: conv outputs go to their planned places, inner BN+ReLU
 * outputs to scratch, the block output to blk->out. Forward-only: x is big[xi] and
 * everything else goes to the other two big buffers and the small ones; returns the index of
 * the big buffer holding the output. */
static int block_forward(Resnet *net, Block *blk, const float *x, int xi, int n, int train_bn)
{
    const int train = net->cfg.memory == RESNET_TRAIN;
    float *b1 = net->big[(xi + 1) % 3], *b2 = net->big[(xi + 2) % 3];
    const float *a = x;
    for (int k = 0; k + 1 < blk->n_units; k++) {
        Unit *u = &blk->u[k];
        float *c = train ? u->conv_out : net->small[k];
        float *y = train ? net->small[0] : c; /* forward-only: in place */
        unit_conv_stats(net, u, a, c, n, train_bn);
        unit_apply(net, u, c, NULL, 1, y, n);
        a = y;
    }
    Unit *last = &blk->u[blk->n_units - 1];
    float *c = train ? last->conv_out : b1;
    float *out = train ? blk->out : b1;
    const float *identity = x;
    if (blk->has_ds) {
        /* the downsample goes first, completely: forward-only units share one set of BN
         * statistics. Its BN output goes straight where the block output will be (training)
         * or in place (forward-only), and the last apply adds it in place. */
        float *dc = train ? blk->ds.conv_out : b2;
        float *dy = train ? out : dc;
        unit_conv_stats(net, &blk->ds, x, dc, n, train_bn);
        unit_apply(net, &blk->ds, dc, NULL, 0, dy, n);
        identity = dy;
    }
    unit_conv_stats(net, last, a, c, n, train_bn);
    unit_apply(net, last, c, identity, 1, out, n);
    return (xi + 1) % 3;
}

/* The projection head on the pooled features; returns the network output. */
static const float *head_forward(Resnet *net, int n)
{
    switch (net->cfg.head) {
    case HEAD_NONE:
        return net->feat_out;
    case HEAD_FC:
        linear_forward(n, net->feat, net->cfg.out_dim, net->feat_out, P(net, net->fc_w)->data,
                       P(net, net->fc_b)->data, net->head_out);
        return net->head_out;
    case HEAD_MLP:
        linear_forward(n, net->feat, net->feat, net->feat_out, P(net, net->fc0_w)->data,
                       P(net, net->fc0_b)->data, net->hidden);
        relu_forward((size_t)n * net->feat, net->hidden, net->hidden);
        linear_forward(n, net->feat, net->cfg.out_dim, net->hidden, P(net, net->fc_w)->data,
                       P(net, net->fc_b)->data, net->head_out);
        return net->head_out;
    }
    return NULL;
}

static void ensure_scratch(Resnet *net)
{
    if (net->workspace) return;
    net->own_scratch = xaligned_alloc(resnet_scratch_bytes(net));
    resnet_use_scratch(net, net->own_scratch);
}

/* Everything up to the global average pool; leaves the pooled features in feat_out. */
static void forward_backbone(Resnet *net, const float *x, int n, int train_bn)
{
    if (!net->ps->finalized) die("resnet_forward: parameters not allocated");
    if (n < 1 || n > net->cfg.max_batch)
        die("resnet_forward: batch %d outside 1..%d", n, net->cfg.max_batch);
    if (train_bn && n % net->cfg.bn_splits != 0)
        die("resnet_forward: batch %d is not a multiple of bn_splits %d", n, net->cfg.bn_splits);
    ensure_scratch(net);
    const int train = net->cfg.memory == RESNET_TRAIN;
    net->input = x;
    net->last_n = n;
    net->last_train = train_bn;

    /* stem: the BN+ReLU output is the trunk itself without a max pool, else big[0], pooled
     * into the trunk (forward-only: everything in place in big[0], pooled into big[1]) */
    Unit *stem = &net->stem;
    float *sc = train ? stem->conv_out : net->big[0];
    unit_conv_stats(net, stem, x, sc, n, train_bn);
    float *trunk = train ? net->trunk : net->big[1];
    float *sy = net->has_pool ? (train ? net->big[0] : sc) : trunk;
    unit_apply(net, stem, sc, NULL, 1, sy, n);
    if (net->has_pool) {
        PoolShape ps = net->pool;
        ps.n = n;
        TIMED(OP_POOL, maxpool_forward(&ps, sy, trunk, net->argmax));
    }

    const float *cur = trunk;
    int xi = 1;
    for (int i = 0; i < net->n_blocks; i++) {
        Block *blk = &net->blocks[i];
        xi = block_forward(net, blk, cur, xi, n, train_bn);
        cur = train ? blk->out : net->big[xi];
    }
    TIMED(OP_POOL, avgpool_forward(n, net->last_hw, net->feat, cur, net->feat_out));
}

const float *resnet_forward(Resnet *net, const float *x, int n, int train_bn)
{
    forward_backbone(net, x, n, train_bn);
    double th = step_profile_begin();
    const float *out = head_forward(net, n);
    step_profile_end(OP_HEAD, th);
    return out;
}

const float *resnet_forward_features(Resnet *net, const float *x, int n)
{
    forward_backbone(net, x, n, 0);
    return net->feat_out;
}

/* ---- backward ---------------------------------------------------------------------------- */

/* Gradient through a unit's BN (+ ReLU when relu) and conv: dy is the gradient at the unit's
 * output; dconv (may be dy) receives the gradient at the conv output; x is the conv input;
 * dx (NULL for the image) receives the gradient at x. */
static void unit_backward(Resnet *net, Unit *u, const float *x, int n, const float *dy,
                          float *dconv, int relu, float *dx)
{
    BNShape bs = bn_shape(u, n);
    Param *g = P(net, u->gamma), *b = P(net, u->beta);
    TIMED(OP_BN_BWD, batchnorm_backward_relu(&bs, u->conv_out, dy, g->data, u->save_mean,
                                             u->save_invstd, u->scale, u->shift, relu, dconv,
                                             g->grad, b->grad));
    ConvShape cs = conv_shape(u, n);
    Param *w = P(net, u->w);
    TIMED(OP_CONV_BWD_WEIGHT, conv2d_backward_weight(&cs, x, dconv, w->grad, net->workspace));
    if (dx)
        TIMED(OP_CONV_BWD_DATA, conv2d_backward_data(&cs, dconv, w->data, dx, net->workspace));
}

/* Recomputes inner unit k's BN+ReLU output (the next conv's input) into small[0]. */
static const float *recompute_inner(Resnet *net, const Block *blk, int k, int n)
{
    const Unit *u = &blk->u[k];
    unit_apply(net, u, u->conv_out, NULL, 1, net->small[0], n);
    return net->small[0];
}

/* Backward of one block. g = big[gi] holds the gradient at the block output (clobbered);
 * the gradient at the block input lands in another big buffer, whose index is returned. */
static int block_backward(Resnet *net, Block *blk, int gi, int n)
{
    float *g = net->big[gi], *t1 = net->big[(gi + 1) % 3], *t2 = net->big[(gi + 2) % 3];
    const Unit *lastc = &blk->u[blk->n_units - 1];
    /* through the ReLU after the residual add: g becomes the gradient at the sum */
    TIMED(OP_ELEMENTWISE, relu_backward(unit_out_floats(lastc, n), blk->out, g, g));

    Unit *last = &blk->u[blk->n_units - 1];
    float *dlast; /* the last unit's conv-output gradient */
    if (blk->has_ds) {
        /* the shortcut first: its input gradient initialises t2, after which g is free to be
         * overwritten by the last unit's BN backward */
        unit_backward(net, &blk->ds, blk->in, n, g, t1, 0, t2);
        dlast = g;
    } else {
        dlast = t1; /* g stays: it is the shortcut's gradient */
    }
    /* the residual branch, unit by unit; small[1] and small[2] alternate as the gradient */
    float *gin = net->small[1], *gnext = net->small[2];
    const float *xin = recompute_inner(net, blk, blk->n_units - 2, n);
    unit_backward(net, last, xin, n, g, dlast, 0, gin);
    for (int k = blk->n_units - 2; k >= 0; k--) {
        Unit *u = &blk->u[k];
        const float *x = k > 0 ? recompute_inner(net, blk, k - 1, n) : blk->in;
        float *dx = k > 0 ? gnext : (blk->has_ds ? t1 : t2);
        unit_backward(net, u, x, n, gin, gin, 1, dx);
        float *t = gin;
        gin = gnext;
        gnext = t;
    }
    /* t2 = branch + shortcut gradient at the block input */
    size_t in_cnt = unit_in_floats(&blk->u[0], n);
    TIMED(OP_ELEMENTWISE, accumulate(in_cnt, blk->has_ds ? t1 : g, t2));
    return (gi + 2) % 3;
}

void resnet_backward(Resnet *net, const float *dout)
{
    if (net->cfg.memory != RESNET_TRAIN) die("resnet_backward: network built forward-only");
    if (!net->last_train) die("resnet_backward: the last forward was not in train mode");
    const int n = net->last_n;

    /* head */
    double th = step_profile_begin();
    switch (net->cfg.head) {
    case HEAD_NONE:
        memcpy(net->dfeat, dout, (size_t)n * net->feat * sizeof(float));
        break;
    case HEAD_FC: {
        Param *w = P(net, net->fc_w), *b = P(net, net->fc_b);
        linear_backward(n, net->feat, net->cfg.out_dim, net->feat_out, w->data, dout, net->dfeat,
                        w->grad, b->grad);
        break;
    }
    case HEAD_MLP: {
        Param *w2 = P(net, net->fc_w), *b2 = P(net, net->fc_b);
        Param *w0 = P(net, net->fc0_w), *b0 = P(net, net->fc0_b);
        linear_backward(n, net->feat, net->cfg.out_dim, net->hidden, w2->data, dout,
                        net->dhidden, w2->grad, b2->grad);
        relu_backward((size_t)n * net->feat, net->hidden, net->dhidden, net->dhidden);
        linear_backward(n, net->feat, net->feat, net->feat_out, w0->data, net->dhidden,
                        net->dfeat, w0->grad, b0->grad);
        break;
    }
    }
    step_profile_end(OP_HEAD, th);

    int gi = 0;
    TIMED(OP_POOL, avgpool_backward(n, net->last_hw, net->feat, net->dfeat, net->big[gi]));
    for (int i = net->n_blocks - 1; i >= 0; i--) gi = block_backward(net, &net->blocks[i], gi, n);

    float *g = net->big[gi];
    if (net->has_pool) {
        PoolShape ps = net->pool;
        ps.n = n;
        float *d = net->big[(gi + 1) % 3];
        TIMED(OP_POOL, maxpool_backward(&ps, g, net->argmax, d));
        g = d;
    }
    unit_backward(net, &net->stem, net->input, n, g, g, 1, NULL);
}

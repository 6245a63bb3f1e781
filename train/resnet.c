/* resnet.c — ResNet-18/34/50 (torchvision layout) with MoCo heads: construction, memory plan,
 * torchvision initialisation, forward and backward. See resnet.h.
 *
 * The network is a fixed list of "units" (conv -> BN -> optional ReLU) grouped into residual
 * blocks; every unit knows where its input, its conv output (the BN input backward needs) and
 * its BN/ReLU output live. Those pointers are planned once at build time, into one activation
 * arena, so a step allocates nothing.
 */
#include "train/resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/rng.h"

#define MAX_BLOCKS 16
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
/* Stream coordinate for parameter initialisation, far from any epoch number the data loader
 * uses for its (seed, epoch, sample, view) streams. */
#define RNG_STREAM_INIT 0x696e6974ull /* "init" */

typedef struct {
    int w;                      /* conv weight param index */
    ConvShape cs;               /* n = max_batch */
    int gamma, beta, rmean, rvar, nbt;  /* BN param indices */
    BNShape bs;
    int relu;                   /* ReLU after BN inside the unit */
    const float *x;             /* conv input (planned, or the external image for the stem) */
    float *conv_out;            /* BN input, kept for backward */
    float *out;                 /* BN output (ReLU applied in place) */
    float *save_mean, *save_invstd;
} Unit;

typedef struct {
    Unit u[3];
    int n_units;
    Unit ds;
    int has_ds;
    float *in;   /* block input */
    float *out;  /* == u[n_units-1].out, after the residual add and ReLU */
} Block;

struct Resnet {
    ResnetConfig cfg;
    ParamSet *ps;
    int feat;               /* 512 or 2048 */
    Unit stem;
    int has_pool;
    PoolShape pool;
    float *pool_out;
    int32_t *argmax;
    Block blocks[MAX_BLOCKS];
    int n_blocks;
    int last_hw;            /* spatial size of layer4 output (h*w) */
    /* head */
    int fc0_w, fc0_b, fc_w, fc_b;  /* fc_* is "fc" (v1) or "fc.2" (v2) */
    float *feat_out;        /* [n, feat] after avgpool */
    float *hidden;          /* [n, feat] MLP hidden after ReLU */
    float *head_out;        /* [n, out] */
    /* backward scratch */
    float *gbuf[4];         /* each max activation size */
    float *dfeat, *dhidden;
    void *workspace;
    size_t act_max;         /* floats of the largest activation */
    size_t workspace_bytes;
    char *arena;
    size_t arena_bytes;
    const float *input;     /* image of the last forward */
    int last_n;
    int last_train;
};

int resnet_depth_from_arch(const char *arch)
{
    if (strcmp(arch, "resnet18") == 0) return 18;
    if (strcmp(arch, "resnet34") == 0) return 34;
    if (strcmp(arch, "resnet50") == 0) return 50;
    return 0;
}

/* ---- construction: registering tensors --------------------------------------------------- */

static int add_conv(ParamSet *ps, const char *name, int c_out, int c_in, int k)
{
    int64_t shape[4] = {c_out, c_in, k, k};
    char full[PARAM_NAME_MAX];
    snprintf(full, sizeof full, "%s.weight", name);
    return params_add(ps, full, PARAM_LEARNABLE, 4, shape, 1);
}

static void add_bn(ParamSet *ps, const char *name, int c, Unit *u)
{
    int64_t shape[1] = {c};
    char full[PARAM_NAME_MAX];
    snprintf(full, sizeof full, "%s.weight", name);
    u->gamma = params_add(ps, full, PARAM_LEARNABLE, 1, shape, 0);
    snprintf(full, sizeof full, "%s.bias", name);
    u->beta = params_add(ps, full, PARAM_LEARNABLE, 1, shape, 0);
    snprintf(full, sizeof full, "%s.running_mean", name);
    u->rmean = params_add(ps, full, PARAM_BUFFER_F32, 1, shape, 0);
    snprintf(full, sizeof full, "%s.running_var", name);
    u->rvar = params_add(ps, full, PARAM_BUFFER_F32, 1, shape, 0);
    snprintf(full, sizeof full, "%s.num_batches_tracked", name);
    u->nbt = params_add(ps, full, PARAM_BUFFER_I64, 0, NULL, 0);
}

/* A conv+BN unit on an input of h x w x c_in; the output size lands in u->cs.oh, u->cs.ow. */
static void make_unit(Resnet *net, Unit *u, const char *conv_name, const char *bn_name,
                      int h, int w, int c_in, int c_out, int k, int stride, int pad, int relu)
{
    memset(u, 0, sizeof *u);
    u->w = add_conv(net->ps, conv_name, c_out, c_in, k);
    u->cs = conv_shape_make(net->cfg.max_batch, h, w, c_in, c_out, k, stride, pad);
    add_bn(net->ps, bn_name, c_out, u);
    u->bs = (BNShape){.n = net->cfg.max_batch, .m = u->cs.oh * u->cs.ow, .c = c_out,
                      .splits = net->cfg.bn_splits, .eps = BN_EPS, .momentum = BN_MOMENTUM};
    u->relu = relu;
}

static void add_linear(ParamSet *ps, const char *name, int out, int in, int *w, int *b)
{
    int64_t ws[2] = {out, in}, bs[1] = {out};
    char full[PARAM_NAME_MAX];
    snprintf(full, sizeof full, "%s.weight", name);
    *w = params_add(ps, full, PARAM_LEARNABLE, 2, ws, 0);
    snprintf(full, sizeof full, "%s.bias", name);
    *b = params_add(ps, full, PARAM_LEARNABLE, 1, bs, 0);
}

static void build_layers(Resnet *net, int h, int w, int c)
{
    const int depth = net->cfg.depth;
    const int bottleneck = depth == 50;
    const int expansion = bottleneck ? 4 : 1;
    const int counts18[4] = {2, 2, 2, 2}, counts34[4] = {3, 4, 6, 3};
    const int *counts = depth == 18 ? counts18 : counts34;
    int inplanes = c;
    char a[PARAM_NAME_MAX], b[PARAM_NAME_MAX];
    for (int L = 0; L < 4; L++) {
        int planes = 64 << L;
        for (int i = 0; i < counts[L]; i++) {
            int stride = (L > 0 && i == 0) ? 2 : 1;
            Block *blk = &net->blocks[net->n_blocks++];
            memset(blk, 0, sizeof *blk);
            char pre[32];
            snprintf(pre, sizeof pre, "layer%d.%d", L + 1, i);
            int oh, ow;
            if (bottleneck) {
                /* torchvision v1.5: 1x1 -> 3x3 (stride) -> 1x1 expansion */
                snprintf(a, sizeof a, "%s.conv1", pre); snprintf(b, sizeof b, "%s.bn1", pre);
                make_unit(net, &blk->u[0], a, b, h, w, inplanes, planes, 1, 1, 0, 1);
                snprintf(a, sizeof a, "%s.conv2", pre); snprintf(b, sizeof b, "%s.bn2", pre);
                make_unit(net, &blk->u[1], a, b, h, w, planes, planes, 3, stride, 1, 1);
                oh = blk->u[1].cs.oh; ow = blk->u[1].cs.ow;
                snprintf(a, sizeof a, "%s.conv3", pre); snprintf(b, sizeof b, "%s.bn3", pre);
                make_unit(net, &blk->u[2], a, b, oh, ow, planes, planes * 4, 1, 1, 0, 0);
                blk->n_units = 3;
            } else {
                snprintf(a, sizeof a, "%s.conv1", pre); snprintf(b, sizeof b, "%s.bn1", pre);
                make_unit(net, &blk->u[0], a, b, h, w, inplanes, planes, 3, stride, 1, 1);
                oh = blk->u[0].cs.oh; ow = blk->u[0].cs.ow;
                snprintf(a, sizeof a, "%s.conv2", pre); snprintf(b, sizeof b, "%s.bn2", pre);
                make_unit(net, &blk->u[1], a, b, oh, ow, planes, planes, 3, 1, 1, 0);
                blk->n_units = 2;
            }
            if (stride != 1 || inplanes != planes * expansion) {
                snprintf(a, sizeof a, "%s.downsample.0", pre);
                snprintf(b, sizeof b, "%s.downsample.1", pre);
                make_unit(net, &blk->ds, a, b, h, w, inplanes, planes * expansion, 1, stride, 0,
                          0);
                blk->has_ds = 1;
            }
            inplanes = planes * expansion;
            h = oh;
            w = ow;
        }
    }
    net->feat = inplanes;
    net->last_hw = h * w;
}

/* ---- memory plan ------------------------------------------------------------------------- */

typedef struct { char *base; size_t used; } Bump;

static void *take(Bump *b, size_t bytes)
{
    void *p = b->base ? b->base + b->used : NULL;
    b->used += (bytes + 63) / 64 * 64;
    return p;
}

static size_t unit_out_floats(const Unit *u)
{
    return (size_t)u->cs.n * u->cs.oh * u->cs.ow * u->cs.c_out;
}

static void plan_unit_stats(Bump *b, Unit *u, float *shared_mean, float *shared_invstd, int own)
{
    size_t stat = (size_t)u->bs.splits * u->bs.c * sizeof(float);
    if (own) {
        u->save_mean = take(b, stat);
        u->save_invstd = take(b, stat);
    } else {
        u->save_mean = shared_mean;
        u->save_invstd = shared_invstd;
    }
}

/* Places every activation. With b->base == NULL only counts bytes. */
static void plan_memory(Resnet *net, Bump *b)
{
    const int train = net->cfg.memory == RESNET_TRAIN;
    const int n = net->cfg.max_batch;
    const size_t act = net->act_max * sizeof(float);
    float *rot[4] = {0};
    float *shared_mean = NULL, *shared_invstd = NULL;
    if (!train) {
        for (int i = 0; i < 4; i++) rot[i] = take(b, act);
        shared_mean = take(b, (size_t)net->cfg.bn_splits * 2048 * sizeof(float));
        shared_invstd = take(b, (size_t)net->cfg.bn_splits * 2048 * sizeof(float));
    }

    /* stem */
    Unit *s = &net->stem;
    s->conv_out = train ? take(b, unit_out_floats(s) * sizeof(float)) : rot[0];
    s->out = train ? take(b, unit_out_floats(s) * sizeof(float)) : rot[1];
    plan_unit_stats(b, s, shared_mean, shared_invstd, train);
    float *cur = s->out;
    int cur_rot = 1;
    if (net->has_pool) {
        size_t pooled = (size_t)n * net->pool.oh * net->pool.ow * net->pool.c;
        net->pool_out = train ? take(b, pooled * sizeof(float)) : rot[2];
        net->argmax = take(b, pooled * sizeof(int32_t));
        cur = net->pool_out;
        cur_rot = 2;
    }

    for (int i = 0; i < net->n_blocks; i++) {
        Block *blk = &net->blocks[i];
        blk->in = cur;
        /* forward-only: the three buffers not holding the block input */
        float *t[3];
        for (int r = 0, j = 0; r < 4; r++)
            if (r != cur_rot) t[j++] = rot[r];
        const float *x = cur;
        for (int k = 0; k < blk->n_units; k++) {
            Unit *u = &blk->u[k];
            u->x = x;
            u->conv_out = train ? take(b, unit_out_floats(u) * sizeof(float)) : t[0];
            u->out = train ? take(b, unit_out_floats(u) * sizeof(float)) : t[1];
            plan_unit_stats(b, u, shared_mean, shared_invstd, train);
            x = u->out;
        }
        if (blk->has_ds) {
            Unit *u = &blk->ds;
            u->x = cur;
            u->conv_out = train ? take(b, unit_out_floats(u) * sizeof(float)) : t[0];
            u->out = train ? take(b, unit_out_floats(u) * sizeof(float)) : t[2];
            plan_unit_stats(b, u, shared_mean, shared_invstd, train);
        }
        blk->out = blk->u[blk->n_units - 1].out;
        cur = blk->out;
        if (!train)
            for (int r = 0; r < 4; r++)
                if (rot[r] == cur) cur_rot = r;
    }

    net->feat_out = take(b, (size_t)n * net->feat * sizeof(float));
    net->hidden = take(b, (size_t)n * net->feat * sizeof(float));
    net->head_out = take(b, (size_t)n * (net->cfg.out_dim > 0 ? net->cfg.out_dim : 1) *
                                sizeof(float));
    if (train) {
        for (int i = 0; i < 4; i++) net->gbuf[i] = take(b, act);
        net->dfeat = take(b, (size_t)n * net->feat * sizeof(float));
        net->dhidden = take(b, (size_t)n * net->feat * sizeof(float));
    }
    net->workspace = take(b, net->workspace_bytes);
}

static void for_each_unit(Resnet *net, void (*fn)(Resnet *, Unit *, void *), void *ctx)
{
    fn(net, &net->stem, ctx);
    for (int i = 0; i < net->n_blocks; i++) {
        for (int k = 0; k < net->blocks[i].n_units; k++) fn(net, &net->blocks[i].u[k], ctx);
        if (net->blocks[i].has_ds) fn(net, &net->blocks[i].ds, ctx);
    }
}

static void measure_unit(Resnet *net, Unit *u, void *ctx)
{
    (void)ctx;
    size_t a = unit_out_floats(u);
    size_t in = (size_t)u->cs.n * u->cs.h * u->cs.w * u->cs.c_in;
    if (a > net->act_max) net->act_max = a;
    if (in > net->act_max) net->act_max = in;
    size_t ws = conv2d_workspace_bytes(&u->cs);
    if (ws > net->workspace_bytes) net->workspace_bytes = ws;
}

Resnet *resnet_create(const ResnetConfig *cfg, ParamSet *ps)
{
    if (cfg->depth != 18 && cfg->depth != 34 && cfg->depth != 50)
        die("resnet: unsupported depth %d (18, 34 or 50)", cfg->depth);
    if (cfg->bn_splits < 1 || cfg->max_batch % cfg->bn_splits != 0)
        die("resnet: batch %d is not a multiple of bn_splits %d", cfg->max_batch, cfg->bn_splits);
    if (cfg->head != HEAD_NONE && cfg->out_dim <= 0)
        die("resnet: head output dimension must be positive (got %d)", cfg->out_dim);
    Resnet *net = xcalloc(1, sizeof *net);
    net->cfg = *cfg;
    net->ps = ps;
    const int S = cfg->image_size, n = cfg->max_batch;

    if (cfg->cifar_stem) {
        make_unit(net, &net->stem, "conv1", "bn1", S, S, 3, 64, 3, 1, 1, 1);
    } else {
        make_unit(net, &net->stem, "conv1", "bn1", S, S, 3, 64, 7, 2, 3, 1);
        net->has_pool = 1;
        net->pool = pool_shape_make(n, net->stem.cs.oh, net->stem.cs.ow, 64, 3, 2, 1);
    }
    int h = net->has_pool ? net->pool.oh : net->stem.cs.oh;
    int w = net->has_pool ? net->pool.ow : net->stem.cs.ow;
    if (h < 1 || w < 1) die("resnet: image size %d is too small", S);
    build_layers(net, h, w, 64);

    net->fc0_w = net->fc0_b = net->fc_w = net->fc_b = -1;
    if (cfg->head == HEAD_FC) {
        add_linear(ps, "fc", cfg->out_dim, net->feat, &net->fc_w, &net->fc_b);
    } else if (cfg->head == HEAD_MLP) {
        add_linear(ps, "fc.0", net->feat, net->feat, &net->fc0_w, &net->fc0_b);
        add_linear(ps, "fc.2", cfg->out_dim, net->feat, &net->fc_w, &net->fc_b);
    }

    for_each_unit(net, measure_unit, NULL);
    if (net->has_pool) {
        size_t pooled = (size_t)n * net->pool.oh * net->pool.ow * 64;
        if (pooled > net->act_max) net->act_max = pooled;
    }
    Bump count = {0};
    plan_memory(net, &count);
    net->arena_bytes = count.used;
    net->arena = xaligned_alloc(net->arena_bytes);
    Bump real = {net->arena, 0};
    plan_memory(net, &real);
    net->stem.x = NULL; /* the image, set per forward */
    return net;
}

void resnet_destroy(Resnet *net)
{
    if (!net) return;
    free(net->arena);
    free(net);
}

int resnet_feature_dim(const Resnet *net) { return net->feat; }
int resnet_output_dim(const Resnet *net)
{
    return net->cfg.head == HEAD_NONE ? net->feat : net->cfg.out_dim;
}

/* ---- initialisation ---------------------------------------------------------------------- */

static Param *P(const Resnet *net, int idx) { return &net->ps->p[idx]; }

static void init_conv(Resnet *net, Unit *u, void *ctx)
{
    const uint64_t seed = *(const uint64_t *)ctx;
    Param *w = P(net, u->w);
    Rng r;
    rng_init(&r, seed, RNG_STREAM_INIT, (uint64_t)u->w, 0);
    /* Drawn in OIHW order (so every backend gets the same weights), then converted. */
    float *oihw = xmalloc(w->count * sizeof(float));
    double fan_in = (double)w->shape[1] * w->shape[2] * w->shape[3];
    double fan_out = (double)w->shape[0] * w->shape[2] * w->shape[3];
    if (net->cfg.cifar_stem && u == &net->stem) {
        double bound = 1.0 / sqrt(fan_in);  /* nn.Conv2d default: kaiming_uniform(a=sqrt(5)) */
        for (size_t i = 0; i < w->count; i++)
            oihw[i] = (float)rng_uniform_range(&r, -bound, bound);
    } else {
        double std = sqrt(2.0 / fan_out);   /* kaiming_normal_(mode='fan_out', relu) */
        for (size_t i = 0; i < w->count; i++) oihw[i] = (float)(std * rng_normal(&r));
    }
    ConvShape fs = conv_shape_make(1, (int)w->shape[2], (int)w->shape[3], (int)w->shape[1],
                                   (int)w->shape[0], (int)w->shape[2], 1, 0);
    conv_weight_from_oihw(&fs, oihw, w->data);
    free(oihw);
    Param *g = P(net, u->gamma), *b = P(net, u->beta);
    Param *rm = P(net, u->rmean), *rv = P(net, u->rvar);
    for (size_t i = 0; i < g->count; i++) {
        g->data[i] = 1.0f;
        b->data[i] = 0.0f;
        rm->data[i] = 0.0f;
        rv->data[i] = 1.0f;
    }
    P(net, u->nbt)->i64[0] = 0;
}

static void init_linear(Resnet *net, int wi, int bi, uint64_t seed)
{
    Param *w = P(net, wi), *b = P(net, bi);
    double bound = 1.0 / sqrt((double)w->shape[1]);
    Rng r;
    rng_init(&r, seed, RNG_STREAM_INIT, (uint64_t)wi, 0);
    for (size_t i = 0; i < w->count; i++) w->data[i] = (float)rng_uniform_range(&r, -bound, bound);
    for (size_t i = 0; i < b->count; i++) b->data[i] = (float)rng_uniform_range(&r, -bound, bound);
}

void resnet_init(Resnet *net, uint64_t seed)
{
    if (!net->ps->finalized) die("resnet_init: parameters not allocated (params_finalize)");
    for_each_unit(net, init_conv, &seed);
    if (net->fc0_w >= 0) init_linear(net, net->fc0_w, net->fc0_b, seed);
    if (net->fc_w >= 0) init_linear(net, net->fc_w, net->fc_b, seed);
}

/* ---- forward ----------------------------------------------------------------------------- */

static void unit_forward(Resnet *net, Unit *u, const float *x, int n, int train_bn)
{
    ConvShape cs = u->cs;
    cs.n = n;
    conv2d_forward(&cs, x, P(net, u->w)->data, u->conv_out, net->workspace);
    BNShape bs = u->bs;
    bs.n = n;
    const float *gamma = P(net, u->gamma)->data, *beta = P(net, u->beta)->data;
    if (train_bn) {
        batchnorm_forward_train(&bs, u->conv_out, gamma, beta, P(net, u->rmean)->data,
                                P(net, u->rvar)->data, u->save_mean, u->save_invstd, u->out);
        /* nn.BatchNorm2d counts batches; the demo's SplitBatchNorm overrides forward and
         * never does, so PyTorch leaves num_batches_tracked at 0 there. */
        if (bs.splits == 1) P(net, u->nbt)->i64[0] += 1;
    } else {
        batchnorm_forward_eval(&bs, u->conv_out, gamma, beta, P(net, u->rmean)->data,
                               P(net, u->rvar)->data, u->out);
    }
    if (u->relu) relu_forward(unit_out_floats(u) / u->cs.n * n, u->out, u->out);
}

const float *resnet_forward(Resnet *net, const float *x, int n, int train_bn)
{
    if (!net->ps->finalized) die("resnet_forward: parameters not allocated");
    if (n < 1 || n > net->cfg.max_batch)
        die("resnet_forward: batch %d outside 1..%d", n, net->cfg.max_batch);
    if (train_bn && n % net->cfg.bn_splits != 0)
        die("resnet_forward: batch %d is not a multiple of bn_splits %d", n, net->cfg.bn_splits);
    net->input = x;
    net->last_n = n;
    net->last_train = train_bn;

    unit_forward(net, &net->stem, x, n, train_bn);
    if (net->has_pool) {
        PoolShape ps = net->pool;
        ps.n = n;
        maxpool_forward(&ps, net->stem.out, net->pool_out, net->argmax);
    }
    for (int i = 0; i < net->n_blocks; i++) {
        Block *blk = &net->blocks[i];
        for (int k = 0; k < blk->n_units; k++) unit_forward(net, &blk->u[k], blk->u[k].x, n, train_bn);
        const float *identity = blk->in;
        if (blk->has_ds) {
            unit_forward(net, &blk->ds, blk->in, n, train_bn);
            identity = blk->ds.out;
        }
        size_t cnt = unit_out_floats(&blk->u[blk->n_units - 1]) / net->cfg.max_batch * n;
        add_forward(cnt, blk->out, identity, blk->out);
        relu_forward(cnt, blk->out, blk->out);
    }
    const float *last = net->blocks[net->n_blocks - 1].out;
    avgpool_forward(n, net->last_hw, net->feat, last, net->feat_out);

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

/* ---- backward ---------------------------------------------------------------------------- */

/* dy: gradient at the unit's output (after its ReLU, if any); clobbered. tmp receives dL/d
 * conv_out. dx (may be NULL for the image) receives dL/dx, overwritten. */
static void unit_backward(Resnet *net, Unit *u, const float *x, int n, float *dy, float *tmp,
                          float *dx)
{
    size_t cnt = unit_out_floats(u) / u->cs.n * n;
    if (u->relu) relu_backward(cnt, u->out, dy, dy);
    BNShape bs = u->bs;
    bs.n = n;
    Param *g = P(net, u->gamma), *b = P(net, u->beta);
    batchnorm_backward(&bs, u->conv_out, dy, g->data, u->save_mean, u->save_invstd, tmp,
                       g->grad, b->grad);
    ConvShape cs = u->cs;
    cs.n = n;
    Param *w = P(net, u->w);
    conv2d_backward_weight(&cs, x, tmp, w->grad, net->workspace);
    if (dx) conv2d_backward_data(&cs, tmp, w->data, dx, net->workspace);
}

void resnet_backward(Resnet *net, const float *dout)
{
    if (net->cfg.memory != RESNET_TRAIN) die("resnet_backward: network built forward-only");
    if (!net->last_train) die("resnet_backward: the last forward was not in train mode");
    const int n = net->last_n;

    /* head */
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

    /* gA: gradient at the current block's output; the others are scratch. */
    float *gA = net->gbuf[0], *gB = net->gbuf[1], *gC = net->gbuf[2], *gD = net->gbuf[3];
    avgpool_backward(n, net->last_hw, net->feat, net->dfeat, gA);

    for (int i = net->n_blocks - 1; i >= 0; i--) {
        Block *blk = &net->blocks[i];
        const Unit *last = &blk->u[blk->n_units - 1];
        size_t cnt = unit_out_floats(last) / last->cs.n * n;
        relu_backward(cnt, blk->out, gA, gA);  /* through the ReLU after the residual add */
        /* residual branch: gradient flows unit by unit, gC holding dL/d(unit output) */
        Unit *u = &blk->u[blk->n_units - 1];
        unit_backward(net, u, u->x, n, gA, gB, gC);
        for (int k = blk->n_units - 2; k >= 0; k--) {
            u = &blk->u[k];
            unit_backward(net, u, u->x, n, gC, gB, gC);
        }
        /* gC now holds dL/d(block input) from the residual branch; add the shortcut. */
        size_t in_cnt = (size_t)n * blk->u[0].cs.h * blk->u[0].cs.w * blk->u[0].cs.c_in;
        if (blk->has_ds) {
            unit_backward(net, &blk->ds, blk->in, n, gA, gB, gD);
            accumulate(in_cnt, gD, gC);
        } else {
            accumulate(in_cnt, gA, gC);
        }
        float *t = gA;
        gA = gC;
        gC = t;
    }

    if (net->has_pool) {
        PoolShape ps = net->pool;
        ps.n = n;
        maxpool_backward(&ps, gA, net->argmax, gB);
        float *t = gA;
        gA = gB;
        gB = t;
    }
    unit_backward(net, &net->stem, net->input, n, gA, gB, NULL);
}

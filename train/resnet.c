/* resnet.c — ResNet-18/34/50 (torchvision layout) with MoCo heads: construction, memory plan
 * and torchvision initialisation. Forward and backward are in resnet_pass.c. See resnet.h.
 *
 * The network is a fixed list of "units" (conv -> BN -> optional ReLU) grouped into residual
 * blocks. Where each stored activation lives is planned once at build time, into one
 * activation arena, so a step allocates nothing (resnet_internal.h says what is stored).
 */
#include "train/resnet.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/rng.h"
#include "train/resnet_internal.h"

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f
/* Stream coordinate for parameter initialisation, far from any epoch number the data loader
 * uses for its (seed, epoch, sample, view) streams. */
#define RNG_STREAM_INIT 0x696e6974ull /* "init" */

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

/* BN statistics and affine form: each unit's own when training (backward reads them), one
 * shared set sized for the widest layer otherwise. */
static void plan_unit(Bump *b, Unit *u, int train, float *shared)
{
    size_t stat = (size_t)u->bs.splits * u->bs.c;
    float *st = shared;
    if (train) {
        u->conv_out = take(b, unit_out_floats(u, u->cs.n) * sizeof(float));
        st = take(b, 4 * stat * sizeof(float));
    } else {
        u->conv_out = NULL; /* scratch, chosen by the forward pass */
        stat = (size_t)u->bs.splits * 2048;
    }
    u->save_mean = st;
    u->save_invstd = st ? st + stat : NULL;
    u->scale = st ? st + 2 * stat : NULL;
    u->shift = st ? st + 3 * stat : NULL;
}

/* Places every stored activation. With b->base == NULL only counts bytes. */
static void plan_memory(Resnet *net, Bump *b)
{
    const int train = net->cfg.memory == RESNET_TRAIN;
    const int n = net->cfg.max_batch;
    float *shared = train ? NULL : take(b, 4 * (size_t)net->cfg.bn_splits * 2048 * sizeof(float));
    plan_unit(b, &net->stem, train, shared);
    size_t trunk = net->has_pool ? (size_t)n * net->pool.oh * net->pool.ow * net->pool.c
                                 : unit_out_floats(&net->stem, n);
    net->trunk = train ? take(b, trunk * sizeof(float)) : NULL;
    net->argmax = net->has_pool ? take(b, trunk * sizeof(int32_t)) : NULL;

    float *cur = net->trunk;
    for (int i = 0; i < net->n_blocks; i++) {
        Block *blk = &net->blocks[i];
        for (int k = 0; k < blk->n_units; k++)
            plan_unit(b, &blk->u[k], train, shared);
        if (blk->has_ds) plan_unit(b, &blk->ds, train, shared);
        blk->in = cur;
        blk->out = train ? take(b, unit_out_floats(&blk->u[blk->n_units - 1], n) * sizeof(float))
                         : NULL;
        cur = blk->out;
    }

    net->feat_out = take(b, (size_t)n * net->feat * sizeof(float));
    net->hidden = take(b, (size_t)n * net->feat * sizeof(float));
    net->head_out = take(b, (size_t)n * (net->cfg.out_dim > 0 ? net->cfg.out_dim : 1) *
                                sizeof(float));
    if (train) {
        net->dfeat = take(b, (size_t)n * net->feat * sizeof(float));
        net->dhidden = take(b, (size_t)n * net->feat * sizeof(float));
    }
}

static void for_each_unit(Resnet *net, void (*fn)(Resnet *, Unit *, void *), void *ctx)
{
    fn(net, &net->stem, ctx);
    for (int i = 0; i < net->n_blocks; i++) {
        for (int k = 0; k < net->blocks[i].n_units; k++) fn(net, &net->blocks[i].u[k], ctx);
        if (net->blocks[i].has_ds) fn(net, &net->blocks[i].ds, ctx);
    }
}

static void grow(size_t *max, size_t v)
{
    if (v > *max) *max = v;
}

/* Scratch sizes. "Big" buffers hold stem and block-level tensors (block inputs and outputs,
 * the stem's conv and BN output, downsample outputs, their gradients); "small" ones the
 * outputs of a block's inner units (and their gradients), which are 4x narrower in a
 * Bottleneck. */
static void measure_scratch(Resnet *net)
{
    const int n = net->cfg.max_batch;
    grow(&net->big_floats, unit_out_floats(&net->stem, n));
    if (net->has_pool) grow(&net->big_floats, (size_t)n * net->pool.oh * net->pool.ow * 64);
    for (int i = 0; i < net->n_blocks; i++) {
        Block *blk = &net->blocks[i];
        grow(&net->big_floats, unit_in_floats(&blk->u[0], n));
        grow(&net->big_floats, unit_out_floats(&blk->u[blk->n_units - 1], n));
        for (int k = 0; k + 1 < blk->n_units; k++)
            grow(&net->small_floats, unit_out_floats(&blk->u[k], n));
    }
}

static void measure_workspace(Resnet *net, Unit *u, void *ctx)
{
    (void)ctx;
    grow(&net->workspace_bytes, conv2d_workspace_bytes(&u->cs));
}

size_t resnet_scratch_bytes(const Resnet *net)
{
    size_t big = (net->big_floats * sizeof(float) + 63) / 64 * 64;
    size_t small = (net->small_floats * sizeof(float) + 63) / 64 * 64;
    return 3 * big + 3 * small + (net->workspace_bytes + 63) / 64 * 64;
}

void resnet_use_scratch(Resnet *net, void *scratch)
{
    if (!scratch) die("resnet_use_scratch: NULL scratch");
    if ((uintptr_t)scratch % 64) die("resnet_use_scratch: scratch must be 64-byte aligned");
    size_t big = (net->big_floats * sizeof(float) + 63) / 64 * 64;
    size_t small = (net->small_floats * sizeof(float) + 63) / 64 * 64;
    char *p = scratch;
    for (int i = 0; i < 3; i++, p += big) net->big[i] = (float *)p;
    for (int i = 0; i < 3; i++, p += small) net->small[i] = (float *)p;
    net->workspace = p;
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

    for_each_unit(net, measure_workspace, NULL);
    measure_scratch(net);
    Bump count = {0};
    plan_memory(net, &count);
    net->arena_bytes = count.used;
    net->arena = xaligned_alloc(net->arena_bytes);
    Bump real = {net->arena, 0};
    plan_memory(net, &real);
    return net;
}

void resnet_destroy(Resnet *net)
{
    if (!net) return;
    free(net->arena);
    free(net->own_scratch);
    free(net);
}

int resnet_feature_dim(const Resnet *net) { return net->feat; }
int resnet_output_dim(const Resnet *net)
{
    return net->cfg.head == HEAD_NONE ? net->feat : net->cfg.out_dim;
}

/* ---- initialisation ---------------------------------------------------------------------- */

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

/* lincls_model.c — the linear-evaluation model: frozen backbone, trained fc, one step, and
 * its checkpoint tensors. See lincls.h. */
#include "train/lincls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/rng.h"
#include "kernels/kernels.h"
#include "train/accuracy.h"
#include "train/optim.h"
#include "train/resnet.h"

/* Stream coordinate of fc's initial weights ("linc"), apart from resnet_init's streams. */
#define RNG_STREAM_LINCLS_FC 0x6c696e63ull

struct Lincls {
    LinclsModelConfig cfg;
    char arch[32];
    ParamSet backbone, fc;
    Resnet *net;
    Sgd opt;
    int feat, classes;
    float *logits, *dlogits;  /* [max_batch, classes] */
    int last_n;
    float *export_scratch;    /* conv weights in OIHW for lincls_write_state */
};

Lincls *lincls_create(const LinclsModelConfig *cfg)
{
    int depth = resnet_depth_from_arch(cfg->arch);
    if (!depth) die("model.arch '%s' is not supported (resnet18, resnet34, resnet50)", cfg->arch);
    if (cfg->classes < 1) die("linear evaluation needs at least one class");
    Lincls *l = xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    snprintf(l->arch, sizeof l->arch, "%s", cfg->arch);
    l->cfg.arch = l->arch;
    /* Frozen, eval mode: a forward-only network keeps no activations for a backward. */
    ResnetConfig rc = {
        .depth = depth, .cifar_stem = cfg->cifar_stem, .head = HEAD_NONE, .out_dim = 0,
        .bn_splits = 1, .image_size = cfg->image_size, .max_batch = cfg->max_batch,
        .memory = RESNET_FORWARD_ONLY,
    };
    params_init(&l->backbone);
    l->net = resnet_create(&rc, &l->backbone);
    params_finalize(&l->backbone);
    l->feat = resnet_feature_dim(l->net);
    l->classes = cfg->classes;

    params_init(&l->fc);
    int64_t wshape[2] = {cfg->classes, l->feat}, bshape[1] = {cfg->classes};
    params_add(&l->fc, "fc.weight", PARAM_LEARNABLE, 2, wshape, 0);
    params_add(&l->fc, "fc.bias", PARAM_LEARNABLE, 1, bshape, 0);
    params_finalize(&l->fc);
    /* The optimizer sees fc only (main_lincls.py passes the parameters with requires_grad). */
    sgd_init(&l->opt, &l->fc, cfg->momentum, cfg->weight_decay);

    size_t rows = (size_t)cfg->max_batch * cfg->classes;
    l->logits = xaligned_alloc(rows * sizeof(float));
    l->dlogits = xaligned_alloc(rows * sizeof(float));
    l->export_scratch = xaligned_alloc(params_export_scratch_floats(&l->backbone) * sizeof(float));
    return l;
}

void lincls_destroy(Lincls *l)
{
    if (!l) return;
    resnet_destroy(l->net);
    params_free(&l->backbone);
    params_free(&l->fc);
    sgd_free(&l->opt);
    free(l->logits);
    free(l->dlogits);
    free(l->export_scratch);
    free(l);
}

void lincls_init_fc(Lincls *l, uint64_t seed)
{
    Param *w = params_find(&l->fc, "fc.weight"), *b = params_find(&l->fc, "fc.bias");
    Rng r;
    rng_init(&r, seed, RNG_STREAM_LINCLS_FC, 0, 0);
    for (size_t i = 0; i < w->count; i++) w->data[i] = (float)(0.01 * rng_normal(&r));
    memset(b->data, 0, b->count * sizeof(float));
}

ParamSet *lincls_backbone(Lincls *l) { return &l->backbone; }
ParamSet *lincls_fc(Lincls *l) { return &l->fc; }
const float *lincls_last_logits(const Lincls *l) { return l->logits; }

/* features -> logits -> loss (and dlogits when wanted), with the batch's accuracy. */
static LinclsBatchStats forward(Lincls *l, const float *x, const int32_t *labels, int n,
                                float *dlogits)
{
    if (n < 1 || n > l->cfg.max_batch)
        die("lincls: batch %d outside 1..%d", n, l->cfg.max_batch);
    const float *features = resnet_forward(l->net, x, n, 0); /* eval mode: running stats */
    const Param *w = &l->fc.p[0], *b = &l->fc.p[1];
    linear_forward(n, l->feat, l->classes, features, w->data, b->data, l->logits);
    l->last_n = n;
    LinclsBatchStats s = {0};
    s.n = n;
    s.loss = softmax_xent_forward_backward(n, l->classes, l->logits, labels, dlogits);
    s.correct1 = accuracy_topk_correct(n, l->classes, l->logits, labels, 1);
    s.correct5 = accuracy_topk_correct(n, l->classes, l->logits, labels, 5);
    if (dlogits) {
        params_zero_grad(&l->fc);
        Param *wm = &l->fc.p[0], *bm = &l->fc.p[1];
        linear_backward(n, l->feat, l->classes, features, wm->data, dlogits, NULL, wm->grad,
                        bm->grad);
    }
    return s;
}

LinclsBatchStats lincls_train_step(Lincls *l, const float *x, const int32_t *labels, int n,
                                   float lr)
{
    LinclsBatchStats s = forward(l, x, labels, n, l->dlogits);
    sgd_step(&l->opt, &l->fc, lr);
    return s;
}

LinclsBatchStats lincls_evaluate(Lincls *l, const float *x, const int32_t *labels, int n)
{
    return forward(l, x, labels, n, NULL);
}

void lincls_write_state(Lincls *l, StWriter *w)
{
    params_export(&l->backbone, w, "", EXPORT_ALL, NULL, l->export_scratch, NULL);
    params_export(&l->fc, w, "", EXPORT_ALL, NULL, NULL, NULL);
    if (l->opt.has_buf)
        params_export(&l->fc, w, "optim.momentum_buffer.", EXPORT_EXTERNAL, l->opt.buf, NULL, NULL);
}

int lincls_load_state(Lincls *l, const StFile *f, char *err, size_t errlen)
{
    if (params_import(&l->backbone, f, "", EXPORT_ALL, NULL, 0, err, errlen) != 0) return -1;
    if (params_import(&l->fc, f, "", EXPORT_ALL, NULL, 0, err, errlen) != 0) return -1;
    int rc = params_import(&l->fc, f, "optim.momentum_buffer.", EXPORT_EXTERNAL, l->opt.buf, 1,
                           err, errlen);
    if (rc < 0) return -1;
    l->opt.has_buf = rc == 0; /* absent: the next step starts the buffers as PyTorch does */
    return 0;
}

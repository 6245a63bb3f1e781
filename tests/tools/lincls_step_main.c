/* lincls_step — one linear-evaluation step through the library, for tests/python/test_lincls.py.
 *
 *   lincls_step --input IN.safetensors --out OUT.safetensors
 *
 * IN (metadata format "mocod-backbone", so that the backbone goes through
 * pretrained_load_backbone as model.pretrained would): the backbone of a ResNet-18 with the
 * CIFAR stem (torchvision names, PyTorch layouts), fc.weight [C, 512], fc.bias [C], images
 * float32 [N, 3, S, S] (NCHW, normalized), labels int64 [N], and lr, momentum, wd (float32,
 * one element each).
 * OUT: loss [], logits [N, C], correct1 and correct5 (int64 []; -1 when undefined),
 * grad.fc.weight, grad.fc.bias (before the update), fc.weight and fc.bias after the SGD
 * update, and after.<name> for every backbone tensor after the step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/lincls.h"
#include "train/params.h"
#include "train/pretrained.h"
#include "train/safetensors.h"

static const StTensor *need(const StFile *f, const char *name, StDtype dtype)
{
    const StTensor *t = st_find(f, name);
    if (!t || t->dtype != dtype) die("lincls_step: input needs '%s' (%s)", name,
                                     dtype == ST_F32 ? "float32" : "int64");
    return t;
}

static float scalar(const StFile *f, const char *name)
{
    const StTensor *t = need(f, name, ST_F32);
    if (t->nbytes != sizeof(float)) die("lincls_step: '%s' must hold one float", name);
    return *(const float *)t->data;
}

int main(int argc, char **argv)
{
    const char *input = NULL, *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--input")) input = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else die("lincls_step: unknown option %s", argv[i]);
    }
    if (!input || !out) die("usage: lincls_step --input IN.safetensors --out OUT.safetensors");
    char err[2048];
    StFile in;
    if (st_load(input, &in, err, sizeof err) != 0) die("%s", err);
    const StTensor *x = need(&in, "images", ST_F32), *y = need(&in, "labels", ST_I64);
    const StTensor *fw = need(&in, "fc.weight", ST_F32);
    if (x->ndim != 4 || x->shape[1] != 3 || x->shape[2] != x->shape[3])
        die("lincls_step: images must be float32 [N, 3, S, S]");
    const int n = (int)x->shape[0], S = (int)x->shape[2], classes = (int)fw->shape[0];
    if (y->ndim != 1 || y->shape[0] != n) die("lincls_step: labels must be int64 [N]");

    LinclsModelConfig mc = {
        .arch = "resnet18", .cifar_stem = 1, .image_size = S, .max_batch = n,
        .classes = classes, .momentum = scalar(&in, "momentum"), .weight_decay = scalar(&in, "wd"),
    };
    Lincls *m = lincls_create(&mc);
    if (pretrained_load_backbone(input, lincls_backbone(m), err, sizeof err) != 0) die("%s", err);
    if (params_import(lincls_fc(m), &in, "", EXPORT_ALL, NULL, 0, err, sizeof err) != 0)
        die("%s", err);

    /* NCHW (PyTorch) -> NHWC (the engine) */
    float *img = xaligned_alloc((size_t)n * S * S * 3 * sizeof(float));
    const float *src = x->data;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < S * S; p++)
                img[((size_t)i * S * S + p) * 3 + c] = src[((size_t)i * 3 + c) * S * S + p];
    int32_t *labels = xmalloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) labels[i] = (int32_t)((const int64_t *)y->data)[i];

    LinclsBatchStats s = lincls_train_step(m, img, labels, n, scalar(&in, "lr"));

    StWriter *w = st_writer_new();
    int64_t lshape[2] = {n, classes};
    int64_t correct1 = s.correct1, correct5 = s.correct5;
    st_writer_add(w, "loss", ST_F32, 0, NULL, &s.loss);
    st_writer_add(w, "logits", ST_F32, 2, lshape, lincls_last_logits(m));
    st_writer_add(w, "correct1", ST_I64, 0, NULL, &correct1);
    st_writer_add(w, "correct5", ST_I64, 0, NULL, &correct5);
    ParamSet *fc = lincls_fc(m), *bb = lincls_backbone(m);
    params_export(fc, w, "grad.", EXPORT_GRADS, NULL, NULL, NULL);
    params_export(fc, w, "", EXPORT_ALL, NULL, NULL, NULL);
    float *scratch = xaligned_alloc(params_export_scratch_floats(bb) * sizeof(float));
    params_export(bb, w, "after.", EXPORT_ALL, NULL, scratch, NULL);
    if (st_writer_save(w, out, err, sizeof err) != 0) die("%s", err);
    st_writer_free(w);
    free(scratch);
    free(labels);
    free(img);
    lincls_destroy(m);
    st_free(&in);
    return 0;
}

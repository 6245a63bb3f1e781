/* pretrained.c — identifying and loading pretrained backbones; see pretrained.h. */
#include "train/pretrained.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "kernels/kernels.h"
#include "train/checkpoint.h"

static const char *HOW_TO_CONVERT =
    "accepted: a mocod pretraining checkpoint (format mocod-checkpoint, or a folder of them), "
    "a backbone export (mocod-backbone, from `moco-train --export backbone`) or a lincls "
    "checkpoint (mocod-lincls); convert an official PyTorch checkpoint with "
    "`tools/convert_checkpoint.py from-torch IN.pth.tar OUT.safetensors`";

int pretrained_resolve(const char *path, char *file, size_t len, char *err, size_t errlen)
{
    struct stat st;
    if (strncmp(path, "job:", 4) == 0 && stat(path, &st) != 0) {
        /* The daemon replaces job:<id> by that job's final checkpoint before starting us. */
        snprintf(err, errlen, "'%s' names a mocod job; only mocod resolves job:<id> (to that "
                 "job's final checkpoint): run the job through mocod, or give the checkpoint's "
                 "path", path);
        return -1;
    }
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(file, len, "%s", path);
        return 0;
    }
    if (!checkpoint_newest(path, file, len)) {
        snprintf(err, errlen, "folder %s holds no ckpt-*.safetensors checkpoint; name a "
                 "checkpoint or backbone file instead", path);
        return -1;
    }
    return 0;
}

int pretrained_open(const char *path, PretrainedFile *pf, char *err, size_t errlen)
{
    memset(pf, 0, sizeof *pf);
    if (pretrained_resolve(path, pf->file, sizeof pf->file, err, errlen) != 0) return -1;
    if (st_load(pf->file, &pf->st, err, errlen) != 0) return -1;
    const char *format = st_metadata(&pf->st, "format");
    if (format && strcmp(format, CHECKPOINT_FORMAT) == 0) {
        pf->format = CHECKPOINT_FORMAT;
        pf->prefix = "encoder_q.";
    } else if (format && strcmp(format, PRETRAINED_FORMAT_BACKBONE) == 0) {
        pf->format = PRETRAINED_FORMAT_BACKBONE;
        pf->prefix = "";
    } else if (format && strcmp(format, PRETRAINED_FORMAT_LINCLS) == 0) {
        pf->format = PRETRAINED_FORMAT_LINCLS;
        pf->prefix = "";
    } else {
        snprintf(err, errlen, "%s is not a pretrained model mocod can read (metadata format %s%s%s); %s",
                 pf->file, format ? "'" : "", format ? format : "missing", format ? "'" : "",
                 HOW_TO_CONVERT);
        st_free(&pf->st);
        return -1;
    }
    return 0;
}

void pretrained_close(PretrainedFile *pf)
{
    if (pf->format) st_free(&pf->st);
    memset(pf, 0, sizeof *pf);
}

const StTensor *pretrained_find(const PretrainedFile *pf, const char *name)
{
    char full[PARAM_NAME_MAX + 32];
    snprintf(full, sizeof full, "%s%s", pf->prefix, name);
    return st_find(&pf->st, full);
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* The arch from which block names exist: Bottleneck blocks have conv3 (resnet50); resnet34
 * has six blocks in layer3, resnet18 two. */
static const char *arch_of(int has_conv3, int has_layer3_5, int has_layer1)
{
    return has_conv3 ? "resnet50" : has_layer3_5 ? "resnet34" : has_layer1 ? "resnet18"
                                                                            : "an unknown network";
}

static const char *stem_of(int ndim, const int64_t *shape)
{
    if (ndim != 4) return "an unknown stem";
    return shape[2] == 3 ? "the CIFAR stem" : shape[2] == 7 ? "the ImageNet stem" : "an unknown stem";
}

void pretrained_describe(const PretrainedFile *pf, char *buf, size_t len)
{
    const StTensor *conv1 = pretrained_find(pf, "conv1.weight");
    const char *arch = arch_of(pretrained_find(pf, "layer1.0.conv3.weight") != NULL,
                               pretrained_find(pf, "layer3.5.conv1.weight") != NULL,
                               pretrained_find(pf, "layer1.0.conv1.weight") != NULL);
    if (!conv1) {
        snprintf(buf, len, "%s without conv1.weight", arch);
        return;
    }
    char shape[96];
    shape_text(shape, sizeof shape, conv1->ndim, conv1->shape);
    snprintf(buf, len, "%s with %s (conv1.weight %s)", arch, stem_of(conv1->ndim, conv1->shape),
             shape);
}

static void describe_model(const ParamSet *ps, char *buf, size_t len)
{
    const Param *conv1 = params_find(ps, "conv1.weight");
    const char *arch = arch_of(params_find(ps, "layer1.0.conv3.weight") != NULL,
                               params_find(ps, "layer3.5.conv1.weight") != NULL,
                               params_find(ps, "layer1.0.conv1.weight") != NULL);
    snprintf(buf, len, "%s with %s", arch, conv1 ? stem_of(conv1->ndim, conv1->shape) : "no conv1");
}

static int shape_matches(const Param *p, const StTensor *t)
{
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

/* Copies one checked tensor into p (conv weights OIHW -> backend layout). Foreign files may
 * place a tensor at an offset that is not a multiple of its element size: such data is
 * copied to an aligned buffer before it is read as floats. */
static void copy_tensor(Param *p, const StTensor *t)
{
    if (p->kind == PARAM_BUFFER_I64) {
        memcpy(p->i64, t->data, p->count * sizeof(int64_t));
        return;
    }
    if (!p->conv) {
        memcpy(p->data, t->data, p->count * sizeof(float));
        return;
    }
    const float *src = t->data;
    float *aligned = NULL;
    if ((uintptr_t)src % sizeof(float)) {
        aligned = xmalloc(p->count * sizeof(float));
        memcpy(aligned, src, p->count * sizeof(float));
        src = aligned;
    }
    ConvShape s = conv_shape_make(1, (int)p->shape[2], (int)p->shape[3], (int)p->shape[1],
                                  (int)p->shape[0], (int)p->shape[2], 1, 0);
    conv_weight_from_oihw(&s, src, p->data);
    free(aligned);
}

int pretrained_load_backbone(const char *path, ParamSet *ps, char *err, size_t errlen)
{
    if (!ps->finalized) die("pretrained_load_backbone: parameters not allocated (params_finalize)");
    PretrainedFile pf;
    if (pretrained_open(path, &pf, err, errlen) != 0) return -1;
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->p[i];
        if (strncmp(p->name, "fc.", 3) == 0) continue; /* the classifier is not backbone */
        const StTensor *t = pretrained_find(&pf, p->name);
        StDtype want = p->kind == PARAM_BUFFER_I64 ? ST_I64 : ST_F32;
        char problem[512] = "";
        if (!t) {
            snprintf(problem, sizeof problem, "tensor '%s%s' is missing", pf.prefix, p->name);
        } else if (t->dtype != want) {
            snprintf(problem, sizeof problem, "tensor '%s%s' is not %s", pf.prefix, p->name,
                     want == ST_I64 ? "int64" : "float32");
        } else if (!shape_matches(p, t)) {
            char a[96], b[96];
            shape_text(a, sizeof a, t->ndim, t->shape);
            shape_text(b, sizeof b, p->ndim, p->shape);
            snprintf(problem, sizeof problem, "tensor '%s%s' has shape %s, the model expects %s",
                     pf.prefix, p->name, a, b);
        }
        if (problem[0]) {
            char file_model[256], model[128];
            pretrained_describe(&pf, file_model, sizeof file_model);
            describe_model(ps, model, sizeof model);
            snprintf(err, errlen, "%s: %s; the file seems to hold a %s, the config builds a %s: "
                     "set model.arch and model.cifar_stem to match the file", pf.file, problem,
                     file_model, model);
            pretrained_close(&pf);
            return -1;
        }
        copy_tensor(p, t);
        if (p->kind != PARAM_BUFFER_I64) {
            /* A diverged run's weights would otherwise surface much later as a NaN loss that
             * blames the learning rate, or as a meaningless kNN accuracy. */
            for (size_t j = 0; j < p->count; j++) {
                if (isfinite(p->data[j])) continue;
                snprintf(err, errlen, "%s: tensor '%s%s' holds a non-finite value (%g at element "
                         "%zu): the pretraining that wrote it diverged; use an earlier checkpoint",
                         pf.file, pf.prefix, p->name, (double)p->data[j], j);
                pretrained_close(&pf);
                return -1;
            }
        }
    }
    pretrained_close(&pf);
    return 0;
}

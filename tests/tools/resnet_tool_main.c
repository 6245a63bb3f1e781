/* resnet_tool — drives one ResNet forward + backward for tests/python/test_resnet_torchvision.py.
 *
 *   resnet_tool --arch resnet18|resnet34|resnet50 [--cifar-stem] [--head none|fc|mlp]
 *               [--dim D] [--bn-splits B] [--eval] (--weights W.safetensors | --seed S)
 *               --input X.safetensors --out O.safetensors
 *
 * W holds torchvision-named tensors (PyTorch layouts); without it the model gets torchvision's
 * initialisation from the seed. X holds "x" float32 [N, 3, S, S] (NCHW) and, for a backward,
 * "dout" float32 [N, out]. O gets "y" [N, out], "grad.<name>" for every parameter (when dout
 * was given) and "state.<name>" for every parameter and buffer after the forward.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/params.h"
#include "train/resnet.h"
#include "train/safetensors.h"

int main(int argc, char **argv)
{
    const char *arch = "resnet18", *head = "fc", *weights = NULL, *input = NULL, *out = NULL;
    int cifar = 0, dim = 128, splits = 1, eval = 0;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--cifar-stem")) cifar = 1;
        else if (!strcmp(a, "--eval")) eval = 1;
        else if (i + 1 >= argc) die("resnet_tool: %s needs a value", a);
        else if (!strcmp(a, "--arch")) arch = argv[++i];
        else if (!strcmp(a, "--head")) head = argv[++i];
        else if (!strcmp(a, "--dim")) dim = atoi(argv[++i]);
        else if (!strcmp(a, "--bn-splits")) splits = atoi(argv[++i]);
        else if (!strcmp(a, "--seed")) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--weights")) weights = argv[++i];
        else if (!strcmp(a, "--input")) input = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else die("resnet_tool: unknown option %s", a);
    }
    if (!input || !out) die("resnet_tool: --input and --out are required");
    char err[1024];
    StFile xf;
    if (st_load(input, &xf, err, sizeof err)) die("%s", err);
    const StTensor *x = st_find(&xf, "x");
    if (!x || x->dtype != ST_F32 || x->ndim != 4 || x->shape[1] != 3)
        die("resnet_tool: input needs x float32 [N, 3, S, S]");
    const int n = (int)x->shape[0], S = (int)x->shape[2];

    ResnetConfig rc = {
        .depth = resnet_depth_from_arch(arch), .cifar_stem = cifar,
        .head = !strcmp(head, "mlp") ? HEAD_MLP : !strcmp(head, "none") ? HEAD_NONE : HEAD_FC,
        .out_dim = dim, .bn_splits = splits, .image_size = S, .max_batch = n,
        .memory = RESNET_TRAIN,
    };
    ParamSet ps;
    params_init(&ps);
    Resnet *net = resnet_create(&rc, &ps);
    params_finalize(&ps);
    resnet_init(net, seed);
    StFile wf = {0};
    if (weights) {
        if (st_load(weights, &wf, err, sizeof err)) die("%s", err);
        if (params_import(&ps, &wf, "", EXPORT_ALL, NULL, 0, err, sizeof err)) die("%s", err);
    }

    float *img = xaligned_alloc((size_t)n * S * S * 3 * sizeof(float));
    const float *src = x->data;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < S * S; p++)
                img[((size_t)i * S * S + p) * 3 + c] = src[((size_t)i * 3 + c) * S * S + p];

    const int od = resnet_output_dim(net);
    const float *y = resnet_forward(net, img, n, !eval);
    float *ycopy = xmalloc((size_t)n * od * sizeof(float));
    memcpy(ycopy, y, (size_t)n * od * sizeof(float));
    StWriter *w = st_writer_new();
    int64_t yshape[2] = {n, od};
    st_writer_add(w, "y", ST_F32, 2, yshape, ycopy);

    size_t conv = params_export_scratch_floats(&ps);
    float *scratch = xaligned_alloc(2 * conv * sizeof(float) + 64);
    params_export(&ps, w, "state.", EXPORT_ALL, NULL, scratch, NULL);
    const StTensor *dout = st_find(&xf, "dout");
    if (dout) {
        if (dout->dtype != ST_F32 || dout->ndim != 2 || dout->shape[0] != n || dout->shape[1] != od)
            die("resnet_tool: dout must be float32 [%d, %d]", n, od);
        if (eval) die("resnet_tool: backward needs a train-mode forward");
        params_zero_grad(&ps);
        resnet_backward(net, dout->data);
        params_export(&ps, w, "grad.", EXPORT_GRADS, NULL, scratch + conv, NULL);
    }
    if (st_writer_save(w, out, err, sizeof err)) die("%s", err);
    st_writer_free(w);
    free(scratch);
    free(ycopy);
    free(img);
    if (weights) st_free(&wf);
    st_free(&xf);
    resnet_destroy(net);
    params_free(&ps);
    return 0;
}

/* test_lincls_sanity.c — the pretrained-backbone loader (train/pretrained.c) and the official
 * lincls sanity check (train/lincls_sanity.c) on a small ResNet-18 (CIFAR stem, 8x8 images):
 * a backbone saved, loaded into another model (its fc left alone), compared unchanged (pass)
 * and after changing one element of a running variance, a num_batches_tracked or a conv
 * weight (fail, naming that tensor); the accepted file formats, a folder of checkpoints, and
 * the messages for a wrong model or a foreign file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "train/lincls.h"
#include "train/params.h"
#include "train/pretrained.h"
#include "train/resnet.h"
#include "train/safetensors.h"

static char dir[256], backbone[512];

typedef struct {
    ParamSet ps;
    Resnet *net;
} Model;

static void build(Model *m, int cifar_stem, int depth, HeadKind head, uint64_t seed)
{
    ResnetConfig rc = {.depth = depth, .cifar_stem = cifar_stem, .head = head, .out_dim = 10,
                       .bn_splits = 1, .image_size = 8, .max_batch = 2,
                       .memory = RESNET_FORWARD_ONLY};
    params_init(&m->ps);
    m->net = resnet_create(&rc, &m->ps);
    params_finalize(&m->ps);
    resnet_init(m->net, seed);
    /* Non-trivial buffers: a fresh model's 0/1 statistics would hide a buffer loaded wrong. */
    for (int i = 0; i < m->ps.count; i++) {
        Param *p = &m->ps.p[i];
        if (p->kind == PARAM_BUFFER_F32)
            for (size_t j = 0; j < p->count; j++) p->data[j] = 0.5f + (float)((j * 7 + seed) % 13) / 13.0f;
        if (p->kind == PARAM_BUFFER_I64) p->i64[0] = 5 + (int64_t)seed;
    }
}

static void destroy(Model *m)
{
    resnet_destroy(m->net);
    params_free(&m->ps);
}

static int skip_fc(const char *name) { return strncmp(name, "fc.", 3) == 0; }

/* Saves m under prefix with the given metadata format (NULL: none). */
static void save(const Model *m, const char *path, const char *prefix, const char *format)
{
    char err[1024];
    float *scratch = xaligned_alloc(params_export_scratch_floats(&m->ps) * sizeof(float));
    StWriter *w = st_writer_new();
    params_export(&m->ps, w, prefix, EXPORT_ALL, NULL, scratch, skip_fc);
    if (format) st_writer_add_metadata(w, "format", format);
    if (st_writer_save(w, path, err, sizeof err) != 0) fail_msg("%s", err);
    st_writer_free(w);
    free(scratch);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/moco_test_lincls_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(backbone, sizeof backbone, "%s/backbone.safetensors", dir);
    Model m;
    build(&m, 1, 18, HEAD_NONE, 1);
    save(&m, backbone, "", PRETRAINED_FORMAT_BACKBONE);
    destroy(&m);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_loads_and_leaves_fc_alone(void **state)
{
    (void)state;
    char err[2048];
    Model m;
    build(&m, 1, 18, HEAD_FC, 2); /* other weights and buffers than the saved ones */
    Param *fc = params_find(&m.ps, "fc.weight");
    for (size_t i = 0; i < fc->count; i++) fc->data[i] = 42.0f;
    assert_int_equal(lincls_sanity_check(&m.ps, backbone, err, sizeof err), -1);
    if (pretrained_load_backbone(backbone, &m.ps, err, sizeof err) != 0) fail_msg("%s", err);
    for (size_t i = 0; i < fc->count; i++) assert_true(fc->data[i] == 42.0f);
    if (lincls_sanity_check(&m.ps, backbone, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(params_find(&m.ps, "layer3.1.bn2.num_batches_tracked")->i64[0], 6);
    destroy(&m);
}

/* One element changed in `name` must fail the check with a message naming it. */
static void expect_change_detected(Model *m, const char *name, const char *difference)
{
    char err[2048];
    Param *p = params_find(&m->ps, name);
    assert_non_null(p);
    int64_t i64 = p->i64 ? p->i64[0] : 0;
    float f = p->data ? p->data[3] : 0.0f;
    if (p->kind == PARAM_BUFFER_I64) p->i64[0] += 1;
    else p->data[3] += 0.5f;
    assert_int_equal(lincls_sanity_check(&m->ps, backbone, err, sizeof err), -1);
    char want[160];
    snprintf(want, sizeof want, "backbone tensor '%s' changed", name);
    if (!strstr(err, want) || !strstr(err, difference) || !strstr(err, "1 of "))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, want, difference);
    if (p->kind == PARAM_BUFFER_I64) p->i64[0] = i64;
    else p->data[3] = f;
    if (lincls_sanity_check(&m->ps, backbone, err, sizeof err) != 0) fail_msg("%s", err);
}

static void test_sanity_check_names_the_changed_tensor(void **state)
{
    (void)state;
    char err[2048];
    Model m;
    build(&m, 1, 18, HEAD_NONE, 3);
    if (pretrained_load_backbone(backbone, &m.ps, err, sizeof err) != 0) fail_msg("%s", err);
    expect_change_detected(&m, "layer2.0.bn1.running_var", "largest difference 0.5");
    expect_change_detected(&m, "layer1.0.bn1.num_batches_tracked", "largest difference 1");
    expect_change_detected(&m, "layer4.1.conv2.weight", "largest difference 0.5");
    destroy(&m);
}

static void test_checkpoint_formats_and_folders(void **state)
{
    (void)state;
    char err[2048], ckdir[400], ck[600], lincls[600];
    Model src, m;
    build(&src, 1, 18, HEAD_NONE, 1); /* the same values as the saved backbone */
    /* A pretraining checkpoint's folder: encoder_q.* is the backbone. */
    snprintf(ckdir, sizeof ckdir, "%s/run", dir);
    assert_int_equal(mkdir(ckdir, 0777), 0);
    snprintf(ck, sizeof ck, "%s/ckpt-e0001-s000000003.safetensors", ckdir);
    save(&src, ck, "encoder_q.", "mocod-checkpoint");
    build(&m, 1, 18, HEAD_NONE, 4);
    if (pretrained_load_backbone(ckdir, &m.ps, err, sizeof err) != 0) fail_msg("%s", err);
    if (lincls_sanity_check(&m.ps, backbone, err, sizeof err) != 0) fail_msg("%s", err);
    destroy(&m);
    /* A lincls checkpoint: names without prefix. */
    snprintf(lincls, sizeof lincls, "%s/lincls-last.safetensors", dir);
    save(&src, lincls, "", PRETRAINED_FORMAT_LINCLS);
    build(&m, 1, 18, HEAD_NONE, 5);
    if (pretrained_load_backbone(lincls, &m.ps, err, sizeof err) != 0) fail_msg("%s", err);
    if (lincls_sanity_check(&m.ps, ck, err, sizeof err) != 0) fail_msg("%s", err);
    destroy(&m);
    destroy(&src);
}

static void test_wrong_model_and_foreign_files(void **state)
{
    (void)state;
    char err[2048], raw[400];
    Model m;
    build(&m, 0, 18, HEAD_NONE, 1); /* ImageNet stem */
    assert_int_equal(pretrained_load_backbone(backbone, &m.ps, err, sizeof err), -1);
    assert_non_null(strstr(err, "conv1.weight' has shape [64, 3, 3, 3], the model expects [64, 3, 7, 7]"));
    assert_non_null(strstr(err, "resnet18 with the CIFAR stem"));
    assert_non_null(strstr(err, backbone));
    assert_non_null(strstr(err, "model.cifar_stem"));
    destroy(&m);
    build(&m, 1, 50, HEAD_NONE, 1);
    assert_int_equal(pretrained_load_backbone(backbone, &m.ps, err, sizeof err), -1);
    assert_non_null(strstr(err, "layer1.0.conv1.weight' has shape [64, 64, 3, 3], the model expects [64, 64, 1, 1]"));
    assert_non_null(strstr(err, "the config builds a resnet50"));
    /* No format metadata: a raw state dict is refused with the way to convert it. */
    snprintf(raw, sizeof raw, "%s/raw.safetensors", dir);
    save(&m, raw, "", NULL);
    assert_int_equal(pretrained_load_backbone(raw, &m.ps, err, sizeof err), -1);
    assert_non_null(strstr(err, "convert_checkpoint.py from-torch"));
    assert_int_equal(pretrained_load_backbone(dir, &m.ps, err, sizeof err), -1);
    assert_non_null(strstr(err, "holds no ckpt-*.safetensors"));
    destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_and_leaves_fc_alone),
        cmocka_unit_test(test_sanity_check_names_the_changed_tensor),
        cmocka_unit_test(test_checkpoint_formats_and_folders),
        cmocka_unit_test(test_wrong_model_and_foreign_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_config.c — the job spec: defaults, presets, --set overrides, YAML and JSON parsing,
 * every kind of validation error (each must name the key), the resolved-JSON round trip, and
 * that every recipe in configs/ loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "train/config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];
static char cfg_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/moco_test_cfg_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(cfg_path, sizeof cfg_path, "%s/job.yaml", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(cfg_path);
    rmdir(tmpdir);
    return 0;
}

static void write_cfg(const char *text)
{
    FILE *f = fopen(cfg_path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Loads text (as the file job.yaml) with overrides; the config must be valid. */
static void load_ok(const char *text, const char *const *sets, int n_sets, JobConfig *c)
{
    char err[1024] = "";
    write_cfg(text);
    if (config_load(cfg_path, sets, n_sets, c, err, sizeof err) != 0)
        fail_msg("expected a valid config, got: %s", err);
    assert_non_null(c->resolved_json);
}

/* The config must be rejected with a message containing every given fragment. */
static void load_fails(const char *text, const char *const *sets, int n_sets, ...)
{
    char err[1024] = "";
    JobConfig c;
    write_cfg(text);
    if (config_load(cfg_path, sets, n_sets, &c, err, sizeof err) == 0)
        fail_msg("expected an error for:\n%s", text);
    assert_null(c.resolved_json);
    va_list ap;
    va_start(ap, n_sets);
    const char *frag;
    while ((frag = va_arg(ap, const char *)))
        if (!strstr(err, frag)) fail_msg("message \"%s\" lacks \"%s\"", err, frag);
    va_end(ap);
}

#define TRAIN "data: {train: /data/x/train, val: /data/x/val}\n"

/* ---- defaults and presets ---------------------------------------------------------------- */

static void test_defaults_are_the_official_ones(void **state)
{
    (void)state;
    JobConfig c;
    const char *sets[] = {"data.train=/data/imagenet/train"};
    char err[512] = "";
    assert_int_equal(config_load(NULL, sets, 1, &c, err, sizeof err), 0);
    assert_int_equal(c.kind, JOB_PRETRAIN);
    assert_int_equal(c.method, METHOD_MOCO_V2);
    assert_string_equal(c.model.arch, "resnet50");
    assert_int_equal(c.model.cifar_stem, 0);
    assert_int_equal(c.model.mlp, 1);
    assert_int_equal(c.model.dim, 128);
    assert_string_equal(c.model.pretrained, "");
    assert_int_equal(c.moco.k, 65536);
    assert_true(c.moco.m == 0.999);
    assert_true(c.moco.t == 0.2);
    assert_int_equal(c.moco.shuffle_bn, 1);
    assert_int_equal(c.moco.bn_splits, 1);
    assert_string_equal(c.data.train, "/data/imagenet/train");
    assert_string_equal(c.data.val, "");
    assert_int_equal(c.data.image_size, 224);
    assert_int_equal(c.data.val_resize, 256);
    assert_int_equal(c.data.aug, AUGSPEC_V2);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c.data.workers, cores < 8 ? cores : 8);
    assert_true(c.optim.lr == 0.03);
    assert_true(c.optim.momentum == 0.9);
    assert_true(c.optim.weight_decay == 1e-4);
    assert_int_equal(c.optim.batch_size, 256);
    assert_int_equal(c.optim.epochs, 200);
    assert_int_equal(c.optim.schedule, SCHEDULE_COS);
    assert_int_equal(c.optim.n_milestones, 2);
    assert_int_equal(c.optim.milestones[0], 120);
    assert_int_equal(c.optim.milestones[1], 160);
    assert_int_equal(c.checkpoint.every_epochs, 1);
    assert_int_equal(c.checkpoint.keep_last, 3);
    assert_string_equal(c.checkpoint.dir, "checkpoints");
    assert_int_equal(c.eval.knn_every_epochs, 0);
    assert_int_equal(c.eval.knn_k, 200);
    assert_true(c.eval.knn_t == 0.1);
    assert_int_equal(c.resources.gpus, 0);
    assert_int_equal(c.resources.ranks, 1);
    assert_int_equal(c.resources.threads, 0);
    assert_int_equal(c.log.print_every, 10);
    assert_int_equal(c.log.max_steps, 0);
    assert_true(c.seed == 0);
    assert_string_equal(c.precision, "fp32");
    config_free(&c);
}

static void test_data_optional_for_align_and_bench(void **state)
{
    (void)state;
    JobConfig c;
    char err[512] = "";
    write_cfg("model: {arch: resnet18}\n");
    assert_int_equal(config_load(cfg_path, NULL, 0, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "data.train is required"));
    assert_int_equal(config_load_ex(cfg_path, NULL, 0, CONFIG_DATA_OPTIONAL, &c, err,
                                    sizeof err), 0);
    assert_string_equal(c.data.train, "");
    config_free(&c);
    /* every other rule still holds */
    write_cfg("optim: {batch_size: 96}\n");
    assert_int_equal(config_load_ex(cfg_path, NULL, 0, CONFIG_DATA_OPTIONAL, &c, err,
                                    sizeof err), -1);
    assert_non_null(strstr(err, "moco.k (65536) must be a multiple"));
}

static void test_dependent_defaults(void **state)
{
    (void)state;
    JobConfig c;
    /* val_resize keeps the 256/224 ratio; GPUs bring bf16 and one rank per GPU */
    load_ok("data: {train: t, image_size: 32}\nresources: {gpus: 8}\n", NULL, 0, &c);
    assert_int_equal(c.data.val_resize, 37);
    assert_string_equal(c.precision, "bf16");
    assert_int_equal(c.resources.ranks, 8);
    config_free(&c);
}

static void test_moco_v1_preset(void **state)
{
    (void)state;
    JobConfig c;
    load_ok("method: moco_v1\n" TRAIN, NULL, 0, &c);
    assert_int_equal(c.method, METHOD_MOCO_V1);
    assert_int_equal(c.model.mlp, 0);
    assert_true(c.moco.t == 0.07);
    assert_int_equal(c.data.aug, AUGSPEC_V1);
    assert_int_equal(c.optim.schedule, SCHEDULE_STEP);
    assert_int_equal(c.optim.n_milestones, 2);
    assert_int_equal(c.optim.milestones[0], 120);
    assert_int_equal(c.optim.milestones[1], 160);
    config_free(&c);
}

static void test_explicit_fields_beat_the_preset(void **state)
{
    (void)state;
    JobConfig c;
    load_ok("method: moco_v1\nmodel: {mlp: true}\nmoco: {t: 0.2}\n" TRAIN
            "optim: {schedule: cos}\n", NULL, 0, &c);
    assert_int_equal(c.model.mlp, 1);
    assert_true(c.moco.t == 0.2);
    assert_int_equal(c.data.aug, AUGSPEC_V1); /* untouched preset field stays */
    assert_int_equal(c.optim.schedule, SCHEDULE_COS);
    config_free(&c);

    load_ok("method: moco_v2\nmodel: {mlp: false}\ndata: {train: t, aug: v1}\n", NULL, 0, &c);
    assert_int_equal(c.model.mlp, 0);
    assert_int_equal(c.data.aug, AUGSPEC_V1);
    assert_true(c.moco.t == 0.2);
    config_free(&c);
}

static void test_lincls_defaults_follow_main_lincls(void **state)
{
    (void)state;
    JobConfig c;
    load_ok("kind: lincls\nmodel: {pretrained: ck.safetensors}\n" TRAIN, NULL, 0, &c);
    assert_int_equal(c.kind, JOB_LINCLS);
    assert_true(c.optim.lr == 30.0);
    assert_true(c.optim.weight_decay == 0.0);
    assert_int_equal(c.optim.epochs, 100);
    assert_int_equal(c.optim.schedule, SCHEDULE_STEP);
    assert_int_equal(c.optim.milestones[0], 60);
    assert_int_equal(c.optim.milestones[1], 80);
    assert_string_equal(c.model.pretrained, "ck.safetensors");
    config_free(&c);
    /* Without a pretrained model there is nothing to evaluate; without data.val nothing to
     * evaluate on. */
    load_fails("kind: lincls\n" TRAIN, NULL, 0, "model.pretrained is required", NULL);
    load_fails("kind: lincls\nmodel: {pretrained: ck.safetensors}\n"
               "data: {train: /data/x/train}\n", NULL, 0, "data.val is required for kind lincls",
               NULL);
}

/* ---- --set ------------------------------------------------------------------------------ */

static void test_overrides(void **state)
{
    (void)state;
    JobConfig c;
    const char *sets[] = {
        "optim.batch_size=64", "moco.k=1024",        "optim.lr=1.0e-2",
        "moco.shuffle_bn=false", "optim.milestones=[3, 5, 9]", "data.train=/other/train",
        "checkpoint.dir=runs/x y", "seed=42",        "eval.knn.t=0.07",
        "optim.lr=0.5", /* later wins */
    };
    load_ok("optim: {lr: 0.1, batch_size: 256}\n" TRAIN, sets, 10, &c);
    assert_int_equal(c.optim.batch_size, 64);
    assert_int_equal(c.moco.k, 1024);
    assert_true(c.optim.lr == 0.5);
    assert_int_equal(c.moco.shuffle_bn, 0);
    assert_int_equal(c.optim.n_milestones, 3);
    assert_int_equal(c.optim.milestones[2], 9);
    assert_string_equal(c.data.train, "/other/train");
    assert_string_equal(c.data.val, "/data/x/val"); /* siblings of an override stay */
    assert_string_equal(c.checkpoint.dir, "runs/x y");
    assert_true(c.seed == 42);
    assert_true(c.eval.knn_t == 0.07);
    config_free(&c);
}

static void test_override_errors(void **state)
{
    (void)state;
    const char *typo[] = {"optim.lrr=0.1"};
    load_fails(TRAIN, typo, 1, "--set optim.lrr", "unknown key 'optim.lrr'",
               "did you mean 'optim.lr'?", NULL);
    const char *no_eq[] = {"optim.lr"};
    load_fails(TRAIN, no_eq, 1, "--set optim.lr", "key.path=value", NULL);
    const char *bad_type[] = {"optim.lr=fast"};
    load_fails(TRAIN, bad_type, 1, "--set optim.lr: ",
               "optim.lr must be a number, got string \"fast\"", NULL);
    const char *bad_yaml[] = {"optim.milestones=[1, 2"};
    load_fails(TRAIN, bad_yaml, 1, "--set optim.milestones", "YAML syntax error", NULL);
    const char *into_scalar[] = {"optim.lr=0.1"};
    load_fails("optim: 5\n" TRAIN, into_scalar, 1, "--set optim.lr", "not a mapping", NULL);
}

/* ---- validation messages ---------------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    load_fails(TRAIN "optim:\n  lrr: 0.1\n", NULL, 0, "job.yaml:3: ",
               "unknown key 'optim.lrr'", "did you mean 'optim.lr'?", NULL);
    load_fails(TRAIN "lr: 0.1\n", NULL, 0, "unknown key 'lr'", "did you mean 'optim.lr'?",
               NULL);
    load_fails(TRAIN "zzzzzz_qqqq: 1\n", NULL, 0, "unknown key 'zzzzzz_qqqq'", NULL);
    load_fails(TRAIN "eval: {knn: {kk: 3}}\n", NULL, 0, "unknown key 'eval.knn.kk'", NULL);
}

static void test_type_errors(void **state)
{
    (void)state;
    load_fails(TRAIN "optim:\n  lr: fast\n", NULL, 0, "job.yaml:3: ",
               "optim.lr must be a number, got string \"fast\"", NULL);
    load_fails(TRAIN "optim: {lr: \"0.1\"}\n", NULL, 0,
               "optim.lr must be a number, got string \"0.1\"", NULL); /* quoted stays text */
    load_fails(TRAIN "model: {dim: 12.5}\n", NULL, 0, "model.dim must be an integer", "12.5",
               NULL);
    load_fails(TRAIN "model: {mlp: yes}\n", NULL, 0,
               "model.mlp must be true or false, got string \"yes\"", NULL);
    load_fails(TRAIN "model: {arch: resnet101}\n", NULL, 0, "model.arch must be one of",
               "resnet18|resnet34|resnet50", "\"resnet101\"", NULL);
    load_fails(TRAIN "method: moco_v3\n", NULL, 0, "method must be one of", NULL);
    load_fails(TRAIN "optim: {milestones: 120}\n", NULL, 0, "optim.milestones must be a list",
               NULL);
    load_fails(TRAIN "optim: {milestones: [120, x]}\n", NULL, 0,
               "optim.milestones must be a list", NULL);
    load_fails(TRAIN "optim: 5\n", NULL, 0, "optim must be a mapping", "number 5", NULL);
    load_fails(TRAIN "checkpoint: {dir: [a, b]}\n", NULL, 0, "checkpoint.dir must be a string",
               NULL);
    load_fails("- a\n- b\n", NULL, 0, "job.yaml", "top level must be a mapping", NULL);
}

static void test_range_errors(void **state)
{
    (void)state;
    load_fails(TRAIN "optim: {lr: 0}\n", NULL, 0, "optim.lr must be > 0, got 0", NULL);
    load_fails(TRAIN "optim: {lr: -0.1}\n", NULL, 0, "optim.lr must be > 0", NULL);
    load_fails(TRAIN "moco: {m: 1}\n", NULL, 0, "moco.m must be in [0, 1), got 1", NULL);
    load_fails(TRAIN "moco: {m: -0.5}\n", NULL, 0, "moco.m must be in [0, 1)", NULL);
    load_fails(TRAIN "moco: {t: 0}\n", NULL, 0, "moco.t must be > 0", NULL);
    load_fails(TRAIN "moco: {k: 0}\n", NULL, 0, "moco.k must be >= 1, got 0", NULL);
    load_fails(TRAIN "model: {dim: 0}\n", NULL, 0, "model.dim must be >= 1", NULL);
    load_fails(TRAIN "optim: {batch_size: 0}\n", NULL, 0, "optim.batch_size must be >= 1",
               NULL);
    load_fails(TRAIN "optim: {epochs: 0}\n", NULL, 0, "optim.epochs must be >= 1", NULL);
    load_fails(TRAIN "moco: {bn_splits: 0}\n", NULL, 0, "moco.bn_splits must be >= 1", NULL);
    load_fails(TRAIN "optim: {weight_decay: -1}\n", NULL, 0, "optim.weight_decay must be >= 0",
               NULL);
    load_fails(TRAIN "optim: {milestones: [160, 120]}\n", NULL, 0,
               "optim.milestones must be strictly ascending", NULL);
    load_fails(TRAIN "seed: -1\n", NULL, 0, "seed must be >= 0", NULL);
}

static void test_cross_field_errors(void **state)
{
    (void)state;
    load_fails(TRAIN "optim: {batch_size: 96}\n", NULL, 0,
               "moco.k (65536) must be a multiple of optim.batch_size (96): the queue takes "
               "whole batches of keys; choose e.g. moco.k=65472 or 65568", NULL);
    load_fails(TRAIN "moco: {k: 10}\noptim: {batch_size: 96}\n", NULL, 0, "moco.k=96", NULL);
    load_fails(TRAIN "moco: {bn_splits: 3}\n", NULL, 0, "moco.bn_splits (3)", NULL);
    load_fails(TRAIN "resources: {ranks: 3}\n", NULL, 0,
               "optim.batch_size (256) must be divisible by resources.ranks (3)", NULL);
    load_fails("kind: pretrain\n", NULL, 0, "data.train is required for kind pretrain", NULL);
    load_fails("kind: knn\ndata: {train: t}\n", NULL, 0, "data.val is required for kind knn",
               NULL);
    load_fails("data: {train: t}\neval: {knn: {every_epochs: 1}}\n", NULL, 0,
               "eval.knn.every_epochs is 1 but data.val is not set", NULL);
    load_fails("data: {train: t, image_size: 224, val_resize: 200}\n", NULL, 0,
               "data.val_resize (200) must be >= data.image_size (224)", NULL);
    load_fails(TRAIN "precision: bf16\n", NULL, 0, "precision bf16 needs GPUs", NULL);
}

/* ---- syntax ----------------------------------------------------------------------------- */

static void test_yaml_syntax_error_names_line(void **state)
{
    (void)state;
    load_fails("kind: pretrain\noptim:\n  lr: 0.1\n  epochs: [1, 2\n", NULL, 0, "job.yaml:",
               "YAML syntax error", NULL);
    char err[512];
    JobConfig c;
    write_cfg("kind: pretrain\nmodel:\n  dim: 5\n bad: 1\n");
    assert_int_equal(config_load(cfg_path, NULL, 0, &c, err, sizeof err), -1);
    char want[600];
    snprintf(want, sizeof want, "%s:4:", cfg_path);
    if (!strstr(err, want)) fail_msg("\"%s\" should point at line 4", err);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    load_fails(TRAIN "optim:\n  lr: 0.1\n  lr: 0.2\n", NULL, 0, "job.yaml:4:3",
               "duplicate key 'lr'", NULL);
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[512];
    JobConfig c;
    assert_int_equal(config_load("/nonexistent/job.yaml", NULL, 0, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/job.yaml"));
    assert_non_null(strstr(err, "No such file"));
}

static void test_scalar_typing(void **state)
{
    (void)state;
    JobConfig c;
    load_ok(TRAIN "optim: {weight_decay: 1.0e-4, lr: 1e-2, momentum: .5, epochs: 0x10}\n"
            "moco: {k: 0o4000, m: ~}\nseed: 007\nname: !!str 5\n", NULL, 0, &c);
    assert_true(c.optim.weight_decay == 1e-4);
    assert_true(c.optim.lr == 1e-2);
    assert_true(c.optim.momentum == 0.5);
    assert_int_equal(c.optim.epochs, 16);
    assert_int_equal(c.moco.k, 2048);
    assert_true(c.moco.m == 0.999); /* null means the default */
    assert_true(c.seed == 7);
    assert_non_null(strstr(c.resolved_json, "\"name\":\"5\""));
    config_free(&c);
}

static void test_anchors_and_aliases(void **state)
{
    (void)state;
    JobConfig c;
    load_ok("data: {train: &folder /data/same, val: *folder}\n", NULL, 0, &c);
    assert_string_equal(c.data.val, "/data/same");
    config_free(&c);
}

static void test_json_config(void **state)
{
    (void)state;
    JobConfig c;
    load_ok("{\"method\": \"moco_v1\", \"data\": {\"train\": \"/t\"},\n"
            " \"optim\": {\"lr\": 0.06, \"milestones\": [10, 20]}}\n", NULL, 0, &c);
    assert_int_equal(c.method, METHOD_MOCO_V1);
    assert_true(c.optim.lr == 0.06);
    assert_int_equal(c.optim.milestones[1], 20);
    config_free(&c);
    load_fails("{\"data\": {\"train\": \"/t\"},\n \"optim\": {\"lr\": }}\n", NULL, 0,
               "job.yaml:2:", "JSON syntax error", NULL);
    load_fails("{\"data\": {\"train\": \"/t\"}, \"optim\": {\"lr\": \"x\"}}", NULL, 0,
               "optim.lr must be a number", NULL);
}

/* ---- resolved JSON ---------------------------------------------------------------------- */

static void assert_same_config(const JobConfig *a, const JobConfig *b)
{
    JobConfig x, y;
    memcpy(&x, a, sizeof x); /* memcpy keeps padding bytes, which the loader zeroes */
    memcpy(&y, b, sizeof y);
    x.resolved_json = y.resolved_json = NULL;
    assert_memory_equal(&x, &y, sizeof x);
    assert_string_equal(a->resolved_json, b->resolved_json);
}

static void round_trip(const char *text, const char *const *sets, int n_sets)
{
    JobConfig a, b;
    char err[1024] = "";
    load_ok(text, sets, n_sets, &a);
    if (config_load_json(a.resolved_json, &b, err, sizeof err) != 0)
        fail_msg("resolved spec %s does not reload: %s", a.resolved_json, err);
    assert_same_config(&a, &b);
    config_free(&a);
    config_free(&b);
}

static void test_resolved_json_round_trip(void **state)
{
    (void)state;
    round_trip(TRAIN, NULL, 0);
    round_trip("method: moco_v1\nname: my run\n" TRAIN "optim: {lr: 0.123456789012345678}\n",
               NULL, 0);
    round_trip("kind: lincls\nmodel: {pretrained: ck.safetensors}\n" TRAIN
               "resources: {gpus: 4}\nseed: 9007199254740992\n", NULL, 0);
    const char *sets[] = {"optim.milestones=[1,2,3,4]", "moco.m=0.99", "eval.knn.every_epochs=1"};
    round_trip(TRAIN, sets, 3);

    JobConfig c;
    load_ok(TRAIN, NULL, 0, &c);
    assert_non_null(strstr(c.resolved_json, "\"optim\":{\"lr\":0.03,"));
    assert_non_null(strstr(c.resolved_json, "\"precision\":\"fp32\""));
    config_free(&c);

    char err[512];
    assert_int_equal(config_load_json("{\"data\": {\"train\": 5}}", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "data.train must be a string"));
    assert_int_equal(config_load_json("{nope", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "syntax error"));
}

/* ---- the shipped recipes ---------------------------------------------------------------- */

static void test_every_recipe_loads(void **state)
{
    (void)state;
    DIR *d = opendir("configs");
    if (!d) fail_msg("configs/ not found: run the tests from the repository root");
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
        char path[512], err[1024] = "";
        snprintf(path, sizeof path, "configs/%s", e->d_name);
        JobConfig c;
        if (config_load(path, NULL, 0, &c, err, sizeof err) != 0)
            fail_msg("recipe %s does not load: %s", path, err);
        JobConfig again;
        if (config_load_json(c.resolved_json, &again, err, sizeof err) != 0)
            fail_msg("recipe %s: resolved spec does not reload: %s", path, err);
        assert_same_config(&c, &again);
        config_free(&again);
        config_free(&c);
        loaded++;
    }
    closedir(d);
    assert_true(loaded >= 4);
}

static void test_recipe_values(void **state)
{
    (void)state;
    char err[1024] = "";
    JobConfig c;
    assert_int_equal(config_load("configs/moco_v2_r18_cifar10.yaml", NULL, 0, &c, err,
                                 sizeof err), 0);
    assert_string_equal(c.model.arch, "resnet18");
    assert_int_equal(c.model.cifar_stem, 1);
    assert_int_equal(c.model.mlp, 0);
    assert_true(c.optim.lr == 0.06);
    assert_int_equal(c.optim.batch_size, 512);
    assert_true(c.optim.weight_decay == 5e-4);
    assert_int_equal(c.moco.k, 4096);
    assert_true(c.moco.m == 0.99);
    assert_true(c.moco.t == 0.1);
    assert_int_equal(c.optim.schedule, SCHEDULE_COS);
    assert_int_equal(c.optim.epochs, 200);
    assert_int_equal(c.moco.bn_splits, 8);
    assert_int_equal(c.eval.knn_every_epochs, 1);
    config_free(&c);

    assert_int_equal(config_load("configs/demo_moco_v2_cifar10_small.yaml", NULL, 0, &c, err,
                                 sizeof err), 0);
    assert_int_equal(c.method, METHOD_MOCO_V2);
    assert_int_equal(c.moco.k % c.optim.batch_size, 0);
    assert_string_equal(c.data.train, "datasets/cifar10-small/train");
    assert_string_equal(c.precision, "fp32");
    config_free(&c);

    assert_int_equal(config_load("configs/moco_v1_r50_in1k.yaml", NULL, 0, &c, err, sizeof err),
                     0);
    assert_int_equal(c.method, METHOD_MOCO_V1);
    assert_int_equal(c.model.mlp, 0);
    assert_true(c.moco.t == 0.07);
    assert_int_equal(c.optim.schedule, SCHEDULE_STEP);
    assert_int_equal(c.resources.gpus, 8);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_official_ones),
        cmocka_unit_test(test_dependent_defaults),
        cmocka_unit_test(test_data_optional_for_align_and_bench),
        cmocka_unit_test(test_moco_v1_preset),
        cmocka_unit_test(test_explicit_fields_beat_the_preset),
        cmocka_unit_test(test_lincls_defaults_follow_main_lincls),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_override_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_range_errors),
        cmocka_unit_test(test_cross_field_errors),
        cmocka_unit_test(test_yaml_syntax_error_names_line),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_scalar_typing),
        cmocka_unit_test(test_anchors_and_aliases),
        cmocka_unit_test(test_json_config),
        cmocka_unit_test(test_resolved_json_round_trip),
        cmocka_unit_test(test_every_recipe_loads),
        cmocka_unit_test(test_recipe_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

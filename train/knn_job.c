/* knn_job.c — `moco-train knn`: loads a pretrained backbone (a mocod checkpoint, a backbone
 * export or a file converted from PyTorch) into a head-less ResNet of cfg->model, then runs
 * one kNN evaluation (knn_eval.h): bank data.train, queries data.val. */
#include "train/knn_job.h"

#include <cjson/cJSON.h>
#include <stdio.h>

#include "common/error.h"
#include "data/folder.h"
#include "kernels/kernels.h"
#include "train/config.h"
#include "train/events.h"
#include "train/knn_eval.h"
#include "train/params.h"
#include "train/pretrained.h"
#include "train/resnet.h"

static void open_folder(const char *key, const char *root, ImageFolder *f)
{
    char err[1024];
    if (image_folder_open(root, f, err, sizeof err) != 0) die("%s: %s", key, err);
}

int knn_job_main(const CliArgs *args)
{
    char err[2048];
    events_open(args->events_fd);
    /* Any recipe will do (typically the pretraining config, whose data.train and data.val
     * are the bank and the queries): the command decides that the job is a kNN evaluation. */
    const char *sets[CLI_MAX_SETS + 1];
    for (int i = 0; i < args->n_sets; i++) sets[i] = args->sets[i];
    sets[args->n_sets] = "kind=knn";
    JobConfig cfg;
    if (config_load(args->config, sets, args->n_sets + 1, &cfg, err, sizeof err) != 0)
        die("%s", err);
    const char *ckpt = args->checkpoint ? args->checkpoint
                       : cfg.model.pretrained[0] ? cfg.model.pretrained : NULL;
    if (!ckpt)
        die("knn needs the backbone to evaluate: --checkpoint CKPT, or model.pretrained in the "
            "config (a pretraining checkpoint, a backbone export or a converted PyTorch file)");
    kernels_set_threads(cfg.resources.threads);

    ImageFolder train, val;
    open_folder("data.train", cfg.data.train, &train);
    open_folder("data.val", cfg.data.val, &val);
    int depth = resnet_depth_from_arch(cfg.model.arch);
    if (!depth) die("model.arch '%s' is not supported (resnet18, resnet34, resnet50)", cfg.model.arch);
    knn_eval_check(&train, &val, depth == 50 ? 2048 : 512,
                   "evaluate on smaller folders (data.train is the bank, data.val the queries)");

    const int batch = cfg.optim.batch_size;
    ResnetConfig rc = {
        .depth = depth, .cifar_stem = cfg.model.cifar_stem, .head = HEAD_NONE, .out_dim = 0,
        .bn_splits = 1, .image_size = cfg.data.image_size, .max_batch = batch,
        .memory = RESNET_FORWARD_ONLY,
    };
    ParamSet ps;
    params_init(&ps);
    Resnet *net = resnet_create(&rc, &ps);
    params_finalize(&ps);
    if (pretrained_load_backbone(ckpt, &ps, err, sizeof err) != 0)
        die("%s %s: %s", args->checkpoint ? "--checkpoint" : "model.pretrained", ckpt, err);

    cJSON *start = event_new("start");
    cJSON_AddStringToObject(start, "job", "knn");
    cJSON_AddStringToObject(start, "checkpoint", ckpt);
    cJSON_AddNumberToObject(start, "images", train.count);
    cJSON_AddNumberToObject(start, "queries", val.count);
    cJSON_AddNumberToObject(start, "classes", train.num_classes);
    cJSON_AddStringToObject(start, "backend", kernels_backend_name());
    events_emit(start);
    fprintf(stderr, "knn: %s%s backbone from %s; bank: %d data.train images in %d classes, "
            "queries: %d data.val images, k %d, t %g, backend %s\n", cfg.model.arch,
            cfg.model.cifar_stem ? " (CIFAR stem)" : "", ckpt, train.count, train.num_classes,
            val.count, cfg.eval.knn_k, cfg.eval.knn_t, kernels_backend_name());

    KnnResult r = knn_evaluate(net, &cfg, &train, &val, batch);
    knn_report(&r, &cfg, "");
    cJSON *done = event_new("done");
    cJSON_AddStringToObject(done, "status", "completed");
    events_emit(done);

    resnet_destroy(net);
    params_free(&ps);
    image_folder_free(&train);
    image_folder_free(&val);
    config_free(&cfg);
    return 0;
}

/* knn_eval.c — bank, queries, prediction and report of one kNN evaluation (see knn_eval.h). */
#include "train/knn_eval.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "train/accuracy.h"
#include "train/events.h"
#include "train/features.h"
#include "train/progress.h"

/* Labels are indices into each folder's own sorted class list, so a val folder that lacks a
 * class (or has one more) numbers its classes differently from the train folder: map by
 * name. Returns map[val class] = train class, or -1 for a val class absent from train. */
static int *class_map(const ImageFolder *train, const ImageFolder *val)
{
    int *map = xmalloc((size_t)(val->num_classes > 0 ? val->num_classes : 1) * sizeof(int));
    for (int v = 0; v < val->num_classes; v++) {
        map[v] = -1;
        for (int c = 0; c < train->num_classes; c++)
            if (strcmp(val->classes[v], train->classes[c]) == 0) map[v] = c;
    }
    return map;
}

void knn_eval_check(const ImageFolder *train, const ImageFolder *val, int dim, const char *fix)
{
    char err[1024];
    if (features_check_memory(train->count, val->count, dim, features_memory_budget(), fix, err,
                              sizeof err) != 0)
        die("%s", err);
    int *map = class_map(train, val);
    for (int i = 0; i < val->count; i++)
        if (map[val->labels[i]] < 0)
            die("data.val (%s) has images of class '%s', which data.train (%s) does not have: "
                "kNN predicts only the training classes; remove that folder from data.val or "
                "add it to data.train", val->root, val->classes[val->labels[i]], train->root);
    free(map);
}

KnnResult knn_evaluate(Resnet *net, const JobConfig *cfg, const ImageFolder *train,
                       const ImageFolder *val, int batch)
{
    double start = wall_time();
    AugConfig aug = aug_config_make(AUG_EVAL, cfg->data.image_size);
    aug.resize_to = cfg->data.val_resize;
    FeatureSource bank_src = {"data.train", train, aug, batch, cfg->data.workers};
    FeatureSource query_src = {"data.val", val, aug, batch, cfg->data.workers};
    int32_t *bank_labels, *query_labels;
    int n_bank, n_q; /* readable images: unreadable files are left out (features.h) */
    KnnResult r = {0};
    float *bank = features_extract(net, &bank_src, &bank_labels, &n_bank);
    float *queries = bank ? features_extract(net, &query_src, &query_labels, &n_q) : NULL;
    if (!queries) { /* stopped by a signal */
        if (bank) { free(bank); free(bank_labels); }
        r.interrupted = 1;
        return r;
    }

    int *map = class_map(train, val);
    for (int i = 0; i < n_q; i++) {
        if (map[query_labels[i]] < 0) die("data.val class '%s' is not a data.train class",
                                          val->classes[query_labels[i]]);
        query_labels[i] = map[query_labels[i]];
    }
    free(map);

    const int classes = train->num_classes, dim = resnet_feature_dim(net);
    int32_t *top = xmalloc((size_t)n_q * knn_top_n(classes) * sizeof(int32_t));
    knn_predict(bank, bank_labels, n_bank, queries, n_q, dim, classes,
                cfg->eval.knn_k, (float)cfg->eval.knn_t, top);
    KnnCounts c = knn_count(top, query_labels, n_q, classes);

    r.n_bank = n_bank;
    r.n_queries = n_q;
    r.k = cfg->eval.knn_k < n_bank ? cfg->eval.knn_k : n_bank;
    /* top-5 of fewer than 5 classes is undefined: NAN, null in events (train/accuracy.h) */
    r.top1 = accuracy_percent(c.correct1, c.n);
    r.top5 = accuracy_percent(c.has_top5 ? c.correct5 : ACCURACY_UNDEFINED, c.n);
    if (!c.has_top5) accuracy_warn_undefined("kNN", 5, classes);
    r.seconds = wall_time() - start;
    free(top);
    free(bank);
    free(queries);
    free(bank_labels);
    free(query_labels);
    return r;
}

void knn_report(const KnnResult *r, const JobConfig *cfg, const char *prefix)
{
    cJSON *e = event_new("eval");
    cJSON_AddStringToObject(e, "eval", "knn");
    accuracy_add_to_event(e, "top1", r->top1);
    accuracy_add_to_event(e, "top5", r->top5);
    cJSON_AddNumberToObject(e, "k", r->k);
    cJSON_AddNumberToObject(e, "t", cfg->eval.knn_t);
    cJSON_AddNumberToObject(e, "bank", r->n_bank);
    cJSON_AddNumberToObject(e, "queries", r->n_queries);
    events_emit(e);

    char top5[32], took[32];
    if (!isnan(r->top5)) snprintf(top5, sizeof top5, "%.2f", r->top5);
    else snprintf(top5, sizeof top5, "n/a");
    format_duration(r->seconds, took, sizeof took);
    fprintf(stderr, "%sknn top1 %.2f top5 %s (k %d, t %g, %d bank images, %d queries) in %s\n",
            prefix, r->top1, top5, r->k, cfg->eval.knn_t, r->n_bank, r->n_queries, took);
    fflush(stderr);
}

/* knn_eval.h — one kNN evaluation of a network, as the official CIFAR-10 demo's test():
 * the bank is the features of every data.train image, the queries those of data.val, both
 * through the evaluation transform (data.val_resize, center crop data.image_size) and the
 * eval-mode backbone; each query is classified by knn_predict with eval.knn.k and .t.
 * Shared by the monitor in pretraining and `moco-train knn`.
 */
#ifndef MOCO_KNN_EVAL_H
#define MOCO_KNN_EVAL_H

#include "data/folder.h"
#include "train/config.h"
#include "train/knn.h"
#include "train/resnet.h"

typedef struct {
    double top1, top5;      /* percent of the queries; top5 NAN with fewer than 5 classes */
    int k;                  /* neighbours actually used (eval.knn.k, at most the bank size) */
    int n_bank, n_queries;
    double seconds;
    int interrupted;        /* a stop signal (stop_signal.h) cut the evaluation short: no result */
} KnnResult;

/* Refuses (dies with a message naming data.train, data.val and `fix`) when the features of
 * both folders would not fit in features_memory_budget(); call it before the job starts.
 * Also checks that every data.val class with images is a data.train class. */
void knn_eval_check(const ImageFolder *train, const ImageFolder *val, int dim, const char *fix);

/* Runs the evaluation with batches of `batch` images (<= the network's max_batch). */
KnnResult knn_evaluate(Resnet *net, const JobConfig *cfg, const ImageFolder *train,
                       const ImageFolder *val, int batch);

/* The `eval` event {eval: "knn", top1, top5 (null without top5), k, t, bank, queries} and
 * the stderr line "<prefix>knn top1 X top5 Y (k K, t T, N bank images, M queries) in <time>". */
void knn_report(const KnnResult *r, const JobConfig *cfg, const char *prefix);

#endif

/* knn.h — the weighted k-nearest-neighbour classifier of the official MoCo CIFAR-10 demo
 * (colab/moco_cifar10_demo.ipynb, knn_predict), used by the kNN monitor and `moco-train knn`.
 *
 * For each query (rows L2-normalized, so a dot product is the cosine similarity):
 *   sim = query · bankᵀ; the k most similar bank entries; weight exp(sim / t) each;
 *   class score = sum of the weights of the neighbours of that class;
 *   prediction = classes ordered by score, best first.
 * Ties, which the demo leaves to torch.topk / argsort, are fixed here: among equal
 * similarities the lower bank index is the nearer neighbour, and among equal scores the lower
 * class index ranks first (what torch.sort(stable=True) of the negated values gives).
 */
#ifndef MOCO_KNN_H
#define MOCO_KNN_H

#include <stdint.h>

/* Predictions kept per query: the top 5, or every class when there are fewer. */
static inline int knn_top_n(int classes) { return classes < 5 ? classes : 5; }

/* bank [n_bank, dim], bank_labels [n_bank] in [0, classes), queries [n_q, dim], row-major.
 * top_out [n_q, knn_top_n(classes)]: class indices, best first. k > n_bank uses the whole
 * bank. Dies on a label outside [0, classes) (a caller's bug, not bad input). */
void knn_predict(const float *bank, const int32_t *bank_labels, int n_bank,
                 const float *queries, int n_q, int dim, int classes, int k, float t,
                 int32_t *top_out);

typedef struct {
    int n;          /* queries */
    int correct1;   /* true class ranked first */
    int correct5;   /* true class among the first five; counted only when has_top5 */
    int has_top5;   /* 0 when there are fewer than 5 classes: top-5 is then undefined */
} KnnCounts;

/* Counts hits of top [n_q, knn_top_n(classes)] against labels [n_q]. */
KnnCounts knn_count(const int32_t *top, const int32_t *labels, int n_q, int classes);

#endif

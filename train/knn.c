/* knn.c — the demo's weighted kNN classifier (see knn.h), blocked over queries.
 *
 * Memory stays bounded whatever the bank size: queries go through in blocks whose similarity
 * tile [block, n_bank] fits KNN_TILE_BYTES, the tile comes from one sgemm, and each query's
 * row is then scanned by one OpenMP thread keeping its k best in a small heap.
 */
#include "train/knn.h"

#include <math.h>
#include <stdlib.h>

#include "common/error.h"
#include "kernels/kernels.h"

/* Size of one block's similarity tile: large enough that the sgemm runs at full speed,
 * small beside a bank (1.28M ImageNet images x 4 bytes = 5 MB a row). */
#define KNN_TILE_BYTES ((size_t)64 << 20)

typedef struct {
    float sim;
    int32_t idx;
} Neighbour;

/* A NaN similarity (a diverged model) ranks below everything rather than poisoning the
 * comparisons. */
static float rank_key(float s) { return isnan(s) ? -INFINITY : s; }

/* a is a worse neighbour than b: less similar, or as similar and later in the bank. */
static int worse(const Neighbour *a, const Neighbour *b)
{
    float sa = rank_key(a->sim), sb = rank_key(b->sim);
    return sa < sb || (sa == sb && a->idx > b->idx);
}

/* Min-heap on "worse": the root is the worst neighbour kept so far. */
static void sift_down(Neighbour *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(&h[l], &h[w])) w = l;
        if (r < n && worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        Neighbour t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(Neighbour *h, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!worse(&h[i], &h[p])) return;
        Neighbour t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static int better_first(const void *pa, const void *pb)
{
    const Neighbour *a = pa, *b = pb;
    return worse(b, a) ? -1 : worse(a, b) ? 1 : 0;
}

/* The k nearest of one similarity row, best first, ties to the lower bank index. The bank is
 * scanned in index order, so a later entry with the same similarity as the worst kept one
 * never displaces it: only a strictly more similar one does. */
static void nearest(const float *sim, int n_bank, int k, Neighbour *heap)
{
    int n = 0;
    for (int j = 0; j < n_bank; j++) {
        Neighbour c = {sim[j], j};
        if (n < k) {
            heap[n] = c;
            sift_up(heap, n++);
        } else if (worse(&heap[0], &c)) {
            heap[0] = c;
            sift_down(heap, k, 0);
        }
    }
    qsort(heap, (size_t)k, sizeof *heap, better_first);
}

/* Class a ranks before class b: higher score, or equal score and lower index. */
static int ranks_before(const float *score, int a, int b)
{
    float sa = rank_key(score[a]), sb = rank_key(score[b]);
    return sa > sb || (sa == sb && a < b);
}

/* The top_n classes by score into out, best first (selection: top_n <= 5). */
static void top_classes(const float *score, int classes, int top_n, int32_t *out)
{
    for (int r = 0; r < top_n; r++) {
        int best = -1;
        for (int c = 0; c < classes; c++) {
            int taken = 0;
            for (int s = 0; s < r; s++) taken |= out[s] == c;
            if (!taken && (best < 0 || ranks_before(score, c, best))) best = c;
        }
        out[r] = best;
    }
}

void knn_predict(const float *bank, const int32_t *bank_labels, int n_bank,
                 const float *queries, int n_q, int dim, int classes, int k, float t,
                 int32_t *top_out)
{
    if (n_bank < 1 || n_q < 0 || dim < 1 || classes < 1 || k < 1 || !(t > 0))
        die("knn_predict: bad arguments (bank %d, queries %d, dim %d, classes %d, k %d, t %g)",
            n_bank, n_q, dim, classes, k, (double)t);
    for (int j = 0; j < n_bank; j++)
        if (bank_labels[j] < 0 || bank_labels[j] >= classes)
            die("knn_predict: bank label %d at %d is outside 0..%d", bank_labels[j], j,
                classes - 1);
    /* The demo's topk would fail with k > bank size; the whole bank is the natural meaning
     * (a small folder, or a test run with the default k = 200). */
    if (k > n_bank) k = n_bank;
    const int top_n = knn_top_n(classes);
    if (n_q == 0) return;

    size_t rows = KNN_TILE_BYTES / ((size_t)n_bank * sizeof(float));
    if (rows < 1) rows = 1;
    if (rows > (size_t)n_q) rows = (size_t)n_q;
    float *tile = xmalloc(rows * (size_t)n_bank * sizeof(float));

    for (int q0 = 0; q0 < n_q; q0 += (int)rows) {
        int nb = n_q - q0 < (int)rows ? n_q - q0 : (int)rows;
        /* tile[i, j] = query_i · bank_j */
        gemm(0, 1, nb, n_bank, dim, 1.0f, queries + (size_t)q0 * dim, dim, bank, dim, 0.0f,
             tile, n_bank);
#pragma omp parallel
        {
            Neighbour *heap = xmalloc((size_t)k * sizeof *heap);
            float *score = xmalloc((size_t)classes * sizeof *score);
#pragma omp for schedule(dynamic, 4)
            for (int i = 0; i < nb; i++) {
                nearest(tile + (size_t)i * n_bank, n_bank, k, heap);
                for (int c = 0; c < classes; c++) score[c] = 0.0f;
                /* exp(sim / t) overflows float32 past sim / t = 88 (t below about 0.011 for
                 * unit features), making every score inf. Only then are the weights divided by
                 * exp(max sim / t), which leaves the ranking as it is; otherwise the demo's
                 * numbers exactly. */
                float top_sim = heap[0].sim;
                for (int r = 1; r < k; r++) top_sim = fmaxf(top_sim, heap[r].sim);
                float shift = top_sim / t > 80.0f ? top_sim : 0.0f;
                /* float32 sums in neighbour order, as the demo's one-hot product summed */
                for (int r = 0; r < k; r++)
                    score[bank_labels[heap[r].idx]] += expf((heap[r].sim - shift) / t);
                top_classes(score, classes, top_n, top_out + (size_t)(q0 + i) * top_n);
            }
            free(score);
            free(heap);
        }
    }
    free(tile);
}

KnnCounts knn_count(const int32_t *top, const int32_t *labels, int n_q, int classes)
{
    const int top_n = knn_top_n(classes);
    KnnCounts c = {n_q, 0, 0, classes >= 5};
    for (int i = 0; i < n_q; i++) {
        const int32_t *row = top + (size_t)i * top_n;
        c.correct1 += row[0] == labels[i];
        if (c.has_top5)
            for (int r = 0; r < 5; r++) c.correct5 += row[r] == labels[i];
    }
    return c;
}

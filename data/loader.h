/* loader.h — the threaded, prefetching batch loader.
 *
 * Worker threads decode and augment the samples of upcoming batches into a ring of batch
 * buffers. Sample order per epoch is a permutation drawn from (seed, epoch) — the same on every
 * rank — sharded as PyTorch's DistributedSampler does (padded to a multiple of world, rank r
 * takes every world-th index starting at r) with drop_last. The randomness of each view is the
 * stream (seed, epoch, sample index, view), so thread count never changes a batch.
 *
 * An unreadable image is named in a warning on stderr with the reason (once per file) and
 * replaced by the next readable sample of the epoch order; the replacement's views still use
 * the stream of the position's own sample. loader_skipped() counts the replaced positions of
 * the batches returned so far this epoch. If no file at all is readable, moco-train dies naming
 * the folder.
 */
#ifndef MOCO_LOADER_H
#define MOCO_LOADER_H

#include "data/augment.h"
#include "data/folder.h"

typedef struct {
    const ImageFolder *folder;
    AugConfig aug;
    int views;          /* 2 for MoCo pretraining (two independent views), 1 otherwise */
    int batch_size;     /* per-rank batch */
    int workers;        /* decode threads; 0 = decode on the calling thread */
    int prefetch;       /* batches decoded ahead, >= 1 */
    int shuffle;        /* 0: dataset order (evaluation) */
    int drop_last;
    /* Evaluation (kNN, validation): an unreadable file is left out — its batch comes back
     * smaller (an all-unreadable batch is passed over) — instead of being replaced by the next
     * readable image, which would count that image twice. */
    int eval_skip_unreadable;
    uint64_t seed;
    int rank, world;
} LoaderConfig;

typedef struct {
    int size;           /* samples in this batch (== batch_size unless the last, partial one) */
    int index;          /* batch index within the epoch */
    float *view[2];     /* [size, h, w, 3] normalized NHWC; view[1] NULL when views == 1 */
    int32_t *labels;    /* [size] */
    int32_t *sample;    /* [size] dataset index of each sample */
} Batch;

typedef struct Loader Loader;

/* The epoch permutation is drawn from the stream (seed, epoch, 0, LOADER_PERM_STREAM), kept
 * apart from the view streams (seed, epoch, sample, view) whose last coordinate is 0 or 1. */
#define LOADER_PERM_STREAM 0xFFFFFFFFu

Loader *loader_create(const LoaderConfig *cfg);
void loader_destroy(Loader *l);
int loader_batches_per_epoch(const Loader *l);
/* Begin an epoch at batch first_batch (non-zero when resuming mid-epoch). */
void loader_start_epoch(Loader *l, int epoch, int first_batch);
/* Next batch of the epoch, or NULL at its end. Valid until the next call. */
const Batch *loader_next(Loader *l);
/* Unreadable files met so far in the current epoch. */
int loader_skipped(const Loader *l);

#endif

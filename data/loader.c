/* loader.c — worker threads fill a ring of batch buffers, sample by sample, ahead of the
 * training loop.
 *
 * Work unit: one sample position of the rank's epoch (decode once, augment every view), so
 * all workers help with the batch the trainer waits for next. Batch b lives in ring slot
 * b % (prefetch + 1); workers may start batch b once b < next_return + prefetch, i.e. once the
 * batch that last used its slot has been given back (the trainer holds one batch between calls).
 *
 * Determinism: which file fills a position and every random draw of its views depend only on
 * (seed, epoch, position), never on which thread ran it or when.
 */
#include "data/loader.h"
#include "common/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    Batch batch;
    int remaining;  /* samples still being produced; 0 = ready */
    int skipped;    /* positions whose own file was unreadable */
} Slot;

struct Loader {
    LoaderConfig cfg;
    int n;              /* dataset size */
    int per_rank;       /* positions per rank (DistributedSampler's num_samples) */
    int positions;      /* positions actually used this epoch (drop_last trims) */
    int batches;
    size_t view_floats; /* floats per view of one sample */
    int32_t *perm;      /* [n] epoch order of dataset indices */
    unsigned char *bad; /* [n] known unreadable (set atomically; warnings once per file) */
    int epoch;
    Slot *ring;
    int ring_len;

    pthread_mutex_t mu;
    pthread_cond_t work;  /* workers wait here for tasks */
    pthread_cond_t done;  /* the trainer (and start_epoch) wait here */
    pthread_t *threads;
    int active;           /* tasks may be handed out */
    int stop;
    int next_task;        /* next position to hand out */
    int next_return;      /* next batch index loader_next returns */
    int inflight;
    int skipped;          /* this epoch, over the batches returned so far */
};

int loader_batches_per_epoch(const Loader *l) { return l->batches; }
int loader_skipped(const Loader *l) { return l->skipped; }

static int batch_size_of(const Loader *l, int b)
{
    int start = b * l->cfg.batch_size, left = l->positions - start;
    return left < l->cfg.batch_size ? left : l->cfg.batch_size;
}

/* Decode the file of a position, walking forward through the epoch order past unreadable
 * files. Returns 1 when the position's own file was unreadable. */
static int load_position(Loader *l, int pos, Image8 *img, int *index)
{
    const ImageFolder *f = l->cfg.folder;
    long g = (long)l->cfg.rank + (long)pos * l->cfg.world; /* position in the padded order */
    int own_bad = 0;
    /* Evaluation looks at the position's own file only (see LoaderConfig.eval_skip_unreadable). */
    int tries = l->cfg.eval_skip_unreadable ? 1 : l->n;
    for (int k = 0; k < tries; k++) {
        int j = l->perm[(g + k) % l->n];
        if (!__atomic_load_n(&l->bad[j], __ATOMIC_RELAXED)) {
            char err[512];
            if (image_decode_file(f->paths[j], img, err, sizeof err) == 0) {
                *index = j;
                return own_bad;
            }
            if (__atomic_exchange_n(&l->bad[j], 1, __ATOMIC_RELAXED) == 0) {
                flockfile(stderr); /* warn() writes in pieces; keep workers' lines whole */
                warn("skipping unreadable image '%s': %s", f->paths[j], err);
                funlockfile(stderr);
            }
        }
        if (k == 0) own_bad = 1;
    }
    if (l->cfg.eval_skip_unreadable) {
        *index = -1;
        return 1;
    }
    /* Every worker reaches this at once when no file is readable; one reports and exits, the
     * others wait for the exit instead of printing the same error and racing into exit(). */
    static int reported;
    if (__atomic_exchange_n(&reported, 1, __ATOMIC_ACQ_REL))
        for (;;) pause();
    die("no readable image among the %d files of image folder '%s'", l->n, f->root);
}

/* Produce sample `pos` of the epoch into its batch slot; returns 1 if it was a replacement. */
static int produce(Loader *l, int pos)
{
    int b = pos / l->cfg.batch_size, i = pos % l->cfg.batch_size;
    Batch *batch = &l->ring[b % l->ring_len].batch;
    Image8 img;
    int j;
    int replaced = load_position(l, pos, &img, &j);
    if (j < 0) { /* evaluation: left out by loader_next, which compacts the batch */
        for (int v = 0; v < l->cfg.views; v++)
            memset(batch->view[v] + (size_t)i * l->view_floats, 0, l->view_floats * sizeof(float));
        batch->labels[i] = -1;
        batch->sample[i] = -1;
        return 1;
    }
    /* Streams are keyed by the position's own sample, so a replacement that also appears
     * elsewhere in the epoch gets different views there. */
    int own = l->perm[((long)l->cfg.rank + (long)pos * l->cfg.world) % l->n];
    for (int v = 0; v < l->cfg.views; v++) {
        Rng rng;
        rng_init(&rng, l->cfg.seed, (uint64_t)l->epoch, (uint64_t)own, (uint64_t)v);
        augment_view(&img, &l->cfg.aug, &rng, batch->view[v] + (size_t)i * l->view_floats);
    }
    batch->labels[i] = l->cfg.folder->labels[j];
    batch->sample[i] = j;
    image_free(&img);
    return replaced;
}

/* Claim slot b for batch b (called with the lock held, or single-threaded). */
static void slot_begin(Loader *l, int b)
{
    Slot *s = &l->ring[b % l->ring_len];
    s->batch.index = b;
    s->batch.size = batch_size_of(l, b);
    s->remaining = s->batch.size;
    s->skipped = 0;
}

static void *worker_main(void *arg)
{
    Loader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int pos = l->next_task;
        if (!l->active || pos >= l->positions ||
            pos / l->cfg.batch_size >= l->next_return + l->cfg.prefetch) {
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        int b = pos / l->cfg.batch_size;
        if (pos % l->cfg.batch_size == 0) slot_begin(l, b);
        l->next_task++;
        l->inflight++;
        pthread_mutex_unlock(&l->mu);
        int replaced = produce(l, pos);
        pthread_mutex_lock(&l->mu);
        Slot *s = &l->ring[b % l->ring_len];
        s->skipped += replaced;
        l->inflight--;
        if (--s->remaining == 0 || l->inflight == 0) pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void check(int rc, const char *what)
{
    if (rc != 0) die("loader: %s failed (error %d)", what, rc);
}

Loader *loader_create(const LoaderConfig *cfg)
{
    if (!cfg->folder || cfg->folder->count <= 0) die("loader: empty image folder");
    if (cfg->batch_size <= 0 || cfg->views < 1 || cfg->views > 2 || cfg->world < 1 ||
        cfg->rank < 0 || cfg->rank >= cfg->world || cfg->workers < 0)
        die("loader: invalid configuration (batch %d, views %d, rank %d of %d, workers %d)",
            cfg->batch_size, cfg->views, cfg->rank, cfg->world, cfg->workers);
    Loader *l = xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    if (l->cfg.prefetch < 1) l->cfg.prefetch = 1;
    l->n = cfg->folder->count;
    l->per_rank = (l->n + cfg->world - 1) / cfg->world;
    l->batches = cfg->drop_last ? l->per_rank / cfg->batch_size
                                : (l->per_rank + cfg->batch_size - 1) / cfg->batch_size;
    l->positions = cfg->drop_last ? l->batches * cfg->batch_size : l->per_rank;
    l->view_floats = (size_t)cfg->aug.size * cfg->aug.size * 3;
    l->perm = xmalloc(sizeof(int32_t) * l->n);
    l->bad = xcalloc(l->n, 1);
    l->ring_len = l->cfg.prefetch + 1;
    l->ring = xcalloc(l->ring_len, sizeof(Slot));
    for (int r = 0; r < l->ring_len; r++) {
        Batch *b = &l->ring[r].batch;
        b->index = -1;
        for (int v = 0; v < cfg->views; v++)
            b->view[v] = xaligned_alloc(sizeof(float) * l->view_floats * cfg->batch_size);
        b->labels = xcalloc(cfg->batch_size, sizeof(int32_t));
        b->sample = xcalloc(cfg->batch_size, sizeof(int32_t));
    }
    check(pthread_mutex_init(&l->mu, NULL), "pthread_mutex_init");
    check(pthread_cond_init(&l->work, NULL), "pthread_cond_init");
    check(pthread_cond_init(&l->done, NULL), "pthread_cond_init");
    l->threads = xcalloc(cfg->workers ? cfg->workers : 1, sizeof(pthread_t));
    for (int t = 0; t < cfg->workers; t++)
        check(pthread_create(&l->threads[t], NULL, worker_main, l), "pthread_create");
    return l;
}

void loader_destroy(Loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->cfg.workers; t++) check(pthread_join(l->threads[t], NULL), "pthread_join");
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    for (int r = 0; r < l->ring_len; r++) {
        Batch *b = &l->ring[r].batch;
        free(b->view[0]);
        free(b->view[1]);
        free(b->labels);
        free(b->sample);
    }
    free(l->ring);
    free(l->threads);
    free(l->perm);
    free(l->bad);
    free(l);
}

void loader_start_epoch(Loader *l, int epoch, int first_batch)
{
    pthread_mutex_lock(&l->mu);
    l->active = 0; /* let in-flight samples of the old epoch land before reusing the ring */
    while (l->inflight > 0) pthread_cond_wait(&l->done, &l->mu);
    l->epoch = epoch;
    if (l->cfg.shuffle) {
        /* The same permutation on every rank; its stream is apart from every view's. */
        Rng rng;
        rng_init(&rng, l->cfg.seed, (uint64_t)epoch, 0, LOADER_PERM_STREAM);
        rng_permutation(&rng, l->n, l->perm);
    } else {
        for (int i = 0; i < l->n; i++) l->perm[i] = i;
    }
    if (first_batch < 0) first_batch = 0;
    if (first_batch > l->batches) first_batch = l->batches;
    l->next_return = first_batch;
    l->next_task = first_batch * l->cfg.batch_size;
    l->skipped = 0;
    for (int r = 0; r < l->ring_len; r++) l->ring[r].batch.index = -1;
    l->active = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
}

const Batch *loader_next(Loader *l)
{
    if (!l->active || l->next_return >= l->batches) return NULL;
    int b = l->next_return;
    Slot *s = &l->ring[b % l->ring_len];
    if (l->cfg.workers == 0) {
        l->next_return++;
        slot_begin(l, b);
        for (int i = 0; i < s->batch.size; i++) s->skipped += produce(l, b * l->cfg.batch_size + i);
        s->remaining = 0;
        l->next_task = (b + 1) * l->cfg.batch_size;
    } else {
        pthread_mutex_lock(&l->mu);
        l->next_return++; /* releases the slot of the batch handed out last time */
        pthread_cond_broadcast(&l->work);
        while (s->batch.index != b || s->remaining > 0) pthread_cond_wait(&l->done, &l->mu);
        pthread_mutex_unlock(&l->mu);
    }
    l->skipped += s->skipped;
    if (l->cfg.eval_skip_unreadable && s->skipped > 0) {
        /* Move the readable rows together; an all-unreadable batch is passed over. */
        Batch *bt = &s->batch;
        int kept = 0;
        for (int i = 0; i < bt->size; i++) {
            if (bt->sample[i] < 0) continue;
            if (kept != i) {
                for (int v = 0; v < l->cfg.views; v++)
                    memcpy(bt->view[v] + (size_t)kept * l->view_floats,
                           bt->view[v] + (size_t)i * l->view_floats, l->view_floats * sizeof(float));
                bt->labels[kept] = bt->labels[i];
                bt->sample[kept] = bt->sample[i];
            }
            kept++;
        }
        bt->size = kept;
        if (kept == 0) return loader_next(l);
    }
    return &s->batch;
}

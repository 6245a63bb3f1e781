/* features.c — backbone features of an image folder for kNN (see features.h). */
#include "train/features.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "data/loader.h"
#include "kernels/kernels.h"
#include "train/events.h"
#include "train/progress.h"
#include "train/stop_signal.h"

float *features_extract(Resnet *net, const FeatureSource *src, int32_t **labels_out,
                        int *count_out)
{
    const ImageFolder *f = src->folder;
    const int dim = resnet_feature_dim(net), count = f->count;
    LoaderConfig lc = {
        .folder = f, .aug = src->aug, .views = 1, .batch_size = src->batch,
        .workers = src->workers, .prefetch = 2, .shuffle = 0, .drop_last = 0,
        .seed = 0, .rank = 0, .world = 1, /* AUG_EVAL draws nothing: the seed is unused */
        .eval_skip_unreadable = 1,
    };
    Loader *loader = loader_create(&lc);
    float *feat = xmalloc((size_t)count * dim * sizeof(float));
    int32_t *labels = xmalloc((size_t)count * sizeof(int32_t));
    float *norms = xmalloc((size_t)src->batch * sizeof(float));

    double start = wall_time(), last_print = start;
    int done = 0;
    loader_start_epoch(loader, 0, 0);
    const Batch *b;
    while ((b = loader_next(loader)) != NULL) {
        if (stop_requested) { /* a monitor of hours must not hold up a pause or Ctrl-C */
            free(norms);
            free(feat);
            free(labels);
            loader_destroy(loader);
            return NULL;
        }
        const float *x = resnet_forward_features(net, b->view[0], b->size);
        size_t row = (size_t)done; /* dataset order, unreadable files left out */
        l2norm_forward(b->size, dim, x, feat + row * dim, norms);
        memcpy(labels + row, b->labels, (size_t)b->size * sizeof(int32_t));
        done += b->size;
        double now = wall_time();
        if (now - last_print >= FEATURES_PROGRESS_SECONDS && done < count && !progress_quiet) {
            double rate = done / (now - start);
            char eta[32];
            format_duration((count - done) / rate, eta, sizeof eta);
            fprintf(stderr, "knn: features of %s: %d/%d images  img/s %.1f  ETA %s\n", src->key,
                    done, count, rate, eta);
            fflush(stderr);
            last_print = now;
        }
    }
    int skipped = count - done;
    if (done == 0)
        die("knn: none of the %d images of %s (%s) could be read; see the warnings above",
            count, src->key, f->root);
    if (skipped > 0)
        warn("knn: %d unreadable image(s) of %s left out; %d used", skipped, src->key, done);
    *count_out = done;
    free(norms);
    loader_destroy(loader);
    *labels_out = labels;
    return feat;
}

double features_memory_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 1e300; /* unknown: do not refuse */
    return 0.5 * (double)pages * (double)page;
}

double features_bytes(int count, int dim)
{
    return (double)count * ((double)dim * sizeof(float) + sizeof(int32_t));
}

int features_check_memory(int bank_count, int query_count, int dim, double budget,
                          const char *fix, char *err, size_t errlen)
{
    double bank = features_bytes(bank_count, dim), queries = features_bytes(query_count, dim);
    if (bank + queries <= budget) return 0;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    snprintf(err, errlen, "kNN: the feature bank of data.train (%d images x %d features = %.2f "
             "GiB) and the data.val queries (%d images, %.2f GiB) need more than %.2f GiB, half "
             "of this machine's memory; %s", bank_count, dim, bank / gib, query_count,
             queries / gib, budget / gib, fix);
    return -1;
}

/* features.h — L2-normalized backbone features of every image of an image folder, for kNN.
 *
 * Images go through the evaluation transform (resize the shorter side, center crop,
 * normalize; no randomness) in dataset order, batch by batch through the loader (one view,
 * no shuffle, no dropped tail), then the network's eval-mode backbone
 * (resnet_forward_features: BN running statistics, nothing updated), then F.normalize.
 * Used for the kNN bank (data.train) and the queries (data.val) alike.
 */
#ifndef MOCO_FEATURES_H
#define MOCO_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"
#include "data/folder.h"
#include "train/resnet.h"

typedef struct {
    const char *key;            /* config key of the folder, for messages ("data.train") */
    const ImageFolder *folder;
    AugConfig aug;              /* AUG_EVAL */
    int batch;                  /* <= the network's max_batch */
    int workers;                /* loader threads */
} FeatureSource;

/* Returns [n, resnet_feature_dim(net)] malloc'd, rows L2-normalized, in dataset order, and
 * *labels_out [n] malloc'd, n = *count_out: the readable images — an unreadable file is left
 * out with a warning (not replaced by another image, which would count that one twice); none
 * readable is an error. Prints a progress line with an ETA on stderr every
 * FEATURES_PROGRESS_SECONDS while it runs. */
#define FEATURES_PROGRESS_SECONDS 10.0
float *features_extract(Resnet *net, const FeatureSource *src, int32_t **labels_out,
                        int *count_out);
/* ... and returns NULL, having freed everything, when a stop signal arrives (stop_signal.h). */

/* Memory the kNN evaluation may hold for features: half of physical memory (the rest is
 * for the model, the loader and the system). */
double features_memory_budget(void);

/* Bytes the bank and the queries of a kNN evaluation hold (features plus labels). */
double features_bytes(int count, int dim);

/* 0 when bank_count + query_count features of dim floats fit in budget bytes; otherwise -1
 * with a message in err naming data.train and data.val, the sizes and `fix` (what to do). */
int features_check_memory(int bank_count, int query_count, int dim, double budget,
                          const char *fix, char *err, size_t errlen);

#endif

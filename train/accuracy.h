/* accuracy.h — top-k accuracy of classifier scores, shared by linear evaluation and kNN.
 *
 * A row [classes] of scores ranks the classes by score, highest first, ties broken toward
 * the lower class index (a stable sort, which is what torch.topk gives for equal values on
 * CPU in practice and what makes the result independent of the backend); the row counts as
 * correct at k when its label is among the first k of that ranking. NaN scores rank below
 * every number.
 *
 * Top-k with k > classes is undefined (main_lincls.py's accuracy() would fail on it): the
 * count is ACCURACY_UNDEFINED, percentages are NAN, and events carry JSON null ("n/a" on the
 * progress line) — never a number that could be mistaken for a measurement.
 */
#ifndef MOCO_ACCURACY_H
#define MOCO_ACCURACY_H

#include <stdint.h>

typedef struct cJSON cJSON;

#define ACCURACY_UNDEFINED (-1)

/* Rows of scores [n, classes] whose label ranks among the top k; ACCURACY_UNDEFINED when
 * k > classes. */
int64_t accuracy_topk_correct(int n, int classes, const float *scores, const int32_t *labels,
                              int k);

/* 100 * correct / rows, or NAN when correct is ACCURACY_UNDEFINED or rows is 0. */
double accuracy_percent(int64_t correct, int64_t rows);

/* Adds key: percent to an event, or key: null when percent is NAN. */
void accuracy_add_to_event(cJSON *event, const char *key, double percent);

/* Warns once per process and per `what` (e.g. "linear evaluation") that top-k is undefined
 * for this many classes and is reported as n/a (null in events). */
void accuracy_warn_undefined(const char *what, int k, int classes);

#endif

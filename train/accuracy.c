/* accuracy.c — top-k counting for classifier scores; see accuracy.h for the rules. */
#include "train/accuracy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "common/error.h"

/* Does class j rank before class c? Higher score first, ties to the lower index, NaN last. */
static int ranks_before(float sj, int j, float sc, int c)
{
    if (isnan(sj)) return isnan(sc) && j < c;
    if (isnan(sc)) return 1;
    return sj > sc || (sj == sc && j < c);
}

int64_t accuracy_topk_correct(int n, int classes, const float *scores, const int32_t *labels,
                              int k)
{
    if (k > classes) return ACCURACY_UNDEFINED;
    int64_t correct = 0;
    for (int i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * classes;
        int c = labels[i];
        if (c < 0 || c >= classes) continue; /* a label outside the scores is never right */
        int ahead = 0;
        for (int j = 0; j < classes && ahead < k; j++) ahead += ranks_before(row[j], j, row[c], c);
        correct += ahead < k;
    }
    return correct;
}

double accuracy_percent(int64_t correct, int64_t rows)
{
    if (correct == ACCURACY_UNDEFINED || rows <= 0) return NAN;
    return 100.0 * (double)correct / (double)rows;
}

void accuracy_add_to_event(cJSON *event, const char *key, double percent)
{
    if (isnan(percent)) cJSON_AddNullToObject(event, key);
    else cJSON_AddNumberToObject(event, key, percent);
}

void accuracy_warn_undefined(const char *what, int k, int classes)
{
    /* A handful of callers ("linear evaluation", "kNN"): remember the ones already warned. */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static char warned[8][64];
    static int n_warned;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_warned; i++)
        if (strncmp(warned[i], what, sizeof warned[i] - 1) == 0) {
            pthread_mutex_unlock(&mu);
            return;
        }
    if (n_warned < 8) {
        strncpy(warned[n_warned], what, sizeof warned[n_warned] - 1);
        n_warned++;
    }
    pthread_mutex_unlock(&mu);
    warn("%s: top-%d accuracy is undefined with %d classes; it is reported as n/a (null in "
         "events)", what, k, classes);
}

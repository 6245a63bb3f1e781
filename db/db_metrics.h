/* db_metrics.h — metric points: one value per (job, key, step).
 *
 * The primary key (job, key, step) makes a duplicate step impossible; a resumed job first
 * trims the points after the step it resumed from (db_metrics_trim), so the history always
 * matches the model the checkpoint holds.
 */
#ifndef MOCOD_DB_METRICS_H
#define MOCOD_DB_METRICS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;

/* Stores n points of one step. A point already stored for the same (job, key, step) is
 * replaced (a worker that repeats a step after an unclean restart reports the truer value
 * last). Call inside a transaction when several must land together. 0 or -1. */
int db_metrics_add(sqlite3 *c, int64_t job, int64_t step, double ts, const char *const *keys,
                   const double *values, int n, char *err, size_t errlen);
/* Plain insert of one point: fails (-1) on a duplicate step. For tests of the key. */
int db_metric_insert_strict(sqlite3 *c, int64_t job, const char *key, int64_t step,
                            double value, double ts, char *err, size_t errlen);
/* Deletes the job's points with step > after_step. */
int db_metrics_trim(sqlite3 *c, int64_t job, int64_t after_step, char *err, size_t errlen);
/* The job's metric keys, sorted, appended to out (an array of strings). */
int db_metrics_keys(sqlite3 *c, int64_t job, cJSON *out, char *err, size_t errlen);
/* Points {"step", "value", "ts"} with step > after_step, ascending, at most limit, appended
 * to out. *more is set when further points follow (the next page starts after the last one
 * returned). */
int db_metrics_page(sqlite3 *c, int64_t job, const char *key, int64_t after_step, int limit,
                    cJSON *out, int *more, char *err, size_t errlen);
/* At most buckets points over the steps > after_step: the step range [first, last] is cut
 * into `buckets` equal parts, and each non-empty part gives one point, the mean of its
 * values at its last step (and that step's ts). With no more points than buckets, the points
 * themselves. Appended to out. */
int db_metrics_downsample(sqlite3 *c, int64_t job, const char *key, int64_t after_step,
                          int buckets, cJSON *out, char *err, size_t errlen);

#endif

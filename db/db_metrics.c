/* db_metrics.c — metric points; see db_metrics.h. */
#include "db/db_metrics.h"

#include <cjson/cJSON.h>
#include <stdio.h>

#include "db/db.h"

int db_metrics_add(sqlite3 *c, int64_t job, int64_t step, double ts, const char *const *keys,
                   const double *values, int n, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "INSERT INTO metrics (job, key, step, value, ts) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (job, key, step) DO UPDATE SET value = excluded.value, "
                   "ts = excluded.ts", &st, "store metrics", err, errlen) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, job);
        sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, step);
        sqlite3_bind_double(st, 4, values[i]);
        sqlite3_bind_double(st, 5, ts);
        if (sqlite3_step(st) != SQLITE_DONE) {
            db_fail(c, "store metrics", err, errlen);
            sqlite3_finalize(st);
            return -1;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
}

int db_metric_insert_strict(sqlite3 *c, int64_t job, const char *key, int64_t step,
                            double value, double ts, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "INSERT INTO metrics (job, key, step, value, ts) VALUES (?, ?, ?, ?, ?)",
                   &st, "store a metric", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, step);
    sqlite3_bind_double(st, 4, value);
    sqlite3_bind_double(st, 5, ts);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(c, "store a metric", err, errlen);
}

int db_metrics_trim(sqlite3 *c, int64_t job, int64_t after_step, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "DELETE FROM metrics WHERE job = ? AND step > ?", &st,
                   "drop metrics after the resumed step", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, after_step);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(c, "drop metrics after the resumed step", err, errlen);
}

int db_metrics_keys(sqlite3 *c, int64_t job, cJSON *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT DISTINCT key FROM metrics WHERE job = ? ORDER BY key", &st,
                   "list metric keys", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        cJSON *s = cJSON_CreateString(k ? k : "");
        if (!s || !cJSON_AddItemToArray(out, s)) {
            cJSON_Delete(s);
            sqlite3_finalize(st);
            snprintf(err, errlen, "out of memory listing metric keys");
            return -1;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(c, "list metric keys", err, errlen);
}

static int add_point(cJSON *out, int64_t step, double value, double ts)
{
    cJSON *p = cJSON_CreateObject();
    if (!p || !cJSON_AddItemToArray(out, p)) {
        cJSON_Delete(p);
        return -1;
    }
    return cJSON_AddNumberToObject(p, "step", (double)step) &&
                   cJSON_AddNumberToObject(p, "value", value) &&
                   cJSON_AddNumberToObject(p, "ts", ts)
               ? 0
               : -1;
}

/* Runs a query whose rows are (step, value, ts) and appends them as points; at most limit
 * (negative: all), *more set when a further row exists. */
static int collect_points(sqlite3 *c, sqlite3_stmt *st, int limit, cJSON *out, int *more,
                          const char *what, char *err, size_t errlen)
{
    int rc, n = 0;
    if (more) *more = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (limit >= 0 && n == limit) {
            if (more) *more = 1;
            rc = SQLITE_DONE;
            break;
        }
        if (add_point(out, sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1),
                      sqlite3_column_double(st, 2)) != 0) {
            sqlite3_finalize(st);
            snprintf(err, errlen, "out of memory reading metrics");
            return -1;
        }
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(c, what, err, errlen);
}

int db_metrics_page(sqlite3 *c, int64_t job, const char *key, int64_t after_step, int limit,
                    cJSON *out, int *more, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT step, value, ts FROM metrics WHERE job = ? AND key = ? AND step > ? "
                   "ORDER BY step LIMIT ?", &st, "read metrics", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, after_step);
    sqlite3_bind_int64(st, 4, (int64_t)limit + 1); /* one more tells whether a next page exists */
    return collect_points(c, st, limit, out, more, "read metrics", err, errlen);
}

int db_metrics_downsample(sqlite3 *c, int64_t job, const char *key, int64_t after_step,
                          int buckets, cJSON *out, char *err, size_t errlen)
{
    if (buckets < 1) buckets = 1;
    sqlite3_stmt *st;
    /* Bucket b of the range [lo, hi] holds the steps with (step - lo) * B / (hi - lo + 1) == b
     * (integer division): B equal parts of the range, whatever gaps the steps have. Within a
     * bucket, the point sits at its last step with that step's ts; the value is the mean. With
     * no more points than buckets every point is its own bucket. */
    if (db_prepare(c,
                   "WITH pts AS (SELECT step, value, ts FROM metrics"
                   "             WHERE job = ?1 AND key = ?2 AND step > ?3),"
                   " span AS (SELECT MIN(step) AS lo, MAX(step) AS hi, COUNT(*) AS n FROM pts),"
                   " tagged AS (SELECT pts.step, pts.value, pts.ts,"
                   "   CASE WHEN span.n <= ?4 THEN pts.step"
                   "        ELSE (pts.step - span.lo) * ?4 / (span.hi - span.lo + 1) END AS b"
                   "   FROM pts, span)"
                   /* ts is a bare column: SQLite takes it from the row of the one max() */
                   " SELECT MAX(step) AS last, AVG(value), ts FROM tagged GROUP BY b ORDER BY last",
                   &st, "downsample metrics", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, after_step);
    sqlite3_bind_int(st, 4, buckets);
    return collect_points(c, st, -1, out, NULL, "downsample metrics", err, errlen);
}

/* format.h — how mococtl shows things: durations, ages, times, sizes, aligned tables, and
 * small readers of the job objects' JSON fields.
 */
#ifndef MOCOCTL_FORMAT_H
#define MOCOCTL_FORMAT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* "45s", "1m35s", "2h03m", "3d04h"; "-" for a negative or non-finite value. */
void fmt_duration(double seconds, char *buf, size_t n);
/* How long ago a Unix time was, as fmt_duration; "-" for 0/absent. */
void fmt_age(double ts, char *buf, size_t n);
/* Local time "2026-01-02 15:04:05"; "-" for 0/absent. */
void fmt_time(double ts, char *buf, size_t n);
/* "812 B", "3.4 KiB", "97.6 MiB", "1.2 GiB". */
void fmt_bytes(double bytes, char *buf, size_t n);
/* The current time as Unix seconds with fractions. */
double now_seconds(void);

/* Field readers that tolerate absent and null fields. */
const char *json_str(const cJSON *obj, const char *key);            /* NULL when not a string */
int json_num(const cJSON *obj, const char *key, double *out);       /* 1 when a number */
double json_num_or(const cJSON *obj, const char *key, double fallback);

/* A table whose columns are padded to their widest cell. */
typedef struct {
    int ncols;
    const char **headers;
    const char *right;   /* one char per column: 'r' right-aligns it (numbers), else left */
    char **cells;        /* row-major, malloc'd strings */
    int nrows, cap;
} Table;

void table_init(Table *t, int ncols, const char **headers, const char *right);
/* Adds one row of ncols cells (copied); NULL cells show as "-". */
void table_add(Table *t, const char **cells);
void table_print(const Table *t);
void table_free(Table *t);

#endif

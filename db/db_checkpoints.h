/* db_checkpoints.h — what mocod knows about a job's checkpoint files: step, epoch and the
 * sha256, cached by (size, mtime) so a file is hashed once, not on every listing. The files
 * on disk are the truth; rows for files that are gone are dropped when the folder is listed.
 */
#ifndef MOCOD_DB_CHECKPOINTS_H
#define MOCOD_DB_CHECKPOINTS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t step, epoch;   /* -1 unknown */
    int64_t size;
    double mtime;
    char sha256[65];       /* "" not computed yet */
} DbCheckpoint;

/* 1 and *out when the job has a row for name whose size and mtime match, 0 when not, -1. */
int db_checkpoint_lookup(sqlite3 *c, int64_t job, const char *name, int64_t size, double mtime,
                         DbCheckpoint *out, char *err, size_t errlen);
/* Inserts or replaces the row of (job, name). */
int db_checkpoint_store(sqlite3 *c, int64_t job, const char *name, const DbCheckpoint *ck,
                        char *err, size_t errlen);
/* Deletes the job's rows whose name is not among names[0..n). */
int db_checkpoint_forget_others(sqlite3 *c, int64_t job, char *const *names, int n, char *err,
                                size_t errlen);

#endif

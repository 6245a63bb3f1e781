/* db_checkpoints.c — the checkpoint cache table; see db_checkpoints.h. */
#include "db/db_checkpoints.h"

#include <stdio.h>
#include <string.h>

#include "db/db.h"

int db_checkpoint_lookup(sqlite3 *c, int64_t job, const char *name, int64_t size, double mtime,
                         DbCheckpoint *out, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "SELECT step, epoch, sha256 FROM checkpoints "
                   "WHERE job = ? AND name = ? AND size = ? AND mtime = ?", &st,
                   "read the checkpoint cache", err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, size);
    sqlite3_bind_double(st, 4, mtime);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW) {
        out->step = db_column_int_or(st, 0, -1);
        out->epoch = db_column_int_or(st, 1, -1);
        const unsigned char *sha = sqlite3_column_text(st, 2);
        snprintf(out->sha256, sizeof out->sha256, "%s", sha ? (const char *)sha : "");
        out->size = size;
        out->mtime = mtime;
        ret = 1;
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(c, "read the checkpoint cache", err, errlen);
    }
    sqlite3_finalize(st);
    return ret;
}

int db_checkpoint_store(sqlite3 *c, int64_t job, const char *name, const DbCheckpoint *ck,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "INSERT OR REPLACE INTO checkpoints (job, name, step, epoch, size, mtime, "
                   "sha256) VALUES (?, ?, ?, ?, ?, ?, ?)", &st, "update the checkpoint cache",
                   err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    if (ck->step >= 0) sqlite3_bind_int64(st, 3, ck->step); else sqlite3_bind_null(st, 3);
    if (ck->epoch >= 0) sqlite3_bind_int64(st, 4, ck->epoch); else sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, ck->size);
    sqlite3_bind_double(st, 6, ck->mtime);
    if (ck->sha256[0])
        sqlite3_bind_text(st, 7, ck->sha256, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 7);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(c, "update the checkpoint cache", err, errlen);
}

int db_checkpoint_forget_others(sqlite3 *c, int64_t job, char *const *names, int n, char *err,
                                size_t errlen)
{
    sqlite3_stmt *sel, *del;
    if (db_prepare(c, "SELECT name FROM checkpoints WHERE job = ?", &sel,
                   "read the checkpoint cache", err, errlen) != 0)
        return -1;
    if (db_prepare(c, "DELETE FROM checkpoints WHERE job = ? AND name = ?", &del,
                   "update the checkpoint cache", err, errlen) != 0) {
        sqlite3_finalize(sel);
        return -1;
    }
    /* Collect first, delete after: deleting rows under a running SELECT is undefined. At most
     * 64 per call (more is a folder emptied by hand); the next listing removes the rest. */
    char gone[64][256];
    int n_gone = 0, rc;
    sqlite3_bind_int64(sel, 1, job);
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW && n_gone < 64) {
        const char *name = (const char *)sqlite3_column_text(sel, 0);
        int present = 0;
        for (int i = 0; name && i < n && !present; i++) present = strcmp(names[i], name) == 0;
        if (name && !present) snprintf(gone[n_gone++], sizeof gone[0], "%s", name);
    }
    int ret = 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) ret = db_fail(c, "read the checkpoint cache", err, errlen);
    sqlite3_finalize(sel);
    for (int i = 0; ret == 0 && i < n_gone; i++) {
        sqlite3_bind_int64(del, 1, job);
        sqlite3_bind_text(del, 2, gone[i], -1, SQLITE_TRANSIENT);
        if (sqlite3_step(del) != SQLITE_DONE) ret = db_fail(c, "update the checkpoint cache", err, errlen);
        sqlite3_reset(del);
    }
    sqlite3_finalize(del);
    return ret;
}

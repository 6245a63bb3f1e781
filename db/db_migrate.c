/* db_migrate.c — the schema of mocod.db as an ordered list of migrations; see db_migrate.h.
 *
 * Append new migrations at the end; never edit one that has shipped (databases in the field
 * already ran it). Times are Unix seconds (REAL); job states are their names (job_state.c).
 */
#include "db/db_migrate.h"

#include <stdio.h>

#include "db/db.h"

static const char *const migrations[] = {
    /* 1: jobs, their state history, metric points and the checkpoint hash cache. */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"  /* AUTOINCREMENT: a deleted job's id is never reused */
    "  name TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  spec TEXT NOT NULL,"                    /* the resolved job spec, JSON */
    "  created_at REAL NOT NULL,"
    "  started_at REAL,"
    "  finished_at REAL,"
    "  not_before REAL,"
    "  after_job INTEGER,"
    "  restarts INTEGER NOT NULL DEFAULT 0,"
    "  max_restarts INTEGER NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  gpus_needed INTEGER NOT NULL DEFAULT 0,"
    "  gpus TEXT NOT NULL DEFAULT '[]',"       /* device indices while a worker runs, JSON */
    "  pid INTEGER,"                           /* the worker while one runs */
    "  step INTEGER NOT NULL DEFAULT 0,"
    "  total_steps INTEGER,"
    "  steps_per_epoch INTEGER,"
    "  epoch INTEGER NOT NULL DEFAULT 0,"
    "  epochs INTEGER,"
    "  images_per_s REAL,"
    "  eta_s REAL,"
    "  last_metrics TEXT NOT NULL DEFAULT '{}',"
    "  events_offset INTEGER NOT NULL DEFAULT 0"  /* bytes of events.jsonl already applied */
    ");"
    "CREATE INDEX jobs_by_state ON jobs(state, priority DESC, id);"
    "CREATE TABLE transitions ("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  from_state TEXT,"                       /* NULL for the submission */
    "  to_state TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  ts REAL NOT NULL"
    ");"
    "CREATE INDEX transitions_by_job ON transitions(job, id);"
    "CREATE TABLE metrics ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  value REAL NOT NULL,"
    "  ts REAL NOT NULL,"
    "  PRIMARY KEY (job, key, step)"           /* one point per step: history matches the model */
    ") WITHOUT ROWID;"
    "CREATE TABLE checkpoints ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  step INTEGER,"
    "  epoch INTEGER,"
    "  size INTEGER NOT NULL,"
    "  mtime REAL NOT NULL,"
    "  sha256 TEXT,"                           /* valid while size and mtime match the file */
    "  PRIMARY KEY (job, name)"
    ");",
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int db_schema_version(void) { return N_MIGRATIONS; }

int db_user_version(sqlite3 *c, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "PRAGMA user_version", &st, "read the schema version", err, errlen) != 0)
        return -1;
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    else
        db_fail(c, "read the schema version", err, errlen);
    sqlite3_finalize(st);
    return v;
}

int db_migrate(sqlite3 *c, const char *path, char *err, size_t errlen)
{
    for (;;) {
        /* The version is read inside the transaction: another process migrating the same
         * file at the same moment then waits for us instead of applying a step twice. */
        if (db_begin(c, err, errlen) != 0) return -1;
        int v = db_user_version(c, err, errlen);
        if (v < 0) goto fail;
        if (v > N_MIGRATIONS) {
            snprintf(err, errlen, "database %s has schema version %d but this mocod knows "
                     "versions up to %d: it was written by a newer mocod. Run that newer mocod, "
                     "or start this one with another --state-dir", path, v, N_MIGRATIONS);
            goto fail;
        }
        if (v == N_MIGRATIONS) {
            db_rollback(c); /* nothing written */
            return 0;
        }
        char what[64], bump[64];
        snprintf(what, sizeof what, "migrate the schema to version %d", v + 1);
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if (db_exec(c, migrations[v], what, err, errlen) != 0 ||
            db_exec(c, bump, what, err, errlen) != 0 || db_commit(c, err, errlen) != 0)
            goto fail;
    }
fail:
    db_rollback(c);
    return -1;
}

/* db.c — connections and helpers of mocod's SQLite database; see db.h. */
#include "db/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_migrate.h"

/* Idle reader connections kept for reuse; more are opened when many requests read at once. */
#define DB_READER_POOL 8
/* How long a statement waits for a lock held by another connection or process. */
#define DB_BUSY_TIMEOUT_MS 10000

struct Db {
    char path[4096];
    sqlite3 *writer;
    pthread_mutex_t write_mu;
    pthread_mutex_t pool_mu;
    sqlite3 *idle[DB_READER_POOL];
    int n_idle;
};

double db_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* What to do about the errors that are not mocod's to fix: SQLite's own words ("database or
 * disk is full") name the problem, not the fix. "" for the others. */
static const char *fix_for(sqlite3 *c)
{
    switch (c ? sqlite3_errcode(c) : SQLITE_OK) {
    case SQLITE_FULL:
        return "; the disk of the state directory is full: free space there";
    case SQLITE_READONLY:
        return "; the state directory or mocod.db is read-only: make it writable for mocod";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return "; mocod.db is damaged: restore it from a backup, or move it (with mocod.db-wal "
               "and mocod.db-shm) aside and mocod starts with an empty job list";
    case SQLITE_IOERR:
        return "; the state directory's file system reported an I/O error";
    default:
        return "";
    }
}

int db_fail(sqlite3 *c, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "database: %s: %s%s", what, c ? sqlite3_errmsg(c) : "no connection",
             fix_for(c));
    return -1;
}

int db_exec(sqlite3 *c, const char *sql, const char *what, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "database: %s: %s%s", what, msg ? msg : sqlite3_errmsg(c),
                 fix_for(c));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int db_prepare(sqlite3 *c, const char *sql, sqlite3_stmt **st, const char *what, char *err,
               size_t errlen)
{
    if (sqlite3_prepare_v2(c, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_fail(c, what, err, errlen);
    }
    return 0;
}

int db_begin(sqlite3 *c, char *err, size_t errlen)
{
    /* IMMEDIATE takes the write lock now, so a transaction never fails half-way on a lock
     * that another process took after our first read. */
    return db_exec(c, "BEGIN IMMEDIATE", "begin transaction", err, errlen);
}

int db_commit(sqlite3 *c, char *err, size_t errlen)
{
    return db_exec(c, "COMMIT", "commit", err, errlen);
}

void db_rollback(sqlite3 *c)
{
    if (sqlite3_get_autocommit(c)) return; /* no transaction open (BEGIN itself failed) */
    sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
}

double db_column_real_or(sqlite3_stmt *st, int col, double def)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? def : sqlite3_column_double(st, col);
}

int64_t db_column_int_or(sqlite3_stmt *st, int col, int64_t def)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? def : sqlite3_column_int64(st, col);
}

char *db_column_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

/* Opens one connection with the settings every connection needs. */
static sqlite3 *open_connection(const char *path, int create, char *err, size_t errlen)
{
    sqlite3 *c = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &c, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "database %s: cannot open: %s; check that the state directory "
                 "exists and is writable (--state-dir)", path,
                 c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return NULL;
    }
    if (sqlite3_busy_timeout(c, DB_BUSY_TIMEOUT_MS) != SQLITE_OK ||
        db_exec(c, "PRAGMA foreign_keys = ON", "enable foreign keys", err, errlen) != 0) {
        if (!err[0]) db_fail(c, "set busy timeout", err, errlen);
        sqlite3_close(c);
        return NULL;
    }
    return c;
}

/* WAL lets readers run while the writer writes; NORMAL sync keeps every committed
 * transaction across a crash of mocod (kill -9), and loses at most the last ones on power
 * loss, never the file's integrity. */
static int set_wal(sqlite3 *c, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (db_prepare(c, "PRAGMA journal_mode = WAL", &st, "set WAL mode", err, errlen) != 0)
        return -1;
    int rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int ok = mode && strcmp((const char *)mode, "wal") == 0;
    if (!ok) {
        if (rc != SQLITE_ROW)
            db_fail(c, "set WAL mode", err, errlen);
        else
            snprintf(err, errlen, "database %s: cannot switch to WAL mode (got '%s'); the "
                     "state directory must be on a local file system", path,
                     mode ? (const char *)mode : "?");
    }
    sqlite3_finalize(st);
    if (!ok) return -1;
    return db_exec(c, "PRAGMA synchronous = NORMAL", "set synchronous mode", err, errlen);
}

Db *db_open(const char *path, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!sqlite3_threadsafe()) {
        snprintf(err, errlen, "this SQLite library was built without thread support; mocod "
                 "needs the Debian libsqlite3 (threadsafe)");
        return NULL;
    }
    Db *db = calloc(1, sizeof *db);
    if (!db) {
        snprintf(err, errlen, "out of memory opening the database");
        return NULL;
    }
    if (snprintf(db->path, sizeof db->path, "%s", path) >= (int)sizeof db->path) {
        snprintf(err, errlen, "database path too long: %s", path);
        free(db);
        return NULL;
    }
    db->writer = open_connection(path, 1, err, errlen);
    if (!db->writer) {
        free(db);
        return NULL;
    }
    if (set_wal(db->writer, path, err, errlen) != 0 ||
        db_migrate(db->writer, path, err, errlen) != 0) {
        sqlite3_close(db->writer);
        free(db);
        return NULL;
    }
    if (pthread_mutex_init(&db->write_mu, NULL) != 0 ||
        pthread_mutex_init(&db->pool_mu, NULL) != 0) {
        snprintf(err, errlen, "cannot create the database mutexes");
        sqlite3_close(db->writer);
        free(db);
        return NULL;
    }
    return db;
}

void db_close(Db *db)
{
    if (!db) return;
    for (int i = 0; i < db->n_idle; i++) sqlite3_close(db->idle[i]);
    /* The last connection to close checkpoints the WAL into the main file. */
    sqlite3_close(db->writer);
    pthread_mutex_destroy(&db->write_mu);
    pthread_mutex_destroy(&db->pool_mu);
    free(db);
}

sqlite3 *db_write_begin(Db *db)
{
    pthread_mutex_lock(&db->write_mu);
    return db->writer;
}

void db_write_end(Db *db)
{
    /* A caller that returned early inside a transaction must not leave it open for the next. */
    db_rollback(db->writer);
    pthread_mutex_unlock(&db->write_mu);
}

sqlite3 *db_read_begin(Db *db, char *err, size_t errlen)
{
    sqlite3 *c = NULL;
    pthread_mutex_lock(&db->pool_mu);
    if (db->n_idle > 0) c = db->idle[--db->n_idle];
    pthread_mutex_unlock(&db->pool_mu);
    if (c) return c;
    err[0] = '\0';
    c = open_connection(db->path, 0, err, errlen);
    if (!c) return NULL;
    if (db_exec(c, "PRAGMA query_only = ON", "make a read-only connection", err, errlen) != 0) {
        sqlite3_close(c);
        return NULL;
    }
    return c;
}

void db_read_end(Db *db, sqlite3 *c)
{
    if (!c) return;
    db_rollback(c);
    pthread_mutex_lock(&db->pool_mu);
    if (db->n_idle < DB_READER_POOL) {
        db->idle[db->n_idle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&db->pool_mu);
    if (c) sqlite3_close(c);
}

/* db.h — mocod's SQLite database: connections, transactions, error messages.
 *
 * One database file (STATE_DIR/mocod.db) in WAL mode. Writes go through one writer connection
 * that a mutex serializes (the supervisor and HTTP threads both write, rarely at once); reads
 * take a connection from a small pool, so HTTP threads read while the supervisor writes (WAL
 * lets readers see the last committed state without waiting). Every connection has a busy
 * timeout, so a second process touching the file (sqlite3 in a shell, a test) waits instead of
 * failing. Nothing here exits: every failure comes back as -1 with a message naming the
 * operation and SQLite's reason.
 *
 * The schema and its migrations are in db_migrate.c; the tables' operations in db_jobs.c,
 * db_metrics.c and db_checkpoints.c.
 */
#ifndef MOCOD_DB_H
#define MOCOD_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Db Db;

/* Opens (creating if needed) and migrates the database at path. NULL with err filled when the
 * file cannot be opened, is not a database, or was written by a newer mocod. */
Db *db_open(const char *path, char *err, size_t errlen);
void db_close(Db *db);

/* The writer connection, held (mutex) until db_write_end. */
sqlite3 *db_write_begin(Db *db);
void db_write_end(Db *db);

/* A reader connection from the pool (query_only), returned with db_read_end. NULL with err
 * when a new connection cannot be opened. */
sqlite3 *db_read_begin(Db *db, char *err, size_t errlen);
void db_read_end(Db *db, sqlite3 *c);

/* "BEGIN IMMEDIATE" / "COMMIT" / "ROLLBACK". 0 or -1 with err. Rollback never fails loudly:
 * it is only called on a path that already failed. */
int db_begin(sqlite3 *c, char *err, size_t errlen);
int db_commit(sqlite3 *c, char *err, size_t errlen);
void db_rollback(sqlite3 *c);

/* Runs SQL without results. 0 or -1 with err naming the statement's purpose. */
int db_exec(sqlite3 *c, const char *sql, const char *what, char *err, size_t errlen);
/* Prepares sql; 0 or -1 with err. */
int db_prepare(sqlite3 *c, const char *sql, sqlite3_stmt **st, const char *what, char *err,
               size_t errlen);
/* Fills err with "database: WHAT: sqlite's message" and returns -1. */
int db_fail(sqlite3 *c, const char *what, char *err, size_t errlen);

/* Unix time in seconds, fractional. */
double db_now(void);

/* Column helpers: NULL reads as the given default. */
double db_column_real_or(sqlite3_stmt *st, int col, double def);
int64_t db_column_int_or(sqlite3_stmt *st, int col, int64_t def);
/* A malloc'd copy of a text column ("" for NULL); NULL only when memory runs out. */
char *db_column_strdup(sqlite3_stmt *st, int col);

#endif

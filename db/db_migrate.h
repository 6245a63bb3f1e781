/* db_migrate.h — the schema of mocod.db and its forward migrations.
 *
 * The schema version is PRAGMA user_version: the number of migrations applied. Opening a
 * database applies the missing ones in order, each in one transaction together with the new
 * version number, so a crash leaves the file at one version or the next, never between. A
 * database whose version is above this build's (written by a newer mocod) is refused rather
 * than misread.
 */
#ifndef MOCOD_DB_MIGRATE_H
#define MOCOD_DB_MIGRATE_H

#include <sqlite3.h>
#include <stddef.h>

/* The schema version this build writes (the number of migrations). */
int db_schema_version(void);
/* Brings the database up to db_schema_version(). path is for messages. 0 or -1 with err. */
int db_migrate(sqlite3 *c, const char *path, char *err, size_t errlen);
/* PRAGMA user_version of c, or -1 with err. */
int db_user_version(sqlite3 *c, char *err, size_t errlen);

#endif

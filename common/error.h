/* error.h — fatal errors, warnings and checked allocation for moco-train and its libraries.
 *
 * Inside moco-train an unrecoverable error ends the job with a clear message: die() prints it
 * on stderr, calls the hook that the program installed (which writes an `error` event), and
 * exits with status 1. Library code that a daemon might one day link (data/, the safetensors
 * reader) returns errors instead of dying.
 */
#ifndef MOCO_ERROR_H
#define MOCO_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define MOCO_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MOCO_NORETURN __attribute__((noreturn))
#else
#define MOCO_PRINTF(a, b)
#define MOCO_NORETURN
#endif

/* Called by die() with the formatted message before the process exits. */
typedef void (*DieHook)(const char *message);
void set_die_hook(DieHook hook);
/* How die() ends the process after the hook: exit(code) unless a program installs another
 * ending (a multi-rank run aborts every rank, so that none waits for the dead one). */
typedef void (*DieExit)(int code);
void set_die_exit(DieExit fn);
/* In a multi-rank run: messages of ranks other than 0 name their rank, and their fatal errors
 * wait a moment before printing, so that an error every rank meets (a bad config) is told once,
 * by rank 0, whose abort ends the others first. */
void set_message_rank(int rank);

MOCO_NORETURN void die(const char *fmt, ...) MOCO_PRINTF(1, 2);
void warn(const char *fmt, ...) MOCO_PRINTF(1, 2);

/* Allocation that dies with the requested size named when memory runs out. */
void *xmalloc(size_t bytes);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t bytes);
char *xstrdup(const char *s);
/* 64-byte aligned, zeroed; free with free(). */
void *xaligned_alloc(size_t bytes);

#endif

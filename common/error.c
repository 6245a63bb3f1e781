/* error.c — see error.h. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static DieHook die_hook;
static DieExit die_exit;
static int message_rank;
/* How long a rank other than 0 waits before reporting its fatal error. */
#define OTHER_RANK_DIE_DELAY_US 2000000

void set_die_hook(DieHook hook) { die_hook = hook; }
void set_die_exit(DieExit fn) { die_exit = fn; }
void set_message_rank(int rank) { message_rank = rank; }

/* "rank 3: " for ranks other than 0, else "". */
static const char *rank_prefix(char *buf, size_t len)
{
    if (message_rank <= 0) return "";
    snprintf(buf, len, "rank %d: ", message_rank);
    return buf;
}

void die(const char *fmt, ...)
{
    /* Only the first caller reports and exits; another thread dying at the same moment (two
     * loader workers meeting the same bad folder) waits here until the process is gone. */
    static int dying;
    if (__atomic_exchange_n(&dying, 1, __ATOMIC_SEQ_CST))
        for (;;) pause();
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    char rank[32];
    if (message_rank > 0) { /* the whole delay, though mpirun's abort SIGTERMs us first */
        struct timespec left = {OTHER_RANK_DIE_DELAY_US / 1000000, OTHER_RANK_DIE_DELAY_US % 1000000 * 1000};
        while (nanosleep(&left, &left) != 0) {}
    }
    fprintf(stderr, "moco-train: %serror: %s\n", rank_prefix(rank, sizeof rank), message);
    if (die_hook) {
        DieHook hook = die_hook;
        die_hook = NULL; /* a hook that fails must not recurse */
        hook(message);
    }
    if (die_exit) die_exit(1);
    exit(1);
}

void warn(const char *fmt, ...)
{
    /* One write per warning, so that lines from several threads never interleave. */
    char line[2048];
    char rank[32];
    int n = snprintf(line, sizeof line, "moco-train: %swarning: ", rank_prefix(rank, sizeof rank));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
}

void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) die("out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc(void *p, size_t bytes)
{
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) die("out of memory reallocating to %zu bytes", bytes);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

void *xaligned_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) die("out of memory allocating %zu bytes", bytes);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

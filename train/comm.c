/* comm.c — choosing the communicator, the single-rank backend, and the timed wrappers that
 * the training code calls. See comm.h. */
#include "train/comm.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "train/events.h"

/* ---- single rank: every collective is the identity ------------------------------------ */

static void single_sum_f32(Comm *c, float *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_sum_f64(Comm *c, double *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_max_int(Comm *c, int *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_allgather(Comm *c, const void *send, void *recv, size_t bytes)
{
    (void)c;
    if (send != recv) memmove(recv, send, bytes);
}
static void single_bcast(Comm *c, void *buf, size_t bytes, int root) { (void)c, (void)buf, (void)bytes, (void)root; }
static void single_barrier(Comm *c) { (void)c; }
static void single_abort(Comm *c, int code) { (void)c; _exit(code); }
static void single_finalize(Comm *c) { (void)c; }

static const CommOps single_ops = {
    single_sum_f32, single_sum_f64, single_max_int, single_allgather, single_bcast,
    single_barrier, single_abort, single_finalize,
};

Comm *comm_single(void)
{
    static Comm one = {&single_ops, "single", 0, 1, 0, 1, 0.0, NULL};
    return &one;
}

/* ---- choosing ---------------------------------------------------------------------------- */

static Comm *world;

/* die() on one rank ends every rank: the others would otherwise wait in their next collective
 * for a partner that is gone, until someone notices the job hanging. */
static void abort_all_ranks(int code)
{
    if (world && world->size > 1) world->ops->abort(world, code);
    exit(code);
}

Comm *comm_init(void)
{
    world = comm_mpi_started() ? comm_mpi_create() : comm_single();
    set_die_exit(abort_all_ranks);
    if (world->size > 1) set_message_rank(world->rank);
    return world;
}

void comm_finalize(Comm *c)
{
    if (!c) return;
    if (c == world) world = NULL;
    c->ops->finalize(c); /* frees c unless it is the static single rank */
}

/* ---- timed wrappers ---------------------------------------------------------------------- */

void comm_allreduce_sum_f32(Comm *c, float *buf, size_t n)
{
    if (c->size == 1) return;
    double t = wall_time();
    c->ops->allreduce_sum_f32(c, buf, n);
    c->seconds += wall_time() - t;
}

void comm_allreduce_sum_f64(Comm *c, double *buf, size_t n)
{
    if (c->size == 1) return;
    double t = wall_time();
    c->ops->allreduce_sum_f64(c, buf, n);
    c->seconds += wall_time() - t;
}

int comm_any(Comm *c, int flag)
{
    int v = flag != 0;
    if (c->size == 1) return v;
    double t = wall_time();
    c->ops->allreduce_max_int(c, &v, 1);
    c->seconds += wall_time() - t;
    return v;
}

void comm_allgather(Comm *c, const void *send, void *recv, size_t bytes)
{
    double t = wall_time();
    c->ops->allgather(c, send, recv, bytes);
    c->seconds += wall_time() - t;
}

void comm_bcast(Comm *c, void *buf, size_t bytes, int root)
{
    if (c->size == 1) return;
    double t = wall_time();
    c->ops->bcast(c, buf, bytes, root);
    c->seconds += wall_time() - t;
}

void comm_barrier(Comm *c)
{
    if (c->size == 1) return;
    double t = wall_time();
    c->ops->barrier(c);
    c->seconds += wall_time() - t;
}

void comm_hosts(Comm *c, char *out, size_t len)
{
    enum { NAME = 64 };
    char mine[NAME] = "";
    gethostname(mine, sizeof mine - 1);
    char *all = xcalloc((size_t)c->size, NAME);
    comm_allgather(c, mine, all, NAME);
    size_t used = 0;
    out[0] = '\0';
    for (int r = 0; r < c->size && used + 1 < len; r++) {
        int n = snprintf(out + used, len - used, "%s%s", r ? " " : "", all + (size_t)r * NAME);
        if (n < 0) break;
        used += (size_t)n;
    }
    free(all);
}

int comm_default_threads(Comm *c)
{
    /* Ranks on one machine that may run on the same cores share them: mpirun --bind-to none
     * gives every rank all cores, its default binding for more than two ranks gives each a
     * socket, --bind-to core one core each. Count the ranks with this rank's host and cpu set. */
    typedef struct {
        char host[64];
        cpu_set_t cpus;
    } Where;
    Where mine;
    memset(&mine, 0, sizeof mine);
    gethostname(mine.host, sizeof mine.host - 1);
    if (sched_getaffinity(0, sizeof mine.cpus, &mine.cpus) != 0) {
        CPU_ZERO(&mine.cpus);
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        for (long i = 0; i < online && i < CPU_SETSIZE; i++) CPU_SET((int)i, &mine.cpus);
    }
    int usable = CPU_COUNT(&mine.cpus), sharing = 1;
    if (c->size > 1) {
        Where *all = xcalloc((size_t)c->size, sizeof *all);
        comm_allgather(c, &mine, all, sizeof mine);
        sharing = 0;
        for (int r = 0; r < c->size; r++)
            sharing += strcmp(all[r].host, mine.host) == 0 && CPU_EQUAL(&all[r].cpus, &mine.cpus);
        free(all);
    }
    int threads = usable / (sharing > 0 ? sharing : 1);
    return threads < 1 ? 1 : threads;
}

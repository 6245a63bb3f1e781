/* launch_command.c — building a worker's argv and environment; see launch_command.h. */
#include "daemon/launch_command.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A growing NULL-terminated array of strings it owns. `failed` sticks after the first
 * allocation failure, so that building goes on unchecked and is checked once at the end. */
typedef struct {
    char **items;
    size_t n, cap;
    int failed;
} StrList;

static void list_add_owned(StrList *l, char *s)
{
    if (!s) {
        l->failed = 1;
        return;
    }
    if (l->failed) {
        free(s);
        return;
    }
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) {
            free(s);
            l->failed = 1;
            return;
        }
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = s;
    l->items[l->n] = NULL;
}

static void list_add(StrList *l, const char *s)
{
    list_add_owned(l, strdup(s));
}

static void list_addf(StrList *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void list_addf(StrList *l, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    list_add(l, buf);
}

static void list_free(StrList *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

int launch_ranks(const char *kind, int spec_ranks, int n_gpus)
{
    if (strcmp(kind, "pretrain") != 0) return 1;
    if (n_gpus > 0) return n_gpus; /* one process per GPU (DESIGN §6) */
    return spec_ranks > 1 ? spec_ranks : 1;
}

/* The arguments after the program, the same for every rank. */
static void add_worker_args(StrList *l, const LaunchRequest *req, int multi)
{
    list_add(l, req->kind);
    list_add(l, "--config");
    list_add(l, req->spec_path);
    if (multi) {
        list_add(l, "--events-file");
        list_add(l, req->events_path);
    } else {
        list_add(l, "--events-fd");
        list_add(l, "3");
    }
    if (req->resume_dir) {
        list_add(l, "--resume");
        list_add(l, req->resume_dir);
    }
}

static int env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* "3,5" for the device list, into a malloc'd "CUDA_VISIBLE_DEVICES=3,5". */
static char *cuda_entry(const int *gpus, int n_gpus)
{
    size_t cap = 32 + (size_t)n_gpus * 12;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t len = (size_t)snprintf(s, cap, "CUDA_VISIBLE_DEVICES=");
    for (int i = 0; i < n_gpus; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? ",%d" : "%d", gpus[i]);
    return s;
}

/* base_env without the variables we set, then ours. A CPU job gets an empty device list, so
 * that it never touches a GPU another job owns. */
static void build_env(StrList *env, const LaunchRequest *req, int multi)
{
    int root_vars = multi && req->as_root;
    for (char *const *e = req->base_env; e && *e; e++) {
        if (env_is(*e, "CUDA_VISIBLE_DEVICES")) continue;
        if (root_vars && (env_is(*e, "OMPI_ALLOW_RUN_AS_ROOT") ||
                          env_is(*e, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")))
            continue;
        list_add(env, *e);
    }
    list_add_owned(env, cuda_entry(req->gpus, req->n_gpus));
    if (multi) {
        /* mpirun's parent-death SIGUSR1 is lost when mocod dies before the ranks exist; the
         * ranks also watch mocod themselves and stop cleanly when it is gone. */
        char watch[64];
        snprintf(watch, sizeof watch, "MOCO_STOP_WHEN_GONE=%ld", (long)getpid());
        list_add_owned(env, strdup(watch));
    }
    if (root_vars) {
        list_add(env, "OMPI_ALLOW_RUN_AS_ROOT=1");
        list_add(env, "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1");
    }
}

static void build_argv(StrList *argv, const LaunchRequest *req, int ranks)
{
    if (ranks <= 1) {
        list_add(argv, req->moco_train);
        add_worker_args(argv, req, 0);
        return;
    }
    list_add(argv, req->mpirun);
    list_add(argv, "--bind-to");
    list_add(argv, "none");
    list_add(argv, "--oversubscribe");
    list_add(argv, "--mca");
    list_add(argv, "odls_base_sigkill_timeout");
    list_addf(argv, "%d", LAUNCH_MPIRUN_SIGKILL_S);
    if (req->n_gpus <= 0) {
        list_add(argv, "-np");
        list_addf(argv, "%d", ranks);
        list_add(argv, req->moco_train);
        add_worker_args(argv, req, 1);
        return;
    }
    /* One app context per rank: `-x` belongs to its context, so each rank sees one device. */
    for (int r = 0; r < req->n_gpus; r++) {
        if (r > 0) list_add(argv, ":");
        list_add(argv, "-np");
        list_add(argv, "1");
        list_add(argv, "-x");
        list_addf(argv, "CUDA_VISIBLE_DEVICES=%d", req->gpus[r]);
        list_add(argv, req->moco_train);
        add_worker_args(argv, req, 1);
    }
}

/* An argument as a shell would need it: bare when it holds only safe characters, else in
 * single quotes. The log line is for a user who wants to rerun the worker by hand. */
static int needs_quotes(const char *s)
{
    if (!*s) return 1;
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "_-./=:,+@%", *p))
            return 1;
    return 0;
}

static char *join_display(char *const *argv, const char *cuda)
{
    size_t cap = strlen(cuda) + 2;
    for (char *const *a = argv; *a; a++) cap += 4 * strlen(*a) + 3;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t len = (size_t)snprintf(out, cap, "%s", cuda);
    for (char *const *a = argv; *a; a++) {
        out[len++] = ' ';
        if (!needs_quotes(*a)) {
            len += (size_t)snprintf(out + len, cap - len, "%s", *a);
            continue;
        }
        out[len++] = '\'';
        for (const char *p = *a; *p; p++) {
            if (*p == '\'') { /* close, escaped quote, reopen */
                memcpy(out + len, "'\\''", 4);
                len += 4;
            } else {
                out[len++] = *p;
            }
        }
        out[len++] = '\'';
    }
    out[len] = '\0';
    return out;
}

int launch_command_build(const LaunchRequest *req, LaunchCommand *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int ranks = req->ranks > 1 ? req->ranks : 1;
    int multi = ranks > 1;
    StrList argv = {0}, env = {0};
    build_argv(&argv, req, ranks);
    build_env(&env, req, multi);
    char *cuda = cuda_entry(req->gpus, req->n_gpus);
    char *display = !argv.failed && cuda ? join_display(argv.items, cuda) : NULL;
    free(cuda);
    if (argv.failed || env.failed || !display) {
        list_free(&argv);
        list_free(&env);
        free(display);
        snprintf(err, errlen, "out of memory building the worker's command line");
        return -1;
    }
    out->argv = argv.items;
    out->program = argv.items[0];
    out->env = env.items;
    out->ranks = ranks;
    out->events_fd3 = !multi;
    out->display = display;
    return 0;
}

void launch_command_free(LaunchCommand *c)
{
    if (!c) return;
    for (char **a = c->argv; a && *a; a++) free(*a);
    for (char **e = c->env; e && *e; e++) free(*e);
    free(c->argv);
    free(c->env);
    free(c->display);
    memset(c, 0, sizeof *c);
}

static int is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int launch_find_program(const char *name, const char *path_env, char *out, size_t n)
{
    if (!name || !name[0]) return -1;
    if (strchr(name, '/')) {
        if (!is_executable_file(name) || strlen(name) >= n) return -1;
        memcpy(out, name, strlen(name) + 1);
        return 0;
    }
    if (!path_env || !path_env[0]) path_env = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path_env;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dir_len = colon ? (size_t)(colon - p) : strlen(p);
        /* Only absolute entries: the worker starts in the job's folder, and a daemon should
         * not run a program found relative to wherever it was started. */
        if (dir_len > 0 && p[0] == '/') {
            int len = snprintf(out, n, "%.*s/%s", (int)dir_len, p, name);
            if (len > 0 && (size_t)len < n && is_executable_file(out)) return 0;
        }
        if (!colon) break;
        p = colon + 1;
    }
    out[0] = '\0';
    return -1;
}

/* job_procs.c — a job's processes, found in /proc by their command line; see job_procs.h. */
#include "daemon/job_procs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Enough for moco-train's and mpirun's command lines (a GPU job repeats the worker's arguments
 * once per rank; a longer line is read as far as this, which still holds the first --config). */
#define CMDLINE_MAX 65536

/* 1 when arg names a file called spec.json inside the folder `dir` points at. */
static int is_job_spec(const char *arg, const struct stat *dir)
{
    const char *slash = strrchr(arg, '/');
    if (!slash || strcmp(slash + 1, "spec.json") != 0) return 0;
    char parent[4096];
    size_t len = slash == arg ? 1 : (size_t)(slash - arg);
    if (len >= sizeof parent) return 0;
    memcpy(parent, arg, len);
    parent[len] = '\0';
    struct stat st;
    return stat(parent, &st) == 0 && st.st_dev == dir->st_dev && st.st_ino == dir->st_ino;
}

/* 1 when the process's NUL-separated arguments hold `--config <job dir>/spec.json`. */
static int names_job(pid_t pid, const struct stat *dir, char *buf)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, CMDLINE_MAX - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
        if (got == CMDLINE_MAX - 1) break;
    }
    close(fd);
    if (got == 0) return 0; /* a zombie (or a kernel thread): nothing left to stop */
    buf[got] = '\0';
    const char *prev = NULL;
    for (size_t i = 0; i < got;) {
        const char *arg = buf + i;
        if (prev && strcmp(prev, "--config") == 0 && is_job_spec(arg, dir)) return 1;
        prev = arg;
        i += strlen(arg) + 1;
    }
    return 0;
}

int job_procs_find(const char *job_dir, pid_t *pids, int max)
{
    struct stat dir;
    if (stat(job_dir, &dir) != 0) return 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    char *buf = malloc(CMDLINE_MAX);
    if (!buf) {
        closedir(d);
        return 0;
    }
    pid_t self = getpid();
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || v <= 1 || (pid_t)v == self) continue;
        if (!names_job((pid_t)v, &dir, buf)) continue;
        if (found < max) pids[found] = (pid_t)v;
        found++;
    }
    free(buf);
    closedir(d);
    return found;
}

int job_procs_signal(const char *job_dir, int sig)
{
    enum { MAX = 1024 };
    pid_t pids[MAX];
    int n = job_procs_find(job_dir, pids, MAX);
    for (int i = 0; i < n && i < MAX; i++) kill(pids[i], sig);
    return n;
}

/* stop_signal.c — the clean-stop flag set by SIGTERM/SIGINT/SIGHUP/SIGUSR1; see stop_signal.h. */
#include "train/stop_signal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
    if (stop_requested) { /* a second Ctrl-C: stop now (checkpoint writes are atomic) */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
}

/* SIGHUP (the terminal or ssh session of a run went away; mocod died: it is a worker's
 * parent-death signal, which a dying multi-threaded parent may send several times; or the run's
 * process group was orphaned while stopped, which the kernel follows with SIGHUP and SIGCONT)
 * asks for the same clean stop, but never counts as the second request: repeated or on top of a
 * SIGTERM, it must not turn into a stop without checkpoint. SIGUSR1 is the same request sent
 * through mpirun, which forwards SIGUSR1 to every rank unchanged (a SIGTERM to mpirun becomes
 * SIGTERM and, soon after, SIGKILL for the ranks). */
static void request_stop_on_hangup(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void stop_handlers_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = request_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = request_stop_on_hangup;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    /* Past a file-size limit (ulimit -f) a write fails with EFBIG and the save reports it,
     * naming the checkpoint, instead of the process dying of SIGXFSZ mid-write. */
    signal(SIGXFSZ, SIG_IGN);
}

/* State and start time (field 3 and 22 of /proc/PID/stat), or -1 when there is no such process.
 * The start time tells a reused pid from the process we watch. */
static long long process_start_time(long pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] != ' ') return -1;
    *state = p[2];
    p += 3;
    for (int field = 4; field < 22; field++) { /* skip to field 22 */
        p = strchr(p + 1, ' ');
        if (!p) return -1;
    }
    return strtoll(p + 1, NULL, 10);
}

int stop_watched_process_gone(void)
{
    static int init, watching;
    static long pid;
    static long long started;
    if (!init) {
        init = 1;
        const char *v = getenv("MOCO_STOP_WHEN_GONE");
        char state = 0;
        pid = v ? strtol(v, NULL, 10) : 0;
        started = pid > 0 ? process_start_time(pid, &state) : -1;
        watching = pid > 0;
        if (watching && (started < 0 || state == 'Z' || state == 'X')) return 1; /* gone already */
    }
    if (!watching) return 0;
    char state = 0;
    long long now = process_start_time(pid, &state);
    return now < 0 || now != started || state == 'Z' || state == 'X';
}

/* stop_signal.c — the clean-stop flag set by SIGTERM/SIGINT/SIGHUP/SIGUSR1; see stop_signal.h. */
#include "train/stop_signal.h"

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

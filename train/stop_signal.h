/* stop_signal.h — SIGTERM/SIGINT (and SIGHUP, SIGUSR1) ask a training command to stop cleanly.
 *
 * The first signal sets stop_requested; the loop finishes its current step, writes a
 * checkpoint to resume from and exits with status 3, so nothing is lost when the daemon
 * pauses a job or a user presses Ctrl-C. A second signal stops at once (checkpoint writes
 * are atomic, so that too leaves the previous checkpoint intact).
 */
#ifndef MOCO_STOP_SIGNAL_H
#define MOCO_STOP_SIGNAL_H

#include <signal.h>

extern volatile sig_atomic_t stop_requested;

/* Installs the handlers, and ignores SIGXFSZ so that a file-size limit makes a checkpoint
 * save fail with a message instead of killing the process mid-write. */
void stop_handlers_install(void);

/* MOCO_STOP_WHEN_GONE=PID in the environment (mocod sets it for the ranks of a multi-rank job):
 * 1 once that process has ended (or is a zombie), a clean-stop request like a signal. mpirun's
 * parent-death signal cannot reach ranks that did not exist yet; this closes that window.
 * 0 when the variable is not set. */
int stop_watched_process_gone(void);

#endif

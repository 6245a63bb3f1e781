/* progress.h — the human-readable progress line on stderr.
 *
 *   epoch 2/6  step 31/15 (93/90)  loss 6.4321  acc1 12.50  acc5 31.25  lr 0.0581  img/s 85.2  ETA 3m12s
 *
 * On a terminal the line redraws in place; otherwise (a log file, the daemon) one line is
 * printed every print_every steps. The ETA uses the mean step time of the last steps, which
 * follows speed changes (warm-up, other load) without jumping around at every step.
 */
#ifndef MOCO_PROGRESS_H
#define MOCO_PROGRESS_H

#include <stdint.h>

#define PROGRESS_WINDOW 32

typedef struct {
    int is_tty;
    int64_t total_steps;
    double window[PROGRESS_WINDOW]; /* recent step durations, seconds */
    int window_count, window_pos;
} Progress;

/* Set on the ranks other than 0 of a multi-rank run: progress lines of work every rank does
 * (the kNN monitor's features) are printed once, by rank 0. */
extern int progress_quiet;

void progress_init(Progress *p, int64_t total_steps);
void progress_step_time(Progress *p, double seconds);
double progress_eta_seconds(const Progress *p, int64_t steps_done);
double progress_images_per_s(const Progress *p, int batch);
/* Formats seconds as 1h02m, 3m12s or 42s. */
void format_duration(double seconds, char *out, int len);
/* acc1 or acc5 NaN (undefined, e.g. top-5 of fewer than 5 classes) prints as n/a. */
void progress_print(Progress *p, int epoch, int epochs, int batch, int batches, int64_t step,
                    float loss, float acc1, float acc5, double lr, int images_per_step);
/* Ends a redrawn line so that the next message starts on its own line. */
void progress_break(Progress *p);

#endif

/* progress.c — see progress.h. */
#include "train/progress.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

int progress_quiet;

void progress_init(Progress *p, int64_t total_steps)
{
    p->is_tty = isatty(2);
    p->total_steps = total_steps;
    p->window_count = 0;
    p->window_pos = 0;
}

void progress_step_time(Progress *p, double seconds)
{
    p->window[p->window_pos] = seconds;
    p->window_pos = (p->window_pos + 1) % PROGRESS_WINDOW;
    if (p->window_count < PROGRESS_WINDOW) p->window_count++;
}

static double mean_step_seconds(const Progress *p)
{
    if (p->window_count == 0) return 0;
    double sum = 0;
    for (int i = 0; i < p->window_count; i++) sum += p->window[i];
    return sum / p->window_count;
}

double progress_eta_seconds(const Progress *p, int64_t steps_done)
{
    int64_t left = p->total_steps - steps_done;
    return left > 0 ? mean_step_seconds(p) * (double)left : 0;
}

double progress_images_per_s(const Progress *p, int batch)
{
    double s = mean_step_seconds(p);
    return s > 0 ? batch / s : 0;
}

void format_duration(double seconds, char *out, int len)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(out, len, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) snprintf(out, len, "%ldm%02lds", s / 60, s % 60);
    else snprintf(out, len, "%lds", s);
}

void progress_print(Progress *p, int epoch, int epochs, int batch, int batches, int64_t step,
                    float loss, float acc1, float acc5, double lr, int images_per_step)
{
    char eta[32], a1[16], a5[16];
    format_duration(progress_eta_seconds(p, step), eta, sizeof eta);
    /* NaN marks an accuracy that is undefined (top-5 of fewer than 5 classes). */
    snprintf(a1, sizeof a1, isnan(acc1) ? "n/a" : "%.2f", (double)acc1);
    snprintf(a5, sizeof a5, isnan(acc5) ? "n/a" : "%.2f", (double)acc5);
    fprintf(stderr, "%sepoch %d/%d  step %d/%d  loss %.4f  acc1 %s  acc5 %s  lr %.5g  img/s %.1f  ETA %s%s",
            p->is_tty ? "\r\033[K" : "", epoch + 1, epochs, batch, batches, loss, a1, a5, lr,
            progress_images_per_s(p, images_per_step), eta, p->is_tty ? "" : "\n");
    fflush(stderr);
}

void progress_break(Progress *p)
{
    if (p->is_tty) fputc('\n', stderr);
}

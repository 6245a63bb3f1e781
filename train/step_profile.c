/* step_profile.c — see step_profile.h. Single-threaded by design: regions are timed from the
 * thread that calls the kernels, which run their own OpenMP teams inside. */
#include "train/step_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int enabled = -1;
static ProfPhase cur_phase;
static double cell[PHASE_COUNT][OP_COUNT];

static const char *phase_names[PHASE_COUNT] = {"query fwd", "key fwd", "query bwd", "rest"};
static const char *op_names[OP_COUNT] = {"conv fwd", "conv bwd data", "conv bwd weight",
                                         "bn fwd",   "bn bwd",        "elementwise",
                                         "pool",     "head/linear",   "momentum update",
                                         "logits/loss", "zero grad",  "sgd", "copies",
                                         "collectives"};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int step_profile_enabled(void)
{
    if (enabled < 0) {
        const char *v = getenv("MOCO_PROFILE");
        enabled = v && strcmp(v, "0") != 0;
    }
    return enabled;
}

void step_profile_phase(ProfPhase phase) { cur_phase = phase; }

double step_profile_begin(void) { return step_profile_enabled() ? now() : 0; }

void step_profile_end(ProfOp op, double t0)
{
    if (step_profile_enabled()) cell[cur_phase][op] += now() - t0;
}

void step_profile_report(void)
{
    if (!step_profile_enabled()) return;
    double total = 0;
    for (int p = 0; p < PHASE_COUNT; p++)
        for (int o = 0; o < OP_COUNT; o++) total += cell[p][o];
    fprintf(stderr, "profile: %-16s", "op \\ phase");
    for (int p = 0; p < PHASE_COUNT; p++) fprintf(stderr, " %10s", phase_names[p]);
    fprintf(stderr, " %10s %6s\n", "total s", "share");
    for (int o = 0; o < OP_COUNT; o++) {
        double row = 0;
        fprintf(stderr, "profile: %-16s", op_names[o]);
        for (int p = 0; p < PHASE_COUNT; p++) {
            fprintf(stderr, " %10.3f", cell[p][o]);
            row += cell[p][o];
        }
        fprintf(stderr, " %10.3f %5.1f%%\n", row, total > 0 ? 100 * row / total : 0);
    }
    fprintf(stderr, "profile: total %.3f s\n", total);
    memset(cell, 0, sizeof cell);
}

void step_profile_reset(void) { memset(cell, 0, sizeof cell); }

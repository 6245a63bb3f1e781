/* step_profile.h — optional per-op timing of training steps, for finding where a step's time
 * goes (docs/performance.md). Off unless the environment sets MOCO_PROFILE=1; then every
 * timed region adds its wall time to a (phase, op) cell and step_profile_report prints the
 * table to stderr. Timing costs two clock reads per region, and nothing when off.
 */
#ifndef MOCO_STEP_PROFILE_H
#define MOCO_STEP_PROFILE_H

typedef enum {
    PHASE_QUERY_FWD, PHASE_KEY_FWD, PHASE_QUERY_BWD, PHASE_STEP_REST, PHASE_COUNT
} ProfPhase;

typedef enum {
    OP_CONV_FWD, OP_CONV_BWD_DATA, OP_CONV_BWD_WEIGHT, OP_BN_FWD, OP_BN_BWD, OP_ELEMENTWISE,
    OP_POOL, OP_HEAD, OP_MOMENTUM, OP_LOSS, OP_ZERO_GRAD, OP_SGD, OP_COPY, OP_COMM, OP_COUNT
} ProfOp;

int step_profile_enabled(void);
void step_profile_phase(ProfPhase phase);  /* later regions are charged to this phase */
double step_profile_begin(void);           /* 0 when off */
void step_profile_end(ProfOp op, double t0);
void step_profile_report(void);            /* prints and clears; no-op when off */
void step_profile_reset(void);             /* clears (e.g. after warm-up steps) */

#endif

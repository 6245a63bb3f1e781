/* optim.h — SGD with momentum and coupled weight decay (torch.optim.SGD semantics) and the
 * per-epoch learning-rate schedules of the official main_moco.py (adjust_learning_rate).
 *
 * SGD step for every learnable p (PyTorch 1.x, dampening 0, no Nesterov):
 *   d_p = grad + wd·p;  buf = d_p on the first step, else buf = momentum·buf + d_p;
 *   p -= lr·buf
 * Momentum buffers live in one [n_learn] allocation parallel to the ParamSet's learnables.
 */
#ifndef MOCO_OPTIM_H
#define MOCO_OPTIM_H

#include "train/config.h"
#include "train/params.h"

typedef struct {
    float momentum, weight_decay;
    size_t n;            /* learnable floats */
    float *buf;          /* [n] momentum buffers */
    int has_buf;         /* 0 until the first step (or a loaded state) fills buf */
} Sgd;

void sgd_init(Sgd *o, const ParamSet *ps, float momentum, float weight_decay);
void sgd_free(Sgd *o);
void sgd_step(Sgd *o, ParamSet *ps, float lr);

/* Learning rate for an epoch (0-based) as main_moco.py: cos: lr·0.5·(1+cos(π·epoch/epochs));
 * step: lr·0.1^(number of milestones <= epoch). */
double lr_for_epoch(const JobConfig *cfg, int epoch);

#endif

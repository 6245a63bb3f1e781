/* optim.c — SGD with momentum and coupled weight decay, and the official LR schedules.
 * See optim.h for the exact update. */
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void sgd_init(Sgd *o, const ParamSet *ps, float momentum, float weight_decay)
{
    memset(o, 0, sizeof *o);
    o->momentum = momentum;
    o->weight_decay = weight_decay;
    o->n = ps->n_learn;
    o->buf = xaligned_alloc(o->n * sizeof(float));
}

void sgd_free(Sgd *o)
{
    free(o->buf);
    memset(o, 0, sizeof *o);
}

void sgd_step(Sgd *o, ParamSet *ps, float lr)
{
    if (ps->n_learn != o->n) die("sgd: optimizer built for a different model");
    float *p = ps->data, *g = ps->grad, *buf = o->buf;
    const float wd = o->weight_decay, mom = o->momentum, neg_lr = -lr;
    const int first = !o->has_buf;
    const size_t n = o->n;
    /* Each operation rounded to float separately, as PyTorch's kernels do. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float b = first ? d : mom * buf[i] + d;
        buf[i] = b;
        p[i] = p[i] + neg_lr * b;
    }
    o->has_buf = 1;
}

double lr_for_epoch(const JobConfig *cfg, int epoch)
{
    double lr = cfg->optim.lr;
    if (cfg->optim.schedule == SCHEDULE_COS) {
        lr *= 0.5 * (1.0 + cos(M_PI * epoch / cfg->optim.epochs));
    } else {
        for (int i = 0; i < cfg->optim.n_milestones; i++)
            lr *= epoch >= cfg->optim.milestones[i] ? 0.1 : 1.0;
    }
    return lr;
}

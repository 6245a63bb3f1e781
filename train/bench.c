/* bench.c — `moco-train bench --config FILE [--steps N]`.
 *
 * Runs full MoCo training steps (both encoders, loss, backward, SGD) of the config's model and
 * batch on synthetic normalized inputs, after warm-up steps that page in every buffer, and
 * prints `img/s: X` as its last line. No data loading is timed: this measures the compute
 * engine, which bench/moco_step_vs_torch.py compares with PyTorch doing the same step.
 */
#include "train/bench.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "data/rng.h"
#include "kernels/kernels.h"
#include "train/config.h"
#include "train/events.h"
#include "train/moco.h"
#include "train/step_profile.h"

#define BENCH_WARMUP_STEPS 2

int bench_main(const CliArgs *args)
{
    char err[2048];
    if (!args->config) die("bench needs --config FILE");
    JobConfig cfg;
    if (config_load_ex(args->config, args->sets, args->n_sets, CONFIG_DATA_OPTIONAL, &cfg, err, sizeof err) != 0)
        die("%s", err);
    kernels_set_threads(cfg.resources.threads);
    int steps = args->steps > 0 ? args->steps : 10;
    int n = cfg.optim.batch_size, s = cfg.data.image_size;
    size_t count = (size_t)n * s * s * 3;
    float *im_q = xmalloc(count * sizeof *im_q), *im_k = xmalloc(count * sizeof *im_k);
    Rng rng;
    rng_init(&rng, cfg.seed, 0xBE7C, 0, 0);
    for (size_t i = 0; i < count; i++) {
        im_q[i] = (float)rng_normal(&rng);
        im_k[i] = (float)rng_normal(&rng);
    }
    int32_t *perm = xmalloc((size_t)n * sizeof *perm);
    rng_permutation(&rng, n, perm);

    fprintf(stderr, "bench: %s batch %d, image %d: %d warm-up + %d timed steps (a ResNet-50 step at "
            "batch 32 takes ~10 s on 2 cores)...\n", cfg.model.arch, n, s, BENCH_WARMUP_STEPS, steps);
    Moco *m = moco_create(&cfg, n, comm_single());
    float lr = (float)cfg.optim.lr;
    for (int i = 0; i < BENCH_WARMUP_STEPS; i++) moco_train_step(m, im_q, im_k, perm, lr);
    step_profile_reset(); /* MOCO_PROFILE=1: time the measured steps only */
    double t0 = wall_time();
    float loss = 0;
    for (int i = 0; i < steps; i++) loss = moco_train_step(m, im_q, im_k, perm, lr).loss;
    double seconds = wall_time() - t0;
    fprintf(stdout, "bench: %s%s batch %d image %d K %d, %d steps in %.3f s (last loss %.4f), backend %s\n",
            cfg.model.arch, cfg.model.cifar_stem ? " (CIFAR stem)" : "", n, s, cfg.moco.k, steps,
            seconds, loss, kernels_backend_name());
    fprintf(stdout, "img/s: %.2f\n", (double)n * steps / seconds);
    step_profile_report();
    moco_destroy(m);
    free(perm);
    free(im_q);
    free(im_k);
    config_free(&cfg);
    return 0;
}

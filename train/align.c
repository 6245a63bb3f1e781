/* align.c — alignment mode: S MoCo steps on fixed inputs, state in and everything out, so a
 * PyTorch reference can be compared tensor by tensor, on one rank or under mpirun. See
 * align.h and DESIGN §4. */
#include "train/align.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "kernels/kernels.h"
#include "train/comm.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/moco.h"
#include "train/safetensors.h"

#define MAX_OVERRIDES 64

/* A usage error: the problem, the usage line, exit status 2. */
static int usage_error(const char *fmt, ...) MOCO_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("moco-train: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: moco-train align --config C --state IN.safetensors "
                    "--batch B.safetensors --out OUT.safetensors [--set key.path=value ...] "
                    "[--rank-states DIR]\n");
    return 2;
}

/* im [S, N, 3, H, W] -> checks and returns the tensor. */
static const StTensor *image_tensor(const StFile *b, const char *name)
{
    const StTensor *t = st_find(b, name);
    if (!t) die("align: batch file has no '%s'", name);
    if (t->dtype != ST_F32 || t->ndim != 5 || t->shape[2] != 3 || t->shape[3] != t->shape[4])
        die("align: '%s' must be float32 [S, N, 3, H, W] with H == W", name);
    return t;
}

/* One sample NCHW -> NHWC for step s. */
static void nchw_to_nhwc(const float *src, int n, int h, int w, float *dst)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[(((size_t)i * h + y) * w + x) * 3 + c] =
                        src[(((size_t)i * 3 + c) * h + y) * w + x];
}

/* --rank-states: this rank's whole state after `step`, for the all-ranks-agree checks. */
static void write_rank_state(Moco *m, const char *dir, int rank, int step)
{
    char path[4096], err[1024];
    if (make_dirs(dir, err, sizeof err) != 0) die("align: --rank-states: %s", err);
    snprintf(path, sizeof path, "%s/rank%d-step%d.safetensors", dir, rank, step);
    StWriter *w = st_writer_new();
    moco_write_state(m, w);
    if (st_writer_save(w, path, err, sizeof err) != 0) die("align: %s", err);
    st_writer_free(w);
}

int align_main(int argc, char **argv)
{
    const char *config = NULL, *state = NULL, *batch = NULL, *out = NULL, *rank_states = NULL;
    const char *overrides[MAX_OVERRIDES];
    int n_over = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--config") == 0) slot = &config;
        else if (strcmp(a, "--state") == 0) slot = &state;
        else if (strcmp(a, "--batch") == 0) slot = &batch;
        else if (strcmp(a, "--out") == 0) slot = &out;
        else if (strcmp(a, "--rank-states") == 0) slot = &rank_states;
        else if (strcmp(a, "--set") != 0) return usage_error("align: unknown option '%s'", a);
        if (i + 1 >= argc || !argv[i + 1][0]) return usage_error("align: %s needs a value", a);
        if (slot && *slot) return usage_error("align: %s given twice", a);
        if (slot) {
            *slot = argv[++i];
        } else {
            if (n_over == MAX_OVERRIDES) return usage_error("align: more than %d --set options", MAX_OVERRIDES);
            overrides[n_over++] = argv[++i];
        }
    }
    if (!config || !state || !batch || !out)
        return usage_error("align: --config, --state, --batch and --out are required");

    Comm *comm = comm_init();
    const int R = comm->size, rank = comm->rank;
    char ranks_set[48]; /* the launcher's rank count, for the config's per-rank checks */
    snprintf(ranks_set, sizeof ranks_set, "resources.ranks=%d", R);
    if (R > 1) {
        if (n_over == MAX_OVERRIDES) return usage_error("align: more than %d --set options", MAX_OVERRIDES - 1);
        overrides[n_over++] = ranks_set;
    }
    char err[1024];
    JobConfig cfg;
    /* The batch file holds the images: no data folder is needed. */
    if (config_load_ex(config, overrides, n_over, CONFIG_DATA_OPTIONAL, &cfg, err, sizeof err) != 0)
        die("%s", err);
    kernels_set_threads(cfg.resources.threads > 0 ? cfg.resources.threads : comm_default_threads(comm));

    StFile bf, sf;
    if (st_load(batch, &bf, err, sizeof err) != 0) die("%s", err);
    const StTensor *tq = image_tensor(&bf, "im_q"), *tk = image_tensor(&bf, "im_k");
    for (int d = 0; d < 5; d++)
        if (tq->shape[d] != tk->shape[d]) die("align: im_q and im_k have different shapes");
    if (tq->shape[0] < 1 || tq->shape[1] < 1 || tq->shape[3] < 1 || tq->shape[0] > INT_MAX ||
        tq->shape[1] > INT_MAX || tq->shape[3] > INT_MAX)
        die("align: 'im_q' is [%lld, %lld, 3, %lld, %lld]: S (steps), N (batch) and H must be at least 1",
            (long long)tq->shape[0], (long long)tq->shape[1], (long long)tq->shape[3],
            (long long)tq->shape[4]);
    const int S = (int)tq->shape[0], N = (int)tq->shape[1], H = (int)tq->shape[3];
    const StTensor *tp = st_find(&bf, "perm");
    if (tp && (tp->dtype != ST_I64 || tp->ndim != 2 || tp->shape[0] != S || tp->shape[1] != N))
        die("align: 'perm' must be int64 [S, N] = [%d, %d]", S, N);
    if (tp) { /* each row must be a permutation of 0..N-1, or keys would be lost and repeated */
        unsigned char *hit = xcalloc((size_t)N, 1);
        for (int s = 0; s < S; s++) {
            const int64_t *row = (const int64_t *)tp->data + (size_t)s * N;
            memset(hit, 0, (size_t)N);
            for (int i = 0; i < N; i++) {
                if (row[i] < 0 || row[i] >= N || hit[row[i]])
                    die("align: 'perm' row %d is not a permutation of 0..%d (entry %d is %lld)",
                        s, N - 1, i, (long long)row[i]);
                hit[row[i]] = 1;
            }
        }
        free(hit);
    }
    if (N % R != 0)
        die("align: the batch N=%d cannot be split evenly over %d ranks; give a batch whose N is a "
            "multiple of the number of ranks", N, R);

    /* The given batch is the global batch; the images set the size. */
    const int n = N / R;
    cfg.optim.batch_size = N;
    cfg.data.image_size = H;
    Moco *m = moco_create(&cfg, n, comm);
    if (st_load(state, &sf, err, sizeof err) != 0) die("%s", err);
    if (moco_load_state(m, &sf, err, sizeof err) != 0) die("align: %s: %s", state, err);
    st_free(&sf);

    const size_t sample = (size_t)3 * H * H, per_step = (size_t)N * sample;
    const size_t mine = (size_t)rank * n * sample; /* this rank's rows of each step */
    float *imq = xaligned_alloc((size_t)n * sample * sizeof(float));
    float *imk = xaligned_alloc((size_t)n * sample * sizeof(float));
    int32_t *perm = xmalloc((size_t)N * sizeof(int32_t));
    float *losses = xmalloc((size_t)S * sizeof(float));
    const float lr = (float)cfg.optim.lr;
    for (int s = 0; s < S; s++) {
        nchw_to_nhwc((const float *)tq->data + s * per_step + mine, n, H, H, imq);
        nchw_to_nhwc((const float *)tk->data + s * per_step + mine, n, H, H, imk);
        if (tp) {
            const int64_t *src = (const int64_t *)tp->data + (size_t)s * N;
            for (int i = 0; i < N; i++) perm[i] = (int32_t)src[i];
        }
        MocoStepStats st = moco_train_step(m, imq, imk, tp ? perm : NULL, lr);
        double sums[2] = {st.loss, st.correct1};
        comm_allreduce_sum_f64(comm, sums, 2);
        losses[s] = (float)(sums[0] / R); /* each rank's loss is its mean over equal rows */
        if (rank == 0)
            fprintf(stderr, "align: step %d/%d loss %.6f acc1 %d/%d\n", s + 1, S, losses[s],
                    (int)sums[1], N);
        if (rank_states) write_rank_state(m, rank_states, rank, s + 1);
    }

    /* Every rank's rows of the last step, in global order. */
    const size_t cols = (size_t)moco_queue_len(m) + 1, dim = (size_t)moco_dim(m);
    float *logits = xmalloc((size_t)N * cols * sizeof(float));
    float *q = xmalloc((size_t)N * dim * sizeof(float));
    comm_allgather(comm, moco_last_logits(m), logits, (size_t)n * cols * sizeof(float));
    comm_allgather(comm, moco_last_q(m), q, (size_t)n * dim * sizeof(float));
    if (rank == 0) {
        StWriter *w = st_writer_new();
        int64_t sshape[1] = {S};
        int64_t lshape[2] = {N, (int64_t)cols}, vshape[2] = {N, (int64_t)dim};
        st_writer_add(w, "loss", ST_F32, 1, sshape, losses);
        st_writer_add(w, "logits", ST_F32, 2, lshape, logits);
        st_writer_add(w, "q", ST_F32, 2, vshape, q);
        st_writer_add(w, "k", ST_F32, 2, vshape, moco_last_k_all(m));
        moco_write_grads(m, w);
        moco_write_state(m, w);
        st_writer_add_metadata(w, "format", "mocod-align");
        if (st_writer_save(w, out, err, sizeof err) != 0) die("align: %s", err);
        st_writer_free(w);
    }
    comm_barrier(comm); /* OUT is complete on every rank's return */

    free(logits);
    free(q);
    free(imq);
    free(imk);
    free(perm);
    free(losses);
    st_free(&bf);
    moco_destroy(m);
    config_free(&cfg);
    comm_finalize(comm);
    return 0;
}

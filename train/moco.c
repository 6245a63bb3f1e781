/* moco.c — MoCo v1/v2: encoders, queue, InfoNCE step (on one rank or R, with shuffle BN across
 * ranks and gradient all-reduce as the official DDP code) and checkpoint I/O. See moco.h. */
#include "train/moco.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/rng.h"
#include "kernels/kernels.h"
#include "train/optim.h"
#include "train/resnet.h"
#include "train/shuffle_bn.h"
#include "train/step_profile.h"

/* Stream coordinate of the queue's initial Gaussian ("queu"). */
#define RNG_STREAM_QUEUE 0x71756575ull

struct Moco {
    int n, size, dim, K, shuffle;
    Comm *comm;
    int N;                 /* global batch: n rows on each of comm->size ranks */
    float m, T;
    ParamSet pq, pk;
    Resnet *enc_q, *enc_k;
    Sgd opt;
    float *queue;          /* [dim, K], one key per column */
    int64_t queue_ptr;
    /* per-step buffers, one allocation */
    float *arena;
    float *im_shuffled;    /* [n, S, S, 3] */
    float *im_all;         /* [N, S, S, 3]: every rank's key images (R > 1 with shuffle BN) */
    float *q, *k, *k_shuffled, *q_norms, *k_norms;
    float *k_all, *k_all_shuffled; /* [N, dim]: every rank's keys, in global / shuffled order */
    float *logits, *dlogits;
    float *dq, *dz;
    int32_t *labels;       /* all 0: the positive is column 0 */
    /* One scratch region for both encoders' passes (they never run at the same time) and
     * for checkpoint export (4 slots of conv-weight floats: q, k, momentum, grads), which
     * happens between steps, when no pass is running. */
    void *scratch;
    float *export_scratch;
    size_t export_slot;
};

static void moco_sync_from_rank0(Moco *m);

static Resnet *build_encoder(const JobConfig *cfg, int local_batch, ParamSet *ps,
                             ResnetMemory memory)
{
    ResnetConfig rc = {
        .depth = resnet_depth_from_arch(cfg->model.arch),
        .cifar_stem = cfg->model.cifar_stem,
        .head = cfg->model.mlp ? HEAD_MLP : HEAD_FC,
        .out_dim = cfg->model.dim,
        .bn_splits = cfg->moco.bn_splits,
        .image_size = cfg->data.image_size,
        .max_batch = local_batch,
        .memory = memory,
    };
    if (!rc.depth) die("model.arch '%s' is not supported (resnet18, resnet34, resnet50)",
                       cfg->model.arch);
    params_init(ps);
    Resnet *net = resnet_create(&rc, ps);
    params_finalize(ps);
    return net;
}

static void init_queue(Moco *m, uint64_t seed)
{
    /* torch.randn(dim, K) normalized along dim 0: every column a unit vector. */
    Rng r;
    rng_init(&r, seed, RNG_STREAM_QUEUE, 0, 0);
    for (size_t i = 0; i < (size_t)m->dim * m->K; i++) m->queue[i] = (float)rng_normal(&r);
    for (int j = 0; j < m->K; j++) {
        double ss = 0;
        for (int d = 0; d < m->dim; d++) ss += (double)m->queue[(size_t)d * m->K + j] * m->queue[(size_t)d * m->K + j];
        double norm = sqrt(ss);
        if (norm < 1e-12) norm = 1e-12;
        for (int d = 0; d < m->dim; d++) m->queue[(size_t)d * m->K + j] = (float)(m->queue[(size_t)d * m->K + j] / norm);
    }
    m->queue_ptr = 0;
}

Moco *moco_create(const JobConfig *cfg, int local_batch, Comm *comm)
{
    const int K = cfg->moco.k, B = cfg->optim.batch_size;
    if (local_batch < 1) die("moco: local batch must be positive (got %d)", local_batch);
    if ((long)local_batch * comm->size != B)
        die("moco: the local batch %d on %d ranks is not the global batch optim.batch_size %d",
            local_batch, comm->size, B);
    if (K < 1 || B < 1 || K % B != 0)
        die("moco.k (%d) must be a multiple of the global batch optim.batch_size (%d): the queue "
            "is replaced one whole batch of keys at a time", K, B);
    if (cfg->moco.bn_splits < 1 || local_batch % cfg->moco.bn_splits != 0)
        die("the local batch (%d) must be a multiple of moco.bn_splits (%d)", local_batch,
            cfg->moco.bn_splits);
    if (cfg->model.dim < 1) die("model.dim must be positive (got %d)", cfg->model.dim);

    Moco *m = xcalloc(1, sizeof *m);
    m->n = local_batch;
    m->comm = comm;
    m->N = B;
    m->size = cfg->data.image_size;
    m->dim = cfg->model.dim;
    m->K = K;
    m->shuffle = cfg->moco.shuffle_bn;
    m->m = (float)cfg->moco.m;
    m->T = (float)cfg->moco.t;

    m->enc_q = build_encoder(cfg, local_batch, &m->pq, RESNET_TRAIN);
    m->enc_k = build_encoder(cfg, local_batch, &m->pk, RESNET_FORWARD_ONLY);
    resnet_init(m->enc_q, cfg->seed);
    params_copy(&m->pk, &m->pq);  /* encoder_k starts as a copy of encoder_q */
    sgd_init(&m->opt, &m->pq, (float)cfg->optim.momentum, (float)cfg->optim.weight_decay);

    const size_t n = (size_t)local_batch, dim = (size_t)m->dim, cols = (size_t)K + 1;
    const size_t img = n * m->size * m->size * 3, N = (size_t)B;
    const size_t img_all = comm->size > 1 && m->shuffle ? N * m->size * m->size * 3 : 0;
    const size_t conv = params_export_scratch_floats(&m->pq);
    m->export_slot = conv;
    size_t total = img + img_all + 4 * n * dim + 2 * n + 2 * n * cols + 2 * n * dim + n +
                   dim * (size_t)K + 2 * N * dim;
    m->arena = xaligned_alloc(total * sizeof(float));
    float *p = m->arena;
    m->queue = p; p += dim * (size_t)K;
    m->im_shuffled = p; p += img;
    m->im_all = p; p += img_all;
    m->k_all = p; p += N * dim;
    m->k_all_shuffled = p; p += N * dim;
    m->q = p; p += n * dim;
    m->k = p; p += n * dim;
    m->k_shuffled = p; p += n * dim;
    m->dq = p; p += n * dim;
    m->dz = p; p += n * dim;
    m->q_norms = p; p += n;
    m->k_norms = p; p += n;
    m->logits = p; p += n * cols;
    m->dlogits = p; p += n * cols;
    m->labels = (int32_t *)p; p += n;  /* zeroed by xaligned_alloc: label 0 everywhere */
    (void)p;
    size_t scratch = resnet_scratch_bytes(m->enc_q);
    if (resnet_scratch_bytes(m->enc_k) > scratch) scratch = resnet_scratch_bytes(m->enc_k);
    if (4 * conv * sizeof(float) > scratch) scratch = 4 * conv * sizeof(float);
    m->scratch = xaligned_alloc(scratch);
    resnet_use_scratch(m->enc_q, m->scratch);
    resnet_use_scratch(m->enc_k, m->scratch);
    m->export_scratch = m->scratch;
    init_queue(m, cfg->seed);
    moco_sync_from_rank0(m);
    return m;
}

/* Every rank holds rank 0's model: parameters, buffers, momentum buffers, queue (DDP
 * broadcasts the module's state from rank 0 when it wraps the model). */
static void moco_sync_from_rank0(Moco *m)
{
    Comm *c = m->comm;
    if (c->size == 1) return;
    ParamSet *sets[2] = {&m->pq, &m->pk};
    for (int i = 0; i < 2; i++) {
        comm_bcast(c, sets[i]->data, (sets[i]->n_learn + sets[i]->n_buf) * sizeof(float), 0);
        comm_bcast(c, sets[i]->i64, sets[i]->n_i64 * sizeof(int64_t), 0);
    }
    comm_bcast(c, m->opt.buf, m->pq.n_learn * sizeof(float), 0);
    comm_bcast(c, &m->opt.has_buf, sizeof m->opt.has_buf, 0);
    comm_bcast(c, m->queue, (size_t)m->dim * m->K * sizeof(float), 0);
    comm_bcast(c, &m->queue_ptr, sizeof m->queue_ptr, 0);
}

void moco_destroy(Moco *m)
{
    if (!m) return;
    resnet_destroy(m->enc_q);
    resnet_destroy(m->enc_k);
    params_free(&m->pq);
    params_free(&m->pk);
    sgd_free(&m->opt);
    free(m->arena);
    free(m->scratch);
    free(m);
}

/* θk = m·θk + (1−m)·θq over learnable parameters only (BN buffers of encoder_k evolve from
 * its own forward passes). Factors rounded to float first, as PyTorch does with a Python
 * scalar multiplying a float tensor. */
static void momentum_update(Moco *m)
{
    const float mk = m->m, mq = (float)(1.0 - (double)m->m);
    float *k = m->pk.data;
    const float *q = m->pq.data;
    const size_t n = m->pq.n_learn;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) k[i] = k[i] * mk + q[i] * mq;
}

/* The keys of every rank, in rank order (the official concat_all_gather), so that every
 * rank's queue stays the same. */
static void enqueue(Moco *m)
{
    for (int i = 0; i < m->N; i++)
        for (int d = 0; d < m->dim; d++)
            m->queue[(size_t)d * m->K + (size_t)(m->queue_ptr + i)] = m->k_all[(size_t)i * m->dim + d];
    m->queue_ptr = (m->queue_ptr + m->N) % m->K;
}

/* Keys, no gradient, with shuffle BN: rank r runs encoder_k on the shuffled positions
 * [r·n, (r+1)·n) of the global batch, so its BatchNorm statistics come from the images the
 * permutation sent it; the normalized keys are gathered and put back in global order. With
 * one rank the permutation moves rows within the batch, and moco.bn_splits sub-batches
 * stand for the devices. Fills m->k (own rows) and m->k_all (all rows, global order). */
static void key_forward(Moco *m, const float *im_k, const int32_t *perm)
{
    Comm *c = m->comm;
    const int n = m->n, N = m->N, dim = m->dim;
    const size_t img = (size_t)m->size * m->size * 3;
    const float *key_in = im_k, *all = im_k;
    double t;
    if (perm && c->size > 1) {
        t = step_profile_begin();
        comm_allgather(c, im_k, m->im_all, (size_t)n * img * sizeof(float));
        step_profile_end(OP_COMM, t);
        all = m->im_all;
    }
    if (perm) {
        t = step_profile_begin();
        shuffle_take_rows(all, perm, c->rank, n, img, m->im_shuffled);
        step_profile_end(OP_COPY, t);
        key_in = m->im_shuffled;
    }
    step_profile_phase(PHASE_KEY_FWD);
    const float *zk = resnet_forward(m->enc_k, key_in, n, 1);
    step_profile_phase(PHASE_STEP_REST);
    t = step_profile_begin();
    float *mine = perm ? m->k_shuffled : m->k;
    l2norm_forward(n, dim, zk, mine, m->k_norms);
    step_profile_end(OP_LOSS, t);
    t = step_profile_begin();
    float *gathered = perm ? m->k_all_shuffled : m->k_all;
    comm_allgather(c, mine, gathered, (size_t)n * dim * sizeof(float));
    step_profile_end(OP_COMM, t);
    if (perm) {
        unshuffle_rows(m->k_all_shuffled, perm, N, (size_t)dim, m->k_all);
        memcpy(m->k, m->k_all + (size_t)c->rank * n * dim, (size_t)n * dim * sizeof(float));
    }
}

/* DDP's gradient all-reduce: the mean over ranks of each rank's gradient of its local mean
 * loss; then every rank's optimizer takes the same step. */
static void average_gradients(Moco *m)
{
    Comm *c = m->comm;
    if (c->size == 1) return;
    double t = step_profile_begin();
    comm_allreduce_sum_f32(c, m->pq.grad, m->pq.n_learn);
    step_profile_end(OP_COMM, t);
    const float inv = 1.0f / (float)c->size;
    float *g = m->pq.grad;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->pq.n_learn; i++) g[i] *= inv;
}

/* BN running statistics of both encoders from rank 0, as DDP's broadcast_buffers does (it
 * broadcasts them before each forward; doing it after the step leaves the same state at every
 * point a checkpoint or the next step reads). */
static void sync_buffers(Moco *m)
{
    Comm *c = m->comm;
    if (c->size == 1) return;
    double t = step_profile_begin();
    comm_bcast(c, m->pq.data + m->pq.n_learn, m->pq.n_buf * sizeof(float), 0);
    comm_bcast(c, m->pk.data + m->pk.n_learn, m->pk.n_buf * sizeof(float), 0);
    step_profile_end(OP_COMM, t);
}

MocoStepStats moco_train_step(Moco *m, const float *im_q, const float *im_k,
                              const int32_t *perm, float lr)
{
    const int n = m->n, dim = m->dim, K = m->K, cols = K + 1;
    if (!m->shuffle) perm = NULL;

    /* query: the only branch with gradient */
    step_profile_phase(PHASE_QUERY_FWD);
    const float *zq = resnet_forward(m->enc_q, im_q, n, 1);
    step_profile_phase(PHASE_STEP_REST);
    double t = step_profile_begin();
    l2norm_forward(n, dim, zq, m->q, m->q_norms);
    step_profile_end(OP_LOSS, t);

    /* keys, no gradient: momentum update first, then the shuffled forward (shuffle BN) */
    t = step_profile_begin();
    momentum_update(m);
    step_profile_end(OP_MOMENTUM, t);
    if (perm && !is_permutation(perm, m->N))
        die("moco: the key-shuffle permutation is not a permutation of 0..%d", m->N - 1);
    key_forward(m, im_k, perm);
    t = step_profile_begin();

    /* logits = [q·k, q·queue] / T */
    for (int i = 0; i < n; i++) {
        float s = 0;
        for (int d = 0; d < dim; d++) s += m->q[(size_t)i * dim + d] * m->k[(size_t)i * dim + d];
        m->logits[(size_t)i * cols] = s;
    }
    gemm(0, 0, n, K, dim, 1.0f, m->q, dim, m->queue, K, 0.0f, m->logits + 1, cols);
    for (size_t i = 0; i < (size_t)n * cols; i++) m->logits[i] /= m->T;

    MocoStepStats st = {0};
    st.n = n;
    st.loss = softmax_xent_forward_backward(n, cols, m->logits, m->labels, m->dlogits);
    st.correct1 = topk_correct(n, cols, m->logits, m->labels, 1);
    st.correct5 = topk_correct(n, cols, m->logits, m->labels, cols < 5 ? cols : 5);

    /* dq through /T, l_pos (k is detached) and l_neg (the queue as it was before enqueue) */
    for (size_t i = 0; i < (size_t)n * cols; i++) m->dlogits[i] /= m->T;
    gemm(0, 1, n, dim, K, 1.0f, m->dlogits + 1, cols, m->queue, K, 0.0f, m->dq, dim);
    for (int i = 0; i < n; i++) {
        float g = m->dlogits[(size_t)i * cols];
        for (int d = 0; d < dim; d++) m->dq[(size_t)i * dim + d] += g * m->k[(size_t)i * dim + d];
    }
    enqueue(m);

    l2norm_backward(n, dim, m->q, m->dq, m->q_norms, m->dz);
    step_profile_end(OP_LOSS, t);
    t = step_profile_begin();
    params_zero_grad(&m->pq);
    step_profile_end(OP_ZERO_GRAD, t);
    step_profile_phase(PHASE_QUERY_BWD);
    resnet_backward(m->enc_q, m->dz);
    step_profile_phase(PHASE_STEP_REST);
    average_gradients(m);
    t = step_profile_begin();
    sgd_step(&m->opt, &m->pq, lr);
    step_profile_end(OP_SGD, t);
    sync_buffers(m);
    return st;
}

int moco_batch(const Moco *m) { return m->n; }
int moco_dim(const Moco *m) { return m->dim; }
int moco_queue_len(const Moco *m) { return m->K; }
const float *moco_last_logits(const Moco *m) { return m->logits; }
const float *moco_last_q(const Moco *m) { return m->q; }
const float *moco_last_k(const Moco *m) { return m->k; }
const float *moco_last_k_all(const Moco *m) { return m->k_all; }
const float *moco_queue(const Moco *m) { return m->queue; }
int64_t moco_queue_ptr(const Moco *m) { return m->queue_ptr; }
ParamSet *moco_encoder_q(Moco *m) { return &m->pq; }
ParamSet *moco_encoder_k(Moco *m) { return &m->pk; }

const float *moco_embed_eval(Moco *m, const float *im, int n)
{
    const float *z = resnet_forward(m->enc_q, im, n, 0);
    l2norm_forward(n, m->dim, z, m->dz, m->q_norms);
    return m->dz;
}

struct Resnet *moco_encoder_q_net(Moco *m) { return m->enc_q; }

/* ---- checkpoints ------------------------------------------------------------------------- */

static float *slot(Moco *m, int i) { return m->export_scratch + (size_t)i * m->export_slot; }

void moco_write_state(Moco *m, StWriter *w)
{
    params_export(&m->pq, w, "encoder_q.", EXPORT_ALL, NULL, slot(m, 0), NULL);
    params_export(&m->pk, w, "encoder_k.", EXPORT_ALL, NULL, slot(m, 1), NULL);
    int64_t qshape[2] = {m->dim, m->K}, pshape[1] = {1};
    st_writer_add(w, "queue", ST_F32, 2, qshape, m->queue);
    st_writer_add(w, "queue_ptr", ST_I64, 1, pshape, &m->queue_ptr);
    if (m->opt.has_buf)
        params_export(&m->pq, w, "optim.momentum_buffer.encoder_q.", EXPORT_EXTERNAL, m->opt.buf,
                      slot(m, 2), NULL);
}

void moco_write_grads(Moco *m, StWriter *w)
{
    params_export(&m->pq, w, "grad.encoder_q.", EXPORT_GRADS, NULL, slot(m, 3), NULL);
}

static int is_head(const char *name) { return strncmp(name, "fc.", 3) == 0; }

void moco_write_backbone(Moco *m, StWriter *w)
{
    params_export(&m->pq, w, "", EXPORT_ALL, NULL, slot(m, 0), is_head);
}

int moco_load_state(Moco *m, const StFile *f, char *err, size_t errlen)
{
    if (params_import(&m->pq, f, "encoder_q.", EXPORT_ALL, NULL, 0, err, errlen) < 0) return -1;
    int rc = params_import(&m->pk, f, "encoder_k.", EXPORT_ALL, NULL, 1, err, errlen);
    if (rc < 0) return -1;
    if (rc == 1) params_copy(&m->pk, &m->pq);

    const StTensor *q = st_find(f, "queue");
    if (!q) { snprintf(err, errlen, "tensor 'queue' is missing"); return -1; }
    if (q->dtype != ST_F32 || q->ndim != 2 || q->shape[0] != m->dim || q->shape[1] != m->K) {
        snprintf(err, errlen, "tensor 'queue' must be F32 [%d, %d] (model.dim, moco.k)", m->dim,
                 m->K);
        return -1;
    }
    memcpy(m->queue, q->data, (size_t)m->dim * m->K * sizeof(float));
    const StTensor *p = st_find(f, "queue_ptr");
    if (!p) { snprintf(err, errlen, "tensor 'queue_ptr' is missing"); return -1; }
    int64_t ptr;
    if (p->dtype != ST_I64 || p->ndim != 1 || p->shape[0] != 1) {
        snprintf(err, errlen, "tensor 'queue_ptr' must be I64 [1]");
        return -1;
    }
    memcpy(&ptr, p->data, sizeof ptr);
    if (ptr < 0 || ptr >= m->K || ptr % m->N != 0) {
        snprintf(err, errlen, "queue_ptr %lld is not a multiple of the batch %d below K %d",
                 (long long)ptr, m->N, m->K);
        return -1;
    }
    m->queue_ptr = ptr;

    rc = params_import(&m->pq, f, "optim.momentum_buffer.encoder_q.", EXPORT_EXTERNAL, m->opt.buf,
                       1, err, errlen);
    if (rc < 0) return -1;
    m->opt.has_buf = rc == 0;
    moco_sync_from_rank0(m);
    return 0;
}

/* pretrain.c — the MoCo pretraining loop (the equivalent of the official main_moco.py).
 *
 * Per step: the loader hands two augmented views of a batch, the key-shuffle permutation is
 * drawn from the stream (seed, "shuffle", step), moco_train_step runs the official step, and
 * metrics go to stderr (progress line) and the event stream. Per epoch the learning rate is
 * set by the schedule, and checkpoints are written every checkpoint.every_epochs and at the
 * end. SIGTERM/SIGINT stop cleanly after the current step with a checkpoint to resume from,
 * so nothing is lost when the daemon pauses a job or a user presses Ctrl-C.
 *
 * Under mpirun every rank runs this loop on its shard of each epoch (the loader shards as
 * DistributedSampler does); the step's collectives live in moco.c. Rank 0 alone prints,
 * writes events and checkpoints; decisions that end the loop (a stop signal seen by any
 * rank) are agreed on by all ranks at the same step, and metrics are reduced over ranks.
 */
#include "train/pretrain.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "data/loader.h"
#include "data/rng.h"
#include "kernels/kernels.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/events.h"
#include "train/job_config.h"
#include "train/knn_eval.h"
#include "train/moco.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/resnet.h"
#include "train/stop_signal.h"

/* Stream id of the key-shuffle permutations, distinct from the data streams (epoch, sample). */
#define SHUFFLE_STREAM 0x5348554646ULL

/* Running means over the steps since the last report. */
typedef struct {
    double loss, correct1, correct5, rows;
    int steps;
} MetricWindow;

/* The window over every rank: losses are each rank's mean over equal shares of the batch, so
 * their mean over ranks is the global batch's mean. Called at the same step on every rank. */
static void window_reduce(Comm *c, MetricWindow *w)
{
    double v[4] = {w->loss, w->correct1, w->correct5, w->rows};
    comm_allreduce_sum_f64(c, v, 4);
    w->loss = v[0] / c->size;
    w->correct1 = v[1];
    w->correct5 = v[2];
    w->rows = v[3];
}

static void window_add(MetricWindow *w, const MocoStepStats *s)
{
    w->loss += s->loss;
    w->correct1 += s->correct1;
    w->correct5 += s->correct5;
    w->rows += s->n;
    w->steps++;
}

static void emit_metric(const MetricWindow *w, double lr, double images_per_s)
{
    cJSON *e = event_new("metric");
    cJSON_AddNumberToObject(e, "lr", lr);
    cJSON_AddNumberToObject(e, "loss", w->loss / w->steps);
    cJSON_AddNumberToObject(e, "acc1", 100.0 * w->correct1 / w->rows);
    cJSON_AddNumberToObject(e, "acc5", 100.0 * w->correct5 / w->rows);
    cJSON_AddNumberToObject(e, "images_per_s", images_per_s);
    events_emit(e);
}

static void save_checkpoint(Moco *m, const JobConfig *cfg, const CheckpointCursor *cur)
{
    char path[CONFIG_PATH_MAX + 256];
    checkpoint_save(m, cfg, cur, path, sizeof path);
    cJSON *e = event_new("checkpoint");
    cJSON_AddStringToObject(e, "path", path);
    events_emit(e);
    fprintf(stderr, "checkpoint: %s\n", path);
}

/* Refuses, before anything big is allocated, a config whose smallest buffers alone exceed
 * the machine's memory, naming the keys: otherwise the run dies on "out of memory allocating
 * N bytes" (or the kernel's OOM killer ends it) with nothing said about which key to change.
 * These are lower bounds (the queue, the logits and their gradient, both input views and
 * the first layer's output of both encoders); the real need is several times more. */
static void check_memory(const JobConfig *cfg)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return;
    double ram = (double)pages * (double)page, gib = 1024.0 * 1024.0 * 1024.0;
    double batch = cfg->optim.batch_size, s = cfg->data.image_size;
    double stem = cfg->model.cifar_stem ? s : ceil(s / 2.0);
    double queue = 4.0 * cfg->moco.k * cfg->model.dim;
    double logits = 2 * 4.0 * batch * (cfg->moco.k + 1.0);
    double views = 2 * 4.0 * batch * 3 * s * s;
    double first_layer = 2 * 4.0 * batch * 64 * stem * stem;
    /* the last head layer [dim, features]: both encoders, gradient, momentum buffer */
    double features = strcmp(cfg->model.arch, "resnet50") == 0 ? 2048 : 512;
    double head = 4 * 4.0 * features * cfg->model.dim;
    double need = queue + logits + views + first_layer + head;
    if (need <= ram) return;
    const char *biggest = "the images and activations (optim.batch_size x data.image_size^2)";
    double most = views + first_layer;
    if (queue > most) most = queue, biggest = "the queue (moco.k x model.dim)";
    if (logits > most) most = logits, biggest = "the logits (optim.batch_size x moco.k)";
    if (head > most) most = head, biggest = "the projection head (model.dim)";
    die("this config needs more than %.1f GiB but the machine has %.1f GiB of memory, mostly for "
        "%s: moco.k=%d, model.dim=%d, optim.batch_size=%d, data.image_size=%d; lower them",
        need / gib, ram / gib, biggest, cfg->moco.k, cfg->model.dim, cfg->optim.batch_size,
        cfg->data.image_size);
}

/* With --config and --resume, the keys that fix tensor shapes must agree with the ones the
 * checkpoint was trained with; say which key differs rather than which tensor mismatches. */
static void check_resume_compatible(const StFile *resumed, const char *resume_path, const JobConfig *cfg)
{
    static const char *keys[][2] = {{"model", "arch"}, {"model", "cifar_stem"}, {"model", "mlp"},
                                    {"model", "dim"},  {"moco", "k"}};
    const char *json = st_metadata(resumed, "config");
    cJSON *theirs = json ? cJSON_Parse(json) : NULL;
    cJSON *ours = cJSON_Parse(cfg->resolved_json);
    for (size_t i = 0; theirs && ours && i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(theirs, keys[i][0]), keys[i][1]);
        cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ours, keys[i][0]), keys[i][1]);
        if (!a || !b || cJSON_Compare(a, b, 1)) continue;
        char *va = cJSON_PrintUnformatted(a), *vb = cJSON_PrintUnformatted(b);
        char msg[512];
        snprintf(msg, sizeof msg, "--resume %s: the checkpoint was trained with %s.%s=%s but the "
                 "config gives %s; resume with --set %s.%s=%s (or without --config, which uses "
                 "the checkpoint's own config)", resume_path, keys[i][0], keys[i][1],
                 va ? va : "?", vb ? vb : "?", keys[i][0], keys[i][1], va ? va : "?");
        cJSON_free(va);
        cJSON_free(vb);
        cJSON_Delete(theirs);
        cJSON_Delete(ours);
        die("%s", msg);
    }
    cJSON_Delete(theirs);
    cJSON_Delete(ours);
}

/* The launcher decides how many ranks run (mpirun -np R); resources.ranks follows it, so that
 * the per-rank batch checks and the spec stored in checkpoints say what really ran. */
static void adopt_launcher_ranks(JobConfig *cfg, const Comm *comm)
{
    const int R = comm->size, batch = cfg->optim.batch_size;
    if (cfg->resources.ranks == R) return;
    if (comm->rank == 0)
        warn("resources.ranks is %d but %d rank%s running (%s); training with %d", cfg->resources.ranks,
             R, R == 1 ? " is" : "s are", R == 1 ? "started without mpirun" : "mpirun -np", R);
    if (batch % R != 0)
        die("optim.batch_size %d (the global batch) cannot be split evenly over %d ranks; use a "
            "multiple of %d or another number of ranks", batch, R, R);
    if (batch / R % cfg->moco.bn_splits != 0)
        die("the per-rank batch %d (optim.batch_size %d / %d ranks) is not divisible by "
            "moco.bn_splits %d", batch / R, batch, R, cfg->moco.bn_splits);
    cfg->resources.ranks = R;
    cJSON *spec = cJSON_Parse(cfg->resolved_json);
    cJSON *res = spec ? cJSON_GetObjectItemCaseSensitive(spec, "resources") : NULL;
    if (res && cJSON_GetObjectItemCaseSensitive(res, "ranks")) {
        cJSON_ReplaceItemInObjectCaseSensitive(res, "ranks", cJSON_CreateNumber(R));
        char *json = cJSON_PrintUnformatted(spec);
        if (json) {
            free(cfg->resolved_json);
            cfg->resolved_json = xstrdup(json);
            cJSON_free(json);
        }
    }
    cJSON_Delete(spec);
}

/* An unusable checkpoint.dir is found at the start, not when the first epoch ends hours
 * later: the folder is created and a file is created in it and removed again. */
static void check_checkpoint_dir(const JobConfig *cfg, int resuming)
{
    char err[1024], probe[CONFIG_PATH_MAX + 64], newest[CONFIG_PATH_MAX + 256];
    if (make_dirs(cfg->checkpoint.dir, err, sizeof err) != 0)
        die("checkpoint.dir: %s; set checkpoint.dir to a writable folder", err);
    /* A new run must not mix its checkpoints with an earlier run's: keep_last would prune by
     * name across both and could delete the new run's files (or resume the wrong run later). */
    if (!resuming && checkpoint_newest(cfg->checkpoint.dir, newest, sizeof newest))
        die("checkpoint.dir %s already holds checkpoints of another run (newest: %s); continue "
            "that run with --resume %s, or start a new one with --set checkpoint.dir=OTHER_FOLDER "
            "(or remove the old checkpoints)", cfg->checkpoint.dir, newest, cfg->checkpoint.dir);
    snprintf(probe, sizeof probe, "%s/.moco-write-test.%ld", cfg->checkpoint.dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("checkpoint.dir: cannot create files in %s: %s; set checkpoint.dir to a writable folder",
            cfg->checkpoint.dir, strerror(errno));
    close(fd); /* empty and about to be removed: nothing to lose */
    unlink(probe);
    checkpoint_remove_stale_temps(cfg->checkpoint.dir);
}

static void open_train_folder(const JobConfig *cfg, ImageFolder *folder)
{
    char err[1024];
    if (!cfg->data.train[0]) die("data.train is not set: name the training image folder (root/<class>/<images>)");
    if (image_folder_open(cfg->data.train, folder, err, sizeof err) != 0)
        die("data.train: %s", err);
    if (folder->count < cfg->optim.batch_size)
        die("data.train (%s) has %d images, fewer than one batch of optim.batch_size=%d; "
            "lower optim.batch_size or add images", cfg->data.train, folder->count,
            cfg->optim.batch_size);
}

/* The kNN monitor's folders are checked at the start, not when the first epoch ends: data.val
 * must open, and the features of both folders must fit in memory. 0 when the monitor is off. */
static int open_knn_monitor(const JobConfig *cfg, const ImageFolder *train, ImageFolder *val)
{
    char err[1024];
    if (cfg->eval.knn_every_epochs <= 0) return 0;
    if (image_folder_open(cfg->data.val, val, err, sizeof err) != 0)
        die("data.val (for the kNN monitor, eval.knn.every_epochs=%d): %s",
            cfg->eval.knn_every_epochs, err);
    int dim = resnet_depth_from_arch(cfg->model.arch) == 50 ? 2048 : 512;
    knn_eval_check(train, val, dim, "use smaller folders or turn the monitor off with "
                   "eval.knn.every_epochs=0");
    return 1;
}

/* The kNN monitor after an epoch's checkpoint: encoder_q's backbone in eval mode, which reads
 * the model and changes nothing a training step uses (BN running statistics stay; the eval
 * transform draws no random numbers), so training continues exactly as without it. */
/* Every rank runs the monitor on the whole folders (the ranks hold the same model, so they
 * get the same result; each rank has 1/R of the machine, so this takes as long as rank 0
 * alone would); only rank 0 reports. */
static void run_knn_monitor(Moco *m, const JobConfig *cfg, const ImageFolder *train,
                            const ImageFolder *val, int batch, int epoch, int lead)
{
    if (lead)
        fprintf(stderr, "knn: classifying %d data.val images against %d data.train images\n",
                val->count, train->count);
    KnnResult r = knn_evaluate(moco_encoder_q_net(m), cfg, train, val, batch);
    if (!lead) return;
    if (r.interrupted) {
        fprintf(stderr, "knn: monitor interrupted by a signal; no kNN result for this epoch\n");
        return;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "epoch %d/%d  ", epoch + 1, cfg->optim.epochs);
    knn_report(&r, cfg, prefix);
}

/* Mid-epoch, the cursor counts batches of the rank layout that wrote it: resumed on another
 * number of ranks, the rest of that epoch visits a slightly different set of images. */
static void warn_if_ranks_changed(const StFile *resumed, const CheckpointCursor *cur, const Comm *comm)
{
    const char *json = st_metadata(resumed, "config");
    cJSON *spec = json ? cJSON_Parse(json) : NULL;
    cJSON *ranks = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "resources"), "ranks");
    if (comm->rank == 0 && cJSON_IsNumber(ranks) && ranks->valueint != comm->size && cur->next_batch > 0)
        warn("the checkpoint was written by %d ranks mid-epoch and %d now resume it: the rest of "
             "epoch %d visits the images in another order than an uninterrupted run would (and "
             "is skipped if the new layout has fewer batches than were done)",
             ranks->valueint, comm->size, cur->next_epoch + 1);
    cJSON_Delete(spec);
}

/* ", 2 ranks x 16" for the start line; "" on one rank. */
static const char *ranks_note(const Comm *comm, int local)
{
    static char note[96];
    if (comm->size == 1) return "";
    snprintf(note, sizeof note, ", %d ranks (%s) x %d images", comm->size, comm->backend, local);
    return note;
}

/* The last lines of a run: how to continue a stopped one, or where the result is. */
static void print_end(const JobConfig *cfg, int stopped, int64_t step, double run_start)
{
    char newest[CONFIG_PATH_MAX + 256] = "";
    checkpoint_newest(cfg->checkpoint.dir, newest, sizeof newest);
    if (stopped) {
        fprintf(stderr, "stopped at step %" PRId64 " (%s); continue with --resume %s\n", step,
                stop_requested ? "signal" : "log.max_steps", cfg->checkpoint.dir);
        return;
    }
    char took[32];
    format_duration(wall_time() - run_start, took, sizeof took);
    fprintf(stderr, "done: %d epochs, %" PRId64 " steps, this process ran %s; final checkpoint %s\n"
            "export the backbone for torchvision with: moco-train --export backbone --checkpoint %s --out backbone.safetensors\n",
            cfg->optim.epochs, step, took, newest, newest);
}

int pretrain_main(const CliArgs *args)
{
    char err[2048];
    stop_handlers_install(); /* first: a stop that comes while MPI starts is kept, not fatal */
    Comm *comm = comm_init();
    const int lead = comm->rank == 0; /* prints, writes events and checkpoints */
    progress_quiet = !lead;
    events_open(lead ? args->events_fd : -1);

    StFile resumed;
    CheckpointCursor cur = {0, 0, 0, 0};
    int resuming = args->resume != NULL;
    if (resuming && checkpoint_open(args->resume, &resumed, &cur, err, sizeof err) != 0)
        die("--resume: %s", err);

    JobConfig cfg;
    job_config_load(args, resuming ? &resumed : NULL, JOB_PRETRAIN, "pretrain", &cfg);
    if (resuming && args->config) check_resume_compatible(&resumed, args->resume, &cfg);
    adopt_launcher_ranks(&cfg, comm);
    /* An unusable checkpoint.dir is found now, not when the first epoch ends hours later. */
    if (lead) check_checkpoint_dir(&cfg, resuming);
    check_memory(&cfg);
    kernels_set_threads(cfg.resources.threads > 0 ? cfg.resources.threads : comm_default_threads(comm));

    ImageFolder folder, val;
    open_train_folder(&cfg, &folder);
    int knn_monitor = open_knn_monitor(&cfg, &folder, &val);
    int batch = cfg.optim.batch_size; /* the global batch; each rank holds local = batch / R */
    const int local = batch / comm->size;
    if (cfg.moco.k % batch != 0)
        die("moco.k (%d) must be a multiple of optim.batch_size (%d): the queue takes whole batches of keys",
            cfg.moco.k, batch);

    LoaderConfig lc = {
        .folder = &folder,
        .aug = aug_config_make(cfg.data.aug == AUGSPEC_V1 ? AUG_V1 : AUG_V2, cfg.data.image_size),
        .views = 2, .batch_size = local, .workers = cfg.data.workers, .prefetch = 2,
        .shuffle = 1, .drop_last = 1, .seed = cfg.seed, .rank = comm->rank, .world = comm->size,
    };
    Loader *loader = loader_create(&lc);
    int batches = loader_batches_per_epoch(loader);
    if (batches < 1)
        die("data.train (%s) has %d images: each of the %d ranks gets %d, fewer than its share of "
            "one batch (%d); lower optim.batch_size or add images", cfg.data.train, folder.count,
            comm->size, (folder.count + comm->size - 1) / comm->size, local);

    Moco *m = moco_create(&cfg, local, comm);
    if (resuming) {
        if (moco_load_state(m, &resumed, err, sizeof err) != 0) die("--resume %s: %s", args->resume, err);
        if (cur.step > 0 && !st_find(&resumed, "optim.momentum_buffer.encoder_q.conv1.weight"))
            warn("--resume %s: the checkpoint holds no SGD momentum buffers (optim.*); training "
                 "continues with fresh momentum, so it will not match an uninterrupted run exactly",
                 args->resume);
        warn_if_ranks_changed(&resumed, &cur, comm);
        st_free(&resumed);
        if (lead)
            fprintf(stderr, "resuming at epoch %d, batch %d (step %" PRId64 ")\n", cur.next_epoch + 1,
                    cur.next_batch, cur.step);
    }

    int64_t total_steps = (int64_t)cfg.optim.epochs * batches;
    Progress progress; /* the ETA counts to where this run will stop */
    progress_init(&progress, cfg.log.max_steps > 0 && cfg.log.max_steps < total_steps ? cfg.log.max_steps : total_steps);
    events_set_position(cur.step, cur.next_epoch);
    cJSON *start = event_new("start");
    cJSON_AddStringToObject(start, "job", "pretrain");
    cJSON_AddNumberToObject(start, "total_steps", (double)total_steps);
    cJSON_AddNumberToObject(start, "steps_per_epoch", batches);
    cJSON_AddNumberToObject(start, "images", folder.count);
    cJSON_AddNumberToObject(start, "classes", folder.num_classes);
    cJSON_AddStringToObject(start, "backend", kernels_backend_name());
    cJSON_AddBoolToObject(start, "resumed", resuming);
    cJSON_AddNumberToObject(start, "ranks", comm->size);
    char hosts[1024], words[1024];
    comm_hosts(comm, hosts, sizeof hosts);
    snprintf(words, sizeof words, "%s", hosts);
    cJSON *host_list = cJSON_AddArrayToObject(start, "hosts");
    for (char *save = NULL, *h = strtok_r(words, " ", &save); h; h = strtok_r(NULL, " ", &save))
        cJSON_AddItemToArray(host_list, cJSON_CreateString(h));
    events_emit(start);
    if (lead)
        fprintf(stderr, "pretrain: %s %s, %d images in %d classes, batch %d, K %d, %d epochs x %d steps, backend %s%s\n",
                cfg.method == METHOD_MOCO_V1 ? "MoCo v1" : "MoCo v2", cfg.model.arch, folder.count,
                folder.num_classes, batch, cfg.moco.k, cfg.optim.epochs, batches, kernels_backend_name(),
                ranks_note(comm, local));
    if (lead && comm->size > 1) fprintf(stderr, "pretrain: ranks run on (in rank order): %s\n", hosts);

    if (lead && cur.next_epoch >= cfg.optim.epochs) {
        char msg[256];
        snprintf(msg, sizeof msg, "nothing to train: the checkpoint has finished epoch %d of "
                 "optim.epochs=%d; raise optim.epochs to train longer", cur.next_epoch,
                 cfg.optim.epochs);
        fprintf(stderr, "%s\n", msg);
        events_log(msg);
    }
    double run_start = wall_time();
    int32_t *perm = xmalloc((size_t)batch * sizeof *perm);
    int stopped = 0, mid_epoch_stop = 0;
    for (int epoch = cur.next_epoch; epoch < cfg.optim.epochs && !stopped; epoch++) {
        double lr = lr_for_epoch(&cfg, epoch);
        int first = epoch == cur.next_epoch ? cur.next_batch : 0;
        loader_start_epoch(loader, epoch, first);
        MetricWindow window = {0}, whole = {0};
        double epoch_start = wall_time(), comm_start = comm->seconds;
        const Batch *b;
        /* Step time runs from the end of one step to the end of the next, so it includes
         * waiting for the loader: img/s and the ETA must reflect a data-bound run too. */
        double step_start = wall_time();
        while ((b = loader_next(loader)) != NULL) {
            Rng rng;
            rng_init(&rng, cfg.seed, SHUFFLE_STREAM, (uint64_t)cur.step, 0);
            rng_permutation(&rng, batch, perm);
            MocoStepStats s = moco_train_step(m, b->view[0], b->view[1], perm, (float)lr);
            /* Every rank must leave the loop at the same step: a signal that reached one rank
             * (or reached them between different steps) stops all of them here. */
            int stop_now = comm_any(comm, stop_requested || stop_watched_process_gone());
            /* Stop before a diverged state is checkpointed: with keep_last, NaN checkpoints
             * would otherwise replace the last good ones. */
            if (!isfinite(s.loss))
                die("the loss is %g at step %" PRId64 " (epoch %d): training diverged; lower "
                    "optim.lr (%g) and resume from the last checkpoint in %s", (double)s.loss,
                    cur.step + 1, epoch + 1, lr, cfg.checkpoint.dir);
            double step_end = wall_time();
            progress_step_time(&progress, step_end - step_start);
            step_start = step_end;
            cur.step++;
            events_set_position(cur.step, epoch);
            window_add(&window, &s);
            window_add(&whole, &s);
            if (cur.step % cfg.log.print_every == 0 || b->index + 1 == batches) {
                window_reduce(comm, &window);
                if (lead) {
                    progress_print(&progress, epoch, cfg.optim.epochs, b->index + 1, batches, cur.step,
                                   (float)(window.loss / window.steps),
                                   (float)(100.0 * window.correct1 / window.rows),
                                   (float)(100.0 * window.correct5 / window.rows), lr, batch);
                    emit_metric(&window, lr, progress_images_per_s(&progress, batch));
                }
                memset(&window, 0, sizeof window);
            }
            int hit_max = cfg.log.max_steps > 0 && cur.step >= cfg.log.max_steps;
            if (stop_now || hit_max) {
                stopped = 1;
                if (b->index + 1 < batches) { /* mid-epoch: checkpoint here, else at epoch end */
                    if (lead) progress_break(&progress);
                    cur.next_epoch = epoch;
                    cur.next_batch = b->index + 1;
                    cur.epochs_done = epoch;
                    if (lead) save_checkpoint(m, &cfg, &cur);
                    mid_epoch_stop = 1;
                    break;
                }
            }
        }
        if (mid_epoch_stop) break;
        if (lead) progress_break(&progress);
        double skipped_all = loader_skipped(loader); /* each rank reads its own shard's files */
        if (whole.steps > 0) {
            window_reduce(comm, &whole);
            comm_allreduce_sum_f64(comm, &skipped_all, 1);
        }
        if (lead && whole.steps > 0) { /* none when resumed at the epoch's end */
            char took[32];
            format_duration(wall_time() - epoch_start, took, sizeof took);
            int skipped = (int)skipped_all;
            /* After a mid-epoch resume the means cover only the steps run in this process. */
            fprintf(stderr, "epoch %d/%d done in %s%s: loss %.4f  acc1 %.2f  acc5 %.2f  unreadable files skipped: %d\n",
                    epoch + 1, cfg.optim.epochs, took, first > 0 ? " (means over the steps since resume)" : "",
                    whole.loss / whole.steps,
                    100.0 * whole.correct1 / whole.rows, 100.0 * whole.correct5 / whole.rows, skipped);
            double epoch_s = wall_time() - epoch_start, comm_s = comm->seconds - comm_start;
            if (comm->size > 1) /* rank 0's share; where it waits for slower ranks, that counts too */
                fprintf(stderr, "epoch %d/%d: collectives took %.3f s per step, %.1f%% of the step\n",
                        epoch + 1, cfg.optim.epochs, comm_s / whole.steps, 100.0 * comm_s / epoch_s);
            cJSON *e = event_new("log");
            cJSON_AddStringToObject(e, "message", "epoch done");
            cJSON_AddNumberToObject(e, "loss", whole.loss / whole.steps);
            cJSON_AddNumberToObject(e, "acc1", 100.0 * whole.correct1 / whole.rows);
            cJSON_AddNumberToObject(e, "acc5", 100.0 * whole.correct5 / whole.rows);
            cJSON_AddNumberToObject(e, "skipped_files", skipped);
            cJSON_AddNumberToObject(e, "seconds", epoch_s);
            if (comm->size > 1) cJSON_AddNumberToObject(e, "collectives_s", comm_s);
            events_emit(e);
        }
        cur.epochs_done = epoch + 1;
        cur.next_epoch = epoch + 1;
        cur.next_batch = 0;
        int last = epoch + 1 == cfg.optim.epochs;
        int saved = last || stopped || (cfg.checkpoint.every_epochs > 0 &&
                                        (epoch + 1) % cfg.checkpoint.every_epochs == 0);
        if (saved && lead) save_checkpoint(m, &cfg, &cur);
        if (knn_monitor && !stopped && (epoch + 1) % cfg.eval.knn_every_epochs == 0) {
            run_knn_monitor(m, &cfg, &folder, &val, local, epoch, lead);
            if (comm_any(comm, stop_requested || stop_watched_process_gone()) && !last) { /* signalled during the monitor */
                if (!saved && lead) save_checkpoint(m, &cfg, &cur);
                stopped = 1;
                break;
            }
        }
    }

    if (cur.next_epoch >= cfg.optim.epochs) stopped = 0; /* stopped on the very last step: done */
    if (lead) print_end(&cfg, stopped, cur.step, run_start);
    cJSON *done = event_new("done");
    cJSON_AddStringToObject(done, "status", stopped ? "stopped" : "completed");
    events_emit(done);
    free(perm);
    moco_destroy(m);
    loader_destroy(loader);
    image_folder_free(&folder);
    if (knn_monitor) image_folder_free(&val);
    config_free(&cfg);
    comm_finalize(comm);
    return stopped ? PRETRAIN_EXIT_STOPPED : 0;
}

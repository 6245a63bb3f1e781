/* lincls.c — `moco-train lincls`: the linear-evaluation loop (the official main_lincls.py).
 *
 * Per epoch: the learning rate from the schedule; one pass over data.train
 * (RandomResizedCrop(image_size, scale 0.08..1) + horizontal flip, shuffled, the last partial
 * batch kept) training fc on the frozen backbone; after the first epoch this process trained,
 * the sanity check (the backbone must still equal the pretrained file); then data.val in
 * order (resize to data.val_resize, centre crop) for top-1, top-5 and the mean loss, an
 * `eval` event, lincls-last.safetensors and, on a new best top-1, lincls-best.safetensors.
 * SIGTERM/SIGINT and log.max_steps stop after the current step with lincls-last to resume
 * from (mid-epoch when needed: the loader's randomness is keyed by seed, epoch and sample,
 * so a cursor is all a resume needs).
 */
#include "train/lincls_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "data/loader.h"
#include "kernels/kernels.h"
#include "train/accuracy.h"
#include "train/config.h"
#include "train/events.h"
#include "train/job_config.h"
#include "train/optim.h"
#include "train/pretrained.h"
#include "train/progress.h"
#include "train/stop_signal.h"

/* Sums over the steps (or evaluation batches) since the last report. */
typedef struct {
    double loss, correct1, correct5;
    int64_t rows;
    int top5_undefined;
} Sums;

static void sums_add(Sums *w, const LinclsBatchStats *s)
{
    w->loss += (double)s->loss * s->n; /* weighted by rows, as main_lincls.py's AverageMeter */
    w->correct1 += (double)s->correct1;
    if (s->correct5 == ACCURACY_UNDEFINED) w->top5_undefined = 1;
    else w->correct5 += (double)s->correct5;
    w->rows += s->n;
}

static double sums_loss(const Sums *w) { return w->rows ? w->loss / (double)w->rows : NAN; }
static double sums_top1(const Sums *w) { return accuracy_percent((int64_t)w->correct1, w->rows); }
static double sums_top5(const Sums *w)
{
    return w->top5_undefined ? NAN : accuracy_percent((int64_t)w->correct5, w->rows);
}

/* data.train gives the classes; data.val must have the same class folders, in the same
 * order, or its labels would mean other classes. */
static void open_folders(const JobConfig *cfg, ImageFolder *train, ImageFolder *val)
{
    char err[1024];
    if (image_folder_open(cfg->data.train, train, err, sizeof err) != 0) die("data.train: %s", err);
    if (image_folder_open(cfg->data.val, val, err, sizeof err) != 0) die("data.val: %s", err);
    for (int i = 0; i < train->num_classes || i < val->num_classes; i++) {
        const char *a = i < train->num_classes ? train->classes[i] : NULL;
        const char *b = i < val->num_classes ? val->classes[i] : NULL;
        if (a && b && strcmp(a, b) == 0) continue;
        char first[512];
        if (a && b) snprintf(first, sizeof first, "class %d is '%s' in data.train but '%s' in data.val", i, a, b);
        else snprintf(first, sizeof first, "'%s' is only in %s", a ? a : b, a ? "data.train" : "data.val");
        die("data.val (%s, %d classes) and data.train (%s, %d classes) must have the same class "
            "folders, since a label is the index of its class folder: %s; give both folders the "
            "same sub-folders", cfg->data.val, val->num_classes, cfg->data.train,
            train->num_classes, first);
    }
}

static void emit_metric(const Sums *w, double lr, double images_per_s)
{
    cJSON *e = event_new("metric");
    cJSON_AddNumberToObject(e, "lr", lr);
    cJSON_AddNumberToObject(e, "loss", sums_loss(w));
    accuracy_add_to_event(e, "top1", sums_top1(w));
    accuracy_add_to_event(e, "top5", sums_top5(w));
    cJSON_AddNumberToObject(e, "images_per_s", images_per_s);
    events_emit(e);
}

/* data.val in order, the whole folder: main_lincls.py's validate(). */
static Sums evaluate(Lincls *m, Loader *val)
{
    Sums s = {0};
    loader_start_epoch(val, 0, 0);
    const Batch *b;
    while ((b = loader_next(val)) != NULL) {
        LinclsBatchStats st = lincls_evaluate(m, b->view[0], b->labels, b->size);
        sums_add(&s, &st);
    }
    if (s.rows == 0) die("none of the images of data.val could be read; see the warnings above");
    if (loader_skipped(val) > 0)
        warn("validation: %d unreadable image(s) of data.val left out; %lld used",
             loader_skipped(val), (long long)s.rows);
    return s;
}

/* After the first epoch of this process, as main_lincls.py does at epoch == start_epoch. */
static void run_sanity_check(Lincls *m, const char *reference)
{
    char err[2048];
    if (access(reference, R_OK) != 0) {
        warn("sanity check skipped: %s, the file the backbone was loaded from, can no longer "
             "be read (%s)", reference, strerror(errno));
        return;
    }
    if (lincls_sanity_check(lincls_backbone(m), reference, err, sizeof err) != 0) die("%s", err);
    fprintf(stderr, "sanity check passed: the backbone equals %s bit for bit\n", reference);
}

int lincls_main(const CliArgs *args)
{
    char err[2048];
    events_open(args->events_fd);
    stop_handlers_install();

    StFile resumed;
    char resumed_file[CONFIG_PATH_MAX + 64] = "";
    LinclsCursor cur = {0, 0, 0, 0, -1};
    int resuming = args->resume != NULL;
    if (resuming) lincls_open_resume(args->resume, &resumed, resumed_file, sizeof resumed_file, &cur);

    JobConfig cfg;
    job_config_load(args, resuming ? &resumed : NULL, JOB_LINCLS, "lincls", &cfg);
    if (resuming) lincls_check_resume_model(&resumed, resumed_file, &cfg);
    /* The pretrained file is named by its resolved path (a folder's newest checkpoint now):
     * the sanity check must read the same file even if a pretraining adds newer ones. */
    char pretrained[CONFIG_PATH_MAX + 256];
    const char *recorded = resuming ? st_metadata(&resumed, "pretrained") : NULL;
    if (recorded) snprintf(pretrained, sizeof pretrained, "%s", recorded);
    else if (pretrained_resolve(cfg.model.pretrained, pretrained, sizeof pretrained, err, sizeof err) != 0)
        die("model.pretrained: %s", err);
    lincls_check_checkpoint_dir(&cfg, resuming);
    kernels_set_threads(cfg.resources.threads);

    ImageFolder train, val;
    open_folders(&cfg, &train, &val);
    if (resuming) lincls_check_resume_classes(&resumed, resumed_file, &train);
    const int classes = train.num_classes, batch = cfg.optim.batch_size;
    if (classes < 5) accuracy_warn_undefined("linear evaluation", 5, classes);

    LinclsModelConfig mc = {
        .arch = cfg.model.arch, .cifar_stem = cfg.model.cifar_stem,
        .image_size = cfg.data.image_size, .max_batch = batch, .classes = classes,
        .momentum = (float)cfg.optim.momentum, .weight_decay = (float)cfg.optim.weight_decay,
    };
    Lincls *m = lincls_create(&mc);
    const char *reference = pretrained; /* for the sanity check */
    if (resuming) {
        if (lincls_load_state(m, &resumed, err, sizeof err) != 0)
            die("--resume %s: %s", resumed_file, err);
        st_free(&resumed);
        /* A pretrained file gone since: the checkpoint holds the backbone as it was loaded. */
        if (access(pretrained, R_OK) != 0) reference = resumed_file;
        fprintf(stderr, "resuming at epoch %d, batch %d (step %" PRId64 ")\n", cur.next_epoch + 1,
                cur.next_batch, cur.step);
    } else {
        if (pretrained_load_backbone(pretrained, lincls_backbone(m), err, sizeof err) != 0)
            die("model.pretrained: %s", err);
        lincls_init_fc(m, cfg.seed);
    }
    LinclsSaveInfo info = {&cfg, &train, pretrained};

    LoaderConfig tc = {
        .folder = &train, .aug = aug_config_make(AUG_CROP_FLIP, cfg.data.image_size),
        .views = 1, .batch_size = batch, .workers = cfg.data.workers, .prefetch = 2,
        .shuffle = 1, .drop_last = 0, .seed = cfg.seed, .rank = 0, .world = 1,
    };
    LoaderConfig vc = tc;
    vc.folder = &val;
    vc.aug = aug_config_make(AUG_EVAL, cfg.data.image_size);
    vc.aug.resize_to = cfg.data.val_resize;
    vc.shuffle = 0;
    vc.eval_skip_unreadable = 1; /* validation counts every readable image once */
    Loader *tl = loader_create(&tc), *vl = loader_create(&vc);
    const int batches = loader_batches_per_epoch(tl);

    int64_t total_steps = (int64_t)cfg.optim.epochs * batches;
    Progress progress;
    progress_init(&progress, total_steps);
    events_set_position(cur.step, cur.next_epoch);
    cJSON *start = event_new("start");
    cJSON_AddStringToObject(start, "job", "lincls");
    cJSON_AddNumberToObject(start, "total_steps", (double)total_steps);
    cJSON_AddNumberToObject(start, "steps_per_epoch", batches);
    cJSON_AddNumberToObject(start, "images", train.count);
    cJSON_AddNumberToObject(start, "val_images", val.count);
    cJSON_AddNumberToObject(start, "classes", classes);
    cJSON_AddStringToObject(start, "pretrained", pretrained);
    cJSON_AddStringToObject(start, "backend", kernels_backend_name());
    cJSON_AddBoolToObject(start, "resumed", resuming);
    events_emit(start);
    fprintf(stderr, "lincls: %s%s from %s, %d images in %d classes (val %d), batch %d, "
            "%d epochs x %d steps, backend %s\n", cfg.model.arch,
            cfg.model.cifar_stem ? " (CIFAR stem)" : "", pretrained, train.count, classes,
            val.count, batch, cfg.optim.epochs, batches, kernels_backend_name());
    if (cur.next_epoch >= cfg.optim.epochs)
        fprintf(stderr, "nothing to train: the checkpoint has finished epoch %d of "
                "optim.epochs=%d; raise optim.epochs to train longer\n", cur.next_epoch,
                cfg.optim.epochs);

    const int first_epoch = cur.next_epoch;
    int stopped = 0;
    for (int epoch = cur.next_epoch; epoch < cfg.optim.epochs && !stopped; epoch++) {
        double lr = lr_for_epoch(&cfg, epoch);
        loader_start_epoch(tl, epoch, epoch == cur.next_epoch ? cur.next_batch : 0);
        Sums window = {0};
        const Batch *b;
        int mid_epoch_stop = 0;
        double step_start = wall_time();
        while ((b = loader_next(tl)) != NULL) {
            LinclsBatchStats s = lincls_train_step(m, b->view[0], b->labels, b->size, (float)lr);
            if (!isfinite(s.loss))
                die("the loss is %g at step %" PRId64 " (epoch %d): training diverged; lower "
                    "optim.lr (%g)", (double)s.loss, cur.step + 1, epoch + 1, lr);
            double step_end = wall_time();
            progress_step_time(&progress, step_end - step_start);
            step_start = step_end;
            cur.step++;
            events_set_position(cur.step, epoch);
            sums_add(&window, &s);
            if (cur.step % cfg.log.print_every == 0 || b->index + 1 == batches) {
                progress_print(&progress, epoch, cfg.optim.epochs, b->index + 1, batches, cur.step,
                               (float)sums_loss(&window), (float)sums_top1(&window),
                               (float)sums_top5(&window), lr, batch);
                emit_metric(&window, lr, progress_images_per_s(&progress, batch));
                memset(&window, 0, sizeof window);
            }
            if (stop_requested || (cfg.log.max_steps > 0 && cur.step >= cfg.log.max_steps)) {
                stopped = 1;
                if (b->index + 1 < batches) { /* mid-epoch: checkpoint here, else at epoch end */
                    progress_break(&progress);
                    cur.next_epoch = epoch;
                    cur.next_batch = b->index + 1;
                    lincls_save(m, &info, &cur, LINCLS_LAST_NAME);
                    mid_epoch_stop = 1;
                    break;
                }
            }
        }
        if (mid_epoch_stop) break;
        progress_break(&progress);
        if (epoch == first_epoch) run_sanity_check(m, reference);

        Sums ev = evaluate(m, vl);
        double top1 = sums_top1(&ev), top5 = sums_top5(&ev);
        int is_best = top1 > cur.best_top1;
        if (is_best) cur.best_top1 = top1;
        cJSON *e = event_new("eval");
        cJSON_AddStringToObject(e, "eval", "lincls");
        accuracy_add_to_event(e, "top1", top1);
        accuracy_add_to_event(e, "top5", top5);
        cJSON_AddNumberToObject(e, "loss", sums_loss(&ev));
        cJSON_AddNumberToObject(e, "best_top1", cur.best_top1);
        events_emit(e);
        char t5[16];
        snprintf(t5, sizeof t5, isnan(top5) ? "n/a" : "%.3f", top5);
        fprintf(stderr, "epoch %d/%d val: top1 %.3f  top5 %s  loss %.4f  (best top1 %.3f)\n",
                epoch + 1, cfg.optim.epochs, top1, t5, sums_loss(&ev), cur.best_top1);

        cur.epochs_done = cur.next_epoch = epoch + 1;
        cur.next_batch = 0;
        if (stop_requested) stopped = 1; /* a signal during validation: stop at this boundary */
        int last = epoch + 1 == cfg.optim.epochs;
        /* best before last: a crash between the two then leaves a lincls-last from before this
         * epoch, whose resume redoes the epoch and rewrites the best; the other order could
         * leave a lincls-last that records a best top-1 no lincls-best file holds. */
        if (is_best) lincls_save(m, &info, &cur, LINCLS_BEST_NAME);
        if (last || stopped || (cfg.checkpoint.every_epochs > 0 &&
                                (epoch + 1) % cfg.checkpoint.every_epochs == 0))
            lincls_save(m, &info, &cur, LINCLS_LAST_NAME);
    }

    if (cur.next_epoch >= cfg.optim.epochs) stopped = 0; /* stopped on the very last step: done */
    if (stopped)
        fprintf(stderr, "stopped at step %" PRId64 " (%s); continue with --resume %s\n", cur.step,
                stop_requested ? "signal" : "log.max_steps", cfg.checkpoint.dir);
    else
        fprintf(stderr, "done: %d epochs, best val top1 %.3f (%s/%s)\n", cfg.optim.epochs,
                cur.best_top1, cfg.checkpoint.dir, LINCLS_BEST_NAME);
    cJSON *done = event_new("done");
    cJSON_AddStringToObject(done, "status", stopped ? "stopped" : "completed");
    if (cur.best_top1 >= 0) cJSON_AddNumberToObject(done, "best_top1", cur.best_top1);
    events_emit(done);
    loader_destroy(tl);
    loader_destroy(vl);
    lincls_destroy(m);
    image_folder_free(&train);
    image_folder_free(&val);
    config_free(&cfg);
    return stopped ? LINCLS_EXIT_STOPPED : 0;
}

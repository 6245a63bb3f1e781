/* loader_tool — drives data/folder.c and data/loader.c from Python tests.
 *
 *   loader_tool list ROOT
 *       "classes N", one "class NAME" line each, then "file LABEL PATH" per sample; or the
 *       error on stderr with exit status 1.
 *   loader_tool epoch ROOT KIND SIZE VIEWS BATCH WORKERS PREFETCH SHUFFLE DROP_LAST SEED RANK
 *                     WORLD EPOCH FIRST_BATCH OUT once|again
 *       runs one epoch; OUT gets, per batch: int32 size, int32 index, int32 labels[size],
 *       int32 sample[size], float32 views[VIEWS][size*SIZE*SIZE*3]. Prints
 *       "batches B skipped S" (B as returned, and loader_batches_per_epoch).
 */
#include "data/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *msg)
{
    fprintf(stderr, "loader_tool: %s\n", msg);
    exit(1);
}

static void open_folder(const char *root, ImageFolder *f)
{
    char err[1024];
    if (image_folder_open(root, f, err, sizeof err) != 0) {
        fprintf(stderr, "loader_tool: %s\n", err);
        exit(1);
    }
}

static void put(FILE *f, const void *p, size_t bytes)
{
    if (fwrite(p, 1, bytes, f) != bytes) fail("write failed");
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "list")) {
        ImageFolder f;
        open_folder(argv[2], &f);
        printf("classes %d\n", f.num_classes);
        for (int c = 0; c < f.num_classes; c++) printf("class %s\n", f.classes[c]);
        for (int i = 0; i < f.count; i++) printf("file %d %s\n", f.labels[i], f.paths[i]);
        image_folder_free(&f);
        return 0;
    }
    if (argc != 18 || strcmp(argv[1], "epoch")) fail("usage: list ROOT | epoch ... (see source)");
    ImageFolder folder;
    open_folder(argv[2], &folder);
    AugKind kind = !strcmp(argv[3], "v1") ? AUG_V1 : !strcmp(argv[3], "eval") ? AUG_EVAL
                 : !strcmp(argv[3], "cropflip") ? AUG_CROP_FLIP : AUG_V2;
    LoaderConfig cfg = {0};
    cfg.folder = &folder;
    cfg.aug = aug_config_make(kind, atoi(argv[4]));
    cfg.views = atoi(argv[5]);
    cfg.batch_size = atoi(argv[6]);
    cfg.workers = atoi(argv[7]);
    cfg.prefetch = atoi(argv[8]);
    cfg.shuffle = atoi(argv[9]);
    cfg.drop_last = atoi(argv[10]);
    cfg.seed = strtoull(argv[11], NULL, 10);
    cfg.rank = atoi(argv[12]);
    cfg.world = atoi(argv[13]);
    int epoch = atoi(argv[14]), first = atoi(argv[15]);
    FILE *out = fopen(argv[16], "wb");
    if (!out) fail("cannot open output");
    Loader *l = loader_create(&cfg);
    loader_start_epoch(l, epoch, first);
    size_t view_floats = (size_t)cfg.aug.size * cfg.aug.size * 3;
    int returned = 0;
    const Batch *b;
    while ((b = loader_next(l))) {
        int32_t head[2] = {b->size, b->index};
        put(out, head, sizeof head);
        put(out, b->labels, sizeof(int32_t) * b->size);
        put(out, b->sample, sizeof(int32_t) * b->size);
        for (int v = 0; v < cfg.views; v++) put(out, b->view[v], sizeof(float) * view_floats * b->size);
        returned++;
    }
    if (fclose(out) != 0) fail("write failed");
    printf("batches %d %d skipped %d\n", returned, loader_batches_per_epoch(l), loader_skipped(l));
    /* argv[17]: repeat the epoch with a fresh start to check start_epoch resets ("again") */
    if (!strcmp(argv[17], "again")) {
        loader_start_epoch(l, epoch, first);
        int n = 0;
        while (loader_next(l)) n++;
        printf("again %d skipped %d\n", n, loader_skipped(l));
    }
    loader_destroy(l);
    image_folder_free(&folder);
    return 0;
}

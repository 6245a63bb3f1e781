/* data_bench — the C side of bench/data_bench.py: decode and augment the first N images of an
 * image folder into two MoCo v2 views each (224x224), on the calling thread only, and print the
 * rate. The Python driver measures torchvision + PIL on the same images in the same run.
 *
 *   data_bench ROOT N [KIND]   prints "samples/s: X" (two-view samples per CPU-second)
 */
#include "common/error.h"
#include "data/augment.h"
#include "data/folder.h"
#include "data/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this (single-threaded) process: a rate per core that other jobs on a shared
 * machine do not distort the way wall time would. */
static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) die("clock_gettime failed");
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) die("usage: data_bench ROOT N [v1|v2]");
    ImageFolder folder;
    char err[1024];
    if (image_folder_open(argv[1], &folder, err, sizeof err) != 0) die("%s", err);
    int n = atoi(argv[2]);
    if (n <= 0 || n > folder.count) n = folder.count;
    AugConfig cfg = aug_config_make(argc > 3 && !strcmp(argv[3], "v1") ? AUG_V1 : AUG_V2, 224);
    float *views = xmalloc(sizeof(float) * 2 * 224 * 224 * 3);
    double checksum = 0.0, t0 = now();
    for (int i = 0; i < n; i++) {
        Image8 img;
        if (image_decode_file(folder.paths[i], &img, err, sizeof err) != 0)
            die("%s: %s", folder.paths[i], err);
        for (int v = 0; v < 2; v++) {
            Rng rng;
            rng_init(&rng, 0, 0, (uint64_t)i, (uint64_t)v);
            augment_view(&img, &cfg, &rng, views + (size_t)v * 224 * 224 * 3);
        }
        checksum += views[12345] + views[224 * 224 * 3 + 777]; /* keep the work observable */
        image_free(&img);
    }
    double dt = now() - t0;
    printf("images: %d checksum: %.3f\nsamples/s: %.1f\n", n, checksum, n / dt);
    free(views);
    image_folder_free(&folder);
    return 0;
}

/* augment_tool — drives data/ from Python tests: decodes a file, applies one functional
 * augmentation op with given parameters, draws augmentation parameters, or renders a whole
 * view, writing raw arrays (uint8 or float32, HWC) that the tests compare with PIL/torchvision.
 *
 *   augment_tool decode FILE OUT              uint8 HWC; prints "h w"
 *   augment_tool op FILE OUT OP [ARGS...]     float32 HWC; the image as float [0,1], then OP:
 *       resized_crop TOP LEFT H W OUT_H OUT_W | resize_then_crop RH RW TOP LEFT OUT_H OUT_W |
 *       brightness F | contrast F | saturation F | hue F | gray | blur SIGMA | hflip | normalize
 *   augment_tool params KIND SIZE IMG_H IMG_W SEED COUNT
 *       one line per stream (SEED, 0, i, 0): top left h w resize_h resize_w jitter o0 o1 o2 o3
 *       b c s hue gray sigma flip
 *   augment_tool view KIND SIZE FILE OUT SEED A B C   float32 view; prints the params line
 * KIND: v1 | v2 | eval | cropflip. Errors go to stderr with exit status 1.
 */
#include "data/augment.h"
#include "data/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *msg)
{
    fprintf(stderr, "augment_tool: %s\n", msg);
    exit(1);
}

static void write_raw(const char *path, const void *data, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) fail("cannot write output");
}

static void load(const char *path, Image8 *img)
{
    char err[512];
    if (image_decode_file(path, img, err, sizeof err) != 0) {
        fprintf(stderr, "augment_tool: %s: %s\n", path, err);
        exit(1);
    }
}

static AugKind parse_kind(const char *s)
{
    if (!strcmp(s, "v1")) return AUG_V1;
    if (!strcmp(s, "v2")) return AUG_V2;
    if (!strcmp(s, "eval")) return AUG_EVAL;
    if (!strcmp(s, "cropflip")) return AUG_CROP_FLIP;
    fail("unknown kind");
    return AUG_V2;
}

static void print_params(const AugParams *p)
{
    printf("%d %d %d %d %d %d %d %d %d %d %d %.9g %.9g %.9g %.9g %d %.9g %d\n", p->top, p->left,
           p->h, p->w, p->resize_h, p->resize_w, p->jitter, p->order[0], p->order[1], p->order[2],
           p->order[3], p->brightness, p->contrast, p->saturation, p->hue, p->gray, p->blur_sigma,
           p->flip);
}

static int op_main(int argc, char **argv)
{
    if (argc < 5) fail("usage: op FILE OUT OP [ARGS]");
    Image8 img;
    load(argv[2], &img);
    const char *op = argv[4];
    int nargs = argc - 5;
    double a[6] = {0};
    for (int i = 0; i < nargs && i < 6; i++) a[i] = atof(argv[5 + i]);
    int h = img.h, w = img.w;
    float *out;
    if (!strcmp(op, "resized_crop") || !strcmp(op, "resize_then_crop")) {
        if (nargs != 6) fail("resize ops take 6 integers");
        h = (int)a[4];
        w = (int)a[5];
        out = malloc(sizeof(float) * h * w * 3);
        if (!out) fail("out of memory");
        if (!strcmp(op, "resized_crop"))
            resized_crop(&img, (int)a[0], (int)a[1], (int)a[2], (int)a[3], h, w, out);
        else
            resize_then_crop(&img, (int)a[0], (int)a[1], (int)a[2], (int)a[3], h, w, out);
    } else {
        out = malloc(sizeof(float) * h * w * 3);
        if (!out) fail("out of memory");
        resized_crop(&img, 0, 0, h, w, h, w, out); /* identity: u8 / 255 */
        if (!strcmp(op, "identity")) {
        } else if (!strcmp(op, "brightness")) adjust_brightness(out, h, w, (float)a[0]);
        else if (!strcmp(op, "contrast")) adjust_contrast(out, h, w, (float)a[0]);
        else if (!strcmp(op, "saturation")) adjust_saturation(out, h, w, (float)a[0]);
        else if (!strcmp(op, "hue")) adjust_hue(out, h, w, (float)a[0]);
        else if (!strcmp(op, "gray")) rgb_to_grayscale3(out, h, w);
        else if (!strcmp(op, "blur")) gaussian_blur(out, h, w, (float)a[0]);
        else if (!strcmp(op, "hflip")) hflip(out, h, w);
        else if (!strcmp(op, "normalize")) normalize_imagenet(out, h, w);
        else fail("unknown op");
    }
    write_raw(argv[3], out, sizeof(float) * h * w * 3);
    printf("%d %d\n", h, w);
    free(out);
    image_free(&img);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) fail("usage: decode|op|params|view ...");
    if (!strcmp(argv[1], "decode")) {
        if (argc != 4) fail("usage: decode FILE OUT");
        Image8 img;
        load(argv[2], &img);
        write_raw(argv[3], img.data, (size_t)img.h * img.w * 3);
        printf("%d %d\n", img.h, img.w);
        image_free(&img);
        return 0;
    }
    if (!strcmp(argv[1], "op")) return op_main(argc, argv);
    if (!strcmp(argv[1], "params")) {
        if (argc != 8) fail("usage: params KIND SIZE IMG_H IMG_W SEED COUNT");
        AugConfig cfg = aug_config_make(parse_kind(argv[2]), atoi(argv[3]));
        int ih = atoi(argv[4]), iw = atoi(argv[5]), count = atoi(argv[7]);
        uint64_t seed = strtoull(argv[6], NULL, 10);
        for (int i = 0; i < count; i++) {
            Rng rng;
            AugParams p;
            rng_init(&rng, seed, 0, (uint64_t)i, 0);
            augment_draw_params(&cfg, &rng, ih, iw, &p);
            print_params(&p);
        }
        return 0;
    }
    if (!strcmp(argv[1], "view")) {
        if (argc != 10) fail("usage: view KIND SIZE FILE OUT SEED A B C");
        AugConfig cfg = aug_config_make(parse_kind(argv[2]), atoi(argv[3]));
        Image8 img;
        load(argv[4], &img);
        Rng rng;
        rng_init(&rng, strtoull(argv[6], NULL, 10), strtoull(argv[7], NULL, 10),
                 strtoull(argv[8], NULL, 10), strtoull(argv[9], NULL, 10));
        AugParams p;
        augment_draw_params(&cfg, &rng, img.h, img.w, &p);
        float *out = malloc(sizeof(float) * cfg.size * cfg.size * 3);
        if (!out) fail("out of memory");
        augment_apply(&img, &cfg, &p, out);
        write_raw(argv[5], out, sizeof(float) * cfg.size * cfg.size * 3);
        print_params(&p);
        free(out);
        image_free(&img);
        return 0;
    }
    fail("unknown command");
    return 1;
}

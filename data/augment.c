/* augment.c — the MoCo v1/v2, evaluation and crop+flip pipelines: drawing every random
 * decision of a view (with torchvision's parameter distributions) and applying them.
 */
#include "data/augment.h"

#include <math.h>
#include <string.h>

AugConfig aug_config_make(AugKind kind, int size)
{
    AugConfig c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.size = size;
    c.scale_min = kind == AUG_CROP_FLIP ? 0.08f : 0.2f;
    c.scale_max = 1.0f;
    /* The ImageNet habit Resize(256) + CenterCrop(224), scaled to other sizes. */
    c.resize_to = kind == AUG_EVAL ? (int)lround(size * 256.0 / 224.0) : 0;
    return c;
}

void rrc_get_params(Rng *rng, int img_h, int img_w, float scale_min, float scale_max,
                    int *top, int *left, int *h, int *w)
{
    const double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
    double area = (double)img_h * img_w;
    double log_lo = log(ratio_lo), log_hi = log(ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target_area = area * rng_uniform_range(rng, scale_min, scale_max);
        double aspect = exp(rng_uniform_range(rng, log_lo, log_hi));
        /* Python's round() rounds half to even, as nearbyint does by default. */
        int cw = (int)nearbyint(sqrt(target_area * aspect));
        int ch = (int)nearbyint(sqrt(target_area / aspect));
        if (cw > 0 && cw <= img_w && ch > 0 && ch <= img_h) {
            *top = rng_below(rng, img_h - ch + 1);
            *left = rng_below(rng, img_w - cw + 1);
            *h = ch;
            *w = cw;
            return;
        }
    }
    /* Fallback: the largest centred crop with the closest allowed aspect ratio. */
    double in_ratio = (double)img_w / img_h;
    int cw, ch;
    if (in_ratio < ratio_lo) {
        cw = img_w;
        ch = (int)nearbyint(cw / ratio_lo);
    } else if (in_ratio > ratio_hi) {
        ch = img_h;
        cw = (int)nearbyint(ch * ratio_hi);
    } else {
        cw = img_w;
        ch = img_h;
    }
    *top = (img_h - ch) / 2;
    *left = (img_w - cw) / 2;
    *h = ch;
    *w = cw;
}

/* ColorJitter.get_params: a uniform order of the four ops, then b, c, s, h. */
static void draw_jitter(Rng *rng, float strength, float hue, AugParams *p)
{
    p->jitter = 1;
    int32_t perm[4];
    rng_permutation(rng, 4, perm);
    for (int i = 0; i < 4; i++) p->order[i] = perm[i];
    double lo = strength < 1.0f ? 1.0 - strength : 0.0, hi = 1.0 + strength;
    p->brightness = (float)rng_uniform_range(rng, lo, hi);
    p->contrast = (float)rng_uniform_range(rng, lo, hi);
    p->saturation = (float)rng_uniform_range(rng, lo, hi);
    p->hue = (float)rng_uniform_range(rng, -hue, hue);
}

/* F.center_crop's offset of a size-long window in a length-long image: centred with Python's
 * round() when the window fits, else the image is padded by (size - length) // 2 first. */
static int center_offset(int length, int size)
{
    if (size > length) return -((size - length) / 2);
    return (int)nearbyint((length - size) / 2.0);
}

void augment_draw_params(const AugConfig *cfg, Rng *rng, int img_h, int img_w, AugParams *p)
{
    memset(p, 0, sizeof *p);
    p->resize_h = img_h;
    p->resize_w = img_w;
    if (cfg->kind == AUG_EVAL) {
        if (cfg->resize_to > 0) { /* F.resize(img, resize_to): shorter side, then int() */
            int shorter = img_w <= img_h ? img_w : img_h, longer = img_w <= img_h ? img_h : img_w;
            int new_long = (int)((double)cfg->resize_to * longer / shorter);
            p->resize_w = img_w <= img_h ? cfg->resize_to : new_long;
            p->resize_h = img_w <= img_h ? new_long : cfg->resize_to;
        }
        p->top = center_offset(p->resize_h, cfg->size);
        p->left = center_offset(p->resize_w, cfg->size);
        p->h = p->w = cfg->size;
        return;
    }
    rrc_get_params(rng, img_h, img_w, cfg->scale_min, cfg->scale_max, &p->top, &p->left, &p->h,
                   &p->w);
    switch (cfg->kind) {
    case AUG_V2:
        if (rng_uniform(rng) < 0.8) draw_jitter(rng, 0.4f, 0.1f, p);
        p->gray = rng_uniform(rng) < 0.2;
        if (rng_uniform(rng) < 0.5) p->blur_sigma = (float)rng_uniform_range(rng, 0.1, 2.0);
        break;
    case AUG_V1:
        p->gray = rng_uniform(rng) < 0.2;
        draw_jitter(rng, 0.4f, 0.4f, p);
        break;
    default:
        break;
    }
    p->flip = rng_uniform(rng) < 0.5;
}

static void apply_jitter(float *img, int n, const AugParams *p)
{
    for (int i = 0; i < 4; i++) {
        switch (p->order[i]) {
        case 0: adjust_brightness(img, n, n, p->brightness); break;
        case 1: adjust_contrast(img, n, n, p->contrast); break;
        case 2: adjust_saturation(img, n, n, p->saturation); break;
        default: adjust_hue(img, n, n, p->hue); break;
        }
    }
}

void augment_apply(const Image8 *src, const AugConfig *cfg, const AugParams *p, float *out)
{
    int n = cfg->size;
    if (cfg->kind == AUG_EVAL)
        resize_then_crop(src, p->resize_h, p->resize_w, p->top, p->left, n, n, out);
    else
        resized_crop(src, p->top, p->left, p->h, p->w, n, n, out);
    if (cfg->kind == AUG_V1) {
        if (p->gray) rgb_to_grayscale3(out, n, n);
        apply_jitter(out, n, p);
    } else if (cfg->kind == AUG_V2) {
        if (p->jitter) apply_jitter(out, n, p);
        if (p->gray) rgb_to_grayscale3(out, n, n);
        if (p->blur_sigma > 0.0f) gaussian_blur(out, n, n, p->blur_sigma);
    }
    if (p->flip) hflip(out, n, n);
    normalize_imagenet(out, n, n);
}

void augment_view(const Image8 *src, const AugConfig *cfg, Rng *rng, float *out)
{
    AugParams p;
    augment_draw_params(cfg, rng, src->h, src->w, &p);
    augment_apply(src, cfg, &p, out);
}

/* augment.h — the MoCo v1 and v2 augmentation pipelines with torchvision's semantics.
 *
 * A view goes uint8 RGB -> RandomResizedCrop (bilinear, antialiased as PIL does when
 * shrinking) -> float [0,1] HWC -> colour ops -> flip -> ImageNet normalization. The
 * functional ops are exposed one by one so tests can compare each against torchvision's
 * functional API with fixed parameters.
 *
 * v2 (official main_moco.py --aug-plus): RandomResizedCrop(size, scale=(0.2, 1)),
 *   RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(p=0.2),
 *   RandomApply([GaussianBlur(sigma in [0.1, 2.0])], p=0.5), RandomHorizontalFlip, Normalize.
 * v1: RandomResizedCrop(size, scale=(0.2, 1)), RandomGrayscale(p=0.2),
 *   ColorJitter(0.4, 0.4, 0.4, 0.4), RandomHorizontalFlip, Normalize.
 * eval: resize shorter side to resize_to (0 = none), CenterCrop(size), Normalize.
 */
#ifndef MOCO_AUGMENT_H
#define MOCO_AUGMENT_H

#include "data/image.h"
#include "data/rng.h"

typedef enum { AUG_V1 = 1, AUG_V2 = 2, AUG_EVAL = 3, AUG_CROP_FLIP = 4 } AugKind;

typedef struct {
    AugKind kind;
    int size;          /* output is size x size */
    float scale_min;   /* RandomResizedCrop scale range, default 0.2 .. 1.0 (0.08 for CROP_FLIP) */
    float scale_max;
    int resize_to;     /* AUG_EVAL only: shorter side resized to this first; 0 = no resize */
} AugConfig;

AugConfig aug_config_make(AugKind kind, int size);

/* One augmented, normalized view: out is size*size*3 floats, HWC.
 * Same as augment_draw_params followed by augment_apply. */
void augment_view(const Image8 *src, const AugConfig *cfg, Rng *rng, float *out);

/* Every random decision of one view, drawn up front so tests can inspect the distributions and
 * replay a view with torchvision's functional ops. */
typedef struct {
    int top, left, h, w;   /* crop box in source pixels (AUG_EVAL: of the resized image) */
    int resize_h, resize_w;/* AUG_EVAL: size after the shorter-side resize (= source when none) */
    int jitter;            /* colour jitter applied */
    int order[4];          /* jitter op order: 0 brightness, 1 contrast, 2 saturation, 3 hue */
    float brightness, contrast, saturation, hue; /* jitter factors (when jitter) */
    int gray;              /* RandomGrayscale fired */
    float blur_sigma;      /* > 0: Gaussian blur with this sigma */
    int flip;              /* horizontal flip */
} AugParams;

/* Draws in this order from rng: crop (torchvision's RandomResizedCrop.get_params), then per
 * the pipeline's order: v2 jitter gate (p 0.8), permutation and factors b, c, s, h (only when
 * applied), grayscale gate (p 0.2), blur gate (p 0.5) and sigma ~ U(0.1, 2.0), flip gate
 * (p 0.5); v1 grayscale gate, permutation and factors (always applied), flip gate. */
void augment_draw_params(const AugConfig *cfg, Rng *rng, int img_h, int img_w, AugParams *p);
void augment_apply(const Image8 *src, const AugConfig *cfg, const AugParams *p, float *out);

/* ---- functional ops (torchvision.transforms.functional equivalents) ---- */

/* RandomResizedCrop.get_params: 10 attempts with log-uniform ratio in [3/4, 4/3], then the
 * central-crop fallback. Returns top, left, height, width of the box. */
void rrc_get_params(Rng *rng, int img_h, int img_w, float scale_min, float scale_max,
                    int *top, int *left, int *h, int *w);
/* Crop box resized to out_h x out_w with bilinear antialiased interpolation
 * (F.resized_crop(..., antialias=True) on a tensor in [0,1], horizontal pass then vertical as
 * PyTorch's separable kernel does); writes floats in [0,1], HWC. Parts of the box outside the
 * image read as zeros, as torchvision's tensor crop pads them. */
void resized_crop(const Image8 *src, int top, int left, int h, int w, int out_h, int out_w,
                  float *out);
/* F.resize(img, [resize_h, resize_w], antialias=True) followed by the out_h x out_w window at
 * (top, left) of the resized image, zeros outside it (F.center_crop pads the same way). */
void resize_then_crop(const Image8 *src, int resize_h, int resize_w, int top, int left,
                      int out_h, int out_w, float *out);
/* The following work in place on float HWC RGB images in [0,1]. */
void adjust_brightness(float *img, int h, int w, float factor);
void adjust_contrast(float *img, int h, int w, float factor);
void adjust_saturation(float *img, int h, int w, float factor);
void adjust_hue(float *img, int h, int w, float hue_factor);   /* hue_factor in [-0.5, 0.5] */
void rgb_to_grayscale3(float *img, int h, int w);               /* keeps three channels */
/* True Gaussian of standard deviation sigma, kernel size 2*ceil(3*sigma)+1 (capped to be
 * odd), reflect padding — F.gaussian_blur(img, k, sigma). */
void gaussian_blur(float *img, int h, int w, float sigma);
int gaussian_kernel_size(float sigma);
void hflip(float *img, int h, int w);
void normalize_imagenet(float *img, int h, int w);              /* (x - mean) / std */

#endif

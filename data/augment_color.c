/* augment_color.c — the colour operations of ColorJitter and RandomGrayscale, the flip and the
 * normalization, on float HWC RGB in [0,1], in place.
 *
 * Each follows torchvision 0.14's tensor implementation (_functional_tensor.py) operation by
 * operation in float32, so results agree to rounding: _blend(a, b, r) = clamp(r*a + (1-r)*b),
 * the grayscale weights 0.2989/0.587/0.114, hue through _rgb2hsv/_hsv2rgb.
 */
#include "data/augment.h"

#include <math.h>
#ifdef __SSE4_1__
#include <smmintrin.h>
#endif
#include <stddef.h>
#include <string.h>

static inline float clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

static inline float luma(const float *p)
{
    return 0.2989f * p[0] + 0.587f * p[1] + 0.114f * p[2];
}

void adjust_brightness(float *img, int h, int w, float factor)
{
    size_t n = (size_t)h * w * 3;
    for (size_t i = 0; i < n; i++) img[i] = clamp01(factor * img[i]); /* blend with black */
}

void adjust_contrast(float *img, int h, int w, float factor)
{
    size_t n = (size_t)h * w;
    double sum = 0.0; /* the mean of the grayscale image, accumulated in double */
    for (size_t i = 0; i < n; i++) sum += luma(img + 3 * i);
    float mean = (float)(sum / (double)n);
    float rest = (float)(1.0 - (double)factor) * mean;
    for (size_t i = 0; i < 3 * n; i++) img[i] = clamp01(factor * img[i] + rest);
}

void adjust_saturation(float *img, int h, int w, float factor)
{
    size_t n = (size_t)h * w;
    float other = (float)(1.0 - (double)factor);
    for (size_t i = 0; i < n; i++) {
        float *p = img + 3 * i;
        float g = other * luma(p);
        p[0] = clamp01(factor * p[0] + g);
        p[1] = clamp01(factor * p[1] + g);
        p[2] = clamp01(factor * p[2] + g);
    }
}

/* One block of planar pixels through _rgb2hsv, the hue shift and _hsv2rgb. Written with
 * selects instead of branches so the compiler vectorizes it; every arithmetic step is the
 * same float operation torchvision performs (its fmod/remainder calls reduce to one exact
 * subtraction or addition on these ranges). */
static void hue_block(float *restrict r, float *restrict g, float *restrict b, int n, float shift)
{
    for (int i = 0; i < n; i++) {
        float maxc = r[i] > g[i] ? r[i] : g[i], minc = r[i] < g[i] ? r[i] : g[i];
        maxc = maxc > b[i] ? maxc : b[i];
        minc = minc < b[i] ? minc : b[i];
        int eqc = maxc == minc;
        float cr = maxc - minc;
        float s = cr / (eqc ? 1.0f : maxc);
        float div = eqc ? 1.0f : cr;
        float rc = (maxc - r[i]) / div, gc = (maxc - g[i]) / div, bc = (maxc - b[i]) / div;
        float hr = maxc == r[i] ? bc - gc : 0.0f;
        float hg = ((maxc == g[i]) & (maxc != r[i])) ? 2.0f + rc - bc : 0.0f;
        float hb = ((maxc != g[i]) & (maxc != r[i])) ? 4.0f + gc - rc : 0.0f;
        float h = ((hr + hg) + hb) / 6.0f + 1.0f; /* in [5/6, 11/6]: fmod(h, 1) */
        h = h >= 1.0f ? h - 1.0f : h;
        h = h + shift; /* in [-0.5, 1.5): Python's h % 1.0 */
        h = h < 0.0f ? h + 1.0f : (h >= 1.0f ? h - 1.0f : h);
        float v = maxc, h6 = h * 6.0f;
        float sector = floorf(h6);
        float f = h6 - sector;
        sector = sector >= 6.0f ? sector - 6.0f : sector; /* torch: i % 6 */
        float p = clamp01(v * (1.0f - s));
        float q = clamp01(v * (1.0f - s * f));
        float t = clamp01(v * (1.0f - s * (1.0f - f)));
        /* sector:   0  1  2  3  4  5
         *   red     v  q  p  p  t  v
         *   green   t  v  v  q  p  p
         *   blue    p  p  t  v  v  q */
        float red = p, green = p, blue = p;
        red = (sector == 0.0f) | (sector == 5.0f) ? v : red;
        red = sector == 1.0f ? q : red;
        red = sector == 4.0f ? t : red;
        green = (sector == 1.0f) | (sector == 2.0f) ? v : green;
        green = sector == 0.0f ? t : green;
        green = sector == 3.0f ? q : green;
        blue = (sector == 3.0f) | (sector == 4.0f) ? v : blue;
        blue = sector == 2.0f ? t : blue;
        blue = sector == 5.0f ? q : blue;
        r[i] = red;
        g[i] = green;
        b[i] = blue;
    }
}

#ifdef __SSE4_1__
/* hue_block four pixels at a time: the same IEEE operations lane by lane (max/min, compares
 * and blends instead of branches), so results are bit-identical to the scalar loop. GCC
 * cannot vectorize that loop itself: with -ftrapping-math it will not turn float compares
 * into unconditional ones. */
static void hue_block_sse(float *r, float *g, float *b, int n, float shift)
{
    const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.0f), two = _mm_set1_ps(2.0f),
                 four = _mm_set1_ps(4.0f), six = _mm_set1_ps(6.0f), vshift = _mm_set1_ps(shift);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128 R = _mm_loadu_ps(r + i), G = _mm_loadu_ps(g + i), B = _mm_loadu_ps(b + i);
        __m128 maxc = _mm_max_ps(_mm_max_ps(R, G), B), minc = _mm_min_ps(_mm_min_ps(R, G), B);
        __m128 eqc = _mm_cmpeq_ps(maxc, minc);
        __m128 cr = _mm_sub_ps(maxc, minc);
        __m128 s = _mm_div_ps(cr, _mm_blendv_ps(maxc, one, eqc));
        __m128 div = _mm_blendv_ps(cr, one, eqc);
        __m128 rc = _mm_div_ps(_mm_sub_ps(maxc, R), div);
        __m128 gc = _mm_div_ps(_mm_sub_ps(maxc, G), div);
        __m128 bc = _mm_div_ps(_mm_sub_ps(maxc, B), div);
        __m128 mr = _mm_cmpeq_ps(maxc, R), mg = _mm_cmpeq_ps(maxc, G);
        __m128 hr = _mm_and_ps(mr, _mm_sub_ps(bc, gc));
        __m128 hg = _mm_andnot_ps(mr, _mm_and_ps(mg, _mm_sub_ps(_mm_add_ps(two, rc), bc)));
        __m128 hb = _mm_andnot_ps(_mm_or_ps(mr, mg), _mm_sub_ps(_mm_add_ps(four, gc), rc));
        __m128 h = _mm_add_ps(_mm_div_ps(_mm_add_ps(_mm_add_ps(hr, hg), hb), six), one);
        h = _mm_blendv_ps(h, _mm_sub_ps(h, one), _mm_cmpge_ps(h, one));
        h = _mm_add_ps(h, vshift);
        __m128 wrapped = _mm_blendv_ps(h, _mm_sub_ps(h, one), _mm_cmpge_ps(h, one));
        h = _mm_blendv_ps(wrapped, _mm_add_ps(h, one), _mm_cmplt_ps(h, zero));
        __m128 h6 = _mm_mul_ps(h, six);
        __m128 sector = _mm_floor_ps(h6);
        __m128 f = _mm_sub_ps(h6, sector);
        sector = _mm_blendv_ps(sector, _mm_sub_ps(sector, six), _mm_cmpge_ps(sector, six));
        __m128 v = maxc;
        __m128 p = _mm_min_ps(_mm_max_ps(_mm_mul_ps(v, _mm_sub_ps(one, s)), zero), one);
        __m128 q = _mm_min_ps(_mm_max_ps(_mm_mul_ps(v, _mm_sub_ps(one, _mm_mul_ps(s, f))), zero), one);
        __m128 t = _mm_min_ps(
            _mm_max_ps(_mm_mul_ps(v, _mm_sub_ps(one, _mm_mul_ps(s, _mm_sub_ps(one, f)))), zero), one);
        __m128 s0 = _mm_cmpeq_ps(sector, zero), s1 = _mm_cmpeq_ps(sector, one),
               s2 = _mm_cmpeq_ps(sector, two), s3 = _mm_cmpeq_ps(sector, _mm_set1_ps(3.0f)),
               s4 = _mm_cmpeq_ps(sector, four), s5 = _mm_cmpeq_ps(sector, _mm_set1_ps(5.0f));
        __m128 red = _mm_blendv_ps(p, v, _mm_or_ps(s0, s5));
        red = _mm_blendv_ps(red, q, s1);
        red = _mm_blendv_ps(red, t, s4);
        __m128 green = _mm_blendv_ps(p, v, _mm_or_ps(s1, s2));
        green = _mm_blendv_ps(green, t, s0);
        green = _mm_blendv_ps(green, q, s3);
        __m128 blue = _mm_blendv_ps(p, v, _mm_or_ps(s3, s4));
        blue = _mm_blendv_ps(blue, t, s2);
        blue = _mm_blendv_ps(blue, q, s5);
        _mm_storeu_ps(r + i, red);
        _mm_storeu_ps(g + i, green);
        _mm_storeu_ps(b + i, blue);
    }
    hue_block(r + i, g + i, b + i, n - i, shift); /* the tail */
}
#endif

void adjust_hue(float *img, int h, int w, float hue_factor)
{
    enum { BLOCK = 256 };
    float r[BLOCK], g[BLOCK], b[BLOCK];
    size_t n = (size_t)h * w;
    for (size_t start = 0; start < n; start += BLOCK) {
        int m = n - start < BLOCK ? (int)(n - start) : BLOCK;
        float *px = img + 3 * start;
        for (int i = 0; i < m; i++) {
            r[i] = px[3 * i];
            g[i] = px[3 * i + 1];
            b[i] = px[3 * i + 2];
        }
#ifdef __SSE4_1__
        hue_block_sse(r, g, b, m, hue_factor);
#else
        hue_block(r, g, b, m, hue_factor);
#endif
        for (int i = 0; i < m; i++) {
            px[3 * i] = r[i];
            px[3 * i + 1] = g[i];
            px[3 * i + 2] = b[i];
        }
    }
}

void rgb_to_grayscale3(float *img, int h, int w)
{
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        float *p = img + 3 * i;
        float g = luma(p);
        p[0] = p[1] = p[2] = g;
    }
}

void hflip(float *img, int h, int w)
{
    for (int y = 0; y < h; y++) {
        float *row = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            float t[3];
            memcpy(t, row + 3 * a, sizeof t);
            memcpy(row + 3 * a, row + 3 * b, sizeof t);
            memcpy(row + 3 * b, t, sizeof t);
        }
    }
}

void normalize_imagenet(float *img, int h, int w)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) img[3 * i + c] = (img[3 * i + c] - mean[c]) / std[c];
}

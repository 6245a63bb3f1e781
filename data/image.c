/* image.c — JPEG (TurboJPEG) and PNG (libpng) decoding into 8-bit RGB, matching what
 * PIL's Image.open(...).convert("RGB") gives, so that torchvision-trained pipelines see the same
 * pixels. The format is recognised by its magic bytes, never by the file name.
 */
#include "data/image.h"
#include "common/error.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

/* The most pixels one image may have: PIL's decompression-bomb limit (2 * MAX_IMAGE_PIXELS,
 * where Image.open raises DecompressionBombError), so a folder that torchvision can train on
 * decodes here too, and a 100-byte file claiming 100000x100000 pixels is refused before
 * anything is allocated for it (each loader worker would otherwise take gigabytes). */
#define IMAGE_MAX_PIXELS 178956970ull

static int too_many_pixels(const char *format, uint64_t w, uint64_t h, char *err, size_t errlen)
{
    if (w * h <= IMAGE_MAX_PIXELS) return 0;
    snprintf(err, errlen, "%s declares %llux%llu pixels, more than the %llu-pixel limit for one "
             "image (a decompression bomb, or a file to downscale first)", format,
             (unsigned long long)w, (unsigned long long)h, IMAGE_MAX_PIXELS);
    return 1;
}

void image_free(Image8 *img)
{
    free(img->data);
    img->data = NULL;
    img->h = img->w = 0;
}

/* ---- JPEG ---------------------------------------------------------------------------------- */

/* PIL reads every 4-channel JPEG as Adobe-inverted CMYK ("CMYK;I") and converts to RGB with
 * R = nk - nk*C/255 on its (re-inverted) values; in terms of the stored bytes s that libjpeg
 * hands back, C = 255 - s_c and nk = s_k. Same integer rounding as PIL's MULDIV255. */
static inline uint8_t pil_cmyk_channel(uint8_t stored_c, uint8_t stored_k)
{
    int c = 255 - stored_c, nk = stored_k;
    int tmp = c * nk + 128;
    int v = nk - (((tmp >> 8) + tmp) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int decode_jpeg(const uint8_t *bytes, size_t len, Image8 *out, char *err, size_t errlen)
{
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        snprintf(err, errlen, "cannot start the JPEG decoder: %s", tjGetErrorStr2(NULL));
        return -1;
    }
    /* Zeroed: for a tables-only stream tjDecompressHeader3 succeeds without setting them. */
    int w = 0, h = 0, subsamp = 0, colorspace = 0, rc = -1;
    uint8_t *cmyk = NULL;
    if (tjDecompressHeader3(tj, bytes, (unsigned long)len, &w, &h, &subsamp, &colorspace) != 0) {
        snprintf(err, errlen, "truncated or corrupt JPEG (%s)", tjGetErrorStr2(tj));
        goto done;
    }
    if (w <= 0 || h <= 0) {
        snprintf(err, errlen, "truncated or corrupt JPEG (no image after the header)");
        goto done;
    }
    if (too_many_pixels("JPEG", (uint64_t)w, (uint64_t)h, err, errlen)) goto done;
    out->w = w;
    out->h = h;
    out->data = xmalloc((size_t)w * h * 3);
    /* Every warning counts as failure: libjpeg "recovers" a truncated file by padding it with
     * grey, which would silently train on half an image. */
    int flags = TJFLAG_STOPONWARNING;
    int status;
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        cmyk = xmalloc((size_t)w * h * 4);
        status = tjDecompress2(tj, bytes, (unsigned long)len, cmyk, w, 0, h, TJPF_CMYK, flags);
        if (status == 0) {
            for (size_t i = 0, n = (size_t)w * h; i < n; i++) {
                const uint8_t *p = cmyk + 4 * i;
                for (int ch = 0; ch < 3; ch++) out->data[3 * i + ch] = pil_cmyk_channel(p[ch], p[3]);
            }
        }
    } else {
        /* Grayscale JPEGs come out replicated into RGB, as PIL's convert("RGB") does. */
        status = tjDecompress2(tj, bytes, (unsigned long)len, out->data, w, 0, h, TJPF_RGB, flags);
    }
    if (status != 0) {
        snprintf(err, errlen, "truncated or corrupt JPEG (%s)", tjGetErrorStr2(tj));
        image_free(out);
        goto done;
    }
    rc = 0;
done:
    free(cmyk);
    tjDestroy(tj);
    return rc;
}

/* ---- PNG ----------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *bytes;
    size_t len, pos;
} PngSource;

typedef struct {
    char *msg;
    size_t len;
} PngErrorSink;

static void png_read_from_memory(png_structp png, png_bytep dst, png_size_t n)
{
    PngSource *src = png_get_io_ptr(png);
    if (n > src->len - src->pos) png_error(png, "truncated PNG data");
    memcpy(dst, src->bytes + src->pos, n);
    src->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    PngErrorSink *sink = png_get_error_ptr(png);
    snprintf(sink->msg, sink->len, "corrupt PNG (%s)", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int decode_png(const uint8_t *bytes, size_t len, Image8 *out, char *err, size_t errlen)
{
    /* The header's own dimensions (IHDR is always the first chunk), checked before libpng,
     * whose user-limit refusal only says "Invalid IHDR data". */
    if (len >= 24 && memcmp(bytes + 12, "IHDR", 4) == 0) {
        uint64_t hw = (uint64_t)bytes[16] << 24 | (uint64_t)bytes[17] << 16 | (uint64_t)bytes[18] << 8 | bytes[19];
        uint64_t hh = (uint64_t)bytes[20] << 24 | (uint64_t)bytes[21] << 16 | (uint64_t)bytes[22] << 8 | bytes[23];
        if (too_many_pixels("PNG", hw, hh, err, errlen)) return -1;
    }
    PngErrorSink sink = {err, errlen};
    PngSource src = {bytes, len, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, png_on_error,
                                             png_on_warning);
    if (!png) {
        snprintf(err, errlen, "cannot start the PNG decoder");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    /* volatile: these change between setjmp and a possible longjmp back. */
    png_bytep *volatile rows = NULL;
    uint8_t *volatile pixels = NULL;
    if (!info) {
        snprintf(err, errlen, "cannot start the PNG decoder");
        png_destroy_read_struct(&png, NULL, NULL);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &src, png_read_from_memory);
    /* libpng's default caps (1,000,000 per side) would refuse a legitimate 1x2000000 strip
     * with only "Invalid IHDR data"; the pixel count is limited above and below instead. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if ((uint64_t)w * h > IMAGE_MAX_PIXELS) png_error(png, "image too large");

    /* Transformations to 8-bit RGB the way PIL's convert("RGB") ends up: palettes expanded
     * (transparency ignored), gray replicated, alpha dropped (not composited), 16-bit samples
     * reduced to their high byte, gAMA ignored. */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    /* Expanding a palette also turns a tRNS chunk into alpha, which goes the same way. */
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout");

    pixels = xmalloc((size_t)w * h * 3);
    rows = xmalloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->w = (int)w;
    out->h = (int)h;
    out->data = pixels;
    return 0;
}

/* ---- entry points -------------------------------------------------------------------------- */

int image_decode_memory(const uint8_t *bytes, size_t len, Image8 *out, char *err, size_t errlen)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    out->data = NULL;
    out->h = out->w = 0;
    if (len == 0) {
        snprintf(err, errlen, "empty file (0 bytes)");
        return -1;
    }
    if (len >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return decode_jpeg(bytes, len, out, err, errlen);
    if (len >= 8 && memcmp(bytes, png_magic, 8) == 0) return decode_png(bytes, len, out, err, errlen);
    snprintf(err, errlen, "not a JPEG or PNG file (unrecognised first bytes)");
    return -1;
}

int image_decode_file(const char *path, Image8 *out, char *err, size_t errlen)
{
    out->data = NULL;
    out->h = out->w = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        fclose(f);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *bytes = xmalloc(len);
    size_t got = len ? fread(bytes, 1, len, f) : 0;
    int read_error = ferror(f);
    fclose(f);
    if (got != len || read_error) {
        snprintf(err, errlen, "read error: %s", read_error ? strerror(errno) : "short read");
        free(bytes);
        return -1;
    }
    int rc = image_decode_memory(bytes, len, out, err, errlen);
    free(bytes);
    return rc;
}

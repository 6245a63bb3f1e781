/* image.h — decoding image files into 8-bit RGB.
 *
 * JPEG goes through libjpeg-turbo (grayscale and CMYK become RGB), PNG through libpng (palette,
 * gray, alpha dropped, 16-bit reduced to 8). Errors come back as text naming the file and the
 * reason, never as a crash: a loader skips such files and counts them.
 */
#ifndef MOCO_IMAGE_H
#define MOCO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int h, w;       /* pixels */
    uint8_t *data;  /* h * w * 3 bytes, HWC RGB, malloc'd */
} Image8;

/* 0 on success; otherwise -1 with a message like "truncated JPEG data" in err. */
int image_decode_file(const char *path, Image8 *out, char *err, size_t errlen);
int image_decode_memory(const uint8_t *bytes, size_t len, Image8 *out, char *err, size_t errlen);
void image_free(Image8 *img);

#endif

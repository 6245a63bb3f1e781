/* folder.h — an image folder with torchvision ImageFolder semantics.
 *
 * root/<class>/<...>/<file>: class folders sorted by name (byte order), files found
 * recursively and sorted, extensions matched case-insensitively against torchvision's
 * IMG_EXTENSIONS (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp); the label of a file is the
 * index of its class folder. An empty class folder keeps its index in the sorted class list
 * (torchvision 0.14 refuses such a folder outright; we keep training on the others).
 */
#ifndef MOCO_FOLDER_H
#define MOCO_FOLDER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *root;
    int num_classes;
    char **classes;   /* [num_classes] folder names */
    int count;
    char **paths;     /* [count] full paths */
    int32_t *labels;  /* [count] */
} ImageFolder;

/* 0 on success. -1 with a message naming the folder when it is missing, unreadable, has no
 * class folders, or holds no image files at all. */
int image_folder_open(const char *root, ImageFolder *out, char *err, size_t errlen);
void image_folder_free(ImageFolder *f);

#endif

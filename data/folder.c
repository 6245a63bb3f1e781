/* folder.c — torchvision ImageFolder semantics over a directory tree.
 *
 * find_classes: the sorted names of root's entries that are directories (symlinks followed).
 * make_dataset: for each class, os.walk(class_dir, followlinks=True) sorted by directory path,
 * then each directory's file names sorted, kept when their lower-cased name ends with one of
 * IMG_EXTENSIONS. Sorting is by bytes (strcmp), which for UTF-8 names is Python's code-point
 * order.
 */
#include "data/folder.h"
#include "common/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char **items;
    int count, cap;
} StrList;

static void strlist_push(StrList *l, char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = xrealloc(l->items, sizeof(char *) * l->cap);
    }
    l->items[l->count++] = s;
}

static void strlist_free(StrList *l)
{
    for (int i = 0; i < l->count; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int has_image_extension(const char *name)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp",
                                       ".pgm", ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    for (size_t e = 0; e < sizeof exts / sizeof exts[0]; e++) {
        size_t k = strlen(exts[e]);
        if (n >= k && strcasecmp(name + n - k, exts[e]) == 0) return 1;
    }
    return 0;
}

/* Like os.walk(followlinks=True): every directory below dir (itself included) goes into dirs.
 * Directories already visited (same device and inode) are not entered again, so a symlink loop
 * cannot recurse forever (os.walk would). */
typedef struct {
    dev_t dev;
    ino_t ino;
} DirId;

typedef struct {
    DirId *ids;
    int count, cap;
} Visited;

static int visited_add(Visited *v, const struct stat *st)
{
    for (int i = 0; i < v->count; i++)
        if (v->ids[i].dev == st->st_dev && v->ids[i].ino == st->st_ino) return 0;
    if (v->count == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->ids = xrealloc(v->ids, sizeof(DirId) * v->cap);
    }
    v->ids[v->count++] = (DirId){st->st_dev, st->st_ino};
    return 1;
}

static void walk_dirs(const char *dir, StrList *dirs, Visited *seen)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !visited_add(seen, &st)) return;
    strlist_push(dirs, xstrdup(dir));
    DIR *d = opendir(dir);
    if (!d) return; /* os.walk ignores unreadable directories too */
    StrList subdirs = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = join_path(dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) strlist_push(&subdirs, p);
        else free(p);
    }
    closedir(d);
    for (int i = 0; i < subdirs.count; i++) walk_dirs(subdirs.items[i], dirs, seen);
    strlist_free(&subdirs);
}

/* The image files directly in dir (broken symlinks included, as os.walk lists them), sorted by
 * name, appended with their label. */
static void add_files(const char *dir, int label, StrList *paths, int32_t **labels, int *cap)
{
    DIR *d = opendir(dir);
    if (!d) return;
    StrList names = {0};
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!has_image_extension(e->d_name)) continue;
        char *p = join_path(dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) free(p); /* a folder named x.jpg */
        else strlist_push(&names, p);
    }
    closedir(d);
    if (names.count > 1) qsort(names.items, names.count, sizeof(char *), cmp_str);
    for (int i = 0; i < names.count; i++) {
        if (paths->count == *cap) {
            *cap = *cap ? 2 * *cap : 1024;
            *labels = xrealloc(*labels, sizeof(int32_t) * *cap);
        }
        (*labels)[paths->count] = label;
        strlist_push(paths, names.items[i]);
    }
    free(names.items); /* the strings now belong to paths */
}

int image_folder_open(const char *root, ImageFolder *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(root, &st) != 0) {
        snprintf(err, errlen, "image folder '%s': %s", root, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "image folder '%s' is not a directory", root);
        return -1;
    }
    DIR *d = opendir(root);
    if (!d) {
        snprintf(err, errlen, "image folder '%s': %s", root, strerror(errno));
        return -1;
    }
    StrList classes = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = join_path(root, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) strlist_push(&classes, xstrdup(e->d_name));
        free(p);
    }
    closedir(d);
    if (classes.count == 0) {
        snprintf(err, errlen, "image folder '%s' has no class folders (expected root/<class>/<image>)",
                 root);
        strlist_free(&classes);
        return -1;
    }
    qsort(classes.items, classes.count, sizeof(char *), cmp_str);

    StrList paths = {0};
    int32_t *labels = NULL;
    int cap = 0;
    for (int c = 0; c < classes.count; c++) {
        char *class_dir = join_path(root, classes.items[c]);
        StrList dirs = {0};
        Visited seen = {0};
        walk_dirs(class_dir, &dirs, &seen);
        qsort(dirs.items, dirs.count, sizeof(char *), cmp_str);
        for (int i = 0; i < dirs.count; i++) add_files(dirs.items[i], c, &paths, &labels, &cap);
        strlist_free(&dirs);
        free(seen.ids);
        free(class_dir);
    }
    if (paths.count == 0) {
        snprintf(err, errlen,
                 "image folder '%s' holds no image files in its %d class folder(s) (extensions: "
                 ".jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp)",
                 root, classes.count);
        strlist_free(&classes);
        free(labels);
        return -1;
    }
    out->root = xstrdup(root);
    out->num_classes = classes.count;
    out->classes = classes.items;
    out->count = paths.count;
    out->paths = paths.items;
    out->labels = labels;
    return 0;
}

void image_folder_free(ImageFolder *f)
{
    for (int i = 0; i < f->num_classes; i++) free(f->classes[i]);
    for (int i = 0; i < f->count; i++) free(f->paths[i]);
    free(f->classes);
    free(f->paths);
    free(f->labels);
    free(f->root);
    memset(f, 0, sizeof *f);
}

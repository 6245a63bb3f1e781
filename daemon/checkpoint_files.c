/* checkpoint_files.c — see checkpoint_files.h. */
#include "daemon/checkpoint_files.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Headers of real checkpoints are a few KiB to a few hundred (tensor list + config); a bigger
 * one is not worth reading for two numbers. */
#define MAX_HEADER_BYTES (16u << 20)

static int64_t meta_int(const cJSON *meta, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (cJSON_IsString(v)) {
        char *end;
        errno = 0;
        long long x = strtoll(v->valuestring, &end, 10);
        if (!errno && end != v->valuestring && *end == '\0' && x >= 0) return x;
    } else if (cJSON_IsNumber(v) && v->valuedouble >= 0) {
        return (int64_t)v->valuedouble;
    }
    return -1;
}

void checkpoint_read_position(const char *path, int64_t *step, int64_t *epoch)
{
    *step = *epoch = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    unsigned char len8[8];
    char *header = NULL;
    if (pread(fd, len8, 8, 0) != 8) goto out;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = (len << 8) | len8[i]; /* little-endian */
    if (len == 0 || len > MAX_HEADER_BYTES) goto out;
    header = malloc((size_t)len + 1);
    if (!header || pread(fd, header, (size_t)len, 8) != (ssize_t)len) goto out;
    header[len] = '\0';
    cJSON *root = cJSON_ParseWithLength(header, (size_t)len);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    if (cJSON_IsObject(meta)) {
        *step = meta_int(meta, "step");
        *epoch = meta_int(meta, "epoch");
    }
    cJSON_Delete(root);
out:
    free(header);
    close(fd);
}

int file_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1u << 20);
    int ret = -1;
    if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        snprintf(err, errlen, "cannot set up sha256 (OpenSSL)");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, 1u << 20);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            snprintf(err, errlen, "sha256 of %s failed (OpenSSL)", path);
            goto out;
        }
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32) {
        snprintf(err, errlen, "sha256 of %s failed (OpenSSL)", path);
        goto out;
    }
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ret = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return ret;
}

int checkpoint_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 12 && n < 256 && name[0] != '.' && !strchr(name, '/') && !strstr(name, "..") &&
           strcmp(name + n - 12, ".safetensors") == 0;
}

/* sha256.h — SHA-256 (FIPS 180-4), streaming, for checking downloaded checkpoints against the
 * digest mocod lists. mococtl links no crypto library for this one use. */
#ifndef MOCOCTL_SHA256_H
#define MOCOCTL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;       /* message length so far */
    uint8_t block[64];
    size_t used;          /* bytes waiting in block */
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t len);
/* Writes 64 lowercase hex digits and a NUL into hex[65]. */
void sha256_final_hex(Sha256 *s, char hex[65]);

#endif

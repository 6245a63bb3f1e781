/* checkpoint_files.h — facts about a checkpoint file without loading its tensors: the step
 * and epoch from its safetensors header (__metadata__), and its sha256 (OpenSSL EVP).
 */
#ifndef MOCOD_CHECKPOINT_FILES_H
#define MOCOD_CHECKPOINT_FILES_H

#include <stddef.h>
#include <stdint.h>

/* Reads __metadata__.step and .epoch of a safetensors file (-1 when absent or unreadable). */
void checkpoint_read_position(const char *path, int64_t *step, int64_t *epoch);
/* Hex sha256 of the file into hex[65]. 0, or -1 with err. */
int file_sha256(const char *path, char hex[65], char *err, size_t errlen);
/* A plain checkpoint file name mocod serves: no '/', no "..", no leading '.', ends with
 * .safetensors. */
int checkpoint_name_ok(const char *name);

#endif

/* shuffle_bn.c — see shuffle_bn.h. */
#include "train/shuffle_bn.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void shuffle_take_rows(const float *all, const int32_t *perm, int rank, int n, size_t row,
                       float *dst)
{
    for (int j = 0; j < n; j++)
        memcpy(dst + (size_t)j * row, all + (size_t)perm[(size_t)rank * n + j] * row,
               row * sizeof(float));
}

void unshuffle_rows(const float *shuffled, const int32_t *perm, int N, size_t row, float *dst)
{
    for (int j = 0; j < N; j++)
        memcpy(dst + (size_t)perm[j] * row, shuffled + (size_t)j * row, row * sizeof(float));
}

int is_permutation(const int32_t *perm, int N)
{
    unsigned char *seen = xcalloc((size_t)N, 1);
    int ok = 1;
    for (int j = 0; j < N && ok; j++) {
        ok = perm[j] >= 0 && perm[j] < N && !seen[perm[j]];
        if (ok) seen[perm[j]] = 1;
    }
    free(seen);
    return ok;
}

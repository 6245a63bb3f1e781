/* shuffle_bn.h — the row moves of shuffle BN (official moco/builder.py, _batch_shuffle_ddp and
 * _batch_unshuffle_ddp), apart from the collectives that carry the rows between ranks.
 *
 * The global key batch has N = R·n rows, rank r owning rows [r·n, (r+1)·n). perm (rank 0's
 * idx_shuffle, the same on every rank) sends global row perm[j] to shuffled position j; rank r
 * runs encoder_k on shuffled positions [r·n, (r+1)·n), so its BatchNorm sees the rows that the
 * permutation sent it, not its own. Unshuffling puts shuffled position j back at row perm[j].
 */
#ifndef MOCO_SHUFFLE_BN_H
#define MOCO_SHUFFLE_BN_H

#include <stddef.h>
#include <stdint.h>

/* dst[j] = all[perm[rank·n + j]] for j < n; rows of `row` floats. */
void shuffle_take_rows(const float *all, const int32_t *perm, int rank, int n, size_t row,
                       float *dst);
/* dst[perm[j]] = shuffled[j] for j < N. */
void unshuffle_rows(const float *shuffled, const int32_t *perm, int N, size_t row, float *dst);
/* 1 when perm[0..N) is a permutation of 0..N-1. */
int is_permutation(const int32_t *perm, int N);

#endif

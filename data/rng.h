/* rng.h — counter-based random numbers (Philox4x32-10).
 *
 * Every random draw in moco-train comes from a stream keyed by (seed, a, b, c) — for a sample
 * view that is (seed, epoch, sample index, view) — so results never depend on thread count or
 * timing, and a resumed run reproduces an uninterrupted one bit for bit.
 */
#ifndef MOCO_RNG_H
#define MOCO_RNG_H

#include <stdint.h>

typedef struct {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t out[4];
    int used; /* how many of out[] have been handed out */
} Rng;

/* A stream identified by seed and three stream coordinates. */
void rng_init(Rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint32_t rng_u32(Rng *r);
double rng_uniform(Rng *r);                       /* [0, 1), 53-bit */
double rng_uniform_range(Rng *r, double lo, double hi);
double rng_normal(Rng *r);                        /* standard normal (Box-Muller) */
int rng_below(Rng *r, int n);                     /* uniform integer in [0, n), unbiased */
void rng_permutation(Rng *r, int n, int32_t *perm); /* uniform random permutation of 0..n-1 */

/* The raw block function, exposed for the known-answer test. */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif

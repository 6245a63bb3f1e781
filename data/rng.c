/* rng.c — Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC 2011), keyed so that every (seed, a, b, c) names its own stream.
 *
 * Layout: key = the 64-bit seed; counter = (block, a, b, c) with 32 bits each. The high halves
 * of a, b and c (never non-zero for epochs, sample indices and views in practice) are mixed into
 * the key so that large coordinates still give distinct streams.
 */
#include "data/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4])
{
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo32(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rng_init(Rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint32_t high = (uint32_t)(a >> 32) * 0x85EBCA6Bu ^ (uint32_t)(b >> 32) * 0xC2B2AE35u ^
                    (uint32_t)(c >> 32) * 0x27D4EB2Fu;
    r->key[0] = (uint32_t)seed ^ high;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = (uint32_t)a;
    r->ctr[2] = (uint32_t)b;
    r->ctr[3] = (uint32_t)c;
    r->used = 4; /* nothing generated yet */
}

uint32_t rng_u32(Rng *r)
{
    if (r->used == 4) {
        philox4x32_10(r->ctr, r->key, r->out);
        r->ctr[0]++; /* 2^32 blocks per stream: far more than any view needs */
        r->used = 0;
    }
    return r->out[r->used++];
}

double rng_uniform(Rng *r)
{
    uint64_t hi = rng_u32(r) >> 5, lo = rng_u32(r) >> 6; /* 27 + 26 = 53 bits */
    return (double)(hi * 67108864u + lo) * (1.0 / 9007199254740992.0);
}

double rng_uniform_range(Rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }

double rng_normal(Rng *r)
{
    /* Box-Muller with the second value dropped: one draw never depends on an earlier one. */
    double u1 = 1.0 - rng_uniform(r); /* (0, 1]: log stays finite */
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int rng_below(Rng *r, int n)
{
    if (n <= 1) return 0;
    /* Rejection of the top partial copy of [0, n) keeps every value equally likely. */
    uint32_t un = (uint32_t)n;
    uint32_t limit = UINT32_MAX - (uint32_t)((((uint64_t)UINT32_MAX) + 1) % un);
    uint32_t x;
    do x = rng_u32(r);
    while (x > limit);
    return (int)(x % un);
}

void rng_permutation(Rng *r, int n, int32_t *perm)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = rng_below(r, i + 1);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

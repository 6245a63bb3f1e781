/* kernel_check.h — helpers shared by the kernel tests: deterministic random inputs and the
 * fast-against-reference comparison. Include after <cmocka.h>; define KERNEL_CHECK_SEED first
 * to give a test file its own input stream. */
#ifndef MOCO_KERNEL_CHECK_H
#define MOCO_KERNEL_CHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#ifndef KERNEL_CHECK_SEED
#define KERNEL_CHECK_SEED 0x9e3779b97f4a7c15ull
#endif

static uint64_t rng_state = KERNEL_CHECK_SEED;

/* splitmix64 -> uniform in [-1, 1): deterministic so failures reproduce */
static inline float rand_uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static inline float *rand_floats(size_t count, float scale, float offset)
{
    float *p = xmalloc(count * sizeof(float) + 1);
    for (size_t i = 0; i < count; i++) p[i] = rand_uniform() * scale + offset;
    return p;
}

/* A double copy, for the double-precision references. */
static inline double *widen(const float *f, size_t count)
{
    double *d = xmalloc(count * sizeof(double) + 1);
    for (size_t i = 0; i < count; i++) d[i] = f[i];
    return d;
}

/* Fails the test when max|fast - ref| > tol * max|ref| (or > tol when ref is all zeros). */
static inline void expect_close(const char *what, const float *fast, const double *ref,
                                size_t count, double tol)
{
    double max_err = 0, max_ref = 0;
    size_t worst = 0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs((double)fast[i] - ref[i]);
        if (!(e <= max_err)) { /* also catches NaN */
            max_err = e;
            worst = i;
        }
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    double scale = max_ref > 0 ? max_ref : 1;
    if (!(max_err <= tol * scale)) {
        print_error("%s: max error %.3g at %zu (fast %.9g ref %.9g), scale %.3g, tolerance %.3g\n",
                    what, max_err, worst, (double)fast[worst], ref[worst], scale, tol * scale);
        fail();
    }
}

#endif

/* test_data_rng.c — Philox4x32-10 known answers (Random123's kat_vectors) and the statistics
 * of the derived draws. Statistical checks allow 5 standard errors (or a chi-square far in the
 * tail), so a correct generator fails them about once in millions of runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "data/rng.h"

static void test_philox_known_answers(void **state)
{
    (void)state;
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        philox4x32_10(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[i].out[j]);
    }
}

static void test_streams_are_distinct_and_reproducible(void **state)
{
    (void)state;
    Rng a, b, c;
    rng_init(&a, 1, 2, 3, 0);
    rng_init(&b, 1, 2, 3, 0);
    rng_init(&c, 1, 2, 3, 1);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = rng_u32(&a), y = rng_u32(&b), z = rng_u32(&c);
        same_ab += x == y;
        same_ac += x == z;
    }
    assert_int_equal(same_ab, 100);
    assert_true(same_ac <= 1);
    /* every coordinate matters, including the high halves of 64-bit ones */
    uint64_t coords[][4] = {{0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1},
                            {0, 1ull << 32, 0, 0}, {1ull << 32, 0, 0, 0}};
    uint32_t first[7];
    for (int i = 0; i < 7; i++) {
        Rng r;
        rng_init(&r, coords[i][0], coords[i][1], coords[i][2], coords[i][3]);
        first[i] = rng_u32(&r);
        for (int j = 0; j < i; j++) assert_true(first[i] != first[j]);
    }
}

static void test_uniform_and_normal_moments(void **state)
{
    (void)state;
    Rng r;
    rng_init(&r, 42, 0, 0, 0);
    const int n = 200000;
    double s = 0, s2 = 0, lo = 1, hi = 0, ns = 0, ns2 = 0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        s += u;
        s2 += u * u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        double z = rng_normal(&r);
        ns += z;
        ns2 += z * z;
        double v = rng_uniform_range(&r, -3.0, 5.0);
        assert_true(v >= -3.0 && v < 5.0);
    }
    assert_true(fabs(s / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(s2 / n - 1.0 / 3) < 5 * sqrt(4.0 / 45 / n)); /* var(u^2) = 4/45 */
    assert_true(lo < 1e-4 && hi > 1 - 1e-4);
    assert_true(fabs(ns / n) < 5 * sqrt(1.0 / n));
    assert_true(fabs(ns2 / n - 1.0) < 5 * sqrt(2.0 / n)); /* var(z^2) = 2 */
}

static void test_below_is_unbiased(void **state)
{
    (void)state;
    Rng r;
    rng_init(&r, 7, 1, 2, 3);
    /* n = 3 * 2^30: plain modulo would make 0 .. 2^30-1 twice as likely as the rest */
    const int n = 3 << 29, draws = 60000;
    int low = 0;
    for (int i = 0; i < draws; i++) {
        int x = rng_below(&r, n);
        assert_true(x >= 0 && x < n);
        low += x < n / 3;
    }
    assert_true(fabs((double)low / draws - 1.0 / 3) < 5 * sqrt(2.0 / 9 / draws));
    assert_int_equal(rng_below(&r, 1), 0);
    /* small n: chi-square over 7 cells, 6 dof; 35 is p < 1e-5 */
    int cells[7] = {0};
    for (int i = 0; i < 70000; i++) cells[rng_below(&r, 7)]++;
    double chi = 0;
    for (int i = 0; i < 7; i++) chi += (cells[i] - 10000.0) * (cells[i] - 10000.0) / 10000.0;
    assert_true(chi < 35);
}

static void test_permutation_is_uniform(void **state)
{
    (void)state;
    Rng r;
    rng_init(&r, 9, 0, 0, 0);
    int32_t p[1000];
    rng_permutation(&r, 1000, p);
    char seen[1000] = {0};
    for (int i = 0; i < 1000; i++) {
        assert_true(p[i] >= 0 && p[i] < 1000 && !seen[p[i]]);
        seen[p[i]] = 1;
    }
    /* all 24 orders of 4 equally likely: chi-square, 23 dof; 60 is p ~ 3e-5 */
    int count[256] = {0};
    const int draws = 48000;
    for (int i = 0; i < draws; i++) {
        int32_t q[4];
        rng_permutation(&r, 4, q);
        count[q[0] * 64 + q[1] * 16 + q[2] * 4 + q[3]]++;
    }
    double chi = 0, expect = draws / 24.0;
    int cells = 0;
    for (int i = 0; i < 256; i++)
        if (count[i]) {
            cells++;
            chi += (count[i] - expect) * (count[i] - expect) / expect;
        }
    assert_int_equal(cells, 24);
    assert_true(chi < 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_streams_are_distinct_and_reproducible),
        cmocka_unit_test(test_uniform_and_normal_moments),
        cmocka_unit_test(test_below_is_unbiased),
        cmocka_unit_test(test_permutation_is_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

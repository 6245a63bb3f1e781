/* test_shuffle_bn.c — the row moves of shuffle BN (train/shuffle_bn.c) on 1, 2, 3 and 4
 * simulated ranks: every rank's shuffled sub-batch holds exactly the rows the permutation sends
 * it, unshuffle(shuffle(x)) == x bit for bit (rows of arbitrary bit patterns, NaNs included),
 * and only permutations are accepted. The collectives themselves are exercised by the 2-rank
 * tests under mpirun (tests/python/test_align_ranks.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "data/rng.h"
#include "train/shuffle_bn.h"

enum { ROW = 5 };

/* Rows of random bits: any float pattern must survive the moves unchanged. */
static void random_rows(float *x, int N, uint64_t seed)
{
    Rng r;
    rng_init(&r, seed, 1, 0, 0);
    uint32_t *bits = (uint32_t *)x;
    for (size_t i = 0; i < (size_t)N * ROW; i++) bits[i] = (uint32_t)rng_below(&r, 1 << 16) << 16 | (uint32_t)rng_below(&r, 1 << 16);
}

static void test_round_trip_is_bit_exact(void **state)
{
    (void)state;
    const int ranks[] = {1, 2, 3, 4};
    for (size_t ri = 0; ri < sizeof ranks / sizeof ranks[0]; ri++)
        for (uint64_t seed = 0; seed < 20; seed++) {
            const int R = ranks[ri], n = 6, N = R * n;
            float *x = malloc(sizeof(float) * N * ROW), *shuffled = malloc(sizeof(float) * N * ROW),
                  *back = malloc(sizeof(float) * N * ROW);
            int32_t *perm = malloc(sizeof(int32_t) * N);
            random_rows(x, N, seed);
            Rng r;
            rng_init(&r, seed, 2, 0, 0);
            rng_permutation(&r, N, perm);
            /* each rank takes its shuffled sub-batch; the all-gather concatenates them */
            for (int rank = 0; rank < R; rank++)
                shuffle_take_rows(x, perm, rank, n, ROW, shuffled + (size_t)rank * n * ROW);
            unshuffle_rows(shuffled, perm, N, ROW, back);
            assert_memory_equal(back, x, sizeof(float) * N * ROW);
            free(x);
            free(shuffled);
            free(back);
            free(perm);
        }
}

/* Row i (tagged with the value i) lands on rank pos/n where pos is its place in perm. */
static void test_each_rank_gets_the_rows_the_permutation_sends_it(void **state)
{
    (void)state;
    const int R = 2, n = 4, N = R * n;
    const int32_t perm[8] = {5, 0, 7, 2, 1, 6, 3, 4};
    float x[8 * ROW], mine[4 * ROW];
    for (int i = 0; i < N; i++)
        for (int c = 0; c < ROW; c++) x[i * ROW + c] = (float)i;
    for (int rank = 0; rank < R; rank++) {
        shuffle_take_rows(x, perm, rank, n, ROW, mine);
        for (int j = 0; j < n; j++)
            for (int c = 0; c < ROW; c++)
                assert_int_equal((int)mine[j * ROW + c], perm[rank * n + j]);
    }
    /* rank 0 sees rows {5, 0, 7, 2}: a rank's batch statistics mix rows of both ranks */
    shuffle_take_rows(x, perm, 0, n, ROW, mine);
    assert_int_equal((int)mine[0], 5);
    assert_int_equal((int)mine[2 * ROW], 7);
}

static void test_only_permutations_are_accepted(void **state)
{
    (void)state;
    const int32_t good[4] = {2, 0, 3, 1}, repeated[4] = {2, 0, 2, 1}, negative[4] = {2, 0, -1, 1},
                  too_big[4] = {2, 0, 4, 1};
    assert_true(is_permutation(good, 4));
    assert_false(is_permutation(repeated, 4));
    assert_false(is_permutation(negative, 4));
    assert_false(is_permutation(too_big, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_bit_exact),
        cmocka_unit_test(test_each_rank_gets_the_rows_the_permutation_sends_it),
        cmocka_unit_test(test_only_permutations_are_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_accuracy.c — top-k counting shared by lincls and kNN (train/accuracy.c): ranks by
 * score, ties toward the lower class index, NaN last, and top-k of fewer than k classes
 * undefined (never a number). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "train/accuracy.h"

static void test_ranking_and_ties(void **state)
{
    (void)state;
    /* Row 0: label 2 is the clear top-1. Row 1: classes 0, 1, 2 tie; label 1 ranks second.
     * Row 2: label 0 ties with class 3 and wins it (lower index). Row 3: label 1 is last. */
    const float s[4 * 4] = {0.1f, 0.2f, 0.9f, 0.0f,   0.5f, 0.5f, 0.5f, 0.1f,
                            0.3f, 0.1f, 0.2f, 0.3f,   0.4f, -1.0f, 0.2f, 0.3f};
    const int32_t labels[4] = {2, 1, 0, 1};
    assert_int_equal(accuracy_topk_correct(4, 4, s, labels, 1), 2);
    assert_int_equal(accuracy_topk_correct(4, 4, s, labels, 2), 3);
    assert_int_equal(accuracy_topk_correct(4, 4, s, labels, 3), 3);
    assert_int_equal(accuracy_topk_correct(4, 4, s, labels, 4), 4);
}

static void test_nan_ranks_last(void **state)
{
    (void)state;
    const float s[3] = {NAN, 0.0f, -1.0f};
    const int32_t label0[1] = {0}, label2[1] = {2};
    assert_int_equal(accuracy_topk_correct(1, 3, s, label0, 2), 0);
    assert_int_equal(accuracy_topk_correct(1, 3, s, label2, 2), 1);
}

static void test_undefined_topk(void **state)
{
    (void)state;
    const float s[3] = {1, 2, 3};
    const int32_t labels[1] = {2};
    assert_int_equal(accuracy_topk_correct(1, 3, s, labels, 5), ACCURACY_UNDEFINED);
    assert_true(isnan(accuracy_percent(ACCURACY_UNDEFINED, 10)));
    assert_true(accuracy_percent(3, 4) == 75.0);
    assert_true(isnan(accuracy_percent(0, 0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranking_and_ties),
        cmocka_unit_test(test_nan_ranks_last),
        cmocka_unit_test(test_undefined_topk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

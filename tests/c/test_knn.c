/* test_knn.c — the kNN classifier's tie rules and k clamp on hand-made cases, its hit
 * counting, and the feature-memory refusal message. (tests/python/test_knn.py compares the
 * classifier with a PyTorch version of the official demo on many more.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "train/features.h"
#include "train/knn.h"

/* Bank rows with dot products exact in float32. */
static const float E0[4] = {1, 0, 0, 0}, E1[4] = {0, 1, 0, 0}, HALF[4] = {0.5f, 0.5f, 0.5f, 0.5f};

static void put(float *bank, int row, const float *v) { memcpy(bank + 4 * row, v, sizeof(float) * 4); }

/* Similarity ties at the k boundary go to the lower bank index: rows 1..3 of the five rows
 * with similarity 0.5, so classes 1, 2, 3 get one equal weight each and rank by index. */
static void test_ties_at_k_go_to_the_lower_index(void **state)
{
    (void)state;
    float bank[7 * 4];
    put(bank, 0, E0);
    for (int i = 1; i <= 5; i++) put(bank, i, HALF);
    float neg[4] = {-1, 0, 0, 0};
    put(bank, 6, neg);
    int32_t labels[7] = {0, 1, 2, 3, 4, 1, 4}, top[5];
    knn_predict(bank, labels, 7, E0, 1, 4, 5, 4, 0.1f, top);
    int32_t want[5] = {0, 1, 2, 3, 4};
    assert_memory_equal(top, want, sizeof want);
}

/* Equal class scores rank by class index; classes without neighbours follow in index order;
 * k beyond the bank uses the whole bank. */
static void test_equal_scores_rank_by_class_and_k_clamps(void **state)
{
    (void)state;
    float bank[3 * 4];
    put(bank, 0, E0);
    put(bank, 1, E0);
    put(bank, 2, E1);
    int32_t labels[3] = {3, 1, 5}, top[5];
    knn_predict(bank, labels, 3, E0, 1, 4, 6, 2, 0.1f, top);
    int32_t want[5] = {1, 3, 0, 2, 4};
    assert_memory_equal(top, want, sizeof want);
    knn_predict(bank, labels, 3, E0, 1, 4, 6, 200, 0.1f, top);
    int32_t want_all[5] = {1, 3, 5, 0, 2}; /* class 5's weight exp(0) = 1 > 0 */
    assert_memory_equal(top, want_all, sizeof want_all);
}

static void test_counting_and_fewer_than_five_classes(void **state)
{
    (void)state;
    int32_t top5[2 * 5] = {0, 1, 2, 3, 4, 4, 3, 2, 1, 0}, labels[2] = {0, 1};
    KnnCounts c = knn_count(top5, labels, 2, 10);
    assert_int_equal(c.correct1, 1);
    assert_int_equal(c.correct5, 2);
    assert_true(c.has_top5);
    int32_t top3[2 * 3] = {2, 0, 1, 1, 0, 2};
    c = knn_count(top3, labels, 2, 3);
    assert_int_equal(knn_top_n(3), 3);
    assert_int_equal(c.correct1, 1);
    assert_false(c.has_top5);
}

static void test_memory_refusal_names_the_folders_and_sizes(void **state)
{
    (void)state;
    char err[1024];
    assert_int_equal(features_check_memory(1000, 500, 512, 1e9, "fix it", err, sizeof err), 0);
    /* ImageNet's 1,281,167 training images at 2048 floats: 9.8 GiB, over a 4 GB budget */
    assert_int_equal(features_check_memory(1281167, 50000, 2048, 4e9, "fix it", err, sizeof err), -1);
    assert_non_null(strstr(err, "data.train (1281167 images x 2048 features = 9.78 GiB)"));
    assert_non_null(strstr(err, "data.val"));
    assert_non_null(strstr(err, "fix it"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ties_at_k_go_to_the_lower_index),
        cmocka_unit_test(test_equal_scores_rank_by_class_and_k_clamps),
        cmocka_unit_test(test_counting_and_fewer_than_five_classes),
        cmocka_unit_test(test_memory_refusal_names_the_folders_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

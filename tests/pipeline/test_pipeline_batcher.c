/* Length-bucketed batch planner: exact plans and properties over random lengths. */
#include "test_util.h"

#include "pipeline/batcher.h"

static void test_exact_plan(void **state) {
    int64_t len[] = {10, 40, 12, 39, 40, 11, 5};
    cn_batch_plan p;
    cn_error err;
    /* at most 3 per batch, padded cost <= 100 */
    assert_int_equal(cn_batch_plan_make(len, 7, 3, 100, false, &p, &err), CANARY_OK);
    /* sorted: 40(1) 40(4) 39(3) 12(2) 11(5) 10(0) 5(6); 40*2=80 ok, 40*3=120 > 100 */
    size_t want_order[] = {1, 4, 3, 2, 5, 0, 6};
    size_t want_sizes[] = {2, 2, 3}; /* 39*3 = 117 > 100 too */
    assert_int_equal(p.n_batches, 3);
    assert_memory_equal(p.order, want_order, sizeof want_order);
    assert_memory_equal(p.sizes, want_sizes, sizeof want_sizes);
    cn_batch_plan_free(&p);
}

/* equal_only: a batch never mixes lengths (NeMo 2.4 front ends: padding changes results) */
static void test_equal_lengths(void **state) {
    int64_t len[] = {40, 12, 40, 40, 12, 7};
    cn_batch_plan p;
    cn_error err;
    assert_int_equal(cn_batch_plan_make(len, 6, 2, 1000, true, &p, &err), CANARY_OK);
    size_t want_order[] = {0, 2, 3, 1, 4, 5};
    size_t want_sizes[] = {2, 1, 2, 1};
    assert_int_equal(p.n_batches, 4);
    assert_memory_equal(p.order, want_order, sizeof want_order);
    assert_memory_equal(p.sizes, want_sizes, sizeof want_sizes);
    cn_batch_plan_free(&p);
}

static void test_errors(void **state) {
    int64_t len[] = {10, 200};
    cn_batch_plan p;
    cn_error err;
    assert_int_equal(cn_batch_plan_make(len, 2, 4, 100, false, &p, &err), CANARY_ELIMIT);
    assert_non_null(strstr(err.msg, "chunk 1 has length 200"));
    assert_int_equal(cn_batch_plan_make(len, 2, 0, 100, false, &p, &err), CANARY_EINVAL);
    assert_int_equal(cn_batch_plan_make(NULL, 0, 4, 100, false, &p, &err), CANARY_OK);
    assert_int_equal(p.n_batches, 0);
}

static void test_random_properties(void **state) {
    uint64_t s = 99;
    for (int iter = 0; iter < 500; iter++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = (size_t)(s >> 40) % 200;
        size_t max_batch = 1 + (size_t)(s >> 20) % 16;
        int64_t max_cost = 640000 + (int64_t)((s >> 10) % 5000000);
        int64_t len[200];
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            len[i] = 1 + (int64_t)((s >> 33) % 640000);
        }
        cn_batch_plan p;
        cn_error err;
        assert_int_equal(cn_batch_plan_make(len, n, max_batch, max_cost, false, &p, &err), CANARY_OK);
        int seen[200] = {0};
        size_t off = 0;
        for (size_t b = 0; b < p.n_batches; b++) {
            assert_true(p.sizes[b] >= 1 && p.sizes[b] <= max_batch);
            int64_t longest = 0;
            for (size_t k = 0; k < p.sizes[b]; k++) {
                size_t i = p.order[off + k];
                seen[i]++;
                if (len[i] > longest)
                    longest = len[i];
                if (off + k > 0) /* longest first overall */
                    assert_true(len[p.order[off + k - 1]] >= len[i]);
            }
            assert_true((int64_t)p.sizes[b] * longest <= max_cost);
            /* greedy: the next chunk did not fit */
            if (b + 1 < p.n_batches)
                assert_true(p.sizes[b] == max_batch || (int64_t)(p.sizes[b] + 1) * longest > max_cost);
            off += p.sizes[b];
        }
        assert_int_equal(off, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(seen[i], 1);
        cn_batch_plan_free(&p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_plan),
        cmocka_unit_test(test_equal_lengths),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "test_util.h"

#include <stdatomic.h>

#include "base/threadpool.h"

typedef struct {
    atomic_int hits[1000];
    atomic_int bad_thread;
    int n_threads;
} run_ctx;

static void count(void *ctx, size_t task, int thread) {
    run_ctx *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    if (thread < 0 || thread >= c->n_threads)
        atomic_store(&c->bad_thread, 1);
}

static void check_pool(int n_threads) {
    cn_pool *p;
    cn_error err;
    assert_int_equal(cn_pool_create(n_threads, &p, &err), CANARY_OK);
    assert_int_equal(cn_pool_threads(p), n_threads);
    static run_ctx c;
    for (int round = 0; round < 50; round++) {
        memset(&c, 0, sizeof c);
        c.n_threads = n_threads;
        size_t n = (size_t)(round * 19 % 1000) + 1;
        cn_pool_run(p, n, count, &c);
        for (size_t i = 0; i < 1000; i++)
            assert_int_equal(atomic_load(&c.hits[i]), i < n ? 1 : 0);
        assert_int_equal(atomic_load(&c.bad_thread), 0);
    }
    cn_pool_destroy(p);
}

static void test_every_task_once(void **state) {
    check_pool(1);
    check_pool(2);
    check_pool(4);
    check_pool(7);
}

static void test_null_pool_and_bad_args(void **state) {
    static run_ctx c;
    memset(&c, 0, sizeof c);
    c.n_threads = 1;
    cn_pool_run(NULL, 10, count, &c);
    assert_int_equal(atomic_load(&c.hits[9]), 1);
    cn_pool *p;
    cn_error err;
    assert_int_equal(cn_pool_create(0, &p, &err), CANARY_EINVAL);
    assert_null(p);
    assert_true(cn_cpu_count() >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once),
        cmocka_unit_test(test_null_pool_and_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

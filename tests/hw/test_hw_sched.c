/* The multi-device scheduler with simulated devices on the CPU: least-loaded dispatch, speed
 * differences, memory admission, failure re-queue and unhealthy marking. The simulated run
 * functions only sleep or wait on a gate; the assertions are about where batches went. */
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "hw/sched.h"

typedef struct sim {
    int sleep_us;
    int fail;                /* 0 ok, 1 EDEVICE, 2 EINVAL */
    atomic_int count;
    atomic_int started;
    atomic_ullong mem_now, mem_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gated;              /* run blocks until the gate opens */
} sim;

static void sim_init(sim *s, int sleep_us) {
    memset(s, 0, sizeof *s);
    s->sleep_us = sleep_us;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void sim_open(sim *s) {
    pthread_mutex_lock(&s->mu);
    s->gated = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static cn_status sim_run(void *ctx, int worker, cn_sched_batch *b, cn_error *err) {
    sim *s = ctx;
    atomic_fetch_add(&s->started, 1);
    unsigned long long now = atomic_fetch_add(&s->mem_now, b->mem_bytes) + b->mem_bytes;
    unsigned long long max = atomic_load(&s->mem_max);
    while (now > max && !atomic_compare_exchange_weak(&s->mem_max, &max, now)) {
    }
    cn_status st = CANARY_OK;
    if (s->fail == 1)
        st = cn_error_set(err, CANARY_EDEVICE, "simulated device fault");
    else if (s->fail == 2)
        st = cn_error_set(err, CANARY_EINVAL, "simulated bad input");
    if (st == CANARY_OK) {
        pthread_mutex_lock(&s->mu);
        while (s->gated)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        if (s->sleep_us)
            usleep((useconds_t)s->sleep_us);
        atomic_fetch_add(&s->count, 1);
    }
    atomic_fetch_sub(&s->mem_now, b->mem_bytes);
    return st;
}

static atomic_int n_done;
static void on_done(cn_sched_batch *b, void *user) { atomic_fetch_add(&n_done, 1); }

static cn_sched_device device(const char *name, int workers, uint64_t budget, sim *s) {
    cn_sched_device d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    d.workers = workers;
    d.mem_budget = budget;
    d.run = sim_run;
    d.ctx = s;
    return d;
}

static void submit_all(cn_sched *s, cn_sched_batch *b, int n, uint64_t mem) {
    cn_error err;
    for (int i = 0; i < n; i++) {
        memset(&b[i], 0, sizeof b[i]);
        b[i].job_id = (uint64_t)i;
        b[i].mem_bytes = mem;
        b[i].cost = 1;
        b[i].done = on_done;
        assert_int_equal(cn_sched_submit(s, &b[i], &err), CANARY_OK);
    }
}

static void test_least_loaded(void **state) {
    sim a, b;
    sim_init(&a, 0);
    sim_init(&b, 0);
    a.gated = true; /* device A takes the first batch and then stays busy */
    cn_sched_device devs[] = {device("sim:a", 1, 0, &a), device("sim:b", 1, 0, &b)};
    cn_sched *s;
    cn_error err;
    assert_int_equal(cn_sched_create(devs, 2, &s, &err), CANARY_OK);
    atomic_store(&n_done, 0);
    cn_sched_batch batches[10];
    submit_all(s, batches, 1, 0);
    while (atomic_load(&a.started) == 0) /* A picked it up */
        usleep(100);
    submit_all(s, batches + 1, 9, 0);
    while (atomic_load(&n_done) < 9)
        usleep(100);
    assert_int_equal(atomic_load(&b.count), 9); /* all went to the idle device */
    sim_open(&a);
    cn_sched_drain(s);
    assert_int_equal(atomic_load(&a.count), 1);
    assert_int_equal(batches[0].device, 0);
    for (int i = 1; i < 10; i++) {
        assert_int_equal(batches[i].device, 1);
        assert_int_equal(batches[i].n_tries, 1);
        assert_int_equal(batches[i].status, CANARY_OK);
    }
    cn_sched_device_stats st;
    cn_sched_stats(s, 1, &st);
    assert_int_equal(st.batches_done, 9);
    assert_true(st.healthy);
    cn_sched_destroy(s);
}

static void test_faster_device_does_more(void **state) {
    sim fast, slow;
    sim_init(&fast, 1000);
    sim_init(&slow, 10000);
    cn_sched_device devs[] = {device("sim:slow", 1, 0, &slow), device("sim:fast", 1, 0, &fast)};
    cn_sched *s;
    cn_error err;
    assert_int_equal(cn_sched_create(devs, 2, &s, &err), CANARY_OK);
    static cn_sched_batch batches[120];
    submit_all(s, batches, 120, 0);
    cn_sched_drain(s);
    int nf = atomic_load(&fast.count), ns = atomic_load(&slow.count);
    assert_int_equal(nf + ns, 120);
    /* 10x faster: ideally ~109 vs ~11. Sleeps stretch on a loaded machine, so demand only that the
     * faster device took more, not a ratio. */
    assert_true(ns >= 1);
    assert_true(nf > ns);
    cn_sched_device_stats st;
    cn_sched_stats(s, 1, &st);
    assert_true(st.busy_ns > 0);
    assert_true(st.cost_done == (double)nf);
    cn_sched_destroy(s);
}

static void test_memory_admission(void **state) {
    sim small, big;
    sim_init(&small, 200);
    sim_init(&big, 200);
    cn_sched_device devs[] = {device("sim:small", 2, 100, &small), device("sim:big", 2, 1000, &big)};
    cn_sched *s;
    cn_error err;
    assert_int_equal(cn_sched_create(devs, 2, &s, &err), CANARY_OK);
    cn_sched_batch large[8], tiny[8];
    submit_all(s, large, 8, 600); /* fits only the big device, one at a time */
    submit_all(s, tiny, 8, 50);
    cn_sched_drain(s);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(large[i].device, 1);
        assert_int_equal(tiny[i].status, CANARY_OK);
    }
    assert_true(atomic_load(&big.mem_max) <= 1000);
    assert_true(atomic_load(&small.mem_max) <= 100);
    assert_true(atomic_load(&small.count) >= 1); /* tiny batches were not stuck behind large ones */
    /* larger than every budget: refused at submission with the numbers */
    cn_sched_batch huge;
    memset(&huge, 0, sizeof huge);
    huge.mem_bytes = 2000ull * 1048576;
    huge.job_id = 42;
    assert_int_equal(cn_sched_submit(s, &huge, &err), CANARY_ELIMIT);
    assert_non_null(strstr(err.msg, "batch of job 42 needs 2000.0 MiB"));
    assert_non_null(strstr(err.msg, "(sim:big)"));
    cn_sched_destroy(s);
}

static void test_device_failure_requeues(void **state) {
    sim bad, good;
    sim_init(&bad, 0);
    sim_init(&good, 100);
    bad.fail = 1;
    cn_sched_device devs[] = {device("sim:bad", 1, 0, &bad), device("sim:good", 2, 0, &good)};
    cn_sched *s;
    cn_error err;
    assert_int_equal(cn_sched_create(devs, 2, &s, &err), CANARY_OK);
    static cn_sched_batch batches[20];
    atomic_store(&n_done, 0);
    submit_all(s, batches, 20, 0);
    cn_sched_drain(s);
    assert_int_equal(atomic_load(&n_done), 20); /* every batch completed exactly once */
    int retried = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(batches[i].status, CANARY_OK);
        assert_int_equal(batches[i].device, 1);
        if (batches[i].n_tries == 2) {
            retried++;
            assert_int_equal(batches[i].tried[0], 0);
            assert_int_equal(batches[i].tried[1], 1);
        }
    }
    assert_int_equal(retried, 1); /* the device was retired after its first fault */
    cn_sched_device_stats st;
    cn_sched_stats(s, 0, &st);
    assert_false(st.healthy);
    assert_int_equal(st.batches_failed, 1);
    assert_string_equal(st.last_error, "simulated device fault");
    assert_int_equal(atomic_load(&good.count), 20);
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sched_metrics(s, &sb);
    assert_non_null(strstr(cn_sb_str(&sb), "# TYPE canary_device_healthy gauge\n"
                                           "canary_device_healthy{device=\"sim:bad\"} 0\n"
                                           "canary_device_healthy{device=\"sim:good\"} 1\n"));
    assert_non_null(strstr(cn_sb_str(&sb), "canary_device_batches_total{device=\"sim:good\",outcome=\"done\"} 20\n"));
    assert_non_null(strstr(cn_sb_str(&sb), "canary_device_batches_total{device=\"sim:bad\",outcome=\"failed\"} 1\n"));
    assert_non_null(strstr(cn_sb_str(&sb), "canary_device_memory_in_use_bytes{device=\"sim:good\"} 0\n"));
    assert_non_null(strstr(cn_sb_str(&sb), "# TYPE canary_device_memory_budget_bytes gauge\n"
                                           "canary_device_memory_budget_bytes{device=\"sim:bad\"} 0\n"));
    cn_sb_reset(&sb);
    cn_sched_stats_json(s, &sb);
    assert_non_null(strstr(cn_sb_str(&sb), "{\"device\":\"sim:bad\",\"healthy\":false,\"workers\":1,"));
    assert_non_null(strstr(cn_sb_str(&sb), "\"last_error\":\"simulated device fault\"}"));
    cn_sb_free(&sb);
    cn_sched_destroy(s);
}

static void test_input_error_does_not_retire(void **state) {
    sim a;
    sim_init(&a, 0);
    a.fail = 2;
    cn_sched_device devs[] = {device("sim:a", 1, 0, &a)};
    cn_sched *s;
    cn_error err;
    assert_int_equal(cn_sched_create(devs, 1, &s, &err), CANARY_OK);
    cn_sched_batch b[3];
    submit_all(s, b, 3, 0);
    cn_sched_drain(s);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i].status, CANARY_EINVAL);
        assert_string_equal(b[i].error, "sim:a: simulated bad input");
    }
    cn_sched_device_stats st;
    cn_sched_stats(s, 0, &st);
    assert_true(st.healthy);
    cn_sched_destroy(s);
}

static void test_all_devices_fail(void **state) {
    sim a, b;
    sim_init(&a, 0);
    sim_init(&b, 0);
    a.fail = b.fail = 1;
    cn_sched_device devs[] = {device("sim:a", 1, 0, &a), device("sim:b", 1, 0, &b)};
    cn_sched *s;
    cn_error err;
    assert_int_equal(cn_sched_create(devs, 2, &s, &err), CANARY_OK);
    cn_sched_batch batches[5];
    atomic_store(&n_done, 0);
    /* once both devices have failed, further submissions are refused at once */
    int accepted = 0;
    for (int i = 0; i < 5; i++) {
        memset(&batches[i], 0, sizeof batches[i]);
        batches[i].done = on_done;
        cn_status st = cn_sched_submit(s, &batches[i], &err);
        assert_true(st == CANARY_OK || st == CANARY_EDEVICE);
        accepted += st == CANARY_OK;
    }
    assert_true(accepted >= 1);
    cn_sched_drain(s);
    assert_int_equal(atomic_load(&n_done), accepted);
    for (int i = 0; i < accepted; i++) {
        assert_int_equal(batches[i].status, CANARY_EDEVICE);
        assert_int_equal(batches[i].device, -1);
    }
    cn_sched_batch late;
    memset(&late, 0, sizeof late);
    assert_int_equal(cn_sched_submit(s, &late, &err), CANARY_EDEVICE);
    assert_non_null(strstr(err.msg, "no healthy device"));
    cn_sched_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_least_loaded),       cmocka_unit_test(test_faster_device_does_more),
        cmocka_unit_test(test_memory_admission),   cmocka_unit_test(test_device_failure_requeues),
        cmocka_unit_test(test_input_error_does_not_retire), cmocka_unit_test(test_all_devices_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

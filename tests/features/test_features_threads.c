/* Concurrent feature extraction: several threads share one extractor (and others create and
 * destroy their own, which plans FFTs concurrently) and must get bit-identical results to a
 * single-threaded run. Built and run under ThreadSanitizer by tsan_features.sh. */
#include <pthread.h>
#include <string.h>

#include "base/threadpool.h"
#include "features/features.h"
#include "feature_inputs.h"
#include "test_util.h"

#define N_THREADS 4
#define N_INPUTS 3
#define ROUNDS 3

static cn_features *g_shared;
static float *g_in[N_INPUTS];
static int64_t g_len[N_INPUTS] = {16000, 23456, 8001};
static float *g_expect[N_INPUTS];
static int64_t g_expect_valid[N_INPUTS];

typedef struct worker {
    int id;
    int mismatches;
    int errors;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    for (int r = 0; r < ROUNDS; r++) {
        /* odd workers also build a private extractor each round (the FFTW planner under its lock) */
        cn_features *own = NULL;
        cn_error err = {0};
        if (w->id & 1) {
            cn_features_config cfg;
            cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
            if (cn_features_create(&cfg, &own, &err) != CANARY_OK) {
                w->errors++;
                continue;
            }
        }
        const cn_features *f = own ? own : g_shared;
        for (int i = 0; i < N_INPUTS; i++) {
            int k = (i + w->id + r) % N_INPUTS;
            size_t n = (size_t)cn_features_columns(f, g_len[k]) * 128;
            float *out = malloc(n * sizeof(float));
            int64_t valid;
            if (cn_features_compute(f, g_in[k], g_len[k], out, &valid, &err) != CANARY_OK)
                w->errors++;
            else if (valid != g_expect_valid[k] || memcmp(out, g_expect[k], n * sizeof(float)) != 0)
                w->mismatches++;
            free(out);
        }
        cn_features_destroy(own);
    }
    return NULL;
}

static void test_concurrent_extraction(void **state) {
    (void)state;
    cn_features_config cfg;
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cn_error err = {0};
    assert_int_equal(cn_features_create(&cfg, &g_shared, &err), CANARY_OK);
    for (int i = 0; i < N_INPUTS; i++) {
        g_in[i] = make_signal(g_len[i], (uint32_t)i + 11, 0.7f);
        size_t n = (size_t)cn_features_columns(g_shared, g_len[i]) * 128;
        g_expect[i] = malloc(n * sizeof(float));
        assert_int_equal(cn_features_compute(g_shared, g_in[i], g_len[i], g_expect[i], &g_expect_valid[i], &err),
                         CANARY_OK);
    }
    pthread_t th[N_THREADS];
    worker w[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        w[t] = (worker){.id = t};
        assert_int_equal(pthread_create(&th[t], NULL, run_worker, &w[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(w[t].errors, 0);
        assert_int_equal(w[t].mismatches, 0);
    }
    for (int i = 0; i < N_INPUTS; i++) {
        free(g_in[i]);
        free(g_expect[i]);
    }
    cn_features_destroy(g_shared);
}

/* A batch's items spread over a pool give exactly the single-threaded batch. */
static void test_batch_on_pool(void **state) {
    (void)state;
    cn_features_config cfg;
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_4);
    cn_features *f;
    cn_error err = {0};
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);
    enum { B = 7 };
    float *in[B];
    int64_t len[B], lmax = 0, v1[B], v2[B];
    for (int i = 0; i < B; i++) {
        len[i] = 4000 + 2731 * i;
        lmax = len[i] > lmax ? len[i] : lmax;
        in[i] = make_signal(len[i], (uint32_t)i + 5, 0.5f);
    }
    size_t n = (size_t)B * 128 * (size_t)cn_features_columns(f, lmax);
    float *seq = malloc(n * sizeof(float)), *par = malloc(n * sizeof(float));
    assert_int_equal(cn_features_compute_batch(f, (const float *const *)in, len, B, seq, v1, &err), CANARY_OK);
    for (int threads = 2; threads <= 9; threads += 7) { /* fewer and more threads than items */
        cn_pool *pool;
        assert_int_equal(cn_pool_create(threads, &pool, &err), CANARY_OK);
        memset(par, 0xff, n * sizeof(float));
        assert_int_equal(cn_features_compute_batch_pool(f, pool, (const float *const *)in, len, B, par, v2, &err),
                         CANARY_OK);
        assert_memory_equal(seq, par, n * sizeof(float));
        assert_memory_equal(v1, v2, sizeof v1);
        cn_pool_destroy(pool);
    }
    for (int i = 0; i < B; i++)
        free(in[i]);
    free(seq), free(par);
    cn_features_destroy(f);
}

/* Items computed as if alone: each item of the batch equals, bit for bit, its features computed
 * alone then padded with pad_value; under 2.4 the batch form differs at the item's end (the
 * reflection there is the batch's), under 2.5 both forms are the same. */
static void test_items_as_alone(void **state) {
    (void)state;
    for (int sem = 0; sem < 2; sem++) {
        cn_features_config cfg;
        cn_features_config_canary(&cfg, sem ? CN_FEAT_NEMO_2_5 : CN_FEAT_NEMO_2_4);
        cn_features *f;
        cn_error err = {0};
        assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);
        enum { B = 5, M = 128 };
        float *in[B];
        int64_t len[B], lmax = 0, vb[B], vi[B];
        for (int i = 0; i < B; i++) {
            len[i] = 3000 + 4111 * i + 37 * (i & 1);
            lmax = len[i] > lmax ? len[i] : lmax;
            in[i] = make_signal(len[i], (uint32_t)i + 11, 0.4f);
        }
        size_t cols = (size_t)cn_features_columns(f, lmax), n = (size_t)B * M * cols;
        float *batch = malloc(n * sizeof(float)), *items = malloc(n * sizeof(float)),
              *alone = malloc((size_t)M * cols * sizeof(float));
        cn_pool *pool;
        assert_int_equal(cn_pool_create(3, &pool, &err), CANARY_OK);
        assert_int_equal(cn_features_compute_batch_pool(f, pool, (const float *const *)in, len, B, batch, vb, &err),
                         CANARY_OK);
        memset(items, 0xff, n * sizeof(float));
        assert_int_equal(cn_features_compute_items_pool(f, pool, (const float *const *)in, len, B, items, vi, &err),
                         CANARY_OK);
        assert_memory_equal(vb, vi, sizeof vb);
        int differ = 0;
        for (int i = 0; i < B; i++) {
            int64_t v;
            size_t c1 = (size_t)cn_features_columns(f, len[i]);
            assert_int_equal(cn_features_compute(f, in[i], len[i], alone, &v, &err), CANARY_OK);
            assert_int_equal(v, vi[i]);
            const float *it = items + (size_t)i * M * cols;
            for (int m = 0; m < M; m++) {
                assert_memory_equal(it + (size_t)m * cols, alone + (size_t)m * c1, (size_t)v * sizeof(float));
                for (size_t t = (size_t)v; t < cols; t++)
                    assert_true(it[(size_t)m * cols + t] == cfg.pad_value);
            }
            differ += memcmp(it, batch + (size_t)i * M * cols, (size_t)M * cols * sizeof(float)) != 0;
        }
        if (sem) /* 2.5: the same numbers either way */
            assert_memory_equal(batch, items, n * sizeof(float));
        else /* 2.4: every item but the longest sees zeros, not its own reflection, in the batch */
            assert_int_equal(differ, B - 1);
        cn_pool_destroy(pool);
        for (int i = 0; i < B; i++)
            free(in[i]);
        free(batch), free(items), free(alone);
        cn_features_destroy(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_concurrent_extraction), cmocka_unit_test(test_batch_on_pool),
                                       cmocka_unit_test(test_items_as_alone)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

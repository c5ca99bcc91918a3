/* The public engine API: load once, several contexts on one model in parallel threads (fp32 and
 * the lazily prepared bf16 weights), each giving the same result as a lone run; batch == single;
 * errors carry messages. */
#include <math.h>
#include <pthread.h>

#include "canary/canary.h"
#include "test_util.h"

static canary_model *model;
static float *pcm[2];
static size_t n_pcm[2] = {16000 * 3, 16000 * 2 + 123};

static void make_audio(void) {
    for (int i = 0; i < 2; i++) {
        pcm[i] = malloc(sizeof(float) * n_pcm[i]);
        for (size_t k = 0; k < n_pcm[i]; k++)
            pcm[i][k] = 0.3f * sinf(2 * 3.14159265f * (220.0f + 110.0f * i) * (float)k / 16000.0f) *
                        (0.5f + 0.5f * sinf((float)k / 3000.0f));
    }
}

typedef struct job {
    canary_precision prec;
    int item;
    char text[4096];
    int ids[512];
    int n;
    canary_status st;
} job;

static void *run(void *arg) {
    job *j = arg;
    canary_context *ctx;
    char msg[512];
    j->st = canary_context_create(model, 1, &ctx, msg, sizeof msg);
    if (j->st != CANARY_OK)
        return NULL;
    canary_params p = canary_default_params(model);
    p.precision = j->prec;
    p.beam_size = 2;
    for (int rep = 0; rep < 2 && j->st == CANARY_OK; rep++)
        j->st = canary_transcribe(ctx, &p, pcm[j->item], n_pcm[j->item], msg, sizeof msg);
    if (j->st == CANARY_OK) {
        snprintf(j->text, sizeof j->text, "%s", canary_result_text(ctx, 0));
        j->n = canary_result_token_count(ctx, 0);
        for (int i = 0; i < j->n && i < 512; i++)
            j->ids[i] = canary_result_token(ctx, 0, i).id;
    }
    canary_context_free(ctx);
    return NULL;
}

static void test_concurrent_contexts(void **state) {
    (void)state;
    job alone[4], par[4];
    for (int i = 0; i < 4; i++) {
        alone[i] = (job){.prec = i < 2 ? CANARY_PRECISION_FP32 : CANARY_PRECISION_BF16, .item = i % 2};
        run(&alone[i]);
        assert_int_equal(alone[i].st, CANARY_OK);
        par[i] = (job){.prec = alone[i].prec, .item = alone[i].item};
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run, &par[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(par[i].st, CANARY_OK);
        assert_string_equal(par[i].text, alone[i].text);
        assert_int_equal(par[i].n, alone[i].n);
        assert_memory_equal(par[i].ids, alone[i].ids, sizeof(int) * (size_t)(par[i].n < 512 ? par[i].n : 512));
    }
}

static void test_batch_equals_single(void **state) {
    (void)state;
    canary_context *ctx;
    char msg[512];
    assert_int_equal(canary_context_create(model, 2, &ctx, msg, sizeof msg), CANARY_OK);
    canary_params p = canary_default_params(model);
    p.features = CANARY_FEATURES_NEMO_2_5; /* zero STFT padding: batch padding cannot leak */
    char *single[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(canary_transcribe(ctx, &p, pcm[i], n_pcm[i], msg, sizeof msg), CANARY_OK);
        single[i] = strdup(canary_result_text(ctx, 0));
    }
    const float *items[2] = {pcm[0], pcm[1]};
    assert_int_equal(canary_transcribe_batch(ctx, &p, items, n_pcm, 2, msg, sizeof msg), CANARY_OK);
    assert_int_equal(canary_result_count(ctx), 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(canary_result_text(ctx, i), single[i]);
        free(single[i]);
    }
    canary_context_free(ctx);
}

static void test_errors(void **state) {
    (void)state;
    canary_context *ctx;
    char msg[512];
    assert_int_equal(canary_context_create(model, 1, &ctx, msg, sizeof msg), CANARY_OK);
    canary_params p = canary_default_params(model);
    p.source_lang = "xx";
    assert_int_not_equal(canary_transcribe(ctx, &p, pcm[0], n_pcm[0], msg, sizeof msg), CANARY_OK);
    assert_non_null(strstr(msg, "xx"));
    assert_int_equal(canary_result_count(ctx), 0);
    p = canary_default_params(model);
    p.precision = (canary_precision)7;
    assert_int_equal(canary_transcribe(ctx, &p, pcm[0], n_pcm[0], msg, sizeof msg), CANARY_EINVAL);
    assert_non_null(strstr(msg, "precision"));
    canary_model *bad;
    assert_int_not_equal(canary_model_load("/nonexistent/model.nemo", NULL, &bad, msg, sizeof msg), CANARY_OK);
    assert_non_null(strstr(msg, "/nonexistent/model.nemo"));
    canary_context_free(ctx);
}

/* params.timestamps: accepted by the flash models only; the others say why. */
static void test_timestamps_support(void **state) {
    (void)state;
    static const struct { const char *layout; bool ok; const char *why; } cases[] = {
        {"canary-180m-flash", true, NULL},
        {"canary-1b-flash", true, NULL},
        {"canary-1b", false, "no timestamp slot"},
        {"canary-1b-v2", false, "CTC aligner"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[1024], msg[512];
        snprintf(path, sizeof path, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), cases[k].layout);
        canary_model *m;
        canary_context *ctx;
        assert_int_equal(canary_model_load(path, NULL, &m, msg, sizeof msg), CANARY_OK);
        assert_int_equal(canary_model_has_timestamps(m), cases[k].ok);
        assert_int_equal(canary_context_create(m, 1, &ctx, msg, sizeof msg), CANARY_OK);
        canary_params p = canary_default_params(m);
        p.timestamps = true;
        p.max_new_tokens = 4;
        canary_status st = canary_transcribe(ctx, &p, pcm[0], n_pcm[0], msg, sizeof msg);
        if (cases[k].ok) {
            assert_int_equal(st, CANARY_OK);
        } else {
            assert_int_equal(st, CANARY_EUNSUPPORTED);
            assert_non_null(strstr(msg, "timestamps"));
            assert_non_null(strstr(msg, cases[k].why));
            assert_int_equal(canary_result_count(ctx), 0);
        }
        canary_context_free(ctx);
        canary_model_free(m);
    }
}

/* ignore_eos (benchmarks): exactly max_new_tokens tokens in the result, greedy and beam, on every
 * layout, also where random weights emit EOS from the first step on (canary-1b, canary-1b-v2),
 * whose trailing EOS the result keeps; without it the same run ends at its first EOS. */
static void test_ignore_eos_counts(void **state) {
    (void)state;
    static const char *layouts[] = {"canary-180m-flash", "canary-1b-flash", "canary-1b", "canary-1b-v2"};
    for (size_t k = 0; k < sizeof layouts / sizeof layouts[0]; k++) {
        char path[1024], msg[512];
        snprintf(path, sizeof path, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), layouts[k]);
        canary_model *m;
        canary_context *ctx;
        assert_int_equal(canary_model_load(path, NULL, &m, msg, sizeof msg), CANARY_OK);
        assert_int_equal(canary_context_create(m, 1, &ctx, msg, sizeof msg), CANARY_OK);
        for (int beam = 1; beam <= 2; beam++) {
            canary_params p = canary_default_params(m);
            p.search = beam == 1 ? CANARY_SEARCH_GREEDY : CANARY_SEARCH_BEAM;
            p.beam_size = beam;
            p.max_new_tokens = 7;
            p.ignore_eos = true;
            assert_int_equal(canary_transcribe(ctx, &p, pcm[0], n_pcm[0], msg, sizeof msg), CANARY_OK);
            int n = canary_result_token_count(ctx, 0);
            if (n != 7)
                fail_msg("%s, beam %d: %d tokens with ignore_eos and max_new_tokens 7", layouts[k], beam, n);
            p.ignore_eos = false;
            assert_int_equal(canary_transcribe(ctx, &p, pcm[0], n_pcm[0], msg, sizeof msg), CANARY_OK);
            assert_true(canary_result_token_count(ctx, 0) <= 7);
        }
        canary_context_free(ctx);
        canary_model_free(m);
    }
}

int main(void) {
    char path[1024], msg[512];
    snprintf(path, sizeof path, "%s/models/canary-180m-flash-tiny.nemo", cn_test_binary_dir());
    if (canary_model_load(path, NULL, &model, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    make_audio();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_contexts),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_timestamps_support),
        cmocka_unit_test(test_ignore_eos_counts),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    canary_model_free(model);
    free(pcm[0]);
    free(pcm[1]);
    return rc;
}

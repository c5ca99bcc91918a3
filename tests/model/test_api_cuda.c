/* The public API on the CUDA backend, run on the CPU emulation of CUDA with two emulated GPUs
 * (CANARY_EMU_DEVICES=2, CANARY_CUDA_PLUGIN naming the emulated plugin): device selection and its
 * errors, one model per device in one process (used alternately and from two threads at once),
 * every precision, and the same tokens as the CPU engine in fp32. The emulation fails any work
 * queued on one device's stream or cuBLAS handle while another device is current, so a missing
 * cudaSetDevice shows here.
 *
 * `test_api_cuda --no-plugin` (CANARY_CUDA_PLUGIN naming no file): "cuda" fails with the reason,
 * "auto" falls back to the CPU and keeps the reason. */
#include <math.h>
#include <pthread.h>

#include "canary/canary.h"
#include "test_util.h"

#define N_IDS 64

static char model_path[1024];
static float *pcm;
static size_t n_pcm = 16000 + 4000; /* 1.25 s: a handful of encoder frames, quick on the emulation */

static void make_audio(void) {
    pcm = malloc(sizeof(float) * n_pcm);
    for (size_t k = 0; k < n_pcm; k++)
        pcm[k] = 0.3f * sinf(2 * 3.14159265f * 220.0f * (float)k / 16000.0f) * (0.5f + 0.5f * sinf((float)k / 3000.0f));
}

typedef struct result {
    canary_status st;
    char msg[512];
    int ids[N_IDS];
    float logprobs[N_IDS];
    int n;
    char text[2048];
} result;

static canary_model *load(const char *device, canary_status want) {
    canary_model_params mp = canary_model_default_params();
    mp.device = device;
    canary_model *m = NULL;
    char msg[512] = "";
    canary_status st = canary_model_load(model_path, &mp, &m, msg, sizeof msg);
    if (st != want)
        fail_msg("device %s: status %d (want %d): %s", device, (int)st, (int)want, msg);
    return m;
}

/* Greedy, a fixed number of tokens (random weights rarely stop early): the same work on every
 * device, short enough for the emulation. */
static void transcribe(canary_model *m, canary_context *ctx, canary_precision prec, result *r) {
    canary_params p = canary_default_params(m);
    p.precision = prec;
    p.search = CANARY_SEARCH_GREEDY;
    p.max_new_tokens = 12;
    p.ignore_eos = true;
    r->st = canary_transcribe(ctx, &p, pcm, n_pcm, r->msg, sizeof r->msg);
    if (r->st != CANARY_OK)
        return;
    r->n = canary_result_token_count(ctx, 0);
    for (int i = 0; i < r->n && i < N_IDS; i++) {
        canary_token t = canary_result_token(ctx, 0, i);
        r->ids[i] = t.id;
        r->logprobs[i] = t.logprob;
    }
    snprintf(r->text, sizeof r->text, "%s", canary_result_text(ctx, 0));
}

static void run_once(canary_model *m, canary_precision prec, result *r) {
    canary_context *ctx = NULL;
    r->st = canary_context_create(m, 1, &ctx, r->msg, sizeof r->msg);
    if (r->st == CANARY_OK)
        transcribe(m, ctx, prec, r);
    canary_context_free(ctx);
}

/* Same ids and text; log-probabilities within `tol`. */
static void expect_same(const char *what, const result *want, const result *got, float tol) {
    if (got->st != CANARY_OK)
        fail_msg("%s: %s", what, got->msg);
    assert_int_equal(got->n, want->n);
    float worst = 0;
    for (int i = 0; i < got->n && i < N_IDS; i++) {
        if (got->ids[i] != want->ids[i])
            fail_msg("%s: token %d is %d, want %d", what, i, got->ids[i], want->ids[i]);
        assert_true(isfinite(got->logprobs[i]));
        float e = fabsf(got->logprobs[i] - want->logprobs[i]);
        worst = e > worst ? e : worst;
    }
    printf("  %s: %d identical tokens, log-prob max |diff| %.2e\n", what, got->n, (double)worst);
    assert_true(worst <= tol);
    assert_string_equal(got->text, want->text);
}

static result cpu_fp32;

static void test_device_selection(void **state) {
    (void)state;
    canary_model *cpu = load("cpu", CANARY_OK);
    assert_string_equal(canary_model_device(cpu), "cpu");
    run_once(cpu, CANARY_PRECISION_FP32, &cpu_fp32);
    assert_int_equal(cpu_fp32.st, CANARY_OK);
    assert_int_equal(cpu_fp32.n, 12);
    /* the CPU: fp16 refused with a reason, tf32 computed as fp32 */
    result r;
    run_once(cpu, CANARY_PRECISION_FP16, &r);
    assert_int_equal(r.st, CANARY_EUNSUPPORTED);
    assert_non_null(strstr(r.msg, "fp16"));
    run_once(cpu, CANARY_PRECISION_TF32, &r);
    expect_same("cpu tf32 vs cpu fp32", &cpu_fp32, &r, 0);
    canary_model_free(cpu);

    canary_model *g = load("auto", CANARY_OK);
    assert_string_equal(canary_model_device(g), "cuda:0");
    assert_string_equal(canary_model_device_note(g), "");
    canary_model_free(g);
    g = load("cuda", CANARY_OK);
    assert_string_equal(canary_model_device(g), "cuda:0");
    canary_model_free(g);

    /* an explicit GPU that does not exist is an error naming it, never a CPU run */
    canary_model_params mp = canary_model_default_params();
    mp.device = "cuda:2";
    canary_model *m = NULL;
    char msg[512] = "";
    assert_int_equal(canary_model_load(model_path, &mp, &m, msg, sizeof msg), CANARY_EDEVICE);
    assert_null(m);
    printf("  cuda:2 -> %s\n", msg);
    assert_non_null(strstr(msg, "CUDA device 2 does not exist"));
    mp.device = "gpu";
    assert_int_equal(canary_model_load(model_path, &mp, &m, msg, sizeof msg), CANARY_EINVAL);
}

static void test_precisions_on_gpu(void **state) {
    (void)state;
    canary_model *g = load("cuda:1", CANARY_OK);
    assert_string_equal(canary_model_device(g), "cuda:1");
    canary_context *ctx = NULL;
    char msg[512];
    assert_int_equal(canary_context_create(g, 1, &ctx, msg, sizeof msg), CANARY_OK);
    result r;
    transcribe(g, ctx, CANARY_PRECISION_FP32, &r);
    expect_same("cuda:1 fp32 vs cpu fp32", &cpu_fp32, &r, 1e-4f);
    /* the emulation computes TF32 GEMMs in fp32: tf32 must then equal fp32 */
    transcribe(g, ctx, CANARY_PRECISION_TF32, &r);
    expect_same("cuda:1 tf32 vs cpu fp32", &cpu_fp32, &r, 1e-4f);
    static const canary_precision reduced[] = {CANARY_PRECISION_BF16, CANARY_PRECISION_FP16};
    for (int i = 0; i < 2; i++) {
        transcribe(g, ctx, reduced[i], &r);
        if (r.st != CANARY_OK)
            fail_msg("cuda:1 %s: %s", i ? "fp16" : "bf16", r.msg);
        assert_int_equal(r.n, 12);
        int same = 0;
        for (int k = 0; k < r.n; k++) {
            assert_true(isfinite(r.logprobs[k]));
            same += r.ids[k] == cpu_fp32.ids[k];
        }
        printf("  cuda:1 %s: %d/%d tokens as fp32 (free-running)\n", i ? "fp16" : "bf16", same, r.n);
    }
    canary_context_free(ctx);
    canary_model_free(g);
}

typedef struct worker {
    canary_model *m;
    result r[2];
} worker;

static void *work(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 2; i++)
        run_once(w->m, CANARY_PRECISION_FP32, &w->r[i]);
    return NULL;
}

/* One model per GPU in one process: alternating calls on one thread (each call must bind its own
 * device), then both from their own threads at once. */
static void test_two_devices(void **state) {
    (void)state;
    canary_model *m[2] = {load("cuda:0", CANARY_OK), load("cuda:1", CANARY_OK)};
    canary_context *ctx[2];
    char msg[512];
    for (int d = 0; d < 2; d++)
        assert_int_equal(canary_context_create(m[d], 1, &ctx[d], msg, sizeof msg), CANARY_OK);
    for (int round = 0; round < 2; round++)
        for (int d = 0; d < 2; d++) {
            result r;
            transcribe(m[d], ctx[d], CANARY_PRECISION_FP32, &r);
            char what[64];
            snprintf(what, sizeof what, "alternating, round %d, cuda:%d", round, d);
            expect_same(what, &cpu_fp32, &r, 1e-4f);
        }
    for (int d = 0; d < 2; d++)
        canary_context_free(ctx[d]);
    worker w[2] = {{.m = m[0]}, {.m = m[1]}};
    pthread_t th[2];
    for (int d = 0; d < 2; d++)
        assert_int_equal(pthread_create(&th[d], NULL, work, &w[d]), 0);
    for (int d = 0; d < 2; d++)
        pthread_join(th[d], NULL);
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 2; i++) {
            char what[64];
            snprintf(what, sizeof what, "threads, cuda:%d run %d", d, i);
            expect_same(what, &cpu_fp32, &w[d].r[i], 1e-4f);
        }
    canary_model_free(m[0]);
    canary_model_free(m[1]);
}

static void test_no_plugin(void **state) {
    (void)state;
    canary_model_params mp = canary_model_default_params();
    mp.device = "cuda:0";
    canary_model *m = NULL;
    char msg[512] = "";
    assert_int_equal(canary_model_load(model_path, &mp, &m, msg, sizeof msg), CANARY_EDEVICE);
    printf("  cuda:0 without the plugin -> %s\n", msg);
    assert_non_null(strstr(msg, "cuda:0")); /* names the device asked for, then the reason */
    assert_true(strlen(msg) > 30);
    m = load("auto", CANARY_OK);
    assert_string_equal(canary_model_device(m), "cpu");
    printf("  auto without the plugin: %s (%s)\n", canary_model_device(m), canary_model_device_note(m));
    assert_true(strlen(canary_model_device_note(m)) > 10);
    canary_model_free(m);
}

int main(int argc, char **argv) {
    snprintf(model_path, sizeof model_path, "%s/models/canary-180m-flash-tiny.nemo", cn_test_binary_dir());
    make_audio();
    int rc;
    if (argc > 1 && strcmp(argv[1], "--no-plugin") == 0) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_plugin)};
        rc = cmocka_run_group_tests(tests, NULL, NULL);
    } else {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_device_selection),
                                           cmocka_unit_test(test_precisions_on_gpu),
                                           cmocka_unit_test(test_two_devices)};
        rc = cmocka_run_group_tests(tests, NULL, NULL);
    }
    free(pcm);
    return rc;
}

/* Log-mel features against the PyTorch reference (tests/reference/canary_ref/features.py), run
 * through /usr/bin/python3 on the same inputs, for both NeMo semantics; plus the filterbank and
 * the frame arithmetic. */
#include <math.h>
#include <string.h>

#include "features/features.h"
#include "feature_inputs.h"
#include "test_util.h"

#define TOL 1e-4

typedef struct input {
    const char *name;
    float *x;
    int64_t n;
} input;

typedef struct pcase {
    const char *name;
    cn_feat_semantics sem;
    int n_inputs;
    int inputs[4];        /* indexes into g_inputs */
    bool given_fb;        /* use the reference filterbank instead of computing it */
} pcase;

static input g_inputs[16];
static int g_n_inputs;
static char g_dir[512];

static void add_input(const char *name, float *x, int64_t n) {
    assert_non_null(x);
    g_inputs[g_n_inputs++] = (input){name, x, n};
}

static void write_f32(const char *path, const float *x, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(x, sizeof(float), n, fp), n);
    fclose(fp);
}

static float *read_f32(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("reference output %s is missing", path);
    fseek(fp, 0, SEEK_END);
    long bytes = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    float *x = malloc((size_t)bytes + 4);
    assert_int_equal(fread(x, 1, (size_t)bytes, fp), (size_t)bytes);
    fclose(fp);
    *n = (size_t)bytes / sizeof(float);
    return x;
}

static const char *sem_name(cn_feat_semantics s) { return cn_feat_semantics_name(s); }

static const pcase g_cases[] = {
    {"tone1s_25", CN_FEAT_NEMO_2_5, 1, {0}, false},
    {"tone1s_24", CN_FEAT_NEMO_2_4, 1, {0}, false},
    {"odd_25", CN_FEAT_NEMO_2_5, 1, {1}, false},
    {"odd_24", CN_FEAT_NEMO_2_4, 1, {1}, false},
    {"hop_exact_25", CN_FEAT_NEMO_2_5, 1, {2}, false},
    {"hop_exact_24", CN_FEAT_NEMO_2_4, 1, {2}, false},
    {"short_25", CN_FEAT_NEMO_2_5, 1, {3}, false},
    {"short_24", CN_FEAT_NEMO_2_4, 1, {3}, false},
    {"one_frame_25", CN_FEAT_NEMO_2_5, 1, {4}, false},   /* 200 samples: one valid frame */
    {"no_frame_25", CN_FEAT_NEMO_2_5, 1, {5}, false},    /* 1 sample: zero valid frames */
    {"silence_25", CN_FEAT_NEMO_2_5, 1, {6}, false},
    {"silence_24", CN_FEAT_NEMO_2_4, 1, {6}, false},
    {"loud_25", CN_FEAT_NEMO_2_5, 1, {7}, false},
    {"speech_25", CN_FEAT_NEMO_2_5, 1, {8}, false},
    {"speech_24", CN_FEAT_NEMO_2_4, 1, {8}, false},
    {"speech_fb_25", CN_FEAT_NEMO_2_5, 1, {8}, true},
    {"batch_25", CN_FEAT_NEMO_2_5, 3, {0, 1, 8}, false},
    {"batch_24", CN_FEAT_NEMO_2_4, 3, {0, 1, 8}, false},
};
#define N_CASES (sizeof g_cases / sizeof g_cases[0])

static int setup(void **state) {
    (void)state;
    add_input("tone1s", make_signal(16000, 1, 1.0f), 16000);
    add_input("odd", make_signal(16037, 2, 0.5f), 16037);
    add_input("hop_exact", make_signal(4000, 3, 0.3f), 4000);
    add_input("short", make_signal(300, 4, 0.8f), 300);
    add_input("one_frame", make_signal(200, 5, 0.8f), 200);
    add_input("no_frame", make_signal(1, 6, 0.8f), 1);
    add_input("silence", calloc(8000, sizeof(float)), 8000);
    add_input("loud", make_signal(12000, 7, 2.5f), 12000);
    int64_t ns = 0;
    float *speech = load_speech(&ns);
    if (!speech) { /* pocketsphinx-testdata missing: fall back to a signal, keep the case */
        ns = 44640;
        speech = make_signal(ns, 8, 0.6f);
    }
    add_input("speech", speech, ns);

    snprintf(g_dir, sizeof g_dir, "%s/features-parity", cn_test_tmpdir());
    char cmd[2048], path[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < g_n_inputs; i++) {
        snprintf(path, sizeof path, "%s/%s.in.f32", g_dir, g_inputs[i].name);
        write_f32(path, g_inputs[i].x, (size_t)g_inputs[i].n);
    }
    snprintf(path, sizeof path, "%s/cases.txt", g_dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (size_t c = 0; c < N_CASES; c++) {
        fprintf(fp, "%s %s ", g_cases[c].name, sem_name(g_cases[c].sem));
        for (int k = 0; k < g_cases[c].n_inputs; k++)
            fprintf(fp, "%s%s.in.f32", k ? "," : "", g_inputs[g_cases[c].inputs[k]].name);
        fprintf(fp, "\n");
    }
    fclose(fp);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 /usr/bin/python3 '%s/tests/features/ref_features.py' '%s'",
             cn_test_source_dir(), g_dir);
    if (system(cmd) != 0)
        fail_msg("the reference failed: %s", cmd);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < g_n_inputs; i++)
        free(g_inputs[i].x);
    return 0;
}

static void test_filterbank_matches_reference(void **state) {
    (void)state;
    cn_features_config cfg;
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cn_features *f;
    cn_error err = {0};
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/fb.f32", g_dir);
    size_t n;
    float *ref = read_f32(path, &n);
    assert_int_equal(n, 128 * 257);
    const float *fb = cn_features_filterbank(f);
    double maxdiff = 0, maxval = 0;
    for (size_t i = 0; i < n; i++) {
        maxdiff = fmax(maxdiff, fabs((double)fb[i] - ref[i]));
        maxval = fmax(maxval, fabs((double)ref[i]));
    }
    /* both are float32 roundings of the same float64 filters */
    assert_true(maxdiff <= maxval * 1e-6);
    free(ref);
    cn_features_destroy(f);
}

static void test_parity_all_cases(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/fb.f32", g_dir);
    size_t nfb;
    float *ref_fb = read_f32(path, &nfb);
    int failures = 0;
    for (size_t c = 0; c < N_CASES; c++) {
        const pcase *pc = &g_cases[c];
        cn_features_config cfg;
        cn_features_config_canary(&cfg, pc->sem);
        if (pc->given_fb)
            cfg.filterbank = ref_fb;
        cn_features *f;
        cn_error err = {0};
        assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);

        const float *audio[4];
        int64_t lens[4], valid[4], lmax = 0;
        for (int k = 0; k < pc->n_inputs; k++) {
            audio[k] = g_inputs[pc->inputs[k]].x;
            lens[k] = g_inputs[pc->inputs[k]].n;
            if (lens[k] > lmax)
                lmax = lens[k];
        }
        int64_t cols = cn_features_columns(f, lmax);
        size_t total = (size_t)pc->n_inputs * 128 * (size_t)cols;
        float *out = malloc(total * sizeof(float));
        assert_int_equal(cn_features_compute_batch(f, audio, lens, pc->n_inputs, out, valid, &err), CANARY_OK);

        snprintf(path, sizeof path, "%s/%s.out.f32", g_dir, pc->name);
        size_t nref;
        float *ref = read_f32(path, &nref);
        assert_int_equal(nref, total);
        snprintf(path, sizeof path, "%s/%s.valid", g_dir, pc->name);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        for (int k = 0; k < pc->n_inputs; k++) {
            long long v;
            assert_int_equal(fscanf(fp, "%lld", &v), 1);
            assert_int_equal(valid[k], v);
            assert_int_equal(valid[k], cn_features_valid_frames(f, lens[k]));
        }
        fclose(fp);
        double maxdiff = 0;
        size_t at = 0;
        for (size_t i = 0; i < total; i++) {
            double d = fabs((double)out[i] - ref[i]);
            if (!(d <= maxdiff)) {
                maxdiff = d;
                at = i;
            }
        }
        print_message("%-14s %s  T=%lld  max|diff|=%.3g\n", pc->name, sem_name(pc->sem),
                      (long long)cols, maxdiff);
        if (!(maxdiff <= TOL)) {
            print_error("%s: max abs diff %.3g at %zu (ours %g, reference %g)\n", pc->name, maxdiff,
                        at, out[at], ref[at]);
            failures++;
        }
        free(ref);
        free(out);
        cn_features_destroy(f);
    }
    free(ref_fb);
    assert_int_equal(failures, 0);
}

/* The single-utterance call equals a batch of one. */
static void test_single_equals_batch_of_one(void **state) {
    (void)state;
    for (int sem = 0; sem < 2; sem++) {
        cn_features_config cfg;
        cn_features_config_canary(&cfg, (cn_feat_semantics)sem);
        cn_features *f;
        cn_error err = {0};
        assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);
        const input *in = &g_inputs[1];
        int64_t cols = cn_features_columns(f, in->n), v1, v2;
        float *a = malloc((size_t)cols * 128 * sizeof(float));
        float *b = malloc((size_t)cols * 128 * sizeof(float));
        const float *p = in->x;
        assert_int_equal(cn_features_compute(f, in->x, in->n, a, &v1, &err), CANARY_OK);
        assert_int_equal(cn_features_compute_batch(f, &p, &in->n, 1, b, &v2, &err), CANARY_OK);
        assert_int_equal(v1, v2);
        assert_memory_equal(a, b, (size_t)cols * 128 * sizeof(float));
        free(a);
        free(b);
        cn_features_destroy(f);
    }
}

static void test_frame_arithmetic(void **state) {
    (void)state;
    cn_features_config cfg;
    cn_features *f24, *f25;
    cn_error err = {0};
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_4);
    assert_int_equal(cn_features_create(&cfg, &f24, &err), CANARY_OK);
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cfg.pad_to = 16;
    assert_int_equal(cn_features_create(&cfg, &f25, &err), CANARY_OK);
    /* 10 s: NeMo 2.5 gives [128, 1001] with 1000 valid; 2.4 1001 valid (spec §0.1) */
    assert_int_equal(cn_features_columns(f24, 160000), 1001);
    assert_int_equal(cn_features_valid_frames(f24, 160000), 1001);
    assert_int_equal(cn_features_valid_frames(f25, 160000), 1000);
    assert_int_equal(cn_features_columns(f25, 160000), 1008); /* pad_to 16 */
    assert_int_equal(cn_features_valid_frames(f24, 159), 1);
    assert_int_equal(cn_features_valid_frames(f25, 159), 0);
    assert_int_equal(cn_features_valid_frames(f25, 0), 0);
    cn_features_destroy(f24);
    cn_features_destroy(f25);
}

static void test_bad_config_and_input(void **state) {
    (void)state;
    cn_features_config cfg;
    cn_features *f = NULL;
    cn_error err = {0};
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cfg.win_length = 600;
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "win_length 600"));
    assert_null(f);
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cfg.window = "kaiser";
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "kaiser"));
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cfg.hop_length = 0;
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_EINVAL);
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cfg.highfreq = 9000;
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "highfreq"));
    float bad_fb[128 * 257] = {0};
    bad_fb[77] = NAN;
    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    cfg.filterbank = bad_fb;
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_EFORMAT);
    assert_non_null(strstr(err.msg, "fb[77]"));

    cn_feat_semantics s;
    assert_int_equal(cn_feat_semantics_parse("nemo-2.4", &s, &err), CANARY_OK);
    assert_int_equal(s, CN_FEAT_NEMO_2_4);
    assert_int_equal(cn_feat_semantics_parse("nemo-2.5", &s, &err), CANARY_OK);
    assert_int_equal(s, CN_FEAT_NEMO_2_5);
    assert_int_equal(cn_feat_semantics_parse("nemo-3", &s, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "nemo-3"));

    assert_int_equal(cn_feat_semantics_auto("canary-1b", ""), CN_FEAT_NEMO_2_4);
    assert_int_equal(cn_feat_semantics_auto("canary-1b-flash", NULL), CN_FEAT_NEMO_2_4);
    assert_int_equal(cn_feat_semantics_auto("canary-180m-flash", ""), CN_FEAT_NEMO_2_4);
    assert_int_equal(cn_feat_semantics_auto("canary-1b-v2", ""), CN_FEAT_NEMO_2_5);
    assert_int_equal(cn_feat_semantics_auto("canary-custom", NULL), CN_FEAT_NEMO_2_5);
    assert_int_equal(cn_feat_semantics_auto("canary-1b-flash", "2.5.0rc0"), CN_FEAT_NEMO_2_5);
    assert_int_equal(cn_feat_semantics_auto("canary-1b-v2", "2.4.1"), CN_FEAT_NEMO_2_4);
    assert_int_equal(cn_feat_semantics_auto(NULL, "3.0"), CN_FEAT_NEMO_2_5);

    cn_features_config_canary(&cfg, CN_FEAT_NEMO_2_5);
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);
    float x = 0, out[128];
    int64_t valid;
    assert_int_equal(cn_features_compute(f, &x, 0, out, &valid, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "0 samples"));
    float withnan[400] = {0};
    withnan[321] = NAN;
    float *big = malloc(128 * 3 * sizeof(float));
    assert_int_equal(cn_features_compute(f, withnan, 400, big, &valid, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "sample 321"));
    free(big);
    cn_features_destroy(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filterbank_matches_reference),
        cmocka_unit_test(test_parity_all_cases),
        cmocka_unit_test(test_single_equals_batch_of_one),
        cmocka_unit_test(test_frame_arithmetic),
        cmocka_unit_test(test_bad_config_and_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

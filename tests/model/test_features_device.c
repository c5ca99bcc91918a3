/* Log-mel features computed by a backend (log_mel: the CUDA backend, run here on its CPU emulation)
 * against features/ (NeMo-exact, in double): every value of padded batches of unequal lengths, both
 * NeMo front ends (2.4: reflect padding, one extra valid frame, the pre-emphasis step at the length;
 * 2.5: zero padding, masked), items padded as if alone, a pad_to configuration, the valid lengths,
 * the padding columns. The
 * emulation computes the GEMMs in double, so this proves the indexing and the arithmetic of both the
 * fp64 and the fp32 DFT paths; the fp32 error of a real GPU's DFT is for the GPU parity run
 * (tests/cuda/engine-gpu-check.sh). */
#include <math.h>
#include <stdlib.h>

#include "features/features.h"
#include "model/model.h"
#include "nn/cuda_plugin.h"
#include "test_util.h"

/* own: each item padded as if alone (cn_mel_desc.own_padding, cn_features_compute_items_pool). */
static void check_batch(cn_backend *be, cn_exec *ex, cn_feat_semantics sem, int pad_to, const int *lens, int n,
                        bool own) {
    cn_features_config cfg;
    cn_features_config_canary(&cfg, sem);
    cfg.pad_to = pad_to;
    cn_features *f = NULL;
    cn_error err = {0};
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);
    cn_mel_desc d;
    cn_mel_desc_from_features(f, &d);
    d.own_padding = own;
    int lpad = 0;
    for (int i = 0; i < n; i++)
        lpad = lens[i] > lpad ? lens[i] : lpad;
    int F = cn_features_n_mels(f), cols = (int)cn_features_columns(f, lpad);
    float **audio = calloc((size_t)n, sizeof(float *)), *pcm = calloc((size_t)n * lpad, sizeof(float));
    int64_t *lens64 = calloc((size_t)n, sizeof(int64_t)), *valid_cpu = calloc((size_t)n, sizeof(int64_t));
    int *valid_dev = calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        audio[i] = cn_test_speechlike((size_t)lens[i], (unsigned)i + 1);
        lens64[i] = lens[i];
        memcpy(pcm + (size_t)i * lpad, audio[i], sizeof(float) * (size_t)lens[i]);
    }
    float *cpu = malloc(sizeof(float) * (size_t)n * F * cols), *dev_out = malloc(sizeof(float) * (size_t)n * F * cols);
    assert_int_equal((own ? cn_features_compute_items_pool : cn_features_compute_batch_pool)(
                         f, NULL, (const float *const *)audio, lens64, n, cpu, valid_cpu, &err),
                     CANARY_OK);
    const cn_backend_ops *o = be->ops;
    float *dpcm = o->alloc(ex, sizeof(float) * (size_t)n * lpad), *dout = o->alloc(ex, sizeof(float) * (size_t)n * F * cols);
    o->upload(ex, dpcm, pcm, sizeof(float) * (size_t)n * lpad);
    o->log_mel(ex, &d, dpcm, lens, n, lpad, dout, valid_dev);
    o->download(ex, dev_out, dout, sizeof(float) * (size_t)n * F * cols);
    assert_int_equal(o->sync(ex, &err), CANARY_OK);
    double worst = 0;
    for (int b = 0; b < n; b++) {
        assert_int_equal(valid_dev[b], (int)valid_cpu[b]);
        for (int m = 0; m < F; m++)
            for (int t = 0; t < cols; t++) {
                float c = cpu[((size_t)b * F + m) * cols + t], g = dev_out[((size_t)b * cols + t) * F + m];
                double e = fabs((double)c - g);
                if (t >= valid_cpu[b] && c != g)
                    fail_msg("item %d mel %d column %d (padding): %g, expected %g", b, m, t, g, c);
                worst = e > worst ? e : worst;
            }
    }
    printf("  %s, pad_to %d, %d items of up to %d samples (%d columns)%s: max |diff| %.2e\n",
           sem == CN_FEAT_NEMO_2_5 ? "nemo-2.5" : "nemo-2.4", pad_to, n, lpad, cols, own ? ", each as if alone" : "",
           worst);
    assert_true(worst <= 2e-4); /* normalized features are O(1): float rounding through log and std */
    o->free(ex, dpcm);
    o->free(ex, dout);
    for (int i = 0; i < n; i++)
        free(audio[i]);
    free(audio), free(pcm), free(lens64), free(valid_cpu), free(valid_dev), free(cpu), free(dev_out);
    cn_features_destroy(f);
}

static void test_log_mel(void **state) {
    (void)state;
    cn_backend *be = NULL;
    cn_error err = {0};
    char why[256] = "";
    if (cn_backend_open("cuda", CN_PREC_F32, &be, why, sizeof why, &err) != CANARY_OK)
        fail_msg("no CUDA backend (CANARY_CUDA_PLUGIN: the emulation): %s", err.msg);
    assert_non_null(be->ops->log_mel);
    cn_exec *ex = NULL;
    assert_int_equal(be->ops->exec_create(be, 1, &ex, &err), CANARY_OK);
    const int batch[3] = {16000, 23457, 8123}; /* unequal, one under the padding reach of the next */
    const int one[1] = {321};                  /* shorter than the window: padding on both sides */
    for (int dft = 0; dft < 2; dft++) { /* the DFT in double (fast-fp64 GPUs) and in fp32 (the others) */
        setenv("CANARY_CUDA_DFT", dft ? "fp32" : "fp64", 1);
        printf(" DFT in %s\n", dft ? "fp32" : "fp64");
        for (int s = 0; s < 2; s++) {
            cn_feat_semantics sem = s ? CN_FEAT_NEMO_2_5 : CN_FEAT_NEMO_2_4;
            check_batch(be, ex, sem, 0, batch, 3, false);
            check_batch(be, ex, sem, 0, one, 1, false);
            check_batch(be, ex, sem, 16, batch, 3, false);
            check_batch(be, ex, sem, 0, batch, 3, true);
            check_batch(be, ex, sem, 16, batch, 3, true);
        }
    }
    unsetenv("CANARY_CUDA_DFT");
    setenv("CANARY_CUDA_MEL_SLICE", "2", 1); /* a batch in slices of 2 items (large batches are) */
    printf(" in slices of 2 items\n");
    check_batch(be, ex, CN_FEAT_NEMO_2_4, 0, batch, 3, false);
    check_batch(be, ex, CN_FEAT_NEMO_2_4, 0, batch, 3, true);
    check_batch(be, ex, CN_FEAT_NEMO_2_5, 16, batch, 3, false);
    unsetenv("CANARY_CUDA_MEL_SLICE");
    be->ops->exec_destroy(ex);
    be->ops->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_log_mel)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

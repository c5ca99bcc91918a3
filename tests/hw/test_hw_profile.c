/* The profile rule on injected hardware: the four worked examples of docs/HARDWARE.md (exact
 * values, recomputed by hand there) and edge cases. */
#include "test_util.h"

#include "examples.h"
#include "hw/profile.h"
#include "nemo/nemo.h"

static const cn_device_profile *dev(const cn_profile *p, const char *name) {
    for (int i = 0; i < p->n_devices; i++)
        if (strcmp(p->dev[i].name, name) == 0)
            return &p->dev[i];
    fail_msg("no device %s", name);
    return NULL;
}

static cn_config *config(void) {
    static cn_config c;
    static bool init;
    cn_error err;
    if (init)
        cn_config_free(&c);
    assert_int_equal(cn_config_init(&c, &err), CANARY_OK);
    init = true;
    return &c;
}

static void set(cn_config *c, const char *k, const char *v) {
    cn_error err;
    assert_int_equal(cn_config_set(c, k, v, CN_SRC_FLAG, &err), CANARY_OK);
}

static void test_item_bytes_formula(void **state) {
    const cn_hw_model *m = cn_hw_model_preset("canary-180m-flash");
    /* 40 s: 4000 + 16 feature frames, 2008 after the first conv, 1004 after the second, 502 encoder
     * frames (all fp32).
     * encoder: input 4016*128 + two subsampling buffers 2 * 1004*32*256 (the first two convs are
     *          fused: the first's 2008*64*256 is never stored) + 4 * 502*512 + 502*2048 + output
     *          502*1024 + positions 2 * 1003*512 = 20,560,896 values
     * attention scratch: 1.25 * (8*502*504 + 8*502*1004 + 8*502 + 8*1004) = 7,585,220 (rows padded to
 *          4 floats; q/k/v read in place)
     * decoder: cross K/V 4*2*502*1024 = 4,112,384; per hypothesis caches 4*2*1024*1024 (566
     *          positions round up to 1024) + 7*1024 + 4096 + 5248 (logits) = 8,405,120 */
    assert_int_equal(cn_profile_item_bytes(m, 40, 1), 4ull * (20560896ull + 7585220ull + 4112384ull + 8405120ull));
    /* beam 4: the per-hypothesis part four times */
    assert_int_equal(cn_profile_item_bytes(m, 40, 4),
                     4ull * (20560896ull + 7585220ull + 4112384ull + 4 * 8405120ull));
    /* a GPU worker's fixed part: 1.25 units of feature scratch, a unit of arena, 2 x 32 MiB of
     * cuBLAS(Lt) workspace; the
     * unit is 256 MiB from 16 GiB on, 1/64 of the memory below (at least 16 MiB) */
    assert_int_equal(cn_profile_worker_bytes(80ull * GiB), 640ull * MiB_);
    assert_int_equal(cn_profile_worker_bytes(16ull * GiB), 640ull * MiB_);
    assert_int_equal(cn_profile_worker_bytes(8ull * GiB), (128 + 32 + 128 + 64) * MiB_);
    assert_int_equal(cn_profile_worker_bytes(512ull * MiB_), (16 + 4 + 16 + 64) * MiB_);
}

static void test_presets(void **state) {
    assert_non_null(cn_hw_model_preset("nvidia/canary-1b-flash"));
    assert_string_equal(cn_hw_model_preset("canary-1b-flash.nemo")->name, "canary-1b-flash");
    assert_string_equal(cn_hw_model_preset("nvidia/canary-1b")->name, "canary-1b");
    assert_int_equal(cn_hw_model_preset("canary-1b-v2")->vocab, 16384);
    assert_null(cn_hw_model_preset("canary-1b-flashy"));
    assert_null(cn_hw_model_preset("/models/x.nemo"));
}

static void test_from_desc(void **state) {
    cn_model_desc d;
    memset(&d, 0, sizeof d);
    strcpy(d.variant, "canary-180m-flash");
    d.pre.n_mels = 128;
    d.enc.n_layers = 17;
    d.enc.d_model = 512;
    d.enc.n_heads = 8;
    d.enc.subsampling_conv_channels = 256;
    d.enc.subsampling_factor = 8;
    d.enc.ff_expansion_factor = 4;
    d.dec.n_layers = 4;
    d.dec.hidden = 1024;
    d.dec.inner = 4096;
    d.dec.max_seq_len = 1024;
    d.dec.vocab_size = 5248;
    cn_hw_model m;
    cn_hw_model_from_desc(&d, 182000000ull, &m);
    const cn_hw_model *preset = cn_hw_model_preset("canary-180m-flash");
    assert_memory_equal(&m, preset, sizeof m); /* the preset is exactly what a loaded model gives */
}

static void test_orin_nano(void **state) {
    cn_hw_info hw;
    example_orin_nano(&hw);
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), NULL, &p, &err), CANARY_OK);
    const cn_device_profile *g = &p.dev[0];
    assert_string_equal(g->name, "cuda:0");
    assert_true(g->usable);
    assert_int_equal(g->precision, CN_PREC_BF16);
    assert_true(g->tf32);
    /* unified memory: min(GPU free, RAM available) * 0.75 - 512 MiB = 5632*0.75 - 512 = 3712 MiB */
    assert_int_equal(g->budget_bytes, 3712 * MiB_);
    assert_int_equal(g->weight_bytes, 182000000ull * 2);
    assert_int_equal(g->workers, 1); /* integrated GPU: one executor */
    /* the worker's fixed part on 7620 MiB: 2.25 units of 7620/64 MiB + 64 MiB = 331.9 MiB;
     * (3712 MiB - 364 MB weights - 331.9 MiB) / 162,654,480 B per 40 s chunk = 19.55 */
    assert_int_equal(g->item_bytes, 162654480ull);
    assert_int_equal(g->worker_bytes, 348012544ull);
    assert_int_equal(g->max_batch, 19);
    assert_string_equal(g->residency, "one copy in unified memory");
    assert_false(dev(&p, "cpu")->usable);
    assert_true(p.chunk_seconds == 40.0);
    assert_int_equal(p.concurrent_jobs, 19);
}

static void test_xeon_2x3080(void **state) {
    cn_hw_info hw;
    example_xeon_2x3080(&hw);
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), NULL, &p, &err), CANARY_OK);
    for (int i = 0; i < 2; i++) {
        const cn_device_profile *g = &p.dev[i];
        assert_true(g->usable);
        assert_int_equal(g->precision, CN_PREC_BF16); /* sm86 */
        /* 9800 MiB * 0.9 - 512 MiB = 8308 MiB */
        assert_int_equal(g->budget_bytes, (uint64_t)(9800 * MiB_ * 0.9) - 512 * MiB_);
        assert_int_equal(g->weight_bytes, 883000000ull * 2);
        assert_int_equal(g->workers, 2);
        /* (8308 MiB - 1766 MB - 2 x 424 MiB for the workers) / 174,987,536 B = 34.6 chunks -> 17 per
         * stream */
        assert_int_equal(g->item_bytes, 174987536ull);
        assert_int_equal(g->worker_bytes, 424 * MiB_);
        assert_int_equal(g->max_batch, 17);
        assert_string_equal(g->residency, "replica in GPU memory");
    }
    assert_string_equal(p.dev[0].name, "cuda:0");
    assert_string_equal(p.dev[1].name, "cuda:1");
    assert_false(dev(&p, "cpu")->usable);
    assert_int_equal(p.concurrent_jobs, 2 * 2 * 17);
}

static void test_h100(void **state) {
    cn_hw_info hw;
    example_h100(&hw);
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-v2"), NULL, &p, &err), CANARY_OK);
    const cn_device_profile *g = &p.dev[0];
    assert_true(g->usable);
    assert_int_equal(g->precision, CN_PREC_BF16);
    assert_true(g->tf32);
    assert_int_equal(g->workers, 2);
    assert_int_equal(g->max_batch, 64); /* memory would hold about 319 chunks: the cap */
    assert_int_equal(p.concurrent_jobs, 128);
    assert_false(dev(&p, "cpu")->usable);
}

static void test_2core_cpu(void **state) {
    cn_hw_info hw;
    example_2core(&hw);
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), NULL, &p, &err), CANARY_OK);
    assert_int_equal(p.n_devices, 1);
    const cn_device_profile *c = &p.dev[0];
    assert_string_equal(c->name, "cpu");
    assert_true(c->usable);
    assert_int_equal(c->precision, CN_PREC_FP32); /* AVX2 only */
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->threads, 2);
    assert_int_equal(c->max_batch, 1); /* cap = threads / 2 */
    assert_int_equal(c->budget_bytes, (uint64_t)(3 * GiB * 0.8));
    assert_int_equal(c->weight_bytes, 182000000ull * 4);
    assert_string_equal(c->residency, "memory-mapped from the .nemo");
    assert_int_equal(p.concurrent_jobs, 2);
}

static void test_zero_gpus_device_cuda_fails(void **state) {
    cn_hw_info hw;
    example_2core(&hw);
    cn_config *c = config();
    set(c, "device", "cuda");
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), c, &p, &err), CANARY_EDEVICE);
    assert_non_null(strstr(err.msg, "no GPU was detected"));
    assert_non_null(strstr(err.msg, "no CUDA plugin"));
}

static void test_gpu_almost_no_free_memory(void **state) {
    cn_hw_info hw;
    example_xeon_2x3080(&hw);
    hw.n_gpus = 1;
    hw.gpus[0].free_mem = 700 * MiB_; /* another process holds the card */
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), NULL, &p, &err), CANARY_OK);
    const cn_device_profile *g = dev(&p, "cuda:0");
    assert_false(g->usable);
    assert_non_null(strstr(g->why, "unusable: needs"));
    const cn_device_profile *c = dev(&p, "cpu");
    assert_true(c->usable);
    assert_string_equal(p.dev[0].name, "cpu"); /* devices in use come first */
    assert_int_equal(c->precision, CN_PREC_FP32); /* AVX-512 but no BF16 */
    assert_int_equal(c->threads, 10);           /* physical cores, not hyperthreads */
    assert_int_equal(c->max_batch, 5);
    /* asking for that GPU explicitly is an error that names it */
    cn_config *cfg = config();
    set(cfg, "device", "cuda:0");
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), cfg, &p, &err), CANARY_ENOMEM);
    assert_non_null(strstr(err.msg, "cuda:0"));
    assert_non_null(strstr(err.msg, "budget"));
}

static void test_cgroup_limited_cpus(void **state) {
    cn_hw_info hw;
    example_h100(&hw);
    hw.n_gpus = 0;
    hw.cgroup_version = 2;
    hw.cgroup_cpus = 3.5;
    hw.cgroup_mem_limit = 8 * GiB;
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), NULL, &p, &err), CANARY_OK);
    const cn_device_profile *c = &p.dev[0];
    assert_int_equal(c->threads, 3);           /* floor(3.5), not 32 cores */
    assert_int_equal(c->precision, CN_PREC_BF16); /* AMX */
    assert_int_equal(c->budget_bytes, (uint64_t)(8 * GiB * 0.8)); /* the cgroup limit, not 500 GiB */
    assert_int_equal(c->max_batch, 1);
    assert_non_null(strstr(c->why, "cgroup"));
}

static void test_tight_memory_shrinks_chunks(void **state) {
    cn_hw_info hw;
    example_2core(&hw);
    hw.cgroup_mem_limit = 1024 * MiB_; /* 819 MiB budget < 694 MiB weights + 160 MiB per 40 s chunk */
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), NULL, &p, &err), CANARY_OK);
    assert_true(p.chunk_seconds == 20.0);
    assert_int_equal(p.n_notes, 1);
    assert_non_null(strstr(p.notes[0], "trying 20 s chunks"));
    /* nothing fits at all: a clear error */
    hw.cgroup_mem_limit = 512 * MiB_;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), NULL, &p, &err), CANARY_ENOMEM);
    assert_non_null(strstr(err.msg, "does not fit on any device"));
}

static void test_overrides(void **state) {
    cn_hw_info hw;
    example_h100(&hw);
    cn_config *c = config();
    set(c, "precision", "fp32");
    set(c, "max-batch", "8");
    set(c, "streams", "3");
    set(c, "chunk-seconds", "60");
    set(c, "workers", "5");
    set(c, "memory-budget-mb", "20000");
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-v2"), c, &p, &err), CANARY_OK);
    const cn_device_profile *g = &p.dev[0];
    assert_int_equal(g->precision, CN_PREC_FP32);
    assert_false(g->tf32); /* an explicit fp32 is exact, as the engine runs it */
    assert_int_equal(g->max_batch, 8);
    assert_int_equal(g->workers, 3);
    assert_int_equal(g->budget_bytes, 20000 * MiB_);
    assert_true(p.chunk_seconds == 40.0); /* never above the model's limit */
    assert_int_equal(p.concurrent_jobs, 5);
    bool clamp_noted = false;
    for (int i = 0; i < p.n_notes; i++)
        clamp_noted |= strstr(p.notes[i], "above the model's 40 s limit") != NULL;
    assert_true(clamp_noted);

    c = config();
    set(c, "chunk-seconds", "20");
    set(c, "device", "cpu");
    set(c, "threads", "7");
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-v2"), c, &p, &err), CANARY_OK);
    assert_true(p.chunk_seconds == 20.0);
    assert_string_equal(p.dev[0].name, "cpu");
    assert_int_equal(p.dev[0].threads, 7);
    assert_int_equal(p.n_devices, 1); /* device=cpu: GPUs not even listed */
}

static void test_beam_shrinks_batch(void **state) {
    cn_hw_info hw;
    example_orin_nano(&hw);
    cn_config *c = config();
    set(c, "beam-size", "4");
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-180m-flash"), c, &p, &err), CANARY_OK);
    /* (3712 MiB - 364 MB - 331.9 MiB) / (162,654,480 + 3 x 33,620,480 B of caches, steps and logits
     * per hypothesis) = 12.07 */
    assert_int_equal(p.dev[0].max_batch, 12);
}

static void test_device_selection(void **state) {
    cn_hw_info hw;
    example_xeon_2x3080(&hw);
    cn_config *c = config();
    set(c, "device", "cuda:1");
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), c, &p, &err), CANARY_OK);
    assert_string_equal(p.dev[0].name, "cuda:1");
    assert_true(p.dev[0].usable);
    assert_false(dev(&p, "cuda:0")->usable);
    assert_string_equal(dev(&p, "cuda:0")->why, "not selected by engine.device");
    set(c, "device", "cuda:5");
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), c, &p, &err), CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "2 GPU(s) were detected"));
    set(c, "device", "tpu");
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), c, &p, &err), CANARY_EINVAL);
    c = config();
    set(c, "precision", "int4");
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), c, &p, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "int4"));
}

static void test_tf32(void **state) {
    cn_hw_info hw;
    example_h100(&hw);
    cn_config *c = config();
    set(c, "precision", "tf32");
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), c, &p, &err), CANARY_OK);
    assert_int_equal(p.dev[0].precision, CN_PREC_FP32);
    assert_true(p.dev[0].tf32); /* sm90: fp32 with TF32 GEMMs */
    assert_string_equal(p.notes[0], "engine.precision = tf32 from the configuration");
    /* a GPU without TF32 tensor cores runs it in fp32 and says so */
    example_2core(&hw);
    hw.mem_available = 30 * GiB;
    gpu(&hw, "Tesla T4", 7, 5, 15360 * MiB_, 14900 * MiB_, false);
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b"), c, &p, &err), CANARY_OK);
    assert_int_equal(p.dev[0].precision, CN_PREC_FP32);
    assert_false(p.dev[0].tf32);
    assert_non_null(strstr(p.dev[0].why, "tf32 forced on sm75 (no TF32 tensor cores: the GEMMs run in fp32)"));
}

static void test_turing_uses_fp16(void **state) {
    cn_hw_info hw;
    example_2core(&hw);
    hw.mem_available = 30 * GiB;
    gpu(&hw, "Tesla T4", 7, 5, 15360 * MiB_, 14900 * MiB_, false);
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b"), NULL, &p, &err), CANARY_OK);
    assert_int_equal(p.dev[0].precision, CN_PREC_FP16);
    assert_false(p.dev[0].tf32);
    assert_non_null(strstr(p.dev[0].why, "fp16: sm75 lacks bf16"));
}

static void test_json_is_complete(void **state) {
    cn_hw_info hw;
    example_xeon_2x3080(&hw);
    cn_profile p;
    cn_error err;
    assert_int_equal(cn_profile_compute(&hw, cn_hw_model_preset("canary-1b-flash"), NULL, &p, &err), CANARY_OK);
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_profile_json(&p, &sb);
    assert_non_null(strstr(cn_sb_str(&sb), "\"name\":\"cuda:1\",\"kind\":\"cuda\",\"usable\":true,\"workers\":2"));
    assert_non_null(strstr(cn_sb_str(&sb), "\"concurrent_jobs\":68"));
    cn_sb_reset(&sb);
    cn_hw_info_json(&hw, &sb);
    assert_non_null(strstr(cn_sb_str(&sb), "\"compute_capability\":\"8.6\""));
    cn_sb_free(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_item_bytes_formula),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_from_desc),
        cmocka_unit_test(test_orin_nano),
        cmocka_unit_test(test_xeon_2x3080),
        cmocka_unit_test(test_h100),
        cmocka_unit_test(test_2core_cpu),
        cmocka_unit_test(test_zero_gpus_device_cuda_fails),
        cmocka_unit_test(test_gpu_almost_no_free_memory),
        cmocka_unit_test(test_cgroup_limited_cpus),
        cmocka_unit_test(test_tight_memory_shrinks_chunks),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_beam_shrinks_batch),
        cmocka_unit_test(test_device_selection),
        cmocka_unit_test(test_tf32),
        cmocka_unit_test(test_turing_uses_fp16),
        cmocka_unit_test(test_json_is_complete),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cn_config_free(config());
    return rc;
}

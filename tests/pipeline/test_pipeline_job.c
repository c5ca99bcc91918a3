/* The step-wise pipeline (job.h) gives the same transcript as cn_pipeline_run, one chunk per step. */
#include "test_util.h"

#include "fake_asr.h"
#include "pipeline/job.h"

static void test_job_equals_run(void **state) {
    for (uint64_t seed = 51; seed < 54; seed++) {
        fake_audio a, b, c;
        fake_audio_init(&a, seed, 500, true, true);
        fake_audio_init(&b, seed, 500, true, true);
        fake_audio_init(&c, seed, 500, true, true);
        fake_asr f = {.timestamps = seed % 2 == 0}, g = f;
        cn_recognizer rf = fake_asr_recognizer(&f, 40), rg = fake_asr_recognizer(&g, 40);
        cn_pipeline_params p;
        cn_pipeline_params_default(&p);
        p.overlap_s = 1;
        cn_pcm_source sa = fake_audio_source(&a, "a"), sb = fake_audio_source(&b, "b"), sc = fake_audio_source(&c, "c");
        canary_transcript want, got;
        cn_error err;
        assert_int_equal(cn_pipeline_run(&rf, &p, &sa, 1, &want, &err), CANARY_OK);
        cn_pipeline_job *j;
        size_t n;
        assert_int_equal(cn_pipeline_job_open(&rg, &p, &sb, &sc, &j, &n, &err), CANARY_OK);
        assert_int_equal(n, f.chunks);
        assert_int_equal(cn_pipeline_job_finish(j, &got, &err), n ? CANARY_EINVAL : CANARY_OK);
        if (!n)
            canary_transcript_free(&got);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(cn_pipeline_job_chunks_done(j), i);
            assert_int_equal(cn_pipeline_job_step(j, &err), CANARY_OK);
        }
        assert_int_equal(cn_pipeline_job_step(j, &err), CANARY_EINVAL);
        assert_int_equal(g.calls, n); /* one chunk per step */
        assert_int_equal(cn_pipeline_job_finish(j, &got, &err), CANARY_OK);
        assert_string_equal(got.text, want.text);
        assert_int_equal(got.n_segments, want.n_segments);
        for (size_t i = 0; i < got.n_segments; i++) {
            assert_float_equal(got.segments[i].start, want.segments[i].start, 1e-12);
            assert_float_equal(got.segments[i].end, want.segments[i].end, 1e-12);
        }
        assert_float_equal(got.duration, 500, 1e-9);
        canary_transcript_free(&want);
        canary_transcript_free(&got);
        cn_pipeline_job_destroy(j);
        fake_audio_free(&a);
        fake_audio_free(&b);
        fake_audio_free(&c);
    }
}

static void test_job_second_read_shorter(void **state) {
    fake_audio a, b;
    fake_audio_init(&a, 61, 120, false, false);
    fake_audio_init(&b, 61, 60, false, false); /* the "same" file, but shorter on the second read */
    fake_asr f = {.timestamps = true};
    cn_recognizer r = fake_asr_recognizer(&f, 40);
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    cn_pcm_source sa = fake_audio_source(&a, "x.wav"), sb = fake_audio_source(&b, "x.wav");
    cn_pipeline_job *j;
    size_t n;
    cn_error err;
    assert_int_equal(cn_pipeline_job_open(&r, &p, &sa, &sb, &j, &n, &err), CANARY_OK);
    cn_status st = CANARY_OK;
    for (size_t i = 0; i < n && st == CANARY_OK; i++)
        st = cn_pipeline_job_step(j, &err);
    assert_int_equal(st, CANARY_EFORMAT);
    assert_non_null(strstr(err.msg, "second read"));
    cn_pipeline_job_destroy(j);
    fake_audio_free(&a);
    fake_audio_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_job_equals_run), cmocka_unit_test(test_job_second_read_shorter)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

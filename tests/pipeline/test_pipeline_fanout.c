/* The fan-out recognizer (pipeline/fanout.h) over deterministic doubles (fake_asr.h): shares follow
 * the weights; a whole pipeline run over three parts gives exactly the transcript of one
 * recognizer, every part working; a part whose device is lost is retired and the run completes
 * with the same transcript; any other failure, or every part lost, fails the run with the part's
 * name, nothing leaked; parts that disagree are refused. */
#include "test_util.h"

#include <string.h>

#include "fake_asr.h"
#include "pipeline/fanout.h"
#include "pipeline/pipeline.h"

static cn_fanout make(fake_asr *f, const int *weights, size_t n) {
    cn_fanout fo;
    memset(&fo, 0, sizeof fo);
    for (size_t i = 0; i < n; i++) {
        fo.parts[i].rec = fake_asr_recognizer(&f[i], 40);
        fo.parts[i].weight = weights[i];
        snprintf(fo.parts[i].name, sizeof fo.parts[i].name, "part%zu", i);
    }
    fo.n_parts = n;
    return fo;
}

static void test_shares(void **state) {
    (void)state;
    fake_asr f[3] = {{0}};
    size_t s[3];
    cn_fanout fo = make(f, (int[]){1, 2, 1}, 3);
    cn_fanout_shares(&fo, 8, s);
    assert_true(s[0] == 2 && s[1] == 4 && s[2] == 2);
    cn_fanout_shares(&fo, 3, s); /* floors 0, 1, 0; the remainder to the earlier parts */
    assert_true(s[0] == 1 && s[1] == 2 && s[2] == 0);
    cn_fanout_shares(&fo, 0, s);
    assert_true(s[0] == 0 && s[1] == 0 && s[2] == 0);
    cn_fanout two = make(f, (int[]){64, 64}, 2);
    cn_fanout_shares(&two, 10, s);
    assert_true(s[0] == 5 && s[1] == 5);
    cn_fanout_shares(&two, 1, s);
    assert_true(s[0] == 1 && s[1] == 0);
    cn_fanout_shares(&two, 7, s);
    assert_true(s[0] == 4 && s[1] == 3);
}

static cn_pipeline_params params(void) {
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    p.max_batch = 8;
    p.max_batch_s = 8 * 40;
    return p;
}

/* The pipeline over `rec` on synthetic audio (fake_audio_init's seed, seconds, monologues). */
static cn_status run_audio(const cn_recognizer *rec, uint64_t seed, double seconds, bool monologues,
                           canary_transcript *t, cn_error *err) {
    fake_audio a;
    fake_audio_init(&a, seed, seconds, monologues, false);
    cn_pipeline_params p = params();
    cn_pcm_source src = fake_audio_source(&a, "a.wav");
    cn_status st = cn_pipeline_run(rec, &p, &src, 1, t, err);
    fake_audio_free(&a);
    return st;
}

static void test_run_equals_one_recognizer(void **state) {
    (void)state;
    fake_asr alone = {.timestamps = true};
    cn_recognizer rec = fake_asr_recognizer(&alone, 40);
    canary_transcript t1, t3;
    cn_error err;
    assert_int_equal(run_audio(&rec, 7, 900, true, &t1, &err), CANARY_OK);

    /* the same audio over three parts */
    fake_asr f[3] = {{.timestamps = true}, {.timestamps = true}, {.timestamps = true}};
    cn_fanout fo = make(f, (int[]){1, 2, 1}, 3);
    cn_recognizer fan;
    assert_int_equal(cn_fanout_bind(&fo, &fan, &err), CANARY_OK);
    assert_int_equal(run_audio(&fan, 7, 900, true, &t3, &err), CANARY_OK);

    assert_string_equal(t1.text, t3.text);
    assert_int_equal(t1.n_segments, t3.n_segments);
    for (size_t i = 0; i < t1.n_segments; i++) {
        assert_float_equal(t1.segments[i].start, t3.segments[i].start, 1e-9);
        assert_float_equal(t1.segments[i].end, t3.segments[i].end, 1e-9);
    }
    /* every chunk ran once, every part ran some, the middle part (weight 2) the most */
    size_t chunks = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(fo.parts[i].chunks, f[i].chunks);
        assert_true(f[i].chunks > 0);
        assert_true(f[i].max_batch_seen <= 4);
        chunks += f[i].chunks;
    }
    assert_int_equal(chunks, alone.chunks);
    assert_true(f[1].chunks > f[0].chunks && f[1].chunks > f[2].chunks);
    canary_transcript_free(&t1);
    canary_transcript_free(&t3);
}

/* a lone recognizer's transcript text of seed 31, 600 s (strdup'ed), for the failure cases */
static char *alone_text(size_t *chunks) {
    fake_asr one = {.timestamps = true};
    cn_recognizer rec = fake_asr_recognizer(&one, 40);
    canary_transcript t;
    cn_error err;
    assert_int_equal(run_audio(&rec, 31, 600, false, &t, &err), CANARY_OK);
    char *w = strdup(t.text ? t.text : "");
    *chunks = one.chunks;
    canary_transcript_free(&t);
    return w;
}

static cn_status run_600(cn_fanout *fo, canary_transcript *t, cn_error *err) {
    cn_recognizer fan;
    assert_int_equal(cn_fanout_bind(fo, &fan, err), CANARY_OK);
    return run_audio(&fan, 31, 600, false, t, err);
}

static void test_lost_device_retired(void **state) {
    (void)state;
    size_t total;
    char *want = alone_text(&total);
    /* part 1's device is gone from its second call on: retired, its share and the rest on part 0 */
    fake_asr f[2] = {{.timestamps = true}, {.timestamps = true, .fail_on_call = 2, .fail_from_then_on = true}};
    cn_fanout fo = make(f, (int[]){1, 1}, 2);
    canary_transcript t;
    cn_error err;
    assert_int_equal(run_600(&fo, &t, &err), CANARY_OK);
    assert_string_equal(t.text, want);
    assert_true(fo.parts[1].retired && !fo.parts[0].retired);
    assert_int_equal(f[1].calls, 2); /* never called again */
    assert_int_equal(fo.parts[0].chunks + fo.parts[1].chunks, total);
    assert_true(fo.parts[1].chunks > 0); /* its first share counted */
    size_t s[2];
    cn_fanout_shares(&fo, 5, s);
    assert_true(s[0] == 5 && s[1] == 0);
    free(want);
    canary_transcript_free(&t);
}

static void test_all_devices_lost(void **state) {
    (void)state;
    fake_asr f[2] = {{.timestamps = true, .fail_on_call = 3, .fail_from_then_on = true},
                     {.timestamps = true, .fail_on_call = 2, .fail_from_then_on = true}};
    cn_fanout fo = make(f, (int[]){1, 1}, 2);
    canary_transcript t;
    cn_error err;
    assert_int_equal(run_600(&fo, &t, &err), CANARY_EDEVICE);
    assert_non_null(strstr(err.msg, "failing call"));
    assert_true(fo.parts[0].retired && fo.parts[1].retired);
    size_t s[2];
    cn_fanout_shares(&fo, 5, s);
    assert_true(s[0] == 0 && s[1] == 0);
}

static void test_other_failure_fails_the_run(void **state) {
    (void)state;
    /* not a device error: the run fails, naming the part; the other part's results are freed */
    fake_asr f[2] = {{.timestamps = true}, {.timestamps = true, .fail_on_call = 2, .fail_status = CANARY_EINVAL}};
    cn_fanout fo = make(f, (int[]){1, 1}, 2);
    canary_transcript t;
    cn_error err;
    assert_int_equal(run_600(&fo, &t, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "part1: "));
    assert_non_null(strstr(err.msg, "failing call 2"));
    assert_false(fo.parts[1].retired);
}

static void test_bind_refuses(void **state) {
    (void)state;
    fake_asr f[2] = {{0}, {0}};
    cn_fanout fo;
    memset(&fo, 0, sizeof fo);
    cn_recognizer r;
    cn_error err;
    assert_int_equal(cn_fanout_bind(&fo, &r, &err), CANARY_EINVAL); /* no parts */
    fo = make(f, (int[]){1, 1}, 2);
    fo.parts[1].rec.sample_rate = 8000;
    assert_int_equal(cn_fanout_bind(&fo, &r, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "part1: 8000 Hz"));
    fo = make(f, (int[]){1, 0}, 2);
    assert_int_equal(cn_fanout_bind(&fo, &r, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "weight 0"));
    /* the chunk limit is the smallest, equal-length batches when any part asks */
    fo = make(f, (int[]){1, 1}, 2);
    fo.parts[1].rec.max_chunk_s = 30;
    fo.parts[1].rec.equal_length_batches = true;
    assert_int_equal(cn_fanout_bind(&fo, &r, &err), CANARY_OK);
    assert_float_equal(r.max_chunk_s, 30, 1e-12);
    assert_true(r.equal_length_batches);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares),
        cmocka_unit_test(test_run_equals_one_recognizer),
        cmocka_unit_test(test_lost_device_retired),
        cmocka_unit_test(test_all_devices_lost),
        cmocka_unit_test(test_other_failure_fails_the_run),
        cmocka_unit_test(test_bind_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

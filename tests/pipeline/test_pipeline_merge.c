/* Merging: words from tokens, 80 ms timestamp frames to seconds, approximate times, seam
 * de-duplication after hard cuts, segmentation, monotonic times inside the audio. */
#include "test_util.h"

#include <math.h>

#include "pipeline/merge.h"

#define SR 16000

typedef struct tok {
    const char *text;
    int s, e;
} tok;

static cn_rec_result make_result(const tok *t, size_t n) {
    cn_rec_result r = {calloc(n ? n : 1, sizeof(cn_rec_token)), n};
    for (size_t i = 0; i < n; i++) {
        r.tokens[i].id = 100 + (int)i;
        r.tokens[i].logprob = -0.5f * (float)(i + 1);
        r.tokens[i].text = strdup(t[i].text);
        r.tokens[i].start_frame = t[i].s;
        r.tokens[i].end_frame = t[i].e;
    }
    return r;
}

static cn_merger *merger(double overlap, int max_chars) {
    cn_merge_params p = {.sample_rate = SR, .frame_s = 0.08, .overlap_s = overlap, .max_segment_chars = max_chars};
    cn_merger *m;
    cn_error err;
    assert_int_equal(cn_merger_create(&p, &m, &err), CANARY_OK);
    return m;
}

static void add(cn_merger *m, double start, double end, bool hard_before, bool hard_after, const tok *t, size_t n) {
    cn_chunk ch = {(int64_t)llround(start * SR), (int64_t)llround(end * SR), hard_before, hard_after};
    cn_rec_result r = make_result(t, n);
    cn_error err;
    assert_int_equal(cn_merger_add(m, &ch, &r, &err), CANARY_OK);
    cn_rec_result_free(&r);
}

static void all_words(const canary_transcript *t, char *buf, size_t cap) {
    buf[0] = 0;
    for (size_t i = 0; i < t->n_segments; i++)
        for (size_t k = 0; k < t->segments[i].n_words; k++) {
            strncat(buf, t->segments[i].words[k].text, cap - strlen(buf) - 2);
            strcat(buf, " ");
        }
}

static void test_timestamp_frames_to_seconds(void **state) {
    cn_merger *m = merger(0, 0);
    /* chunk at 10 s; frames are 80 ms from the chunk's first sample */
    tok t[] = {{" Hello", 1, 5}, {" wor", 6, 8}, {"ld.", 8, 10}, {" Next", 20, 40}};
    add(m, 10.0, 12.5, false, false, t, 4);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 30.0, "transcribe", "en", &tr, &err), CANARY_OK);
    assert_string_equal(tr.text, "Hello world. Next");
    assert_int_equal(tr.n_segments, 2); /* split after the sentence end */
    const canary_segment *s = &tr.segments[0];
    assert_string_equal(s->text, "Hello world.");
    assert_int_equal(s->n_words, 2);
    assert_false(s->words_approximate);
    assert_float_equal(s->words[0].start, 10.08, 1e-9);
    assert_float_equal(s->words[0].end, 10.40, 1e-9);
    assert_string_equal(s->words[1].text, "world.");
    assert_float_equal(s->words[1].start, 10.48, 1e-9);
    assert_float_equal(s->words[1].end, 10.80, 1e-9);
    assert_float_equal(s->start, 10.08, 1e-9);
    assert_float_equal(s->end, 10.80, 1e-9);
    assert_int_equal(s->n_tokens, 3);
    assert_int_equal(s->tokens[0], 100);
    assert_int_equal(s->tokens[2], 102);
    assert_float_equal(s->avg_logprob, (-0.5 - 1.0 - 1.5) / 3, 1e-6);
    /* a frame past the chunk's end is clipped to it */
    assert_float_equal(tr.segments[1].words[0].start, 11.60, 1e-9);
    assert_float_equal(tr.segments[1].words[0].end, 12.5, 1e-9);
    assert_string_equal(tr.task, "transcribe");
    assert_string_equal(tr.language, "en");
    assert_float_equal(tr.duration, 30.0, 0);
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

static void test_approximate_times(void **state) {
    cn_merger *m = merger(0, 0);
    /* no timestamp tokens: the chunk's 4 s are spread by characters (+1 each): ab=3, cdef=5 of 8 */
    tok t[] = {{" ab", -1, -1}, {" cd", -1, -1}, {"ef", -1, -1}};
    add(m, 2.0, 6.0, false, false, t, 3);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 6.0, "translate", "de", &tr, &err), CANARY_OK);
    assert_int_equal(tr.n_segments, 1);
    assert_true(tr.segments[0].words_approximate);
    assert_float_equal(tr.segments[0].words[0].start, 2.0, 1e-9);
    assert_float_equal(tr.segments[0].words[0].end, 3.5, 1e-9);
    assert_float_equal(tr.segments[0].words[1].start, 3.5, 1e-9);
    assert_float_equal(tr.segments[0].words[1].end, 6.0, 1e-9);
    assert_string_equal(tr.text, "ab cdef");
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

static void test_seam_dedup_by_matching_words(void **state) {
    cn_merger *m = merger(1.0, 0);
    tok a[] = {{" one", -1, -1}, {" two", -1, -1}, {" three", -1, -1}, {" four", -1, -1}, {" fi", -1, -1}};
    /* the next chunk starts 1 s earlier and hears "three four five" again */
    tok b[] = {{" Four", -1, -1}, {" five", -1, -1}, {" six", -1, -1}, {" seven", -1, -1}};
    add(m, 0, 40, false, true, a, 5);
    add(m, 39, 60, true, false, b, 4);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 60, "transcribe", "en", &tr, &err), CANARY_OK);
    char w[256];
    all_words(&tr, w, sizeof w);
    /* "four" matched (case and punctuation ignored): A up to it, B after it */
    assert_string_equal(w, "one two three four five six seven ");
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

static void test_seam_without_match_splits_by_time(void **state) {
    cn_merger *m = merger(1.0, 0);
    /* timed words: A's last word starts at 39.6 s (after the seam's middle, 39.5 s), B's first at 39.2 s */
    tok a[] = {{" alpha", 100, 110}, {" beta", 495, 499}};
    tok b[] = {{" gamma", 2, 4}, {" delta", 10, 14}};
    add(m, 0, 40, false, true, a, 2);
    add(m, 39, 60, true, false, b, 2);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 60, "transcribe", "en", &tr, &err), CANARY_OK);
    char w[256];
    all_words(&tr, w, sizeof w);
    assert_string_equal(w, "alpha delta ");
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

static void test_segments_break_at_silence_cuts_and_length(void **state) {
    cn_merger *m = merger(0, 12);
    tok a[] = {{" aaa", -1, -1}, {" bbb", -1, -1}, {" ccc", -1, -1}, {" ddd", -1, -1}};
    tok b[] = {{" eee", -1, -1}};
    add(m, 0, 4, false, false, a, 4);
    add(m, 10, 11, false, false, b, 1);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 20, "transcribe", "en", &tr, &err), CANARY_OK);
    assert_int_equal(tr.n_segments, 3);
    assert_string_equal(tr.segments[0].text, "aaa bbb ccc"); /* 11 chars; + " ddd" would be 15 > 12 */
    assert_string_equal(tr.segments[1].text, "ddd");
    assert_string_equal(tr.segments[2].text, "eee");
    for (size_t i = 0; i < tr.n_segments; i++)
        assert_int_equal(tr.segments[i].id, (int)i);
    assert_float_equal(tr.segments[2].start, 10.0, 1e-9);
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

static void test_monotonic_and_inside_audio(void **state) {
    cn_merger *m = merger(0, 0);
    /* a model emitting out-of-order frames, and a chunk running past the audio's end */
    tok a[] = {{" x", 20, 25}, {" y", 5, 8}, {" z", 30, 60}};
    add(m, 0, 5, false, false, a, 3);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 2.2, "transcribe", "en", &tr, &err), CANARY_OK);
    double prev = 0;
    for (size_t i = 0; i < tr.n_segments; i++)
        for (size_t k = 0; k < tr.segments[i].n_words; k++) {
            const canary_word *w = &tr.segments[i].words[k];
            assert_true(w->start >= prev);
            assert_true(w->end >= w->start);
            assert_true(w->end <= 2.2);
            prev = w->start;
        }
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

static void test_empty(void **state) {
    cn_merger *m = merger(0, 0);
    add(m, 0, 5, false, false, NULL, 0);
    canary_transcript tr;
    cn_error err;
    assert_int_equal(cn_merger_finish(m, 5, "transcribe", "en", &tr, &err), CANARY_OK);
    assert_int_equal(tr.n_segments, 0);
    assert_string_equal(tr.text, "");
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp_frames_to_seconds),
        cmocka_unit_test(test_approximate_times),
        cmocka_unit_test(test_seam_dedup_by_matching_words),
        cmocka_unit_test(test_seam_without_match_splits_by_time),
        cmocka_unit_test(test_segments_break_at_silence_cuts_and_length),
        cmocka_unit_test(test_monotonic_and_inside_audio),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

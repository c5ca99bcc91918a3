/* The engine adapter's piece handling: SentencePiece word marks, byte pieces, timestamp tokens;
 * engine tokens with <|S|> w <|E|> groups (spec §7.7) become pipeline tokens with frames, and the
 * merge turns them into model-timed words in original-audio time. */
#include "test_util.h"

#include <math.h>

#include "pipeline/engine_recognizer.h"
#include "pipeline/merge.h"

#define W "\xE2\x96\x81" /* SentencePiece word mark */

static void test_pieces(void **state) {
    char out[64];
    cn_piece_to_text("\xE2\x96\x81hello", out);
    assert_string_equal(out, " hello");
    cn_piece_to_text("lo", out);
    assert_string_equal(out, "lo");
    cn_piece_to_text("<0xE4><0xB8><0x96>", out);
    assert_string_equal(out, "\xE4\xB8\x96");
    cn_piece_to_text("<0xZZ>", out);
    assert_string_equal(out, "<0xZZ>");
    cn_piece_to_text("\xE2\x96\x81\xE2\x96\x81", out);
    assert_string_equal(out, "  ");
}

static void test_timestamps(void **state) {
    assert_int_equal(cn_piece_timestamp("<|0|>"), 0);
    assert_int_equal(cn_piece_timestamp("<|899|>"), 899);
    assert_int_equal(cn_piece_timestamp("<|en|>"), -1);
    assert_int_equal(cn_piece_timestamp("<|timestamp|>"), -1);
    assert_int_equal(cn_piece_timestamp("<||>"), -1);
    assert_int_equal(cn_piece_timestamp("<|12"), -1);
    assert_int_equal(cn_piece_timestamp("12"), -1);
}

/* What canary_result_token gives for a timestamp-mode output (ids are arbitrary here). */
static const canary_token toks[] = {
    {205 + 3, -0.1f, 1, "<|3|>", 3},   {1000, -0.2f, 2, W "Hello", -1}, {1001, -0.3f, 3, W "wor", -1},
    {1002, -0.4f, 4, "ld", -1},        {205 + 9, -0.1f, 5, "<|9|>", 9},  {1003, -0.5f, 6, W "stray", -1},
    {205 + 12, -0.1f, 7, "<|12|>", 12}, {62, -0.1f, 8, "<|en|>", -1},  {1004, -0.6f, 9, W "again.", -1},
    {205 + 15, -0.1f, 10, "<|15|>", 15}, {205 + 30, -0.1f, 11, "<|30|>", 30}, {1005, -0.7f, 12, W "tail", -1},
};
#define N_TOKS ((int)(sizeof toks / sizeof toks[0]))

static void test_groups_to_frames(void **state) {
    (void)state;
    cn_rec_result r;
    cn_error err;
    /* timestamps asked: the words of the groups only, with the groups' frames (as NeMo) */
    assert_int_equal(cn_rec_result_from_tokens(toks, N_TOKS, true, 0, &r, &err), CANARY_OK);
    static const struct { int id; const char *text; int s, e; } want[] = {
        {1000, " Hello", 3, 9}, {1001, " wor", 3, 9}, {1002, "ld", 3, 9}, {1004, " again.", 12, 15}};
    assert_int_equal(r.n_tokens, 4);
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(r.tokens[k].id, want[k].id);
        assert_string_equal(r.tokens[k].text, want[k].text);
        assert_int_equal(r.tokens[k].start_frame, want[k].s);
        assert_int_equal(r.tokens[k].end_frame, want[k].e);
    }
    cn_rec_result_free(&r);
    /* a short clip padded by the engine: frames shift back, never below 0 */
    assert_int_equal(cn_rec_result_from_tokens(toks, N_TOKS, true, 4, &r, &err), CANARY_OK);
    assert_int_equal(r.tokens[0].start_frame, 0);
    assert_int_equal(r.tokens[0].end_frame, 5);
    assert_int_equal(r.tokens[3].start_frame, 8);
    assert_int_equal(r.tokens[3].end_frame, 11);
    cn_rec_result_free(&r);
    /* not asked (or no group): every text token stays, stamps still time the ones inside groups */
    assert_int_equal(cn_rec_result_from_tokens(toks, N_TOKS, false, 0, &r, &err), CANARY_OK);
    assert_int_equal(r.n_tokens, 6);
    assert_string_equal(r.tokens[3].text, " stray");
    assert_int_equal(r.tokens[3].start_frame, -1);
    assert_string_equal(r.tokens[5].text, " tail");
    assert_int_equal(r.tokens[5].start_frame, -1);
    cn_rec_result_free(&r);
    static const canary_token lone[] = {{205 + 3, -0.1f, 1, "<|3|>", 3}, {1000, -0.2f, 2, W "Hi", -1}};
    assert_int_equal(cn_rec_result_from_tokens(lone, 2, true, 0, &r, &err), CANARY_OK);
    assert_int_equal(r.n_tokens, 1);
    assert_int_equal(r.tokens[0].start_frame, -1);
    cn_rec_result_free(&r);
}

/* Converted tokens through the merge: model-timed words (not approximate) in original time. */
static void test_groups_to_words(void **state) {
    (void)state;
    cn_rec_result r;
    cn_error err;
    assert_int_equal(cn_rec_result_from_tokens(toks, N_TOKS, true, 0, &r, &err), CANARY_OK);
    cn_merge_params mp = {.sample_rate = 16000, .frame_s = 0.08, .overlap_s = 0, .max_segment_chars = 0};
    cn_merger *m;
    assert_int_equal(cn_merger_create(&mp, &m, &err), CANARY_OK);
    cn_chunk ch = {12 * 16000, 14 * 16000, false, false}; /* the chunk starts at 12 s */
    assert_int_equal(cn_merger_add(m, &ch, &r, &err), CANARY_OK);
    canary_transcript tr;
    assert_int_equal(cn_merger_finish(m, 20.0, "transcribe", "en", &tr, &err), CANARY_OK);
    assert_string_equal(tr.text, "Hello world again.");
    assert_int_equal(tr.n_segments, 1);
    const canary_segment *s = &tr.segments[0];
    assert_false(s->words_approximate);
    assert_int_equal(s->n_words, 3);
    static const struct { const char *w; double a, b; } want[] = {
        {"Hello", 12.24, 12.72}, {"world", 12.24, 12.72}, {"again.", 12.96, 13.20}};
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(s->words[k].text, want[k].w);
        assert_float_equal(s->words[k].start, want[k].a, 1e-9);
        assert_float_equal(s->words[k].end, want[k].b, 1e-9);
    }
    char *doc = NULL;
    assert_int_equal(canary_transcript_render(&tr, CANARY_FORMAT_VERBOSE_JSON, &doc), CANARY_OK);
    assert_non_null(strstr(doc, "\"words_approximate\":false"));
    assert_non_null(strstr(doc, "{\"word\":\"again.\",\"start\":12.960,\"end\":13.200}"));
    free(doc);
    canary_transcript_free(&tr);
    cn_merger_destroy(m);
    cn_rec_result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pieces), cmocka_unit_test(test_timestamps),
                                       cmocka_unit_test(test_groups_to_frames),
                                       cmocka_unit_test(test_groups_to_words)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The engine adapter's piece handling: SentencePiece word marks, byte pieces, timestamp tokens. */
#include "test_util.h"

#include "pipeline/engine_recognizer.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pieces), cmocka_unit_test(test_timestamps)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

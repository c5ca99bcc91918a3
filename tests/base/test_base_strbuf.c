#include "test_util.h"

#include "base/strbuf.h"

static void test_append_and_printf(void **state) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    assert_string_equal(cn_sb_str(&sb), "");
    cn_sb_puts(&sb, "hello");
    cn_sb_putc(&sb, ' ');
    cn_sb_printf(&sb, "%d-%s", 42, "x");
    assert_string_equal(cn_sb_str(&sb), "hello 42-x");
    /* a printf larger than the on-stack buffer */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cn_sb_printf(&sb, "[%s]", big);
    assert_int_equal(sb.len, 10 + 2 + 999);
    cn_sb_reset(&sb);
    assert_string_equal(cn_sb_str(&sb), "");
    cn_sb_free(&sb);
}

static void test_json_escaping(void **state) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sb_json_string(&sb, "a\"b\\c\n\x01 é \xff end");
    assert_string_equal(cn_sb_str(&sb), "\"a\\\"b\\\\c\\n\\u0001 é \xEF\xBF\xBD end\"");
    cn_sb_reset(&sb);
    /* overlong encoding and surrogate are invalid UTF-8 */
    cn_sb_json_string(&sb, "\xC0\xAF\xED\xA0\x80");
    assert_string_equal(cn_sb_str(&sb), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    cn_sb_free(&sb);
}

static void test_put_utf8(void **state) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    /* valid text (2-, 3- and 4-byte sequences, quotes, newline) passes unchanged */
    cn_sb_put_utf8(&sb, "a \"\xC3\xA9\" \xE2\x82\xAC \xF0\x9F\x98\x80\n");
    assert_string_equal(cn_sb_str(&sb), "a \"\xC3\xA9\" \xE2\x82\xAC \xF0\x9F\x98\x80\n");
    cn_sb_reset(&sb);
    /* a stray continuation byte (what a byte-fallback piece can leave) and a sequence truncated at
     * the end: one U+FFFD per offending byte */
    cn_sb_put_utf8(&sb, "G\xC3\xBC\xAA" "oo \xE2\x82");
    assert_string_equal(cn_sb_str(&sb), "G\xC3\xBC\xEF\xBF\xBD" "oo \xEF\xBF\xBD\xEF\xBF\xBD");
    cn_sb_reset(&sb);
    /* an overlong encoding, a surrogate, a code point above U+10FFFF */
    cn_sb_put_utf8(&sb, "\xC0\xAF|\xED\xA0\x80|\xF4\x90\x80\x80");
    assert_string_equal(cn_sb_str(&sb), "\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|"
                                        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    cn_sb_free(&sb);
}

static void test_steal(void **state) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    char *empty = cn_sb_steal(&sb);
    assert_string_equal(empty, "");
    free(empty);
    cn_sb_puts(&sb, "abc");
    char *s = cn_sb_steal(&sb);
    assert_string_equal(s, "abc");
    assert_null(sb.data);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_printf),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_put_utf8),
        cmocka_unit_test(test_steal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

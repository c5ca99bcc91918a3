#include "test_util.h"

#include "cli/cli.h"

static void test_parse(void **state) {
    static const cn_opt opts[] = {{"format", true, ""}, {"json", false, ""}, {0}};
    cn_config c;
    cn_error err;
    assert_int_equal(cn_config_init(&c, &err), CANARY_OK);
    char *argv[] = {"a.wav", "--format", "srt", "--threads=3", "--json", "--port", "99", "--", "--b.wav"};
    cn_cli_parsed p;
    assert_int_equal(cn_cli_parse(9, argv, opts, &c, &p, &err), CANARY_OK);
    assert_string_equal(p.values[0], "srt");
    assert_string_equal(p.values[1], "");
    assert_int_equal(p.n_pos, 2);
    assert_string_equal(p.pos[0], "a.wav");
    assert_string_equal(p.pos[1], "--b.wav");
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.port, 99);

    char *bad1[] = {"--nope"};
    assert_int_equal(cn_cli_parse(1, bad1, opts, &c, &p, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "--nope"));
    char *bad2[] = {"--format"};
    assert_int_equal(cn_cli_parse(1, bad2, opts, &c, &p, &err), CANARY_EINVAL);
    char *bad3[] = {"--json=1"};
    assert_int_equal(cn_cli_parse(1, bad3, opts, &c, &p, &err), CANARY_EINVAL);
    char *bad4[] = {"--threads", "-5"};
    assert_int_equal(cn_cli_parse(2, bad4, opts, &c, &p, &err), CANARY_EINVAL);
    char *bad5[] = {"--config", "/nonexistent.yaml"};
    assert_int_equal(cn_cli_parse(2, bad5, opts, &c, &p, &err), CANARY_ENOTFOUND);
    cn_config_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

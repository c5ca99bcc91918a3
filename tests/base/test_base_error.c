#include "test_util.h"

#include <errno.h>

#include "base/error.h"

static cn_status fails_with_context(cn_error *err) {
    CN_TRY(cn_error_set(err, CANARY_EFORMAT, "bad header at byte %d", 512));
    return CANARY_OK;
}

static void test_set_and_prefix(void **state) {
    cn_error err;
    cn_error_clear(&err);
    assert_int_equal(err.code, CANARY_OK);
    assert_int_equal(fails_with_context(&err), CANARY_EFORMAT);
    cn_error_prefix(&err, "reading '%s'", "m.nemo");
    assert_string_equal(err.msg, "reading 'm.nemo': bad header at byte 512");
    assert_int_equal(err.code, CANARY_EFORMAT);
}

static void test_null_error_is_allowed(void **state) {
    assert_int_equal(cn_error_set(NULL, CANARY_EIO, "x"), CANARY_EIO);
    cn_error_clear(NULL);
}

static void test_errno_mapping(void **state) {
    cn_error err;
    assert_int_equal(cn_error_errno(&err, ENOENT, "open '%s'", "x"), CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "open 'x': "));
    assert_int_equal(cn_error_errno(&err, ENOMEM, "alloc"), CANARY_ENOMEM);
    assert_int_equal(cn_error_errno(&err, EACCES, "open"), CANARY_EIO);
}

static void test_long_messages_truncate(void **state) {
    cn_error err;
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cn_error_set(&err, CANARY_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), CN_ERROR_MSG_MAX - 1);
    cn_error_prefix(&err, "ctx");
    assert_int_equal(strlen(err.msg), CN_ERROR_MSG_MAX - 1);
    assert_memory_equal(err.msg, "ctx: aaa", 8);
}

static void test_status_names(void **state) {
    for (int s = CANARY_OK; s <= CANARY_EINTERNAL; s++)
        assert_string_not_equal(canary_status_str((canary_status)s), "unknown status");
    assert_string_equal(canary_status_str((canary_status)999), "unknown status");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_prefix), cmocka_unit_test(test_null_error_is_allowed),
        cmocka_unit_test(test_errno_mapping), cmocka_unit_test(test_long_messages_truncate),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "test_util.h"

#include "base/file.h"

static void test_write_read_map(void **state) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/a/b/c", cn_test_tmpdir());
    cn_error err;
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    snprintf(path, sizeof path, "%s/f.bin", dir);
    assert_int_equal(cn_write_file_atomic(path, "hello", 5, &err), CANARY_OK);
    char *data;
    size_t len;
    assert_int_equal(cn_read_file(path, 100, &data, &len, &err), CANARY_OK);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_int_equal(cn_read_file(path, 4, &data, &len, &err), CANARY_ELIMIT);
    assert_null(data);
    cn_mapped_file m;
    assert_int_equal(cn_map_file(path, &m, &err), CANARY_OK);
    assert_int_equal(m.size, 5);
    assert_memory_equal(m.data, "hello", 5);
    cn_unmap_file(&m);
    assert_int_equal(cn_map_file(dir, &m, &err), CANARY_EINVAL);
    assert_int_equal(cn_read_file("/nonexistent", 10, &data, &len, &err), CANARY_ENOTFOUND);
    /* empty file maps to nothing */
    assert_int_equal(cn_write_file_atomic(path, "", 0, &err), CANARY_OK);
    assert_int_equal(cn_map_file(path, &m, &err), CANARY_OK);
    assert_null(m.data);
    assert_int_equal(m.size, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_write_read_map)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

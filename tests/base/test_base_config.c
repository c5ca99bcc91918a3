#include "test_util.h"

#include "base/config.h"

static void test_defaults(void **state) {
    cn_config c;
    cn_error err;
    assert_int_equal(cn_config_init(&c, &err), CANARY_OK);
    assert_string_equal(c.model, "nvidia/canary-180m-flash");
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_true(c.pnc);
    assert_int_equal(c.threads, 0);
    cn_config_free(&c);
}

static void test_layering_and_sources(void **state) {
    cn_config c;
    cn_error err;
    assert_int_equal(cn_config_init(&c, &err), CANARY_OK);
    const char *yaml = "model: /m/a.nemo\nserver:\n  port: 9000\n  host: 0.0.0.0\nengine:\n  threads: 3\npnc: no\n";
    assert_int_equal(cn_config_load_yaml(&c, yaml, strlen(yaml), "t.yaml", &err), CANARY_OK);
    assert_string_equal(c.model, "/m/a.nemo");
    assert_int_equal(c.port, 9000);
    assert_false(c.pnc);
    char *env[] = {"CANARY_SERVER_PORT=9100", "CANARY_ENGINE_THREADS=5", "OTHER=1", NULL};
    assert_int_equal(cn_config_load_env(&c, env, &err), CANARY_OK);
    assert_int_equal(c.port, 9100);
    assert_int_equal(cn_config_set(&c, "threads", "7", CN_SRC_FLAG, &err), CANARY_OK);
    assert_int_equal(cn_config_set(&c, "data-dir", "/tmp/d", CN_SRC_FLAG, &err), CANARY_OK);
    assert_int_equal(cn_config_set(&c, "server.max_upload_mb", "5", CN_SRC_FLAG, &err), CANARY_OK);
    assert_int_equal(c.threads, 7);
    assert_string_equal(c.data_dir, "/tmp/d");
    assert_int_equal(c.max_upload_mb, 5);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cn_config_print(&c, f, false);
    fclose(f);
    assert_non_null(strstr(buf, "server.port"));
    assert_non_null(strstr(buf, "9100"));
    assert_non_null(strstr(buf, "(env)"));
    assert_non_null(strstr(buf, "(flag)"));
    assert_non_null(strstr(buf, "(file)"));
    assert_non_null(strstr(buf, "(default)"));
    free(buf);
    f = open_memstream(&buf, &len);
    cn_config_print(&c, f, true);
    fclose(f);
    assert_non_null(strstr(buf, "\"engine.threads\":{\"value\":7,\"source\":\"flag\"}"));
    free(buf);
    cn_config_free(&c);
}

static void test_errors_name_the_key(void **state) {
    cn_config c;
    cn_error err;
    assert_int_equal(cn_config_init(&c, &err), CANARY_OK);
    const char *bad[] = {
        "serverr:\n  port: 1\n", "server:\n  prot: 1\n", "server:\n  port: abc\n", "server:\n  port: 70000\n",
        "pnc: maybe\n", "- a\n- b\n", "model: [1, 2]\n", "server: {port: [1]}\n", "a: b: c\n", "\"unterminated\n",
    };
    const char *expect[] = {"serverr", "server.prot", "server.port", "server.port", "pnc", "mapping",
                            "lists", "scalars", "YAML", "YAML"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_error_clear(&err);
        assert_int_not_equal(cn_config_load_yaml(&c, bad[i], strlen(bad[i]), "x.yaml", &err), CANARY_OK);
        if (!strstr(err.msg, expect[i]))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, expect[i]);
    }
    assert_int_equal(cn_config_set(&c, "no-such", "1", CN_SRC_FLAG, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "no-such"));
    char *env[] = {"CANARY_ENGINE_THREADS=lots", NULL};
    assert_int_equal(cn_config_load_env(&c, env, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "CANARY_ENGINE_THREADS"));
    /* empty document is fine */
    assert_int_equal(cn_config_load_yaml(&c, "", 0, "e.yaml", &err), CANARY_OK);
    cn_config_free(&c);
}

static void test_file(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/c.yaml", cn_test_tmpdir());
    FILE *f = fopen(path, "w");
    fputs("log:\n  level: debug\n", f);
    fclose(f);
    cn_config c;
    cn_error err;
    assert_int_equal(cn_config_init(&c, &err), CANARY_OK);
    assert_int_equal(cn_config_load_file(&c, path, &err), CANARY_OK);
    assert_string_equal(c.log_level, "debug");
    assert_string_equal(c.config_file, path);
    assert_int_equal(cn_config_load_file(&c, "/nonexistent/c.yaml", &err), CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/c.yaml"));
    cn_config_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_layering_and_sources),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

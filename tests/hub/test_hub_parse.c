/* The hub parsers: header lines, ETag normalisation, the model-info listing, LFS pointers, repo
 * names; and the cache lookup on a hand-built cache tree. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "hub/hub.h"

static void feed(cn_hub_file_meta *m, const char *line) { cn_hub_parse_header(line, strlen(line), m); }

static void test_headers(void **state) {
    cn_hub_file_meta m;
    memset(&m, 0, sizeof m);
    feed(&m, "HTTP/1.1 302 Found\r\n");
    assert_int_equal(m.status, 302);
    feed(&m, "x-linked-etag: \"ABCDEF\"\r\n");
    feed(&m, "ETag: W/\"1234\"\r\n");
    feed(&m, "X-Linked-Size: 736665600\r\n");
    feed(&m, "X-Repo-Commit: deadbeef\r\n");
    feed(&m, "Location: https://cdn-lfs.hf.co/repos/x?X-Amz=1\r\n");
    feed(&m, "X-Error-Code: EntryNotFound\r\n");
    feed(&m, "garbage without colon\r\n");
    assert_string_equal(m.linked_etag, "ABCDEF");
    assert_string_equal(m.etag, "1234");
    assert_int_equal(m.linked_size, 736665600ull);
    assert_string_equal(m.commit, "deadbeef");
    assert_string_equal(m.location, "https://cdn-lfs.hf.co/repos/x?X-Amz=1");
    assert_string_equal(m.error_code, "EntryNotFound");
    /* a following response (after a redirect) starts over */
    feed(&m, "HTTP/2 200\r\n");
    assert_int_equal(m.status, 200);
    assert_string_equal(m.etag, "");
    char out[16];
    cn_hub_normalize_etag("  \"abc\"  ", out, sizeof out);
    assert_string_equal(out, "abc");
    cn_hub_normalize_etag("\"", out, sizeof out);
    assert_string_equal(out, "\"");
}

static const char listing[] =
    "{\"id\":\"nvidia/canary-180m-flash\",\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":["
    "{\"rfilename\":\"README.md\",\"size\":100},"
    "{\"rfilename\":\"other.nemo\",\"size\":5},"
    "{\"rfilename\":\"canary-180m-flash.nemo\",\"size\":736665600,\"lfs\":{\"sha256\":"
    "\"a9b5f6c1e2d3a9b5f6c1e2d3a9b5f6c1e2d3a9b5f6c1e2d3a9b5f6c1e2d3a9b5\",\"size\":736665600,\"pointerSize\":135}}]}";

static void test_repo_info(void **state) {
    cn_hub_repo_info info;
    cn_error err;
    assert_int_equal(cn_hub_parse_repo_info(listing, strlen(listing), "nvidia/canary-180m-flash", &info, &err),
                     CANARY_OK);
    assert_string_equal(info.commit, "0123456789abcdef0123456789abcdef01234567");
    assert_string_equal(info.file, "canary-180m-flash.nemo"); /* named after the repo, not the first */
    assert_int_equal(info.size, 736665600ull);
    assert_string_equal(info.lfs_sha256, "a9b5f6c1e2d3a9b5f6c1e2d3a9b5f6c1e2d3a9b5f6c1e2d3a9b5f6c1e2d3a9b5");
    /* several .nemo, none named after the repo: ambiguous */
    assert_int_equal(cn_hub_parse_repo_info(listing, strlen(listing), "me/custom", &info, &err), CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "several .nemo files (other.nemo, canary-180m-flash.nemo)"));
    const char *one = "{\"sha\":\"abc\",\"siblings\":[{\"rfilename\":\"model.nemo\"}]}";
    assert_int_equal(cn_hub_parse_repo_info(one, strlen(one), "me/custom", &info, &err), CANARY_OK);
    assert_string_equal(info.file, "model.nemo");
    assert_int_equal(info.size, 0);
    const char *none = "{\"sha\":\"abc\",\"siblings\":[{\"rfilename\":\"model.bin\"}]}";
    assert_int_equal(cn_hub_parse_repo_info(none, strlen(none), "me/custom", &info, &err), CANARY_ENOTFOUND);
    const char *evil = "{\"sha\":\"../..\",\"siblings\":[]}";
    assert_int_equal(cn_hub_parse_repo_info(evil, strlen(evil), "me/x", &info, &err), CANARY_EFORMAT);
    const char *evil2 = "{\"sha\":\"abc\",\"siblings\":[{\"rfilename\":\"../x.nemo\"}]}";
    assert_int_equal(cn_hub_parse_repo_info(evil2, strlen(evil2), "me/x", &info, &err), CANARY_EUNSUPPORTED);
    assert_int_equal(cn_hub_parse_repo_info("{", 1, "me/x", &info, &err), CANARY_EFORMAT);
    assert_non_null(strstr(err.msg, "not JSON"));
}

static void test_lfs_pointer(void **state) {
    const char *p = "version https://git-lfs.github.com/spec/v1\n"
                    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                    "size 12345\n";
    char sha[65];
    uint64_t size = 0;
    assert_true(cn_hub_parse_lfs_pointer(p, strlen(p), sha, &size));
    assert_string_equal(sha, "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393");
    assert_int_equal(size, 12345);
    const char *bad = "version https://git-lfs.github.com/spec/v1\noid sha256:zz\nsize 1\n";
    assert_false(cn_hub_parse_lfs_pointer(bad, strlen(bad), sha, &size));
    assert_false(cn_hub_parse_lfs_pointer("PK\3\4", 4, sha, &size));
}

static void test_repo_names(void **state) {
    assert_true(cn_hub_is_repo_name("nvidia/canary-180m-flash"));
    assert_true(cn_hub_is_repo_name("nvidia/canary-1b-v2@main"));
    assert_true(cn_hub_is_repo_name("a_b/c.d@0123456789abcdef0123456789abcdef01234567"));
    assert_false(cn_hub_is_repo_name("canary-1b"));
    assert_false(cn_hub_is_repo_name("../etc/passwd"));
    assert_false(cn_hub_is_repo_name("a/b/c"));
    assert_false(cn_hub_is_repo_name("a/.."));
    assert_false(cn_hub_is_repo_name("a/b@"));
    assert_false(cn_hub_is_repo_name("a/b@x/y"));
    assert_false(cn_hub_is_repo_name("/abs/path.nemo"));
    assert_false(cn_hub_is_repo_name("a/b c"));
}

static void test_cache_lookup_and_list(void **state) {
    char cache[512], dir[600], path[700];
    snprintf(cache, sizeof cache, "%s/hubcache", cn_test_tmpdir());
    cn_error err;
    snprintf(dir, sizeof dir, "%s/models--org--m/blobs", cache);
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    snprintf(path, sizeof path, "%s/abc", dir);
    assert_int_equal(cn_write_file_atomic(path, "hello", 5, &err), CANARY_OK);
    snprintf(dir, sizeof dir, "%s/models--org--m/snapshots/c0ffee", cache);
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    snprintf(path, sizeof path, "%s/m.nemo", dir);
    assert_int_equal(symlink("../../blobs/abc", path), 0);
    snprintf(dir, sizeof dir, "%s/models--org--m/refs", cache);
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    snprintf(path, sizeof path, "%s/main", dir);
    assert_int_equal(cn_write_file_atomic(path, "c0ffee\n", 7, &err), CANARY_OK);

    cn_hub_opts o;
    cn_hub_opts_init(&o);
    o.cache_dir = cache;
    char *found = NULL;
    assert_int_equal(cn_hub_find_cached(&o, "org/m", &found, &err), CANARY_OK);
    assert_non_null(strstr(found, "/models--org--m/snapshots/c0ffee/m.nemo"));
    free(found);
    assert_int_equal(cn_hub_find_cached(&o, "org/m@v2", &found, &err), CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "org/m (revision v2) is not in the model cache"));
    /* offline resolution of a hub name goes through the same lookup */
    o.offline = 1;
    assert_int_equal(cn_hub_resolve_model("org/m", &o, &found, &err), CANARY_OK);
    free(found);
    assert_int_equal(cn_hub_resolve_model("org/other", &o, &found, &err), CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "HF_HUB_OFFLINE"));
    assert_int_equal(cn_hub_resolve_model("not a model", &o, &found, &err), CANARY_EINVAL);

    cn_hub_cached *list = NULL;
    size_t n = 0;
    assert_int_equal(cn_hub_list(&o, &list, &n, &err), CANARY_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].repo, "org/m");
    assert_string_equal(list[0].revision, "main");
    assert_string_equal(list[0].commit, "c0ffee");
    assert_string_equal(list[0].file, "m.nemo");
    assert_int_equal(list[0].size, 5);
    assert_true(list[0].complete);
    free(list);
    assert_int_equal(cn_hub_remove(&o, "org/m", &err), CANARY_OK);
    assert_int_equal(cn_hub_list(&o, &list, &n, &err), CANARY_OK);
    assert_int_equal(n, 0);
    free(list);
}

static void test_cache_dir_defaults(void **state) {
    cn_hub_opts o;
    cn_hub_opts_init(&o);
    char dir[512];
    cn_error err;
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    assert_int_equal(cn_hub_cache_dir(&o, dir, sizeof dir, &err), CANARY_OK);
    assert_string_equal(dir, "/x/cache/canary-stt");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    assert_int_equal(cn_hub_cache_dir(&o, dir, sizeof dir, &err), CANARY_OK);
    assert_string_equal(dir, "/home/u/.cache/canary-stt");
    o.cache_dir = "/explicit";
    assert_int_equal(cn_hub_cache_dir(&o, dir, sizeof dir, &err), CANARY_OK);
    assert_string_equal(dir, "/explicit");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers),     cmocka_unit_test(test_repo_info),
        cmocka_unit_test(test_lfs_pointer), cmocka_unit_test(test_repo_names),
        cmocka_unit_test(test_cache_lookup_and_list), cmocka_unit_test(test_cache_dir_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

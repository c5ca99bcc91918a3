/* Shared helpers for cmocka tests. */
#ifndef CN_TEST_UTIL_H
#define CN_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* A fresh temporary directory for one test (removed by the OS's tmp cleaning; tests keep it
 * small). */
static inline const char *cn_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/canary-test-XXXXXX");
        if (!mkdtemp(dir))
            fail_msg("mkdtemp failed");
    }
    return dir;
}

static inline const char *cn_test_source_dir(void) {
    const char *s = getenv("CANARY_SOURCE_DIR");
    return s ? s : ".";
}

static inline const char *cn_test_binary_dir(void) {
    const char *s = getenv("CANARY_BINARY_DIR");
    return s ? s : ".";
}

#endif

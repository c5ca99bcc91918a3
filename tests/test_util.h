/* Shared helpers for cmocka tests. */
#ifndef CN_TEST_UTIL_H
#define CN_TEST_UTIL_H

#include <math.h>
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

/* n samples at 16 kHz of a speech-like test signal: two harmonics of an item-specific pitch under
 * a syllable envelope, plus a little noise. malloc'd; NULL when out of memory. */
static inline float *cn_test_speechlike(size_t n, unsigned seed) {
    float *x = (float *)malloc(sizeof(float) * (n ? n : 1));
    unsigned r = seed * 2654435761u + 1;
    for (size_t k = 0; x && k < n; k++) {
        float t = (float)k / 16000.0f, f0 = 120.0f + 13.0f * (float)seed;
        r = r * 1664525u + 1013904223u;
        float noise = ((float)(r >> 8) / 16777216.0f - 0.5f) * 0.01f;
        x[k] = 0.2f * (0.5f + 0.5f * sinf(6.2831853f * 3.5f * t)) *
                   (sinf(6.2831853f * f0 * t) + 0.4f * sinf(6.2831853f * 2 * f0 * t)) + noise;
    }
    return x;
}

#endif

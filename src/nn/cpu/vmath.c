/* Vectorised exp and the activations built on it. libm's expf is called one element at a time
 * (glibc's vector variants need -ffast-math), and SiLU/GLU/softmax spend most of their time there.
 *
 * exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 (two-part ln 2, |r| ≤ 0.35), e^r by
 * its degree-7 Taylor polynomial (truncation < 5e-9 relative), 2^n built in the exponent bits.
 * Measured against expf over [-87, 88]: relative error < 2.5e-7 (tests/nn/test_nn_ops.c). Inputs
 * are clamped to [-87.3, 88.0] (results 1e-38 .. 1.6e38 instead of 0 / inf); NaN stays NaN. */
#include <string.h>

#include "nn/cpu/cpu_internal.h"

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

/* lanes of a where mask is set, else b (masks are comparison results: all ones or zero) */
#define SELECT16(mask, a, b) ((v16f)(((mask) & (v16i)(a)) | (~(mask) & (v16i)(b))))

/* *v = exp(*v) lane-wise (vectors by pointer: passing 64-byte vectors by value would depend on
 * the ISA clone's ABI) */
static inline __attribute__((always_inline)) void vexp16(v16f *v) {
    const v16f zero = {0}, one = zero + 1.0f;
    v16f x = *v;
    v16i is_nan = x != x;
    v16f c = SELECT16(x < -87.3f, zero - 87.3f, x);
    c = SELECT16(c > 88.0f, zero + 88.0f, c);
    c = SELECT16(is_nan, zero, c);
    /* round to nearest: adding 1.5·2^23 pushes the fraction out of the mantissa */
    v16f n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    v16f r = c - n * 0.693145751953125f - n * 1.42860682030941723e-6f;
    v16f p = one + r * (one + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 +
                                                                                                 r * (1.0f / 5040)))))));
    v16i e = (__builtin_convertvector(n, v16i) + 127) << 23;
    *v = SELECT16(is_nan, x, p * (v16f)e);
}

#define LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define STORE(p, v) memcpy((p), &(v), sizeof(v))

CN_CPU_CLONES static void vexp_impl(float *x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f v;
        LOAD(v, x + i);
        vexp16(&v);
        STORE(x + i, v);
    }
    if (i < n) {
        v16f v = {0};
        memcpy(&v, x + i, sizeof(float) * (size_t)(n - i));
        vexp16(&v);
        memcpy(x + i, &v, sizeof(float) * (size_t)(n - i));
    }
}

CN_CPU_CLONES static void vsilu_impl(float *x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f v;
        LOAD(v, x + i);
        v16f e = -v;
        vexp16(&e);
        v = v / (1.0f + e);
        STORE(x + i, v);
    }
    if (i < n) {
        v16f v = {0};
        memcpy(&v, x + i, sizeof(float) * (size_t)(n - i));
        v16f e = -v;
        vexp16(&e);
        v = v / (1.0f + e);
        memcpy(x + i, &v, sizeof(float) * (size_t)(n - i));
    }
}

CN_CPU_CLONES static void vglu_impl(const float *a, const float *g, float *y, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f av, gv;
        LOAD(av, a + i);
        LOAD(gv, g + i);
        v16f e = -gv;
        vexp16(&e);
        av = av * (1.0f / (1.0f + e));
        STORE(y + i, av);
    }
    for (; i < n; i++) {
        v16f e = {0};
        e[0] = -g[i];
        vexp16(&e);
        y[i] = a[i] * (1.0f / (1.0f + e[0]));
    }
}

/* Public entry points are plain functions over static clones: clang 14 emits the ifunc of an
 * exported target_clones function only in translation units that call it. */
void cn_cpu_vexp(float *x, int n) { vexp_impl(x, n); }
void cn_cpu_vsilu(float *x, int n) { vsilu_impl(x, n); }
void cn_cpu_vglu(const float *a, const float *g, float *y, int n) { vglu_impl(a, g, y, n); }

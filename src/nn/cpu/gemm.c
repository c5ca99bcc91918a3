/* Single-threaded GEMM kernels for the CPU backend.
 *
 * fp32 goes through OpenBLAS, chosen by measurement (docs/BENCHMARKS.md): Debian's DYNAMIC_ARCH
 * build misdetects recent Xeons and falls back to SSE3 kernels unless OPENBLAS_CORETYPE is set
 * before the library loads, so we set it from our own ISA detection and dlopen the library
 * ourselves. Threading is ours (the backend splits GEMMs across its pool and calls OpenBLAS with one
 * thread per call), so concurrent contexts never share OpenBLAS's global thread pool. When OpenBLAS
 * cannot be loaded a portable blocked kernel is used.
 *
 * bf16 (weights and activations in bf16, fp32 accumulation) uses our own AVX512-BF16 kernel
 * (_mm512_dpbf16_ps) behind __builtin_cpu_supports; other CPUs get a scalar version with the same
 * rounding, so results do not depend on the ISA beyond summation order.
 */
#include <dlfcn.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "nn/cpu/cpu_internal.h"

/* CBLAS enums (values fixed by the CBLAS standard). */
enum { CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };
typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);

static sgemm_fn blas_sgemm;
static char gemm_name[96] = "portable";
static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;
static bool have_bf16, have_avx512;

static void gemm_load(void) {
    __builtin_cpu_init();
    have_bf16 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
    have_avx512 = __builtin_cpu_supports("avx512f");
    /* CANARY_CPU_KERNELS=portable: the kernels other CPUs get (tests run them on this one) */
    const char *kernels = getenv("CANARY_CPU_KERNELS");
    if (kernels && strcmp(kernels, "portable") == 0)
        have_bf16 = have_avx512 = false;
    const char *core = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0); /* a user's explicit choice wins */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);   /* we thread ourselves; no idle OpenBLAS pool */
    const char *disable = getenv("CANARY_NO_BLAS");
    if (disable && *disable && strcmp(disable, "0") != 0)
        return;
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        CN_WARN("nn", "OpenBLAS not found (%s); using the portable GEMM (slow)", dlerror());
        return;
    }
    sgemm_fn f;
    *(void **)&f = dlsym(h, "cblas_sgemm");
    void (*set_threads)(int);
    *(void **)&set_threads = dlsym(h, "openblas_set_num_threads");
    char *(*corename)(void);
    *(void **)&corename = dlsym(h, "openblas_get_corename");
    if (!f) {
        CN_WARN("nn", "libopenblas has no cblas_sgemm; using the portable GEMM (slow)");
        return;
    }
    if (set_threads)
        set_threads(1);
    blas_sgemm = f;
    snprintf(gemm_name, sizeof gemm_name, "openblas %s", corename ? corename() : "?");
    CN_DEBUG("nn", "GEMM: %s, bf16 kernels: %s", gemm_name, have_bf16 ? "avx512bf16" : "scalar");
}

void cn_cpu_gemm_init(void) { pthread_once(&gemm_once, gemm_load); }

const char *cn_cpu_gemm_name(void) {
    cn_cpu_gemm_init();
    return gemm_name;
}

bool cn_cpu_has_bf16(void) {
    cn_cpu_gemm_init();
    return have_bf16;
}

/* Portable fallback: blocked over k so the B panel stays in cache. */
static void portable_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const float *ar = a + (size_t)i * lda, *br = b + (size_t)j * ldb;
            float s = 0;
            for (int p = 0; p < k; p++)
                s += ar[p] * br[p];
            float *cp = c + (size_t)i * ldc + j;
            *cp = beta == 0.0f ? alpha * s : *cp * beta + alpha * s;
        }
}

static void portable_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++) {
        float *cr = c + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(cr, 0, sizeof(float) * (size_t)n);
        else if (beta != 1.0f)
            for (int j = 0; j < n; j++)
                cr[j] *= beta;
        for (int p = 0; p < k; p++) {
            float av = alpha * a[(size_t)i * lda + p];
            const float *br = b + (size_t)p * ldb;
            for (int j = 0; j < n; j++)
                cr[j] += av * br[j];
        }
    }
}

/* Few rows (decoder steps): BLAS packs the whole weight panel on every call, which costs as much as
 * the product itself. Stream each weight row once instead, against up to 4 activation rows; the
 * loop vectorises per ISA (target_clones = runtime dispatch). */
typedef float v16f __attribute__((vector_size(64)));


/* The end of a small-M tile: sums[r*J + q] (the vector part of row r · weight row q) plus the k
 * tail, written to C with alpha/beta. Shared by the portable and AVX-512 kernels. */
static inline void small_nt_finish(int R, int J, int nj, const float *sums, const float *a, int lda,
                                   const float *const *br, int k16, int k, float alpha, float beta, float *c,
                                   int ldc) {
    for (int r = 0; r < R; r++)
        for (int q = 0; q < nj; q++) {
            float sum = sums[r * J + q];
            for (int p = k16; p < k; p++)
                sum += a[(size_t)r * lda + p] * br[q][p];
            float *cp = c + (size_t)r * ldc + q;
            *cp = beta == 0.0f ? alpha * sum : *cp * beta + alpha * sum;
        }
}

/* R activation rows against J weight rows at a time (R x J vector accumulators, R + J loads per
 * R·J FMAs), then one horizontal sum per output. R and J are constants in each instance so the
 * accumulators stay in registers and no work is done for absent rows. */
#define SMALL_NT(R, J)                                                                                                 \
    CN_CPU_CLONES static void small_nt_##R(int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, \
                                           float beta, float *c, int ldc) {                                            \
        int k16 = k / 16 * 16;                                                                                         \
        for (int j0 = 0; j0 < n; j0 += J) {                                                                            \
            int nj = n - j0 < J ? n - j0 : J;                                                                          \
            const float *br[J];                                                                                        \
            for (int q = 0; q < J; q++)                                                                                \
                br[q] = b + (size_t)(j0 + (q < nj ? q : nj - 1)) * ldb;                                                \
            v16f acc[R][J];                                                                                            \
            memset(acc, 0, sizeof acc);                                                                                \
            for (int p = 0; p < k16; p += 16) {                                                                        \
                v16f w[J], x;                                                                                          \
                for (int q = 0; q < J; q++)                                                                            \
                    memcpy(&w[q], br[q] + p, sizeof w[q]);                                                             \
                for (int r = 0; r < R; r++) {                                                                          \
                    memcpy(&x, a + (size_t)r * lda + p, sizeof x);                                                     \
                    for (int q = 0; q < J; q++)                                                                        \
                        acc[r][q] += x * w[q];                                                                         \
                }                                                                                                      \
            }                                                                                                          \
            float sums[R * J];                                                                                         \
            for (int r = 0; r < R; r++)                                                                                \
                for (int q = 0; q < J; q++) {                                                                          \
                    sums[r * J + q] = 0;                                                                               \
                    for (int l = 0; l < 16; l++)                                                                       \
                        sums[r * J + q] += acc[r][q][l];                                                               \
                }                                                                                                      \
            small_nt_finish(R, J, nj, sums, a, lda, br, k16, k, alpha, beta, c + j0, ldc);                             \
        }                                                                                                              \
    }
SMALL_NT(8, 2)
SMALL_NT(4, 4)
SMALL_NT(2, 4)
SMALL_NT(1, 4)

/* AVX-512 version: same tiles, and the 16 sums of a tile come out of one transpose-and-add tree
 * (45 instructions) instead of 16 horizontal reductions. Lane i of the result = sum of v[i]. */
#define AVX512_TARGET __attribute__((target("avx512f")))
AVX512_TARGET static inline __m512 sum16(const __m512 v[16]) {
    __m512 s[8], t[4];
    for (int i = 0; i < 8; i++)
        s[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(s[2 * i]), b = _mm512_castps_pd(s[2 * i + 1]);
        t[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x88), _mm512_shuffle_f32x4(t[0], t[1], 0xdd));
    __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], 0x88), _mm512_shuffle_f32x4(t[2], t[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xdd));
}

#define SMALL_NT512(R, J)                                                                                              \
    AVX512_TARGET static void small_nt512_##R(int n, int k, float alpha, const float *a, int lda, const float *b,      \
                                              int ldb, float beta, float *c, int ldc) {                                \
        int k16 = k / 16 * 16;                                                                                         \
        for (int j0 = 0; j0 < n; j0 += J) {                                                                            \
            int nj = n - j0 < J ? n - j0 : J;                                                                          \
            const float *br[J];                                                                                        \
            for (int q = 0; q < J; q++)                                                                                \
                br[q] = b + (size_t)(j0 + (q < nj ? q : nj - 1)) * ldb;                                                \
            __m512 acc[16];                                                                                            \
            for (int i = 0; i < 16; i++)                                                                               \
                acc[i] = _mm512_setzero_ps();                                                                          \
            for (int p = 0; p < k16; p += 16) {                                                                        \
                __m512 w[J];                                                                                           \
                for (int q = 0; q < J; q++)                                                                            \
                    w[q] = _mm512_loadu_ps(br[q] + p);                                                                 \
                for (int r = 0; r < R; r++) {                                                                          \
                    __m512 x = _mm512_loadu_ps(a + (size_t)r * lda + p);                                               \
                    for (int q = 0; q < J; q++)                                                                        \
                        acc[r * J + q] = _mm512_fmadd_ps(x, w[q], acc[r * J + q]);                                     \
                }                                                                                                      \
            }                                                                                                          \
            float sums[16];                                                                                            \
            _mm512_storeu_ps(sums, sum16(acc));                                                                        \
            small_nt_finish(R, J, nj, sums, a, lda, br, k16, k, alpha, beta, c + j0, ldc);                             \
        }                                                                                                              \
    }
SMALL_NT512(8, 2)
SMALL_NT512(4, 4)
SMALL_NT512(2, 4)
SMALL_NT512(1, 4)

typedef void (*small_nt_fn)(int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                            float *c, int ldc);

static void small_m_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                       float *c, int ldc) {
    small_nt_fn k8 = small_nt_8, k4 = small_nt_4, k2 = small_nt_2, k1 = small_nt_1;
    if (have_avx512) {
        k8 = small_nt512_8, k4 = small_nt512_4, k2 = small_nt512_2, k1 = small_nt512_1;
    }
    int i = 0;
    for (; m - i >= 8; i += 8)
        k8(n, k, alpha, a + (size_t)i * lda, lda, b, ldb, beta, c + (size_t)i * ldc, ldc);
    if (m - i >= 4) {
        k4(n, k, alpha, a + (size_t)i * lda, lda, b, ldb, beta, c + (size_t)i * ldc, ldc);
        i += 4;
    }
    if (m - i >= 2) {
        k2(n, k, alpha, a + (size_t)i * lda, lda, b, ldb, beta, c + (size_t)i * ldc, ldc);
        i += 2;
    }
    if (m - i >= 1)
        k1(n, k, alpha, a + (size_t)i * lda, lda, b, ldb, beta, c + (size_t)i * ldc, ldc);
}

void cn_cpu_sgemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                     float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0)
        return;
    if (m <= CN_SMALL_M && k >= 64) {
        small_m_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (blas_sgemm && k > 0)
        blas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        portable_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cn_cpu_sgemm_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                     float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0)
        return;
    if (blas_sgemm && k > 0)
        blas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        portable_nn(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ------------------------------------------------------------------------------------------- */
/* bf16                                                                                        */
/* ------------------------------------------------------------------------------------------- */

uint16_t cn_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float cn_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Packed bf16 weights (see cpu_internal.h): groups of 64 outputs, k in pairs, so that one 64-byte
 * vector holds 16 outputs x 2 consecutive k, exactly the operand _mm512_dpbf16_ps pairs with a
 * broadcast pair of activations, and a tile's four vectors for one k pair are adjacent (one
 * sequential stream through memory). Outputs land in vector lanes: no horizontal sums. */
size_t cn_cpu_bf16_packed_elems(int n, int k_pad) { return (size_t)((n + 63) / 64) * 64 * (size_t)k_pad; }

void cn_cpu_bf16_pack(const float *w, int n, int k, int k_pad, uint16_t *out) {
    cn_cpu_gemm_init(); /* picks the conversion kernel */
    size_t gs = (size_t)k_pad * 64;
    memset(out, 0, cn_cpu_bf16_packed_elems(n, k_pad) * sizeof(uint16_t));
    uint16_t *row = malloc(sizeof(uint16_t) * (size_t)k_pad);
    for (int r = 0; r < n; r++) {
        uint16_t *g = out + (size_t)(r / 64) * gs + (size_t)(r % 64) * 2;
        if (row) { /* one row converted at once (vectorised), then its k pairs spread out */
            cn_cpu_to_bf16(w + (size_t)r * k, k, k_pad, row);
            for (int p2 = 0; p2 < k_pad / 2; p2++)
                memcpy(g + (size_t)p2 * 128, row + 2 * p2, 2 * sizeof(uint16_t));
        } else {
            for (int col = 0; col < k; col++)
                g[(size_t)(col / 2) * 128 + (size_t)(col % 2)] = cn_f32_to_bf16(w[(size_t)r * k + col]);
        }
    }
    free(row);
}

/* k elements per pass: four column blocks of weights for one pass are 4 x 16 x 256 x 2 B = 32 KiB. */
#define BF16_KC 256

static void gemm_bf16_scalar(int m, int n, int k_pad, const uint16_t *a, const uint16_t *wp, float *c, int ldc,
                             float alpha, bool accumulate) {
    size_t gs = (size_t)k_pad * 64;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const uint16_t *ar = a + (size_t)i * k_pad, *wc = wp + (size_t)(j / 64) * gs + (size_t)(j % 64) * 2;
            float s = 0;
            for (int p = 0; p < k_pad; p++)
                s += cn_bf16_to_f32(ar[p]) * cn_bf16_to_f32(wc[(size_t)(p / 2) * 128 + (size_t)(p % 2)]);
            float *cp = c + (size_t)i * ldc + j;
            *cp = accumulate ? *cp + alpha * s : s;
        }
}

/* One register tile: R rows of A x NB column blocks (NB*16 outputs) over np2 pairs of k.
 * R and NB are constants at every call site, so the accumulators live in registers. */
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))
BF16_TARGET static inline __attribute__((always_inline)) void
bf16_tile(const int R, const int NB, int np2, const uint16_t *a, size_t lda, const uint16_t *w, float *c,
          size_t ldc, int nvalid, bool store, float scale) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++)
            acc[r][b] = _mm512_setzero_ps();
    /* With few rows a second set of accumulators (odd k pairs) keeps more dot products in flight. */
    const bool dual = R * NB <= 8;
    __m512 acc2[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++)
            acc2[r][b] = _mm512_setzero_ps();
    int p = 0;
    if (dual)
        for (; p + 2 <= np2; p += 2) {
            __m512bh wv[4], wv2[4];
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++) {
                wv[b] = (__m512bh)_mm512_loadu_si512((const void *)(w + (size_t)p * 128 + (size_t)b * 32));
                wv2[b] = (__m512bh)_mm512_loadu_si512((const void *)(w + (size_t)(p + 1) * 128 + (size_t)b * 32));
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                int pair[2];
                memcpy(pair, a + (size_t)r * lda + (size_t)p * 2, sizeof pair);
                __m512bh av = (__m512bh)_mm512_set1_epi32(pair[0]), av2 = (__m512bh)_mm512_set1_epi32(pair[1]);
#pragma GCC unroll 4
                for (int b = 0; b < NB; b++) {
                    acc[r][b] = _mm512_dpbf16_ps(acc[r][b], av, wv[b]);
                    acc2[r][b] = _mm512_dpbf16_ps(acc2[r][b], av2, wv2[b]);
                }
            }
        }
    for (; p < np2; p++) {
        __m512bh wv[4];
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++)
            wv[b] = (__m512bh)_mm512_loadu_si512((const void *)(w + (size_t)p * 128 + (size_t)b * 32));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            int pair;
            memcpy(&pair, a + (size_t)r * lda + (size_t)p * 2, sizeof pair);
            __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++)
                acc[r][b] = _mm512_dpbf16_ps(acc[r][b], av, wv[b]);
        }
    }
    if (dual)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++)
                acc[r][b] = _mm512_add_ps(acc[r][b], acc2[r][b]);
    __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            int cols = nvalid - b * 16;
            __mmask16 mask = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1u);
            float *cp = c + (size_t)r * ldc + (size_t)b * 16;
            if (store)
                _mm512_mask_storeu_ps(cp, mask, acc[r][b]);
            else
                _mm512_mask_storeu_ps(cp, mask, _mm512_fmadd_ps(acc[r][b], sv, _mm512_maskz_loadu_ps(mask, cp)));
        }
}

#define BF16_TILE_CASE(R, NB)                                                                                          \
    case (R) * 16 + (NB):                                                                                               \
        bf16_tile(R, NB, np2, a, lda, w, c, ldc, nvalid, store, scale);                                           \
        break;
#define BF16_TILE_ROW(R) BF16_TILE_CASE(R, 1) BF16_TILE_CASE(R, 2) BF16_TILE_CASE(R, 3) BF16_TILE_CASE(R, 4)

BF16_TARGET static void bf16_tile_any(int rows, int nb, int np2, const uint16_t *a, size_t lda, const uint16_t *w,
                                      float *c, size_t ldc, int nvalid, bool store, float scale) {
    switch (rows * 16 + nb) {
        BF16_TILE_ROW(1)
        BF16_TILE_ROW(2)
        BF16_TILE_ROW(3)
        BF16_TILE_ROW(4)
    default:
        break;
    }
}

/* Loop order: a 64-column panel of C (m x 64 fp32, L2-resident) is finished across all k passes
 * before the next; within a pass its 32 KiB weight block stays in L1 while A's rows stream by. */
BF16_TARGET static void gemm_bf16_avx512(int m, int n, int k_pad, const uint16_t *a, const uint16_t *wp, float *c,
                                         int ldc, float alpha, bool accumulate) {
    size_t gs = (size_t)k_pad * 64;
    float scale = accumulate ? alpha : 1.0f;
    for (int j0 = 0; j0 < n; j0 += 64) {
        int nvalid = n - j0 < 64 ? n - j0 : 64;
        for (int k0 = 0; k0 < k_pad; k0 += BF16_KC) {
            int kc = k_pad - k0 < BF16_KC ? k_pad - k0 : BF16_KC;
            bool store = k0 == 0 && !accumulate;
            const uint16_t *w = wp + (size_t)(j0 / 64) * gs + (size_t)k0 * 64;
            for (int i0 = 0; i0 < m; i0 += 4)
                bf16_tile_any(m - i0 < 4 ? m - i0 : 4, (nvalid + 15) / 16, kc / 2, a + (size_t)i0 * k_pad + k0,
                              (size_t)k_pad, w, c + (size_t)i0 * ldc + j0, (size_t)ldc, nvalid, store, scale);
        }
    }
}

void cn_cpu_gemm_bf16(int m, int n, int k_pad, const uint16_t *a, const uint16_t *wp, float *c, int ldc,
                      float alpha, bool accumulate) {
    cn_cpu_gemm_init();
    if (have_bf16)
        gemm_bf16_avx512(m, n, k_pad, a, wp, c, ldc, alpha, accumulate);
    else
        gemm_bf16_scalar(m, n, k_pad, a, wp, c, ldc, alpha, accumulate);
}

/* fp32 -> bf16 (round to nearest even) of the leading multiple of 16; returns how many. */
BF16_TARGET static int to_bf16_avx512(const float *x, int k, uint16_t *o) {
    int i = 0;
    for (; i + 16 <= k; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(o + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    return i;
}

void cn_cpu_to_bf16(const float *x, int k, int k_pad, uint16_t *o) {
    int i = have_bf16 ? to_bf16_avx512(x, k, o) : 0;
    for (; i < k; i++)
        o[i] = cn_f32_to_bf16(x[i]);
    for (; i < k_pad; i++)
        o[i] = 0;
}

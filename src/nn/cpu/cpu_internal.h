/* Private to the CPU backend. */
#ifndef CN_NN_CPU_INTERNAL_H
#define CN_NN_CPU_INTERNAL_H

#include <stdint.h>

#include "base/threadpool.h"
#include "nn/backend.h"

struct cn_exec {
    cn_exec_base base;
    cn_pool *pool;
    int n_threads;
    /* Per-thread scratch (attention score matrices, bf16 activation panels); grown when a larger
     * shape is planned, never inside a parallel loop. */
    float **scratch;
    size_t *scratch_floats;
};

struct cn_linear {
    int n_out, n_in;
    cn_precision prec;
    const float *w;    /* [n_out, n_in] fp32 (NULL for bf16); owned_w or the caller's memory */
    float *owned_w;
    float *b;          /* [n_out] or NULL */
    uint16_t *w_bf16;  /* bf16, packed by cn_cpu_bf16_pack; k zero-padded to k_pad (multiple of 32) */
    int k_pad;
};

/* Hot loops are compiled for several ISAs and picked at load time (ifunc). -ffast-math is not
 * used, so the float sums keep their order except where vectorised reductions reassociate. */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define CN_CPU_CLONES __attribute__((target_clones("avx512f,avx2,default")))
#else
#define CN_CPU_CLONES
#endif
/* Row counts up to which GEMMs use the streaming kernel instead of BLAS. */
#define CN_SMALL_M 16

/* Makes sure every thread's scratch holds at least `floats`. Returns false when out of memory. */
bool cn_cpu_scratch_reserve(cn_exec *ex, size_t floats);

/* GEMM: C[m, n] = A[m, k] · B[n, k]ᵀ (beta 0) or C += alpha·A·Bᵀ (beta 1), single-threaded. */
void cn_cpu_sgemm_nt(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                     float beta, float *c, int ldc);
/* C[m, n] = A[m, k] · B[k, n] (beta 0 or 1), single-threaded. */
void cn_cpu_sgemm_nn(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                     float beta, float *c, int ldc);
/* Loads the BLAS once (thread-safe). */
void cn_cpu_gemm_init(void);

/* Vectorised exp (vmath.c; relative error < 2.5e-7, inputs clamped to [-87.3, 88]) and the
 * activations built on it, in place or y = a · sigmoid(g). */
void cn_cpu_vexp(float *x, int n);
void cn_cpu_vsilu(float *x, int n);
void cn_cpu_vglu(const float *a, const float *g, float *y, int n);

/* bf16 helpers (gemm.c) */
uint16_t cn_f32_to_bf16(float x); /* round to nearest even */
float cn_bf16_to_f32(uint16_t h);
/* Packed bf16 weight layout for W[n, k]: groups of 64 output rows; group g holds, for each pair p
 * of k, 64 x 2 values: packed[g*64*k_pad + p*128 + c*2 + e] = W[g*64 + c, 2p + e] (zero outside W).
 * cn_cpu_bf16_packed_elems gives the element count (n rounded up to 64, times k_pad). */
size_t cn_cpu_bf16_packed_elems(int n, int k_pad);
void cn_cpu_bf16_pack(const float *w, int n, int k, int k_pad, uint16_t *out);
/* fp32 row -> bf16 (nearest even), zero-padded to k_pad. */
void cn_cpu_to_bf16(const float *x, int k, int k_pad, uint16_t *o);
/* C[m, n] (+)= A[m, k_pad] (bf16) · Wᵀ with W packed (starting at a 64-row group), fp32 accumulate,
 * single-threaded. */
void cn_cpu_gemm_bf16(int m, int n, int k_pad, const uint16_t *a, const uint16_t *w, float *c, int ldc,
                      float alpha, bool accumulate);

#endif

/* The GEMM shapes of the models, shared by bench_gemm.c and bench_gemm_onednn.c: m, n, k of
 * canary-180m-flash's encoder at batch 8 x 10 s (1000 frames, d 512, ff 2048), canary-1b-flash's
 * encoder (d 1024, ff 4096), and decoder steps at batch 1 and 8 (d 1024, ff 4096, vocabulary 5248). */
#ifndef CN_BENCH_GEMM_SHAPES_H
#define CN_BENCH_GEMM_SHAPES_H

#include <stdlib.h>

static const int gemm_shapes[][3] = {{1000, 2048, 512}, {1000, 512, 2048}, {1000, 1536, 512},
                                     {1000, 4096, 1024}, {1000, 1024, 4096}, {1, 4096, 1024},
                                     {8, 4096, 1024},    {8, 1024, 4096},    {8, 5248, 1024}};
#define N_GEMM_SHAPES (sizeof gemm_shapes / sizeof gemm_shapes[0])

static inline float *gemm_random(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

#endif

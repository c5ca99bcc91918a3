/* GEMM kernel throughput of the CPU backend, single-threaded, on the shapes the models use:
 * fp32 (OpenBLAS or the small-M streaming kernel, whichever cn_cpu_sgemm_nt picks) against the
 * packed AVX512-BF16 kernel. Reports the best of `reps` runs (the least disturbed by other load).
 *
 *   build/<cfg>/bench/bench_gemm [reps]
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "gemm_shapes.h"
#include "nn/cpu/cpu_internal.h"

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    /* m, n, k: 180m-flash encoder at batch 8 x 10 s (1000 frames, d 512, ff 2048),
     * 1b-flash encoder (d 1024, ff 4096), decoder steps at batch 1 and 8 (d 1024, ff 4096, vocab). */
    cn_cpu_gemm_init();
    printf("GEMM %s, bf16 kernel %s, 1 thread, best of %d\n", cn_cpu_gemm_name(),
           cn_cpu_has_bf16() ? "avx512bf16" : "portable", reps);
    printf("%6s %6s %6s  %12s %12s  %s\n", "m", "n", "k", "fp32 GFLOP/s", "bf16 GFLOP/s", "bf16/fp32");
    for (size_t s = 0; s < N_GEMM_SHAPES; s++) {
        int m = gemm_shapes[s][0], n = gemm_shapes[s][1], k = gemm_shapes[s][2], kp = (k + 31) / 32 * 32;
        float *a = gemm_random((size_t)m * k), *w = gemm_random((size_t)n * k), *c = gemm_random((size_t)m * n);
        uint16_t *ab = malloc((size_t)m * kp * 2), *wb = malloc(cn_cpu_bf16_packed_elems(n, kp) * 2);
        for (int i = 0; i < m; i++)
            cn_cpu_to_bf16(a + (size_t)i * k, k, kp, ab + (size_t)i * kp);
        cn_cpu_bf16_pack(w, n, k, kp, wb);
        double flop = 2.0 * m * n * k, best32 = 1e30, best16 = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = cn_now_s();
            cn_cpu_sgemm_nt(m, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
            double t1 = cn_now_s();
            cn_cpu_gemm_bf16(m, n, kp, ab, wb, c, n, 1.0f, false);
            double t2 = cn_now_s();
            best32 = t1 - t0 < best32 ? t1 - t0 : best32;
            best16 = t2 - t1 < best16 ? t2 - t1 : best16;
        }
        printf("%6d %6d %6d  %12.1f %12.1f  %.2fx\n", m, n, k, flop / best32 / 1e9, flop / best16 / 1e9,
               best32 / best16);
        free(a), free(w), free(c), free(ab), free(wb);
    }
    return 0;
}

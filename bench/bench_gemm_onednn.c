/* The measurement behind the CPU backend's GEMM choice (docs/BENCHMARKS.md): oneDNN's sgemm and its
 * bf16 matmul primitive (weights reordered once into oneDNN's preferred layout, as a backend would
 * at load) against our kernels (OpenBLAS fp32 / small-M streaming, packed AVX512-BF16), on the
 * model's shapes, single-threaded (run with OMP_NUM_THREADS=1: Debian's oneDNN uses OpenMP).
 * Built only when libdnnl-dev is installed (not a dependency of canary-stt).
 *
 *   OMP_NUM_THREADS=1 build/<cfg>/bench/bench_gemm_onednn [reps]
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "gemm_shapes.h"
#include "nn/cpu/cpu_internal.h"

#define CHECK(x)                                                                                                       \
    do {                                                                                                               \
        dnnl_status_t st_ = (x);                                                                                       \
        if (st_ != dnnl_success) {                                                                                     \
            fprintf(stderr, "%s failed: %d\n", #x, (int)st_);                                                          \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)


/* C[m,n] = A[m,k] (bf16) x W[n,k]^T (bf16) with a matmul primitive; returns the best time. */
static double onednn_bf16(dnnl_engine_t eng, dnnl_stream_t strm, int m, int n, int k, const uint16_t *a,
                          const uint16_t *w, float *c, int reps) {
    dnnl_memory_desc_t src_md, wei_plain, wei_any, dst_md;
    dnnl_dims_t sd = {m, k}, wd = {k, n}, dd = {m, n};
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_bf16, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_plain, 2, wd, dnnl_bf16, dnnl_ba)); /* W[n,k] row-major = [k,n] 'ba' */
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 2, wd, dnnl_bf16, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t mmd;
    CHECK(dnnl_matmul_desc_init(&mmd, &src_md, &wei_any, NULL, &dst_md));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &mmd, NULL, eng, NULL));
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t src, wp, wr, dst;
    CHECK(dnnl_memory_create(&src, &src_md, eng, (void *)a));
    CHECK(dnnl_memory_create(&wp, &wei_plain, eng, (void *)w));
    CHECK(dnnl_memory_create(&wr, wq, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&dst, &dst_md, eng, c));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wei_plain, eng, wq, eng, NULL));
    dnnl_primitive_t reorder, mm;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, wp}, {DNNL_ARG_TO, wr}};
    CHECK(dnnl_primitive_execute(reorder, strm, 2, rargs));
    CHECK(dnnl_stream_wait(strm));
    CHECK(dnnl_primitive_create(&mm, pd));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wr}, {DNNL_ARG_DST, dst}};
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first run JIT-compiles */
        double t0 = cn_now_s();
        CHECK(dnnl_primitive_execute(mm, strm, 3, args));
        CHECK(dnnl_stream_wait(strm));
        double t = cn_now_s() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    dnnl_primitive_destroy(mm);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(src), dnnl_memory_destroy(wp), dnnl_memory_destroy(wr), dnnl_memory_destroy(dst);
    return best;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    cn_cpu_gemm_init();
    const dnnl_version_t *v = dnnl_version();
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    printf("GFLOP/s, 1 thread, best of %d; ours: %s + packed %s bf16; oneDNN %d.%d.%d (%s)\n", reps,
           cn_cpu_gemm_name(), cn_cpu_has_bf16() ? "avx512bf16" : "portable", v->major, v->minor, v->patch,
           v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
    printf("%6s %6s %6s  %10s %10s  %10s %10s\n", "m", "n", "k", "fp32 ours", "fp32 dnnl", "bf16 ours", "bf16 dnnl");
    for (size_t s = 0; s < N_GEMM_SHAPES; s++) {
        int m = gemm_shapes[s][0], n = gemm_shapes[s][1], k = gemm_shapes[s][2], kp = (k + 31) / 32 * 32;
        float *a = gemm_random((size_t)m * k), *w = gemm_random((size_t)n * k), *c = gemm_random((size_t)m * n);
        uint16_t *ab = malloc((size_t)m * kp * 2), *wb = malloc(cn_cpu_bf16_packed_elems(n, kp) * 2);
        uint16_t *a16 = malloc((size_t)m * k * 2), *w16 = malloc((size_t)n * k * 2);
        for (int i = 0; i < m; i++)
            cn_cpu_to_bf16(a + (size_t)i * k, k, kp, ab + (size_t)i * kp);
        for (size_t i = 0; i < (size_t)m * k; i++)
            a16[i] = cn_f32_to_bf16(a[i]);
        for (size_t i = 0; i < (size_t)n * k; i++)
            w16[i] = cn_f32_to_bf16(w[i]);
        cn_cpu_bf16_pack(w, n, k, kp, wb);
        double flop = 2.0 * m * n * k, ours32 = 1e30, dnnl32 = 1e30, ours16 = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = cn_now_s();
            cn_cpu_sgemm_nt(m, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
            double t1 = cn_now_s();
            CHECK(dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, k, w, k, 0.0f, c, n));
            double t2 = cn_now_s();
            cn_cpu_gemm_bf16(m, n, kp, ab, wb, c, n, 1.0f, false);
            double t3 = cn_now_s();
            if (r == 0)
                continue;
            ours32 = t1 - t0 < ours32 ? t1 - t0 : ours32;
            dnnl32 = t2 - t1 < dnnl32 ? t2 - t1 : dnnl32;
            ours16 = t3 - t2 < ours16 ? t3 - t2 : ours16;
        }
        double dnnl16 = onednn_bf16(eng, strm, m, n, k, a16, w16, c, reps);
        printf("%6d %6d %6d  %10.1f %10.1f  %10.1f %10.1f\n", m, n, k, flop / ours32 / 1e9, flop / dnnl32 / 1e9,
               flop / ours16 / 1e9, flop / dnnl16 / 1e9);
        free(a), free(w), free(c), free(ab), free(wb), free(a16), free(w16);
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    return 0;
}

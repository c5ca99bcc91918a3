#include "hw/check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda_plugin.h"

enum { M = 192, N = 160, K = 256 };

/* Deterministic inputs in [-1, 1) (an LCG: the same on every machine). */
static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((double)(seed >> 8) / (double)(1u << 24) * 2.0 - 1.0);
    }
}

cn_status cn_hw_check_gpu(const cn_hw_info *hw, int gpu, uint64_t mem_bytes, cn_hw_check_result *r, cn_error *err) {
    memset(r, 0, sizeof *r);
    if (gpu < 0 || gpu >= hw->n_gpus)
        return cn_error_set(err, CANARY_EINVAL, "no GPU %d (%d detected)", gpu, hw->n_gpus);
    snprintf(r->device, sizeof r->device, "cuda:%d", hw->gpus[gpu].index);
    const cn_cuda_plugin *plugin;
    if (cn_cuda_plugin_get(&plugin, err) != CANARY_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", err->msg);
        return err->code;
    }
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N), *c = malloc(sizeof(float) * M * N);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    fill(a, (size_t)M * K, 1);
    fill(b, (size_t)K * N, 2);
    for (size_t i = 0; i < (size_t)M * N; i++)
        c[i] = NAN; /* a kernel that writes nothing must not pass */
    char msg[256] = "";
    cn_status st = CANARY_OK;
    if (plugin->selftest(hw->gpus[gpu].index, (size_t)mem_bytes, a, b, c, M, N, K, msg, sizeof msg) != 0) {
        snprintf(r->msg, sizeof r->msg, "%s", msg);
        st = cn_error_set(err, CANARY_EDEVICE, "%s: %s", r->device, msg);
        goto out;
    }
    /* CPU reference in double; fp32 accumulation may differ by about k * eps * sum|a||b| */
    r->ok = true;
    double worst_ratio = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = 0, mag = 0;
            for (int l = 0; l < K; l++) {
                ref += (double)a[i * K + l] * b[l * N + j];
                mag += fabs((double)a[i * K + l] * b[l * N + j]);
            }
            double tol = 4.0 * K * FLT_EPSILON * mag + 1e-30;
            double e = fabs((double)c[i * N + j] - ref);
            if (!(e <= tol)) { /* also catches NaN */
                if (r->ok)
                    snprintf(r->msg, sizeof r->msg, "GEMM mismatch at C[%d][%d]: GPU %.9g, CPU %.9g (tolerance %.3g)", i,
                             j, (double)c[i * N + j], ref, tol);
                r->ok = false;
            }
            if (e / tol > worst_ratio || isnan(e)) {
                worst_ratio = isnan(e) ? INFINITY : e / tol;
                r->max_err = e;
                r->tolerance = tol;
            }
        }
    if (r->ok)
        snprintf(r->msg, sizeof r->msg,
                 "memory pattern over %.0f MiB and a %dx%dx%d fp32 GEMM match the CPU (worst error %.2g, %.0f%% "
                 "of its tolerance)",
                 (double)mem_bytes / 1048576.0, M, N, K, r->max_err, 100.0 * worst_ratio);
out:
    free(a);
    free(b);
    free(c);
    return st;
}

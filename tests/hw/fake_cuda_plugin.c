/* A stand-in for libcanary_cuda.so with the same ABI, computing on the CPU, so that the GPU paths
 * of detection, the profile and `hwinfo --check` run on machines without a GPU.
 *   CANARY_FAKE_GPUS=N         number of devices (default 2: two "RTX 3080"-like cards)
 *   CANARY_FAKE_GPU_BAD=i      device i returns a wrong GEMM element
 *   CANARY_FAKE_GPU_FAIL=i     device i fails its self-test like a launch error */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda_plugin_abi.h"

#define EXPORT __attribute__((visibility("default")))

static int env_int(const char *name, int def) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

EXPORT int cn_cuda_abi_version(void);
EXPORT int cn_cuda_abi_version(void) { return CN_CUDA_PLUGIN_ABI; }

EXPORT void cn_cuda_versions(int *runtime, int *driver);
EXPORT void cn_cuda_versions(int *runtime, int *driver) {
    *runtime = 13000;
    *driver = 13000;
}

EXPORT int cn_cuda_enumerate(cn_cuda_device_info *out, int cap, char *msg, size_t msg_len);
EXPORT int cn_cuda_enumerate(cn_cuda_device_info *out, int cap, char *msg, size_t msg_len) {
    int n = env_int("CANARY_FAKE_GPUS", 2);
    if (n < 0) {
        snprintf(msg, msg_len, "simulated driver failure");
        return -1;
    }
    for (int i = 0; i < n && i < cap; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].index = i;
        snprintf(out[i].name, sizeof out[i].name, "Fake RTX 3080");
        out[i].cc_major = 8;
        out[i].cc_minor = 6;
        out[i].total_mem = 10240ull << 20;
        out[i].free_mem = 9800ull << 20;
        snprintf(out[i].uuid, sizeof out[i].uuid, "GPU-0000000%d-0000-0000-0000-000000000000", i);
    }
    return n < cap ? n : cap;
}

EXPORT int cn_cuda_selftest(int device, size_t mem_bytes, const float *a, const float *b, float *c, int m, int n,
                            int k, char *msg, size_t msg_len);
EXPORT int cn_cuda_selftest(int device, size_t mem_bytes, const float *a, const float *b, float *c, int m, int n,
                            int k, char *msg, size_t msg_len) {
    if (env_int("CANARY_FAKE_GPU_FAIL", -1) == device) {
        snprintf(msg, msg_len, "launching the memory-pattern kernel: unspecified launch failure");
        return -1;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int l = 0; l < k; l++)
                s += a[i * k + l] * b[l * n + j];
            c[i * n + j] = s;
        }
    if (env_int("CANARY_FAKE_GPU_BAD", -1) == device)
        c[7] += 0.5f;
    return 0;
}

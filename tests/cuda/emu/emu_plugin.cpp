// The plugin entry points of src/nn/cuda/plugin.cu for the emulated device (one "GPU", sm90).
#include <stdio.h>
#include <string.h>

#include "emu_cuda.h"
extern "C" {
#include "nn/cuda_plugin_abi.h"
}

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT int cn_cuda_abi_version(void) { return CN_CUDA_PLUGIN_ABI; }
EXPORT void cn_cuda_versions(int *runtime, int *driver) { *runtime = *driver = 13000; }
EXPORT int cn_cuda_enumerate(cn_cuda_device_info *out, int cap, char *msg, size_t msg_len) {
    (void)msg, (void)msg_len;
    int n = 0;
    cudaGetDeviceCount(&n);
    for (int i = 0; i < n && i < cap; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].index = i;
        snprintf(out[i].name, sizeof out[i].name, "CPU emulation of the CUDA backend");
        out[i].cc_major = 9;
        out[i].total_mem = out[i].free_mem = (size_t)16 << 30;
        snprintf(out[i].uuid, sizeof out[i].uuid, "GPU-00000000-0000-0000-0000-00000000e1e%c", (char)('1' + i));
    }
    return n < cap ? n : cap;
}
// hwinfo --check on the emulation: no memory to test; the GEMM computed directly.
EXPORT int cn_cuda_selftest(int device, size_t mem_bytes, const float *a, const float *b, float *c, int m, int n, int k,
                            char *msg, size_t msg_len) {
    (void)device, (void)mem_bytes, (void)msg, (void)msg_len;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int p = 0; p < k; p++)
                s += a[(size_t)i * k + p] * b[(size_t)p * n + j];
            c[(size_t)i * n + j] = s;
        }
    return 0;
}

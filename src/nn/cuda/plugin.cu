// CUDA backend plugin: device enumeration for now; the backend kernels arrive with the CUDA issue.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "nn/cuda_plugin_abi.h"
}

// A trivial kernel so that the fat binary really contains device code for every architecture.
__global__ void cn_cuda_fill(float *x, float v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}

extern "C" __attribute__((visibility("default"))) int cn_cuda_abi_version(void) { return CN_CUDA_PLUGIN_ABI; }

extern "C" __attribute__((visibility("default"))) void cn_cuda_versions(int *runtime, int *driver) {
    *runtime = 0;
    *driver = 0;
    cudaRuntimeGetVersion(runtime);
    cudaDriverGetVersion(driver);
}

extern "C" __attribute__((visibility("default"))) int cn_cuda_enumerate(cn_cuda_device_info *out, int cap,
                                                                          char *msg, size_t msg_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(msg, msg_len, "cudaGetDeviceCount failed: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    int k = 0;
    for (int i = 0; i < n && k < cap; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        cn_cuda_device_info *d = &out[k++];
        memset(d, 0, sizeof *d);
        d->index = i;
        snprintf(d->name, sizeof d->name, "%s", p.name);
        d->cc_major = p.major;
        d->cc_minor = p.minor;
        d->total_mem = p.totalGlobalMem;
        d->integrated = p.integrated;
        const unsigned char *u = (const unsigned char *)p.uuid.bytes;
        snprintf(d->uuid, sizeof d->uuid, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
        size_t fr = 0, tot = 0;
        if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess) d->free_mem = fr;
    }
    return k;
}

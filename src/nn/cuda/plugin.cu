// CUDA backend plugin: device enumeration for now; the backend kernels arrive with the CUDA issue.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>
#include <stdlib.h>
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
        int drv = 0;
        cudaDriverGetVersion(&drv);
        if (drv == 0)
            snprintf(msg, msg_len, "no NVIDIA driver found (libcuda.so.1)");
        else
            snprintf(msg, msg_len, "cudaGetDeviceCount failed: %s (driver %d.%d)", cudaGetErrorString(e), drv / 1000,
                     drv % 1000 / 10);
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

// Self-test (hwinfo --check): a memory pattern written by a kernel and read back, and one strict
// fp32 cuBLAS GEMM whose result the caller compares with the CPU.
__global__ void cn_cuda_pattern(unsigned *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride) x[i] = (unsigned)(i * 2654435761u) ^ 0x5bd1e995u;
}

#define CN_CUDA_CHECK(expr, what)                                                                     \
    do {                                                                                              \
        cudaError_t e_ = (expr);                                                                      \
        if (e_ != cudaSuccess) {                                                                      \
            snprintf(msg, msg_len, "%s: %s", what, cudaGetErrorString(e_));                           \
            cudaGetLastError();                                                                       \
            goto out;                                                                                 \
        }                                                                                             \
    } while (0)

extern "C" __attribute__((visibility("default"))) int cn_cuda_selftest(int device, size_t mem_bytes, const float *a,
                                                                         const float *b, float *c, int m, int n, int k,
                                                                         char *msg, size_t msg_len) {
    int rc = -1;
    unsigned *pattern = NULL, *host = NULL;
    float *da = NULL, *db = NULL, *dc = NULL;
    cublasHandle_t h = NULL;
    size_t words = mem_bytes / sizeof(unsigned), chunk = 1u << 20;
    CN_CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice");
    if (words) {
        CN_CUDA_CHECK(cudaMalloc(&pattern, words * sizeof(unsigned)), "allocating the memory-test buffer");
        cn_cuda_pattern<<<1024, 256>>>(pattern, words);
        CN_CUDA_CHECK(cudaGetLastError(), "launching the memory-pattern kernel");
        CN_CUDA_CHECK(cudaDeviceSynchronize(), "running the memory-pattern kernel");
        host = (unsigned *)malloc(chunk * sizeof(unsigned));
        if (!host) {
            snprintf(msg, msg_len, "out of host memory");
            goto out;
        }
        for (size_t off = 0; off < words; off += chunk) {
            size_t len = words - off < chunk ? words - off : chunk;
            CN_CUDA_CHECK(cudaMemcpy(host, pattern + off, len * sizeof(unsigned), cudaMemcpyDeviceToHost),
                          "reading the memory-test buffer");
            for (size_t i = 0; i < len; i++) {
                unsigned want = (unsigned)((off + i) * 2654435761u) ^ 0x5bd1e995u;
                if (host[i] != want) {
                    snprintf(msg, msg_len, "memory test: word %zu reads 0x%08x, expected 0x%08x", off + i, host[i], want);
                    goto out;
                }
            }
        }
    }
    CN_CUDA_CHECK(cudaMalloc(&da, sizeof(float) * (size_t)m * k), "allocating A");
    CN_CUDA_CHECK(cudaMalloc(&db, sizeof(float) * (size_t)k * n), "allocating B");
    CN_CUDA_CHECK(cudaMalloc(&dc, sizeof(float) * (size_t)m * n), "allocating C");
    CN_CUDA_CHECK(cudaMemcpy(da, a, sizeof(float) * (size_t)m * k, cudaMemcpyHostToDevice), "copying A");
    CN_CUDA_CHECK(cudaMemcpy(db, b, sizeof(float) * (size_t)k * n, cudaMemcpyHostToDevice), "copying B");
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        snprintf(msg, msg_len, "cublasCreate failed");
        goto out;
    }
    {
        // strict fp32: TF32 would differ from the CPU by ~1e-3 and hide nothing we want to test
        cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH);
        const float one = 1.0f, zero = 0.0f;
        // row-major C = A B is column-major C^T = B^T A^T
        if (cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, db, n, da, k, &zero, dc, n) !=
            CUBLAS_STATUS_SUCCESS) {
            snprintf(msg, msg_len, "cublasSgemm failed");
            goto out;
        }
    }
    CN_CUDA_CHECK(cudaMemcpy(c, dc, sizeof(float) * (size_t)m * n, cudaMemcpyDeviceToHost), "copying C");
    rc = 0;
out:
    if (h) cublasDestroy(h);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    cudaFree(pattern);
    free(host);
    return rc;
}

/* The C ABI between the main program and the CUDA backend plugin (libcanary_cuda.so).
 * Bump CN_CUDA_PLUGIN_ABI when a function's signature changes: the loader refuses a mismatch. */
#ifndef CN_NN_CUDA_PLUGIN_ABI_H
#define CN_NN_CUDA_PLUGIN_ABI_H

#include <stddef.h>

/* Declared in nn/backend.h and base/error.h; the ABI needs only the names (plain C types cross). */
typedef struct cn_backend cn_backend;
typedef struct cn_error cn_error;

#define CN_CUDA_PLUGIN_ABI 6 /* 4: cn_backend_ops.capture_begin/capture_end, ffn; 5: conv2d_s2_pair;
                              * 6: cn_mel_desc.own_padding */

typedef struct cn_cuda_device_info {
    int index;
    char name[256];
    int cc_major, cc_minor;
    size_t total_mem, free_mem;
    char uuid[48];          /* "GPU-" + 36 characters: 40 + NUL (ABI 1 had 40 and lost the last digit) */
    int integrated; /* shares memory with the CPU (Jetson/Tegra) */
} cn_cuda_device_info;

/* Exported by the plugin (extern "C"). */
typedef int (*cn_cuda_abi_version_fn)(void);
/* Fills up to `cap` devices; returns the count, or -1 with a message in msg (e.g. no driver). */
typedef int (*cn_cuda_enumerate_fn)(cn_cuda_device_info *out, int cap, char *msg, size_t msg_len);
/* Runtime and driver versions as CUDA encodes them (13000 = 13.0); 0 when unknown. */
typedef void (*cn_cuda_versions_fn)(int *runtime, int *driver);
/* Hardware self-test on one device (ABI 2): fills `mem_bytes` of device memory with a pattern by a
 * kernel and verifies it on the host, then computes c = a * b (row-major fp32, m x k times k x n)
 * with cuBLAS in strict fp32 (no TF32) for the caller to compare with its CPU result. Returns 0,
 * or -1 with a message (allocation, launch or pattern failure). */
typedef int (*cn_cuda_selftest_fn)(int device, size_t mem_bytes, const float *a, const float *b, float *c, int m,
                                   int n, int k, char *msg, size_t msg_len);
/* The CUDA implementation of nn/backend.h on one device. `prec` is the math mode of the
 * backend's own GEMMs (attention scores and values): CN_PREC_F32 keeps them exact fp32, any other
 * value allows TF32 on sm80+. Linear layers take their precision from linear_create as on the CPU.
 * Fails with CANARY_EDEVICE and the CUDA reason (no such device, out of memory, driver too old). */
/* `prec` is a cn_precision; the result a cn_status (CANARY_OK = 0). */
typedef int (*cn_cuda_backend_create_fn)(int device, int prec, cn_backend **out, cn_error *err);

#endif

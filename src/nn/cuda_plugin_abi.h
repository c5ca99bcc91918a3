/* The C ABI between the main program and the CUDA backend plugin (libcanary_cuda.so).
 * Bump CN_CUDA_PLUGIN_ABI when a function's signature changes: the loader refuses a mismatch. */
#ifndef CN_NN_CUDA_PLUGIN_ABI_H
#define CN_NN_CUDA_PLUGIN_ABI_H

#include <stddef.h>

#define CN_CUDA_PLUGIN_ABI 1

typedef struct cn_cuda_device_info {
    int index;
    char name[256];
    int cc_major, cc_minor;
    size_t total_mem, free_mem;
    char uuid[40];
    int integrated; /* shares memory with the CPU (Jetson/Tegra) */
} cn_cuda_device_info;

/* Exported by the plugin (extern "C"). */
typedef int (*cn_cuda_abi_version_fn)(void);
/* Fills up to `cap` devices; returns the count, or -1 with a message in msg (e.g. no driver). */
typedef int (*cn_cuda_enumerate_fn)(cn_cuda_device_info *out, int cap, char *msg, size_t msg_len);
/* Runtime and driver versions as CUDA encodes them (13000 = 13.0); 0 when unknown. */
typedef void (*cn_cuda_versions_fn)(int *runtime, int *driver);

#endif

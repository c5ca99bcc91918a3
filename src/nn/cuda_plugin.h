/* Finds and loads the CUDA backend plugin at run time. The program never links CUDA: when the
 * plugin, the CUDA libraries or a GPU are missing, callers get a reason to log and use the CPU. */
#ifndef CN_NN_CUDA_PLUGIN_H
#define CN_NN_CUDA_PLUGIN_H

#include <stdbool.h>

#include "base/error.h"
#include "nn/backend.h"
#include "nn/cuda_plugin_abi.h"

typedef struct cn_cuda_plugin {
    void *handle;
    char path[512];
    cn_cuda_enumerate_fn enumerate;
    cn_cuda_versions_fn versions;
    cn_cuda_selftest_fn selftest;
    cn_cuda_backend_create_fn backend_create; /* NULL in a plugin without the backend (test stand-ins) */
} cn_cuda_plugin;

/* Loads the plugin once per process (thread-safe). Search order: $CANARY_CUDA_PLUGIN, the
 * directory of the running executable and its ../lib, the build tree's lib/. On failure returns
 * CANARY_EDEVICE with the reason (not found, missing libcudart, ABI mismatch). */
cn_status cn_cuda_plugin_get(const cn_cuda_plugin **out, cn_error *err);

/* The CUDA backend on GPU `device` (see cn_cuda_backend_create_fn for `prec`). Fails with
 * CANARY_EDEVICE and a reason to log before falling back to the CPU: no plugin, a plugin without
 * the backend, no driver, no such device, compute capability below 7.5. */
cn_status cn_cuda_backend_open(int device, cn_precision prec, cn_backend **out, cn_error *err);

/* The backend for an `engine.device` value: "cpu"; "cuda" or "cuda:N[,M...]" (the first listed
 * GPU; an error when it cannot be used, since it was asked for); "auto" (GPU 0 when usable, else
 * the CPU, with the reason the GPU was passed over in `fallback`, "" when none). `prec` applies to
 * the CUDA backend; for the CPU the caller picks the layers' precision as before. */
cn_status cn_backend_open(const char *device, cn_precision prec, cn_backend **out, char *fallback,
                          size_t fallback_len, cn_error *err);

#endif

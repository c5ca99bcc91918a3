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
    if (cap < 1)
        return 0;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "CPU emulation of the CUDA backend");
    out->cc_major = 9;
    out->total_mem = out->free_mem = (size_t)16 << 30;
    snprintf(out->uuid, sizeof out->uuid, "GPU-00000000-0000-0000-0000-00000000e1e1");
    return 1;
}

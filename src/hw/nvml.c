#include "hw/nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Hand-declared subset of nvml.h (stable C ABI since NVML 2.x; the _v2 entry points exist since
 * driver 325). Return value 0 is NVML_SUCCESS. */
typedef struct nvml_device_st *nvml_device;
typedef struct {
    unsigned int gpu, memory;
} nvml_utilization;
enum { NVML_TEMPERATURE_GPU = 0 };

typedef int (*nvml_init_fn)(void);
typedef int (*nvml_shutdown_fn)(void);
typedef int (*nvml_count_fn)(unsigned int *);
typedef int (*nvml_handle_fn)(unsigned int, nvml_device *);
typedef int (*nvml_uuid_fn)(nvml_device, char *, unsigned int);
typedef int (*nvml_util_fn)(nvml_device, nvml_utilization *);
typedef int (*nvml_temp_fn)(nvml_device, int, unsigned int *);
typedef int (*nvml_power_fn)(nvml_device, unsigned int *);

void cn_nvml_query(cn_hw_info *hw) {
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(hw->nvml_note, sizeof hw->nvml_note, "libnvidia-ml.so.1 not found");
        return;
    }
    nvml_init_fn init = (nvml_init_fn)dlsym(h, "nvmlInit_v2");
    nvml_shutdown_fn shutdown = (nvml_shutdown_fn)dlsym(h, "nvmlShutdown");
    nvml_count_fn count = (nvml_count_fn)dlsym(h, "nvmlDeviceGetCount_v2");
    nvml_handle_fn handle = (nvml_handle_fn)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    nvml_uuid_fn uuid = (nvml_uuid_fn)dlsym(h, "nvmlDeviceGetUUID");
    nvml_util_fn util = (nvml_util_fn)dlsym(h, "nvmlDeviceGetUtilizationRates");
    nvml_temp_fn temp = (nvml_temp_fn)dlsym(h, "nvmlDeviceGetTemperature");
    nvml_power_fn power = (nvml_power_fn)dlsym(h, "nvmlDeviceGetPowerUsage");
    if (!init || !shutdown || !count || !handle || !uuid) {
        snprintf(hw->nvml_note, sizeof hw->nvml_note, "libnvidia-ml.so.1 lacks the NVML v2 entry points");
        dlclose(h);
        return;
    }
    int rc = init();
    if (rc != 0) {
        snprintf(hw->nvml_note, sizeof hw->nvml_note, "nvmlInit_v2 failed (NVML error %d)", rc);
        dlclose(h);
        return;
    }
    unsigned int n = 0;
    int matched = 0;
    if (count(&n) == 0) {
        for (unsigned int i = 0; i < n; i++) {
            nvml_device dev;
            char id[96] = "";
            if (handle(i, &dev) != 0 || uuid(dev, id, sizeof id) != 0)
                continue;
            for (int g = 0; g < hw->n_gpus; g++) {
                cn_hw_gpu *gpu = &hw->gpus[g];
                if (strcmp(gpu->uuid, id) != 0)
                    continue;
                gpu->nvml = true;
                matched++;
                nvml_utilization u;
                unsigned int v;
                if (util && util(dev, &u) == 0)
                    gpu->util_pct = (int)u.gpu;
                if (temp && temp(dev, NVML_TEMPERATURE_GPU, &v) == 0)
                    gpu->temp_c = (int)v;
                if (power && power(dev, &v) == 0)
                    gpu->power_w = v / 1000.0;
            }
        }
    }
    snprintf(hw->nvml_note, sizeof hw->nvml_note, "NVML: %u device(s), %d matched to CUDA devices", n, matched);
    shutdown();
    dlclose(h);
}

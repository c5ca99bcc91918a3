/* The device self-test behind `hwinfo --check`: on every GPU, a memory pattern test and one strict
 * fp32 GEMM compared with the CPU. (The model-level check, a tiny model's batch on every device
 * against the CPU engine, needs the engine's device selection: see docs/HARDWARE.md.) */
#ifndef CN_HW_CHECK_H
#define CN_HW_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "hw/hw.h"

typedef struct cn_hw_check_result {
    char device[32];        /* "cuda:0" */
    bool ok;
    double max_err;         /* largest |gpu - cpu| over C */
    double tolerance;       /* allowed at that element: 4 k eps sum|a||b| */
    char msg[256];          /* what failed, or a one-line summary */
} cn_hw_check_result;

/* Runs the self-test on hw->gpus[gpu]. CANARY_OK when the test ran (see r->ok); CANARY_EDEVICE
 * when the plugin is missing or the device failed (r->ok false, message in both). */
cn_status cn_hw_check_gpu(const cn_hw_info *hw, int gpu, uint64_t mem_bytes, cn_hw_check_result *r, cn_error *err);

#endif

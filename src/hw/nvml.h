/* NVML (libnvidia-ml.so.1), loaded at run time when present: live utilization, temperature and
 * power per GPU, matched to CUDA devices by UUID (CUDA and NVML may order devices differently). */
#ifndef CN_HW_NVML_H
#define CN_HW_NVML_H

#include "hw/hw.h"

/* Fills nvml/util_pct/temp_c/power_w of hw->gpus[] and hw->nvml_note. Never fails. */
void cn_nvml_query(cn_hw_info *hw);

#endif

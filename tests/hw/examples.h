/* The four worked examples of docs/HARDWARE.md as injected hardware descriptions. */
#ifndef CN_TEST_HW_EXAMPLES_H
#define CN_TEST_HW_EXAMPLES_H

#include <string.h>

#include "hw/hw.h"

#define GiB (1024ull * 1024ull * 1024ull)
#define MiB_ (1024ull * 1024ull)

static inline void gpu(cn_hw_info *hw, const char *name, int major, int minor, uint64_t total, uint64_t free_,
                       bool integrated) {
    cn_hw_gpu *g = &hw->gpus[hw->n_gpus];
    memset(g, 0, sizeof *g);
    g->index = hw->n_gpus;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->cc_major = major;
    g->cc_minor = minor;
    g->total_mem = total;
    g->free_mem = free_;
    snprintf(g->uuid, sizeof g->uuid, "GPU-0000000%d-0000-0000-0000-000000000000", hw->n_gpus);
    g->integrated = integrated;
    g->util_pct = g->temp_c = -1;
    g->power_w = -1;
    hw->n_gpus++;
}

/* Jetson Orin Nano 8 GB: 6x Cortex-A78AE, 7.4 GiB unified memory of which 5.5 GiB free, sm87. */
static inline void example_orin_nano(cn_hw_info *hw) {
    memset(hw, 0, sizeof *hw);
    strcpy(hw->arch, "aarch64");
    strcpy(hw->cpu_model, "ARMv8 Processor rev 1 (v8l)");
    hw->logical_cores = hw->physical_cores = 6;
    hw->neon = true;
    hw->mem_total = 7620 * MiB_;
    hw->mem_available = 5632 * MiB_;
    hw->jetson = true;
    strcpy(hw->jetson_model, "NVIDIA Jetson Orin Nano Developer Kit");
    gpu(hw, "Orin", 8, 7, 7620 * MiB_, 5632 * MiB_, true);
}

/* Xeon Silver 4210R (10 cores / 20 threads, AVX-512 without BF16), 64 GiB, 2x RTX 3080 10 GB. */
static inline void example_xeon_2x3080(cn_hw_info *hw) {
    memset(hw, 0, sizeof *hw);
    strcpy(hw->arch, "x86_64");
    strcpy(hw->cpu_model, "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz");
    hw->logical_cores = 20;
    hw->physical_cores = 10;
    hw->avx2 = hw->fma = hw->avx512f = true;
    hw->mem_total = 64 * GiB;
    hw->mem_available = 60 * GiB;
    gpu(hw, "NVIDIA GeForce RTX 3080", 8, 6, 10240 * MiB_, 9800 * MiB_, false);
    gpu(hw, "NVIDIA GeForce RTX 3080", 8, 6, 10240 * MiB_, 9800 * MiB_, false);
}

/* One H100 80 GB (sm90) in a 32-core Sapphire Rapids server with AMX. */
static inline void example_h100(cn_hw_info *hw) {
    memset(hw, 0, sizeof *hw);
    strcpy(hw->arch, "x86_64");
    strcpy(hw->cpu_model, "Intel(R) Xeon(R) Platinum 8462Y+");
    hw->logical_cores = 64;
    hw->physical_cores = 32;
    hw->avx2 = hw->fma = hw->avx512f = hw->avx512bf16 = hw->amx_bf16 = hw->amx_usable = true;
    hw->mem_total = 512 * GiB;
    hw->mem_available = 500 * GiB;
    gpu(hw, "NVIDIA H100 80GB HBM3", 9, 0, 81559 * MiB_, 80000 * MiB_, false);
}

/* A 2-core CPU-only VM with AVX2, 4 GiB RAM (3 GiB available). */
static inline void example_2core(cn_hw_info *hw) {
    memset(hw, 0, sizeof *hw);
    strcpy(hw->arch, "x86_64");
    strcpy(hw->cpu_model, "Intel(R) Xeon(R) CPU @ 2.20GHz");
    hw->logical_cores = 2;
    hw->physical_cores = 2;
    hw->avx2 = hw->fma = true;
    hw->mem_total = 4 * GiB;
    hw->mem_available = 3 * GiB;
    strcpy(hw->gpu_note, "no CUDA plugin");
}

#endif

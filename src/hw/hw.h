/* Hardware detection: what this machine (or container) offers to the engine.
 *
 * cn_hw_detect() fills a plain struct that the profile rules (profile.h) read. Everything it reads
 * lives under a root directory (normally "/": /proc, /sys, /etc) so that tests can run detection on
 * a fake tree, and the struct itself can be written by hand to describe any machine. Detection never
 * fails: whatever cannot be read is left at 0/"" and explained in the *_note fields.
 */
#ifndef CN_HW_HW_H
#define CN_HW_HW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

#define CN_HW_MAX_GPUS 16

typedef struct cn_hw_gpu {
    int index;              /* CUDA device ordinal */
    char name[256];
    int cc_major, cc_minor; /* compute capability */
    uint64_t total_mem, free_mem; /* bytes; on Jetson this is the shared system memory */
    char uuid[48];          /* "GPU-xxxxxxxx-..." as NVML prints it */
    bool integrated;        /* shares memory with the CPU (Jetson/Tegra) */
    /* NVML (only when libnvidia-ml.so.1 loaded and knows this UUID) */
    bool nvml;
    int util_pct;           /* -1 unknown */
    int temp_c;             /* -1 unknown */
    double power_w;         /* -1 unknown */
} cn_hw_gpu;

typedef struct cn_hw_info {
    /* CPU */
    char arch[16];          /* "x86_64", "aarch64" */
    char cpu_model[128];
    int logical_cores;      /* online CPUs this process may run on (affinity) */
    int physical_cores;     /* distinct (package, core) pairs among them */
    bool avx2, fma, avx512f, avx512bf16, amx_bf16;
    bool amx_usable;        /* CPU has AMX, the OS enabled tile state (XCR0) and granted permission */
    bool neon, arm_bf16;    /* aarch64 */
    /* memory */
    uint64_t mem_total, mem_available; /* bytes, /proc/meminfo */
    /* container limits (0 = none) */
    int cgroup_version;     /* 0 none found, 1, 2 */
    double cgroup_cpus;     /* CPU quota in CPUs (quota/period) */
    uint64_t cgroup_mem_limit;
    /* GPUs */
    int n_gpus;
    cn_hw_gpu gpus[CN_HW_MAX_GPUS];
    char gpu_note[256];     /* why no GPU was found, or the plugin path */
    char nvml_note[128];
    /* Jetson / Tegra */
    bool jetson;
    char jetson_model[128]; /* device-tree model or nv_tegra_release line */
} cn_hw_info;

typedef struct cn_hw_detect_opts {
    const char *root;   /* prefix for /proc, /sys, /etc; NULL = "/" */
    bool probe_cpuid;   /* ask the running CPU (cpuid, xgetbv, arch_prctl); off for fake trees */
    bool probe_gpus;    /* CUDA plugin + NVML */
} cn_hw_detect_opts;

/* Detects with opts (NULL: the real machine, everything probed). */
void cn_hw_detect(const cn_hw_detect_opts *opts, cn_hw_info *out);

/* Effective CPUs for compute: physical cores, capped by the affinity mask and the cgroup quota
 * (rounded down, at least 1). */
int cn_hw_compute_cpus(const cn_hw_info *hw);
/* Memory the process may use: MemAvailable capped by the cgroup limit. */
uint64_t cn_hw_usable_ram(const cn_hw_info *hw);

/* Parsers, exposed for tests and fuzzing (input is any text). */
void cn_hw_parse_cpuinfo(const char *text, cn_hw_info *out);
/* Returns true when MemTotal was found. */
bool cn_hw_parse_meminfo(const char *text, uint64_t *total, uint64_t *available);
/* cgroup v2 "cpu.max" ("max 100000" or "150000 100000"): CPUs, 0 when unlimited or unparsable. */
double cn_hw_parse_cpu_max(const char *text);
/* A memory limit file (v2 memory.max "max" or bytes, v1 limit_in_bytes): 0 when unlimited. */
uint64_t cn_hw_parse_mem_limit(const char *text);

/* Appends the "hardware" JSON object (no trailing newline). */
void cn_hw_info_json(const cn_hw_info *hw, cn_strbuf *sb);

#endif

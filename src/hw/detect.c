/* Hardware detection from /proc, /sys, cpuid and the CUDA plugin (see hw.h). */
#include "hw/hw.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <sys/syscall.h>
#endif

#include "base/file.h"
#include "base/log.h"
#include "hw/nvml.h"
#include "nn/cuda_plugin.h"

/* Reads root+rel into a NUL-terminated malloc'd buffer; NULL when missing. /proc and /sys files
 * report size 0, so read in a loop instead of trusting stat. */
static char *read_text(const char *root, const char *rel) {
    char path[1024];
    snprintf(path, sizeof path, "%s%s", root, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            if (cap >= (1u << 22)) /* 4 MiB is plenty for any of these files */
                break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static void trim_copy(char *dst, size_t n, const char *src, size_t len) {
    while (len && isspace((unsigned char)*src)) {
        src++;
        len--;
    }
    while (len && isspace((unsigned char)src[len - 1]))
        len--;
    if (len >= n)
        len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* "key<spaces>: value" lines. Returns a pointer to the value or NULL. */
static const char *line_value(const char *line, const char *key, size_t *vlen, const char *eol) {
    size_t kl = strlen(key);
    if ((size_t)(eol - line) < kl || strncmp(line, key, kl) != 0)
        return NULL;
    const char *p = line + kl;
    while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
    if (p >= eol || *p != ':')
        return NULL;
    p++;
    *vlen = (size_t)(eol - p);
    return p;
}

static bool has_word(const char *list, size_t len, const char *word) {
    size_t wl = strlen(word);
    const char *p = list, *end = list + len;
    while (p < end) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *s = p;
        while (p < end && !isspace((unsigned char)*p))
            p++;
        if ((size_t)(p - s) == wl && strncmp(s, word, wl) == 0)
            return true;
    }
    return false;
}

void cn_hw_parse_cpuinfo(const char *text, cn_hw_info *out) {
    int processors = 0;
    /* physical cores from "physical id" + "core id" pairs (x86 only; sysfs is preferred) */
    int pairs[1024][2];
    int n_pairs = 0, phys = -1, core = -1;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        size_t vl;
        const char *v;
        if (line_value(line, "processor", &vl, eol))
            processors++;
        else if ((v = line_value(line, "model name", &vl, eol)) && !out->cpu_model[0])
            trim_copy(out->cpu_model, sizeof out->cpu_model, v, vl);
        else if ((v = line_value(line, "Hardware", &vl, eol)) && !out->cpu_model[0])
            trim_copy(out->cpu_model, sizeof out->cpu_model, v, vl);
        else if ((v = line_value(line, "physical id", &vl, eol)))
            phys = atoi(v);
        else if ((v = line_value(line, "core id", &vl, eol)))
            core = atoi(v);
        else if ((v = line_value(line, "flags", &vl, eol))) {
            out->avx2 |= has_word(v, vl, "avx2");
            out->fma |= has_word(v, vl, "fma");
            out->avx512f |= has_word(v, vl, "avx512f");
            out->avx512bf16 |= has_word(v, vl, "avx512_bf16");
            out->amx_bf16 |= has_word(v, vl, "amx_bf16");
        } else if ((v = line_value(line, "Features", &vl, eol))) {
            out->neon |= has_word(v, vl, "asimd");
            out->arm_bf16 |= has_word(v, vl, "bf16");
        }
        if (phys >= 0 && core >= 0) {
            bool seen = false;
            for (int i = 0; i < n_pairs && !seen; i++)
                seen = pairs[i][0] == phys && pairs[i][1] == core;
            if (!seen && n_pairs < 1024) {
                pairs[n_pairs][0] = phys;
                pairs[n_pairs][1] = core;
                n_pairs++;
            }
            phys = core = -1;
        }
        line = *eol ? eol + 1 : eol;
    }
    if (!out->logical_cores)
        out->logical_cores = processors;
    if (!out->physical_cores && n_pairs)
        out->physical_cores = n_pairs;
}

bool cn_hw_parse_meminfo(const char *text, uint64_t *total, uint64_t *available) {
    bool found = false;
    *total = *available = 0;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        size_t vl;
        const char *v;
        if ((v = line_value(line, "MemTotal", &vl, eol))) {
            *total = strtoull(v, NULL, 10) * 1024;
            found = true;
        } else if ((v = line_value(line, "MemAvailable", &vl, eol))) {
            *available = strtoull(v, NULL, 10) * 1024;
        }
        line = *eol ? eol + 1 : eol;
    }
    if (found && !*available) /* kernels before 3.14 lack MemAvailable */
        *available = *total;
    return found;
}

double cn_hw_parse_cpu_max(const char *text) {
    if (!text)
        return 0;
    while (isspace((unsigned char)*text))
        text++;
    if (strncmp(text, "max", 3) == 0)
        return 0;
    char *end;
    errno = 0;
    long long quota = strtoll(text, &end, 10);
    if (errno || end == text || quota <= 0)
        return 0;
    long long period = strtoll(end, &end, 10);
    if (period <= 0)
        period = 100000;
    return (double)quota / (double)period;
}

uint64_t cn_hw_parse_mem_limit(const char *text) {
    if (!text)
        return 0;
    while (isspace((unsigned char)*text))
        text++;
    if (!isdigit((unsigned char)*text))
        return 0; /* "max" */
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    /* v1 reports "unlimited" as a page-rounded LONG_MAX */
    if (errno || v == 0 || v >= (1ull << 62))
        return 0;
    return (uint64_t)v;
}

/* "0-3,8,10-11" -> count */
static int count_cpu_list(const char *s) {
    int n = 0;
    while (s && *s && !isspace((unsigned char)*s)) {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s)
            break;
        long b = a;
        if (*end == '-')
            b = strtol(end + 1, &end, 10);
        if (b >= a && b - a < 65536)
            n += (int)(b - a + 1);
        s = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    return n;
}

static bool cpu_allowed(const cpu_set_t *set, int cpu) {
    return !set || (cpu < CPU_SETSIZE && CPU_ISSET(cpu, set));
}

/* Physical cores: distinct (package, core) among allowed CPUs from sysfs topology. */
static int sysfs_physical_cores(const char *root, const cpu_set_t *allowed) {
    char dirpath[1024];
    snprintf(dirpath, sizeof dirpath, "%s/sys/devices/system/cpu", root);
    DIR *d = opendir(dirpath);
    if (!d)
        return 0;
    static const int cap = 4096;
    long(*seen)[2] = malloc(sizeof(long[2]) * (size_t)cap);
    int n = 0;
    struct dirent *e;
    while (seen && (e = readdir(d))) {
        if (strncmp(e->d_name, "cpu", 3) != 0 || !isdigit((unsigned char)e->d_name[3]))
            continue;
        int cpu = atoi(e->d_name + 3);
        if (!cpu_allowed(allowed, cpu))
            continue;
        char rel[256];
        snprintf(rel, sizeof rel, "/sys/devices/system/cpu/%s/topology/core_id", e->d_name);
        char *core = read_text(root, rel);
        snprintf(rel, sizeof rel, "/sys/devices/system/cpu/%s/topology/physical_package_id", e->d_name);
        char *pkg = read_text(root, rel);
        if (core) {
            long c = atol(core), p = pkg ? atol(pkg) : 0;
            bool dup = false;
            for (int i = 0; i < n && !dup; i++)
                dup = seen[i][0] == p && seen[i][1] == c;
            if (!dup && n < cap) {
                seen[n][0] = p;
                seen[n][1] = c;
                n++;
            }
        }
        free(core);
        free(pkg);
    }
    closedir(d);
    free(seen);
    return n;
}

/* The cgroup path of this process for a v1 controller ("cpu") or v2 (""), from /proc/self/cgroup. */
static bool cgroup_path(const char *text, const char *controller, char *out, size_t n) {
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        const char *c1 = memchr(line, ':', (size_t)(eol - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (c2) {
            size_t cl = (size_t)(c2 - c1 - 1);
            bool match = false;
            if (!controller[0]) {
                match = cl == 0 && strncmp(line, "0:", 2) == 0;
            } else {
                /* controllers are comma-separated: "cpu,cpuacct" */
                const char *p = c1 + 1;
                while (p < c2 && !match) {
                    const char *q = memchr(p, ',', (size_t)(c2 - p));
                    if (!q)
                        q = c2;
                    match = (size_t)(q - p) == strlen(controller) && strncmp(p, controller, (size_t)(q - p)) == 0;
                    p = q + 1;
                }
            }
            if (match) {
                trim_copy(out, n, c2 + 1, (size_t)(eol - c2 - 1));
                return true;
            }
        }
        line = *eol ? eol + 1 : eol;
    }
    return false;
}

/* Walks from the process's cgroup up to the hierarchy root, keeping the tightest limit. Inside a
 * container the cgroup namespace usually makes the own path "/", which is also covered. */
static void cgroup_limits(const char *root, cn_hw_info *hw) {
    char *self = read_text(root, "/proc/self/cgroup");
    char path[512];
    if (self && cgroup_path(self, "", path, sizeof path)) {
        char *ctl = read_text(root, "/sys/fs/cgroup/cgroup.controllers");
        if (ctl) {
            hw->cgroup_version = 2;
            free(ctl);
            for (;;) {
                char rel[768];
                snprintf(rel, sizeof rel, "/sys/fs/cgroup%s/cpu.max", strcmp(path, "/") ? path : "");
                char *t = read_text(root, rel);
                double cpus = cn_hw_parse_cpu_max(t);
                free(t);
                if (cpus > 0 && (hw->cgroup_cpus == 0 || cpus < hw->cgroup_cpus))
                    hw->cgroup_cpus = cpus;
                snprintf(rel, sizeof rel, "/sys/fs/cgroup%s/memory.max", strcmp(path, "/") ? path : "");
                t = read_text(root, rel);
                uint64_t mem = cn_hw_parse_mem_limit(t);
                free(t);
                if (mem && (!hw->cgroup_mem_limit || mem < hw->cgroup_mem_limit))
                    hw->cgroup_mem_limit = mem;
                char *slash = strrchr(path, '/');
                if (!slash || strcmp(path, "/") == 0 || !path[0])
                    break;
                if (slash == path)
                    strcpy(path, "/");
                else
                    *slash = '\0';
            }
        }
    }
    if (!hw->cgroup_version && self) {
        static const char *const cpu_dirs[] = {"cpu,cpuacct", "cpu", "cpuacct,cpu"};
        for (int pass = 0; pass < 2; pass++) {
            const char *ctrl = pass == 0 ? "cpu" : "memory";
            if (!cgroup_path(self, ctrl, path, sizeof path))
                continue;
            for (size_t di = 0; di < (pass == 0 ? 3u : 1u); di++) {
                const char *dir = pass == 0 ? cpu_dirs[di] : "memory";
                /* try the own path, then the hierarchy root */
                for (int at_root = 0; at_root < 2; at_root++) {
                    const char *p = at_root || strcmp(path, "/") == 0 ? "" : path;
                    char rel[900];
                    if (pass == 0) {
                        snprintf(rel, sizeof rel, "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us", dir, p);
                        char *q = read_text(root, rel);
                        snprintf(rel, sizeof rel, "/sys/fs/cgroup/%s%s/cpu.cfs_period_us", dir, p);
                        char *per = read_text(root, rel);
                        if (q) {
                            hw->cgroup_version = 1;
                            long long quota = atoll(q), period = per ? atoll(per) : 100000;
                            if (quota > 0 && period > 0) {
                                double cpus = (double)quota / (double)period;
                                if (!hw->cgroup_cpus || cpus < hw->cgroup_cpus)
                                    hw->cgroup_cpus = cpus;
                            }
                        }
                        free(q);
                        free(per);
                    } else {
                        snprintf(rel, sizeof rel, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", p);
                        char *t = read_text(root, rel);
                        if (t) {
                            hw->cgroup_version = 1;
                            uint64_t mem = cn_hw_parse_mem_limit(t);
                            if (mem && (!hw->cgroup_mem_limit || mem < hw->cgroup_mem_limit))
                                hw->cgroup_mem_limit = mem;
                        }
                        free(t);
                    }
                }
            }
        }
    }
    free(self);
}

static void detect_jetson(const char *root, cn_hw_info *hw) {
    char *rel = read_text(root, "/etc/nv_tegra_release");
    if (rel) {
        hw->jetson = true;
        const char *eol = strchr(rel, '\n');
        trim_copy(hw->jetson_model, sizeof hw->jetson_model, rel, eol ? (size_t)(eol - rel) : strlen(rel));
        free(rel);
    }
    /* device-tree strings are NUL-separated: "nvidia,p3768-0000+p3767-0005\0nvidia,tegra234\0" */
    char path[1024];
    snprintf(path, sizeof path, "%s/proc/device-tree/compatible", root);
    char *compat = NULL;
    size_t len = 0;
    cn_error err;
    if (cn_read_file(path, 4096, &compat, &len, &err) == CANARY_OK) {
        for (size_t i = 0; i < len;) {
            const char *s = compat + i;
            size_t sl = strnlen(s, len - i);
            if (sl >= 12 && strncmp(s, "nvidia,tegra", 12) == 0)
                hw->jetson = true;
            i += sl + 1;
        }
        free(compat);
        char *model = read_text(root, "/proc/device-tree/model");
        if (model && hw->jetson) {
            trim_copy(hw->jetson_model, sizeof hw->jetson_model, model, strnlen(model, 4096));
        }
        free(model);
    }
}

#if defined(__x86_64__)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* Features straight from the CPU: cpuid says what the silicon has, XCR0 what the OS saves on a
 * context switch; a feature is only usable with both. AMX additionally needs a per-process
 * permission from Linux (arch_prctl ARCH_REQ_XCOMP_PERM), which we request here because the
 * kernels would have to anyway. */
static void probe_cpuid(cn_hw_info *hw) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool avx_os = (xcr0 & 0x6) == 0x6;
    bool avx512_os = avx_os && (xcr0 & 0xe0) == 0xe0;
    bool fma = (c >> 12) & 1;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    bool avx2 = false, avx512f = false, bf16 = false, amx_bf16 = false, amx_tile = false;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        avx2 = (b >> 5) & 1;
        avx512f = (b >> 16) & 1;
        amx_bf16 = (d >> 22) & 1;
        amx_tile = (d >> 24) & 1;
        unsigned sub = a;
        if (sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            bf16 = (a >> 5) & 1;
        }
    }
    hw->fma = fma && avx_os;
    hw->avx2 = avx2 && avx_os;
    hw->avx512f = avx512f && avx512_os;
    hw->avx512bf16 = bf16 && avx512_os;
    hw->amx_bf16 = amx_bf16 && amx_tile;
    bool tile_os = (xcr0 & (3ull << 17)) == (3ull << 17);
    hw->amx_usable = false;
    if (hw->amx_bf16 && tile_os) {
        enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
        unsigned long perm = 0;
        if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 &&
            syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm) == 0)
            hw->amx_usable = (perm >> XFEATURE_XTILEDATA) & 1;
    }
#else
    (void)hw;
#endif
}

static void probe_gpus(cn_hw_info *hw) {
    const cn_cuda_plugin *plugin;
    cn_error err;
    cn_error_clear(&err);
    if (cn_cuda_plugin_get(&plugin, &err) != CANARY_OK) {
        snprintf(hw->gpu_note, sizeof hw->gpu_note, "%s", err.msg);
        return;
    }
    cn_cuda_device_info devs[CN_HW_MAX_GPUS];
    char msg[256] = "";
    int n = plugin->enumerate(devs, CN_HW_MAX_GPUS, msg, sizeof msg);
    if (n < 0) {
        snprintf(hw->gpu_note, sizeof hw->gpu_note, "CUDA plugin %s: %s", plugin->path, msg);
        return;
    }
    if (n == 0)
        snprintf(hw->gpu_note, sizeof hw->gpu_note, "CUDA plugin %s: no CUDA device", plugin->path);
    else
        snprintf(hw->gpu_note, sizeof hw->gpu_note, "CUDA plugin %s", plugin->path);
    for (int i = 0; i < n && i < CN_HW_MAX_GPUS; i++) {
        cn_hw_gpu *g = &hw->gpus[i];
        memset(g, 0, sizeof *g);
        g->index = devs[i].index;
        snprintf(g->name, sizeof g->name, "%s", devs[i].name);
        g->cc_major = devs[i].cc_major;
        g->cc_minor = devs[i].cc_minor;
        g->total_mem = devs[i].total_mem;
        g->free_mem = devs[i].free_mem;
        snprintf(g->uuid, sizeof g->uuid, "%s", devs[i].uuid);
        g->integrated = devs[i].integrated != 0;
        g->util_pct = g->temp_c = -1;
        g->power_w = -1;
    }
    hw->n_gpus = n < CN_HW_MAX_GPUS ? n : CN_HW_MAX_GPUS;
    cn_nvml_query(hw);
}

void cn_hw_detect(const cn_hw_detect_opts *opts, cn_hw_info *out) {
    cn_hw_detect_opts def = {"/", true, true};
    if (!opts)
        opts = &def;
    const char *root = opts->root && strcmp(opts->root, "/") != 0 ? opts->root : "";
    memset(out, 0, sizeof *out);

    struct utsname u;
    if (!root[0] && uname(&u) == 0)
        snprintf(out->arch, sizeof out->arch, "%s", u.machine);

    cpu_set_t set, *allowed = NULL;
    if (!root[0] && sched_getaffinity(0, sizeof set, &set) == 0) {
        allowed = &set;
        out->logical_cores = CPU_COUNT(&set);
    } else {
        char *online = read_text(root, "/sys/devices/system/cpu/online");
        out->logical_cores = count_cpu_list(online);
        free(online);
    }
    char *cpuinfo = read_text(root, "/proc/cpuinfo");
    if (cpuinfo) {
        int keep_logical = out->logical_cores;
        out->logical_cores = 0;
        cn_hw_parse_cpuinfo(cpuinfo, out);
        if (keep_logical)
            out->logical_cores = keep_logical;
        int from_cpuinfo = out->physical_cores;
        out->physical_cores = 0;
        int sysfs = sysfs_physical_cores(root, allowed);
        out->physical_cores = sysfs ? sysfs : from_cpuinfo;
        free(cpuinfo);
    }
    if (!out->arch[0])
        snprintf(out->arch, sizeof out->arch, "%s", out->neon ? "aarch64" : "x86_64");
    if (!out->physical_cores || out->physical_cores > out->logical_cores)
        out->physical_cores = out->logical_cores;
    if (out->logical_cores <= 0)
        out->logical_cores = out->physical_cores = 1;
    if (opts->probe_cpuid)
        probe_cpuid(out);

    char *meminfo = read_text(root, "/proc/meminfo");
    if (meminfo)
        cn_hw_parse_meminfo(meminfo, &out->mem_total, &out->mem_available);
    free(meminfo);

    cgroup_limits(root, out);
    detect_jetson(root, out);
    if (opts->probe_gpus)
        probe_gpus(out);
    else
        snprintf(out->gpu_note, sizeof out->gpu_note, "GPU probing disabled");
}

int cn_hw_compute_cpus(const cn_hw_info *hw) {
    int n = hw->physical_cores > 0 ? hw->physical_cores : hw->logical_cores;
    if (hw->logical_cores > 0 && n > hw->logical_cores)
        n = hw->logical_cores;
    if (hw->cgroup_cpus > 0 && n > (int)hw->cgroup_cpus)
        n = (int)hw->cgroup_cpus;
    return n < 1 ? 1 : n;
}

uint64_t cn_hw_usable_ram(const cn_hw_info *hw) {
    uint64_t m = hw->mem_available ? hw->mem_available : hw->mem_total;
    if (hw->cgroup_mem_limit && hw->cgroup_mem_limit < m)
        m = hw->cgroup_mem_limit;
    return m;
}

void cn_hw_info_json(const cn_hw_info *hw, cn_strbuf *sb) {
    cn_sb_puts(sb, "{\"cpu\":{\"arch\":");
    cn_sb_json_string(sb, hw->arch);
    cn_sb_puts(sb, ",\"model\":");
    cn_sb_json_string(sb, hw->cpu_model);
    cn_sb_printf(sb,
                 ",\"logical_cores\":%d,\"physical_cores\":%d,\"compute_cpus\":%d,"
                 "\"features\":{\"avx2\":%s,\"fma\":%s,\"avx512f\":%s,\"avx512_bf16\":%s,\"amx_bf16\":%s,"
                 "\"amx_usable\":%s,\"neon\":%s,\"arm_bf16\":%s}},",
                 hw->logical_cores, hw->physical_cores, cn_hw_compute_cpus(hw), hw->avx2 ? "true" : "false",
                 hw->fma ? "true" : "false", hw->avx512f ? "true" : "false", hw->avx512bf16 ? "true" : "false",
                 hw->amx_bf16 ? "true" : "false", hw->amx_usable ? "true" : "false", hw->neon ? "true" : "false",
                 hw->arm_bf16 ? "true" : "false");
    cn_sb_printf(sb, "\"memory\":{\"total_bytes\":%llu,\"available_bytes\":%llu},",
                 (unsigned long long)hw->mem_total, (unsigned long long)hw->mem_available);
    cn_sb_printf(sb, "\"cgroup\":{\"version\":%d,\"cpus\":%.3f,\"memory_limit_bytes\":%llu},", hw->cgroup_version,
                 hw->cgroup_cpus, (unsigned long long)hw->cgroup_mem_limit);
    cn_sb_puts(sb, "\"gpus\":[");
    for (int i = 0; i < hw->n_gpus; i++) {
        const cn_hw_gpu *g = &hw->gpus[i];
        cn_sb_printf(sb, "%s{\"index\":%d,\"name\":", i ? "," : "", g->index);
        cn_sb_json_string(sb, g->name);
        cn_sb_printf(sb, ",\"compute_capability\":\"%d.%d\",\"total_bytes\":%llu,\"free_bytes\":%llu,\"uuid\":",
                     g->cc_major, g->cc_minor, (unsigned long long)g->total_mem, (unsigned long long)g->free_mem);
        cn_sb_json_string(sb, g->uuid);
        cn_sb_printf(sb, ",\"integrated\":%s,\"nvml\":%s", g->integrated ? "true" : "false", g->nvml ? "true" : "false");
        if (g->nvml)
            cn_sb_printf(sb, ",\"utilization_pct\":%d,\"temperature_c\":%d,\"power_w\":%.1f", g->util_pct, g->temp_c,
                         g->power_w);
        cn_sb_putc(sb, '}');
    }
    cn_sb_puts(sb, "],\"gpu_note\":");
    cn_sb_json_string(sb, hw->gpu_note);
    cn_sb_puts(sb, ",\"nvml_note\":");
    cn_sb_json_string(sb, hw->nvml_note);
    cn_sb_printf(sb, ",\"jetson\":%s,\"jetson_model\":", hw->jetson ? "true" : "false");
    cn_sb_json_string(sb, hw->jetson_model);
    cn_sb_putc(sb, '}');
}

/* Detection on fake /proc, /sys and /etc trees: cgroup v1 and v2 limits, physical cores from the
 * sysfs topology, /proc/meminfo, Jetson identification; the text parsers on their own. */
#include "test_util.h"

#include <sys/stat.h>

#include "base/file.h"
#include "hw/hw.h"

static char root[512];

static void put(const char *rel, const char *text, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s%s", root, rel);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    cn_error err;
    assert_int_equal(cn_mkdirs(dir, &err), CANARY_OK);
    assert_int_equal(cn_write_file_atomic(path, text, len ? len : strlen(text), &err), CANARY_OK);
}

static void new_root(const char *name) {
    snprintf(root, sizeof root, "%s/%s", cn_test_tmpdir(), name);
    cn_error err;
    assert_int_equal(cn_mkdirs(root, &err), CANARY_OK);
}

static const char x86_cpuinfo[] =
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\ncore id\t\t: 0\n"
    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\ncore id\t\t: 1\n"
    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
    "processor\t: 2\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\ncore id\t\t: 0\n"
    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
    "processor\t: 3\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\ncore id\t\t: 1\n"
    "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n\n";

static void topology(int cpu, int core, int pkg) {
    char rel[256], v[16];
    snprintf(rel, sizeof rel, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
    snprintf(v, sizeof v, "%d\n", core);
    put(rel, v, 0);
    snprintf(rel, sizeof rel, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
    snprintf(v, sizeof v, "%d\n", pkg);
    put(rel, v, 0);
}

static void test_cgroup_v2_container(void **state) {
    new_root("v2");
    put("/proc/cpuinfo", x86_cpuinfo, 0);
    put("/sys/devices/system/cpu/online", "0-3\n", 0);
    topology(0, 0, 0);
    topology(1, 1, 0);
    topology(2, 0, 0); /* hyperthread siblings of cpu0/cpu1 */
    topology(3, 1, 0);
    put("/proc/meminfo", "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:   12000000 kB\n", 0);
    put("/proc/self/cgroup", "0::/kubepods/pod1\n", 0);
    put("/sys/fs/cgroup/cgroup.controllers", "cpu memory io\n", 0);
    put("/sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n", 0);
    put("/sys/fs/cgroup/kubepods/pod1/memory.max", "max\n", 0);
    put("/sys/fs/cgroup/kubepods/cpu.max", "max 100000\n", 0);
    put("/sys/fs/cgroup/kubepods/memory.max", "2147483648\n", 0); /* the parent's limit binds */

    cn_hw_detect_opts o = {root, false, false};
    cn_hw_info hw;
    cn_hw_detect(&o, &hw);
    assert_string_equal(hw.cpu_model, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
    assert_int_equal(hw.logical_cores, 4);
    assert_int_equal(hw.physical_cores, 2);
    assert_true(hw.avx2 && hw.fma && hw.avx512f && hw.avx512bf16 && hw.amx_bf16);
    assert_false(hw.amx_usable); /* only a live probe can say the OS permits AMX */
    assert_int_equal(hw.mem_total, 16384000ull * 1024);
    assert_int_equal(hw.mem_available, 12000000ull * 1024);
    assert_int_equal(hw.cgroup_version, 2);
    assert_true(hw.cgroup_cpus == 1.5);
    assert_int_equal(hw.cgroup_mem_limit, 2147483648ull);
    assert_int_equal(cn_hw_compute_cpus(&hw), 1);
    assert_int_equal(cn_hw_usable_ram(&hw), 2147483648ull);
    assert_false(hw.jetson);
    assert_int_equal(hw.n_gpus, 0);
}

static void test_cgroup_v1_docker(void **state) {
    new_root("v1");
    put("/proc/cpuinfo", x86_cpuinfo, 0); /* no sysfs topology: pairs from cpuinfo */
    put("/proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n", 0);
    put("/proc/self/cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n", 0);
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n", 0);
    put("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n", 0);
    put("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n", 0); /* unlimited */
    cn_hw_detect_opts o = {root, false, false};
    cn_hw_info hw;
    cn_hw_detect(&o, &hw);
    assert_int_equal(hw.logical_cores, 4); /* processor lines */
    assert_int_equal(hw.physical_cores, 2);
    assert_int_equal(hw.cgroup_version, 1);
    assert_true(hw.cgroup_cpus == 3.0);
    assert_int_equal(hw.cgroup_mem_limit, 0);
    assert_int_equal(cn_hw_compute_cpus(&hw), 2);
    assert_int_equal(cn_hw_usable_ram(&hw), 6000000ull * 1024);
}

static void test_jetson(void **state) {
    new_root("jetson");
    put("/proc/cpuinfo",
        "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
        "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\n\n"
        "processor\t: 1\nFeatures\t: fp asimd\n\n",
        0);
    put("/sys/devices/system/cpu/online", "0-5\n", 0);
    static const char compat[] = "nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0";
    put("/proc/device-tree/compatible", compat, sizeof compat - 1);
    static const char model[] = "NVIDIA Jetson Orin Nano Developer Kit\0";
    put("/proc/device-tree/model", model, sizeof model - 1);
    put("/etc/nv_tegra_release", "# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64\n", 0);
    cn_hw_detect_opts o = {root, false, false};
    cn_hw_info hw;
    cn_hw_detect(&o, &hw);
    assert_true(hw.jetson);
    assert_string_equal(hw.jetson_model, "NVIDIA Jetson Orin Nano Developer Kit");
    assert_true(hw.neon);
    assert_false(hw.arm_bf16);
    assert_string_equal(hw.arch, "aarch64");
    assert_int_equal(hw.logical_cores, 6);
    assert_int_equal(hw.physical_cores, 6);
    assert_int_equal(hw.cgroup_version, 0);
}

static void test_empty_root(void **state) {
    new_root("empty");
    cn_hw_detect_opts o = {root, false, false};
    cn_hw_info hw;
    cn_hw_detect(&o, &hw);
    assert_int_equal(hw.logical_cores, 1); /* never 0: the profile divides by it */
    assert_int_equal(hw.physical_cores, 1);
    assert_int_equal(hw.mem_total, 0);
    assert_int_equal(cn_hw_compute_cpus(&hw), 1);
}

static void test_parsers(void **state) {
    assert_true(cn_hw_parse_cpu_max("max 100000\n") == 0);
    assert_true(cn_hw_parse_cpu_max("50000 100000") == 0.5);
    assert_true(cn_hw_parse_cpu_max("200000") == 2.0); /* period defaults to 100 ms */
    assert_true(cn_hw_parse_cpu_max("-1 100000") == 0);
    assert_true(cn_hw_parse_cpu_max("garbage") == 0);
    assert_int_equal(cn_hw_parse_mem_limit("max\n"), 0);
    assert_int_equal(cn_hw_parse_mem_limit("1073741824\n"), 1073741824ull);
    assert_int_equal(cn_hw_parse_mem_limit("9223372036854775807"), 0);
    assert_int_equal(cn_hw_parse_mem_limit(""), 0);
    uint64_t t, a;
    assert_true(cn_hw_parse_meminfo("MemTotal: 1000 kB\n", &t, &a));
    assert_int_equal(t, 1024000);
    assert_int_equal(a, 1024000); /* old kernels: no MemAvailable */
    assert_false(cn_hw_parse_meminfo("nothing here", &t, &a));
    cn_hw_info hw;
    memset(&hw, 0, sizeof hw);
    cn_hw_parse_cpuinfo("flags : avx2x avx512fx\nmodel name:\n", &hw); /* whole words only */
    assert_false(hw.avx2);
    assert_false(hw.avx512f);
}

static void test_live_machine(void **state) {
    /* The real machine: whatever it is, the basics must be consistent. */
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    assert_true(hw.logical_cores >= 1);
    assert_true(hw.physical_cores >= 1 && hw.physical_cores <= hw.logical_cores);
    assert_true(hw.mem_total > 0 && hw.mem_available <= hw.mem_total);
    assert_true(hw.gpu_note[0] != '\0' || hw.n_gpus > 0);
#if defined(__x86_64__)
    /* cpuid and the compiler's view agree on AVX2 */
    __builtin_cpu_init();
    assert_int_equal(hw.avx2, __builtin_cpu_supports("avx2") != 0);
    assert_int_equal(hw.avx512f, __builtin_cpu_supports("avx512f") != 0);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cgroup_v2_container), cmocka_unit_test(test_cgroup_v1_docker),
        cmocka_unit_test(test_jetson),              cmocka_unit_test(test_empty_root),
        cmocka_unit_test(test_parsers),             cmocka_unit_test(test_live_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Physical core count for the default thread count: hyperthread siblings share execution units,
 * so GEMM-bound inference gains nothing from them. */
#include <sched.h>
#include <stdio.h>

#include "base/threadpool.h"
#include "nn/backend.h"

static int read_int(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int v = -1;
    if (fscanf(f, "%d", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

int cn_physical_cores(void) {
    int logical = cn_cpu_count();
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return logical;
    enum { MAX_CORES = 1024 };
    static __thread int seen_pkg[MAX_CORES], seen_core[MAX_CORES];
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < MAX_CORES; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        int core = read_int(path);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        int pkg = read_int(path);
        if (core < 0)
            return logical; /* no topology information: trust the logical count */
        int dup = 0;
        for (int i = 0; i < n && !dup; i++)
            dup = seen_core[i] == core && seen_pkg[i] == pkg;
        if (!dup) {
            seen_core[n] = core;
            seen_pkg[n] = pkg;
            n++;
        }
    }
    if (n <= 0)
        n = logical;
    return n < logical ? n : logical; /* a cgroup quota caps both */
}

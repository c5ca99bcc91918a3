/* Fuzzes the /proc and cgroup text parsers (containers can present arbitrary files). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hw/hw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *z = malloc(size + 1);
    if (!z)
        return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    cn_hw_info hw;
    memset(&hw, 0, sizeof hw);
    cn_hw_parse_cpuinfo(z, &hw);
    uint64_t t, a;
    cn_hw_parse_meminfo(z, &t, &a);
    cn_hw_parse_cpu_max(z);
    cn_hw_parse_mem_limit(z);
    free(z);
    return 0;
}

/* Fuzzes the YAML configuration reader: any bytes must yield OK or a clean error. */
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cn_config cfg;
    cn_error err;
    if (cn_config_init(&cfg, &err) != CANARY_OK)
        return 0;
    cn_config_load_yaml(&cfg, (const char *)data, size, "fuzz", &err);
    cn_config_free(&cfg);
    return 0;
}

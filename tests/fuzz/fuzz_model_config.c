/* Fuzzes model_config.yaml -> cn_model_desc: any bytes give a description or a clean error. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "nemo/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cn_model_desc d;
    static cn_tok_config tok;
    cn_error err;
    cn_model_config_parse((const char *)data, size, "fuzz.yaml", &d, &tok, &err);
    return 0;
}

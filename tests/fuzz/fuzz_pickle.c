/* Fuzzes the strict state-dict unpickler: any bytes give a tensor table or a clean error. */
#include <stddef.h>
#include <stdint.h>

#include "nemo/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cn_pkl_state_dict sd;
    cn_error err;
    if (cn_pickle_state_dict(data, size, &sd, &err) == CANARY_OK)
        cn_pkl_state_dict_free(&sd);
    return 0;
}

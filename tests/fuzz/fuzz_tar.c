/* Fuzzes the .nemo tar reader: any bytes give members inside the buffer or a clean error. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nemo/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cn_archive a;
    memset(&a, 0, sizeof a);
    cn_error err;
    if (cn_archive_from_tar(data, size, &a, &err) == CANARY_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < a.n; i++) {
            if (a.members[i].size) /* first and last byte must be readable (ASan checks) */
                sink ^= a.members[i].data[0] ^ a.members[i].data[a.members[i].size - 1];
            (void)strlen(a.members[i].name);
        }
        const cn_archive_member *m;
        cn_archive_resolve(&a, "nemo:0123_tokenizer.model", &m, &err);
        (void)cn_archive_find(&a, "./model_config.yaml");
        (void)sink;
        cn_archive_close(&a);
    }
    return 0;
}

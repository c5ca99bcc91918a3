/* Fuzzes the torch.save zip reader and the checkpoint view builder: any bytes give tensors whose
 * every element lies inside the buffer, or a clean error. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nemo/checkpoint.h"
#include "nemo/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cn_error err;
    volatile uint8_t sink = 0;
    cn_zip z;
    if (cn_zip_parse(data, size, &z, &err) == CANARY_OK) {
        for (size_t i = 0; i < z.n; i++) {
            const uint8_t *p;
            if (cn_zip_entry_data(&z, data, &z.entries[i], &p, &err) == CANARY_OK && z.entries[i].size)
                sink ^= p[0] ^ p[z.entries[i].size - 1];
        }
        cn_zip_free(&z);
    }
    cn_checkpoint ck;
    if (cn_checkpoint_load(data, size, "fuzz.ckpt", &ck, &err) == CANARY_OK) {
        for (size_t i = 0; i < ck.n; i++) {
            const cn_tensor_view *t = &ck.tensors[i];
            if (!t->nbytes)
                continue;
            /* the first and the last element (largest offset) must be inside the buffer */
            size_t es = cn_dtype_size(t->dtype);
            int64_t last = 0;
            for (int d = 0; d < t->ndim; d++)
                last += (t->shape[d] - 1) * t->stride[d];
            const uint8_t *b = t->data;
            sink ^= b[0] ^ b[(size_t)last * es + es - 1];
        }
        cn_checkpoint_free(&ck);
    }
    (void)sink;
    return 0;
}

/* A strict reader for the pickles that torch.save writes for a state dict (data.pkl).
 *
 * This is not a Python unpickler: it runs a small stack machine over the protocol-2 subset (plus
 * the few protocol-4 framing opcodes) and knows exactly these globals: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the torch.*Storage classes.
 * Any other global or opcode is rejected with a message naming it; nothing is ever executed.
 * The result is the list of tensors (name, dtype, storage key, offset, shape, stride). */
#ifndef CN_NEMO_PICKLE_H
#define CN_NEMO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "nemo/nemo.h"

typedef struct cn_pkl_tensor {
    char *name;
    cn_dtype dtype;
    char *storage_key;      /* "0", "1", ...: the zip entry data/<key> */
    uint64_t storage_numel; /* elements of the storage, as declared */
    int storage_index;      /* distinct storages numbered in first-seen order */
    int64_t offset;         /* storage offset in elements */
    int ndim;
    int64_t shape[CN_MAX_DIMS];
    int64_t stride[CN_MAX_DIMS];
} cn_pkl_tensor;

typedef struct cn_pkl_state_dict {
    cn_pkl_tensor *tensors; /* in the order the state dict lists them */
    size_t n;
    int n_storages;
} cn_pkl_state_dict;

/* Limits that keep hostile pickles from exhausting memory. */
#define CN_PKL_MAX_VALUES (1u << 22)  /* objects created */
#define CN_PKL_MAX_MEMO (1u << 22)    /* memo index */
#define CN_PKL_MAX_STACK (1u << 20)   /* stack depth */
#define CN_PKL_MAX_STRING (1u << 20)  /* bytes in one string */

cn_status cn_pickle_state_dict(const uint8_t *data, size_t size, cn_pkl_state_dict *out, cn_error *err);
void cn_pkl_state_dict_free(cn_pkl_state_dict *sd);

#endif

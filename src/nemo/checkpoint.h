/* A PyTorch checkpoint (torch.save zip) read in place: the tensor table of its state dict, with
 * each tensor's data pointing into the caller's buffer (usually the mapped .nemo file). */
#ifndef CN_NEMO_CHECKPOINT_H
#define CN_NEMO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "nemo/nemo.h"

typedef struct cn_checkpoint {
    cn_tensor_view *tensors; /* state-dict order; names owned */
    size_t n;
    size_t *by_name; /* indices sorted by name, for lookup */
    int n_storages;
} cn_checkpoint;

/* `label` names the checkpoint in messages ("model_weights.ckpt"). `data` must outlive `out`. */
cn_status cn_checkpoint_load(const uint8_t *data, size_t size, const char *label, cn_checkpoint *out, cn_error *err);
void cn_checkpoint_free(cn_checkpoint *c);
const cn_tensor_view *cn_checkpoint_find(const cn_checkpoint *c, const char *name);

#endif

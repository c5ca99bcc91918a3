/* Automatic configuration: from the detected hardware (hw.h) and the model's size, choose the
 * devices, workers per device, maximum batch, chunk length, precision, memory budgets, concurrent
 * jobs and model residency. The rule is written once here and documented in docs/HARDWARE.md;
 * every value can be overridden through the configuration (config file, CANARY_* env, flags).
 */
#ifndef CN_HW_PROFILE_H
#define CN_HW_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"
#include "base/error.h"
#include "base/strbuf.h"
#include "hw/hw.h"

/* The model numbers the rule needs (from cn_model_desc once a model is loaded; presets before). */
typedef struct cn_hw_model {
    char name[64];
    uint64_t n_params;
    int enc_layers, enc_d_model, enc_heads;
    int dec_layers, dec_d_model, dec_max_len, vocab;
    int n_mels, sub_channels, sub_factor;
    double max_chunk_seconds; /* the model's native input limit (Canary: 40 s) */
    int enc_ff, dec_inner;    /* feed-forward widths (every Canary: 4 x the model width) */
} cn_hw_model;

struct cn_model_desc;
/* From a loaded model (nemo/nemo.h): `n_params` is the sum of the checkpoint's tensor elements
 * (cn_nemo_tensor_count/at), which the description does not carry. */
void cn_hw_model_from_desc(const struct cn_model_desc *desc, uint64_t n_params, cn_hw_model *out);

/* The four published Canary releases by short or hub name ("canary-180m-flash",
 * "nvidia/canary-1b-v2"); NULL when unknown. */
const cn_hw_model *cn_hw_model_preset(const char *name);

/* The dimensions of the checkpoint at `path` (a .nemo file or unpacked directory; opening maps it,
 * nothing is loaded), so that a fine-tuned or renamed model is sized as what it is. */
cn_status cn_hw_model_from_file(const char *path, const char *cache_dir, cn_hw_model *out, cn_error *err);

/* The model to size for: the checkpoint's own dimensions when `model` is a file or directory that
 * opens, else a published release by name, else canary-180m-flash's. `note` (may be NULL) says
 * which when it is not the checkpoint's own or the named release's. */
void cn_hw_model_resolve(const char *model, const char *cache_dir, cn_hw_model *out, char *note, size_t note_size);

typedef enum cn_device_kind { CN_DEV_CPU = 0, CN_DEV_CUDA = 1 } cn_device_kind;
typedef enum cn_precision { CN_PREC_FP32 = 0, CN_PREC_BF16, CN_PREC_FP16 } cn_precision;
const char *cn_precision_name(cn_precision p);

#define CN_PROFILE_MAX_DEVICES (CN_HW_MAX_GPUS + 1)
#define CN_PROFILE_MAX_NOTES 16

typedef struct cn_device_profile {
    cn_device_kind kind;
    int gpu;                 /* index into cn_hw_info.gpus, -1 for the CPU */
    char name[32];           /* "cpu", "cuda:0" */
    bool usable;             /* false: the reason is in why */
    int workers;             /* executors on this device (GPU: streams sharing one model replica) */
    int threads;             /* CPU threads per worker (CPU device only) */
    int max_batch;           /* chunks per batch per worker */
    cn_precision precision;
    bool tf32;               /* TF32 tensor cores for the remaining fp32 GEMMs */
    uint64_t budget_bytes;   /* memory this device may use in total */
    uint64_t weight_bytes;   /* one model replica at `precision` */
    uint64_t item_bytes;     /* activations of one chunk in a batch (estimate, see HARDWARE.md) */
    uint64_t worker_bytes;   /* fixed per worker whatever its batch (GPU: scratch, arena granularity) */
    char residency[64];
    char why[512];           /* how the values were chosen */
} cn_device_profile;

typedef struct cn_profile {
    cn_hw_model model;
    int n_devices;           /* devices in use first, then unusable ones (usable == false) */
    cn_device_profile dev[CN_PROFILE_MAX_DEVICES];
    double chunk_seconds;
    int concurrent_jobs;
    int n_notes;
    char notes[CN_PROFILE_MAX_NOTES][256]; /* overrides applied, clamps, fall-backs */
} cn_profile;

/* Computes the profile. `cfg` may be NULL (everything automatic); its non-auto engine.* and
 * server.workers values override the rule. Fails (naming the device and the numbers) only when
 * the configuration asks for something impossible or no device can hold the model. */
cn_status cn_profile_compute(const cn_hw_info *hw, const cn_hw_model *model, const cn_config *cfg,
                             cn_profile *out, cn_error *err);

/* Activation memory of one chunk of `seconds` in a batch, decoded with `beam` hypotheses: the
 * engine's buffers for it, all fp32 whatever the weights' precision, and its share of the
 * backend's scratch (docs/HARDWARE.md has the terms; tests/cuda/memory_check.py holds it to what
 * the CUDA backend allocates). */
uint64_t cn_profile_item_bytes(const cn_hw_model *m, double seconds, int beam);

/* What a worker on a GPU of `gpu_total` bytes holds whatever its batch: the feature front end's
 * scratch (DFT intermediates of at most one unit, 1.25x as the scratch grows), the arena's last
 * chunk partly unused (one unit), the cuBLASLt and cuBLAS workspaces (32 MiB each); the unit is
 * min(256 MiB, gpu_total / 64), as the CUDA backend sizes it. */
uint64_t cn_profile_worker_bytes(uint64_t gpu_total);

void cn_profile_json(const cn_profile *p, cn_strbuf *sb);
/* Human-readable, several lines. */
void cn_profile_text(const cn_profile *p, cn_strbuf *sb);

#endif

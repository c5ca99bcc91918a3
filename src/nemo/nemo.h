/* A loaded Canary checkpoint: the typed model description, the weights (memory-mapped in place
 * where possible), the tokenizer and the prompt builder.
 *
 * This is the contract between the loader (this module) and the engine (model/). The engine reads
 * only this header: dimensions come from cn_model_desc (derived from model_config.yaml, never from
 * file names) and weights from cn_nemo_tensor() by NeMo's state-dict key names.
 */
#ifndef CN_NEMO_NEMO_H
#define CN_NEMO_NEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* ---------------------------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------------------------- */
typedef enum cn_dtype {
    CN_DTYPE_F32 = 0,
    CN_DTYPE_F16,
    CN_DTYPE_BF16,
    CN_DTYPE_F64,
    CN_DTYPE_I64,
    CN_DTYPE_I32,
    CN_DTYPE_I16,
    CN_DTYPE_I8,
    CN_DTYPE_U8,
    CN_DTYPE_BOOL,
    CN_DTYPE_COUNT
} cn_dtype;

size_t cn_dtype_size(cn_dtype dt);
const char *cn_dtype_name(cn_dtype dt); /* "f32", "bf16", ... */

#define CN_MAX_DIMS 8

/* A read-only view of one checkpoint tensor. `data` points at element [0,...,0] (storage offset
 * already applied) inside the mapped file or the unpacked cache; it stays valid for the lifetime
 * of the cn_nemo. Strides are in elements, as PyTorch stores them. */
typedef struct cn_tensor_view {
    const char *name;
    cn_dtype dtype;
    int ndim;                      /* 0 for a scalar */
    int64_t shape[CN_MAX_DIMS];
    int64_t stride[CN_MAX_DIMS];
    const void *data;
    size_t nbytes;                 /* numel * element size */
    bool contiguous;               /* row-major contiguous */
    int storage_id;                /* tensors sharing storage (tied weights) share this id */
} cn_tensor_view;

/* ---------------------------------------------------------------------------------------------
 * Model description (from model_config.yaml)
 * ------------------------------------------------------------------------------------------- */
typedef enum cn_prompt_format { CN_PROMPT_CANARY = 0, CN_PROMPT_CANARY2 = 1 } cn_prompt_format;

typedef struct cn_preproc_desc {
    int sample_rate;        /* 16000 */
    int n_mels;             /* features: 128 */
    int n_fft;              /* 512 */
    int win_length;         /* window_size * sample_rate = 400 */
    int hop_length;         /* window_stride * sample_rate = 160 */
    char window[16];        /* "hann" */
    char normalize[16];     /* "per_feature" */
    double preemph;         /* 0.97 */
    double lowfreq, highfreq; /* 0, 8000 (highfreq null -> sample_rate/2) */
    double log_zero_guard_value; /* 2^-24 */
    char log_zero_guard_type[8]; /* "add" */
    double mag_power;       /* 2.0 */
    double dither;          /* config value; inference uses 0 */
    int pad_to;             /* 0 */
    double pad_value;
    bool log;               /* true */
    int frame_splicing;     /* 1 */
    char mel_norm[16];      /* "slaney" */
    bool exact_pad;         /* false */
} cn_preproc_desc;

typedef struct cn_encoder_desc {
    int feat_in;            /* 128 */
    int n_layers;
    int d_model;
    int n_heads;
    int ff_expansion_factor; /* d_ff = d_model * factor */
    int conv_kernel_size;    /* 9 */
    char conv_norm_type[16]; /* "batch_norm" */
    char subsampling[24];    /* "dw_striding" */
    int subsampling_factor;  /* 8 */
    int subsampling_conv_channels; /* 256 */
    char self_attention_model[16]; /* "rel_pos" */
    int att_context_left, att_context_right; /* -1, -1 = full */
    bool xscaling;          /* false: no sqrt(d_model) input scaling */
    bool untie_biases;      /* true: per-layer pos_bias_u/v */
    int pos_emb_max_len;    /* 5000 */
    bool use_bias;          /* true */
} cn_encoder_desc;

typedef struct cn_decoder_desc {
    int n_layers;
    int hidden;             /* 1024 */
    int inner;              /* 4096 */
    int n_heads;            /* 8 */
    int max_seq_len;        /* 512 / 1024 */
    char hidden_act[16];    /* "relu" */
    bool pre_ln;            /* true */
    bool pre_ln_final_layer_norm; /* true */
    bool learn_positional_encodings; /* false */
    int vocab_size;         /* embedding/head rows: 8*ceil(tokenizer vocab/8) */
} cn_decoder_desc;

typedef struct cn_decoding_desc {
    char strategy[16];      /* "beam" (NeMo default) or "greedy" */
    int beam_size;          /* 1 */
    double length_penalty;  /* what NeMo effectively applies (see spec §7.2; len_pen is ignored) */
    int max_generation_delta; /* -1 = model default rule */
} cn_decoding_desc;

typedef struct cn_model_desc {
    char variant[32];       /* best-effort label: "canary-1b", "canary-1b-flash", "canary-180m-flash",
                               "canary-1b-v2" or "canary-custom" -- derived from dimensions, for display */
    char nemo_version[32];  /* from the config when present, else "" */
    cn_prompt_format prompt_format;
    cn_preproc_desc pre;
    cn_encoder_desc enc;
    int asr_enc_hidden;     /* model_defaults.asr_enc_hidden */
    int lm_dec_hidden;      /* model_defaults.lm_dec_hidden */
    bool has_enc_dec_proj;  /* asr_enc_hidden != lm_dec_hidden: Linear encoder_decoder_proj */
    cn_decoder_desc dec;
    cn_decoding_desc decoding;
    bool has_timestamps_model; /* canary-1b-v2's bundled CTC aligner (timestamps_asr_model_*) */
} cn_model_desc;

/* ---------------------------------------------------------------------------------------------
 * The checkpoint
 * ------------------------------------------------------------------------------------------- */
typedef struct cn_nemo cn_nemo;
typedef struct cn_tokenizer cn_tokenizer;

/* Opens a .nemo file (tar or gzip'd tar) or an unpacked directory. Weights of an uncompressed
 * tar are mmap'ed in place; a gzip'd one is unpacked once into `cache_dir` (NULL: next to the
 * default cache, $XDG_CACHE_HOME/canary-stt/unpacked). */
cn_status cn_nemo_open(const char *path, const char *cache_dir, cn_nemo **out, cn_error *err);
void cn_nemo_close(cn_nemo *m);

const cn_model_desc *cn_nemo_desc(const cn_nemo *m);
const cn_tokenizer *cn_nemo_tokenizer(const cn_nemo *m);

/* Looks a tensor up by its state-dict key ("encoder.layers.0.norm_ff1.weight"); NULL if absent. */
const cn_tensor_view *cn_nemo_tensor(const cn_nemo *m, const char *name);
/* Like cn_nemo_tensor, but checks dtype-independent shape and fails with a message naming the
 * tensor and both shapes. `ndim` dims in `shape`; -1 in `shape` matches any extent. */
cn_status cn_nemo_expect(const cn_nemo *m, const char *name, int ndim, const int64_t *shape,
                         const cn_tensor_view **out, cn_error *err);
size_t cn_nemo_tensor_count(const cn_nemo *m);
const cn_tensor_view *cn_nemo_tensor_at(const cn_nemo *m, size_t i);
/* The raw text of model_config.yaml. */
const char *cn_nemo_config_yaml(const cn_nemo *m);

/* canary-1b-v2's auxiliary CTC timestamp model, when present (else NULL): its own config text and
 * tensors, loaded with the same readers. */
const char *cn_nemo_timestamps_config_yaml(const cn_nemo *m);
const cn_tensor_view *cn_nemo_timestamps_tensor(const cn_nemo *m, const char *name);

#endif

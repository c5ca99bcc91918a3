/* libcanary: speech-to-text and speech translation with NVIDIA Canary models (.nemo files).
 *
 * Usage, in the spirit of whisper.cpp:
 *
 *     canary_model *model;
 *     char msg[512];
 *     if (canary_model_load("canary-180m-flash.nemo", NULL, &model, msg, sizeof msg) != CANARY_OK) ...
 *     canary_context *ctx;                       // one per thread; many may share one model
 *     canary_context_create(model, 0, &ctx, msg, sizeof msg);
 *     canary_params p = canary_default_params(model);
 *     p.source_lang = "en";
 *     canary_transcribe(ctx, &p, pcm, n_samples, msg, sizeof msg);   // 16 kHz mono float
 *     printf("%s\n", canary_result_text(ctx, 0));
 *     canary_context_free(ctx);
 *     canary_model_free(model);
 *
 * The model is loaded once (weights memory-mapped and shared read-only); every context owns its
 * threads and buffers, so concurrent contexts on one model are safe. A context is used by one
 * thread at a time. Results stay valid until the next run on the same context.
 * Every call that can fail returns a canary_status and writes a message to `msg` (may be NULL).
 */
#ifndef CANARY_H
#define CANARY_H

#include <stdbool.h>
#include <stddef.h>

#include "canary/canary_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CANARY_SAMPLE_RATE 16000

typedef struct canary_model canary_model;
typedef struct canary_context canary_context;

typedef enum canary_precision {
    CANARY_PRECISION_FP32 = 0, /* exact (parity with the reference) */
    CANARY_PRECISION_BF16 = 1, /* bf16 weights and activations, fp32 accumulation */
    CANARY_PRECISION_FP16 = 2, /* fp16 weights and activations, fp32 accumulation (GPU only) */
    CANARY_PRECISION_TF32 = 3  /* fp32 weights, TF32 tensor-core GEMMs on sm80+ GPUs (fp32 on the CPU) */
} canary_precision;

typedef enum canary_search {
    CANARY_SEARCH_BEAM = 0,   /* NeMo's default path; beam_size 1 is NeMo's default decoding */
    CANARY_SEARCH_GREEDY = 1  /* NeMo's `greedy` strategy (tokens fed at positions 1, 2, ...) */
} canary_search;

typedef enum canary_features {
    CANARY_FEATURES_NEMO_2_5 = 0, /* NeMo >= 2.5 front end (zero STFT padding, masked subsampling) */
    CANARY_FEATURES_NEMO_2_4 = 1  /* NeMo <= 2.4 (reflect padding, one more frame, no masking) */
} canary_features;

typedef struct canary_model_params {
    const char *cache_dir; /* where gzip'd .nemo files are unpacked (NULL: default) */
    /* Where the network runs: "cpu" (default, NULL), "cuda" / "cuda:N" (that GPU; loading fails with
     * CANARY_EDEVICE and the reason when it cannot be used) or "auto" (GPU 0 when usable, else the
     * CPU; the reason a GPU was passed over is logged and kept, see canary_model_device_note). One
     * model = one device: load one model per GPU for several GPUs. */
    const char *device;
} canary_model_params;

canary_model_params canary_model_default_params(void);

canary_status canary_model_load(const char *path, const canary_model_params *params, canary_model **out,
                                char *msg, size_t msg_size);
void canary_model_free(canary_model *model);

/* The device the model runs on ("cpu", "cuda:0", ...) and, when "auto" fell back to the CPU, why
 * ("" otherwise). */
const char *canary_model_device(const canary_model *model);
const char *canary_model_device_note(const canary_model *model);

/* "canary-1b", "canary-1b-flash", "canary-180m-flash", "canary-1b-v2" or "canary-custom". */
const char *canary_model_variant(const canary_model *model);
size_t canary_model_language_count(const canary_model *model);
const char *canary_model_language(const canary_model *model, size_t i);
/* Longest audio one pass accepts, in seconds (the decoder's position limit bounds the output). */
double canary_model_max_duration(const canary_model *model);
/* Whether the model emits timestamp tokens when canary_params.timestamps asks for them
 * (canary-1b-flash, canary-180m-flash; spec §7.7). canary-1b has no timestamp slot; canary-1b-v2
 * times words with a bundled CTC aligner, which is not implemented. */
bool canary_model_has_timestamps(const canary_model *model);
/* Duration of one timestamp unit <|N|> in seconds: window stride x encoder subsampling (0.08). */
double canary_model_frame_seconds(const canary_model *model);

/* Floating-point operations of one encoder pass producing `encoder_frames` frames (for GFLOP/s). */
double canary_model_encoder_flops(const canary_model *model, int encoder_frames);

typedef struct canary_params {
    const char *source_lang;  /* "en" ... (required) */
    const char *target_lang;  /* NULL or == source_lang: transcription; else translation */
    bool pnc;                 /* punctuation and capitalization (default true) */
    bool itn;                 /* inverse text normalization (canary2 prompt; default false) */
    canary_search search;     /* default: the model's decoding config (beam) */
    int beam_size;            /* default: the model's (1) */
    int max_generation_delta; /* < 0: the decoder's max_sequence_length only (default: the model's) */
    int max_new_tokens;       /* > 0: stop after this many tokens (default 0: the model's limit) */
    bool ignore_eos;          /* benchmarking only: generate exactly max_new_tokens */
    canary_precision precision; /* default FP32 */
    canary_features features;   /* default: NEMO_2_4 for checkpoints saved by NeMo < 2.5, else NEMO_2_5 */
    /* Ask the model for timestamp tokens (the prompt's <|timestamp|> slot; default false). Only
     * models where canary_model_has_timestamps() is true accept it (else CANARY_EUNSUPPORTED). The
     * tokens then hold <|S|> word <|E|> groups (canary_token.frame), and the result text is NeMo's:
     * the words of those groups joined by single spaces. */
    bool timestamps;
    /* Each utterance of a batch computed as if it were alone: its own front-end padding, the
     * subsampling masked past its length, its own output length limit. Its result then never
     * depends on what it is batched with (the pipeline and the service set this, so that any
     * lengths can share a batch). Default false: NeMo's batch semantics, under which (with
     * nemo-2.4 features) a padded utterance decodes slightly differently from itself alone. */
    bool batch_independent;
} canary_params;

canary_params canary_default_params(const canary_model *model);

/* n_threads <= 0: the number of physical cores. */
canary_status canary_context_create(const canary_model *model, int n_threads, canary_context **out, char *msg,
                                    size_t msg_size);
void canary_context_free(canary_context *ctx);

/* Runs one utterance of 16 kHz mono float PCM (clips under 1 s are zero-padded to 1 s, as NeMo
 * does). */
canary_status canary_transcribe(canary_context *ctx, const canary_params *params, const float *pcm,
                                size_t n_samples, char *msg, size_t msg_size);
/* Runs `n` utterances in one batched pass. With params.batch_independent each result equals a
 * one-at-a-time run (the pipeline and the service set it). Without it the batch is NeMo's: the
 * output length limit follows the longest utterance, and with NeMo 2.4 features, as in NeMo
 * itself, padding reaches a shorter utterance's last frames, so it can decode differently from
 * itself alone. CANARY_ENOMEM (a GPU without memory for the
 * batch) leaves the context usable and holding no device memory: a smaller batch may then fit;
 * CANARY_EDEVICE means the device itself failed. */
canary_status canary_transcribe_batch(canary_context *ctx, const canary_params *params, const float *const *pcm,
                                      const size_t *n_samples, int n, char *msg, size_t msg_size);

/* Results of the last run. */
int canary_result_count(const canary_context *ctx);
const char *canary_result_text(const canary_context *ctx, int i);

typedef struct canary_token {
    int id;
    float logprob;   /* log-probability the token was chosen with */
    int position;    /* its position in the decoder sequence (after the prompt) */
    const char *piece; /* SentencePiece piece text */
    int frame;       /* timestamp tokens <|N|>: N, in units of canary_model_frame_seconds(); else -1 */
} canary_token;

int canary_result_token_count(const canary_context *ctx, int i);
canary_token canary_result_token(const canary_context *ctx, int i, int j);
/* Sum of the token log-probabilities (beam: the hypothesis score). */
float canary_result_score(const canary_context *ctx, int i);

/* Timings of the last run, seconds. On a GPU the log-mel features are computed there (unless
 * CANARY_GPU_FEATURES=0): features_s is then the host's part (staging the samples) and the GPU's
 * feature work counts in encoder_s. */
typedef struct canary_timings {
    double features_s, encoder_s, decoder_s;
    int encoder_frames;
} canary_timings;
canary_timings canary_last_timings(const canary_context *ctx);

#ifdef __cplusplus
}
#endif
#endif

/* The Canary network (FastConformer encoder + Transformer decoder) described once over the backend
 * interface (nn/backend.h), and NeMo's decoding strategies on top of it.
 *
 *   cn_canary      weights prepared for one backend, loaded once from a cn_nemo; read-only after
 *                  load, shared by every context.
 *   cn_canary_ctx  one inference context: the backend exec (threads, scratch) and the activation
 *                  buffers, planned per (batch, length) and reused; one thread at a time.
 */
#ifndef CN_MODEL_MODEL_H
#define CN_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "features/features.h"
#include "nemo/nemo.h"
#include "nn/backend.h"

typedef struct cn_canary cn_canary;
typedef struct cn_canary_ctx cn_canary_ctx;

/* Loads the weights of `nemo` (which must outlive the model) for backend `be` (owned by the
 * caller, must outlive the model). BatchNorm is folded into the depthwise convolutions, the Q/K/V
 * projections are fused, the subsampling output layer is permuted for channels-last activations. */
cn_status cn_canary_load(const cn_nemo *nemo, cn_backend *be, cn_precision prec, cn_canary **out, cn_error *err);
void cn_canary_free(cn_canary *m);
const cn_model_desc *cn_canary_desc(const cn_canary *m);
const cn_nemo *cn_canary_nemo(const cn_canary *m);
cn_precision cn_canary_precision(const cn_canary *m);

cn_status cn_canary_ctx_create(const cn_canary *m, int n_threads, cn_canary_ctx **out, cn_error *err);
void cn_canary_ctx_free(cn_canary_ctx *c);

/* Encoder input: log-mel features of `n` utterances, item i as [n_mels, t[i]] row-major (NeMo's
 * layout), of which the first valid[i] frames are valid (NeMo >= 2.5 leaves one extra zero frame).
 * Items are right-padded with zeros to the longest. mask_subsampling selects NeMo >= 2.5 behaviour
 * (time steps past the valid length are zeroed before every subsampling convolution). */
typedef struct cn_encoder_input {
    int n;
    const float *const *feats;
    const int *t;
    const int *valid;
    bool mask_subsampling;
    bool on_device; /* feats unused: cn_canary_features_device left them in the context, t[i] = its cols */
    /* NULL, or each item's feature columns had it run alone (its own length, not the batch's): the
     * decoder's per-item length limit (cn_decode_opts.item_limits) then follows each item */
    const int *item_cols;
} cn_encoder_input;

/* The model's front end as a backend's log_mel runs it (nn/backend.h), from features/'s extractor
 * (which must outlive d: d points into it). */
void cn_mel_desc_from_features(const cn_features *f, cn_mel_desc *d);
/* Whether the context's backend computes features itself (a GPU). */
bool cn_canary_device_features(const cn_canary_ctx *c);
/* Features of n utterances computed by the backend, left where the next cn_canary_encode with
 * on_device reads them: pcm host [n, lpad] (item b's first lens[b] samples), *cols the columns
 * (encoder input t of every item), valid[b] each item's valid frames. Queued, not waited for. */
cn_status cn_canary_features_device(cn_canary_ctx *c, const cn_mel_desc *d, const float *pcm, const int *lens, int n,
                                    int lpad, int *cols, int *valid, cn_error *err);

/* Observes intermediate encoder activations (for parity tests): `stage` is "subsampling",
 * "layer" (with its index) or "encoder_out" (after the optional projection); data is [n, t, d]
 * backend memory (host memory on the CPU backend). */
typedef void (*cn_encoder_tap)(void *ud, const char *stage, int layer, const float *data, int n, int t, int d);

/* Copies `bytes` of the context's backend memory (a tap's data) to host memory `dst`, reporting
 * any pending device failure. */
cn_status cn_canary_read(cn_canary_ctx *c, void *dst, const void *src, size_t bytes, cn_error *err);

cn_status cn_canary_encode(cn_canary_ctx *c, const cn_encoder_input *in, cn_encoder_tap tap, void *tap_ud,
                           cn_error *err);
/* After cn_canary_encode: frames of the padded encoder output and each item's valid frames. */
int cn_canary_encoded_frames(const cn_canary_ctx *c);
int cn_canary_encoded_length(const cn_canary_ctx *c, int item);

typedef enum cn_search { CN_SEARCH_BEAM = 0, CN_SEARCH_GREEDY = 1 } cn_search;

typedef struct cn_decode_opts {
    cn_search search;       /* BEAM: NeMo's default path (also for beam 1); GREEDY: NeMo's `greedy` */
    int beam_size;          /* >= 1 */
    double length_penalty;  /* GNMT alpha; NeMo effectively applies 0 */
    int max_generation_delta; /* < 0: only the decoder's max_sequence_length limits the output */
    int max_new_tokens;     /* > 0: also stop after this many generated tokens */
    bool ignore_eos;        /* benchmarks: keep generating after EOS (exactly max_new_tokens) */
    /* the length limit per item, from its encoder length had it run alone (cn_encoder_input.item_cols),
     * instead of NeMo's from the batch's padded length: an item's output then never depends on
     * what it is batched with */
    bool item_limits;
    /* Teacher forcing (greedy only; tests and scoring): item b is fed force_ids[b][0..n_force[b])
     * instead of its own choices; the hypothesis reports its own choice per step in `best`. */
    const int *const *force_ids;
    const int *n_force;
    int eos, pad;           /* token ids: <|endoftext|> and <pad> (-1 if none) */
    int logprob_steps;      /* record the full log-prob rows of the first N steps (tests) */
} cn_decode_opts;

/* The model's decoding config; eos/pad are set to -1 (the caller supplies them from the tokenizer). */
void cn_decode_opts_default(const cn_canary *m, cn_decode_opts *o);

/* One decoded utterance: generated ids without the prompt and without trailing EOS/PAD. */
typedef struct cn_hypothesis {
    int *ids;
    float *logprobs;        /* per id: log-probability it was chosen with */
    int *positions;         /* per id: decoder position it was generated at */
    int n;
    float score;            /* cumulative log-probability (beam score) */
    int *best;              /* with teacher forcing: the argmax at each step (else NULL) */
    float *step_logprobs;   /* [n_steps, vocab] when logprob_steps > 0 (greedy: the item's row;
                               beam: beam 0's row at each step, as the reference records) */
    int n_steps;
} cn_hypothesis;

void cn_hypothesis_free(cn_hypothesis *h);

/* Decodes every item of the last cn_canary_encode with the same prompt; out has room for n. */
cn_status cn_canary_decode(cn_canary_ctx *c, const int *prompt, int prompt_len, const cn_decode_opts *o,
                           cn_hypothesis *out, cn_error *err);

/* Encoder frames for a feature length, as NeMo's calc_length does it (three ceil-halvings). */
int cn_canary_subsampled_length(int frames);

/* Floating-point operations of one encoder pass over `frames` feature frames (for GFLOP/s). */
double cn_canary_encoder_flops(const cn_canary *m, int frames);

#endif

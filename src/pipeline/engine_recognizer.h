/* The real engine behind the pipeline's recognizer interface (recognizer.h): a thin adapter over
 * canary_transcribe_batch that turns the engine's tokens into text pieces with frame times. */
#ifndef CN_PIPELINE_ENGINE_RECOGNIZER_H
#define CN_PIPELINE_ENGINE_RECOGNIZER_H

#include "base/error.h"
#include "canary/canary.h"
#include "pipeline/recognizer.h"

/* NeMo trains Canary on utterances of up to 40 s and cuts long audio at 40 s (spec §7.6). */
#define CN_CANARY_CHUNK_LIMIT_S 40.0
/* NeMo's chunked inference uses 10-s chunks when timestamps are requested (spec §7.6 (b), §7.7: the
 * model card calls timestamps experimental on longer input); our default chunk length then. */
#define CN_CANARY_TIMESTAMP_CHUNK_S 10.0

typedef struct cn_engine_recognizer {
    const canary_model *model;
    canary_context *ctx; /* used by one pipeline run at a time */
    canary_params params;
} cn_engine_recognizer;

/* CANARY_EQUAL_LENGTH_BATCHES=1, for A/B benchmarks only: the batching before 27 Nov 2026 (NeMo's
 * batch semantics, and under NeMo 2.4 features only chunks of equal length in one batch) instead
 * of every chunk as if alone (canary_params.batch_independent). Logged where it is read. */
bool cn_engine_equal_length_batches(void);

/* Fills `out` to call the engine through `er` (which must outlive it). The chunk limit is 40 s,
 * or the model's own limit when that is shorter. */
void cn_engine_recognizer_bind(cn_engine_recognizer *er, cn_recognizer *out);

/* Appends the text of one SentencePiece piece to a UTF-8 string: '▁' becomes a space, byte
 * pieces "<0xNN>" become that byte. Returns bytes written (at most 3 * strlen(piece) + 1). */
size_t cn_piece_to_text(const char *piece, char *out);

/* Turns the engine's tokens of one chunk into pipeline tokens. Timestamp tokens "<|S|> ... <|E|>"
 * (spec §7.7; canary_token.frame) give the text tokens between them frames S..E, minus
 * `shift_frames` (clamped at 0); other special tokens are dropped. With `timestamps` (the prompt
 * asked for them) and at least one group, text tokens outside every group are dropped, as NeMo's
 * process_aed_timestamp_outputs does; otherwise they are kept with frames -1 (approximate times). */
cn_status cn_rec_result_from_tokens(const canary_token *toks, int n, bool timestamps, int shift_frames,
                                    cn_rec_result *out, cn_error *err);

/* cn_rec_result_from_tokens over result i of the last run on `ctx`, a chunk of n_samples; clips
 * under 1 s were padded on the left by the engine, which shifts the model's frames. */
cn_status cn_engine_result_convert(const canary_context *ctx, int i, size_t n_samples, bool timestamps,
                                   double frame_s, cn_rec_result *out, cn_error *err);

/* Parses a timestamp token "<|N|>" (N = 80 ms frames); returns N or -1. */
int cn_piece_timestamp(const char *piece);

#endif

/* What the pipeline needs from a speech recognizer: "transcribe this batch of PCM chunks".
 *
 * The pipeline is written against this small interface only. The product plugs the real engine
 * in with a thin adapter (engine -> tokens with text pieces and frame times); tests use a
 * deterministic double. Keeping the tokenizer on the adapter's side keeps the pipeline free of
 * model details: it sees text pieces, log-probabilities and optional timestamps.
 */
#ifndef CN_PIPELINE_RECOGNIZER_H
#define CN_PIPELINE_RECOGNIZER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* One output token of a chunk, in decoding order. Timestamp and other special tokens are not
 * tokens here: the adapter turns them into the frames of the text tokens they enclose. */
typedef struct cn_rec_token {
    int id;
    float logprob;
    char *text;      /* detokenized piece, UTF-8; a leading ' ' starts a new word (SentencePiece) */
    int start_frame; /* timestamp frames (frame_s each) from the chunk's first sample; -1 if none */
    int end_frame;
} cn_rec_token;

typedef struct cn_rec_result {
    cn_rec_token *tokens;
    size_t n_tokens;
} cn_rec_result;

void cn_rec_result_free(cn_rec_result *r); /* frees the tokens and their texts; zeroes *r */

typedef struct cn_recognizer {
    void *self;
    int sample_rate;     /* 16000 */
    double max_chunk_s;  /* the model's limit on one input */
    double frame_s;      /* duration of one timestamp frame (0.08 s for Canary) */
    /* Batch only chunks of identical length: for a recognizer whose batched results depend on
     * the padding (the engine's do not: it runs each chunk as if alone, batch_independent), so
     * that unequal lengths never make a transcript depend on what it was batched with. */
    bool equal_length_batches;
    /* Transcribes `n` chunks of mono PCM (chunk i has lens[i] samples) as one batch, filling
     * out[0..n-1] (zero-initialised by the caller). On failure the callee frees what it filled. */
    cn_status (*transcribe)(void *self, const float *const *pcm, const size_t *lens, size_t n,
                            cn_rec_result *out, cn_error *err);
} cn_recognizer;

#endif

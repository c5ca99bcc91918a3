/* Canary tokenizers: SentencePiece models read from their protobuf, in the aggregate layout
 * (canary-1b, -1b-flash, -180m-flash: special-token block + per-language blocks with offsets) or the
 * unified 16384-piece layout (canary-1b-v2); and the prompt builder for the `canary` and `canary2`
 * formats. */
#ifndef CN_NEMO_TOKENIZER_H
#define CN_NEMO_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "nemo/nemo.h"

typedef struct cn_tokenizer cn_tokenizer;

int cn_tok_vocab_size(const cn_tokenizer *t);      /* tokenizer ids, before rounding to 8 */
int cn_tok_eos(const cn_tokenizer *t);             /* <|endoftext|> */
int cn_tok_bos(const cn_tokenizer *t);             /* <|startoftranscript|> */
int cn_tok_pad(const cn_tokenizer *t);             /* <pad>, or -1 */
/* Id of a special token by its text ("<|en|>", "<|pnc|>", "<|0|>"), or -1. */
int cn_tok_special(const cn_tokenizer *t, const char *text);
/* True for control/special ids that never appear in output text (prompt tokens, EOS, pad,
 * timestamp tokens). */
bool cn_tok_is_special(const cn_tokenizer *t, int id);
/* For timestamp tokens <|N|>: N (in 80 ms encoder frames); else -1. */
int cn_tok_timestamp_value(const cn_tokenizer *t, int id);
/* The piece text of an id (for debugging / model-info), or NULL when out of range. */
const char *cn_tok_piece(const cn_tokenizer *t, int id);

/* Detokenizes ids to UTF-8 text (SentencePiece rules: U+2581 to space, byte pieces <0xNN>
 * reassembled, special tokens dropped, leading space removed). Result is malloc'ed. */
cn_status cn_tok_decode(const cn_tokenizer *t, const int *ids, size_t n, char **text, cn_error *err);

/* Languages the model supports ("en", "de", ...), from the tokenizer's language tags. */
size_t cn_tok_language_count(const cn_tokenizer *t);
const char *cn_tok_language_at(const cn_tokenizer *t, size_t i);

/* Prompt options; strings are ISO codes as the model's language tags use them. */
typedef struct cn_prompt_opts {
    const char *source_lang;   /* required */
    const char *target_lang;   /* NULL or equal to source: transcription; else translation */
    bool pnc;                  /* punctuation & capitalization */
    bool itn;                  /* inverse text normalization (canary2) */
    bool timestamps;           /* ask for timestamp tokens (canary2) */
    bool diarize;              /* canary2 slot; models ignore it today */
    const char *emotion;       /* canary2 emotion slot, NULL = <|emo:undefined|> */
    const int *decoder_context; /* optional user context ids (canary2 <|startofcontext|> block) */
    size_t n_decoder_context;
} cn_prompt_opts;

/* Builds the decoder prompt ids for the model's prompt format. Fails with a clear message naming
 * the language and listing the supported ones. `ids` has room for `cap` ids. */
cn_status cn_tok_build_prompt(const cn_tokenizer *t, cn_prompt_format fmt, const cn_prompt_opts *opts,
                              int *ids, size_t cap, size_t *n_out, cn_error *err);

/* SentencePiece unigram encoding of UTF-8 text to ids (for the unified v2 tokenizer's prompt
 * and optional decoder context), or CANARY_EUNSUPPORTED if the model's layout does not need it. */
cn_status cn_tok_encode(const cn_tokenizer *t, const char *text, int **ids, size_t *n, cn_error *err);

#endif

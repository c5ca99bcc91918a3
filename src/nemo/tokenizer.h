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
bool cn_tok_is_aggregate(const cn_tokenizer *t);   /* aggregate (1b, flash) vs unified (v2) layout */
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

/* Detokenizes ids to UTF-8 text as NeMo does, special tokens dropped and the result trimmed of
 * leading/trailing spaces: the unified tokenizer uses SentencePiece decoding (U+2581 to space, byte
 * pieces <0xNN> reassembled as UTF-8, <unk> as " \u2047 "); the aggregate tokenizer concatenates
 * pieces with U+2581 as space (NeMo's AggregateTokenizer.ids_to_text, so <unk> stays literal).
 * Ids out of range are skipped. Result is malloc'ed. */
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
 * the language and listing the supported ones. `ids` has room for `cap` ids. For the unified
 * tokenizer (canary-1b-v2) the canary2 prompt starts with the U+2581 piece, as NeMo's SentencePiece
 * encode of the prompt string produces it (10 ids; spec §6.6). */
cn_status cn_tok_build_prompt(const cn_tokenizer *t, cn_prompt_format fmt, const cn_prompt_opts *opts,
                              int *ids, size_t cap, size_t *n_out, cn_error *err);

/* SentencePiece (BPE) encoding of UTF-8 text to ids, e.g. for the optional decoder context. The
 * unified tokenizer encodes with its one model; an aggregate tokenizer needs the language whose
 * sub-tokenizer to use (NeMo uses the target language's), so cn_tok_encode returns
 * CANARY_EUNSUPPORTED there and cn_tok_encode_lang does the work. Whitespace is normalized as
 * SentencePiece does; its NFKC character map is not applied (text that NFKC leaves unchanged
 * encodes exactly). `*ids` is malloc'ed. */
cn_status cn_tok_encode(const cn_tokenizer *t, const char *text, int **ids, size_t *n, cn_error *err);
cn_status cn_tok_encode_lang(const cn_tokenizer *t, const char *lang, const char *text, int **ids, size_t *n,
                             cn_error *err);

#endif

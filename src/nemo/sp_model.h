/* A reader for SentencePiece `.model` files (the ModelProto protobuf), written from the field
 * numbers of sentencepiece_model.proto, and SentencePiece's decoding and BPE/unigram encoding.
 *
 * Decoding follows SentencePiece's DecodeIds: CONTROL pieces vanish, UNKNOWN renders as the unk
 * surface (" \u2047 "), U+2581 becomes a space, the first piece's leading U+2581 is dropped when the
 * normalizer adds a dummy prefix, BYTE pieces <0xNN> are gathered and decoded as UTF-8 (invalid
 * bytes become U+FFFD). Encoding applies the whitespace rules of the normalizer (not its
 * precompiled NFKC character map, see docs/NEMO.md). */
#ifndef CN_NEMO_SP_MODEL_H
#define CN_NEMO_SP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

enum { CN_SPM_NORMAL = 1, CN_SPM_UNKNOWN = 2, CN_SPM_CONTROL = 3, CN_SPM_USER_DEFINED = 4, CN_SPM_UNUSED = 5,
       CN_SPM_BYTE = 6 };
enum { CN_SPM_UNIGRAM = 1, CN_SPM_BPE = 2, CN_SPM_WORD = 3, CN_SPM_CHAR = 4 };

typedef struct cn_spm_piece {
    char *piece;
    float score;
    int type;
    int byte_value; /* BYTE pieces: 0..255, else -1 */
} cn_spm_piece;

typedef struct cn_spm {
    cn_spm_piece *pieces;
    size_t n;
    int model_type;
    bool byte_fallback;
    int unk_id, bos_id, eos_id, pad_id;
    char *unk_surface; /* trainer_spec.unk_surface, default " \u2047 " */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces, treat_whitespace_as_suffix;
    char normalizer_name[32];
    bool has_charsmap;
    /* sorted piece index for encoding lookups */
    uint32_t *sorted;
} cn_spm;

#define CN_SPM_MAX_PIECES (1 << 20)
#define CN_SPM_MAX_PIECE_LEN 4096

cn_status cn_spm_parse(const uint8_t *data, size_t size, const char *label, cn_spm *out, cn_error *err);
void cn_spm_free(cn_spm *m);

/* Id of a piece string, or -1. */
int cn_spm_piece_id(const cn_spm *m, const char *piece, size_t len);

/* SentencePiece decoding, one id at a time (ids of several models may be mixed, as the aggregate
 * tokenizer does): init, put each id with its model, finish. Text is appended to `out`. */
typedef struct cn_spm_decoder {
    cn_strbuf *out;
    size_t start_len;
    bool is_bos_ws, bos_ws_seen;
    cn_strbuf bytes; /* pending BYTE pieces */
} cn_spm_decoder;

void cn_spm_decoder_init(cn_spm_decoder *d, cn_strbuf *out);
void cn_spm_decoder_put(cn_spm_decoder *d, const cn_spm *m, int id);
void cn_spm_decoder_finish(cn_spm_decoder *d);

#define CN_SPM_MAX_ENCODE (1 << 16)

/* Encodes UTF-8 text to ids (model_type BPE or UNIGRAM). Result malloc'ed. */
cn_status cn_spm_encode(const cn_spm *m, const char *text, int **ids, size_t *n, cn_error *err);

#endif

/* model_config.yaml -> cn_model_desc (typed dimensions and settings) and the tokenizer's layout.
 * Every required setting that is missing, mistyped, out of range or not implemented by canary-stt
 * fails with the key's dotted path, its line and its value. */
#ifndef CN_NEMO_MODEL_CONFIG_H
#define CN_NEMO_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "nemo/nemo.h"

#define CN_TOK_MAX_SUB 128
#define CN_TOK_REF_MAX 512

/* Where the tokenizer's SentencePiece models live, as the config names them. */
typedef struct cn_tok_config {
    bool aggregate;     /* tokenizer.type agg: sub-tokenizers in YAML order (ids offset by that order) */
    size_t n_sub;
    struct {
        char lang[32];  /* "spl_tokens", "en", ... */
        char model_ref[CN_TOK_REF_MAX]; /* "nemo:<32hex>_tokenizer.model" */
    } sub[CN_TOK_MAX_SUB];
    char model_ref[CN_TOK_REF_MAX]; /* monolingual (unified) tokenizer */
} cn_tok_config;

/* `label` names the file in messages. `tok` may be NULL. */
cn_status cn_model_config_parse(const char *yaml, size_t len, const char *label, cn_model_desc *desc,
                                cn_tok_config *tok, cn_error *err);

/* Sets desc->variant from the dimensions (and vocabulary rows, once known). */
void cn_model_desc_set_variant(cn_model_desc *desc);

#endif

/* Building a cn_tokenizer from the archive members the config names (internal to nemo/). */
#ifndef CN_NEMO_TOKENIZER_LOAD_H
#define CN_NEMO_TOKENIZER_LOAD_H

#include "nemo/archive.h"
#include "nemo/model_config.h"
#include "nemo/tokenizer.h"

cn_status cn_tokenizer_load(const cn_archive *a, const cn_tok_config *cfg, cn_tokenizer **out, cn_error *err);
/* From SentencePiece model bytes directly: `n` blocks (aggregate when names are given and n > 1 or
 * aggregate is set). For tests and fuzzers. */
cn_status cn_tokenizer_from_models(const char *const *names, const uint8_t *const *data, const size_t *sizes, size_t n,
                                   bool aggregate, cn_tokenizer **out, cn_error *err);
void cn_tokenizer_free(cn_tokenizer *t);

#endif

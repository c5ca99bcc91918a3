/* The text of a timestamp-mode output, as NeMo's process_aed_timestamp_outputs makes it (spec §7.7):
 * every <|S|> ... <|E|> group (E the next timestamp token after S) gives a word, its tokens decoded
 * and trimmed, empty ones dropped; the text is those words joined by single spaces. With fewer than
 * two timestamp tokens the text is the plain decode. Deviation, on purpose: other special tokens and
 * a stray timestamp token are dropped (cn_tok_decode), where NeMo's regex keeps them verbatim. */
#ifndef CN_MODEL_TIMESTAMPS_H
#define CN_MODEL_TIMESTAMPS_H

#include <stddef.h>

#include "base/error.h"
#include "nemo/tokenizer.h"

/* `*text` is malloc'ed. */
cn_status cn_timestamp_text(const cn_tokenizer *tk, const int *ids, size_t n, char **text, cn_error *err);

#endif

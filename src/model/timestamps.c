/* Text of timestamp-mode outputs (see timestamps.h). */
#include "model/timestamps.h"

#include <stdlib.h>

#include "base/strbuf.h"

cn_status cn_timestamp_text(const cn_tokenizer *tk, const int *ids, size_t n, char **text, cn_error *err) {
    size_t stamps = 0;
    for (size_t i = 0; i < n; i++)
        stamps += cn_tok_timestamp_value(tk, ids[i]) >= 0;
    if (stamps < 2)
        return cn_tok_decode(tk, ids, n, text, err);
    cn_strbuf sb;
    cn_sb_init(&sb);
    size_t start = 0;
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        if (cn_tok_timestamp_value(tk, ids[i]) < 0)
            continue;
        if (!in) {
            in = true;
            start = i + 1;
            continue;
        }
        in = false;
        char *word = NULL;
        cn_status st = cn_tok_decode(tk, ids + start, i - start, &word, err);
        if (st != CANARY_OK) {
            cn_sb_free(&sb);
            return st;
        }
        if (word[0]) {
            if (sb.len)
                cn_sb_putc(&sb, ' ');
            cn_sb_puts(&sb, word);
        }
        free(word);
    }
    *text = cn_sb_steal(&sb);
    if (!*text)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    return CANARY_OK;
}

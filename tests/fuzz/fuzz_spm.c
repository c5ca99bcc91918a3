/* Fuzzes the SentencePiece protobuf reader and what runs on its result: the input is a model;
 * when it parses as a tokenizer, ids derived from the input are decoded and a text is encoded. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "nemo/sp_model.h"
#include "nemo/tokenizer_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cn_error err;
    cn_spm m;
    if (cn_spm_parse(data, size, "fuzz", &m, &err) == CANARY_OK) {
        int *ids = NULL;
        size_t n = 0;
        if (cn_spm_encode(&m, "Hello wörld \xE2\x98\x83 x", &ids, &n, &err) == CANARY_OK)
            free(ids);
        cn_spm_free(&m);
    }
    const char *name = "";
    cn_tokenizer *t;
    if (cn_tokenizer_from_models(&name, &data, &size, 1, false, &t, &err) == CANARY_OK) {
        int ids[64];
        size_t n = 0;
        for (size_t i = 0; i + 1 < size && n < 64; i += 2)
            ids[n++] = (data[i] | (data[i + 1] << 8)) % (cn_tok_vocab_size(t) + 2) - 1;
        char *text;
        if (cn_tok_decode(t, ids, n, &text, &err) == CANARY_OK)
            free(text);
        int prompt[64];
        size_t np;
        cn_prompt_opts o = {.source_lang = cn_tok_language_at(t, 0), .pnc = true};
        cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, prompt, 64, &np, &err);
        cn_tokenizer_free(t);
    }
    return 0;
}

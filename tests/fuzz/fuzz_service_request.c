/* Fuzzes what the service parses from clients: multipart field values arriving in pieces
 * (cn_form_add), their validation (cn_request_params_parse), Bearer headers, and the transcript
 * JSON reader + every renderer.
 * Input: records "<key>\x01<piece>\x02<off byte>..." separated by \x00; then a Bearer header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    cn_form f;
    memset(&f, 0, sizeof f);
    cn_error err;
    size_t pos = 0;
    while (pos < size) {
        size_t end = pos;
        while (end < size && text[end] != 0)
            end++;
        char *rec = text + pos, *sep = memchr(rec, 1, end - pos);
        if (sep) {
            *sep = 0;
            char *val = sep + 1;
            size_t vlen = (size_t)(text + end - val);
            uint64_t off = 0;
            char *o = memchr(val, 2, vlen);
            if (o && o + 1 < text + end) {
                off = (uint8_t)o[1];
                vlen = (size_t)(o - val);
            }
            cn_form_add(&f, rec, val, off, vlen, &err);
        }
        pos = end + 1;
    }
    for (int task = 0; task < 2; task++) {
        cn_request_params p;
        const char *param;
        if (cn_request_params_parse(&f, (cn_task)task, task == 1, "en", true, &p, &param, &err) == CANARY_OK)
            cn_request_params_free(&p);
    }
    cn_form_free(&f);
    const char *key;
    size_t len;
    cn_bearer_token(text, &key, &len);
    cn_transcript t;
    if (cn_transcript_from_json(text, &t, &err) == CANARY_OK) {
        for (int fmt = CN_FMT_JSON; fmt <= CN_FMT_VERBOSE_JSON; fmt++)
            free(cn_transcript_render(&t, (cn_format)fmt, true));
        cn_transcript_free(&t);
    }
    free(text);
    return 0;
}

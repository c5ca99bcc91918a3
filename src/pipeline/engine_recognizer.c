#include "pipeline/engine_recognizer.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

size_t cn_piece_to_text(const char *p, char *out) {
    size_t k = 0;
    while (*p) {
        if ((unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x96 && (unsigned char)p[2] == 0x81) {
            out[k++] = ' ';
            p += 3;
        } else if (p[0] == '<' && p[1] == '0' && p[2] == 'x' && isxdigit((unsigned char)p[3]) &&
                   isxdigit((unsigned char)p[4]) && p[5] == '>') {
            char hex[3] = {p[3], p[4], 0};
            out[k++] = (char)strtol(hex, NULL, 16);
            p += 6;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = 0;
    return k;
}

int cn_piece_timestamp(const char *p) {
    size_t n = strlen(p);
    if (n < 5 || n > 9 || p[0] != '<' || p[1] != '|' || p[n - 2] != '|' || p[n - 1] != '>')
        return -1;
    int v = 0;
    for (size_t i = 2; i < n - 2; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Converts result i of the last engine run. Timestamp models write "<|s|> word <|e|>" (spec
 * §7.7): tokens between a start and an end stamp get those frames; other tokens get -1. Other
 * special tokens ("<|...|>") are dropped, as NeMo's output post-processing does. */
static cn_status convert(const canary_context *ctx, int i, cn_rec_result *out, cn_error *err) {
    int n = canary_result_token_count(ctx, i);
    out->tokens = calloc(n > 0 ? (size_t)n : 1, sizeof *out->tokens);
    if (!out->tokens)
        return cn_error_set(err, CANARY_ENOMEM, "engine adapter: out of memory");
    int open_start = -1;
    size_t open_from = 0;
    for (int j = 0; j < n; j++) {
        canary_token t = canary_result_token(ctx, i, j);
        const char *piece = t.piece ? t.piece : "";
        int ts = cn_piece_timestamp(piece);
        if (ts >= 0) {
            if (open_start < 0) {
                open_start = ts;
                open_from = out->n_tokens;
            } else {
                for (size_t k = open_from; k < out->n_tokens; k++) {
                    out->tokens[k].start_frame = open_start;
                    out->tokens[k].end_frame = ts < open_start ? open_start : ts;
                }
                open_start = -1;
            }
            continue;
        }
        if (piece[0] == '<' && piece[1] == '|')
            continue;
        char *text = malloc(strlen(piece) + 1);
        if (!text) {
            cn_rec_result_free(out);
            return cn_error_set(err, CANARY_ENOMEM, "engine adapter: out of memory");
        }
        cn_piece_to_text(piece, text);
        out->tokens[out->n_tokens++] = (cn_rec_token){t.id, t.logprob, text, -1, -1};
    }
    return CANARY_OK;
}

static cn_status engine_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                   cn_rec_result *out, cn_error *err) {
    cn_engine_recognizer *er = self;
    char msg[CN_ERROR_MSG_MAX];
    canary_status st = canary_transcribe_batch(er->ctx, &er->params, pcm, lens, (int)n, msg, sizeof msg);
    if (st != CANARY_OK)
        return cn_error_set(err, st, "%s", msg);
    for (size_t i = 0; i < n; i++) {
        cn_status cs = convert(er->ctx, (int)i, &out[i], err);
        if (cs != CANARY_OK) {
            for (size_t k = 0; k < i; k++)
                cn_rec_result_free(&out[k]);
            return cs;
        }
    }
    return CANARY_OK;
}

void cn_engine_recognizer_bind(cn_engine_recognizer *er, cn_recognizer *out) {
    double limit = canary_model_max_duration(er->model);
    *out = (cn_recognizer){.self = er,
                           .sample_rate = CANARY_SAMPLE_RATE,
                           .max_chunk_s = limit < CN_CANARY_CHUNK_LIMIT_S ? limit : CN_CANARY_CHUNK_LIMIT_S,
                           .frame_s = 0.08,
                           .transcribe = engine_transcribe};
}

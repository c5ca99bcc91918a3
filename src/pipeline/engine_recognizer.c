#include "pipeline/engine_recognizer.h"

#include "base/log.h"

#include <ctype.h>
#include <math.h>
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

cn_status cn_rec_result_from_tokens(const canary_token *toks, int n, bool timestamps, int shift_frames,
                                    cn_rec_result *out, cn_error *err) {
    *out = (cn_rec_result){0};
    out->tokens = calloc(n > 0 ? (size_t)n : 1, sizeof *out->tokens);
    if (!out->tokens)
        return cn_error_set(err, CANARY_ENOMEM, "engine adapter: out of memory");
    int stamps = 0;
    for (int j = 0; j < n; j++)
        stamps += toks[j].frame >= 0;
    /* NeMo keeps only the words inside groups once there is one (process_aed_timestamp_outputs) */
    bool grouped = timestamps && stamps >= 2;
    int open_start = -1;
    size_t open_from = 0;
    for (int j = 0; j < n; j++) {
        const canary_token *t = &toks[j];
        const char *piece = t->piece ? t->piece : "";
        if (t->frame >= 0) {
            int f = t->frame - shift_frames > 0 ? t->frame - shift_frames : 0;
            if (open_start < 0) {
                open_start = f;
                open_from = out->n_tokens;
            } else {
                for (size_t k = open_from; k < out->n_tokens; k++) {
                    out->tokens[k].start_frame = open_start;
                    out->tokens[k].end_frame = f < open_start ? open_start : f;
                }
                open_start = -1;
            }
            continue;
        }
        if (piece[0] == '<' && piece[1] == '|')
            continue;
        if (grouped && open_start < 0)
            continue;
        char *text = malloc(strlen(piece) + 1);
        if (!text) {
            cn_rec_result_free(out);
            return cn_error_set(err, CANARY_ENOMEM, "engine adapter: out of memory");
        }
        cn_piece_to_text(piece, text);
        out->tokens[out->n_tokens++] = (cn_rec_token){t->id, t->logprob, text, -1, -1};
    }
    /* an unclosed group at the end: its words are outside every group */
    if (grouped && open_start >= 0) {
        for (size_t k = open_from; k < out->n_tokens; k++)
            free(out->tokens[k].text);
        out->n_tokens = open_from;
    }
    return CANARY_OK;
}

cn_status cn_engine_result_convert(const canary_context *ctx, int i, size_t n_samples, bool timestamps,
                                   double frame_s, cn_rec_result *out, cn_error *err) {
    int n = canary_result_token_count(ctx, i);
    canary_token *toks = calloc(n > 0 ? (size_t)n : 1, sizeof *toks);
    if (!toks)
        return cn_error_set(err, CANARY_ENOMEM, "engine adapter: out of memory");
    for (int j = 0; j < n; j++)
        toks[j] = canary_result_token(ctx, i, j);
    /* The engine pads clips under 1 s to 1 s, (1 s - n) / 2 samples on the left (as NeMo does);
     * the model's frames count from the padded start. */
    int shift = 0;
    if (n_samples < CANARY_SAMPLE_RATE && frame_s > 0)
        shift = (int)lround((double)((CANARY_SAMPLE_RATE - n_samples) / 2) / (frame_s * CANARY_SAMPLE_RATE));
    cn_status st = cn_rec_result_from_tokens(toks, n, timestamps, shift, out, err);
    free(toks);
    return st;
}

static cn_status engine_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                   cn_rec_result *out, cn_error *err) {
    cn_engine_recognizer *er = self;
    char msg[CN_ERROR_MSG_MAX];
    /* each chunk as if alone: chunks of any lengths batch together, and a transcript never depends
     * on what its chunks were batched with (model/api.c, canary_params.batch_independent) */
    canary_params prm = er->params;
    prm.batch_independent = !cn_engine_equal_length_batches();
    canary_status st = canary_transcribe_batch(er->ctx, &prm, pcm, lens, (int)n, msg, sizeof msg);
    if (st == CANARY_ENOMEM && n > 1) {
        /* a GPU without memory for the batch: its halves, in turn (the context released its memory) */
        size_t h = n / 2;
        CN_WARN("engine", "out of memory for a batch of %zu chunks (%s); running it as %zu + %zu (if this repeats, "
                          "lower engine.max_batch)", n, msg, h, n - h);
        cn_status hs = engine_transcribe(self, pcm, lens, h, out, err);
        if (hs != CANARY_OK)
            return hs;
        hs = engine_transcribe(self, pcm + h, lens + h, n - h, out + h, err);
        if (hs != CANARY_OK)
            for (size_t k = 0; k < h; k++)
                cn_rec_result_free(&out[k]);
        return hs;
    }
    if (st != CANARY_OK)
        return cn_error_set(err, st, "%s", msg);
    for (size_t i = 0; i < n; i++) {
        cn_status cs = cn_engine_result_convert(er->ctx, (int)i, lens[i], er->params.timestamps,
                                                canary_model_frame_seconds(er->model), &out[i], err);
        if (cs != CANARY_OK) {
            for (size_t k = 0; k < i; k++)
                cn_rec_result_free(&out[k]);
            return cs;
        }
    }
    return CANARY_OK;
}

bool cn_engine_equal_length_batches(void) {
    const char *e = getenv("CANARY_EQUAL_LENGTH_BATCHES");
    return e && strcmp(e, "1") == 0;
}

void cn_engine_recognizer_bind(cn_engine_recognizer *er, cn_recognizer *out) {
    double limit = canary_model_max_duration(er->model);
    bool old = cn_engine_equal_length_batches();
    if (old)
        CN_WARN("engine", "CANARY_EQUAL_LENGTH_BATCHES=1 (A/B benchmarks): NeMo's batch semantics%s",
                er->params.features == CANARY_FEATURES_NEMO_2_4 ? ", chunks batched only with chunks of equal length"
                                                                : "");
    *out = (cn_recognizer){.self = er,
                           .sample_rate = CANARY_SAMPLE_RATE,
                           .max_chunk_s = limit < CN_CANARY_CHUNK_LIMIT_S ? limit : CN_CANARY_CHUNK_LIMIT_S,
                           .frame_s = canary_model_frame_seconds(er->model),
                           /* batch_independent: any lengths */
                           .equal_length_batches = old && er->params.features == CANARY_FEATURES_NEMO_2_4,
                           .transcribe = engine_transcribe};
}

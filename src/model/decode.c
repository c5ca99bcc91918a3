/* The Transformer decoder with a self-attention KV cache and cross-attention K/V computed once per
 * utterance, and NeMo's two search strategies (spec §7):
 *   beam   BeamSearchSequenceGenerator, NeMo's default (beam 1 included): generated tokens at their
 *          true positions P, P+1, ...; finished beams continue with <pad>; GNMT length penalty.
 *   greedy GreedySequenceGenerator: token i >= 1 fed at position i.
 * Items whose search can no longer change (greedy: EOS seen; beam: every beam ended) are not run
 * any more; the remaining rows of the batch continue (per-sequence early exit). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_ctx.h"

#define OPS(c) ((c)->m->be->ops)

void cn_decode_opts_default(const cn_canary *m, cn_decode_opts *o) {
    memset(o, 0, sizeof *o);
    const cn_decoding_desc *d = &m->desc.decoding;
    o->search = strcmp(d->strategy, "greedy") == 0 || strcmp(d->strategy, "greedy_batch") == 0 ? CN_SEARCH_GREEDY
                                                                                                : CN_SEARCH_BEAM;
    o->beam_size = d->beam_size > 0 ? d->beam_size : 1;
    o->length_penalty = d->length_penalty;
    o->max_generation_delta = d->max_generation_delta;
    o->eos = o->pad = -1;
}

void cn_hypothesis_free(cn_hypothesis *h) {
    if (!h)
        return;
    free(h->ids);
    free(h->logprobs);
    free(h->positions);
    free(h->step_logprobs);
    free(h->best);
    memset(h, 0, sizeof *h);
}

void cn_dec_state_free(cn_canary_ctx *c) {
    for (int l = 0; l < c->n_dec_layers; l++) {
        if (c->cross_kv)
            cn_ctx_buf_free(c, &c->cross_kv[l]);
        if (c->kc)
            cn_ctx_buf_free(c, &c->kc[l]);
        if (c->vc)
            cn_ctx_buf_free(c, &c->vc[l]);
    }
    free(c->cross_kv);
    free(c->kc);
    free(c->vc);
    c->cross_kv = c->kc = c->vc = NULL;
    c->n_dec_layers = 0;
    c->cache_rows = c->cache_cap = 0;
}

static cn_status dec_alloc_layers(cn_canary_ctx *c, cn_error *err) {
    int L = c->m->desc.dec.n_layers;
    if (c->n_dec_layers == L)
        return CANARY_OK;
    cn_dec_state_free(c);
    c->cross_kv = calloc((size_t)L, sizeof(cn_buf));
    c->kc = calloc((size_t)L, sizeof(cn_buf));
    c->vc = calloc((size_t)L, sizeof(cn_buf));
    if (!c->cross_kv || !c->kc || !c->vc)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    c->n_dec_layers = L;
    return CANARY_OK;
}

/* Makes the self-attention caches hold `rows` x `cap` positions, keeping the first `keep`
 * positions of every row (capacity doubles, so growth is amortised over a decode). */
static cn_status cache_reserve(cn_canary_ctx *c, int rows, int cap, int keep, cn_error *err) {
    if (rows == c->cache_rows && cap <= c->cache_cap)
        return CANARY_OK;
    int d = c->m->desc.dec.hidden;
    int new_cap = c->cache_cap > 0 && rows == c->cache_rows ? c->cache_cap : 16;
    while (new_cap < cap)
        new_cap *= 2;
    for (int l = 0; l < c->n_dec_layers; l++) {
        cn_buf *bufs[2] = {&c->kc[l], &c->vc[l]};
        for (int w = 0; w < 2; w++) {
            cn_buf nb = {0};
            CN_TRY(cn_ctx_buf_reserve(c, &nb, (size_t)rows * new_cap * d, err));
            if (keep > 0 && rows == c->cache_rows)
                for (int r = 0; r < rows; r++)
                    OPS(c)->copy(c->ex, nb.p + (size_t)r * new_cap * d, bufs[w]->p + (size_t)r * c->cache_cap * d,
                                 sizeof(float) * (size_t)keep * d);
            cn_ctx_buf_free(c, bufs[w]);
            *bufs[w] = nb;
        }
    }
    c->cache_rows = rows;
    c->cache_cap = new_cap;
    return CANARY_OK;
}

/* The operations of one decoder step (dec_step): queued, not waited for. */
static void dec_step_ops(cn_canary_ctx *c, int n, int lq, const int *ids, const int *pos, int cur,
                         const int *cache_row, const int *item) {
    const cn_canary *m = c->m;
    const cn_backend_ops *ops = m->be->ops;
    int d = m->desc.dec.hidden, h = m->desc.dec.n_heads, dk = d / h, inner = m->desc.dec.inner;
    size_t rows = (size_t)n * lq;
    float *x = c->buf[BUF_DH].p, *ln = c->buf[BUF_DLN].p, *qkv = c->buf[BUF_DQKV].p, *att = c->buf[BUF_DATT].p,
          *ff = c->buf[BUF_DFF].p;
    ops->embed(c->ex, m->tok_emb, m->pos_enc, ids, pos, (int)rows, d, x);
    const float eps = 1e-5f;
    ops->layer_norm(c->ex, x, x, (int)rows, d, m->emb_ln_g, m->emb_ln_b, eps);
    /* NeMo scales q and k each by dk^-1/4; one 1/sqrt(dk) on the product is the same math. */
    float scale = 1.0f / sqrtf((float)dk);
    for (int l = 0; l < m->desc.dec.n_layers; l++) {
        const dec_layer *L = &m->dec[l];
        /* self-attention over the cache + the new positions (causal) */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln1_g, L->ln1_b, eps);
        ops->linear(c->ex, L->self_qkv, ln, d, (int)rows, qkv, 3 * d, CN_ACT_NONE, false, 0);
        /* append K/V to the cache: when the rows use consecutive cache rows (greedy, and the
         * prompt of any search), one strided copy per position across all rows (one in all for the
         * usual one-token step); else one per row for its lq positions. The prompt of a batch of
         * 128 is 9 copies per layer, not 128: launches, not bytes, are its cost. */
        bool consecutive = true;
        for (int s = 1; s < n && consecutive; s++)
            consecutive = cache_row[s] == cache_row[0] + s;
        bool by_position = consecutive && lq <= n;
        size_t row_b = sizeof(float) * (size_t)d, cache_pitch = row_b * (size_t)c->cache_cap;
        for (int i = 0; i < (by_position ? lq : n); i++) {
            size_t src, dst, src_pitch, dst_pitch, count;
            if (by_position) { /* position i of every row */
                src = (size_t)i * 3 * d;
                dst = ((size_t)cache_row[0] * c->cache_cap + (size_t)cur + (size_t)i) * d;
                src_pitch = (size_t)lq * 3 * row_b, dst_pitch = cache_pitch, count = (size_t)n;
            } else { /* every position of row i */
                src = (size_t)i * lq * 3 * d;
                dst = ((size_t)cache_row[i] * c->cache_cap + (size_t)cur) * d;
                src_pitch = 3 * row_b, dst_pitch = row_b, count = (size_t)lq;
            }
            ops->copy_2d(c->ex, c->kc[l].p + dst, dst_pitch, qkv + src + d, src_pitch, row_b, count);
            ops->copy_2d(c->ex, c->vc[l].p + dst, dst_pitch, qkv + src + 2 * d, src_pitch, row_b, count);
        }
        cn_attn_args sa = {.n_seq = n, .n_heads = h, .head_dim = dk, .lq = lq, .lk = cur + lq, .q = qkv,
                           .ldq = 3 * d, .q_seq_stride = (size_t)lq * 3 * d, .k = c->kc[l].p, .v = c->vc[l].p,
                           .ldk = d, .kv_seq_stride = (size_t)c->cache_cap * d, .kv_block = cache_row,
                           .kv_valid = NULL, .causal_offset = cur, .scale = scale, .out = att, .ldo = d,
                           .out_seq_stride = (size_t)lq * d};
        ops->attention(c->ex, &sa);
        ops->linear(c->ex, L->self_out, att, d, (int)rows, x, d, CN_ACT_NONE, true, 1.0f);
        /* cross-attention over the encoder states of the row's item */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln2_g, L->ln2_b, eps);
        ops->linear(c->ex, L->cross_q, ln, d, (int)rows, qkv, d, CN_ACT_NONE, false, 0);
        cn_attn_args ca = {.n_seq = n, .n_heads = h, .head_dim = dk, .lq = lq, .lk = c->enc_t, .q = qkv, .ldq = d,
                           .q_seq_stride = (size_t)lq * d, .k = c->cross_kv[l].p, .v = c->cross_kv[l].p + d,
                           .ldk = 2 * d, .kv_seq_stride = (size_t)c->enc_t * 2 * d, .kv_block = item,
                           .kv_valid = c->enc_valid, .causal_offset = -1, .scale = scale, .out = att, .ldo = d,
                           .out_seq_stride = (size_t)lq * d};
        ops->attention(c->ex, &ca);
        ops->linear(c->ex, L->cross_out, att, d, (int)rows, x, d, CN_ACT_NONE, true, 1.0f);
        /* feed-forward */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln3_g, L->ln3_b, eps);
        cn_ffn(ops, c->ex, L->ff_in, L->ff_out, ln, d, (int)rows, ff, inner, x, d, CN_ACT_RELU, true, 1.0f);
    }
    float *last = c->buf[BUF_DLAST].p;
    ops->copy_2d(c->ex, last, sizeof(float) * (size_t)d, x + (size_t)(lq - 1) * d, sizeof(float) * (size_t)lq * d,
                 sizeof(float) * (size_t)d, (size_t)n);
    if (m->final_ln_g)
        ops->layer_norm(c->ex, last, last, n, d, m->final_ln_g, m->final_ln_b, eps);
    ops->linear(c->ex, m->head, last, d, n, c->buf[BUF_LOGITS].p, m->vocab, CN_ACT_NONE, false, 0);
    ops->log_softmax(c->ex, c->buf[BUF_LOGITS].p, n, m->vocab);
}

/* Runs the decoder on `n` rows of `lq` new tokens each. Row s reads/writes cache row
 * cache_row[s], attends to encoder item item[s], has `cur` cached positions before this step, and
 * its tokens are embedded at positions pos0 .. pos0+lq-1. Leaves log-probs of each row's last
 * token in BUF_LOGITS [n, vocab]. A one-token step is recorded as one graph where the backend
 * can (CUDA graphs: its ~100 small kernels launched at once); a recording the backend gives up
 * has run nothing, and the step is queued again without it. */
static cn_status dec_step(cn_canary_ctx *c, int n, int lq, const int *ids, int pos0, int cur, const int *cache_row,
                          const int *item, cn_error *err) {
    const cn_canary *m = c->m;
    const cn_backend_ops *ops = m->be->ops;
    int d = m->desc.dec.hidden, inner = m->desc.dec.inner;
    size_t rows = (size_t)n * lq;
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_DH], rows * d, err));
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_DLN], rows * d, err));
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_DQKV], rows * 3 * d, err));
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_DATT], rows * d, err));
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_DFF], rows * inner, err));
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_DLAST], (size_t)n * d, err));
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_LOGITS], (size_t)n * m->vocab, err));
    int *pos = malloc(sizeof(int) * rows);
    if (!pos)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    for (size_t r = 0; r < rows; r++)
        pos[r] = pos0 + (int)(r % (size_t)lq);
    bool recorded = lq == 1 && ops->capture_begin && ops->capture_begin(c->ex);
    dec_step_ops(c, n, lq, ids, pos, cur, cache_row, item);
    if (recorded && !ops->capture_end(c->ex))
        dec_step_ops(c, n, lq, ids, pos, cur, cache_row, item);
    free(pos);
    return ops->sync(c->ex, err); /* a GPU reports its failures here */
}

/* Cross-attention keys/values of every layer, once per encoder pass. */
static cn_status prepare_cross(cn_canary_ctx *c, cn_error *err) {
    if (c->dec_ready)
        return CANARY_OK;
    CN_TRY(dec_alloc_layers(c, err));
    int d = c->m->desc.dec.hidden;
    size_t rows = (size_t)c->enc_n * c->enc_t;
    for (int l = 0; l < c->n_dec_layers; l++) {
        CN_TRY(cn_ctx_buf_reserve(c, &c->cross_kv[l], rows * 2 * d, err));
        OPS(c)->linear(c->ex, c->m->dec[l].cross_kv, c->buf[BUF_ENC].p, d, (int)rows, c->cross_kv[l].p, 2 * d,
                       CN_ACT_NONE, false, 0);
    }
    c->dec_ready = true;
    return CANARY_OK;
}

/* ------------------------------------------------------------------------------------------- */

typedef struct search {
    int B, k, R, P, max_gen, vocab, eos, pad;
    int *tok;        /* [R, max_gen + 1] generated tokens */
    float *lp;       /* [R, max_gen + 1] their log-probs */
    int n_gen;       /* tokens generated so far per row (same for all rows) */
    float *score;    /* [R] */
    float *plen;     /* [R] NeMo's prefixes_len */
    bool *ended;     /* [R] pad_profile */
    bool *done;      /* [B] */
    float *steps;    /* [B, logprob_steps, vocab] */
    int *n_steps;    /* [B] */
    int prompt_not_end; /* prompt ids that are neither EOS nor PAD */
    int *best;       /* [R, max_gen + 1] argmax per step under teacher forcing */
    const int *lim;  /* NULL, or [B] each item's own step limit (cn_decode_opts.item_limits) */
} search;

static void search_free(search *s) {
    free(s->tok);
    free(s->lp);
    free(s->score);
    free(s->plen);
    free(s->ended);
    free(s->done);
    free(s->steps);
    free(s->n_steps);
    free(s->best);
}

static void record_steps(cn_canary_ctx *c, search *s, const cn_decode_opts *o, const int *row_item,
                         const int *row_beam, int n, const float *logp_host_rows) {
    if (o->logprob_steps <= 0)
        return;
    for (int r = 0; r < n; r++) {
        int b = row_item[r];
        if (row_beam[r] != 0 || s->n_steps[b] >= o->logprob_steps)
            continue;
        memcpy(s->steps + ((size_t)b * o->logprob_steps + s->n_steps[b]) * s->vocab,
               logp_host_rows + (size_t)r * s->vocab, sizeof(float) * (size_t)s->vocab);
        s->n_steps[b]++;
    }
    (void)c;
}

static cn_status finish(cn_canary_ctx *c, search *s, const cn_decode_opts *o, const int *best_row,
                        const bool greedy, cn_hypothesis *out, cn_error *err) {
    (void)c;
    int W = s->max_gen + 1;
    for (int b = 0; b < s->B; b++) {
        cn_hypothesis *h = &out[b];
        memset(h, 0, sizeof *h);
        int r = best_row[b];
        int n = s->n_gen;
        /* an item stopped at its own limit holds pads after it (kept with ignore_eos otherwise) */
        if (s->lim && n > s->lim[b] + (greedy ? 0 : 1))
            n = s->lim[b] + (greedy ? 0 : 1);
        /* trailing EOS/pad are not text; with ignore_eos (benchmarks) every generated token is kept,
         * so that the count says how much work was done */
        while (!o->ignore_eos && n > 0 &&
               (s->tok[(size_t)r * W + n - 1] == s->eos || s->tok[(size_t)r * W + n - 1] == s->pad))
            n--;
        h->ids = malloc(sizeof(int) * (size_t)(n + 1));
        h->logprobs = malloc(sizeof(float) * (size_t)(n + 1));
        h->positions = malloc(sizeof(int) * (size_t)(n + 1));
        if (!h->ids || !h->logprobs || !h->positions) {
            for (int j = 0; j <= b; j++)
                cn_hypothesis_free(&out[j]);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory");
        }
        float sum = 0;
        for (int i = 0; i < n; i++) {
            h->ids[i] = s->tok[(size_t)r * W + i];
            h->logprobs[i] = s->lp[(size_t)r * W + i];
            h->positions[i] = s->P + i;
            sum += h->logprobs[i];
        }
        h->n = n;
        h->score = greedy ? sum : s->score[r];
        if (s->best) {
            h->best = malloc(sizeof(int) * (size_t)(n + 1));
            if (!h->best) {
                for (int j = 0; j <= b; j++)
                    cn_hypothesis_free(&out[j]);
                return cn_error_set(err, CANARY_ENOMEM, "out of memory");
            }
            memcpy(h->best, s->best + (size_t)r * W, sizeof(int) * (size_t)n);
        }
        if (o->logprob_steps > 0 && s->n_steps[b] > 0) {
            size_t sz = sizeof(float) * (size_t)s->n_steps[b] * s->vocab;
            h->step_logprobs = malloc(sz);
            if (!h->step_logprobs) {
                for (int j = 0; j <= b; j++)
                    cn_hypothesis_free(&out[j]);
                return cn_error_set(err, CANARY_ENOMEM, "out of memory");
            }
            memcpy(h->step_logprobs, s->steps + (size_t)b * o->logprob_steps * s->vocab, sz);
            h->n_steps = s->n_steps[b];
        }
    }
    return CANARY_OK;
}

/* Applies the beam's reordering to the cache rows of item b: new row j <- old row src[j]. */
static cn_status reorder_cache(cn_canary_ctx *c, int b, int k, const int *src, int len, cn_error *err) {
    bool identity = true;
    for (int j = 0; j < k; j++)
        identity = identity && src[j] == j;
    if (identity || len <= 0)
        return CANARY_OK;
    int d = c->m->desc.dec.hidden;
    size_t row = (size_t)len * d;
    CN_TRY(cn_ctx_buf_reserve(c, &c->buf[BUF_TMP], row * k, err));
    for (int l = 0; l < c->n_dec_layers; l++) {
        float *caches[2] = {c->kc[l].p, c->vc[l].p};
        for (int w = 0; w < 2; w++) {
            for (int j = 0; j < k; j++)
                OPS(c)->copy(c->ex, c->buf[BUF_TMP].p + (size_t)j * row,
                             caches[w] + ((size_t)(b * k + j) * c->cache_cap) * d, sizeof(float) * row);
            for (int j = 0; j < k; j++)
                OPS(c)->copy(c->ex, caches[w] + ((size_t)(b * k + j) * c->cache_cap) * d,
                             c->buf[BUF_TMP].p + (size_t)src[j] * row, sizeof(float) * row);
        }
    }
    return CANARY_OK;
}

/* Tokens a search may generate after a P-token prompt over enc_len encoder frames: NeMo's rule
 * (the decoder's positions, or enc_len + max_generation_delta), capped by max_new_tokens (beam
 * search emits one token before its loop, and max_new_tokens counts it). */
static int gen_limit(const cn_canary *m, const cn_decode_opts *o, int enc_len, int P, bool greedy) {
    int limit = m->max_pos;
    if (o->max_generation_delta >= 0 && enc_len + o->max_generation_delta < limit)
        limit = enc_len + o->max_generation_delta;
    int n = limit - P;
    if (o->max_new_tokens > 0 && o->max_new_tokens - (greedy ? 0 : 1) < n)
        n = o->max_new_tokens - (greedy ? 0 : 1);
    return n < 0 ? 0 : n;
}

cn_status cn_canary_decode(cn_canary_ctx *c, const int *prompt, int P, const cn_decode_opts *o, cn_hypothesis *out,
                           cn_error *err) {
    const cn_canary *m = c->m;
    const cn_backend_ops *ops = m->be->ops;
    if (c->enc_n <= 0)
        return cn_error_set(err, CANARY_EINVAL, "decode: run the encoder first");
    if (P <= 0 || P > m->max_pos)
        return cn_error_set(err, CANARY_EINVAL, "decode: prompt of %d tokens (the decoder holds %d positions)", P,
                            m->max_pos);
    bool greedy = o->search == CN_SEARCH_GREEDY;
    int k = greedy ? 1 : o->beam_size;
    if (k < 1 || k > 64)
        return cn_error_set(err, CANARY_EINVAL, "decode: beam size %d (allowed 1..64)", o->beam_size);
    if (k > m->vocab)
        k = m->vocab;
    if (o->force_ids && k != 1)
        return cn_error_set(err, CANARY_EINVAL, "decode: teacher forcing needs greedy or beam 1");
    int eos = o->eos, pad = o->pad;
    if (eos < 0 || eos >= m->vocab)
        return cn_error_set(err, CANARY_EINVAL, "decode: EOS id %d is outside the vocabulary (%d)", eos, m->vocab);
    for (int i = 0; i < P; i++)
        if (prompt[i] < 0 || prompt[i] >= m->vocab)
            return cn_error_set(err, CANARY_EINVAL, "decode: prompt id %d is outside the vocabulary (%d)", prompt[i],
                                m->vocab);
    /* NeMo's maximum-length rule: the padded encoder length of the batch, not the item's. */
    int max_gen = gen_limit(m, o, c->enc_t, P, greedy);
    /* Per item (item_limits): the same rule from the encoder length the item has alone; an item
     * stops there (done), as it would alone, while longer ones go on. */
    int *lim = NULL;
    if (o->item_limits) {
        lim = malloc(sizeof(int) * (size_t)c->enc_n);
        if (!lim)
            return cn_error_set(err, CANARY_ENOMEM, "out of memory decoding");
        int most = 0;
        for (int b = 0; b < c->enc_n; b++) {
            lim[b] = gen_limit(m, o, c->enc_alone[b], P, greedy);
            most = lim[b] > most ? lim[b] : most;
        }
        if (most < max_gen)
            max_gen = most;
    }
    cn_status pst = prepare_cross(c, err);
    if (pst != CANARY_OK) {
        free(lim);
        return pst;
    }

    search s = {.B = c->enc_n, .k = k, .P = P, .max_gen = max_gen, .vocab = m->vocab, .eos = eos, .pad = pad,
                .lim = lim};
    s.R = s.B * k;
    int W = max_gen + 1;
    s.tok = calloc((size_t)s.R * W, sizeof(int));
    s.lp = calloc((size_t)s.R * W, sizeof(float));
    s.score = calloc((size_t)s.R, sizeof(float));
    s.plen = calloc((size_t)s.R, sizeof(float));
    s.ended = calloc((size_t)s.R, sizeof(bool));
    s.done = calloc((size_t)s.B, sizeof(bool));
    s.n_steps = calloc((size_t)s.B, sizeof(int));
    s.best = o->force_ids ? calloc((size_t)s.R * W, sizeof(int)) : NULL;
    s.steps = o->logprob_steps > 0 ? calloc((size_t)s.B * o->logprob_steps * m->vocab, sizeof(float)) : NULL;
    int *ids = malloc(sizeof(int) * (size_t)s.R * P), *crow = malloc(sizeof(int) * (size_t)s.R),
        *item = malloc(sizeof(int) * (size_t)s.R), *beam = malloc(sizeof(int) * (size_t)s.R),
        *best = malloc(sizeof(int) * (size_t)s.B), *src = malloc(sizeof(int) * (size_t)k),
        *tk_i = malloc(sizeof(int) * (size_t)s.R * k), *sel_i = malloc(sizeof(int) * (size_t)k * k);
    float *sc_i = malloc(sizeof(float) * (size_t)s.R * k), *cand = malloc(sizeof(float) * (size_t)k * k),
          *sel_v = malloc(sizeof(float) * (size_t)k * k), *lpen = malloc(sizeof(float) * (size_t)k),
          *logp = malloc(sizeof(float) * (size_t)s.R * m->vocab);
    int *ntok = malloc(sizeof(int) * (size_t)k * W);
    float *nlp = malloc(sizeof(float) * (size_t)k * W);
    cn_status st = CANARY_OK;
    if (!s.tok || !s.lp || !s.score || !s.plen || !s.ended || !s.done || !s.n_steps ||
        (o->logprob_steps > 0 && !s.steps) || !ids || !crow || !item || !beam || !best || !src || !tk_i || !sel_i ||
        !sc_i || !cand || !sel_v || !lpen || !logp || !ntok || !nlp) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory decoding");
        goto done;
    }
    for (int i = 0; i < P; i++)
        s.prompt_not_end += prompt[i] != eos && prompt[i] != pad;

    /* Step 0: the whole prompt, positions 0..P-1, one row per item; the cache row of item b is
     * b*k (replicated to its other beams below). */
    st = cache_reserve(c, s.R, P + (max_gen < 64 ? max_gen : 64) + 1, 0, err);
    if (st != CANARY_OK)
        goto done;
    for (int b = 0; b < s.B; b++) {
        memcpy(ids + (size_t)b * P, prompt, sizeof(int) * (size_t)P);
        crow[b] = b * k;
        item[b] = b;
        beam[b] = 0;
    }
    st = dec_step(c, s.B, P, ids, 0, 0, crow, item, err);
    if (st != CANARY_OK)
        goto done;
    /* Greedy needs the whole rows on the host only to record them or to read a forced token's
     * log-prob; otherwise each row's first maximum is found where the rows are (top-1: the lower
     * index wins ties, as torch.argmax), one small transfer from a GPU instead of n x vocab floats. */
    bool full_rows = !greedy || o->force_ids || o->logprob_steps > 0;
    if (full_rows) {
        ops->download(c->ex, logp, c->buf[BUF_LOGITS].p, sizeof(float) * (size_t)s.B * m->vocab);
        record_steps(c, &s, o, item, beam, s.B, logp);
    } else {
        ops->topk(c->ex, c->buf[BUF_LOGITS].p, s.B, m->vocab, 1, sc_i, tk_i);
    }
    int cur = P; /* cached positions */
    if (lim)
        for (int b = 0; b < s.B; b++)
            if (lim[b] <= 0)
                s.done[b] = true; /* alone, its loop would not run */
    if (greedy) {
        /* row r (of logp, or sc_i/tk_i) belongs to item[r]; items already done ran only to record log-probs */
        int n = s.B;
        for (int i = 0; max_gen > 0;) {
            for (int b = 0; b < s.B; b++) {
                s.tok[(size_t)b * W + i] = pad;
                s.lp[(size_t)b * W + i] = 0;
            }
            for (int r = 0; r < n; r++) {
                int b = item[r];
                if (s.done[b])
                    continue;
                const float *row = logp + (size_t)r * m->vocab;
                int arg = 0; /* first maximum, as torch.argmax */
                if (full_rows) {
                    for (int v = 1; v < m->vocab; v++)
                        if (row[v] > row[arg])
                            arg = v;
                } else {
                    arg = tk_i[r];
                }
                if (s.best)
                    s.best[(size_t)b * W + i] = arg;
                if (o->force_ids && i < o->n_force[b]) {
                    arg = o->force_ids[b][i];
                    if (arg < 0 || arg >= m->vocab)
                        arg = eos;
                }
                s.tok[(size_t)b * W + i] = arg;
                s.lp[(size_t)b * W + i] = full_rows ? row[arg] : sc_i[r];
                if (arg == eos && !o->ignore_eos)
                    s.done[b] = true;
            }
            s.n_gen = ++i;
            if (lim)
                for (int b = 0; b < s.B; b++)
                    if (i >= lim[b])
                        s.done[b] = true;
            bool all = true;
            for (int b = 0; b < s.B; b++)
                all = all && s.done[b];
            if (all || i >= max_gen)
                break;
            /* Token i-1 is fed at position i (NeMo's greedy generator), after `cur` cached keys. */
            n = 0;
            for (int b = 0; b < s.B; b++)
                if (!s.done[b] || o->logprob_steps > i) {
                    ids[n] = s.tok[(size_t)b * W + i - 1];
                    crow[n] = b;
                    item[n] = b;
                    beam[n] = 0;
                    n++;
                }
            st = cache_reserve(c, s.R, cur + 1, cur, err);
            if (st == CANARY_OK)
                st = dec_step(c, n, 1, ids, i, cur, crow, item, err);
            if (st != CANARY_OK)
                goto done;
            cur++;
            if (full_rows) {
                ops->download(c->ex, logp, c->buf[BUF_LOGITS].p, sizeof(float) * (size_t)n * m->vocab);
                record_steps(c, &s, o, item, beam, n, logp);
            } else {
                ops->topk(c->ex, c->buf[BUF_LOGITS].p, n, m->vocab, 1, sc_i, tk_i);
            }
        }
        for (int b = 0; b < s.B; b++)
            best[b] = b;
        st = finish(c, &s, o, best, true, out, err);
        goto done;
    }

    /* Beam search. Initial beams: top-k of the prompt step. */
    ops->topk(c->ex, c->buf[BUF_LOGITS].p, s.B, m->vocab, k, sc_i, tk_i);
    if (o->force_ids) /* beam 1 with teacher forcing: the forced token replaces the best one */
        for (int b = 0; b < s.B; b++) {
            s.best[(size_t)b * W] = tk_i[b];
            if (o->n_force[b] > 0 && o->force_ids[b][0] >= 0 && o->force_ids[b][0] < m->vocab) {
                tk_i[b] = o->force_ids[b][0];
                sc_i[b] = logp[(size_t)b * m->vocab + tk_i[b]];
            }
        }
    for (int b = 0; b < s.B; b++)
        for (int j = 0; j < k; j++) {
            int r = b * k + j;
            s.tok[(size_t)r * W] = tk_i[b * k + j];
            s.lp[(size_t)r * W] = sc_i[b * k + j];
            s.score[r] = sc_i[b * k + j];
            s.plen[r] = (float)(P + 1 + 1); /* NeMo: prefixes.size(1) + 1 */
            s.ended[r] = false;             /* NeMo starts with an all-zero pad_profile */
        }
    s.n_gen = 1;
    /* replicate the prompt's cache row to the item's other beams */
    for (int b = 0; b < s.B; b++)
        for (int j = 1; j < k; j++)
            for (int l = 0; l < c->n_dec_layers; l++) {
                size_t row = (size_t)c->cache_cap * m->desc.dec.hidden;
                ops->copy(c->ex, c->kc[l].p + (size_t)(b * k + j) * row, c->kc[l].p + (size_t)(b * k) * row,
                          sizeof(float) * (size_t)P * m->desc.dec.hidden);
                ops->copy(c->ex, c->vc[l].p + (size_t)(b * k + j) * row, c->vc[l].p + (size_t)(b * k) * row,
                          sizeof(float) * (size_t)P * m->desc.dec.hidden);
            }
    for (int step = P; step < P + max_gen; step++) {
        int n = 0;
        for (int b = 0; b < s.B; b++)
            if (!s.done[b] || o->logprob_steps > s.n_gen)
                for (int j = 0; j < k; j++) {
                    int r = b * k + j;
                    ids[n] = s.tok[(size_t)r * W + s.n_gen - 1];
                    crow[n] = r;
                    item[n] = b;
                    beam[n] = j;
                    n++;
                }
        if (n == 0)
            break;
        st = cache_reserve(c, s.R, cur + 1, cur, err);
        if (st == CANARY_OK)
            st = dec_step(c, n, 1, ids, step, cur, crow, item, err);
        if (st != CANARY_OK)
            goto done;
        cur++;
        ops->download(c->ex, logp, c->buf[BUF_LOGITS].p, sizeof(float) * (size_t)n * m->vocab);
        record_steps(c, &s, o, item, beam, n, logp);
        ops->topk(c->ex, c->buf[BUF_LOGITS].p, n, m->vocab, k, sc_i, tk_i);
        if (o->force_ids)
            for (int q = 0; q < n; q++) {
                int b = item[q], g = s.n_gen;
                s.best[(size_t)b * W + g] = tk_i[q];
                if (g < o->n_force[b] && o->force_ids[b][g] >= 0 && o->force_ids[b][g] < m->vocab) {
                    tk_i[q] = o->force_ids[b][g];
                    sc_i[q] = logp[(size_t)q * m->vocab + tk_i[q]];
                }
            }
        /* finished items are frozen: their beams continue with <pad>, scores unchanged */
        for (int b = 0; b < s.B; b++)
            if (s.done[b])
                for (int j = 0; j < k; j++)
                    s.tok[(size_t)(b * k + j) * W + s.n_gen] = pad;
        for (int q = 0; q < n; q += k) {
            int b = item[q];
            if (s.done[b])
                continue; /* ran only to record log-probs; frozen */
            /* candidates c = j*k + jj */
            for (int j = 0; j < k; j++) {
                int r = b * k + j;
                lpen[j] = (float)pow((5.0 + s.plen[r]) / 6.0, o->length_penalty);
                for (int jj = 0; jj < k; jj++) {
                    float si = sc_i[(size_t)(q + j) * k + jj];
                    float f = s.ended[r] ? (jj == 0 ? 0.0f : 10001.0f) : 1.0f;
                    cand[j * k + jj] = (s.score[r] + si * f) / lpen[j];
                }
            }
            ops->topk(c->ex, cand, 1, k * k, k, sel_v, sel_i);
            for (int j = 0; j < k; j++) {
                int ci = sel_i[j], sj = ci / k, jj = ci % k, r_src = b * k + sj;
                src[j] = sj;
                memcpy(ntok + (size_t)j * W, s.tok + (size_t)r_src * W, sizeof(int) * (size_t)s.n_gen);
                memcpy(nlp + (size_t)j * W, s.lp + (size_t)r_src * W, sizeof(float) * (size_t)s.n_gen);
                ntok[(size_t)j * W + s.n_gen] = s.ended[r_src] ? pad : tk_i[(size_t)(q + sj) * k + jj];
                nlp[(size_t)j * W + s.n_gen] = s.ended[r_src] ? 0.0f : sc_i[(size_t)(q + sj) * k + jj];
                sel_v[j] = sel_v[j] * lpen[j]; /* NeMo multiplies back by the penalty of row position j */
            }
            st = reorder_cache(c, b, k, src, cur, err);
            if (st != CANARY_OK)
                goto done;
            bool all_ended = true;
            for (int j = 0; j < k; j++) {
                int r = b * k + j;
                memcpy(s.tok + (size_t)r * W, ntok + (size_t)j * W, sizeof(int) * (size_t)(s.n_gen + 1));
                memcpy(s.lp + (size_t)r * W, nlp + (size_t)j * W, sizeof(float) * (size_t)(s.n_gen + 1));
                s.score[r] = sel_v[j];
                int not_end = s.prompt_not_end;
                for (int g = 0; g <= s.n_gen; g++)
                    not_end += s.tok[(size_t)r * W + g] != eos && s.tok[(size_t)r * W + g] != pad;
                s.plen[r] = (float)(1 + not_end);
                int last = s.tok[(size_t)r * W + s.n_gen];
                s.ended[r] = !o->ignore_eos && (last == eos || last == pad);
                all_ended = all_ended && s.ended[r];
            }
            if (all_ended)
                s.done[b] = true;
        }
        s.n_gen++;
        if (lim) /* alone, item b's loop ends after lim[b] steps (the first token came before it) */
            for (int b = 0; b < s.B; b++)
                if (s.n_gen >= lim[b] + 1)
                    s.done[b] = true;
        bool all = true;
        for (int b = 0; b < s.B; b++)
            all = all && s.done[b];
        if (all)
            break;
    }
    for (int b = 0; b < s.B; b++) {
        int bj = 0;
        float bv = -INFINITY;
        for (int j = 0; j < k; j++) {
            int r = b * k + j;
            float v = s.score[r] / (float)pow((5.0 + s.plen[r]) / 6.0, o->length_penalty);
            if (v > bv) {
                bv = v;
                bj = j;
            }
        }
        best[b] = b * k + bj;
    }
    st = finish(c, &s, o, best, false, out, err);
done:
    search_free(&s);
    free(lim);
    free(ids), free(crow), free(item), free(beam), free(best), free(src), free(tk_i), free(sel_i);
    free(sc_i), free(cand), free(sel_v), free(lpen), free(logp), free(ntok), free(nlp);
    return st;
}

/* Canary: loading, contexts and the FastConformer encoder. The decoder and search are in decode.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "features/features.h"
#include "model/model_ctx.h"

#define OPS(m) ((m)->be->ops)

static int half_up(int n) { return n <= 0 ? 0 : (n - 1) / 2 + 1; }

int cn_canary_subsampled_length(int frames) { return half_up(half_up(half_up(frames))); }

/* ------------------------------------------------------------------------------------------- */
/* Loading                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static cn_status check_desc(const cn_model_desc *d, cn_error *err) {
    const cn_encoder_desc *e = &d->enc;
    if (strcmp(e->subsampling, "dw_striding") != 0 || e->subsampling_factor != 8)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "encoder.subsampling %s x%d is not supported (only dw_striding x8, as every Canary release)",
                            e->subsampling, e->subsampling_factor);
    if (strcmp(e->self_attention_model, "rel_pos") != 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "encoder.self_attention_model %s is not supported (rel_pos only)",
                            e->self_attention_model);
    if (strcmp(e->conv_norm_type, "batch_norm") != 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "encoder.conv_norm_type %s is not supported (batch_norm only)",
                            e->conv_norm_type);
    if (e->att_context_left != -1 || e->att_context_right != -1)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "encoder.att_context_size [%d, %d] is not supported (full attention [-1, -1] only)",
                            e->att_context_left, e->att_context_right);
    if (e->n_heads <= 0 || e->d_model <= 0 || e->d_model % e->n_heads != 0)
        return cn_error_set(err, CANARY_EFORMAT, "encoder.d_model %d is not a multiple of encoder.n_heads %d",
                            e->d_model, e->n_heads);
    if (e->conv_kernel_size <= 0 || e->conv_kernel_size % 2 == 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "encoder.conv_kernel_size %d must be odd", e->conv_kernel_size);
    if (e->n_layers <= 0 || e->feat_in <= 0 || e->subsampling_conv_channels <= 0 || e->ff_expansion_factor <= 0)
        return cn_error_set(err, CANARY_EFORMAT, "encoder dimensions are not positive (n_layers %d, feat_in %d)",
                            e->n_layers, e->feat_in);
    const cn_decoder_desc *dd = &d->dec;
    if (dd->n_heads <= 0 || dd->hidden <= 0 || dd->hidden % dd->n_heads != 0)
        return cn_error_set(err, CANARY_EFORMAT,
                            "transf_decoder hidden_size %d is not a multiple of num_attention_heads %d", dd->hidden,
                            dd->n_heads);
    if (!dd->pre_ln)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "transf_decoder.pre_ln false is not supported");
    if (strcmp(dd->hidden_act, "relu") != 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "transf_decoder.hidden_act %s is not supported (relu only)",
                            dd->hidden_act);
    if (dd->learn_positional_encodings)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "transf_decoder.learn_positional_encodings true is not supported");
    if (dd->n_layers <= 0 || dd->inner <= 0 || dd->vocab_size <= 0 || dd->max_seq_len <= 0)
        return cn_error_set(err, CANARY_EFORMAT, "decoder dimensions are not positive (layers %d, vocab %d)",
                            dd->n_layers, dd->vocab_size);
    if (d->has_enc_dec_proj ? false : e->d_model != dd->hidden)
        return cn_error_set(err, CANARY_EFORMAT,
                            "encoder d_model %d differs from decoder hidden %d but there is no encoder_decoder_proj",
                            e->d_model, dd->hidden);
    return CANARY_OK;
}

static cn_status load_subsampling(cn_canary *m, cn_error *err) {
    const cn_encoder_desc *e = &m->desc.enc;
    int C = e->subsampling_conv_channels, F = e->feat_in, d = e->d_model;
    m->sub_c = C;
    m->sub_f3 = half_up(half_up(half_up(F)));
    static const int idx[5] = {0, 2, 3, 5, 6};
    for (int i = 0; i < 5; i++) {
        char name[96];
        bool pointwise = idx[i] == 3 || idx[i] == 6;
        int64_t shape[4] = {C, pointwise ? C : 1, pointwise ? 1 : 3, pointwise ? 1 : 3};
        snprintf(name, sizeof name, "encoder.pre_encode.conv.%d.weight", idx[i]);
        CN_TRY(cn_w_get(m, name, 4, shape, &m->sub_w[i], err));
        snprintf(name, sizeof name, "encoder.pre_encode.conv.%d.bias", idx[i]);
        CN_TRY(cn_w_vec(m, name, C, &m->sub_b[i], err));
    }
    /* The subsampling stack stays fp32 in bf16 mode: it sees the raw features, and it is a few
     * percent of the encoder's work. */
    CN_TRY(cn_w_linear_from_f32(m, m->sub_w[2], m->sub_b[2], C, C, &m->sub_pw[0], err));
    CN_TRY(cn_w_linear_from_f32(m, m->sub_w[4], m->sub_b[4], C, C, &m->sub_pw[1], err));
    /* NeMo flattens [C, T, F'] channel-major (c*F' + f); our activations are channels-last, so the
     * output layer's columns are permuted to f*C + c once here. xscaling folds in as well. */
    int in = C * m->sub_f3;
    int64_t shape[2] = {d, in};
    float *w, *b, *wp = malloc(sizeof(float) * (size_t)d * (size_t)in), *bp = malloc(sizeof(float) * (size_t)d);
    cn_status st = CANARY_OK;
    if (!wp || !bp)
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory loading encoder.pre_encode.out");
    if (st == CANARY_OK)
        st = cn_w_get(m, "encoder.pre_encode.out.weight", 2, shape, &w, err);
    if (st == CANARY_OK)
        st = cn_w_vec(m, "encoder.pre_encode.out.bias", d, &b, err);
    if (st == CANARY_OK) {
        float xs = e->xscaling ? sqrtf((float)d) : 1.0f;
        for (int o = 0; o < d; o++) {
            for (int c = 0; c < C; c++)
                for (int f = 0; f < m->sub_f3; f++)
                    wp[(size_t)o * in + (size_t)f * C + c] = w[(size_t)o * in + (size_t)c * m->sub_f3 + f] * xs;
            bp[o] = b[o] * xs;
        }
        st = cn_w_linear_from_f32(m, wp, bp, d, in, &m->sub_out, err);
    }
    free(wp);
    free(bp);
    return st;
}

static cn_status load_enc_layer(cn_canary *m, int li, enc_layer *L, cn_error *err) {
    const cn_encoder_desc *e = &m->desc.enc;
    int d = e->d_model, dff = d * e->ff_expansion_factor, h = e->n_heads, dk = d / h, k = e->conv_kernel_size;
    bool bias = e->use_bias;
    char p[64], n[160];
    snprintf(p, sizeof p, "encoder.layers.%d", li);
#define LN(field_g, field_b, sub)                                                                                      \
    do {                                                                                                               \
        snprintf(n, sizeof n, "%s.%s.weight", p, sub);                                                                 \
        CN_TRY(cn_w_vec(m, n, d, &L->field_g, err));                                                                  \
        snprintf(n, sizeof n, "%s.%s.bias", p, sub);                                                                   \
        CN_TRY(cn_w_vec(m, n, d, &L->field_b, err));                                                                  \
    } while (0)
    LN(ln_ff1_g, ln_ff1_b, "norm_feed_forward1");
    LN(ln_att_g, ln_att_b, "norm_self_att");
    LN(ln_conv_g, ln_conv_b, "norm_conv");
    LN(ln_ff2_g, ln_ff2_b, "norm_feed_forward2");
    LN(ln_out_g, ln_out_b, "norm_out");
#undef LN
    snprintf(n, sizeof n, "%s.feed_forward1.linear1", p);
    CN_TRY(cn_w_linear(m, n, dff, d, bias, &L->ff1_in, err));
    snprintf(n, sizeof n, "%s.feed_forward1.linear2", p);
    CN_TRY(cn_w_linear(m, n, d, dff, bias, &L->ff1_out, err));
    snprintf(n, sizeof n, "%s.feed_forward2.linear1", p);
    CN_TRY(cn_w_linear(m, n, dff, d, bias, &L->ff2_in, err));
    snprintf(n, sizeof n, "%s.feed_forward2.linear2", p);
    CN_TRY(cn_w_linear(m, n, d, dff, bias, &L->ff2_out, err));
    char q[160], kk[160], v[160];
    snprintf(q, sizeof q, "%s.self_attn.linear_q", p);
    snprintf(kk, sizeof kk, "%s.self_attn.linear_k", p);
    snprintf(v, sizeof v, "%s.self_attn.linear_v", p);
    const char *qkv[3] = {q, kk, v};
    CN_TRY(cn_w_linear_fused(m, qkv, 3, d, d, bias, &L->qkv, err));
    snprintf(n, sizeof n, "%s.self_attn.linear_out", p);
    CN_TRY(cn_w_linear(m, n, d, d, bias, &L->att_out, err));
    snprintf(n, sizeof n, "%s.self_attn.linear_pos", p);
    CN_TRY(cn_w_linear(m, n, d, d, false, &L->pos, err));
    int64_t hs[2] = {h, dk};
    if (e->untie_biases) {
        snprintf(n, sizeof n, "%s.self_attn.pos_bias_u", p);
        CN_TRY(cn_w_get(m, n, 2, hs, &L->bias_u, err));
        snprintf(n, sizeof n, "%s.self_attn.pos_bias_v", p);
        CN_TRY(cn_w_get(m, n, 2, hs, &L->bias_v, err));
    } else {
        CN_TRY(cn_w_get(m, "encoder.pos_bias_u", 2, hs, &L->bias_u, err));
        CN_TRY(cn_w_get(m, "encoder.pos_bias_v", 2, hs, &L->bias_v, err));
    }
    /* Convolution module: pointwise convs are linears over channels. */
    int64_t pw1s[3] = {2 * d, d, 1}, pw2s[3] = {d, d, 1}, dws[3] = {d, 1, k};
    snprintf(n, sizeof n, "%s.conv.pointwise_conv1", p);
    CN_TRY(cn_w_linear_nd(m, n, 3, pw1s, 2 * d, d, bias, &L->pw1, err));
    snprintf(n, sizeof n, "%s.conv.pointwise_conv2", p);
    CN_TRY(cn_w_linear_nd(m, n, 3, pw2s, d, d, bias, &L->pw2, err));
    /* Depthwise conv with BatchNorm (running statistics) folded in:
     * w' = w·γ/√(var+ε), b' = (b − mean)·γ/√(var+ε) + β. */
    float *dw, *dwb = NULL, *g, *beta, *mean, *var;
    snprintf(n, sizeof n, "%s.conv.depthwise_conv.weight", p);
    CN_TRY(cn_w_get(m, n, 3, dws, &dw, err));
    if (bias) {
        snprintf(n, sizeof n, "%s.conv.depthwise_conv.bias", p);
        CN_TRY(cn_w_vec(m, n, d, &dwb, err));
    }
    snprintf(n, sizeof n, "%s.conv.batch_norm.weight", p);
    CN_TRY(cn_w_vec(m, n, d, &g, err));
    snprintf(n, sizeof n, "%s.conv.batch_norm.bias", p);
    CN_TRY(cn_w_vec(m, n, d, &beta, err));
    snprintf(n, sizeof n, "%s.conv.batch_norm.running_mean", p);
    CN_TRY(cn_w_vec(m, n, d, &mean, err));
    snprintf(n, sizeof n, "%s.conv.batch_norm.running_var", p);
    CN_TRY(cn_w_vec(m, n, d, &var, err));
    /* Reuse the converted arrays in place: they are ours. */
    L->dw_w = dw;
    L->dw_b = beta;
    for (int c = 0; c < d; c++) {
        if (!(var[c] >= 0))
            return cn_error_set(err, CANARY_EFORMAT, "%s.conv.batch_norm.running_var[%d] = %g is negative", p, c,
                                (double)var[c]);
        double s = (double)g[c] / sqrt((double)var[c] + 1e-5);
        for (int j = 0; j < k; j++)
            dw[(size_t)c * k + j] = (float)(dw[(size_t)c * k + j] * s);
        beta[c] = (float)(((dwb ? dwb[c] : 0.0) - mean[c]) * s + beta[c]);
    }
    return CANARY_OK;
}

static cn_status load_dec_layer(cn_canary *m, int li, dec_layer *L, cn_error *err) {
    int d = m->desc.dec.hidden, inner = m->desc.dec.inner;
    char p[96], n[192];
    snprintf(p, sizeof p, "transf_decoder._decoder.layers.%d", li);
    float **lnf[6] = {&L->ln1_g, &L->ln1_b, &L->ln2_g, &L->ln2_b, &L->ln3_g, &L->ln3_b};
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s.layer_norm_%d.weight", p, i + 1);
        CN_TRY(cn_w_vec(m, n, d, lnf[2 * i], err));
        snprintf(n, sizeof n, "%s.layer_norm_%d.bias", p, i + 1);
        CN_TRY(cn_w_vec(m, n, d, lnf[2 * i + 1], err));
    }
    char a[192], b[192], c[192];
    snprintf(a, sizeof a, "%s.first_sub_layer.query_net", p);
    snprintf(b, sizeof b, "%s.first_sub_layer.key_net", p);
    snprintf(c, sizeof c, "%s.first_sub_layer.value_net", p);
    const char *qkv[3] = {a, b, c};
    CN_TRY(cn_w_linear_fused(m, qkv, 3, d, d, true, &L->self_qkv, err));
    snprintf(n, sizeof n, "%s.first_sub_layer.out_projection", p);
    CN_TRY(cn_w_linear(m, n, d, d, true, &L->self_out, err));
    snprintf(n, sizeof n, "%s.second_sub_layer.query_net", p);
    CN_TRY(cn_w_linear(m, n, d, d, true, &L->cross_q, err));
    snprintf(b, sizeof b, "%s.second_sub_layer.key_net", p);
    snprintf(c, sizeof c, "%s.second_sub_layer.value_net", p);
    const char *kv[2] = {b, c};
    CN_TRY(cn_w_linear_fused(m, kv, 2, d, d, true, &L->cross_kv, err));
    snprintf(n, sizeof n, "%s.second_sub_layer.out_projection", p);
    CN_TRY(cn_w_linear(m, n, d, d, true, &L->cross_out, err));
    snprintf(n, sizeof n, "%s.third_sub_layer.dense_in", p);
    CN_TRY(cn_w_linear(m, n, inner, d, true, &L->ff_in, err));
    snprintf(n, sizeof n, "%s.third_sub_layer.dense_out", p);
    CN_TRY(cn_w_linear(m, n, d, inner, true, &L->ff_out, err));
    return CANARY_OK;
}

static cn_status load_all(cn_canary *m, cn_error *err) {
    CN_TRY(check_desc(&m->desc, err));
    m->load_prec = m->prec;
    CN_TRY(load_subsampling(m, err));
    const cn_encoder_desc *e = &m->desc.enc;
    m->enc = calloc((size_t)e->n_layers, sizeof *m->enc);
    m->dec = calloc((size_t)m->desc.dec.n_layers, sizeof *m->dec);
    if (!m->enc || !m->dec)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    for (int i = 0; i < e->n_layers; i++)
        CN_TRY(load_enc_layer(m, i, &m->enc[i], err));
    int dd = m->desc.dec.hidden;
    if (m->desc.has_enc_dec_proj)
        CN_TRY(cn_w_linear(m, "encoder_decoder_proj", dd, e->d_model, true, &m->proj, err));
    m->load_prec = m->prec;
    m->vocab = m->desc.dec.vocab_size;
    m->max_pos = m->desc.dec.max_seq_len;
    int64_t es[2] = {m->vocab, dd}, ps[2] = {m->max_pos, dd};
    CN_TRY(cn_w_get(m, "transf_decoder._embedding.token_embedding.weight", 2, es, &m->tok_emb, err));
    CN_TRY(cn_w_get(m, "transf_decoder._embedding.position_embedding.pos_enc", 2, ps, &m->pos_enc, err));
    CN_TRY(cn_w_vec(m, "transf_decoder._embedding.layer_norm.weight", dd, &m->emb_ln_g, err));
    CN_TRY(cn_w_vec(m, "transf_decoder._embedding.layer_norm.bias", dd, &m->emb_ln_b, err));
    for (int i = 0; i < m->desc.dec.n_layers; i++)
        CN_TRY(load_dec_layer(m, i, &m->dec[i], err));
    if (m->desc.dec.pre_ln_final_layer_norm) {
        CN_TRY(cn_w_vec(m, "transf_decoder._decoder.final_layer_norm.weight", dd, &m->final_ln_g, err));
        CN_TRY(cn_w_vec(m, "transf_decoder._decoder.final_layer_norm.bias", dd, &m->final_ln_b, err));
    }
    CN_TRY(cn_w_linear(m, "log_softmax.mlp.layer0", m->vocab, dd, true, &m->head, err));
    /* The constants the operations read (after BatchNorm folding), where the backend wants them. */
    int d = e->d_model, C = e->subsampling_conv_channels;
    for (int i = 0; i < 5; i++)
        if (i != 2 && i != 4) { /* conv.3/.6 are pointwise: linears, their arrays stay host */
            CN_TRY(cn_w_const(m, &m->sub_w[i], (size_t)C * 9, err));
            CN_TRY(cn_w_const(m, &m->sub_b[i], (size_t)C, err));
        }
    for (int i = 0; i < e->n_layers; i++) {
        enc_layer *L = &m->enc[i];
        float **v[] = {&L->ln_ff1_g, &L->ln_ff1_b, &L->ln_att_g, &L->ln_att_b, &L->ln_conv_g, &L->ln_conv_b,
                       &L->ln_ff2_g, &L->ln_ff2_b, &L->ln_out_g, &L->ln_out_b, &L->bias_u, &L->bias_v, &L->dw_b};
        for (size_t j = 0; j < sizeof v / sizeof *v; j++)
            CN_TRY(cn_w_const(m, v[j], (size_t)d, err));
        CN_TRY(cn_w_const(m, &L->dw_w, (size_t)d * (size_t)e->conv_kernel_size, err));
    }
    for (int i = 0; i < m->desc.dec.n_layers; i++) {
        dec_layer *L = &m->dec[i];
        float **v[] = {&L->ln1_g, &L->ln1_b, &L->ln2_g, &L->ln2_b, &L->ln3_g, &L->ln3_b};
        for (size_t j = 0; j < sizeof v / sizeof *v; j++)
            CN_TRY(cn_w_const(m, v[j], (size_t)dd, err));
    }
    CN_TRY(cn_w_const(m, &m->tok_emb, (size_t)m->vocab * (size_t)dd, err));
    CN_TRY(cn_w_const(m, &m->pos_enc, (size_t)m->max_pos * (size_t)dd, err));
    CN_TRY(cn_w_const(m, &m->emb_ln_g, (size_t)dd, err));
    CN_TRY(cn_w_const(m, &m->emb_ln_b, (size_t)dd, err));
    if (m->final_ln_g) {
        CN_TRY(cn_w_const(m, &m->final_ln_g, (size_t)dd, err));
        CN_TRY(cn_w_const(m, &m->final_ln_b, (size_t)dd, err));
    }
    return CANARY_OK;
}

cn_status cn_canary_load(const cn_nemo *nemo, cn_backend *be, cn_precision prec, cn_canary **out, cn_error *err) {
    cn_canary *m = calloc(1, sizeof *m);
    if (!m)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory loading the model");
    m->nemo = nemo;
    m->desc = *cn_nemo_desc(nemo);
    m->be = be;
    m->prec = prec;
    cn_status st = load_all(m, err);
    if (st != CANARY_OK) {
        cn_canary_free(m);
        return cn_error_prefix(err, "preparing the %s model", cn_nemo_desc(nemo)->variant);
    }
    *out = m;
    return CANARY_OK;
}

void cn_canary_free(cn_canary *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n_linears; i++)
        OPS(m)->linear_destroy(m->be, m->linears[i]);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->linears);
    free(m->owned);
    free(m->enc);
    free(m->dec);
    free(m);
}

const cn_model_desc *cn_canary_desc(const cn_canary *m) { return &m->desc; }
const cn_nemo *cn_canary_nemo(const cn_canary *m) { return m->nemo; }
cn_precision cn_canary_precision(const cn_canary *m) { return m->prec; }

double cn_canary_encoder_flops(const cn_canary *m, int frames) {
    const cn_encoder_desc *e = &m->desc.enc;
    double C = e->subsampling_conv_channels, F = e->feat_in, d = e->d_model, dff = d * e->ff_expansion_factor;
    double t1 = half_up(frames), t2 = half_up((int)t1), t = half_up((int)t2);
    double f1 = half_up((int)F), f2 = half_up((int)f1), f3 = half_up((int)f2);
    double sub = 2 * (t1 * f1 * C * 9 + t2 * f2 * C * (9 + C) + t * f3 * C * (9 + C) + t * f3 * C * d);
    double layer = 2 * t * d * (2 * dff * 2)      /* two FFNs, in and out */
                   + 2 * t * d * d * 4             /* q, k, v, out */
                   + 2 * (2 * t - 1) * d * d       /* linear_pos */
                   + 2 * 2 * t * t * d + 2 * t * (2 * t - 1) * d /* scores, positional scores, context */
                   + 2 * t * d * (2 * d + d)       /* pointwise convs */
                   + 2 * t * d * e->conv_kernel_size;
    double proj = m->proj ? 2 * t * d * m->desc.dec.hidden : 0;
    return sub + layer * e->n_layers + proj;
}

/* ------------------------------------------------------------------------------------------- */
/* Contexts and buffer planning                                                                */
/* ------------------------------------------------------------------------------------------- */

cn_status cn_canary_ctx_create(const cn_canary *m, int n_threads, cn_canary_ctx **out, cn_error *err) {
    cn_canary_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory creating a context");
    c->m = m;
    cn_status st = OPS(m)->exec_create(m->be, n_threads, &c->ex, err);
    if (st != CANARY_OK) {
        free(c);
        return st;
    }
    *out = c;
    return CANARY_OK;
}

void cn_ctx_buf_free(cn_canary_ctx *c, cn_buf *b) {
    OPS(c->m)->free(c->ex, b->p);
    b->p = NULL;
    b->floats = 0;
}

cn_status cn_ctx_buf_reserve(cn_canary_ctx *c, cn_buf *b, size_t floats, cn_error *err) {
    if (b->floats >= floats && b->p)
        return CANARY_OK;
    cn_ctx_buf_free(c, b);
    b->p = OPS(c->m)->alloc(c->ex, floats * sizeof(float));
    if (!b->p)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory: an activation buffer of %zu MB",
                            floats * sizeof(float) >> 20);
    b->floats = floats;
    return CANARY_OK;
}

void cn_canary_ctx_free(cn_canary_ctx *c) {
    if (!c)
        return;
    for (int i = 0; i < BUF_COUNT; i++)
        cn_ctx_buf_free(c, &c->buf[i]);
    cn_dec_state_free(c);
    free(c->enc_valid);
    free(c->enc_alone);
    free(c->sub_valid);
    OPS(c->m)->exec_destroy(c->ex);
    free(c);
}

cn_status cn_canary_read(cn_canary_ctx *c, void *dst, const void *src, size_t bytes, cn_error *err) {
    OPS(c->m)->download(c->ex, dst, src, bytes);
    return OPS(c->m)->sync(c->ex, err);
}

int cn_canary_encoded_frames(const cn_canary_ctx *c) { return c->enc_t; }
int cn_canary_encoded_length(const cn_canary_ctx *c, int item) {
    return item >= 0 && item < c->enc_n ? c->enc_valid[item] : 0;
}

/* Relative positions T-1 ... -(T-1), interleaved sin/cos, in fp32 as NeMo builds it. */
static void rel_pos_table(float *pe, int t, int d) {
    float k = -(float)(log(10000.0) / d);
    for (int r = 0; r < 2 * t - 1; r++) {
        float p = (float)(t - 1 - r);
        for (int i = 0; i < d; i += 2) {
            float w = expf((float)i * k);
            pe[(size_t)r * d + i] = sinf(p * w);
            if (i + 1 < d)
                pe[(size_t)r * d + i + 1] = cosf(p * w);
        }
    }
}

void cn_mel_desc_from_features(const cn_features *f, cn_mel_desc *d) {
    const cn_features_config *c = cn_features_cfg(f);
    memset(d, 0, sizeof *d);
    d->n_fft = c->n_fft;
    d->hop = c->hop_length;
    d->win = c->win_length;
    d->win_offset = cn_features_window_offset(f);
    d->n_bins = cn_features_n_bins(f);
    d->n_mels = c->n_mels;
    d->pad_to = c->pad_to;
    d->nemo_2_5 = c->semantics == CN_FEAT_NEMO_2_5;
    d->valid_extra = c->semantics == CN_FEAT_NEMO_2_4 ? 1 : 0; /* as cn_features_valid_frames */
    d->preemph = (float)c->preemph;
    d->mag_power = c->mag_power;
    d->log = c->log;
    d->log_clamp = c->log_guard_clamp;
    d->log_guard = c->log_zero_guard_value;
    d->normalize = c->normalize == CN_FEAT_NORM_PER_FEATURE;
    d->std_eps = cn_features_std_eps();
    d->pad_value = c->pad_value;
    d->window = cn_features_window(f);
    d->filterbank = cn_features_filterbank(f);
}

bool cn_canary_device_features(const cn_canary_ctx *c) { return OPS(c->m)->log_mel != NULL; }

/* The encoder's buffers for B items of tf feature frames, kept for the next call; BUF_SUB_B also
 * holds at least sub_b_min floats (the samples the GPU front end reads). A plan larger than the
 * last frees every buffer of the context first (the decoder's too: its state is rebuilt after the
 * pass), so the backend sees one free region and can return whole chunks, and the largest buffers
 * are placed first: growing them one at a time left each old size behind as a hole in a GPU's
 * arena (1.76x the live peak after batches of 1, 3, 2 and 4; tests/cuda/memory_check.py). */
static cn_status plan_encoder(cn_canary_ctx *c, int B, int tf, size_t sub_b_min, cn_error *err) {
    const cn_canary *m = c->m;
    const cn_encoder_desc *e = &m->desc.enc;
    int F = e->feat_in, C = m->sub_c, d = e->d_model, dff = d * e->ff_expansion_factor;
    int t1 = half_up(tf), t2 = half_up(t1), t = half_up(t2);
    int f1 = half_up(F), f2 = half_up(f1);
    size_t rows = (size_t)B * t;
    /* the subsampling's buffers hold its largest output: the first conv's [t1, f1, C], or, where
     * the backend fuses the first two convs, the second's (a quarter of it) */
    bool pair = OPS(m)->conv2d_s2_pair != NULL;
    size_t sub = pair ? (size_t)B * t2 * f2 * C : (size_t)B * t1 * f1 * C;
    size_t wide = rows * (size_t)(dff > 3 * d ? dff : 3 * d);
    size_t in_f = (size_t)B * tf * F, sub_b = sub > in_f ? sub : in_f;
    if (sub_b < sub_b_min)
        sub_b = sub_b_min;
    const size_t plan[][2] = {{BUF_IN, in_f},      {BUF_SUB_A, sub},     {BUF_SUB_B, sub_b},
                              {BUF_X, rows * d},   {BUF_LN, rows * d},   {BUF_WIDE, wide},
                              {BUF_ATT, rows * d}, {BUF_CONV, rows * d}, {BUF_PE, (size_t)(2 * t - 1) * d},
                              {BUF_POS, (size_t)(2 * t - 1) * d}, {BUF_ENC, rows * m->desc.dec.hidden}};
    const int n_plan = (int)(sizeof plan / sizeof plan[0]);
    bool grows = false;
    size_t want[sizeof plan / sizeof plan[0]];
    for (int i = 0; i < n_plan; i++) {
        size_t had = c->buf[plan[i][0]].floats;
        grows = grows || had < plan[i][1];
        /* never below what a buffer had: shapes that alternate (many short items, few long ones)
         * would otherwise re-plan on every call */
        want[i] = had > plan[i][1] ? had : plan[i][1];
    }
    if (!grows)
        return CANARY_OK;
    for (int i = 0; i < BUF_COUNT; i++)
        cn_ctx_buf_free(c, &c->buf[i]);
    cn_dec_state_free(c);
    int order[sizeof plan / sizeof plan[0]];
    for (int i = 0; i < n_plan; i++) {
        int j = i;
        for (; j > 0 && want[order[j - 1]] < want[i]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    for (int i = 0; i < n_plan; i++)
        CN_TRY(cn_ctx_buf_reserve(c, &c->buf[plan[order[i]][0]], want[order[i]], err));
    return CANARY_OK;
}

cn_status cn_canary_features_device(cn_canary_ctx *c, const cn_mel_desc *d, const float *pcm, const int *lens, int n,
                                    int lpad, int *cols, int *valid, cn_error *err) {
    const cn_backend_ops *ops = OPS(c->m);
    if (!ops->log_mel)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "features: the %s backend does not compute them", ops->name);
    int F = c->m->desc.enc.feat_in;
    if (d->n_mels != F)
        return cn_error_set(err, CANARY_EINVAL, "features: %d mels for an encoder of %d inputs", d->n_mels, F);
    if (n <= 0 || lpad <= 0 || d->hop <= 0)
        return cn_error_set(err, CANARY_EINVAL, "features: %d utterances of %d samples", n, lpad);
    for (int i = 0; i < n; i++)
        if (lens[i] < 1 || lens[i] > lpad)
            return cn_error_set(err, CANARY_EINVAL, "features: utterance %d has %d of %d samples", i, lens[i], lpad);
    int t = 1 + lpad / d->hop;
    if (d->pad_to > 0 && t % d->pad_to)
        t += d->pad_to - t % d->pad_to;
    if (half_up(half_up(half_up(t))) > 1 << 20)
        return cn_error_set(err, CANARY_ELIMIT, "features: %d frames is too long for one pass", t);
    /* the whole encoder plan now (the features land in its input buffer; encode then finds it) */
    CN_TRY(plan_encoder(c, n, t, (size_t)n * lpad, err));
    ops->upload(c->ex, c->buf[BUF_SUB_B].p, pcm, sizeof(float) * (size_t)n * lpad);
    ops->log_mel(c->ex, d, c->buf[BUF_SUB_B].p, lens, n, lpad, c->buf[BUF_IN].p, valid);
    *cols = t;
    return CANARY_OK;
}

cn_status cn_canary_encode(cn_canary_ctx *c, const cn_encoder_input *in, cn_encoder_tap tap, void *tap_ud,
                           cn_error *err) {
    const cn_canary *m = c->m;
    const cn_backend_ops *ops = OPS(m);
    const cn_encoder_desc *e = &m->desc.enc;
    int B = in->n, F = e->feat_in, C = m->sub_c, d = e->d_model, dff = d * e->ff_expansion_factor;
    if (B <= 0)
        return cn_error_set(err, CANARY_EINVAL, "encode: the batch is empty");
    int tf = 0;
    for (int i = 0; i < B; i++) {
        if (in->t[i] <= 0 || in->valid[i] < 0 || in->valid[i] > in->t[i])
            return cn_error_set(err, CANARY_EINVAL, "encode: item %d has %d frames with %d valid", i, in->t[i],
                                in->valid[i]);
        if (in->t[i] > tf)
            tf = in->t[i];
    }
    int t1 = half_up(tf), t2 = half_up(t1), t = half_up(t2);
    int f1 = half_up(F), f2 = half_up(f1), f3 = half_up(f2);
    if (t > 1 << 20)
        return cn_error_set(err, CANARY_ELIMIT, "encode: %d feature frames is too long for one pass", tf);
    CN_TRY(plan_encoder(c, B, tf, 0, err));
    size_t rows = (size_t)B * t;
    int *ev = realloc(c->enc_valid, sizeof(int) * (size_t)B), *sv = realloc(c->sub_valid, sizeof(int) * 4 * (size_t)B);
    if (ev)
        c->enc_valid = ev;
    if (sv)
        c->sub_valid = sv;
    int *ea = ev && sv ? realloc(c->enc_alone, sizeof(int) * (size_t)B) : NULL;
    if (ea)
        c->enc_alone = ea;
    if (!ev || !sv || !ea)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    c->enc_n = 0; /* invalid until this pass completes */
    c->dec_ready = false;

    /* Input: [n_mels, t_i] per item, uploaded as it is into BUF_SUB_B (free until the subsampling)
     * and made time-major [B, tf, F], zero padded, by the backend: on a GPU the transpose runs
     * where the data is (done on the host, one core took 40 ms for a batch of 128). Items that lie
     * one after the other with equal lengths (as the API passes them) go in one copy. Features
     * computed by the backend (on_device) are in place already. */
    if (!in->on_device) {
        float *raw = c->buf[BUF_SUB_B].p;
        bool one_block = in->t[0] == tf;
        for (int i = 1; i < B && one_block; i++)
            one_block = in->t[i] == tf && in->feats[i] == in->feats[0] + (size_t)i * F * tf;
        if (one_block) {
            ops->upload(c->ex, raw, in->feats[0], sizeof(float) * (size_t)B * F * tf);
            ops->transpose(c->ex, raw, c->buf[BUF_IN].p, B, F, tf, tf);
        } else {
            for (int i = 0; i < B; i++) {
                ops->upload(c->ex, raw, in->feats[i], sizeof(float) * (size_t)F * in->t[i]);
                ops->transpose(c->ex, raw, c->buf[BUF_IN].p + (size_t)i * tf * F, 1, F, in->t[i], tf);
            }
        }
    }
    /* valid lengths per stage: [0] features, [1..3] after each stride-2 stage */
    int *v0 = c->sub_valid, *v1 = v0 + B, *v2 = v1 + B, *v3 = v2 + B;
    for (int i = 0; i < B; i++) {
        v0[i] = in->valid[i];
        v1[i] = half_up(v0[i]);
        v2[i] = half_up(v1[i]);
        v3[i] = half_up(v2[i]);
        c->enc_valid[i] = v3[i];
        c->enc_alone[i] = in->item_cols ? cn_canary_subsampled_length(in->item_cols[i]) : t;
    }
    bool mk = in->mask_subsampling;
    /* Subsampling: conv(1->C) ReLU, dw conv, pw conv ReLU, dw conv, pw conv ReLU, Linear. */
    float *sa = c->buf[BUF_SUB_A].p, *sb = c->buf[BUF_SUB_B].p;
    if (ops->conv2d_s2_pair) {
        ops->conv2d_s2_pair(c->ex, c->buf[BUF_IN].p, sb, B, tf, F, C, m->sub_w[0], m->sub_b[0], m->sub_w[1],
                            m->sub_b[1], mk ? v0 : NULL, mk ? v1 : NULL);
    } else {
        ops->conv2d_s2(c->ex, c->buf[BUF_IN].p, sa, B, tf, F, 1, C, m->sub_w[0], m->sub_b[0], mk ? v0 : NULL,
                       CN_ACT_RELU);
        ops->conv2d_s2(c->ex, sa, sb, B, t1, f1, C, C, m->sub_w[1], m->sub_b[1], mk ? v1 : NULL, CN_ACT_NONE);
    }
    ops->linear(c->ex, m->sub_pw[0], sb, C, B * t2 * f2, sa, C, CN_ACT_RELU, false, 0);
    ops->conv2d_s2(c->ex, sa, sb, B, t2, f2, C, C, m->sub_w[3], m->sub_b[3], mk ? v2 : NULL, CN_ACT_NONE);
    ops->linear(c->ex, m->sub_pw[1], sb, C, B * t * f3, sa, C, CN_ACT_RELU, false, 0);
    if (mk)
        ops->mask_time(c->ex, sa, B, t, (size_t)f3 * C, v3);
    float *x = c->buf[BUF_X].p, *ln = c->buf[BUF_LN].p, *wide_p = c->buf[BUF_WIDE].p, *att = c->buf[BUF_ATT].p, *cv = c->buf[BUF_CONV].p;
    ops->linear(c->ex, m->sub_out, sa, f3 * C, (int)rows, x, d, CN_ACT_NONE, false, 0);
    if (tap)
        tap(tap_ud, "subsampling", -1, x, B, t, d);
    /* Positional table, projected per layer. */
    float *pe_host = malloc(sizeof(float) * (size_t)(2 * t - 1) * d);
    if (!pe_host)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    rel_pos_table(pe_host, t, d);
    ops->upload(c->ex, c->buf[BUF_PE].p, pe_host, sizeof(float) * (size_t)(2 * t - 1) * d);
    free(pe_host);
    const float eps = 1e-5f;
    for (int li = 0; li < e->n_layers; li++) {
        const enc_layer *L = &m->enc[li];
        /* x += 0.5 * FFN1(LN(x)) */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln_ff1_g, L->ln_ff1_b, eps);
        cn_ffn(ops, c->ex, L->ff1_in, L->ff1_out, ln, d, (int)rows, wide_p, dff, x, d, CN_ACT_SILU, true, 0.5f);
        /* x += RelPosMHSA(LN(x)) */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln_att_g, L->ln_att_b, eps);
        ops->linear(c->ex, L->qkv, ln, d, (int)rows, wide_p, 3 * d, CN_ACT_NONE, false, 0);
        ops->linear(c->ex, L->pos, c->buf[BUF_PE].p, d, 2 * t - 1, c->buf[BUF_POS].p, d, CN_ACT_NONE, false, 0);
        cn_relattn_args ra = {B, t, e->n_heads, d / e->n_heads, wide_p, c->buf[BUF_POS].p, L->bias_u, L->bias_v, v3, att};
        ops->rel_attention(c->ex, &ra);
        ops->linear(c->ex, L->att_out, att, d, (int)rows, x, d, CN_ACT_NONE, true, 1.0f);
        /* x += Conv(LN(x)): pw1, GLU + pad mask, depthwise (+BN) + SiLU, pw2 */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln_conv_g, L->ln_conv_b, eps);
        ops->linear(c->ex, L->pw1, ln, d, (int)rows, wide_p, 2 * d, CN_ACT_NONE, false, 0);
        ops->glu_mask(c->ex, wide_p, att, B, t, d, v3);
        ops->dwconv1d(c->ex, att, cv, B, t, d, L->dw_w, L->dw_b, e->conv_kernel_size, CN_ACT_SILU);
        ops->linear(c->ex, L->pw2, cv, d, (int)rows, x, d, CN_ACT_NONE, true, 1.0f);
        /* x += 0.5 * FFN2(LN(x)); x = LN_out(x) */
        ops->layer_norm(c->ex, x, ln, (int)rows, d, L->ln_ff2_g, L->ln_ff2_b, eps);
        cn_ffn(ops, c->ex, L->ff2_in, L->ff2_out, ln, d, (int)rows, wide_p, dff, x, d, CN_ACT_SILU, true, 0.5f);
        ops->layer_norm(c->ex, x, x, (int)rows, d, L->ln_out_g, L->ln_out_b, eps);
        if (tap)
            tap(tap_ud, "layer", li, x, B, t, d);
    }
    if (tap)
        tap(tap_ud, "encoder_out", -1, x, B, t, d);
    int dd = m->desc.dec.hidden;
    if (m->proj)
        ops->linear(c->ex, m->proj, x, d, (int)rows, c->buf[BUF_ENC].p, dd, CN_ACT_NONE, false, 0);
    else
        ops->copy(c->ex, c->buf[BUF_ENC].p, x, rows * (size_t)d * sizeof(float));
    if (tap)
        tap(tap_ud, "projected", -1, c->buf[BUF_ENC].p, B, t, dd);
    c->enc_n = B;
    c->enc_t = t;
    return ops->sync(c->ex, err); /* a GPU reports its failures here */
}

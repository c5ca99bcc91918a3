/* Private: the inference context's planned buffers and decoder state. */
#ifndef CN_MODEL_CTX_H
#define CN_MODEL_CTX_H

#include "model/model_internal.h"

typedef struct cn_buf {
    float *p;
    size_t floats;
} cn_buf;

enum {
    /* encoder */
    BUF_IN, BUF_SUB_A, BUF_SUB_B, BUF_X, BUF_LN, BUF_WIDE, BUF_ATT, BUF_CONV, BUF_PE, BUF_POS, BUF_ENC,
    /* decoder */
    BUF_DH, BUF_DLN, BUF_DQKV, BUF_DATT, BUF_DFF, BUF_DLAST, BUF_LOGITS, BUF_TMP,
    BUF_COUNT
};

struct cn_canary_ctx {
    const cn_canary *m;
    cn_exec *ex;
    cn_buf buf[BUF_COUNT];
    /* last encoder pass */
    int enc_n, enc_t;
    int *enc_valid;
    int *enc_alone; /* each item's encoder length had it run alone (the decoder's per-item limit) */
    int *sub_valid;
    /* decoder: cross-attention K|V per layer [B*Te, 2d], self-attention caches per layer
     * [rows, cap, d] for K and V */
    bool dec_ready;
    cn_buf *cross_kv, *kc, *vc;
    int n_dec_layers;
    int cache_rows, cache_cap;
};

cn_status cn_ctx_buf_reserve(cn_canary_ctx *c, cn_buf *b, size_t floats, cn_error *err);
void cn_ctx_buf_free(cn_canary_ctx *c, cn_buf *b);
void cn_dec_state_free(cn_canary_ctx *c);

/* A feed-forward block y (+)= alpha·(act(x·W1ᵀ + b1)·W2ᵀ + b2) through the backend's ffn where it has
 * one (a GPU keeps a half-precision hidden layer in its own type), else two linears through
 * `hidden` [m, dh]. */
static inline void cn_ffn(const cn_backend_ops *ops, cn_exec *ex, const cn_linear *l_in, const cn_linear *l_out,
                          const float *x, int ldx, int m, float *hidden, int dh, float *y, int ldy, cn_act act,
                          bool accumulate, float alpha) {
    if (ops->ffn) {
        ops->ffn(ex, l_in, l_out, x, ldx, m, hidden, y, ldy, act, accumulate, alpha);
        return;
    }
    ops->linear(ex, l_in, x, ldx, m, hidden, dh, act, false, 0);
    ops->linear(ex, l_out, hidden, dh, m, y, ldy, CN_ACT_NONE, accumulate, alpha);
}

#endif

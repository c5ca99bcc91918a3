/* Private to the model module. */
#ifndef CN_MODEL_INTERNAL_H
#define CN_MODEL_INTERNAL_H

#include "model/model.h"

typedef struct enc_layer {
    float *ln_ff1_g, *ln_ff1_b, *ln_att_g, *ln_att_b, *ln_conv_g, *ln_conv_b, *ln_ff2_g, *ln_ff2_b, *ln_out_g,
        *ln_out_b;
    cn_linear *ff1_in, *ff1_out, *ff2_in, *ff2_out;
    cn_linear *qkv, *att_out, *pos;
    float *bias_u, *bias_v;
    cn_linear *pw1, *pw2;
    float *dw_w, *dw_b; /* BatchNorm folded in: [d, k], [d] */
} enc_layer;

typedef struct dec_layer {
    float *ln1_g, *ln1_b, *ln2_g, *ln2_b, *ln3_g, *ln3_b;
    cn_linear *self_qkv, *self_out, *cross_q, *cross_kv, *cross_out, *ff_in, *ff_out;
} dec_layer;

struct cn_canary {
    const cn_nemo *nemo;
    cn_model_desc desc;
    cn_backend *be;
    cn_precision prec;
    cn_precision load_prec; /* precision of the linears being created now (see load_all) */
    /* subsampling */
    int sub_c, sub_f3; /* channels, frequency bins after 3 halvings */
    float *sub_w[5], *sub_b[5]; /* conv.0, .2, .3, .5, .6 (.3/.6 pointwise also as linears) */
    cn_linear *sub_pw[2], *sub_out;
    enc_layer *enc;
    cn_linear *proj; /* encoder_decoder_proj or NULL */
    /* decoder */
    float *tok_emb, *pos_enc, *emb_ln_g, *emb_ln_b, *final_ln_g, *final_ln_b;
    int vocab, max_pos;
    dec_layer *dec;
    cn_linear *head;
    /* bookkeeping */
    float **owned;
    size_t n_owned, cap_owned;
    cn_linear **linears;
    size_t n_linears, cap_linears;
};

cn_status cn_w_get(cn_canary *m, const char *name, int ndim, const int64_t *shape, float **out, cn_error *err);
cn_status cn_w_vec(cn_canary *m, const char *name, int64_t n, float **out, cn_error *err);
cn_status cn_w_linear(cn_canary *m, const char *prefix, int n_out, int n_in, bool bias, cn_linear **out,
                      cn_error *err);
/* A linear whose weight has `ndim` dims (e.g. a kernel-1 Conv1d [n_out, n_in, 1]). */
cn_status cn_w_linear_nd(cn_canary *m, const char *prefix, int ndim, const int64_t *shape, int n_out, int n_in,
                         bool bias, cn_linear **out, cn_error *err);
/* Makes a host constant readable by the backend's operations (uploads it on a GPU). */
cn_status cn_w_const(cn_canary *m, float **p, size_t n, cn_error *err);
cn_status cn_w_linear_from(cn_canary *m, const float *w, const float *b, int n_out, int n_in, cn_linear **out,
                           cn_error *err);
/* The same in fp32 whatever the model's precision (layers kept exact in bf16 mode). */
cn_status cn_w_linear_from_f32(cn_canary *m, const float *w, const float *b, int n_out, int n_in, cn_linear **out,
                               cn_error *err);
cn_status cn_w_linear_fused(cn_canary *m, const char *const *prefixes, int count, int n_out_each, int n_in,
                            bool bias, cn_linear **out, cn_error *err);

#endif

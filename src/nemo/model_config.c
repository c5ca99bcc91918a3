#include "nemo/model_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "nemo/yaml_tree.h"

typedef struct ctx {
    const cn_ynode *root;
    const char *label;
    cn_error *err;
} ctx;

/* Looks a setting up, following OmegaConf interpolations of the whole value ("${a.b}"). */
static const cn_ynode *get(const ctx *c, const char *path) {
    const cn_ynode *n = cn_ypath(c->root, path);
    for (int hops = 0; n && n->kind == CN_Y_SCALAR && hops < 8; hops++) {
        size_t len = strlen(n->value);
        if (len < 4 || strncmp(n->value, "${", 2) != 0 || n->value[len - 1] != '}')
            break;
        char target[256];
        if (len - 3 >= sizeof target)
            break;
        memcpy(target, n->value + 2, len - 3);
        target[len - 3] = 0;
        n = cn_ypath(c->root, target);
    }
    return n;
}

static cn_status missing(const ctx *c, const char *path) {
    return cn_error_set(c->err, CANARY_EFORMAT, "%s: missing required setting '%s'", c->label, path);
}

static cn_status bad(const ctx *c, const cn_ynode *n, const char *path, const char *what) {
    if (!n) /* a default value that does not fit the rest of the config */
        return cn_error_set(c->err, CANARY_EFORMAT, "%s: %s is not set and NeMo's default %s", c->label, path, what);
    return cn_error_set(c->err, CANARY_EFORMAT, "%s line %d: %s = '%.100s' %s", c->label, n->line, path,
                        n->kind == CN_Y_SCALAR ? n->value : n->kind == CN_Y_MAP ? "{...}" : "[...]", what);
}

static cn_status unsupported_value(const ctx *c, const cn_ynode *n, const char *path, const char *value,
                                   const char *what) {
    if (!n)
        return cn_error_set(c->err, CANARY_EUNSUPPORTED,
                            "%s: %s is not set, and NeMo's default '%s' is not supported (%s)", c->label, path, value,
                            what);
    return cn_error_set(c->err, CANARY_EUNSUPPORTED, "%s line %d: %s = '%.100s' is not supported (%s)", c->label,
                        n->line, path, value, what);
}

static cn_status unsupported(const ctx *c, const cn_ynode *n, const char *path, const char *what) {
    return unsupported_value(c, n, path, n && n->kind == CN_Y_SCALAR ? n->value : "?", what);
}

static bool parse_ll(const char *s, long long *out) {
    if (!*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Integer setting; `def` used when absent (or null) unless required. */
static cn_status get_int(const ctx *c, const char *path, bool required, int def, int lo, int hi, int *out) {
    const cn_ynode *n = get(c, path);
    if (cn_ynode_is_null(n)) {
        if (required)
            return missing(c, path);
        *out = def;
        return CANARY_OK;
    }
    long long v;
    if (n->kind != CN_Y_SCALAR || !parse_ll(n->value, &v))
        return bad(c, n, path, "is not an integer");
    if (v < lo || v > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "is outside the supported range [%d, %d]", lo, hi);
        return bad(c, n, path, msg);
    }
    *out = (int)v;
    return CANARY_OK;
}

static cn_status get_double(const ctx *c, const char *path, bool required, double def, double *out) {
    const cn_ynode *n = get(c, path);
    if (cn_ynode_is_null(n)) {
        if (required)
            return missing(c, path);
        *out = def;
        return CANARY_OK;
    }
    if (n->kind != CN_Y_SCALAR || !n->value[0])
        return bad(c, n, path, "is not a number");
    errno = 0;
    char *end;
    double v = strtod(n->value, &end);
    if (errno || *end || !isfinite(v))
        return bad(c, n, path, "is not a finite number");
    *out = v;
    return CANARY_OK;
}

static cn_status get_bool(const ctx *c, const char *path, bool required, bool def, bool *out) {
    const cn_ynode *n = get(c, path);
    if (cn_ynode_is_null(n)) {
        if (required)
            return missing(c, path);
        *out = def;
        return CANARY_OK;
    }
    if (n->kind == CN_Y_SCALAR && (!strcmp(n->value, "true") || !strcmp(n->value, "True"))) {
        *out = true;
        return CANARY_OK;
    }
    if (n->kind == CN_Y_SCALAR && (!strcmp(n->value, "false") || !strcmp(n->value, "False"))) {
        *out = false;
        return CANARY_OK;
    }
    return bad(c, n, path, "is not true or false");
}

static cn_status get_str(const ctx *c, const char *path, bool required, const char *def, char *buf, size_t cap) {
    const cn_ynode *n = get(c, path);
    if (cn_ynode_is_null(n)) {
        if (required)
            return missing(c, path);
        snprintf(buf, cap, "%s", def);
        return CANARY_OK;
    }
    if (n->kind != CN_Y_SCALAR)
        return bad(c, n, path, "is not a string");
    if (strlen(n->value) >= cap)
        return bad(c, n, path, "is too long");
    snprintf(buf, cap, "%s", n->value);
    return CANARY_OK;
}

/* A string setting that must be one of `allowed` (NULL-terminated); `why` explains the limit. */
static cn_status get_choice(const ctx *c, const char *path, const char *def, const char *const *allowed,
                            const char *why, char *buf, size_t cap) {
    CN_TRY(get_str(c, path, false, def, buf, cap));
    for (const char *const *a = allowed; *a; a++)
        if (!strcmp(buf, *a))
            return CANARY_OK;
    return unsupported_value(c, get(c, path), path, buf, why);
}

/* A setting that changes the math in a way canary-stt does not implement unless it has the
 * value all Canary releases use. */
static cn_status require_null(const ctx *c, const char *path, const char *why) {
    const cn_ynode *n = get(c, path);
    if (cn_ynode_is_null(n))
        return CANARY_OK;
    return unsupported(c, n, path, why);
}

static cn_status parse_preproc(const ctx *c, cn_preproc_desc *p) {
    static const char *const windows[] = {"hann", NULL};
    static const char *const norms[] = {"per_feature", NULL};
    static const char *const guards[] = {"add", "clamp", NULL};
    static const char *const melnorms[] = {"slaney", NULL};
    CN_TRY(get_int(c, "preprocessor.sample_rate", false, 16000, 8000, 48000, &p->sample_rate));
    int top_sr;
    CN_TRY(get_int(c, "sample_rate", false, p->sample_rate, 8000, 48000, &top_sr));
    if (top_sr != p->sample_rate)
        return cn_error_set(c->err, CANARY_EFORMAT, "%s: sample_rate %d differs from preprocessor.sample_rate %d",
                            c->label, top_sr, p->sample_rate);
    CN_TRY(get_int(c, "preprocessor.features", false, 64, 1, 1024, &p->n_mels));
    double ws, hs;
    CN_TRY(get_double(c, "preprocessor.window_size", false, 0.02, &ws));
    CN_TRY(get_double(c, "preprocessor.window_stride", false, 0.01, &hs));
    /* NeMo uses int(window_size * sample_rate); rounding guards against 0.025*16000 = 399.999... */
    p->win_length = (int)lround(ws * p->sample_rate);
    p->hop_length = (int)lround(hs * p->sample_rate);
    if (p->win_length < 1 || p->win_length > 65536)
        return unsupported(c, get(c, "preprocessor.window_size"), "preprocessor.window_size", "window length out of range");
    if (p->hop_length < 1 || p->hop_length > p->win_length)
        return unsupported(c, get(c, "preprocessor.window_stride"), "preprocessor.window_stride",
                           "hop must be between 1 sample and the window length");
    int def_fft = 1;
    while (def_fft < p->win_length)
        def_fft *= 2;
    CN_TRY(get_int(c, "preprocessor.n_fft", false, def_fft, 1, 65536, &p->n_fft));
    if (p->n_fft < p->win_length)
        return bad(c, get(c, "preprocessor.n_fft"), "preprocessor.n_fft", "is smaller than the window length");
    CN_TRY(get_choice(c, "preprocessor.window", "hann", windows, "canary-stt implements the Hann window", p->window,
                      sizeof p->window));
    CN_TRY(get_choice(c, "preprocessor.normalize", "per_feature", norms,
                      "canary-stt implements per_feature normalization", p->normalize, sizeof p->normalize));
    CN_TRY(get_double(c, "preprocessor.preemph", false, 0.97, &p->preemph));
    CN_TRY(get_double(c, "preprocessor.lowfreq", false, 0.0, &p->lowfreq));
    CN_TRY(get_double(c, "preprocessor.highfreq", false, p->sample_rate / 2.0, &p->highfreq));
    if (p->lowfreq < 0 || p->highfreq <= p->lowfreq || p->highfreq > p->sample_rate / 2.0)
        return cn_error_set(c->err, CANARY_EFORMAT, "%s: preprocessor lowfreq %g / highfreq %g out of range", c->label,
                            p->lowfreq, p->highfreq);
    /* log_zero_guard_value may be a number or "tiny"/"eps" (float32 limits) */
    const cn_ynode *g = get(c, "preprocessor.log_zero_guard_value");
    if (g && g->kind == CN_Y_SCALAR && !strcmp(g->value, "tiny"))
        p->log_zero_guard_value = 1.1754943508222875e-38;
    else if (g && g->kind == CN_Y_SCALAR && !strcmp(g->value, "eps"))
        p->log_zero_guard_value = 1.1920928955078125e-07;
    else
        CN_TRY(get_double(c, "preprocessor.log_zero_guard_value", false, 5.960464477539063e-08,
                          &p->log_zero_guard_value));
    CN_TRY(get_choice(c, "preprocessor.log_zero_guard_type", "add", guards, "NeMo knows add and clamp",
                      p->log_zero_guard_type, sizeof p->log_zero_guard_type));
    CN_TRY(get_double(c, "preprocessor.mag_power", false, 2.0, &p->mag_power));
    CN_TRY(get_double(c, "preprocessor.dither", false, 1e-5, &p->dither));
    CN_TRY(get_int(c, "preprocessor.pad_to", false, 16, 0, 4096, &p->pad_to));
    CN_TRY(get_double(c, "preprocessor.pad_value", false, 0.0, &p->pad_value));
    CN_TRY(get_bool(c, "preprocessor.log", false, true, &p->log));
    CN_TRY(get_int(c, "preprocessor.frame_splicing", false, 1, 1, 1, &p->frame_splicing));
    CN_TRY(get_choice(c, "preprocessor.mel_norm", "slaney", melnorms, "canary-stt implements Slaney mel filters",
                      p->mel_norm, sizeof p->mel_norm));
    CN_TRY(get_bool(c, "preprocessor.exact_pad", false, false, &p->exact_pad));
    if (p->exact_pad)
        return unsupported(c, get(c, "preprocessor.exact_pad"), "preprocessor.exact_pad",
                           "canary-stt implements centred STFT frames");
    bool stft_conv;
    CN_TRY(get_bool(c, "preprocessor.stft_conv", false, false, &stft_conv));
    if (stft_conv)
        return unsupported(c, get(c, "preprocessor.stft_conv"), "preprocessor.stft_conv", "removed from NeMo");
    return CANARY_OK;
}

static cn_status parse_encoder(const ctx *c, cn_encoder_desc *e) {
    static const char *const sub[] = {"dw_striding", NULL};
    static const char *const att[] = {"rel_pos", NULL};
    static const char *const norm[] = {"batch_norm", NULL};
    static const char *const style[] = {"regular", NULL};
    const cn_ynode *tgt = get(c, "encoder._target_");
    if (tgt && tgt->kind == CN_Y_SCALAR && !strstr(tgt->value, "ConformerEncoder"))
        return unsupported(c, tgt, "encoder._target_", "canary-stt implements the (Fast)ConformerEncoder");
    CN_TRY(get_int(c, "encoder.feat_in", true, 0, 1, 1024, &e->feat_in));
    CN_TRY(get_int(c, "encoder.n_layers", true, 0, 1, 256, &e->n_layers));
    CN_TRY(get_int(c, "encoder.d_model", true, 0, 1, 16384, &e->d_model));
    CN_TRY(get_int(c, "encoder.n_heads", false, 4, 1, 256, &e->n_heads));
    if (e->d_model % e->n_heads)
        return bad(c, get(c, "encoder.n_heads"), "encoder.n_heads", "does not divide encoder.d_model");
    CN_TRY(get_int(c, "encoder.ff_expansion_factor", false, 4, 1, 64, &e->ff_expansion_factor));
    CN_TRY(get_int(c, "encoder.conv_kernel_size", false, 31, 1, 1023, &e->conv_kernel_size));
    if (e->conv_kernel_size % 2 == 0)
        return unsupported(c, get(c, "encoder.conv_kernel_size"), "encoder.conv_kernel_size",
                           "an even kernel needs asymmetric padding");
    CN_TRY(get_choice(c, "encoder.conv_norm_type", "batch_norm", norm, "canary-stt implements batch_norm",
                      e->conv_norm_type, sizeof e->conv_norm_type));
    CN_TRY(get_choice(c, "encoder.subsampling", "striding", sub, "canary-stt implements dw_striding",
                      e->subsampling, sizeof e->subsampling));
    CN_TRY(get_int(c, "encoder.subsampling_factor", false, 4, 2, 64, &e->subsampling_factor));
    if (e->subsampling_factor & (e->subsampling_factor - 1))
        return unsupported(c, get(c, "encoder.subsampling_factor"), "encoder.subsampling_factor",
                           "dw_striding needs a power of two");
    CN_TRY(get_int(c, "encoder.subsampling_conv_channels", false, -1, -1, 16384, &e->subsampling_conv_channels));
    if (e->subsampling_conv_channels == 0)
        return bad(c, get(c, "encoder.subsampling_conv_channels"), "encoder.subsampling_conv_channels", "must not be 0");
    if (e->subsampling_conv_channels == -1) /* NeMo: -1 means d_model */
        e->subsampling_conv_channels = e->d_model;
    CN_TRY(get_choice(c, "encoder.self_attention_model", "rel_pos", att,
                      "canary-stt implements rel_pos attention", e->self_attention_model,
                      sizeof e->self_attention_model));
    char st[16];
    CN_TRY(get_choice(c, "encoder.att_context_style", "regular", style, "canary-stt implements full/regular context",
                      st, sizeof st));
    e->att_context_left = e->att_context_right = -1;
    const cn_ynode *acs = get(c, "encoder.att_context_size");
    if (!cn_ynode_is_null(acs)) {
        long long l, r;
        if (acs->kind != CN_Y_SEQ || acs->n != 2 || acs->items[0]->kind != CN_Y_SCALAR ||
            acs->items[1]->kind != CN_Y_SCALAR || !parse_ll(acs->items[0]->value, &l) ||
            !parse_ll(acs->items[1]->value, &r) || l < -1 || r < -1 || l > 1000000 || r > 1000000)
            return bad(c, acs, "encoder.att_context_size", "is not a pair [left, right] of integers >= -1");
        e->att_context_left = (int)l;
        e->att_context_right = (int)r;
    }
    CN_TRY(get_bool(c, "encoder.xscaling", false, true, &e->xscaling));
    CN_TRY(get_bool(c, "encoder.untie_biases", false, true, &e->untie_biases));
    CN_TRY(get_int(c, "encoder.pos_emb_max_len", false, 5000, 1, 1 << 24, &e->pos_emb_max_len));
    CN_TRY(get_bool(c, "encoder.use_bias", false, true, &e->use_bias));
    int feat_out;
    CN_TRY(get_int(c, "encoder.feat_out", false, -1, -1, 1 << 20, &feat_out));
    if (feat_out != -1 && feat_out != e->d_model)
        return unsupported(c, get(c, "encoder.feat_out"), "encoder.feat_out", "an encoder output projection");
    bool causal;
    CN_TRY(get_bool(c, "encoder.causal_downsampling", false, false, &causal));
    if (causal)
        return unsupported(c, get(c, "encoder.causal_downsampling"), "encoder.causal_downsampling",
                           "canary-stt implements non-causal subsampling");
    CN_TRY(require_null(c, "encoder.reduction", "time reduction inside the encoder"));
    CN_TRY(require_null(c, "encoder.conv_context_size", "only symmetric (default) convolution context"));
    int gt;
    CN_TRY(get_int(c, "encoder.global_tokens", false, 0, 0, 1 << 20, &gt));
    if (gt > 0)
        return unsupported(c, get(c, "encoder.global_tokens"), "encoder.global_tokens", "global attention tokens");
    return CANARY_OK;
}

static cn_status parse_decoder(const ctx *c, cn_model_desc *d) {
    static const char *const acts[] = {"relu", NULL};
    /* NeMo nests the Transformer settings in transf_decoder.config_dict */
    const char *pre = get(c, "transf_decoder.config_dict") ? "transf_decoder.config_dict." : "transf_decoder.";
    char path[128];
    cn_decoder_desc *dec = &d->dec;
#define P(k) (snprintf(path, sizeof path, "%s%s", pre, k), path)
    if (!get(c, "transf_decoder"))
        return missing(c, "transf_decoder");
    CN_TRY(get_int(c, P("num_layers"), true, 0, 1, 256, &dec->n_layers));
    CN_TRY(get_int(c, P("hidden_size"), true, 0, 1, 16384, &dec->hidden));
    CN_TRY(get_int(c, P("inner_size"), true, 0, 1, 1 << 20, &dec->inner));
    CN_TRY(get_int(c, P("num_attention_heads"), true, 0, 1, 256, &dec->n_heads));
    if (dec->hidden % dec->n_heads)
        return bad(c, get(c, path), path, "does not divide the decoder hidden size");
    CN_TRY(get_int(c, P("max_sequence_length"), false, 512, 1, 1 << 20, &dec->max_seq_len));
    CN_TRY(get_choice(c, P("hidden_act"), "relu", acts, "canary-stt implements relu", dec->hidden_act,
                      sizeof dec->hidden_act));
    CN_TRY(get_bool(c, P("pre_ln"), false, false, &dec->pre_ln));
    if (!dec->pre_ln)
        return unsupported(c, get(c, P("pre_ln")), path, "canary-stt implements the pre-LN decoder");
    CN_TRY(get_bool(c, P("learn_positional_encodings"), false, false, &dec->learn_positional_encodings));
    int types;
    CN_TRY(get_int(c, P("num_token_types"), false, 0, 0, 1 << 20, &types));
    if (types > 0)
        return unsupported(c, get(c, path), path, "token type embeddings");
    CN_TRY(get_int(c, P("vocab_size"), false, 0, 0, 1 << 24, &dec->vocab_size));
#undef P
    CN_TRY(get_bool(c, "transf_decoder.pre_ln_final_layer_norm", false, true, &dec->pre_ln_final_layer_norm));
    int enc_layers;
    CN_TRY(get_int(c, "transf_encoder.num_layers", false, 0, 0, 256, &enc_layers));
    if (enc_layers > 0)
        return unsupported(c, get(c, "transf_encoder.num_layers"), "transf_encoder.num_layers",
                           "no Canary release has a Transformer encoder");
    int head_layers;
    CN_TRY(get_int(c, "head.num_layers", false, 1, 1, 1, &head_layers));
    bool log_softmax;
    CN_TRY(get_bool(c, "head.log_softmax", false, true, &log_softmax));
    int head_classes;
    CN_TRY(get_int(c, "head.num_classes", false, 0, 0, 1 << 24, &head_classes));
    if (dec->vocab_size == 0)
        dec->vocab_size = head_classes; /* the checkpoint's embedding rows settle it in nemo.c */
    return CANARY_OK;
}

static cn_status parse_decoding(const ctx *c, cn_decoding_desc *dd) {
    static const char *const strategies[] = {"beam", "greedy", "greedy_batch", NULL};
    CN_TRY(get_choice(c, "decoding.strategy", "beam", strategies, "NeMo's Canary strategies are beam and greedy",
                      dd->strategy, sizeof dd->strategy));
    const char *sec = strcmp(dd->strategy, "beam") == 0 ? "decoding.beam." : "decoding.greedy.";
    char path[64];
    if (!strcmp(dd->strategy, "beam")) {
        CN_TRY(get_int(c, "decoding.beam.beam_size", false, 1, 1, 256, &dd->beam_size));
        /* NeMo reads beam.length_penalty and ignores len_pen (spec §7.2), so absent means 0 */
        CN_TRY(get_double(c, "decoding.beam.length_penalty", false, 0.0, &dd->length_penalty));
    } else {
        dd->beam_size = 1;
        dd->length_penalty = 0.0;
    }
    snprintf(path, sizeof path, "%smax_generation_delta", sec);
    CN_TRY(get_int(c, path, false, -1, -1, 1 << 20, &dd->max_generation_delta));
    return CANARY_OK;
}

static cn_status parse_tokenizer(const ctx *c, cn_tok_config *t) {
    memset(t, 0, sizeof *t);
    const cn_ynode *tok = get(c, "tokenizer");
    if (!tok)
        return missing(c, "tokenizer");
    char type[16];
    CN_TRY(get_str(c, "tokenizer.type", false, "bpe", type, sizeof type));
    if (!strcmp(type, "agg")) {
        t->aggregate = true;
        const cn_ynode *langs = get(c, "tokenizer.langs");
        if (!langs || langs->kind != CN_Y_MAP || langs->n == 0)
            return langs ? bad(c, langs, "tokenizer.langs", "is not a non-empty mapping") : missing(c, "tokenizer.langs");
        if (langs->n / 2 > CN_TOK_MAX_SUB)
            return bad(c, langs, "tokenizer.langs", "has too many sub-tokenizers");
        for (size_t i = 0; i + 1 < langs->n; i += 2) {
            const char *lang = langs->items[i]->value;
            char path[160];
            if (strlen(lang) >= sizeof t->sub[0].lang)
                return bad(c, langs->items[i], "tokenizer.langs", "has a language name that is too long");
            snprintf(path, sizeof path, "tokenizer.langs.%s.model_path", lang);
            for (size_t k = 0; k < t->n_sub; k++)
                if (!strcmp(t->sub[k].lang, lang))
                    return bad(c, langs->items[i], "tokenizer.langs", "lists a language twice");
            snprintf(t->sub[t->n_sub].lang, sizeof t->sub[0].lang, "%s", lang);
            CN_TRY(get_str(c, path, true, "", t->sub[t->n_sub].model_ref, CN_TOK_REF_MAX));
            t->n_sub++;
        }
    } else if (!strcmp(type, "bpe") || !strcmp(type, "unigram")) {
        CN_TRY(get_str(c, "tokenizer.model_path", true, "", t->model_ref, CN_TOK_REF_MAX));
    } else {
        return unsupported(c, get(c, "tokenizer.type"), "tokenizer.type",
                           "canary-stt reads SentencePiece tokenizers: bpe or agg");
    }
    return CANARY_OK;
}

void cn_model_desc_set_variant(cn_model_desc *d) {
    const char *v = "canary-custom";
    const cn_encoder_desc *e = &d->enc;
    if (d->prompt_format == CN_PROMPT_CANARY && e->n_layers == 24 && e->d_model == 1024 && d->dec.n_layers == 24)
        v = "canary-1b";
    else if (d->prompt_format == CN_PROMPT_CANARY2 && e->n_layers == 32 && e->d_model == 1024 &&
             d->dec.n_layers == 4)
        v = "canary-1b-flash";
    else if (d->prompt_format == CN_PROMPT_CANARY2 && e->n_layers == 17 && e->d_model == 512 && d->dec.n_layers == 4)
        v = "canary-180m-flash";
    else if (d->prompt_format == CN_PROMPT_CANARY2 && e->n_layers == 32 && e->d_model == 1024 &&
             d->dec.n_layers == 8)
        v = "canary-1b-v2";
    snprintf(d->variant, sizeof d->variant, "%s", v);
}

cn_status cn_model_config_parse(const char *yaml, size_t len, const char *label, cn_model_desc *d, cn_tok_config *tok,
                                cn_error *err) {
    memset(d, 0, sizeof *d);
    cn_ytree tree;
    CN_TRY(cn_ytree_parse(yaml, len, label, &tree, err));
    ctx c = {tree.root, label, err};
    cn_status st = CANARY_OK;
    char pf[16];
    static const char *const formats[] = {"canary", "canary2", NULL};
    const cn_ynode *target = get(&c, "target");
    if (target && target->kind == CN_Y_SCALAR && !strstr(target->value, "EncDecMultiTaskModel")) {
        st = unsupported(&c, target, "target", "canary-stt runs Canary (EncDecMultiTaskModel) models");
        goto done;
    }
    if ((st = get_choice(&c, "prompt_format", "canary", formats, "known formats: canary, canary2", pf, sizeof pf)))
        goto done;
    d->prompt_format = !strcmp(pf, "canary2") ? CN_PROMPT_CANARY2 : CN_PROMPT_CANARY;
    if ((st = get_str(&c, "nemo_version", false, "", d->nemo_version, sizeof d->nemo_version)))
        goto done;
    if ((st = parse_preproc(&c, &d->pre)) || (st = parse_encoder(&c, &d->enc)) || (st = parse_decoder(&c, d)) ||
        (st = parse_decoding(&c, &d->decoding)))
        goto done;
    if (d->enc.feat_in != d->pre.n_mels) {
        st = cn_error_set(err, CANARY_EFORMAT, "%s: encoder.feat_in %d differs from preprocessor.features %d", label,
                          d->enc.feat_in, d->pre.n_mels);
        goto done;
    }
    if ((st = get_int(&c, "model_defaults.asr_enc_hidden", false, d->enc.d_model, 1, 16384, &d->asr_enc_hidden)) ||
        (st = get_int(&c, "model_defaults.lm_dec_hidden", false, d->dec.hidden, 1, 16384, &d->lm_dec_hidden)))
        goto done;
    if (d->asr_enc_hidden != d->enc.d_model || d->lm_dec_hidden != d->dec.hidden) {
        st = cn_error_set(err, CANARY_EFORMAT,
                          "%s: model_defaults (asr_enc_hidden %d, lm_dec_hidden %d) disagree with encoder.d_model %d / "
                          "decoder hidden_size %d",
                          label, d->asr_enc_hidden, d->lm_dec_hidden, d->enc.d_model, d->dec.hidden);
        goto done;
    }
    d->has_enc_dec_proj = d->asr_enc_hidden != d->lm_dec_hidden;
    if (tok && (st = parse_tokenizer(&c, tok)))
        goto done;
    cn_model_desc_set_variant(d);
done:
    cn_ytree_free(&tree);
    return st;
}

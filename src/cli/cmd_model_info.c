/* canary-stt model-info MODEL.nemo [--json]: what a checkpoint is, read from its own files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "cli/cli.h"
#include "nemo/nemo.h"
#include "nemo/tokenizer.h"

/* State-dict entries that are buffers, not parameters (featurizer tables, positional tables,
 * BatchNorm statistics): excluded from the parameter count as torch's parameters() does. */
static bool is_buffer(const char *name) {
    static const char *const suffixes[] = {".running_mean", ".running_var", ".num_batches_tracked", ".pos_enc", ".pe"};
    if (!strncmp(name, "preprocessor.", 13))
        return true;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t l = strlen(suffixes[i]);
        if (n >= l && !strcmp(name + n - l, suffixes[i]))
            return true;
    }
    return false;
}

typedef struct stats {
    uint64_t params;
    size_t count[CN_DTYPE_COUNT];
    uint64_t bytes[CN_DTYPE_COUNT];
} stats;

/* Tied tensors (one storage under two names) count once. */
static void tensor_stats(const cn_nemo *m, stats *s) {
    memset(s, 0, sizeof *s);
    size_t n = cn_nemo_tensor_count(m);
    for (size_t i = 0; i < n; i++) {
        const cn_tensor_view *t = cn_nemo_tensor_at(m, i);
        s->count[t->dtype]++;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++) {
            const cn_tensor_view *u = cn_nemo_tensor_at(m, j);
            dup = u->storage_id == t->storage_id && u->data == t->data && u->nbytes == t->nbytes;
        }
        if (dup)
            continue;
        s->bytes[t->dtype] += t->nbytes;
        if (!is_buffer(t->name))
            s->params += t->nbytes / cn_dtype_size(t->dtype);
    }
}

static void print_text(const char *path, const cn_nemo *m) {
    const cn_model_desc *d = cn_nemo_desc(m);
    const cn_tokenizer *t = cn_nemo_tokenizer(m);
    stats s;
    tensor_stats(m, &s);
    printf("model:            %s\n", path);
    printf("variant:          %s\n", d->variant);
    printf("nemo version:     %s\n", d->nemo_version[0] ? d->nemo_version : "(not recorded)");
    printf("prompt format:    %s\n", d->prompt_format == CN_PROMPT_CANARY2 ? "canary2" : "canary");
    printf("parameters:       %llu\n", (unsigned long long)s.params);
    printf("tensors:          %zu:", cn_nemo_tensor_count(m));
    for (int k = 0; k < CN_DTYPE_COUNT; k++)
        if (s.count[k])
            printf(" %s %zu (%.1f MB)", cn_dtype_name((cn_dtype)k), s.count[k], s.bytes[k] / 1e6);
    printf("\n");
    printf("preprocessor:     %d Hz, %d mel bins (%s), n_fft %d, window %d (%s), hop %d, normalize %s,\n"
           "                  preemph %g, %g-%g Hz, log %s (guard %s %g), mag_power %g, dither %g, pad_to %d\n",
           d->pre.sample_rate, d->pre.n_mels, d->pre.mel_norm, d->pre.n_fft, d->pre.win_length, d->pre.window,
           d->pre.hop_length, d->pre.normalize, d->pre.preemph, d->pre.lowfreq, d->pre.highfreq,
           d->pre.log ? "yes" : "no", d->pre.log_zero_guard_type, d->pre.log_zero_guard_value, d->pre.mag_power,
           d->pre.dither, d->pre.pad_to);
    printf("encoder:          FastConformer, %d layers, d_model %d, %d heads, ff %d, conv kernel %d (%s),\n"
           "                  subsampling %s x%d (%d channels), attention %s, context [%d, %d], xscaling %s,\n"
           "                  untie_biases %s, pos_emb_max_len %d, bias %s\n",
           d->enc.n_layers, d->enc.d_model, d->enc.n_heads, d->enc.d_model * d->enc.ff_expansion_factor,
           d->enc.conv_kernel_size, d->enc.conv_norm_type, d->enc.subsampling, d->enc.subsampling_factor,
           d->enc.subsampling_conv_channels, d->enc.self_attention_model, d->enc.att_context_left,
           d->enc.att_context_right, d->enc.xscaling ? "yes" : "no", d->enc.untie_biases ? "yes" : "no",
           d->enc.pos_emb_max_len, d->enc.use_bias ? "yes" : "no");
    if (d->has_enc_dec_proj)
        printf("projection:       Linear %d -> %d (encoder_decoder_proj)\n", d->asr_enc_hidden, d->lm_dec_hidden);
    else
        printf("projection:       none (encoder width = decoder width = %d)\n", d->lm_dec_hidden);
    printf("decoder:          Transformer, %d layers, hidden %d, %d heads, inner %d, %s, max positions %d,\n"
           "                  %s, vocabulary rows %d\n",
           d->dec.n_layers, d->dec.hidden, d->dec.n_heads, d->dec.inner, d->dec.hidden_act, d->dec.max_seq_len,
           d->dec.pre_ln ? "pre-LN" : "post-LN", d->dec.vocab_size);
    printf("decoding:         %s, beam size %d, length penalty %g, max_generation_delta %d\n", d->decoding.strategy,
           d->decoding.beam_size, d->decoding.length_penalty, d->decoding.max_generation_delta);
    printf("tokenizer:        SentencePiece, %s, %d ids (eos %d, bos %d, pad %d)\n",
           cn_tok_is_aggregate(t) ? "aggregate (special-token block + one block per language)" : "unified",
           cn_tok_vocab_size(t), cn_tok_eos(t), cn_tok_bos(t), cn_tok_pad(t));
    printf("languages:        ");
    for (size_t i = 0; i < cn_tok_language_count(t); i++)
        printf("%s%s", i ? " " : "", cn_tok_language_at(t, i));
    printf("\n");
    printf("timestamps model: %s\n", d->has_timestamps_model ? "bundled CTC aligner (timestamps_asr_model_*)" : "none");
}

static void json_kv_int(cn_strbuf *sb, const char *k, long long v, bool comma) {
    cn_sb_printf(sb, "\"%s\":%lld%s", k, v, comma ? "," : "");
}
static void json_kv_num(cn_strbuf *sb, const char *k, double v, bool comma) {
    cn_sb_printf(sb, "\"%s\":%.17g%s", k, v, comma ? "," : "");
}
static void json_kv_str(cn_strbuf *sb, const char *k, const char *v, bool comma) {
    cn_sb_printf(sb, "\"%s\":", k);
    cn_sb_json_string(sb, v);
    if (comma)
        cn_sb_putc(sb, ',');
}
static void json_kv_bool(cn_strbuf *sb, const char *k, bool v, bool comma) {
    cn_sb_printf(sb, "\"%s\":%s%s", k, v ? "true" : "false", comma ? "," : "");
}

static char *to_json(const char *path, const cn_nemo *m) {
    const cn_model_desc *d = cn_nemo_desc(m);
    const cn_tokenizer *t = cn_nemo_tokenizer(m);
    stats s;
    tensor_stats(m, &s);
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sb_putc(&sb, '{');
    json_kv_str(&sb, "path", path, true);
    json_kv_str(&sb, "variant", d->variant, true);
    json_kv_str(&sb, "nemo_version", d->nemo_version, true);
    json_kv_str(&sb, "prompt_format", d->prompt_format == CN_PROMPT_CANARY2 ? "canary2" : "canary", true);
    json_kv_int(&sb, "parameters", (long long)s.params, true);
    cn_sb_printf(&sb, "\"tensors\":{\"count\":%zu,\"by_dtype\":{", cn_nemo_tensor_count(m));
    bool first = true;
    for (int k = 0; k < CN_DTYPE_COUNT; k++) {
        if (!s.count[k])
            continue;
        cn_sb_printf(&sb, "%s\"%s\":{\"count\":%zu,\"bytes\":%llu}", first ? "" : ",", cn_dtype_name((cn_dtype)k),
                     s.count[k], (unsigned long long)s.bytes[k]);
        first = false;
    }
    cn_sb_puts(&sb, "}},\"preprocessor\":{");
    json_kv_int(&sb, "sample_rate", d->pre.sample_rate, true);
    json_kv_int(&sb, "n_mels", d->pre.n_mels, true);
    json_kv_int(&sb, "n_fft", d->pre.n_fft, true);
    json_kv_int(&sb, "win_length", d->pre.win_length, true);
    json_kv_int(&sb, "hop_length", d->pre.hop_length, true);
    json_kv_str(&sb, "window", d->pre.window, true);
    json_kv_str(&sb, "normalize", d->pre.normalize, true);
    json_kv_num(&sb, "preemph", d->pre.preemph, true);
    json_kv_num(&sb, "lowfreq", d->pre.lowfreq, true);
    json_kv_num(&sb, "highfreq", d->pre.highfreq, true);
    json_kv_num(&sb, "log_zero_guard_value", d->pre.log_zero_guard_value, true);
    json_kv_str(&sb, "log_zero_guard_type", d->pre.log_zero_guard_type, true);
    json_kv_num(&sb, "mag_power", d->pre.mag_power, true);
    json_kv_num(&sb, "dither", d->pre.dither, true);
    json_kv_int(&sb, "pad_to", d->pre.pad_to, true);
    json_kv_num(&sb, "pad_value", d->pre.pad_value, true);
    json_kv_bool(&sb, "log", d->pre.log, true);
    json_kv_int(&sb, "frame_splicing", d->pre.frame_splicing, true);
    json_kv_str(&sb, "mel_norm", d->pre.mel_norm, true);
    json_kv_bool(&sb, "exact_pad", d->pre.exact_pad, false);
    cn_sb_puts(&sb, "},\"encoder\":{");
    json_kv_int(&sb, "feat_in", d->enc.feat_in, true);
    json_kv_int(&sb, "n_layers", d->enc.n_layers, true);
    json_kv_int(&sb, "d_model", d->enc.d_model, true);
    json_kv_int(&sb, "n_heads", d->enc.n_heads, true);
    json_kv_int(&sb, "ff_expansion_factor", d->enc.ff_expansion_factor, true);
    json_kv_int(&sb, "conv_kernel_size", d->enc.conv_kernel_size, true);
    json_kv_str(&sb, "conv_norm_type", d->enc.conv_norm_type, true);
    json_kv_str(&sb, "subsampling", d->enc.subsampling, true);
    json_kv_int(&sb, "subsampling_factor", d->enc.subsampling_factor, true);
    json_kv_int(&sb, "subsampling_conv_channels", d->enc.subsampling_conv_channels, true);
    json_kv_str(&sb, "self_attention_model", d->enc.self_attention_model, true);
    cn_sb_printf(&sb, "\"att_context_size\":[%d,%d],", d->enc.att_context_left, d->enc.att_context_right);
    json_kv_bool(&sb, "xscaling", d->enc.xscaling, true);
    json_kv_bool(&sb, "untie_biases", d->enc.untie_biases, true);
    json_kv_int(&sb, "pos_emb_max_len", d->enc.pos_emb_max_len, true);
    json_kv_bool(&sb, "use_bias", d->enc.use_bias, false);
    cn_sb_puts(&sb, "},\"projection\":");
    if (d->has_enc_dec_proj)
        cn_sb_printf(&sb, "{\"in\":%d,\"out\":%d}", d->asr_enc_hidden, d->lm_dec_hidden);
    else
        cn_sb_puts(&sb, "null");
    cn_sb_puts(&sb, ",\"decoder\":{");
    json_kv_int(&sb, "n_layers", d->dec.n_layers, true);
    json_kv_int(&sb, "hidden", d->dec.hidden, true);
    json_kv_int(&sb, "inner", d->dec.inner, true);
    json_kv_int(&sb, "n_heads", d->dec.n_heads, true);
    json_kv_int(&sb, "max_seq_len", d->dec.max_seq_len, true);
    json_kv_str(&sb, "hidden_act", d->dec.hidden_act, true);
    json_kv_bool(&sb, "pre_ln", d->dec.pre_ln, true);
    json_kv_bool(&sb, "pre_ln_final_layer_norm", d->dec.pre_ln_final_layer_norm, true);
    json_kv_bool(&sb, "learn_positional_encodings", d->dec.learn_positional_encodings, true);
    json_kv_int(&sb, "vocab_size", d->dec.vocab_size, false);
    cn_sb_puts(&sb, "},\"decoding\":{");
    json_kv_str(&sb, "strategy", d->decoding.strategy, true);
    json_kv_int(&sb, "beam_size", d->decoding.beam_size, true);
    json_kv_num(&sb, "length_penalty", d->decoding.length_penalty, true);
    json_kv_int(&sb, "max_generation_delta", d->decoding.max_generation_delta, false);
    cn_sb_puts(&sb, "},\"tokenizer\":{");
    json_kv_str(&sb, "layout", cn_tok_is_aggregate(t) ? "aggregate" : "unified", true);
    json_kv_int(&sb, "vocab_size", cn_tok_vocab_size(t), true);
    json_kv_int(&sb, "eos", cn_tok_eos(t), true);
    json_kv_int(&sb, "bos", cn_tok_bos(t), true);
    json_kv_int(&sb, "pad", cn_tok_pad(t), true);
    cn_sb_puts(&sb, "\"languages\":[");
    for (size_t i = 0; i < cn_tok_language_count(t); i++) {
        if (i)
            cn_sb_putc(&sb, ',');
        cn_sb_json_string(&sb, cn_tok_language_at(t, i));
    }
    cn_sb_puts(&sb, "]},");
    json_kv_bool(&sb, "timestamps_model", d->has_timestamps_model, false);
    cn_sb_puts(&sb, "}\n");
    return cn_sb_steal(&sb);
}

int cmd_model_info(int argc, char **argv) {
    static const cn_opt opts[] = {{"json", false, "print JSON instead of text"}, {0}};
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("model-info", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    if (p.help) {
        printf("Usage: canary-stt model-info [MODEL.nemo | DIR | ORG/NAME] [--json]\n\n"
               "Describes a NeMo Canary checkpoint (.nemo file, gzip'd .nemo or unpacked directory):\n"
               "variant, dimensions, parameter count, tensors by dtype, languages, prompt format,\n"
               "tokenizer and front-end settings. A hub name is fetched into the cache on first use; without\n"
               "MODEL, the configured model (--model) is used.\n\n");
        cn_cli_print_opts(opts);
        cn_config_free(&cfg);
        return 0;
    }
    if (p.n_pos > 1) {
        fprintf(stderr, "canary-stt model-info: expected one model path, got %d arguments\n", p.n_pos);
        cn_config_free(&cfg);
        return 2;
    }
    /* a path, a directory or a hub name (fetched on first use), like --model everywhere */
    char *path = NULL;
    cn_status rs = cn_cli_model_path(&cfg, p.n_pos ? p.pos[0] : NULL, &path, &err);
    if (rs != CANARY_OK) {
        fprintf(stderr, "canary-stt model-info: %s\n", err.msg);
        cn_config_free(&cfg);
        return rs == CANARY_ENOTFOUND || rs == CANARY_EINVAL ? 2 : 1; /* a mistyped path is a usage error */
    }
    char *unpack_dir = NULL;
    if (cfg.cache_dir && cfg.cache_dir[0] && asprintf(&unpack_dir, "%s/unpacked", cfg.cache_dir) < 0)
        unpack_dir = NULL;
    cn_nemo *m = NULL;
    cn_status st = cn_nemo_open(path, unpack_dir, &m, &err);
    free(unpack_dir);
    if (st) {
        fprintf(stderr, "canary-stt model-info: %s\n", err.msg);
        free(path);
        cn_config_free(&cfg);
        return 1;
    }
    if (p.values[0]) {
        char *json = to_json(path, m);
        if (json)
            fputs(json, stdout);
        free(json);
    } else {
        print_text(path, m);
    }
    cn_nemo_close(m);
    free(path);
    cn_config_free(&cfg);
    return 0;
}

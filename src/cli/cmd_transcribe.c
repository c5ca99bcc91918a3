/* canary-stt transcribe: files in, text or JSON out, through the public engine API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "canary/canary.h"
#include "canary/canary_audio.h"
#include "cli/cli.h"
#include "cli/engine_opts.h"

cn_status cn_cli_read_audio(const char *path, float **out, size_t *n, char *msg, size_t msg_size) {
    canary_audio *a;
    canary_status st = canary_audio_open_file(path, NULL, &a, msg, msg_size);
    if (st != CANARY_OK)
        return st;
    size_t cap = 1 << 16, len = 0;
    float *buf = malloc(sizeof(float) * cap);
    for (;;) {
        if (!buf) {
            canary_audio_close(a);
            snprintf(msg, msg_size, "%s: out of memory", path);
            return CANARY_ENOMEM;
        }
        if (cap - len < 16384) {
            float *nb = realloc(buf, sizeof(float) * cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = 0;
        st = canary_audio_read(a, buf + len, cap - len, &got, msg, msg_size);
        if (st != CANARY_OK) {
            free(buf);
            canary_audio_close(a);
            return st;
        }
        if (got == 0)
            break;
        len += got;
    }
    canary_audio_close(a);
    *out = buf;
    *n = len;
    return CANARY_OK;
}

cn_status cn_cli_engine_params(const cn_config *cfg, const cn_cli_parsed *p, const cn_opt *opts,
                               const canary_model *model, canary_params *out, char *msg, size_t msg_size) {
    canary_params prm = canary_default_params(model);
    prm.source_lang = cfg->language;
    prm.target_lang = cfg->target_language[0] ? cfg->target_language : NULL;
    prm.pnc = cfg->pnc;
    prm.beam_size = cfg->beam_size;
    for (int i = 0; opts[i].name; i++) {
        const char *v = p->values[i];
        if (!v)
            continue;
        if (strcmp(opts[i].name, "lang") == 0)
            prm.source_lang = v;
        else if (strcmp(opts[i].name, "target-lang") == 0)
            prm.target_lang = v;
        else if (strcmp(opts[i].name, "beam") == 0) {
            char *end;
            long b = strtol(v, &end, 10);
            if (*end || b < 1 || b > 64) {
                snprintf(msg, msg_size, "--beam %s: expected an integer from 1 to 64", v);
                return CANARY_EINVAL;
            }
            prm.beam_size = (int)b;
        } else if (strcmp(opts[i].name, "search") == 0) {
            if (strcmp(v, "beam") == 0)
                prm.search = CANARY_SEARCH_BEAM;
            else if (strcmp(v, "greedy") == 0)
                prm.search = CANARY_SEARCH_GREEDY;
            else {
                snprintf(msg, msg_size, "--search %s: expected beam or greedy", v);
                return CANARY_EINVAL;
            }
        }
    }
    if (strcmp(cfg->precision, "bf16") == 0)
        prm.precision = CANARY_PRECISION_BF16;
    else if (strcmp(cfg->precision, "fp32") == 0 || strcmp(cfg->precision, "auto") == 0)
        prm.precision = CANARY_PRECISION_FP32;
    else {
        snprintf(msg, msg_size, "--precision %s: the CPU engine supports fp32 and bf16", cfg->precision);
        return CANARY_EUNSUPPORTED;
    }
    if (strcmp(cfg->feature_semantics, "nemo-2.4") == 0)
        prm.features = CANARY_FEATURES_NEMO_2_4;
    else if (strcmp(cfg->feature_semantics, "nemo-2.5") == 0)
        prm.features = CANARY_FEATURES_NEMO_2_5;
    else if (strcmp(cfg->feature_semantics, "auto") != 0) {
        snprintf(msg, msg_size, "--feature-semantics %s: expected auto, nemo-2.4 or nemo-2.5", cfg->feature_semantics);
        return CANARY_EINVAL;
    }
    *out = prm;
    return CANARY_OK;
}

static void print_json(const canary_context *ctx, const char *file, const char *model_variant) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sb_puts(&sb, "{\"file\":");
    cn_sb_json_string(&sb, file);
    cn_sb_puts(&sb, ",\"model\":");
    cn_sb_json_string(&sb, model_variant);
    cn_sb_puts(&sb, ",\"text\":");
    cn_sb_json_string(&sb, canary_result_text(ctx, 0));
    cn_sb_printf(&sb, ",\"score\":%.6g,\"tokens\":[", (double)canary_result_score(ctx, 0));
    for (int j = 0; j < canary_result_token_count(ctx, 0); j++) {
        canary_token t = canary_result_token(ctx, 0, j);
        cn_sb_printf(&sb, "%s{\"id\":%d,\"piece\":", j ? "," : "", t.id);
        cn_sb_json_string(&sb, t.piece);
        cn_sb_printf(&sb, ",\"logprob\":%.6g,\"position\":%d}", (double)t.logprob, t.position);
    }
    cn_sb_puts(&sb, "]}\n");
    fputs(cn_sb_str(&sb), stdout);
    cn_sb_free(&sb);
}

int cmd_transcribe(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"lang", true, "source language (default: the `language` setting, en)"},
        {"target-lang", true, "target language for translation (default: same as --lang)"},
        {"beam", true, "beam width (default: the model's, 1)"},
        {"search", true, "beam (NeMo's default path) | greedy (NeMo's greedy strategy)"},
        {"format", true, "text | json (default text)"},
        {0}};
    cn_config cfg;
    cn_error err;
    cn_error_clear(&err);
    if (cn_config_init(&cfg, &err)) {
        fprintf(stderr, "canary-stt transcribe: %s\n", err.msg);
        return 1;
    }
    cn_cli_parsed p;
    if (cn_cli_parse(argc, argv, opts, &cfg, &p, &err)) {
        fprintf(stderr, "canary-stt transcribe: %s\n", err.msg);
        cn_config_free(&cfg);
        return 2;
    }
    if (p.help || p.n_pos == 0) {
        FILE *o = p.help ? stdout : stderr;
        fprintf(o, "Usage: canary-stt transcribe --model M.nemo [--lang en] [--target-lang de] [--pnc yes|no]\n"
                   "         [--beam N] [--search beam|greedy] [--precision fp32|bf16] [--threads N]\n"
                   "         [--format text|json] FILE...\n\n"
                   "Transcribes (or translates) each audio/video file in one pass of the model.\n\n");
        if (p.help)
            cn_cli_print_opts(opts);
        cn_config_free(&cfg);
        return p.help ? 0 : 2;
    }
    cn_cli_setup_logging(&cfg, &err);
    const char *format = p.values[4] ? p.values[4] : "text";
    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        fprintf(stderr, "canary-stt transcribe: --format %s: expected text or json\n", format);
        cn_config_free(&cfg);
        return 2;
    }
    char msg[1024];
    canary_model *model = NULL;
    canary_context *ctx = NULL;
    canary_model_params mp = canary_model_default_params();
    mp.cache_dir = cfg.cache_dir[0] ? cfg.cache_dir : NULL;
    int rc = 0;
    if (canary_model_load(cfg.model, &mp, &model, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", msg);
        cn_config_free(&cfg);
        return 1;
    }
    canary_params prm;
    if (cn_cli_engine_params(&cfg, &p, opts, model, &prm, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", msg);
        rc = 2;
        goto out;
    }
    if (canary_context_create(model, cfg.threads, &ctx, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt transcribe: %s\n", msg);
        rc = 1;
        goto out;
    }
    for (int i = 0; i < p.n_pos; i++) {
        float *pcm = NULL;
        size_t n = 0;
        if (cn_cli_read_audio(p.pos[i], &pcm, &n, msg, sizeof msg) != CANARY_OK ||
            canary_transcribe(ctx, &prm, pcm, n, msg, sizeof msg) != CANARY_OK) {
            fprintf(stderr, "canary-stt transcribe: %s: %s\n", p.pos[i], msg);
            free(pcm);
            rc = 1;
            continue;
        }
        free(pcm);
        if (strcmp(format, "json") == 0)
            print_json(ctx, p.pos[i], canary_model_variant(model));
        else if (p.n_pos > 1)
            printf("%s: %s\n", p.pos[i], canary_result_text(ctx, 0));
        else
            printf("%s\n", canary_result_text(ctx, 0));
        fflush(stdout);
    }
out:
    canary_context_free(ctx);
    canary_model_free(model);
    cn_config_free(&cfg);
    return rc;
}

/* canary-stt bench: speed of the engine on this machine (RTFx, encoder GFLOP/s, load time, RSS).
 * Audio is synthetic (deterministic tones and noise) so the command needs nothing but a model;
 * decoding runs with EOS ignored so every utterance generates exactly --tokens tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/clock.h"
#include "base/threadpool.h"
#include "canary/canary.h"
#include "cli/cli.h"
#include "cli/engine_opts.h"
#include "model/model.h"
#include "nn/backend.h"

static float *synth(size_t n, unsigned seed) {
    float *x = malloc(sizeof(float) * n);
    if (!x)
        return NULL;
    uint32_t s = 2463534242u ^ seed;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        double t = (double)i / CANARY_SAMPLE_RATE;
        x[i] = (float)(0.3 * sin(2 * M_PI * (180 + 40 * sin(t * 3)) * t) + 0.1 * sin(2 * M_PI * 950 * t) +
                       0.05 * ((double)(s >> 8) / 16777216.0 - 0.5));
    }
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_int(const char *v, int def, int lo, int hi, const char *name, int *out) {
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "canary-stt bench: --%s %s: expected an integer from %d to %d\n", name, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

typedef struct run_stats {
    double wall, enc, dec, feat;
    int frames;
} run_stats;

static int run(canary_context *ctx, const canary_params *prm, const float *const *pcm, const size_t *n, int batch,
               int runs, run_stats *out) {
    char msg[1024];
    double *walls = malloc(sizeof(double) * (size_t)(runs + 1));
    if (!walls)
        return -1;
    for (int r = 0; r <= runs; r++) { /* run 0 warms up (buffers planned, pages touched) */
        uint64_t t0 = cn_now_ns();
        if (canary_transcribe_batch(ctx, prm, pcm, n, batch, msg, sizeof msg) != CANARY_OK) {
            fprintf(stderr, "canary-stt bench: %s\n", msg);
            free(walls);
            return -1;
        }
        walls[r] = cn_elapsed_s(t0);
        if (r == runs || r == 0) {
            canary_timings t = canary_last_timings(ctx);
            out->enc = t.encoder_s;
            out->dec = t.decoder_s;
            out->feat = t.features_s;
            out->frames = t.encoder_frames;
        }
    }
    qsort(walls + 1, (size_t)runs, sizeof(double), cmp_double);
    out->wall = walls[1 + runs / 2]; /* median */
    free(walls);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"batch", true, "utterances in the batched run (default 8)"},
        {"seconds", true, "length of each utterance in seconds (default 10)"},
        {"tokens", true, "tokens generated per utterance (default 40)"},
        {"runs", true, "timed runs per measurement, median reported (default 3)"},
        {"format", true, "text | json (default text)"},
        {"lang", true, "source language of the prompt (default en)"},
        {"beam", true, "beam width (default 1)"},
        {"search", true, "beam | greedy"},
        {0}};
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("bench", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    if (p.help) {
        printf("Usage: canary-stt bench --model M.nemo [--batch 8] [--seconds 10] [--tokens 40] [--runs 3]\n"
               "         [--device cpu|cuda|cuda:N|auto] [--precision fp32|tf32|bf16|fp16] [--threads N]\n"
               "         [--format text|json]\n\n"
               "Measures load time, RTFx (audio seconds / wall seconds) for one utterance and for a batch,\n"
               "encoder GFLOP/s and peak RSS on synthetic audio.\n\n");
        cn_cli_print_opts(opts);
        cn_config_free(&cfg);
        return 0;
    }
    cn_cli_setup_logging(&cfg, &err);
    int batch, seconds, tokens, runs;
    if (parse_int(p.values[0], 8, 1, 256, "batch", &batch) || parse_int(p.values[1], 10, 1, 300, "seconds", &seconds) ||
        parse_int(p.values[2], 40, 1, 1000, "tokens", &tokens) || parse_int(p.values[3], 3, 1, 100, "runs", &runs)) {
        cn_config_free(&cfg);
        return 2;
    }
    bool json = p.values[4] && strcmp(p.values[4], "json") == 0;
    char msg[1024];
    canary_model *model = NULL;
    canary_context *ctx = NULL;
    int rc = 1;
    canary_model_params mp = canary_model_default_params();
    mp.cache_dir = cfg.cache_dir[0] ? cfg.cache_dir : NULL;
    mp.device = cfg.device;
    if (cn_cli_check_device(&cfg, "bench") != CANARY_OK || cn_cli_resolve_model(&cfg, "bench") != CANARY_OK) {
        cn_config_free(&cfg);
        return 1;
    }
    uint64_t t0 = cn_now_ns(); /* load time, not download time */
    if (canary_model_load(cfg.model, &mp, &model, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt bench: %s\n", msg);
        cn_config_free(&cfg);
        return 1;
    }
    double load_s = cn_elapsed_s(t0);
    canary_params prm;
    if (cn_cli_engine_params(&cfg, &p, opts, model, &prm, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt bench: %s\n", msg);
        rc = 2;
        goto out;
    }
    prm.max_new_tokens = tokens;
    prm.ignore_eos = true;
    int threads = cfg.threads > 0 ? cfg.threads : cn_physical_cores();
    if (canary_context_create(model, threads, &ctx, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-stt bench: %s\n", msg);
        goto out;
    }
    size_t n = (size_t)seconds * CANARY_SAMPLE_RATE;
    float **pcm = calloc((size_t)batch, sizeof(float *));
    size_t *lens = calloc((size_t)batch, sizeof(size_t));
    bool ok = pcm && lens;
    for (int i = 0; ok && i < batch; i++) {
        pcm[i] = synth(n, (unsigned)i);
        lens[i] = n;
        ok = pcm[i] != NULL;
    }
    run_stats one = {0}, many = {0};
    if (ok)
        ok = run(ctx, &prm, (const float *const *)pcm, lens, 1, runs, &one) == 0 &&
             run(ctx, &prm, (const float *const *)pcm, lens, batch, runs, &many) == 0;
    for (int i = 0; pcm && i < batch; i++)
        free(pcm[i]);
    free(pcm);
    free(lens);
    if (!ok)
        goto out;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    /* encoder FLOPs from the model's dimensions */
    double gflop1 = canary_model_encoder_flops(model, one.frames) / 1e9, gflopb = gflop1 * batch;
    double audio1 = seconds, audiob = (double)seconds * batch;
    static const char *const prec_names[] = {"fp32", "bf16", "fp16", "tf32"};
    const char *prec = prec_names[prm.precision];
    const char *device = canary_model_device(model);
    /* the GEMM library is the CPU's; a GPU uses cuBLAS */
    const char *gemm = strcmp(device, "cpu") == 0 ? cn_cpu_gemm_name() : "cublasLt";
    if (json) {
        printf("{\"model\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\",\"threads\":%d,\"gemm\":\"%s\",\"load_s\":%.3f,"
               "\"single\":{\"audio_s\":%.1f,\"wall_s\":%.4f,\"rtfx\":%.2f,\"encoder_s\":%.4f,\"encoder_gflops\":%.1f,"
               "\"decoder_s\":%.4f},"
               "\"batch\":{\"n\":%d,\"audio_s\":%.1f,\"tokens_each\":%d,\"wall_s\":%.4f,\"rtfx\":%.2f,\"encoder_s\":%.4f,"
               "\"encoder_gflops\":%.1f,\"decoder_s\":%.4f},\"peak_rss_mb\":%.1f}\n",
               canary_model_variant(model), device, prec, threads, gemm, load_s, audio1, one.wall,
               audio1 / one.wall, one.enc, gflop1 / one.enc, one.dec, batch, audiob, tokens, many.wall,
               audiob / many.wall, many.enc, gflopb / many.enc, many.dec, rss_mb);
    } else {
        printf("model %s, %s, %s, %d threads, GEMM %s\n", canary_model_variant(model), device, prec, threads, gemm);
        printf("load                 %8.3f s\n", load_s);
        printf("1 x %3d s            %8.3f s  RTFx %7.1f  (encoder %.3f s = %.1f GFLOP/s, decoder %.3f s, %d tokens)\n",
               seconds, one.wall, audio1 / one.wall, one.enc, gflop1 / one.enc, one.dec, tokens);
        printf("%d x %3d s            %8.3f s  RTFx %7.1f  (encoder %.3f s = %.1f GFLOP/s, decoder %.3f s, %d tokens each)\n",
               batch, seconds, many.wall, audiob / many.wall, many.enc, gflopb / many.enc, many.dec, tokens);
        printf("peak RSS             %8.1f MB\n", rss_mb);
    }
    rc = 0;
out:
    canary_context_free(ctx);
    canary_model_free(model);
    cn_config_free(&cfg);
    return rc;
}

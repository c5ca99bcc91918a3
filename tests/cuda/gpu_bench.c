/* canary-gpu-bench: the engine alone (public API, no pipeline, no server) timed like
 * `canary-stt bench`, for the GPU bundle (tests/cuda/make-gpu-bundle.sh), which runs on machines
 * without our Debian libraries.
 *
 *   canary-gpu-bench --model M.nemo [--device cuda] [--precision bf16[,fp16,...]]
 *                    [--batches 1,64,128] [--seconds 10] [--tokens 40] [--runs 3]
 *
 * Per (precision, batch): one untimed warm-up, then the median of `runs` timed calls of greedy
 * decoding with exactly `tokens` new tokens per utterance (EOS ignored) on synthetic audio. One
 * JSON line each on stdout (with a hash of every utterance's token ids: runs must agree); exit 0
 * when every run succeeded. With CANARY_CUDA_PROFILE set and the plugin named by
 * CANARY_CUDA_PLUGIN, the plugin's profile is paused during the warm-ups: it covers the timed runs
 * (docs/CUDA.md). `rtfx` is audio seconds over the call's median wall time; `rtfx_from_features`
 * takes each run's feature time out, as PyTorch's baseline (shared/bench) starts from precomputed
 * features (with the features on the GPU, its default, only the host's staging counts as feature
 * time and the two are close).
 *
 *   canary-gpu-bench --hwinfo [MiB]
 *
 * instead prints what `canary-stt hwinfo --check` reports, which the bundle cannot run: the detected
 * hardware as JSON (CPU, memory, GPUs through the CUDA plugin and NVML), then per GPU the plugin's
 * self-test (a memory pattern over MiB, default 256, and one strict fp32 GEMM against the CPU) as
 * one JSON line each; exit 1 when a GPU fails it or none is found. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canary/canary.h"
#include "base/strbuf.h"
#include "hw/check.h"
#include "hw/hw.h"
#include "hw/profile.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Speech-like synthetic audio: a few harmonics under a syllable-rate envelope, item-specific. */
static float *synth(size_t n, unsigned item) {
    float *x = malloc(sizeof(float) * n);
    if (!x)
        return NULL;
    float f0 = 110.0f + 17.0f * (float)(item % 7);
    for (size_t k = 0; k < n; k++) {
        float t = (float)k / CANARY_SAMPLE_RATE, env = 0.5f + 0.5f * sinf(2 * 3.14159265f * 4.0f * t);
        x[k] = 0.1f * env * (sinf(2 * 3.14159265f * f0 * t) + 0.5f * sinf(2 * 3.14159265f * 2 * f0 * t));
    }
    return x;
}

/* cn_cuda_profile_pause of the loaded CUDA plugin, when profiling with a named plugin; else NULL. */
static void (*profile_pause_fn(void))(int) {
    const char *prof = getenv("CANARY_CUDA_PROFILE"), *plugin = getenv("CANARY_CUDA_PLUGIN");
    if (!prof || !*prof || strcmp(prof, "0") == 0 || !plugin || !*plugin)
        return NULL;
    void *h = dlopen(plugin, RTLD_NOW | RTLD_NOLOAD); /* the engine's handle: loaded by model load */
    void (*fn)(int) = NULL;
    if (h) {
        *(void **)&fn = dlsym(h, "cn_cuda_profile_pause");
        dlclose(h); /* drops only this reference */
    }
    return fn;
}

/* FNV-1a over every utterance's token ids of the last run. */
static unsigned long ids_hash(const canary_context *ctx) {
    unsigned long h = 1469598103934665603ul;
    for (int i = 0; i < canary_result_count(ctx); i++)
        for (int j = 0; j <= canary_result_token_count(ctx, i); j++) {
            unsigned v = j < canary_result_token_count(ctx, i) ? (unsigned)canary_result_token(ctx, i, j).id : ~0u;
            for (int b = 0; b < 4; b++)
                h = (h ^ ((v >> (8 * b)) & 0xffu)) * 1099511628211ul;
        }
    return h;
}

static bool parse_prec(const char *s, canary_precision *out) {
    static const char *const names[] = {"fp32", "bf16", "fp16", "tf32"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (canary_precision)i;
            return true;
        }
    return false;
}

static int hwinfo(const char *mib_arg) {
    long mib = mib_arg ? strtol(mib_arg, NULL, 10) : 256;
    if (mib < 0 || mib > 65536) {
        fprintf(stderr, "canary-gpu-bench: --hwinfo %s: expected MiB from 0 to 65536\n", mib_arg);
        return 2;
    }
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_hw_info_json(&hw, &sb);
    printf("{\"event\":\"hwinfo\",\"hardware\":%s}\n", cn_sb_str(&sb));
    int bad = hw.n_gpus == 0;
    for (int g = 0; g < hw.n_gpus; g++) {
        cn_hw_check_result r;
        cn_error err;
        cn_error_clear(&err);
        cn_status st = cn_hw_check_gpu(&hw, g, (uint64_t)mib << 20, &r, &err);
        cn_sb_reset(&sb);
        cn_sb_json_string(&sb, st == CANARY_OK ? r.msg : err.msg);
        printf("{\"event\":\"selftest\",\"device\":\"%s\",\"ok\":%s,\"max_err\":%.3g,\"tolerance\":%.3g,"
               "\"status\":%d,\"msg\":%s}\n",
               r.device, r.ok ? "true" : "false", r.max_err, r.tolerance, (int)st, cn_sb_str(&sb));
        bad |= st != CANARY_OK || !r.ok;
    }
    cn_sb_free(&sb);
    fflush(stdout);
    return bad;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--hwinfo") == 0)
        return hwinfo(argc >= 3 ? argv[2] : NULL);
    const char *model_path = NULL, *device = "cuda", *precs = "bf16", *batches = "1,64,128";
    int seconds = 10, tokens = 40, runs = 3, beam = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "canary-gpu-bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0)
            model_path = v;
        else if (strcmp(a, "--device") == 0)
            device = v;
        else if (strcmp(a, "--precision") == 0)
            precs = v;
        else if (strcmp(a, "--batches") == 0)
            batches = v;
        else if (strcmp(a, "--seconds") == 0)
            seconds = atoi(v);
        else if (strcmp(a, "--tokens") == 0)
            tokens = atoi(v);
        else if (strcmp(a, "--runs") == 0)
            runs = atoi(v);
        else if (strcmp(a, "--beam") == 0)
            beam = atoi(v);
        else {
            fprintf(stderr, "canary-gpu-bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (!model_path || seconds < 1 || seconds > 40 || tokens < 1 || runs < 1 || runs > 50 || beam < 1 || beam > 16) {
        fprintf(stderr, "usage: canary-gpu-bench --model M.nemo [--device cuda] [--precision bf16,fp16] "
                        "[--batches 1,64,128] [--seconds 1-40] [--tokens N] [--runs 1-50] [--beam 1-16 (1: greedy)]\n");
        return 2;
    }
    /* CANARY_CUDA_GRAPHS=1 makes the CUDA backend run decoder steps as graphs (docs/CUDA.md) */
    const char *graphs_env = getenv("CANARY_CUDA_GRAPHS");
    bool graphs = graphs_env && *graphs_env && strcmp(graphs_env, "0") != 0;
    /* features on the GPU unless CANARY_GPU_FEATURES=0 (a CUDA device only) */
    const char *gf_env = getenv("CANARY_GPU_FEATURES");
    bool cpu_features = gf_env && strcmp(gf_env, "0") == 0;
    char msg[1024];
    canary_model_params mp = canary_model_default_params();
    mp.device = device;
    canary_model *model = NULL;
    double t0 = now_s();
    if (canary_model_load(model_path, &mp, &model, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-gpu-bench: %s\n", msg);
        return 1;
    }
    printf("{\"event\":\"load\",\"model\":\"%s\",\"device\":\"%s\",\"note\":\"%s\",\"load_s\":%.3f}\n",
           canary_model_variant(model), canary_model_device(model), canary_model_device_note(model), now_s() - t0);
    /* hw/profile's memory model for this checkpoint and length, beside what the CUDA profile
     * measures (engine-gpu-check.sh compares them at full size) */
    cn_hw_model hm;
    cn_error herr;
    cn_error_clear(&herr);
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    int gi = strncmp(device, "cuda:", 5) == 0 ? atoi(device + 5) : 0;
    uint64_t gpu_total = gi >= 0 && gi < hw.n_gpus ? hw.gpus[gi].total_mem : 0;
    if (cn_hw_model_from_file(model_path, NULL, &hm, &herr) == CANARY_OK)
        printf("{\"event\":\"memory_model\",\"seconds\":%d,\"item_bytes\":%llu,\"worker_bytes\":%llu}\n", seconds,
               (unsigned long long)cn_profile_item_bytes(&hm, seconds, beam),
               (unsigned long long)cn_profile_worker_bytes(gpu_total));
    fflush(stdout);
    void (*profile_pause)(int) = profile_pause_fn();
    if (profile_pause)
        profile_pause(1);
    canary_context *ctx = NULL;
    if (canary_context_create(model, 0, &ctx, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "canary-gpu-bench: %s\n", msg);
        canary_model_free(model);
        return 1;
    }
    int rc = 0, max_batch = 0;
    char blist[256];
    snprintf(blist, sizeof blist, "%s", batches);
    for (char *s = NULL, *b = strtok_r(blist, ",", &s); b; b = strtok_r(NULL, ",", &s))
        max_batch = atoi(b) > max_batch ? atoi(b) : max_batch;
    if (max_batch < 1 || max_batch > 1024) {
        fprintf(stderr, "canary-gpu-bench: --batches %s: expected sizes from 1 to 1024\n", batches);
        return 2;
    }
    size_t n = (size_t)seconds * CANARY_SAMPLE_RATE;
    float **pcm = calloc((size_t)max_batch, sizeof(float *));
    size_t *lens = calloc((size_t)max_batch, sizeof(size_t));
    double *walls = calloc((size_t)runs, sizeof(double)), *walls_nf = calloc((size_t)runs, sizeof(double));
    for (int i = 0; pcm && lens && i < max_batch; i++) {
        pcm[i] = synth(n, (unsigned)i);
        lens[i] = n;
        if (!pcm[i])
            rc = 1;
    }
    if (!pcm || !lens || !walls || !walls_nf)
        rc = 1;
    char plist[256];
    snprintf(plist, sizeof plist, "%s", precs);
    for (char *sp = NULL, *p = strtok_r(plist, ",", &sp); p && rc == 0; p = strtok_r(NULL, ",", &sp)) {
        canary_precision prec;
        if (!parse_prec(p, &prec)) {
            fprintf(stderr, "canary-gpu-bench: precision %s: expected fp32, tf32, bf16 or fp16\n", p);
            rc = 2;
            break;
        }
        canary_params prm = canary_default_params(model);
        prm.precision = prec;
        prm.search = beam > 1 ? CANARY_SEARCH_BEAM : CANARY_SEARCH_GREEDY;
        prm.beam_size = beam;
        prm.max_new_tokens = tokens;
        prm.ignore_eos = true;
        snprintf(blist, sizeof blist, "%s", batches);
        for (char *sb = NULL, *b = strtok_r(blist, ",", &sb); b; b = strtok_r(NULL, ",", &sb)) {
            int batch = atoi(b);
            canary_timings tm = {0};
            canary_status st = CANARY_OK;
            for (int r = -1; r < runs && st == CANARY_OK; r++) { /* r = -1: warm-up (plans, lazy weights) */
                if (profile_pause)
                    profile_pause(r < 0);
                double t = now_s();
                st = canary_transcribe_batch(ctx, &prm, (const float *const *)pcm, lens, batch, msg, sizeof msg);
                double w = now_s() - t;
                tm = canary_last_timings(ctx);
                if (r >= 0) {
                    walls[r] = w;
                    walls_nf[r] = w - tm.features_s; /* the same call without its feature extraction */
                }
            }
            if (profile_pause)
                profile_pause(1);
            if (st != CANARY_OK) {
                printf("{\"event\":\"bench\",\"precision\":\"%s\",\"batch\":%d,\"error\":\"", p, batch);
                for (const char *c = msg; *c; c++) /* a JSON string: the message without quotes */
                    putchar(*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ? '\'' : *c);
                printf("\"}\n");
                fflush(stdout);
                rc = 1;
                continue;
            }
            int toks = canary_result_token_count(ctx, 0);
            if (toks != tokens) {
                printf("{\"event\":\"bench\",\"precision\":\"%s\",\"batch\":%d,\"error\":\"%d tokens generated, "
                       "%d asked for\"}\n", p, batch, toks, tokens);
                rc = 1;
            }
            qsort(walls, (size_t)runs, sizeof(double), cmp_double);
            qsort(walls_nf, (size_t)runs, sizeof(double), cmp_double);
            double wall = walls[runs / 2], audio = (double)seconds * batch;
            printf("{\"event\":\"bench\",\"model\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\",\"batch\":%d,"
                   "\"audio_s\":%.1f,\"tokens_each\":%d,\"runs\":%d,\"wall_s\":%.4f,\"wall_min_s\":%.4f,"
                   "\"rtfx\":%.1f,\"rtfx_from_features\":%.1f,\"features_s\":%.4f,\"encoder_s\":%.4f,\"decoder_s\":%.4f,"
                   "\"ids_hash\":\"%016lx\",\"profiled\":%s,\"cuda_graphs\":%s,\"features_on\":\"%s\"}\n",
                   canary_model_variant(model), canary_model_device(model), p, batch, audio, toks, runs, wall,
                   walls[0], audio / wall, audio / walls_nf[runs / 2],
                   tm.features_s, tm.encoder_s, tm.decoder_s, ids_hash(ctx),
                   profile_pause ? "true" : "false", graphs ? "true" : "false",
                   strncmp(canary_model_device(model), "cuda", 4) == 0 && !cpu_features ? "gpu" : "cpu");
            fflush(stdout);
        }
    }
    for (int i = 0; pcm && i < max_batch; i++)
        free(pcm[i]);
    free(pcm);
    free(lens);
    free(walls);
    free(walls_nf);
    canary_context_free(ctx);
    canary_model_free(model);
    return rc;
}

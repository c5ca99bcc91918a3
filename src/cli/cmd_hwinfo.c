/* canary-stt hwinfo: what was detected, the profile chosen and why; --check: the device self-test
 * and, with a model, one batch on every device compared with the CPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "canary/canary.h"
#include "base/strbuf.h"
#include "cli/cli.h"
#include "hw/check.h"
#include "hw/hw.h"
#include "hw/profile.h"

/* ---- --check, model level: one batch of synthetic audio on every device vs the CPU in fp32 ---- */

#define CHECK_ITEMS 2

/* Deterministic "speech-like" audio: a few modulated tones over low noise (a linear congruential
 * generator, so every run and machine feeds the same samples). */
static float *synthetic_clip(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof *x);
    if (!x)
        return NULL;
    uint32_t r = 2463534242u ^ seed;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / CANARY_SAMPLE_RATE;
        r = r * 1664525u + 1013904223u;
        double noise = ((double)(r >> 8) / 16777216.0 - 0.5) * 0.02;
        double env = 0.5 + 0.5 * sin(2 * M_PI * (2.0 + seed) * t);
        x[i] = (float)(env * (0.08 * sin(2 * M_PI * (180.0 + 20 * seed) * t) + 0.05 * sin(2 * M_PI * 720.0 * t)) + noise);
    }
    return x;
}

typedef struct check_run {
    int n_tok[CHECK_ITEMS];
    int *ids[CHECK_ITEMS];
    float *lp[CHECK_ITEMS];
} check_run;

static void check_run_free(check_run *r) {
    for (int i = 0; i < CHECK_ITEMS; i++) {
        free(r->ids[i]);
        free(r->lp[i]);
    }
    memset(r, 0, sizeof *r);
}

static int check_run_tokens(const check_run *r) {
    int n = 0;
    for (int i = 0; i < CHECK_ITEMS; i++)
        n += r->n_tok[i];
    return n;
}

/* One batch of the clips on `ctx` at `prec`. */
static canary_status run_batch_at(canary_model *m, canary_context *ctx, const char *lang, canary_precision prec,
                                  const float *const *pcm, const size_t *lens, check_run *out, char *msg,
                                  size_t msg_size) {
    memset(out, 0, sizeof *out);
    canary_params prm = canary_default_params(m);
    prm.source_lang = lang;
    prm.precision = prec;
    canary_status st = canary_transcribe_batch(ctx, &prm, pcm, lens, CHECK_ITEMS, msg, msg_size);
    for (int i = 0; i < CHECK_ITEMS && st == CANARY_OK; i++) {
        int n = canary_result_token_count(ctx, i);
        out->ids[i] = calloc((size_t)n + 1, sizeof *out->ids[i]);
        out->lp[i] = calloc((size_t)n + 1, sizeof *out->lp[i]);
        if (!out->ids[i] || !out->lp[i]) {
            snprintf(msg, msg_size, "out of memory");
            st = CANARY_ENOMEM;
            break;
        }
        out->n_tok[i] = n;
        for (int j = 0; j < n; j++) {
            canary_token t = canary_result_token(ctx, i, j);
            out->ids[i][j] = t.id;
            out->lp[i][j] = t.logprob;
        }
    }
    if (st != CANARY_OK)
        check_run_free(out);
    return st;
}

/* Token ids at the same positions that agree, over the longer of each pair; and the largest
 * log-probability difference where they agree. */
static int tokens_agree(const check_run *a, const check_run *b, int *total, double *max_lp) {
    int same = 0;
    *total = 0;
    *max_lp = 0;
    for (int i = 0; i < CHECK_ITEMS; i++) {
        int n = a->n_tok[i] < b->n_tok[i] ? a->n_tok[i] : b->n_tok[i];
        *total += a->n_tok[i] > b->n_tok[i] ? a->n_tok[i] : b->n_tok[i];
        for (int j = 0; j < n; j++)
            if (a->ids[i][j] == b->ids[i][j]) {
                same++;
                double d = fabs((double)a->lp[i][j] - (double)b->lp[i][j]);
                if (d > *max_lp)
                    *max_lp = d;
            }
    }
    return same;
}

/* The largest |log-probability| difference allowed between a device's fp32 run and the CPU's
 * (different summation orders in fp32 over a few hundred-wide dot products). */
#define CHECK_LOGPROB_TOL 1e-3

typedef struct model_check {
    cn_strbuf text, json;
    int failures, n_json;
} model_check;

static void mc_entry(model_check *mc, const char *device, const char *precision, const char *verdict, int tokens,
                     int agree, int total, double max_lp, const char *msg) {
    cn_sb_printf(&mc->text, "%-7s %-5s %s: %s\n", device, precision, verdict, msg);
    cn_sb_puts(&mc->json, mc->n_json++ ? ",{\"device\":" : "{\"device\":");
    cn_sb_json_string(&mc->json, device);
    cn_sb_puts(&mc->json, ",\"precision\":");
    cn_sb_json_string(&mc->json, precision);
    cn_sb_puts(&mc->json, ",\"result\":");
    cn_sb_json_string(&mc->json, verdict);
    cn_sb_printf(&mc->json, ",\"tokens\":%d,\"agreeing\":%d,\"compared\":%d,\"max_logprob_diff\":%.3g,\"message\":",
                 tokens, agree, total, max_lp);
    cn_sb_json_string(&mc->json, msg);
    cn_sb_putc(&mc->json, '}');
}

static const char *lang_for(canary_model *m) {
    size_t n = canary_model_language_count(m);
    for (size_t i = 0; i < n; i++)
        if (strcmp(canary_model_language(m, i), "en") == 0)
            return "en";
    return n ? canary_model_language(m, 0) : "en";
}

/* Loads `path` on `device` and runs the batch at fp32 and, when given, at `extra`. */
static canary_status load_and_run(const cn_config *cfg, const char *path, const char *device, int threads,
                                  const float *const *pcm, const size_t *lens, check_run *fp32,
                                  canary_precision extra, check_run *extra_out, char *msg, size_t msg_size) {
    canary_model_params mp = canary_model_default_params();
    mp.cache_dir = cfg->cache_dir[0] ? cfg->cache_dir : NULL;
    mp.device = device;
    canary_model *m = NULL;
    canary_context *ctx = NULL;
    canary_status st = canary_model_load(path, &mp, &m, msg, msg_size);
    if (st == CANARY_OK)
        st = canary_context_create(m, threads, &ctx, msg, msg_size);
    if (st == CANARY_OK)
        st = run_batch_at(m, ctx, lang_for(m), CANARY_PRECISION_FP32, pcm, lens, fp32, msg, msg_size);
    if (st == CANARY_OK && extra_out) {
        char xmsg[256];
        if (run_batch_at(m, ctx, lang_for(m), extra, pcm, lens, extra_out, xmsg, sizeof xmsg) != CANARY_OK)
            memset(extra_out, 0, sizeof *extra_out); /* information only: reported as not run */
    }
    canary_context_free(ctx);
    canary_model_free(m);
    return st;
}

/* Model-level check: the CPU in fp32 is the reference; every GPU runs the same batch in fp32 and
 * must give the same token ids (log-probabilities within CHECK_LOGPROB_TOL); the precision the
 * profile would use (bf16/fp16) is reported as token agreement, for information. */
static void run_model_check(const cn_config *cfg, const char *path, const cn_hw_info *hw, model_check *mc) {
    size_t lens[CHECK_ITEMS] = {3 * CANARY_SAMPLE_RATE, 17 * CANARY_SAMPLE_RATE / 10};
    float *clips[CHECK_ITEMS];
    for (int i = 0; i < CHECK_ITEMS; i++)
        clips[i] = synthetic_clip(lens[i], (unsigned)i);
    const float *const pcm[CHECK_ITEMS] = {clips[0], clips[1]};
    char msg[512], line[600];
    check_run ref = {0}, ref_bf16 = {0};
    if (!clips[0] || !clips[1]) {
        mc_entry(mc, "cpu", "fp32", "FAIL", 0, 0, 0, 0, "out of memory");
        mc->failures++;
        goto out;
    }
    bool cpu_bf16 = hw->avx512bf16 || hw->amx_usable || hw->arm_bf16 || hw->n_gpus == 0;
    if (load_and_run(cfg, path, "cpu", cfg->threads, pcm, lens, &ref, CANARY_PRECISION_BF16,
                     cpu_bf16 ? &ref_bf16 : NULL, msg, sizeof msg) != CANARY_OK) {
        snprintf(line, sizeof line, "the CPU reference did not run: %s", msg);
        mc_entry(mc, "cpu", "fp32", "FAIL", 0, 0, 0, 0, line);
        mc->failures++;
        goto out;
    }
    snprintf(line, sizeof line, "%d tokens for %d synthetic clips (3.0 s, 1.7 s) in one batch",
             check_run_tokens(&ref), CHECK_ITEMS);
    mc_entry(mc, "cpu", "fp32", "REFERENCE", check_run_tokens(&ref), 0, 0, 0, line);
    if (cpu_bf16) {
        int total;
        double max_lp;
        int agree = tokens_agree(&ref_bf16, &ref, &total, &max_lp);
        if (ref_bf16.ids[0])
            snprintf(line, sizeof line, "%d of %d token ids agree with fp32, position by position (information: bf16 rounds differently, and after a first different token the rest usually differs)",
                     agree, total);
        else
            snprintf(line, sizeof line, "bf16 did not run on this CPU");
        mc_entry(mc, "cpu", "bf16", "INFO", check_run_tokens(&ref_bf16), agree, total, max_lp, line);
    }
    for (int g = 0; g < hw->n_gpus; g++) {
        char dev[32];
        snprintf(dev, sizeof dev, "cuda:%d", hw->gpus[g].index);
        bool bf16 = hw->gpus[g].cc_major >= 8;
        check_run run = {0}, low = {0};
        if (load_and_run(cfg, path, dev, 1, pcm, lens, &run, bf16 ? CANARY_PRECISION_BF16 : CANARY_PRECISION_FP16, &low,
                         msg, sizeof msg) != CANARY_OK) {
            snprintf(line, sizeof line, "the model did not run: %s", msg);
            mc_entry(mc, dev, "fp32", "FAIL", 0, 0, 0, 0, line);
            mc->failures++;
            continue;
        }
        int total;
        double max_lp;
        int agree = tokens_agree(&run, &ref, &total, &max_lp);
        bool ok = agree == total && max_lp <= CHECK_LOGPROB_TOL;
        if (ok)
            snprintf(line, sizeof line, "token ids identical to the CPU (%d), log-probabilities within %.1g (max %.2g)",
                     total, CHECK_LOGPROB_TOL, max_lp);
        else if (agree != total)
            snprintf(line, sizeof line, "%d of %d token ids differ from the CPU's", total - agree, total);
        else
            snprintf(line, sizeof line, "log-probabilities differ from the CPU's by %.3g (allowed %.1g)", max_lp,
                     CHECK_LOGPROB_TOL);
        mc_entry(mc, dev, "fp32", ok ? "PASS" : "FAIL", check_run_tokens(&run), agree, total, max_lp, line);
        mc->failures += !ok;
        if (low.ids[0]) {
            agree = tokens_agree(&low, &ref, &total, &max_lp);
            snprintf(line, sizeof line, "%d of %d token ids agree with the CPU's fp32 (information)", agree, total);
            mc_entry(mc, dev, bf16 ? "bf16" : "fp16", "INFO", check_run_tokens(&low), agree, total, max_lp, line);
        }
        check_run_free(&run);
        check_run_free(&low);
    }
out:
    check_run_free(&ref);
    check_run_free(&ref_bf16);
    for (int i = 0; i < CHECK_ITEMS; i++)
        free(clips[i]);
}

/* `model_path` NULL: no model given, only the device self-test runs. */
static int run_check(const cn_config *cfg, const char *model_path, const char *model_skip, const cn_hw_info *hw,
                     bool json) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    int failures = 0;
    if (json)
        cn_sb_puts(&sb, "{\"checks\":[");
    for (int i = 0; i < hw->n_gpus; i++) {
        /* a quarter of the free memory, at most 256 MiB: enough to touch many DRAM pages quickly */
        uint64_t mem = hw->gpus[i].free_mem / 4;
        if (mem > (256u << 20))
            mem = 256u << 20;
        cn_hw_check_result r;
        cn_error err;
        cn_error_clear(&err);
        cn_hw_check_gpu(hw, i, mem, &r, &err);
        failures += !r.ok;
        if (json) {
            cn_sb_puts(&sb, i ? ",{\"device\":" : "{\"device\":");
            cn_sb_json_string(&sb, r.device);
            cn_sb_puts(&sb, ",\"name\":");
            cn_sb_json_string(&sb, hw->gpus[i].name);
            cn_sb_printf(&sb, ",\"ok\":%s,\"max_error\":%.3g,\"message\":", r.ok ? "true" : "false", r.max_err);
            cn_sb_json_string(&sb, r.msg);
            cn_sb_putc(&sb, '}');
        } else {
            cn_sb_printf(&sb, "%-7s %s: %s: %s\n", r.device, hw->gpus[i].name, r.ok ? "ok" : "FAILED", r.msg);
        }
    }
    model_check mc = {0};
    cn_sb_init(&mc.text);
    cn_sb_init(&mc.json);
    if (model_path)
        run_model_check(cfg, model_path, hw, &mc);
    failures += mc.failures;
    const char *no_gpu = "no GPU to compare: the model ran on the CPU only";
    if (json) {
        cn_sb_puts(&sb, "],\"gpu_note\":");
        cn_sb_json_string(&sb, hw->n_gpus ? "" : hw->gpu_note);
        cn_sb_printf(&sb, ",\"failures\":%d,\"model_check\":{\"status\":\"%s\",\"model\":", failures,
                     model_path ? "ran" : "skipped");
        cn_sb_json_string(&sb, model_path ? model_path : "");
        cn_sb_puts(&sb, ",\"message\":");
        cn_sb_json_string(&sb, !model_path ? model_skip : hw->n_gpus ? "" : no_gpu);
        cn_sb_printf(&sb, ",\"failures\":%d,\"runs\":[%s]}}\n", mc.failures, cn_sb_str(&mc.json));
    } else {
        if (hw->n_gpus == 0)
            cn_sb_printf(&sb, "No GPU to check (%s); the CPU is the reference.\n", hw->gpu_note);
        if (model_path) {
            cn_sb_printf(&sb, "Model check with %s (reference: the CPU in fp32):\n%s", model_path, cn_sb_str(&mc.text));
            if (hw->n_gpus == 0)
                cn_sb_printf(&sb, "Model check: %s.\n", no_gpu);
        } else {
            cn_sb_printf(&sb, "Model check: skipped: %s.\n", model_skip);
        }
        cn_sb_printf(&sb, "%d failure(s) over %d device(s).\n", failures, hw->n_gpus + (model_path ? 1 : 0));
    }
    fputs(cn_sb_str(&sb), stdout);
    cn_sb_free(&sb);
    cn_sb_free(&mc.text);
    cn_sb_free(&mc.json);
    return failures ? 1 : 0;
}

/* ---- --server: the devices of a running service (health after failures, load, batches) ---- */

static size_t collect(char *p, size_t size, size_t n, void *user) {
    cn_strbuf *sb = user;
    if (sb->len + size * n > (4u << 20))
        return 0; /* GET / is a few KiB; refuse anything absurd */
    cn_sb_putn(sb, p, size * n);
    return size * n;
}

/* GET <url>/ with the first configured API key; prints hardware.devices. Exit 1 when a device is
 * unhealthy, 2 when the service cannot be asked. */
static int show_server(const cn_config *cfg, const char *url, bool json_out) {
    cn_strbuf body, full, auth;
    cn_sb_init(&body);
    cn_sb_init(&full);
    cn_sb_init(&auth);
    size_t n = strlen(url);
    cn_sb_printf(&full, "%.*s/", (int)(n && url[n - 1] == '/' ? n - 1 : n), url);
    const char *keys = cfg->api_keys ? cfg->api_keys : "";
    size_t klen = strcspn(keys, ",");
    struct curl_slist *hdr = NULL;
    if (klen) {
        cn_sb_printf(&auth, "Authorization: Bearer %.*s", (int)klen, keys);
        hdr = curl_slist_append(NULL, cn_sb_str(&auth));
    }
    CURL *c = curl_easy_init();
    long code = 0;
    CURLcode rc = CURLE_FAILED_INIT;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, cn_sb_str(&full));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (hdr)
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
    }
    curl_slist_free_all(hdr);
    int ret = 2;
    json_t *root = rc == CURLE_OK && code == 200 ? json_loads(cn_sb_str(&body), 0, NULL) : NULL;
    json_t *devs = json_object_get(json_object_get(root, "hardware"), "devices");
    if (rc != CURLE_OK)
        fprintf(stderr, "canary-stt hwinfo: GET %s: %s\n", cn_sb_str(&full), curl_easy_strerror(rc));
    else if (code != 200)
        fprintf(stderr, "canary-stt hwinfo: GET %s answered HTTP %ld%s\n", cn_sb_str(&full), code,
                code == 401 ? " (set server.api_keys / CANARY_API_KEYS to a key of that service)" : "");
    else if (!json_is_array(devs))
        fprintf(stderr, "canary-stt hwinfo: GET %s: no hardware.devices in the answer (not a canary-stt service?)\n",
                cn_sb_str(&full));
    else {
        int unhealthy = 0;
        size_t i;
        json_t *d;
        json_array_foreach(devs, i, d) unhealthy += !json_is_true(json_object_get(d, "healthy"));
        if (json_out) {
            json_t *o = json_pack("{s:s, s:O, s:i}", "server", url, "devices", devs, "unhealthy", unhealthy);
            char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
            printf("%s\n", text ? text : "{}");
            free(text);
            json_decref(o);
        } else {
            printf("Service %s: %zu device(s)%s\n", url, json_array_size(devs),
                   json_array_size(devs) ? "" : " (its model is not loaded yet)");
            json_array_foreach(devs, i, d) {
                const char *name = json_string_value(json_object_get(d, "device"));
                bool ok = json_is_true(json_object_get(d, "healthy"));
                printf("%-7s %s: %lld executor(s) x batch %lld, %lld busy, %lld batches done, %lld failed, busy %.1f s, "
                       "memory %.0f / %.0f MiB",
                       name ? name : "?", ok ? "healthy" : "UNHEALTHY",
                       (long long)json_integer_value(json_object_get(d, "workers")),
                       (long long)json_integer_value(json_object_get(d, "max_batch")),
                       (long long)json_integer_value(json_object_get(d, "busy_workers")),
                       (long long)json_integer_value(json_object_get(d, "batches_done")),
                       (long long)json_integer_value(json_object_get(d, "batches_failed")),
                       json_number_value(json_object_get(d, "busy_seconds")),
                       json_number_value(json_object_get(d, "memory_in_use_bytes")) / 1048576.0,
                       json_number_value(json_object_get(d, "memory_budget_bytes")) / 1048576.0);
                const char *why = json_string_value(json_object_get(d, "last_error"));
                if (!ok && why)
                    printf(": %s", why);
                putchar('\n');
            }
        }
        ret = unhealthy ? 1 : 0;
    }
    json_decref(root);
    cn_sb_free(&body);
    cn_sb_free(&full);
    cn_sb_free(&auth);
    return ret;
}

int cmd_hwinfo(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"json", false, "print JSON (schema in docs/HARDWARE.md)"},
        {"check", false, "self-test every GPU against the CPU (memory pattern + fp32 GEMM; with --model also one "
                         "batch of the model on every device vs the CPU in fp32); exit 1 on a mismatch"},
        {"for-model", true, "size the profile for this model: canary-1b, canary-1b-flash, canary-180m-flash, "
                            "canary-1b-v2 (default: the configured model)"},
        {"root", true, "read /proc, /sys and /etc under this directory instead (for tests)"},
        {"server", true, "show the devices of the canary-stt service at URL (health, load, batches); exit 1 "
                         "when one is unhealthy"},
        {0}};
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("hwinfo", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    int rc = 0;
    if (p.help) {
        printf("Usage: canary-stt hwinfo [--json] [--check [--model M.nemo]] [--for-model NAME] [--server URL]\n\n"
               "Shows the detected CPU, memory, container limits and GPUs, and the configuration chosen for\n"
               "them (workers, batch, chunk length, precision, memory budgets) with the reason for each value.\n"
               "The engine.* settings and --workers override the automatic choices.\n\n");
        cn_cli_print_opts(opts);
        goto out;
    }
    if (p.n_pos > 0) {
        fprintf(stderr, "canary-stt hwinfo: unexpected argument '%s'\n", p.pos[0]);
        rc = 2;
        goto out;
    }
    if (cn_cli_setup_logging(&cfg, &err)) {
        fprintf(stderr, "canary-stt hwinfo: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    if (p.values[4]) {
        rc = show_server(&cfg, p.values[4], p.values[0] != NULL);
        goto out;
    }
    cn_hw_detect_opts dopts = {p.values[3] ? p.values[3] : "/", p.values[3] == NULL, p.values[3] == NULL};
    cn_hw_info hw;
    cn_hw_detect(&dopts, &hw);
    if (p.values[1]) {
        /* the model check needs a model the user named (--model, CANARY_MODEL, config file): the
         * built-in default is a hub name that a self-test should not download */
        cn_config defaults;
        char skip[512] = "";
        char *path = NULL;
        if (cn_config_init(&defaults, &err) != CANARY_OK) {
            fprintf(stderr, "canary-stt hwinfo: %s\n", err.msg);
            rc = 1;
            goto out;
        }
        bool named = strcmp(defaults.model, cfg.model) != 0;
        cn_config_free(&defaults);
        if (!named)
            snprintf(skip, sizeof skip,
                     "no model given (--model M.nemo), so only the device self-test ran; the configured default %s "
                     "is not fetched for a self-test",
                     cfg.model);
        else if (cn_cli_model_path(&cfg, NULL, &path, &err) != CANARY_OK) {
            fprintf(stderr, "canary-stt hwinfo: %s\n", err.msg);
            rc = 1;
            goto out;
        }
        rc = run_check(&cfg, path, skip, &hw, p.values[0] != NULL);
        free(path);
        goto out;
    }

    const char *model_name = p.values[2] ? p.values[2] : cfg.model;
    /* a local .nemo or directory is sized by its own dimensions, a published name by its release */
    cn_hw_model model_dims;
    char model_note[512];
    cn_hw_model_resolve(model_name, cfg.cache_dir && cfg.cache_dir[0] ? cfg.cache_dir : NULL, &model_dims, model_note,
                        sizeof model_note);
    const cn_hw_model *model = &model_dims;
    cn_profile prof;
    cn_status st = cn_profile_compute(&hw, model, &cfg, &prof, &err);
    cn_strbuf sb;
    cn_sb_init(&sb);
    if (p.values[0]) {
        cn_sb_puts(&sb, "{\"hardware\":");
        cn_hw_info_json(&hw, &sb);
        cn_sb_puts(&sb, ",\"profile\":");
        if (st == CANARY_OK)
            cn_profile_json(&prof, &sb);
        else
            cn_sb_puts(&sb, "null");
        cn_sb_puts(&sb, ",\"error\":");
        cn_sb_json_string(&sb, st == CANARY_OK ? "" : err.msg);
        cn_sb_puts(&sb, ",\"model_note\":");
        cn_sb_json_string(&sb, model_note);
        cn_sb_puts(&sb, "}\n");
    } else {
        cn_sb_printf(&sb, "CPU      %s (%s), %d physical / %d logical cores", hw.cpu_model[0] ? hw.cpu_model : "unknown",
                     hw.arch, hw.physical_cores, hw.logical_cores);
        cn_sb_printf(&sb, "\n         features:%s%s%s%s%s%s%s\n", hw.avx2 ? " avx2" : "", hw.fma ? " fma" : "",
                     hw.avx512f ? " avx512f" : "", hw.avx512bf16 ? " avx512_bf16" : "",
                     hw.amx_bf16 ? (hw.amx_usable ? " amx_bf16" : " amx_bf16(not permitted)") : "",
                     hw.neon ? " neon" : "", hw.arm_bf16 ? " bf16" : "");
        cn_sb_printf(&sb, "Memory   %.1f GiB total, %.1f GiB available\n", (double)hw.mem_total / (1 << 30),
                     (double)hw.mem_available / (1 << 30));
        if (hw.cgroup_version) {
            cn_sb_printf(&sb, "cgroup   v%d: CPU quota ", hw.cgroup_version);
            if (hw.cgroup_cpus > 0)
                cn_sb_printf(&sb, "%.2f CPUs", hw.cgroup_cpus);
            else
                cn_sb_puts(&sb, "none");
            if (hw.cgroup_mem_limit)
                cn_sb_printf(&sb, ", memory limit %.1f GiB\n", (double)hw.cgroup_mem_limit / (1 << 30));
            else
                cn_sb_puts(&sb, ", memory limit none\n");
        }
        if (hw.jetson)
            cn_sb_printf(&sb, "Jetson   %s (unified memory)\n", hw.jetson_model);
        if (hw.n_gpus == 0)
            cn_sb_printf(&sb, "GPUs     none (%s)\n", hw.gpu_note);
        for (int i = 0; i < hw.n_gpus; i++) {
            const cn_hw_gpu *g = &hw.gpus[i];
            cn_sb_printf(&sb, "GPU %d    %s, sm%d%d, %.1f / %.1f GiB free, %s%s", g->index, g->name, g->cc_major,
                         g->cc_minor, (double)g->free_mem / (1 << 30), (double)g->total_mem / (1 << 30), g->uuid,
                         g->integrated ? ", integrated" : "");
            if (g->nvml)
                cn_sb_printf(&sb, ", %d%% busy, %d C, %.0f W", g->util_pct, g->temp_c, g->power_w);
            cn_sb_putc(&sb, '\n');
        }
        if (hw.n_gpus)
            cn_sb_printf(&sb, "NVML     %s\n", hw.nvml_note);
        cn_sb_putc(&sb, '\n');
        if (model_note[0])
            cn_sb_printf(&sb, "note: %s\n", model_note);
        if (st == CANARY_OK)
            cn_profile_text(&prof, &sb);
        else
            cn_sb_printf(&sb, "No usable profile: %s\n", err.msg);
    }
    fputs(cn_sb_str(&sb), stdout);
    cn_sb_free(&sb);
    if (st != CANARY_OK) {
        if (!p.values[0])
            fprintf(stderr, "canary-stt hwinfo: %s\n", err.msg);
        rc = st == CANARY_EINVAL ? 2 : 1; /* a bad setting is a usage error */
    }
out:
    cn_config_free(&cfg);
    return rc;
}

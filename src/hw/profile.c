/* The automatic configuration rule (see profile.h and docs/HARDWARE.md). */
#include "hw/profile.h"

#include "nemo/nemo.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MiB (1024ull * 1024ull)

/* Dimensions from NeMo's fast-conformer_aed.yaml table and the model cards (canary-spec.md §2.3). */
static const cn_hw_model presets[] = {
    {"canary-1b", 1000000000ull, 24, 1024, 8, 24, 1024, 512, 4128, 128, 256, 8, 40.0, 4096, 4096},
    {"canary-1b-flash", 883000000ull, 32, 1024, 8, 4, 1024, 1024, 5248, 128, 256, 8, 40.0, 4096, 4096},
    {"canary-180m-flash", 182000000ull, 17, 512, 8, 4, 1024, 1024, 5248, 128, 256, 8, 40.0, 2048, 4096},
    {"canary-1b-v2", 978000000ull, 32, 1024, 8, 8, 1024, 1024, 16384, 128, 256, 8, 40.0, 4096, 4096},
};

const cn_hw_model *cn_hw_model_preset(const char *name) {
    if (!name)
        return NULL;
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        size_t n = strlen(presets[i].name);
        /* "canary-1b-flash" and "canary-1b-flash.nemo", not "canary-1b" for "canary-1b-flash" */
        if (strncmp(base, presets[i].name, n) == 0 && (base[n] == '\0' || strcmp(base + n, ".nemo") == 0))
            return &presets[i];
    }
    return NULL;
}

void cn_hw_model_from_desc(const struct cn_model_desc *d, uint64_t n_params, cn_hw_model *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", d->variant[0] ? d->variant : "canary-custom");
    out->n_params = n_params;
    out->enc_layers = d->enc.n_layers;
    out->enc_d_model = d->enc.d_model;
    out->enc_heads = d->enc.n_heads;
    out->dec_layers = d->dec.n_layers;
    out->dec_d_model = d->dec.hidden;
    out->dec_max_len = d->dec.max_seq_len;
    out->vocab = d->dec.vocab_size;
    out->n_mels = d->pre.n_mels;
    out->sub_channels = d->enc.subsampling_conv_channels;
    out->sub_factor = d->enc.subsampling_factor;
    /* every Canary release documents ~40 s as its native input length (canary-spec.md 7.6) */
    out->max_chunk_seconds = 40.0;
    out->enc_ff = d->enc.d_model * d->enc.ff_expansion_factor;
    out->dec_inner = d->dec.inner;
}

cn_status cn_hw_model_from_file(const char *path, const char *cache_dir, cn_hw_model *out, cn_error *err) {
    cn_nemo *nemo = NULL;
    CN_TRY(cn_nemo_open(path, cache_dir, &nemo, err));
    uint64_t n_params = 0;
    for (size_t i = 0; i < cn_nemo_tensor_count(nemo); i++) {
        const cn_tensor_view *t = cn_nemo_tensor_at(nemo, i);
        size_t el = cn_dtype_size(t->dtype);
        n_params += el ? t->nbytes / el : 0;
    }
    cn_hw_model_from_desc(cn_nemo_desc(nemo), n_params, out);
    cn_nemo_close(nemo);
    return CANARY_OK;
}

void cn_hw_model_resolve(const char *model, const char *cache_dir, cn_hw_model *out, char *note, size_t note_size) {
    if (note && note_size)
        note[0] = '\0';
    struct stat st;
    if (model && stat(model, &st) == 0) {
        cn_error err;
        cn_error_clear(&err);
        if (cn_hw_model_from_file(model, cache_dir, out, &err) == CANARY_OK)
            return;
        const cn_hw_model *p = cn_hw_model_preset(model);
        *out = *(p ? p : cn_hw_model_preset("canary-180m-flash"));
        if (note && note_size)
            snprintf(note, note_size, "%s could not be read (%s); profile sized for %s", model, err.msg, out->name);
        return;
    }
    const cn_hw_model *p = cn_hw_model_preset(model);
    if (p) {
        *out = *p;
        return;
    }
    *out = *cn_hw_model_preset("canary-180m-flash");
    if (note && note_size)
        snprintf(note, note_size, "'%s' is neither a local model nor a published Canary name; profile sized for %s",
                 model ? model : "", out->name);
}

const char *cn_precision_name(cn_precision p) {
    switch (p) {
    case CN_PREC_BF16: return "bf16";
    case CN_PREC_FP16: return "fp16";
    default: return "fp32";
    }
}

static int prec_bytes(cn_precision p) { return p == CN_PREC_FP32 ? 4 : 2; }

uint64_t cn_profile_item_bytes(const cn_hw_model *m, double seconds, int beam) {
    if (beam < 1)
        beam = 1;
    double F = m->n_mels, C = m->sub_channels, d = m->enc_d_model, H = m->enc_heads;
    double dff = m->enc_ff > 0 ? m->enc_ff : 4.0 * d;
    double dd = m->dec_d_model, inner = m->dec_inner > 0 ? m->dec_inner : 4.0 * dd;
    /* feature frames: one per 10 ms hop plus the centred one, and up to 16 of padding (pad_to) */
    double tf = ceil(seconds * 100.0) + 16;
    double t1 = ceil(tf / 2), f1 = ceil(F / 2), t = tf;
    for (int s = m->sub_factor > 1 ? m->sub_factor : 8; s > 1; s /= 2)
        t = ceil(t / 2); /* encoder frames */
    /* the encoder's buffers (model.c, cn_canary_encode): the input, the two subsampling buffers
     * (each holds the second conv's output: both backends fuse the first two convs, so the
     * first's, four times larger, is never stored), four of [t, d] (residual, norm, attention,
     * conv), the wide one (FF hidden or q/k/v), the output */
    double sub = ceil(t1 / 2) * ceil(f1 / 2) * C;
    double enc = tf * F + sub + fmax(sub, tf * F) + 4 * t * d + t * fmax(dff, 3 * d) + t * dd;
    enc += 2 * (2 * t - 1) * d; /* the relative positions' encodings and projections (per batch; counted per item) */
    /* rel-pos attention's scratch (AC [H, t, t], BD [H, t, 2t-1], rows padded to 4 floats, the u·k
     * and v·pos terms; q/k/v are read in place); the CUDA scratch grows to 1.25x a need */
    double ldt = 4 * ceil(t / 4), ldp = 4 * ceil((2 * t - 1) / 4);
    double att = 1.25 * (H * t * ldt + H * t * ldp + H * t + H * ldp);
    /* decoder: the item's cross-attention K/V in every layer; per hypothesis the self-attention
     * K/V caches (capacity doubles from 16 up to the decode's length: the encoder frames plus the
     * generation margin, at most the positions), a step's buffers and the logits */
    double len = fmin((double)m->dec_max_len, t + 64), cap = 16;
    while (cap < len)
        cap *= 2;
    double dec = m->dec_layers * 2 * t * dd + beam * (m->dec_layers * 2 * cap * dd + 7 * dd + inner + m->vocab);
    return (uint64_t)(4.0 * (enc + att + dec)); /* fp32 */
}

uint64_t cn_profile_worker_bytes(uint64_t gpu_total) {
    uint64_t unit = gpu_total / 64;
    unit = unit > 256 * MiB ? 256 * MiB : unit < 16 * MiB ? 16 * MiB : unit;
    return unit + unit / 4 + unit + 64 * MiB;
}

static void note(cn_profile *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(cn_profile *p, const char *fmt, ...) {
    if (p->n_notes >= CN_PROFILE_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->notes[p->n_notes++], sizeof p->notes[0], fmt, ap);
    va_end(ap);
}

static void why(cn_device_profile *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why(cn_device_profile *d, const char *fmt, ...) {
    size_t len = strlen(d->why);
    if (len + 2 >= sizeof d->why)
        return;
    if (len) {
        d->why[len++] = ';';
        d->why[len++] = ' ';
        d->why[len] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why + len, sizeof d->why - len, fmt, ap);
    va_end(ap);
}

static double mib(uint64_t b) { return (double)b / (double)MiB; }

/* Which GPUs the configuration allows: "auto"/"cuda" = all, "cuda:0,2" = those, "cpu" = none. */
static cn_status parse_device(const char *dev, int n_gpus, bool want[CN_HW_MAX_GPUS], bool *cpu_only,
                              bool *gpu_required, cn_error *err) {
    *cpu_only = false;
    *gpu_required = false;
    for (int i = 0; i < CN_HW_MAX_GPUS; i++)
        want[i] = true;
    if (!dev || !dev[0] || strcmp(dev, "auto") == 0)
        return CANARY_OK;
    if (strcmp(dev, "cpu") == 0) {
        *cpu_only = true;
        return CANARY_OK;
    }
    *gpu_required = true;
    if (strcmp(dev, "cuda") == 0)
        return CANARY_OK;
    if (strncmp(dev, "cuda:", 5) != 0)
        return cn_error_set(err, CANARY_EINVAL, "engine.device: '%s' is not auto, cpu, cuda or cuda:N[,M...]", dev);
    for (int i = 0; i < CN_HW_MAX_GPUS; i++)
        want[i] = false;
    const char *p = dev + 5;
    while (*p) {
        char *end;
        long idx = strtol(p, &end, 10);
        if (end == p || idx < 0 || (*end && *end != ','))
            return cn_error_set(err, CANARY_EINVAL, "engine.device: '%s' is not auto, cpu, cuda or cuda:N[,M...]",
                                dev);
        if (idx >= n_gpus)
            return cn_error_set(err, CANARY_ENOTFOUND, "engine.device: '%s' names GPU %ld, but %d GPU(s) were detected",
                                dev, idx, n_gpus);
        want[idx] = true;
        p = *end ? end + 1 : end;
    }
    return CANARY_OK;
}

/* tf32 is fp32 weights and activations with TF32 tensor cores for the GEMMs (*tf32 set); an
 * explicit fp32 is exact fp32 (no TF32), as the engine runs it. */
static cn_status parse_precision(const char *s, int *out, bool *tf32, cn_error *err) {
    *tf32 = false;
    if (!s || !s[0] || strcmp(s, "auto") == 0)
        *out = -1;
    else if (strcmp(s, "fp32") == 0)
        *out = CN_PREC_FP32;
    else if (strcmp(s, "tf32") == 0)
        *out = CN_PREC_FP32, *tf32 = true;
    else if (strcmp(s, "bf16") == 0)
        *out = CN_PREC_BF16;
    else if (strcmp(s, "fp16") == 0)
        *out = CN_PREC_FP16;
    else
        return cn_error_set(err, CANARY_EINVAL, "engine.precision: '%s' is not auto, fp32, tf32, bf16 or fp16", s);
    return CANARY_OK;
}

/* Sizes one device given its budget. Returns false when not even one chunk fits. */
static bool size_device(cn_device_profile *d, const cn_hw_model *m, double chunk, int beam, int max_batch_cap,
                        int forced_batch, int forced_workers, int default_workers, uint64_t gpu_total) {
    d->weight_bytes = m->n_params * (uint64_t)prec_bytes(d->precision);
    d->item_bytes = cn_profile_item_bytes(m, chunk, beam);
    d->worker_bytes = d->kind == CN_DEV_CUDA ? cn_profile_worker_bytes(gpu_total) : 0;
    uint64_t wb = d->worker_bytes;
    if (d->budget_bytes < d->weight_bytes + wb + d->item_bytes) {
        d->usable = false;
        d->workers = d->max_batch = 0;
        why(d, "unusable: needs %.0f MiB (weights %.0f + a worker's %.0f + one %.0f s chunk %.0f), budget %.0f MiB",
            mib(d->weight_bytes + wb + d->item_bytes), mib(d->weight_bytes), mib(wb), chunk, mib(d->item_bytes),
            mib(d->budget_bytes));
        return false;
    }
    uint64_t act = d->budget_bytes - d->weight_bytes;
    /* chunks that fit beside `w` workers' fixed memory */
#define FIT(w) (act > (uint64_t)(w) * wb ? (act - (uint64_t)(w) * wb) / d->item_bytes : 0)
    d->workers = forced_workers > 0 ? forced_workers : default_workers;
    /* two streams only pay off when each can still hold a batch of 4 */
    if (forced_workers <= 0 && d->workers > 1 && FIT(d->workers) < (uint64_t)d->workers * 4) {
        why(d, "1 worker: memory holds %llu chunks, fewer than 4 per stream", (unsigned long long)FIT(d->workers));
        d->workers = 1;
    }
    while (d->workers > 1 && FIT(d->workers) < (uint64_t)d->workers) {
        why(d, "workers %d -> %d: memory holds only %llu chunks", d->workers, d->workers - 1,
            (unsigned long long)FIT(d->workers));
        d->workers--;
    }
    uint64_t per_worker = FIT(d->workers) / (uint64_t)d->workers;
#undef FIT
    int batch = per_worker > (uint64_t)max_batch_cap ? max_batch_cap : (int)per_worker;
    if (forced_batch > 0) {
        if ((uint64_t)forced_batch > per_worker)
            why(d, "max_batch %d from the configuration exceeds the %llu chunks that fit per worker", forced_batch,
                (unsigned long long)per_worker);
        batch = forced_batch;
    }
    d->max_batch = batch < 1 ? 1 : batch;
    d->usable = true;
    return true;
}

cn_status cn_profile_compute(const cn_hw_info *hw, const cn_hw_model *model, const cn_config *cfg,
                             cn_profile *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    out->model = *model;
    if (model->n_params == 0 || model->enc_d_model <= 0 || model->max_chunk_seconds <= 0)
        return cn_error_set(err, CANARY_EINVAL, "model '%s': parameter count and dimensions are required",
                            model->name);

    bool want[CN_HW_MAX_GPUS], cpu_only, gpu_required;
    CN_TRY(parse_device(cfg ? cfg->device : NULL, hw->n_gpus, want, &cpu_only, &gpu_required, err));
    int forced_prec = -1;
    bool forced_tf32;
    CN_TRY(parse_precision(cfg ? cfg->precision : NULL, &forced_prec, &forced_tf32, err));
    int forced_threads = cfg ? cfg->threads : 0;
    int forced_batch = cfg ? cfg->max_batch : 0;
    int forced_streams = cfg ? cfg->streams : 0;
    int forced_jobs = cfg ? cfg->workers : 0;
    uint64_t forced_budget = cfg ? (uint64_t)cfg->memory_budget_mb * MiB : 0;
    int beam = cfg && cfg->beam_size > 1 ? cfg->beam_size : 1;

    /* chunk length: the model's limit unless configured lower */
    double chunk = model->max_chunk_seconds;
    if (cfg && cfg->chunk_seconds > 0) {
        if (cfg->chunk_seconds > model->max_chunk_seconds)
            note(out, "engine.chunk_seconds %.1f is above the model's %.0f s limit; using %.0f s", cfg->chunk_seconds,
                 model->max_chunk_seconds, model->max_chunk_seconds);
        else
            chunk = cfg->chunk_seconds;
    }
    bool chunk_forced = cfg && cfg->chunk_seconds > 0;
    if (forced_batch)
        note(out, "engine.max_batch = %d from the configuration", forced_batch);
    if (forced_prec >= 0)
        note(out, "engine.precision = %s from the configuration", cfg->precision);
    if (forced_budget)
        note(out, "engine.memory_budget_mb = %d from the configuration", cfg->memory_budget_mb);

    uint64_t ram = cn_hw_usable_ram(hw);
    for (;;) {
        out->n_devices = 0;
        int usable_gpus = 0;
        if (!cpu_only) {
            for (int i = 0; i < hw->n_gpus && i < CN_HW_MAX_GPUS; i++) {
                const cn_hw_gpu *g = &hw->gpus[i];
                cn_device_profile *d = &out->dev[out->n_devices++];
                memset(d, 0, sizeof *d);
                d->kind = CN_DEV_CUDA;
                d->gpu = i;
                snprintf(d->name, sizeof d->name, "cuda:%d", g->index);
                if (!want[i]) {
                    d->usable = false;
                    why(d, "not selected by engine.device");
                    continue;
                }
                int cc = g->cc_major * 10 + g->cc_minor;
                if (forced_prec >= 0) {
                    d->precision = (cn_precision)forced_prec;
                    if (d->precision == CN_PREC_BF16 && cc < 80)
                        why(d, "bf16 forced on sm%d (no bf16 tensor cores: slow)", cc);
                } else if (cc >= 80) {
                    d->precision = CN_PREC_BF16;
                    why(d, "bf16: sm%d has bf16 tensor cores", cc);
                } else if (cc >= 70) {
                    d->precision = CN_PREC_FP16;
                    why(d, "fp16: sm%d lacks bf16", cc);
                } else {
                    d->precision = CN_PREC_FP32;
                    why(d, "fp32: sm%d has no tensor cores", cc);
                }
                d->tf32 = cc >= 80 && (forced_prec < 0 || forced_tf32);
                if (forced_tf32 && cc < 80)
                    why(d, "tf32 forced on sm%d (no TF32 tensor cores: the GEMMs run in fp32)", cc);
                /* CUDA context + cuBLAS workspace live outside the budget */
                const uint64_t reserve = 512 * MiB;
                uint64_t avail = g->free_mem;
                double frac = 0.90;
                if (g->integrated || hw->jetson) {
                    /* unified memory: the GPU's "free" is the system's, shared with the OS and the
                     * CPU side of the service (audio decoding, HTTP) */
                    if (ram && ram < avail)
                        avail = ram;
                    frac = 0.75;
                    snprintf(d->residency, sizeof d->residency, "one copy in unified memory");
                } else {
                    snprintf(d->residency, sizeof d->residency, "replica in GPU memory");
                }
                uint64_t scaled = (uint64_t)((double)avail * frac);
                d->budget_bytes = forced_budget ? forced_budget : (scaled > reserve ? scaled - reserve : 0);
                if (!forced_budget)
                    why(d, "budget %.0f%% of %.0f MiB free minus 512 MiB CUDA reserve", frac * 100, mib(avail));
                int default_workers = (g->integrated || hw->jetson) ? 1 : 2;
                if (size_device(d, model, chunk, beam, 64, forced_batch, forced_streams, default_workers, g->total_mem))
                    usable_gpus++;
            }
        }
        if (gpu_required && usable_gpus == 0) {
            if (hw->n_gpus == 0)
                return cn_error_set(err, CANARY_EDEVICE, "engine.device = %s, but no GPU was detected (%s)",
                                    cfg->device, hw->gpu_note[0] ? hw->gpu_note : "no CUDA plugin");
            for (int i = 0; i < out->n_devices; i++)
                if (want[out->dev[i].gpu])
                    return cn_error_set(err, CANARY_ENOMEM, "engine.device = %s: %s: %s", cfg->device,
                                        out->dev[i].name, out->dev[i].why);
        }
        bool use_cpu = usable_gpus == 0;
        cn_device_profile *c = &out->dev[out->n_devices++];
        memset(c, 0, sizeof *c);
        c->kind = CN_DEV_CPU;
        c->gpu = -1;
        snprintf(c->name, sizeof c->name, "cpu");
        if (!use_cpu) {
            c->usable = false;
            why(c, "not used for inference while %d GPU(s) are usable; its threads decode audio and serve HTTP",
                usable_gpus);
        } else {
            int cpus = cn_hw_compute_cpus(hw);
            if (forced_threads > 0) {
                cpus = forced_threads;
                why(c, "%d threads from engine.threads", cpus);
            } else {
                why(c, "%d threads: %d physical cores%s", cpus, hw->physical_cores,
                    hw->cgroup_cpus > 0 ? ", capped by the cgroup CPU quota" : "");
            }
            if (forced_prec >= 0) {
                c->precision = (cn_precision)forced_prec;
            } else if (hw->amx_usable || hw->avx512bf16 || hw->arm_bf16) {
                c->precision = CN_PREC_BF16;
                why(c, "bf16: %s", hw->amx_usable ? "AMX" : hw->avx512bf16 ? "AVX512-BF16" : "Arm BF16");
            } else {
                c->precision = CN_PREC_FP32;
                why(c, "fp32: no AMX/AVX512-BF16");
            }
            uint64_t budget = (uint64_t)((double)ram * 0.80);
            c->budget_bytes = forced_budget ? forced_budget : budget;
            if (!forced_budget)
                why(c, "budget 80%% of %.0f MiB usable RAM", mib(ram));
            snprintf(c->residency, sizeof c->residency,
                     c->precision == CN_PREC_FP32 ? "memory-mapped from the .nemo" : "bf16 copy in RAM");
            /* one pool per 16 threads: bigger pools stop scaling on one batch */
            int workers = forced_streams > 0 ? forced_streams : (cpus >= 32 ? cpus / 16 : 1);
            int cap = cpus / 2 < 1 ? 1 : (cpus / 2 > 16 ? 16 : cpus / 2);
            size_device(c, model, chunk, beam, cap, forced_batch, workers, workers, 0);
            if (c->usable) {
                if (c->workers < 1)
                    c->workers = 1;
                c->threads = cpus / c->workers < 1 ? 1 : cpus / c->workers;
            }
        }
        bool any = false;
        for (int i = 0; i < out->n_devices; i++)
            any |= out->dev[i].usable;
        if (any)
            break;
        if (chunk_forced || chunk <= 10.0) {
            const cn_device_profile *last = &out->dev[out->n_devices - 1];
            return cn_error_set(err, CANARY_ENOMEM, "model %s does not fit on any device: %s: %s", model->name,
                                last->name, last->why);
        }
        note(out, "no device holds one %.0f s chunk; trying %.0f s chunks", chunk, chunk / 2 < 10 ? 10 : chunk / 2);
        chunk = chunk / 2 < 10 ? 10 : chunk / 2;
    }
    out->chunk_seconds = chunk;

    /* usable devices first (stable), so executors index 0..n-1 are the ones in use */
    cn_device_profile tmp[CN_PROFILE_MAX_DEVICES];
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < out->n_devices; i++)
            if (out->dev[i].usable == (pass == 0))
                tmp[k++] = out->dev[i];
    memcpy(out->dev, tmp, sizeof(cn_device_profile) * (size_t)k);

    /* Batches are filled with chunks from different jobs, so short (one-chunk) requests can only
     * keep the devices full when workers x max_batch jobs are in flight; at least 2 so that one
     * job's audio is decoded while another computes. */
    int slots = 0;
    for (int i = 0; i < out->n_devices; i++)
        if (out->dev[i].usable)
            slots += out->dev[i].workers * out->dev[i].max_batch;
    int jobs = slots < 2 ? 2 : slots > 256 ? 256 : slots;
    out->concurrent_jobs = forced_jobs > 0 ? forced_jobs : jobs;
    if (forced_jobs > 0)
        note(out, "server.workers = %d from the configuration", forced_jobs);
    return CANARY_OK;
}

void cn_profile_json(const cn_profile *p, cn_strbuf *sb) {
    cn_sb_puts(sb, "{\"model\":{\"name\":");
    cn_sb_json_string(sb, p->model.name);
    cn_sb_printf(sb, ",\"params\":%llu,\"max_chunk_seconds\":%.1f},", (unsigned long long)p->model.n_params,
                 p->model.max_chunk_seconds);
    cn_sb_printf(sb, "\"chunk_seconds\":%.1f,\"concurrent_jobs\":%d,\"devices\":[", p->chunk_seconds,
                 p->concurrent_jobs);
    for (int i = 0; i < p->n_devices; i++) {
        const cn_device_profile *d = &p->dev[i];
        cn_sb_printf(sb, "%s{\"name\":", i ? "," : "");
        cn_sb_json_string(sb, d->name);
        cn_sb_printf(sb,
                     ",\"kind\":\"%s\",\"usable\":%s,\"workers\":%d,\"threads\":%d,\"max_batch\":%d,"
                     "\"precision\":\"%s\",\"tf32\":%s,\"budget_bytes\":%llu,\"weight_bytes\":%llu,"
                     "\"item_bytes\":%llu,\"worker_bytes\":%llu,\"residency\":",
                     d->kind == CN_DEV_CPU ? "cpu" : "cuda", d->usable ? "true" : "false", d->workers, d->threads,
                     d->max_batch, cn_precision_name(d->precision), d->tf32 ? "true" : "false",
                     (unsigned long long)d->budget_bytes, (unsigned long long)d->weight_bytes,
                     (unsigned long long)d->item_bytes, (unsigned long long)d->worker_bytes);
        cn_sb_json_string(sb, d->residency);
        cn_sb_puts(sb, ",\"why\":");
        cn_sb_json_string(sb, d->why);
        cn_sb_putc(sb, '}');
    }
    cn_sb_puts(sb, "],\"notes\":[");
    for (int i = 0; i < p->n_notes; i++) {
        if (i)
            cn_sb_putc(sb, ',');
        cn_sb_json_string(sb, p->notes[i]);
    }
    cn_sb_puts(sb, "]}");
}

void cn_profile_text(const cn_profile *p, cn_strbuf *sb) {
    cn_sb_printf(sb, "Profile for %s (%.0f M parameters):\n", p->model.name, (double)p->model.n_params / 1e6);
    cn_sb_printf(sb, "  chunk length     %.1f s (model limit %.0f s)\n", p->chunk_seconds, p->model.max_chunk_seconds);
    cn_sb_printf(sb, "  concurrent jobs  %d\n", p->concurrent_jobs);
    for (int i = 0; i < p->n_devices; i++) {
        const cn_device_profile *d = &p->dev[i];
        if (d->usable) {
            cn_sb_printf(sb, "  %-7s workers %d", d->name, d->workers);
            if (d->kind == CN_DEV_CPU)
                cn_sb_printf(sb, " x %d threads", d->threads);
            cn_sb_printf(sb, ", max batch %d, %s%s, budget %.0f MiB (weights %.0f, ", d->max_batch,
                         cn_precision_name(d->precision), d->tf32 ? " + TF32" : "", mib(d->budget_bytes),
                         mib(d->weight_bytes));
            if (d->worker_bytes)
                cn_sb_printf(sb, "%.0f per worker, ", mib(d->worker_bytes));
            cn_sb_printf(sb, "%.0f per chunk), %s\n", mib(d->item_bytes), d->residency);
        } else {
            cn_sb_printf(sb, "  %-7s not used\n", d->name);
        }
        cn_sb_printf(sb, "          why: %s\n", d->why);
    }
    for (int i = 0; i < p->n_notes; i++)
        cn_sb_printf(sb, "  note: %s\n", p->notes[i]);
}

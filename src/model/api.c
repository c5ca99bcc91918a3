/* The public engine API (include/canary/canary.h) over the model, features and loader modules. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "canary/canary.h"
#include "features/features.h"
#include "model/model.h"
#include "model/timestamps.h"
#include "nemo/tokenizer.h"
#include "nn/cuda_plugin.h"

#define N_PREC 4 /* canary_precision values; they equal the backend's cn_precision values */
_Static_assert(CANARY_PRECISION_FP32 == (int)CN_PREC_F32 && CANARY_PRECISION_BF16 == (int)CN_PREC_BF16 &&
                   CANARY_PRECISION_FP16 == (int)CN_PREC_F16 && CANARY_PRECISION_TF32 == (int)CN_PREC_TF32,
               "canary_precision indexes the nets and is passed on as cn_precision");

struct canary_model {
    cn_nemo *nemo;
    /* be[0] runs the fp32 network; on a GPU, be[1] (created on first use) runs the reduced
     * precisions with TF32 attention GEMMs, so fp32 stays exact. The CPU uses be[0] for all. */
    cn_backend *be[2];
    int gpu;              /* CUDA device index, -1 on the CPU */
    cn_features *feat[2]; /* by canary_features */
    cn_mel_desc mel[2];   /* the same front ends as a GPU computes them (log_mel) */
    bool gpu_features;    /* features computed on the GPU (CANARY_GPU_FEATURES=0: on the CPU) */
    pthread_mutex_t mu;   /* guards the lazy creation of the reduced-precision weights */
    cn_canary *net[N_PREC]; /* by canary_precision */
    char device[32];      /* "cpu", "cuda:0", ... */
    char device_note[256];
};

typedef struct result {
    char *text;
    cn_hypothesis hyp;
} result;

struct canary_context {
    const canary_model *model;
    int n_threads;
    cn_pool *feat_pool; /* the batch's features, one item per thread */
    float *feat_buf;    /* their output, kept between calls: a fresh 65 MB block (batch 128) costs
                         * its page faults on every call; pinned where the backend has such memory
                         * (a GPU uploads it several times faster) */
    size_t feat_cap;    /* floats */
    cn_backend *feat_be; /* the backend that allocated feat_buf, NULL: malloc */
    cn_canary_ctx *cc[N_PREC];
    result *res;
    int n_res;
    canary_timings timings;
};

static canary_status fail(char *msg, size_t size, const cn_error *err) {
    if (msg && size)
        snprintf(msg, size, "%s", err->msg);
    return err->code;
}

static canary_status fail_text(char *msg, size_t size, canary_status code, const char *text) {
    if (msg && size)
        snprintf(msg, size, "%s", text);
    return code;
}

canary_model_params canary_model_default_params(void) {
    canary_model_params p = {0};
    return p;
}

static cn_status make_features(canary_model *m, cn_error *err) {
    const cn_preproc_desc *pd = &cn_nemo_desc(m->nemo)->pre;
    const cn_tensor_view *fbv = cn_nemo_tensor(m->nemo, "preprocessor.featurizer.fb");
    const cn_tensor_view *wv = cn_nemo_tensor(m->nemo, "preprocessor.featurizer.window");
    int n_bins = pd->n_fft / 2 + 1;
    /* The checkpoint's buffers are used as NeMo uses them (fp32 only; else computed). */
    const float *fb = NULL, *win = NULL;
    if (fbv && fbv->dtype == CN_DTYPE_F32 && fbv->contiguous &&
        fbv->nbytes == sizeof(float) * (size_t)pd->n_mels * (size_t)n_bins)
        fb = fbv->data;
    if (wv && wv->dtype == CN_DTYPE_F32 && wv->contiguous && wv->nbytes == sizeof(float) * (size_t)pd->win_length)
        win = wv->data;
    for (int s = 0; s < 2; s++) {
        cn_features_config cfg;
        cn_features_config_canary(&cfg, s == CANARY_FEATURES_NEMO_2_5 ? CN_FEAT_NEMO_2_5 : CN_FEAT_NEMO_2_4);
        cfg.sample_rate = pd->sample_rate;
        cfg.n_mels = pd->n_mels;
        cfg.n_fft = pd->n_fft;
        cfg.win_length = pd->win_length;
        cfg.hop_length = pd->hop_length;
        cfg.window = pd->window[0] ? pd->window : NULL;
        cfg.preemph = pd->preemph;
        cfg.lowfreq = pd->lowfreq;
        cfg.highfreq = pd->highfreq;
        cfg.log_zero_guard_value = pd->log_zero_guard_value;
        cfg.log_guard_clamp = strcmp(pd->log_zero_guard_type, "clamp") == 0;
        cfg.log = pd->log;
        cfg.mag_power = pd->mag_power;
        cfg.normalize = strcmp(pd->normalize, "per_feature") == 0 ? CN_FEAT_NORM_PER_FEATURE : CN_FEAT_NORM_NONE;
        cfg.pad_to = pd->pad_to;
        cfg.pad_value = (float)pd->pad_value;
        cfg.filterbank = fb;
        cfg.window_values = win;
        CN_TRY(cn_features_create(&cfg, &m->feat[s], err));
        cn_mel_desc_from_features(m->feat[s], &m->mel[s]);
    }
    return CANARY_OK;
}

canary_status canary_model_load(const char *path, const canary_model_params *params, canary_model **out, char *msg,
                                size_t msg_size) {
    cn_error err;
    cn_error_clear(&err);
    if (!path || !out)
        return fail_text(msg, msg_size, CANARY_EINVAL, "canary_model_load: path and out are required");
    const char *device = params && params->device && params->device[0] ? params->device : "cpu";
    canary_model *m = calloc(1, sizeof *m);
    if (!m)
        return fail_text(msg, msg_size, CANARY_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    /* "cuda"/"cuda:N" must get that GPU or fail; "auto" falls back to the CPU with the reason. */
    cn_status st = cn_backend_open(device, CN_PREC_F32, &m->be[0], m->device_note, sizeof m->device_note, &err);
    if (st == CANARY_OK) {
        m->gpu = -1;
        if (strcmp(m->be[0]->ops->name, "cpu") != 0)
            m->gpu = strncmp(device, "cuda:", 5) == 0 ? atoi(device + 5) : 0;
        if (m->gpu >= 0)
            snprintf(m->device, sizeof m->device, "cuda:%d", m->gpu);
        else
            snprintf(m->device, sizeof m->device, "cpu");
        if (m->device_note[0]) {
            /* a warning where a GPU stack is installed but unusable; a CPU-only build just says so */
            const cn_cuda_plugin *plugin;
            cn_error perr;
            if (cn_cuda_plugin_get(&plugin, &perr) == CANARY_OK)
                CN_WARN("engine", "device auto: using the CPU: %s", m->device_note);
            else
                CN_INFO("engine", "device auto: using the CPU: %s", m->device_note);
        }
        st = cn_nemo_open(path, params ? params->cache_dir : NULL, &m->nemo, &err);
    }
    if (st == CANARY_OK)
        st = make_features(m, &err);
    if (st == CANARY_OK)
        st = cn_canary_load(m->nemo, m->be[0], CN_PREC_F32, &m->net[0], &err);
    if (st == CANARY_OK && m->be[0]->ops->log_mel) {
        /* said once per model: the GPU's DFT is fp64 where fp64 is fast (the backend's choice),
         * else fp32 (as NeMo's on a GPU); the CPU's is double */
        const char *g = getenv("CANARY_GPU_FEATURES");
        m->gpu_features = !(g && strcmp(g, "0") == 0);
        CN_INFO("engine", "%s: log-mel features on %s", m->device,
                m->gpu_features ? "the GPU (the DFT in fp64 where the GPU has fast fp64, as A100/H100, else fp32; "
                                  "CANARY_CUDA_DFT=fp32|fp64 chooses; CANARY_GPU_FEATURES=0 computes them on the CPU "
                                  "in double)"
                                : "the CPU (CANARY_GPU_FEATURES=0)");
    }
    if (st != CANARY_OK) {
        cn_error_prefix(&err, "loading %s", path);
        canary_model_free(m);
        return fail(msg, msg_size, &err);
    }
    *out = m;
    return CANARY_OK;
}

void canary_model_free(canary_model *m) {
    if (!m)
        return;
    for (int i = 0; i < N_PREC; i++)
        cn_canary_free(m->net[i]);
    for (int i = 0; i < 2; i++) {
        cn_features_destroy(m->feat[i]);
        cn_backend_destroy(m->be[i]);
    }
    cn_nemo_close(m->nemo);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const char *canary_model_device(const canary_model *m) { return m->device; }
const char *canary_model_device_note(const canary_model *m) { return m->device_note; }

const char *canary_model_variant(const canary_model *m) { return cn_nemo_desc(m->nemo)->variant; }
size_t canary_model_language_count(const canary_model *m) { return cn_tok_language_count(cn_nemo_tokenizer(m->nemo)); }
const char *canary_model_language(const canary_model *m, size_t i) {
    return cn_tok_language_at(cn_nemo_tokenizer(m->nemo), i);
}
double canary_model_max_duration(const canary_model *m) {
    /* The encoder's positional table (pos_emb_max_len frames of 80 ms); NeMo itself chunks at 40 s. */
    int n = cn_nemo_desc(m->nemo)->enc.pos_emb_max_len;
    return (n > 0 ? n : 5000) * 0.08;
}

bool canary_model_has_timestamps(const canary_model *m) {
    /* The flash models: canary2 prompt (a timestamp slot) with the aggregate tokenizer, whose
     * special block holds <|0|>..<|899|>. canary-1b-v2's slot exists too, but NeMo leaves it at
     * <|notimestamp|> and aligns with the bundled CTC model instead (spec §7.7). */
    const cn_model_desc *d = cn_nemo_desc(m->nemo);
    const cn_tokenizer *tk = cn_nemo_tokenizer(m->nemo);
    return d->prompt_format == CN_PROMPT_CANARY2 && !d->has_timestamps_model && cn_tok_is_aggregate(tk) &&
           cn_tok_special(tk, "<|0|>") >= 0;
}

double canary_model_frame_seconds(const canary_model *m) {
    const cn_model_desc *d = cn_nemo_desc(m->nemo);
    if (d->pre.sample_rate <= 0 || d->pre.hop_length <= 0 || d->enc.subsampling_factor <= 0)
        return 0.08;
    return (double)d->pre.hop_length / d->pre.sample_rate * d->enc.subsampling_factor;
}

static cn_status check_timestamps(const canary_model *m, cn_error *err) {
    if (canary_model_has_timestamps(m))
        return CANARY_OK;
    const cn_model_desc *d = cn_nemo_desc(m->nemo);
    if (d->prompt_format == CN_PROMPT_CANARY)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "params.timestamps: %s has no timestamp tokens (its 'canary' prompt has no timestamp "
                            "slot); canary-1b-flash and canary-180m-flash have them",
                            d->variant);
    if (d->has_timestamps_model || !cn_tok_is_aggregate(cn_nemo_tokenizer(m->nemo)))
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "params.timestamps: %s times words with its bundled CTC aligner (forced alignment), "
                            "which is not implemented; canary-1b-flash and canary-180m-flash emit timestamp tokens",
                            d->variant);
    return cn_error_set(err, CANARY_EUNSUPPORTED,
                        "params.timestamps: %s has no timestamp tokens (<|0|> is not in its tokenizer)", d->variant);
}

double canary_model_encoder_flops(const canary_model *m, int encoder_frames) {
    return cn_canary_encoder_flops(m->net[0], encoder_frames * 8);
}

canary_params canary_default_params(const canary_model *m) {
    canary_params p = {0};
    p.source_lang = "en";
    p.pnc = true;
    p.search = CANARY_SEARCH_BEAM;
    p.beam_size = 1;
    p.max_generation_delta = -1;
    if (m) {
        cn_decode_opts o;
        cn_decode_opts_default(m->net[0], &o);
        p.search = o.search == CN_SEARCH_GREEDY ? CANARY_SEARCH_GREEDY : CANARY_SEARCH_BEAM;
        p.beam_size = o.beam_size;
        p.max_generation_delta = o.max_generation_delta;
        /* Checkpoints written before NeMo 2.5 were trained with the old front end (spec §3.4). */
        int major = 0, minor = 0;
        const char *v = cn_nemo_desc(m->nemo)->nemo_version;
        if (sscanf(v, "%d.%d", &major, &minor) == 2 && (major < 2 || (major == 2 && minor < 5)))
            p.features = CANARY_FEATURES_NEMO_2_4;
    }
    return p;
}

canary_status canary_context_create(const canary_model *m, int n_threads, canary_context **out, char *msg,
                                    size_t msg_size) {
    if (!m || !out)
        return fail_text(msg, msg_size, CANARY_EINVAL, "canary_context_create: model and out are required");
    canary_context *c = calloc(1, sizeof *c);
    if (!c)
        return fail_text(msg, msg_size, CANARY_ENOMEM, "out of memory");
    c->model = m;
    c->n_threads = n_threads;
    /* Features of a batch run one item per thread (threads idle otherwise); a GPU batch of 128
     * would spend as long in single-threaded features as in the network. */
    int feat_threads = n_threads > 0 ? n_threads : cn_physical_cores();
    cn_error err;
    cn_error_clear(&err);
    if (feat_threads > 1 && cn_pool_create(feat_threads, &c->feat_pool, &err) != CANARY_OK) {
        free(c);
        return fail(msg, msg_size, &err);
    }
    *out = c;
    return CANARY_OK;
}

static void clear_results(canary_context *c) {
    for (int i = 0; i < c->n_res; i++) {
        free(c->res[i].text);
        cn_hypothesis_free(&c->res[i].hyp);
    }
    free(c->res);
    c->res = NULL;
    c->n_res = 0;
}

static void feat_buf_free(canary_context *c) {
    if (c->feat_be)
        c->feat_be->ops->host_free(c->feat_be, c->feat_buf);
    else
        free(c->feat_buf);
    c->feat_buf = NULL;
    c->feat_cap = 0;
    c->feat_be = NULL;
}

/* Room for `floats` feature values, in the backend's upload-friendly memory where it has some. */
static float *feat_buf_reserve(canary_context *c, cn_backend *be, size_t floats) {
    if (floats <= c->feat_cap)
        return c->feat_buf;
    feat_buf_free(c);
    if (be && be->ops->host_alloc) {
        c->feat_buf = be->ops->host_alloc(be, sizeof(float) * floats);
        c->feat_be = c->feat_buf ? be : NULL;
    }
    if (!c->feat_buf)
        c->feat_buf = malloc(sizeof(float) * floats);
    if (c->feat_buf)
        c->feat_cap = floats;
    return c->feat_buf;
}

void canary_context_free(canary_context *c) {
    if (!c)
        return;
    clear_results(c);
    for (int i = 0; i < N_PREC; i++)
        cn_canary_ctx_free(c->cc[i]);
    cn_pool_destroy(c->feat_pool);
    feat_buf_free(c);
    free(c);
}

static void note_cpu_tf32(void) {
    CN_INFO("engine", "precision tf32 on the CPU: computed in fp32 (TF32 is a GPU tensor-core mode)");
}

/* The network for a precision, preparing its weights on first use. The CPU runs fp32 and bf16
 * (TF32 is fp32 there); a GPU runs all four. */
static cn_status get_net(canary_context *c, canary_precision prec, cn_canary_ctx **out, cn_error *err) {
    canary_model *m = (canary_model *)c->model; /* only the mutex-guarded lazy slots are written */
    if ((int)prec < 0 || (int)prec >= N_PREC)
        return cn_error_set(err, CANARY_EINVAL, "precision %d: expected fp32 (0), bf16 (1), fp16 (2) or tf32 (3)",
                            (int)prec);
    if (m->gpu < 0 && prec == CANARY_PRECISION_FP16)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "precision fp16: the CPU runs fp32 and bf16 (fp16 is a GPU precision; this model runs "
                            "on the CPU)");
    int slot = (int)prec;
    if (m->gpu < 0 && prec == CANARY_PRECISION_TF32) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, note_cpu_tf32);
        slot = CANARY_PRECISION_FP32;
    }
    pthread_mutex_lock(&m->mu);
    cn_status st = CANARY_OK;
    cn_backend *be = m->be[0];
    if (!m->net[slot] && m->gpu >= 0) {
        if (!m->be[1])
            st = cn_cuda_backend_open(m->gpu, CN_PREC_TF32, &m->be[1], err);
        be = m->be[1];
    }
    if (st == CANARY_OK && !m->net[slot] && m->gpu < 0 && slot == CANARY_PRECISION_BF16 && !cn_cpu_has_bf16())
        /* no silent slowdown: say what bf16 costs here */
        CN_WARN("model", "bf16 on this CPU (no AVX512-BF16) runs a portable emulation that is slower than fp32; use "
                         "precision fp32 here");
    if (st == CANARY_OK && !m->net[slot])
        st = cn_canary_load(m->nemo, be, (cn_precision)slot, &m->net[slot], err);
    pthread_mutex_unlock(&m->mu);
    CN_TRY(st);
    if (!c->cc[slot])
        CN_TRY(cn_canary_ctx_create(m->net[slot], c->n_threads, &c->cc[slot], err));
    *out = c->cc[slot];
    return CANARY_OK;
}


/* Copies utterances into the pinned staging buffer for the GPU front end, one per pool task. */
typedef struct {
    float *stage;
    const float *const *items;
    const int64_t *lens;
    size_t stride;
} stage_job;

static void stage_item(void *ctx, size_t i, int thread) {
    (void)thread;
    const stage_job *j = ctx;
    memcpy(j->stage + i * j->stride, j->items[i], sizeof(float) * (size_t)j->lens[i]);
}

static cn_status run_batch(canary_context *c, const canary_params *p, const float *const *pcm, const size_t *n_samples,
                           int n, cn_error *err) {
    const canary_model *m = c->model;
    if (!p || !p->source_lang)
        return cn_error_set(err, CANARY_EINVAL, "params.source_lang is required");
    if (n <= 0 || !pcm || !n_samples)
        return cn_error_set(err, CANARY_EINVAL, "no audio given");
    if (p->features != CANARY_FEATURES_NEMO_2_4 && p->features != CANARY_FEATURES_NEMO_2_5)
        return cn_error_set(err, CANARY_EINVAL, "params.features %d is not a known front end", (int)p->features);
    if (p->timestamps)
        CN_TRY(check_timestamps(m, err));
    double max_s = canary_model_max_duration(m);
    for (int i = 0; i < n; i++) {
        if (!pcm[i] && n_samples[i])
            return cn_error_set(err, CANARY_EINVAL, "utterance %d: no samples", i);
        if ((double)n_samples[i] / CANARY_SAMPLE_RATE > max_s)
            return cn_error_set(err, CANARY_ELIMIT,
                                "utterance %d is %.1f s long; one pass accepts at most %.0f s (split long audio)", i,
                                (double)n_samples[i] / CANARY_SAMPLE_RATE, max_s);
    }
    cn_canary_ctx *cc = NULL;
    CN_TRY(get_net(c, p->precision, &cc, err));
    const cn_features *fx = m->feat[p->features];
    /* NeMo pads clips under 1 s to 1 s, split on both sides (the odd sample goes right). */
    const size_t min_len = CANARY_SAMPLE_RATE;
    float **padded = calloc((size_t)n, sizeof(float *));
    const float **items = calloc((size_t)n, sizeof(float *));
    int64_t *lens = calloc((size_t)n, sizeof(int64_t)), *valid = calloc((size_t)n, sizeof(int64_t));
    int *t = calloc((size_t)n, sizeof(int)), *vi = calloc((size_t)n, sizeof(int)),
        *own_cols = calloc((size_t)n, sizeof(int));
    const float **feats = calloc((size_t)n, sizeof(float *));
    float *fbuf = NULL;
    cn_status st = CANARY_OK;
    if (!padded || !items || !lens || !valid || !t || !vi || !own_cols || !feats) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
        goto out;
    }
    int64_t maxlen = 0;
    for (int i = 0; i < n; i++) {
        if (n_samples[i] < min_len) {
            padded[i] = calloc(min_len, sizeof(float));
            if (!padded[i]) {
                st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
                goto out;
            }
            size_t left = (min_len - n_samples[i]) / 2;
            if (n_samples[i])
                memcpy(padded[i] + left, pcm[i], sizeof(float) * n_samples[i]);
            items[i] = padded[i];
            lens[i] = (int64_t)min_len;
        } else {
            items[i] = pcm[i];
            lens[i] = (int64_t)n_samples[i];
        }
        if (lens[i] > maxlen)
            maxlen = lens[i];
        own_cols[i] = (int)cn_features_columns(fx, lens[i]);
    }
    uint64_t t0 = cn_now_ns();
    bool on_device = m->gpu_features && cn_canary_device_features(cc) && maxlen <= INT32_MAX;
    if (on_device) {
        /* the batch's samples side by side in the context's (pinned) buffer; the GPU computes the
         * features where the encoder reads them (their time is then part of the encoder's) */
        float *stage = feat_buf_reserve(c, m->be[0], (size_t)n * (size_t)maxlen);
        if (!stage) {
            st = cn_error_set(err, CANARY_ENOMEM, "out of memory for the samples of %d utterances", n);
            goto out;
        }
        int cols_i = 0;
        /* one item per thread: a batch of 128 ten-second items is 82 MB, ~10 ms for one thread */
        stage_job job = {stage, items, lens, (size_t)maxlen};
        cn_pool_run(c->feat_pool, (size_t)n, stage_item, &job);
        for (int i = 0; i < n; i++)
            t[i] = (int)lens[i]; /* as ints for the backend; overwritten by the columns below */
        cn_mel_desc md = m->mel[p->features];
        md.own_padding = p->batch_independent;
        st = cn_canary_features_device(cc, &md, stage, t, n, (int)maxlen, &cols_i, vi, err);
        if (st != CANARY_OK)
            goto out;
        for (int i = 0; i < n; i++)
            t[i] = cols_i;
    } else {
        int64_t cols = cn_features_columns(fx, maxlen);
        int n_mels = cn_features_n_mels(fx);
        fbuf = feat_buf_reserve(c, m->be[0], (size_t)n * (size_t)n_mels * (size_t)cols);
        if (!fbuf) {
            st = cn_error_set(err, CANARY_ENOMEM, "out of memory for features of %d utterances", n);
            goto out;
        }
        st = (p->batch_independent ? cn_features_compute_items_pool : cn_features_compute_batch_pool)(
            fx, c->feat_pool, items, lens, n, fbuf, valid, err);
        if (st != CANARY_OK)
            goto out;
        for (int i = 0; i < n; i++) {
            feats[i] = fbuf + (size_t)i * n_mels * (size_t)cols;
            t[i] = (int)cols;
            vi[i] = (int)valid[i];
        }
    }
    c->timings.features_s = cn_elapsed_s(t0);
    t0 = cn_now_ns();
    /* independent items: the subsampling masked past each item's length also under 2.4 (alone, an
     * item has no padding there to leak into its last frames) */
    cn_encoder_input in = {n,         feats, t, vi, p->features == CANARY_FEATURES_NEMO_2_5 || p->batch_independent,
                           on_device, p->batch_independent ? own_cols : NULL};
    st = cn_canary_encode(cc, &in, NULL, NULL, err);
    if (st != CANARY_OK)
        goto out;
    c->timings.encoder_s = cn_elapsed_s(t0);
    c->timings.encoder_frames = cn_canary_encoded_frames(cc);
    /* prompt */
    const cn_tokenizer *tk = cn_nemo_tokenizer(m->nemo);
    cn_prompt_opts po = {.source_lang = p->source_lang, .target_lang = p->target_lang, .pnc = p->pnc, .itn = p->itn,
                         .timestamps = p->timestamps};
    int prompt[256];
    size_t plen = 0;
    st = cn_tok_build_prompt(tk, cn_nemo_desc(m->nemo)->prompt_format, &po, prompt, 256, &plen, err);
    if (st != CANARY_OK)
        goto out;
    cn_decode_opts o;
    cn_decode_opts_default(m->net[0], &o);
    o.search = p->search == CANARY_SEARCH_GREEDY ? CN_SEARCH_GREEDY : CN_SEARCH_BEAM;
    o.beam_size = p->beam_size;
    o.max_generation_delta = p->max_generation_delta;
    o.eos = cn_tok_eos(tk);
    o.pad = cn_tok_pad(tk);
    o.max_new_tokens = p->max_new_tokens;
    o.ignore_eos = p->ignore_eos && p->max_new_tokens > 0;
    o.item_limits = p->batch_independent;
    clear_results(c);
    c->res = calloc((size_t)n, sizeof(result));
    cn_hypothesis *hyps = calloc((size_t)n, sizeof(cn_hypothesis));
    if (!c->res || !hyps) {
        free(hyps);
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
        goto out;
    }
    t0 = cn_now_ns();
    st = cn_canary_decode(cc, prompt, (int)plen, &o, hyps, err);
    c->timings.decoder_s = cn_elapsed_s(t0);
    if (st != CANARY_OK) {
        free(hyps);
        goto out;
    }
    c->n_res = n;
    for (int i = 0; i < n; i++) {
        c->res[i].hyp = hyps[i];
        if (st == CANARY_OK)
            st = p->timestamps ? cn_timestamp_text(tk, hyps[i].ids, (size_t)hyps[i].n, &c->res[i].text, err)
                               : cn_tok_decode(tk, hyps[i].ids, (size_t)hyps[i].n, &c->res[i].text, err);
    }
    free(hyps);
out:
    for (int i = 0; padded && i < n; i++)
        free(padded[i]);
    free(padded);
    free(items);
    free(lens);
    free(valid);
    free(t);
    free(vi);
    free(own_cols);
    free(feats);
    return st;
}

canary_status canary_transcribe_batch(canary_context *c, const canary_params *p, const float *const *pcm,
                                      const size_t *n_samples, int n, char *msg, size_t msg_size) {
    cn_error err;
    cn_error_clear(&err);
    if (!c)
        return fail_text(msg, msg_size, CANARY_EINVAL, "canary_transcribe: no context");
    cn_status st = run_batch(c, p, pcm, n_samples, n, &err);
    if (st != CANARY_OK) {
        clear_results(c);
        if (st == CANARY_ENOMEM) {
            /* the device memory the context holds (buffers planned for this batch, the backend's
             * arena and scratch) goes back, so that a retry with a smaller batch starts from none;
             * the next call plans them again */
            for (int i = 0; i < N_PREC; i++) {
                cn_canary_ctx_free(c->cc[i]);
                c->cc[i] = NULL;
            }
        }
        return fail(msg, msg_size, &err);
    }
    return CANARY_OK;
}

canary_status canary_transcribe(canary_context *c, const canary_params *p, const float *pcm, size_t n_samples,
                                char *msg, size_t msg_size) {
    const float *items[1] = {pcm};
    return canary_transcribe_batch(c, p, items, &n_samples, 1, msg, msg_size);
}

int canary_result_count(const canary_context *c) { return c ? c->n_res : 0; }

const char *canary_result_text(const canary_context *c, int i) {
    return c && i >= 0 && i < c->n_res && c->res[i].text ? c->res[i].text : "";
}

int canary_result_token_count(const canary_context *c, int i) {
    return c && i >= 0 && i < c->n_res ? c->res[i].hyp.n : 0;
}

canary_token canary_result_token(const canary_context *c, int i, int j) {
    canary_token t = {-1, 0, -1, "", -1};
    if (!c || i < 0 || i >= c->n_res || j < 0 || j >= c->res[i].hyp.n)
        return t;
    const cn_hypothesis *h = &c->res[i].hyp;
    t.id = h->ids[j];
    t.logprob = h->logprobs[j];
    t.position = h->positions[j];
    const char *piece = cn_tok_piece(cn_nemo_tokenizer(c->model->nemo), t.id);
    t.piece = piece ? piece : "";
    t.frame = cn_tok_timestamp_value(cn_nemo_tokenizer(c->model->nemo), t.id);
    return t;
}

float canary_result_score(const canary_context *c, int i) {
    return c && i >= 0 && i < c->n_res ? c->res[i].hyp.score : 0.0f;
}

canary_timings canary_last_timings(const canary_context *c) {
    canary_timings t = {0};
    return c ? c->timings : t;
}

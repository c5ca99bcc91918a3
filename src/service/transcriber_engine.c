/* The engine transcriber: libcanary + the long-audio pipeline behind the service's chunk
 * interface (transcriber.h).
 *
 * Devices: one model replica per device the hardware profile chose (hw/profile.h with the
 * engine.* settings): each GPU loaded with device "cuda:N" and one context per executor
 * (stream), the CPU with server.workers contexts. The service runs batches on them through
 * run_batch(); chunks of different jobs share a batch.
 *
 * Jobs: cn_pipeline_run is one blocking call per file, so each job's pipeline runs in a thread
 * of its own. Its recognizer does not compute: it posts the chunks it is given (prepare() hands
 * them to the service) and waits until the service has run them in batches and complete()d
 * them. Between groups of chunks the thread waits for the next prepare(), so audio is decoded
 * only as fast as the service asks for it (server.workers feeders at a time). */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/config.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "base/threadpool.h"
#include "canary/canary.h"
#include "canary/canary_audio.h"
#include "canary/canary_pipeline.h"
#include "hw/hw.h"
#include "hw/profile.h"
#include "pipeline/engine_recognizer.h"
#include "pipeline/pipeline.h"
#include "service/transcriber.h"

#define ENG_MAX_GROUP 64 /* chunks the pipeline may hand over at once */
#define ENG_GROUP_CAP 16 /* chunks one job hands over at once where memory is not known to allow more */

typedef struct eng_device {
    canary_model *model;
    canary_context **ctx;    /* one per executor */
    int n_ctx;
    canary_precision precision;
} eng_device;

typedef struct engine {
    eng_device dev[CN_TRANSCRIBER_MAX_DEVICES];
    int n_dev;
    canary_model *model;     /* dev[0]'s: languages, limits */
    canary_params defaults;
    double chunk_max_s;
    size_t group;            /* the pipeline's batch: enough chunks to fill every executor */
} engine;

typedef struct eng_chunk {
    cn_job_chunk base;
    const float *pcm;
    size_t len;
    cn_rec_result *out;      /* the pipeline's result slot */
    bool completed;
} eng_chunk;

struct cn_transcription {
    engine *e;
    canary_params prm;
    char lang[16], target[16];
    cn_task task;
    char batch_key[96];
    canary_audio *audio;
    cn_pcm_source src;
    char name[256];
    canary_cancel *cancel;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool granted, finished;
    eng_chunk group[ENG_MAX_GROUP]; /* the chunks the pipeline waits for */
    int n_posted, n_handed, n_completed;
    int chunks_done, estimate; /* estimate: chunks expected from the duration (open) */
    cn_status status;
    cn_error err;
    canary_progress last;
    canary_transcript result;
};

/* The chunk length: engine.chunk_seconds, else the pipeline's default, never above the model's
 * limit. */
static double chunk_seconds(const engine *e) {
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    double c = e->chunk_max_s > 0 ? e->chunk_max_s : p.max_batch_s / (double)p.max_batch;
    double limit = canary_model_max_duration(e->model);
    return limit > 0 && c > limit ? limit : c;
}

/* ---- the recognizer the pipeline calls: post the chunks, wait for the service ---- */

/* Waits for the next prepare() (or a cancel). Called with s->mu held. */
static void wait_grant(cn_transcription *s) {
    while (!s->granted && !canary_cancel_requested(s->cancel))
        pthread_cond_wait(&s->cv, &s->mu);
    s->granted = false;
}

static cn_status rec_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                cn_rec_result *out, cn_error *err) {
    cn_transcription *s = self;
    if (n > ENG_MAX_GROUP)
        return cn_error_set(err, CANARY_EINVAL, "the pipeline asked for %zu chunks at once (at most %d)", n,
                            ENG_MAX_GROUP);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        eng_chunk *c = &s->group[i];
        *c = (eng_chunk){.pcm = pcm[i], .len = lens[i], .out = &out[i]};
        c->base.owner = s;
        c->base.seconds = (double)lens[i] / CANARY_SAMPLE_RATE;
        /* any lengths share a batch: each chunk runs as if alone (canary_params.batch_independent,
         * set in eng_run_batch), so a job's transcript never depends on what other jobs run beside it */
        if (cn_engine_equal_length_batches() && s->prm.features == CANARY_FEATURES_NEMO_2_4)
            snprintf(c->base.batch_key, sizeof c->base.batch_key, "%s|n%zu", s->batch_key, lens[i]);
        else
            snprintf(c->base.batch_key, sizeof c->base.batch_key, "%s", s->batch_key);
    }
    s->n_posted = (int)n;
    s->n_handed = s->n_completed = 0;
    pthread_cond_broadcast(&s->cv);
    while (s->n_completed < s->n_posted && !canary_cancel_requested(s->cancel))
        pthread_cond_wait(&s->cv, &s->mu);
    bool canceled = s->n_completed < s->n_posted;
    s->n_posted = s->n_handed = s->n_completed = 0;
    if (!canceled)
        wait_grant(s); /* decode the next chunks only when the service asks for them */
    canceled = canceled || canary_cancel_requested(s->cancel);
    pthread_mutex_unlock(&s->mu);
    if (canceled) {
        for (size_t i = 0; i < n; i++)
            cn_rec_result_free(&out[i]);
        return cn_error_set(err, CANARY_ECANCELED, "canceled");
    }
    return CANARY_OK;
}

static cn_status src_read(void *self, float *buf, size_t max, size_t *got, cn_error *err) {
    cn_transcription *s = self;
    char msg[512];
    canary_status st = canary_audio_read(s->audio, buf, max, got, msg, sizeof msg);
    return st == CANARY_OK ? CANARY_OK : cn_error_set(err, st, "%s", msg);
}

/* After every batch: remember where the pipeline stands (its total grows as it reads). */
static bool on_progress(const canary_progress *p, void *user) {
    cn_transcription *s = user;
    pthread_mutex_lock(&s->mu);
    s->last = *p;
    pthread_mutex_unlock(&s->mu);
    return !canary_cancel_requested(s->cancel);
}

static void *pipeline_thread(void *arg) {
    cn_transcription *s = arg;
    pthread_mutex_lock(&s->mu);
    wait_grant(s);
    pthread_mutex_unlock(&s->mu);
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    /* The pipeline's batch is the chunks one job hands over at once; the service forms the
     * device batches (from several jobs) out of them. */
    p.max_batch = s->e->group;
    p.chunk_max_s = chunk_seconds(s->e);
    if (s->prm.timestamps && !(s->e->chunk_max_s > 0)) /* NeMo's chunk length for timestamps */
        p.chunk_max_s = CN_CANARY_TIMESTAMP_CHUNK_S;
    /* no read-ahead thread per job: the service's feeders already overlap jobs, and memory stays
     * bounded by the chunks each job hands over */
    p.sequential = true;
    if (p.max_batch_s < (double)p.max_batch * p.chunk_max_s)
        p.max_batch_s = (double)p.max_batch * p.chunk_max_s;
    p.task = s->task == CN_TASK_TRANSLATE ? "translate" : "transcribe";
    p.language = s->prm.target_lang ? s->prm.target_lang : s->prm.source_lang;
    p.progress = on_progress;
    p.progress_user = s;
    p.cancel = s->cancel;
    cn_recognizer rec = {.self = s,
                         .sample_rate = CANARY_SAMPLE_RATE,
                         .max_chunk_s = canary_model_max_duration(s->e->model),
                         .frame_s = canary_model_frame_seconds(s->e->model),
                         .transcribe = rec_transcribe};
    cn_error err;
    cn_error_clear(&err);
    cn_status st = canary_cancel_requested(s->cancel)
                       ? cn_error_set(&err, CANARY_ECANCELED, "canceled")
                       : cn_pipeline_run(&rec, &p, &s->src, 1, &s->result, &err);
    pthread_mutex_lock(&s->mu);
    s->status = st;
    s->err = err;
    s->finished = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static cn_status open_audio(const char *path, canary_audio **a, cn_error *err) {
    char msg[512];
    canary_status st = canary_audio_open_file(path, NULL, a, msg, sizeof msg);
    if (st != CANARY_OK)
        return cn_error_set(err, st == CANARY_EIO ? CANARY_EFORMAT : st, "%s", msg);
    return CANARY_OK;
}

static cn_status eng_probe(cn_transcriber *t, const char *path, double *duration, cn_error *err) {
    canary_audio *a;
    CN_TRY(open_audio(path, &a, err));
    /* decode through: validates the whole file and measures it when the header does not */
    float buf[16000];
    size_t got, total = 0;
    char msg[512];
    canary_status st;
    while ((st = canary_audio_read(a, buf, 16000, &got, msg, sizeof msg)) == CANARY_OK && got > 0)
        total += got;
    canary_audio_close(a);
    if (st != CANARY_OK)
        return cn_error_set(err, CANARY_EFORMAT, "%s", msg);
    if (total == 0)
        return cn_error_set(err, CANARY_EFORMAT, "the file contains no audio samples");
    *duration = (double)total / CANARY_SAMPLE_RATE;
    return CANARY_OK;
}

static bool model_has_language(const canary_model *m, const char *lang) {
    size_t n = canary_model_language_count(m);
    for (size_t i = 0; i < n; i++)
        if (strcmp(canary_model_language(m, i), lang) == 0)
            return true;
    return n == 0;
}

static void eng_close(cn_transcriber *t, cn_transcription *s) {
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        bool done = s->finished;
        pthread_mutex_unlock(&s->mu);
        if (!done)
            canary_cancel_request(s->cancel);
        pthread_mutex_lock(&s->mu);
        s->granted = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->finished && s->status == CANARY_OK)
        canary_transcript_free(&s->result);
    if (s->audio)
        canary_audio_close(s->audio);
    canary_cancel_destroy(s->cancel);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static cn_status eng_open(cn_transcriber *t, const char *path, const cn_transcribe_options *o, cn_transcription **out,
                          int *n_chunks, cn_error *err) {
    engine *e = t->impl;
    const char *src = o->language[0] ? o->language : "en";
    const char *tgt = o->target_language[0] ? o->target_language : (o->task == CN_TASK_TRANSLATE ? "en" : src);
    if (!model_has_language(e->model, src))
        return cn_error_set(err, CANARY_EINVAL, "language '%s' is not supported by %s", src, t->model_name);
    if (!model_has_language(e->model, tgt))
        return cn_error_set(err, CANARY_EINVAL, "target language '%s' is not supported by %s", tgt, t->model_name);
    cn_transcription *s = calloc(1, sizeof *s);
    if (!s)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    s->e = e;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->cancel = canary_cancel_create();
    snprintf(s->lang, sizeof s->lang, "%s", src);
    snprintf(s->target, sizeof s->target, "%s", tgt);
    s->task = o->task;
    s->prm = e->defaults;
    s->prm.source_lang = s->lang;
    s->prm.target_lang = strcmp(s->lang, s->target) ? s->target : NULL;
    s->prm.pnc = o->pnc;
    /* word timings from the model's timestamp tokens where it has them (else approximate) */
    s->prm.timestamps = o->word_timestamps && canary_model_has_timestamps(e->model);
    snprintf(s->batch_key, sizeof s->batch_key, "%s|%s|%d|%d", s->lang, s->prm.target_lang ? s->target : "", o->pnc,
             s->prm.timestamps);
    snprintf(s->name, sizeof s->name, "%s", path);
    cn_status st = s->cancel ? open_audio(path, &s->audio, err) : cn_error_set(err, CANARY_ENOMEM, "out of memory");
    if (st != CANARY_OK) {
        eng_close(t, s);
        return st;
    }
    double d = canary_audio_duration(s->audio);
    s->src = (cn_pcm_source){.self = s, .name = s->name, .expected_s = d > 0 ? d : 0, .read = src_read};
    double chunk = chunk_seconds(e);
    *n_chunks = d > 0 && chunk > 0 ? (int)ceil(d / chunk) : 0;
    s->estimate = *n_chunks;
    if (pthread_create(&s->thread, NULL, pipeline_thread, s) != 0) {
        eng_close(t, s);
        return cn_error_set(err, CANARY_EIO, "cannot start a pipeline thread");
    }
    s->started = true;
    *out = s;
    return CANARY_OK;
}

static cn_status eng_prepare(cn_transcriber *t, cn_transcription *s, const atomic_bool *cancel, int max,
                             cn_job_chunk **chunks, int *n, cn_error *err) {
    *n = 0;
    pthread_mutex_lock(&s->mu);
    if (s->n_handed >= s->n_posted && !s->finished) {
        /* the pipeline reads and decodes up to its next chunks */
        s->granted = true;
        pthread_cond_broadcast(&s->cv);
        while (!(s->n_posted > 0 && s->n_handed < s->n_posted) && !s->finished) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            if (atomic_load(cancel))
                canary_cancel_request(s->cancel); /* the pipeline stops at its next check */
        }
    }
    cn_status st = CANARY_OK;
    while (s->n_handed < s->n_posted && *n < max)
        chunks[(*n)++] = &s->group[s->n_handed++].base;
    if (*n == 0 && s->finished && s->status != CANARY_OK) {
        st = s->status;
        if (err)
            *err = s->err;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Result `i` of the last run on `ctx` as the pipeline's tokens for chunk `c` (the pipeline's
 * conversion: text pieces, and word frames from the model's timestamp tokens when asked for). */
static cn_status chunk_result(const canary_context *ctx, int i, const eng_chunk *c, cn_rec_result *out,
                              cn_error *err) {
    const cn_transcription *s = c->base.owner;
    return cn_engine_result_convert(ctx, i, c->len, s->prm.timestamps, canary_model_frame_seconds(s->e->model), out,
                                    err);
}

static cn_status eng_run_batch(cn_transcriber *t, int device, int worker, cn_job_chunk *const *chunks, int n,
                               cn_error *err) {
    engine *e = t->impl;
    eng_device *d = &e->dev[device];
    const float *pcm[ENG_MAX_GROUP];
    size_t lens[ENG_MAX_GROUP];
    if (n < 1 || n > ENG_MAX_GROUP || worker < 0 || worker >= d->n_ctx)
        return cn_error_set(err, CANARY_EINVAL, "batch of %d chunks for executor %d of %s", n, worker,
                            t->devices[device].name);
    for (int i = 0; i < n; i++) {
        const eng_chunk *c = (const eng_chunk *)chunks[i];
        pcm[i] = c->pcm;
        lens[i] = c->len;
        cn_rec_result_free(c->out); /* a retry after a device failed part of a split batch */
    }
    /* every chunk of a batch has the same batch_key: the first one's parameters hold for all */
    canary_params prm = chunks[0]->owner->prm;
    prm.precision = d->precision;
    prm.batch_independent = !cn_engine_equal_length_batches();
    canary_context *ctx = d->ctx[worker];
    char msg[512];
    cn_status st = canary_transcribe_batch(ctx, &prm, pcm, lens, n, msg, sizeof msg);
    if (st != CANARY_OK) /* ENOMEM: the context holds no device memory now; the scheduler splits */
        return cn_error_set(err, st, "%s", msg);
    for (int i = 0; i < n && st == CANARY_OK; i++)
        st = chunk_result(ctx, i, (const eng_chunk *)chunks[i], ((eng_chunk *)chunks[i])->out, err);
    if (st != CANARY_OK)
        for (int i = 0; i < n; i++)
            cn_rec_result_free(((eng_chunk *)chunks[i])->out);
    return st;
}

static cn_status eng_complete(cn_transcriber *t, cn_transcription *s, cn_job_chunk *c, cn_step_progress *pr,
                              cn_error *err) {
    eng_chunk *ec = (eng_chunk *)c;
    pthread_mutex_lock(&s->mu);
    if (ec < s->group || ec >= s->group + s->n_posted || ec->completed) {
        pthread_mutex_unlock(&s->mu);
        return cn_error_set(err, CANARY_EINVAL, "a chunk completed twice or not of this job");
    }
    ec->completed = true;
    s->chunks_done++;
    if (++s->n_completed == s->n_posted)
        pthread_cond_broadcast(&s->cv);
    pr->chunks_done = s->chunks_done;
    /* the pipeline's count grows as it reads; until it passes the estimate from the duration, the
     * estimate stands */
    int total = (int)s->last.chunks_total > s->estimate ? (int)s->last.chunks_total : s->estimate;
    pr->chunks_total = total > s->chunks_done ? total : s->chunks_done;
    pr->finished = false; /* known when prepare() finds no more audio */
    pthread_mutex_unlock(&s->mu);
    return CANARY_OK;
}

/* A copy that is valid UTF-8: the decoder can emit stray bytes (byte-fallback pieces that do not
 * form a character), which JSON cannot carry; each becomes U+FFFD, as the CLI's writers do. */
static char *dup0(const char *s) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sb_put_utf8(&sb, s ? s : "");
    return cn_sb_steal(&sb);
}

static cn_status eng_finish(cn_transcriber *t, cn_transcription *s, cn_transcript *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    const canary_transcript *r = &s->result;
    size_t nw = 0;
    for (size_t i = 0; i < r->n_segments; i++)
        nw += r->segments[i].n_words;
    out->segments = r->n_segments ? calloc(r->n_segments, sizeof *out->segments) : NULL;
    out->words = nw ? calloc(nw, sizeof *out->words) : NULL;
    out->text = dup0(r->text);
    if ((r->n_segments && !out->segments) || (nw && !out->words) || !out->text) {
        cn_transcript_free(out);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->n_segments; i++) {
        const canary_segment *g = &r->segments[i];
        cn_segment *o = &out->segments[out->n_segments++];
        *o = (cn_segment){g->start, g->end, dup0(g->text), NULL, 0, g->avg_logprob};
        if (g->n_tokens && (o->tokens = malloc(g->n_tokens * sizeof(int)))) {
            memcpy(o->tokens, g->tokens, g->n_tokens * sizeof(int));
            o->n_tokens = g->n_tokens;
        }
        if (!o->text || (g->n_tokens && !o->tokens)) {
            cn_transcript_free(out);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < g->n_words; k++)
            out->words[out->n_words++] = (cn_word){g->words[k].start, g->words[k].end, dup0(g->words[k].text)};
    }
    snprintf(out->language, sizeof out->language, "%s", r->language ? r->language : s->target);
    out->task = s->task;
    out->duration = r->duration;
    return CANARY_OK;
}

static void eng_destroy(cn_transcriber *t) {
    engine *e = t->impl;
    if (e) {
        for (int d = 0; d < e->n_dev; d++) {
            for (int i = 0; i < e->dev[d].n_ctx; i++)
                canary_context_free(e->dev[d].ctx[i]);
            free(e->dev[d].ctx);
            canary_model_free(e->dev[d].model);
        }
        free(e);
    }
    free(t);
}

static const cn_transcriber_ops engine_ops = {eng_probe,    eng_open,   eng_prepare, eng_run_batch,
                                              eng_complete, eng_finish, eng_close,   eng_destroy};

/* A GPU's precision: engine.precision, or the profile's choice under "auto". */
static canary_precision gpu_precision(const cn_config *cfg, const cn_device_profile *dp) {
    if (strcmp(cfg->precision, "fp32") == 0)
        return CANARY_PRECISION_FP32;
    if (strcmp(cfg->precision, "bf16") == 0)
        return CANARY_PRECISION_BF16;
    if (strcmp(cfg->precision, "fp16") == 0)
        return CANARY_PRECISION_FP16;
    if (strcmp(cfg->precision, "tf32") == 0)
        return CANARY_PRECISION_TF32;
    if (dp->precision == CN_PREC_BF16)
        return CANARY_PRECISION_BF16;
    if (dp->precision == CN_PREC_FP16)
        return CANARY_PRECISION_FP16;
    return dp->tf32 ? CANARY_PRECISION_TF32 : CANARY_PRECISION_FP32;
}

/* The CPU runs fp32 and bf16; a GPU precision there is refused, never silently replaced. */
static cn_status cpu_precision_ok(const cn_config *cfg, cn_error *err) {
    if (strcmp(cfg->precision, "bf16") != 0 && strcmp(cfg->precision, "fp32") != 0 && strcmp(cfg->precision, "auto") != 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "engine.precision = %s: the CPU engine supports fp32 and bf16",
                            cfg->precision);
    return CANARY_OK;
}

/* Loads a replica on `name` ("cpu", "cuda:N") with `workers` contexts of `threads` threads. */
static cn_status load_device(engine *e, cn_transcriber *t, const cn_config *cfg, const char *model_path,
                             const char *name, int workers, int threads, cn_error *err) {
    eng_device *d = &e->dev[e->n_dev];
    char msg[512];
    canary_model_params mp = canary_model_default_params();
    mp.cache_dir = cfg->cache_dir && cfg->cache_dir[0] ? cfg->cache_dir : NULL;
    mp.device = name;
    canary_status st = canary_model_load(model_path, &mp, &d->model, msg, sizeof msg);
    if (st != CANARY_OK)
        return cn_error_set(err, st, "loading model %s%s%s: %s", model_path, strcmp(name, "cpu") ? " on " : "",
                            strcmp(name, "cpu") ? name : "", msg);
    d->ctx = calloc((size_t)workers, sizeof *d->ctx);
    if (!d->ctx) {
        canary_model_free(d->model);
        d->model = NULL;
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    e->n_dev++; /* from here eng_destroy frees it */
    for (int i = 0; i < workers; i++) {
        if ((st = canary_context_create(d->model, threads, &d->ctx[i], msg, sizeof msg)) != CANARY_OK)
            return cn_error_set(err, st, "creating an inference context on %s: %s", name, msg);
        d->n_ctx++;
    }
    cn_transcriber_device *td = &t->devices[t->n_devices++];
    snprintf(td->name, sizeof td->name, "%s", canary_model_device(d->model));
    td->workers = workers;
    return CANARY_OK;
}

cn_status cn_transcriber_engine_create(const cn_config *cfg, const char *model_path, int workers,
                                       cn_transcriber **out, cn_error *err) {
    cn_transcriber *t = calloc(1, sizeof *t);
    engine *e = calloc(1, sizeof *e);
    if (!t || !e) {
        free(t);
        free(e);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    t->ops = &engine_ops;
    t->impl = e;
    /* The devices: the hardware profile's choice (engine.device, engine.streams, engine.max_batch
     * and engine.memory_budget_mb override it; docs/HARDWARE.md). */
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    cn_hw_model hmv;
    char hnote[512];
    cn_hw_model_resolve(model_path, cfg->cache_dir && cfg->cache_dir[0] ? cfg->cache_dir : NULL, &hmv, hnote,
                        sizeof hnote);
    if (hnote[0])
        CN_WARN("engine", "%s", hnote);
    const cn_hw_model *hm = &hmv;
    cn_profile *prof = calloc(1, sizeof *prof);
    if (!prof) {
        eng_destroy(t);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    cn_error perr;
    cn_error_clear(&perr);
    bool explicit_gpu = strncmp(cfg->device, "cuda", 4) == 0;
    if (cn_profile_compute(&hw, hm, cfg, prof, &perr) != CANARY_OK) {
        if (explicit_gpu) {
            free(prof);
            eng_destroy(t);
            return cn_error_set(err, perr.code, "%s", perr.msg); /* it names the setting */
        }
        CN_WARN("engine", "no hardware profile (%s): running on the CPU", perr.msg);
        prof->n_devices = 0;
    }
    int cpu_workers = workers > 0 ? workers : 1;
    int cpu_threads = cfg->threads > 0 ? cfg->threads : cn_cpu_count() / cpu_workers;
    if (cpu_threads < 1)
        cpu_threads = 1;
    cn_status st = CANARY_OK;
    bool cpu_loaded = false;
    for (int i = 0; i < prof->n_devices && st == CANARY_OK; i++) {
        const cn_device_profile *dp = &prof->dev[i];
        if (!dp->usable)
            continue;
        int before = t->n_devices;
        if (dp->kind == CN_DEV_CPU) {
            st = cpu_precision_ok(cfg, err);
            if (st == CANARY_OK)
                st = load_device(e, t, cfg, model_path, "cpu", cpu_workers, cpu_threads, err);
            if (st == CANARY_OK) {
                cpu_loaded = true;
                e->dev[e->n_dev - 1].precision =
                    strcmp(cfg->precision, "bf16") == 0 ? CANARY_PRECISION_BF16 : CANARY_PRECISION_FP32;
                /* the OS pages CPU memory: batches are not admitted by a budget there */
                t->devices[before].max_batch = dp->max_batch > 0 ? dp->max_batch : 1;
            }
        } else {
            st = load_device(e, t, cfg, model_path, dp->name, dp->workers > 0 ? dp->workers : 1, 1, err);
            if (st == CANARY_OK) {
                e->dev[e->n_dev - 1].precision = gpu_precision(cfg, dp);
                cn_transcriber_device *td = &t->devices[before];
                td->max_batch = dp->max_batch > 0 ? dp->max_batch : 1;
                td->item_bytes = dp->item_bytes;
                /* what the batches may use: the budget less the weights and every worker's fixed part */
                uint64_t fixed = dp->weight_bytes + (uint64_t)td->workers * dp->worker_bytes;
                td->mem_budget = dp->budget_bytes > fixed ? dp->budget_bytes - fixed : 0;
                if (!td->mem_budget)
                    td->mem_budget = 1; /* nothing fits: every batch is refused with the numbers */
            } else if (!explicit_gpu) {
                /* auto: a GPU the engine cannot use is passed over with the reason */
                CN_WARN("engine", "%s; it is not used", err->msg);
                cn_error_clear(err);
                st = CANARY_OK;
            }
        }
    }
    if (st == CANARY_OK && t->n_devices == 0 && !explicit_gpu && !cpu_loaded) {
        st = cpu_precision_ok(cfg, err);
        if (st == CANARY_OK)
            st = load_device(e, t, cfg, model_path, "cpu", cpu_workers, cpu_threads, err);
        if (st == CANARY_OK) {
            e->dev[e->n_dev - 1].precision =
                strcmp(cfg->precision, "bf16") == 0 ? CANARY_PRECISION_BF16 : CANARY_PRECISION_FP32;
            t->devices[0].max_batch = cfg->max_batch > 0 ? cfg->max_batch : 1;
        }
    }
    free(prof);
    if (st == CANARY_OK && t->n_devices == 0)
        st = cn_error_set(err, CANARY_EDEVICE, "engine.device = %s: no device could load the model", cfg->device);
    if (st != CANARY_OK) {
        eng_destroy(t);
        return st;
    }
    e->model = e->dev[0].model;
    e->defaults = canary_default_params(e->model);
    e->defaults.beam_size = cfg->beam_size;
    /* "auto" keeps the checkpoint's own front end (NeMo < 2.5: 2.4 semantics), as transcribe does */
    if (strcmp(cfg->feature_semantics, "nemo-2.4") == 0)
        e->defaults.features = CANARY_FEATURES_NEMO_2_4;
    else if (strcmp(cfg->feature_semantics, "nemo-2.5") == 0)
        e->defaults.features = CANARY_FEATURES_NEMO_2_5;
    e->chunk_max_s = cfg->chunk_seconds;
    if (cn_engine_equal_length_batches())
        CN_WARN("engine", "CANARY_EQUAL_LENGTH_BATCHES=1 (A/B benchmarks): NeMo's batch semantics%s",
                e->defaults.features == CANARY_FEATURES_NEMO_2_4 ? ", chunks batched only with chunks of equal length"
                                                                 : "");
    /* a job hands over enough chunks at once to fill every executor's batch twice (the service
     * prepares up to that many; scheduler.c) */
    int group = 0;
    for (int i = 0; i < t->n_devices; i++)
        group += 2 * t->devices[i].workers * t->devices[i].max_batch;
    /* Bounded by memory: the pipeline reads about two groups ahead and a long job holds that
     * audio while it waits for its turn (16 x 40 s chunks = 41 MB of PCM per group), and up to
     * max(4 w, 64 + w) jobs are active (scheduler.c, w = server.workers). 16 always; more, up to
     * ENG_MAX_GROUP, while all of them together stay under a quarter of the usable RAM, so that a
     * lone long job fills a GPU batch of 64 on a host with room (40-s chunks, 16 workers: 80
     * active jobs; more than 16 from 26 GB of usable RAM, 64 from 105 GB). */
    int w = workers > 0 ? workers : 1;
    uint64_t active = (uint64_t)(4 * w > 64 + w ? 4 * w : 64 + w);
    uint64_t chunk_bytes = (uint64_t)(chunk_seconds(e) * CANARY_SAMPLE_RATE) * sizeof(float);
    uint64_t room = chunk_bytes ? cn_hw_usable_ram(&hw) / 4 / (active * 2 * chunk_bytes) : 0;
    int cap = room > ENG_MAX_GROUP ? ENG_MAX_GROUP : room < ENG_GROUP_CAP ? ENG_GROUP_CAP : (int)room;
    e->group = (size_t)(group < 1 ? 1 : group > cap ? cap : group);
    CN_INFO("engine", "a job hands over up to %zu chunks at a time (devices' batches x 2 = %d; memory allows %d)",
            e->group, group, cap);
    size_t len = 0;
    for (int i = 0; i < t->n_devices && len < sizeof t->device; i++)
        len += (size_t)snprintf(t->device + len, sizeof t->device - len, "%s%s", i ? "," : "", t->devices[i].name);
    t->ready = true;
    snprintf(t->model_name, sizeof t->model_name, "%s", cfg->model);
    json_t *langs = json_array();
    for (size_t i = 0; i < canary_model_language_count(e->model); i++)
        json_array_append_new(langs, json_string(canary_model_language(e->model, i)));
    json_t *info = json_pack("{s:s, s:s, s:f, s:o}", "path", model_path, "variant", canary_model_variant(e->model),
                             "max_chunk_seconds", canary_model_max_duration(e->model), "languages", langs);
    char *text = info ? json_dumps(info, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(info);
    snprintf(t->model_info_json, sizeof t->model_info_json, "%s",
             text && strlen(text) < sizeof t->model_info_json ? text : "{}");
    free(text);
    *out = t;
    return CANARY_OK;
}

/* The engine transcriber: libcanary + the long-audio pipeline behind the service's step interface.
 *
 * cn_pipeline_run is one blocking call per file. To interleave jobs fairly, each job's pipeline
 * runs in a thread of its own that holds still between batches: its progress callback (called
 * after every batch) hands control back and waits for the next step(). At most `workers` steps
 * run at once (the scheduler's workers), and each batch borrows one of `workers` inference
 * contexts, so the CPU/GPU work is bounded by the configuration while any number of jobs are
 * in flight. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/config.h"
#include "base/strbuf.h"
#include "base/threadpool.h"
#include "canary/canary.h"
#include "canary/canary_audio.h"
#include "canary/canary_pipeline.h"
#include "pipeline/engine_recognizer.h"
#include "pipeline/pipeline.h"
#include "service/transcriber.h"

typedef struct engine {
    canary_model *model;
    canary_params defaults;
    pthread_mutex_t mu;
    pthread_cond_t free_ctx;
    canary_context **ctx;
    bool *busy;
    int n_ctx;
    double chunk_max_s;
    size_t max_batch;
} engine;

struct cn_transcription {
    engine *e;
    canary_params prm;
    char lang[16], target[16];
    cn_task task;
    canary_audio *audio;
    cn_pcm_source src;
    char name[256];
    canary_cancel *cancel;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool granted, batch_done, finished;
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

/* ---- the recognizer the pipeline calls ---- */

static cn_status rec_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                cn_rec_result *out, cn_error *err) {
    cn_transcription *s = self;
    engine *e = s->e;
    pthread_mutex_lock(&e->mu);
    int k = -1;
    for (;;) {
        for (int i = 0; i < e->n_ctx; i++)
            if (!e->busy[i]) {
                k = i;
                break;
            }
        if (k >= 0)
            break;
        pthread_cond_wait(&e->free_ctx, &e->mu);
    }
    e->busy[k] = true;
    pthread_mutex_unlock(&e->mu);
    canary_context *ctx = e->ctx[k];
    char msg[512];
    cn_status st = canary_transcribe_batch(ctx, &s->prm, pcm, lens, (int)n, msg, sizeof msg);
    if (st != CANARY_OK) {
        cn_error_set(err, st, "%s", msg);
    } else {
        for (size_t i = 0; i < n && st == CANARY_OK; i++)
            st = cn_engine_result_convert(ctx, (int)i, lens[i], s->prm.timestamps,
                                          canary_model_frame_seconds(e->model), &out[i], err);
        if (st != CANARY_OK)
            for (size_t i = 0; i < n; i++)
                cn_rec_result_free(&out[i]);
    }
    pthread_mutex_lock(&e->mu);
    e->busy[k] = false;
    pthread_cond_signal(&e->free_ctx);
    pthread_mutex_unlock(&e->mu);
    return st;
}

static cn_status src_read(void *self, float *buf, size_t max, size_t *got, cn_error *err) {
    cn_transcription *s = self;
    char msg[512];
    canary_status st = canary_audio_read(s->audio, buf, max, got, msg, sizeof msg);
    return st == CANARY_OK ? CANARY_OK : cn_error_set(err, st, "%s", msg);
}

/* After every batch: report, then wait for the next step (or a cancel). */
static bool on_progress(const canary_progress *p, void *user) {
    cn_transcription *s = user;
    pthread_mutex_lock(&s->mu);
    s->last = *p;
    s->batch_done = true;
    s->granted = false;
    pthread_cond_broadcast(&s->cv);
    while (!s->granted && !canary_cancel_requested(s->cancel))
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return !canary_cancel_requested(s->cancel);
}

static void *pipeline_thread(void *arg) {
    cn_transcription *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->granted && !canary_cancel_requested(s->cancel))
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    /* One chunk per batch unless engine.max_batch says otherwise: a step is then one chunk, which
     * is the granularity at which the scheduler interleaves jobs and notices a cancel. */
    p.max_batch = s->e->max_batch > 0 ? s->e->max_batch : 1;
    p.chunk_max_s = chunk_seconds(s->e);
    if (s->prm.timestamps && !(s->e->chunk_max_s > 0)) /* NeMo's chunk length for timestamps */
        p.chunk_max_s = CN_CANARY_TIMESTAMP_CHUNK_S;
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
    if (pthread_create(&s->thread, NULL, pipeline_thread, s) != 0) {
        eng_close(t, s);
        return cn_error_set(err, CANARY_EIO, "cannot start a pipeline thread");
    }
    s->started = true;
    *out = s;
    return CANARY_OK;
}

static cn_status eng_step(cn_transcriber *t, cn_transcription *s, const atomic_bool *cancel, cn_step_progress *pr,
                          cn_error *err) {
    pthread_mutex_lock(&s->mu);
    s->granted = true;
    s->batch_done = false;
    pthread_cond_broadcast(&s->cv);
    while (!s->batch_done && !s->finished) {
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
    pr->chunks_done = (int)s->last.chunks_done;
    pr->chunks_total = (int)s->last.chunks_total;
    pr->finished = s->finished && s->status == CANARY_OK;
    cn_status st = s->finished ? s->status : CANARY_OK;
    if (st != CANARY_OK && err)
        *err = s->err;
    pthread_mutex_unlock(&s->mu);
    if (pr->finished && pr->chunks_total < pr->chunks_done)
        pr->chunks_total = pr->chunks_done;
    return st;
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
        out->segments[out->n_segments++] = (cn_segment){g->start, g->end, dup0(g->text)};
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
        for (int i = 0; i < e->n_ctx; i++)
            canary_context_free(e->ctx[i]);
        free(e->ctx);
        free(e->busy);
        canary_model_free(e->model);
        pthread_cond_destroy(&e->free_ctx);
        pthread_mutex_destroy(&e->mu);
        free(e);
    }
    free(t);
}

static const cn_transcriber_ops engine_ops = {eng_probe, eng_open, eng_step, eng_finish, eng_close, eng_destroy};

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
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->free_ctx, NULL);
    char msg[512];
    canary_model_params mp = canary_model_default_params();
    mp.cache_dir = cfg->cache_dir && cfg->cache_dir[0] ? cfg->cache_dir : NULL;
    canary_status st = canary_model_load(model_path, &mp, &e->model, msg, sizeof msg);
    if (st != CANARY_OK) {
        eng_destroy(t);
        return cn_error_set(err, st, "loading model %s: %s", model_path, msg);
    }
    e->defaults = canary_default_params(e->model);
    e->defaults.beam_size = cfg->beam_size;
    if (strcmp(cfg->precision, "bf16") != 0 && strcmp(cfg->precision, "fp32") != 0 && strcmp(cfg->precision, "auto") != 0) {
        eng_destroy(t);
        return cn_error_set(err, CANARY_EUNSUPPORTED, "engine.precision = %s: the CPU engine supports fp32 and bf16",
                            cfg->precision);
    }
    e->defaults.precision = strcmp(cfg->precision, "bf16") == 0 ? CANARY_PRECISION_BF16 : CANARY_PRECISION_FP32;
    /* "auto" keeps the checkpoint's own front end (NeMo < 2.5: 2.4 semantics), as transcribe does */
    if (strcmp(cfg->feature_semantics, "nemo-2.4") == 0)
        e->defaults.features = CANARY_FEATURES_NEMO_2_4;
    else if (strcmp(cfg->feature_semantics, "nemo-2.5") == 0)
        e->defaults.features = CANARY_FEATURES_NEMO_2_5;
    e->chunk_max_s = cfg->chunk_seconds;
    e->max_batch = cfg->max_batch > 0 ? (size_t)cfg->max_batch : 0;
    e->n_ctx = workers > 0 ? workers : 1;
    int threads = cfg->threads > 0 ? cfg->threads : cn_cpu_count() / e->n_ctx;
    e->ctx = calloc((size_t)e->n_ctx, sizeof *e->ctx);
    e->busy = calloc((size_t)e->n_ctx, sizeof *e->busy);
    if (!e->ctx || !e->busy) {
        eng_destroy(t);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    for (int i = 0; i < e->n_ctx; i++)
        if ((st = canary_context_create(e->model, threads > 0 ? threads : 1, &e->ctx[i], msg, sizeof msg)) !=
            CANARY_OK) {
            e->n_ctx = i;
            eng_destroy(t);
            return cn_error_set(err, st, "creating an inference context: %s", msg);
        }
    t->ready = true;
    snprintf(t->model_name, sizeof t->model_name, "%s", cfg->model);
    snprintf(t->device, sizeof t->device, "cpu");
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

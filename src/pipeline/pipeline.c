#include "pipeline/pipeline.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "pipeline/batcher.h"
#include "pipeline/chunker.h"
#include "pipeline/merge.h"

#define READ_BLOCK 8000 /* 0.5 s at 16 kHz */

struct canary_cancel {
    atomic_int requested;
};

canary_cancel *canary_cancel_create(void) {
    canary_cancel *c = malloc(sizeof *c);
    if (c)
        atomic_init(&c->requested, 0);
    return c;
}
void canary_cancel_destroy(canary_cancel *c) { free(c); }
void canary_cancel_request(canary_cancel *c) { atomic_store(&c->requested, 1); }
bool canary_cancel_requested(const canary_cancel *c) {
    return c && atomic_load(&((canary_cancel *)c)->requested) != 0;
}

void cn_pipeline_params_default(cn_pipeline_params *p) {
    memset(p, 0, sizeof *p);
    cn_chunk_params cp;
    cn_chunk_params_default(&cp);
    p->chunk_max_s = 0;
    p->chunk_min_s = cp.min_s;
    p->overlap_s = 1.0; /* at hard cuts only: the seam's words are then heard twice and merged */
    p->skip_silence_s = cp.skip_silence_s;
    p->max_batch = 8;
    p->max_batch_s = 8 * cp.max_s;
    p->max_segment_chars = 120;
    cn_vad_params_default(&p->vad);
    p->task = "transcribe";
    p->language = "en";
}

typedef struct pending {
    size_t input;
    cn_chunk ch;
    float *pcm;
    size_t len;
    cn_rec_result res;
} pending;

typedef struct input_state {
    cn_merger *merger;
    int64_t fed;            /* samples read */
    int64_t pos;            /* audio before this is chunked or silence */
    int64_t committed;      /* audio before this has been transcribed (progress) */
    bool ended;
    bool finished;          /* transcript built (and handed to on_transcript) */
} input_state;

/* What the reader hands the inference side, in reading order: a chunk (with its PCM), a "flush"
 * (the pending chunks form the next set of batches), an input's end, or the end of all input.
 * Every item carries the reading position of its input at that moment, for progress. */
typedef enum item_kind { ITEM_CHUNK, ITEM_FLUSH, ITEM_END_INPUT, ITEM_DONE } item_kind;

typedef struct item {
    item_kind kind;
    size_t input;
    int64_t fed, pos;
    cn_chunk ch;
    float *pcm;
    size_t len;
    struct item *next;
} item;

/* The bounded hand-over between the reader thread and the inference side. */
typedef struct handover {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item *head, *tail;
    int64_t samples;     /* PCM samples queued */
    int64_t cap_samples; /* the reader waits while the queue holds more than this */
    bool stop;           /* the inference side gave up (error, cancel): the reader ends */
    bool reader_failed;
    cn_error reader_err;
} handover;

typedef struct run {
    const cn_recognizer *rec;
    const cn_pipeline_params *p;
    cn_pcm_source *inputs;
    size_t n_inputs;
    input_state *st;
    pending *pend;
    size_t n_pend, cap_pend;
    int64_t pend_samples;
    int64_t max_batch_samples;
    size_t chunks_done, chunks_total;
    uint64_t t0;
    canary_transcript *out;
    /* the reader's side: its own view of the inputs (the same array when reading runs inline) */
    input_state *rd;
    int64_t since_flush; /* samples of chunks planned since the last flush */
    handover *ho;        /* NULL: reading runs inline on the calling thread */
} run;

static void pending_clear(run *r) {
    for (size_t i = 0; i < r->n_pend; i++) {
        free(r->pend[i].pcm);
        cn_rec_result_free(&r->pend[i].res);
    }
    r->n_pend = 0;
    r->pend_samples = 0;
}

static double total_audio_s(const run *r) {
    double sr = r->rec->sample_rate, s = 0;
    for (size_t i = 0; i < r->n_inputs; i++) {
        double fed = (double)r->st[i].fed / sr;
        s += r->st[i].ended ? fed : fmax(fed, r->inputs[i].expected_s);
    }
    return s;
}

static bool report(run *r, double done_s) {
    if (!r->p->progress)
        return true;
    canary_progress pr = {0};
    pr.chunks_done = r->chunks_done;
    pr.chunks_total = r->chunks_total;
    pr.audio_total_s = total_audio_s(r);
    pr.audio_done_s = fmin(done_s, pr.audio_total_s);
    pr.fraction = pr.audio_total_s > 0 ? pr.audio_done_s / pr.audio_total_s : 0;
    pr.elapsed_s = cn_elapsed_s(r->t0);
    pr.rtf = pr.audio_done_s > 0 ? pr.elapsed_s / pr.audio_done_s : 0;
    pr.eta_s = pr.audio_done_s > 0 ? pr.rtf * (pr.audio_total_s - pr.audio_done_s) : -1;
    return r->p->progress(&pr, r->p->progress_user);
}

static cn_status check_cancel(const run *r, cn_error *err) {
    if (canary_cancel_requested(r->p->cancel))
        return cn_error_set(err, CANARY_ECANCELED, "transcription canceled");
    return CANARY_OK;
}

/* Transcribes every pending chunk in length-bucketed batches, then merges them in order. */
static cn_status run_pending(run *r, cn_error *err) {
    if (r->n_pend == 0)
        return CANARY_OK;
    const double sr = r->rec->sample_rate;
    double committed_s = 0, window_s = 0;
    for (size_t i = 0; i < r->n_inputs; i++) {
        int64_t now = r->st[i].ended ? r->st[i].fed : r->st[i].pos;
        committed_s += (double)r->st[i].committed / sr;
        window_s += (double)(now - r->st[i].committed) / sr;
    }
    int64_t *lens = malloc(r->n_pend * sizeof *lens);
    const float **pcm = malloc(r->n_pend * sizeof *pcm);
    size_t *nlen = malloc(r->n_pend * sizeof *nlen);
    cn_rec_result *res = calloc(r->n_pend, sizeof *res);
    cn_batch_plan plan = {0};
    cn_status st = CANARY_OK;
    if (!lens || !pcm || !nlen || !res) {
        st = cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory for %zu chunks", r->n_pend);
        goto out;
    }
    for (size_t i = 0; i < r->n_pend; i++)
        lens[i] = (int64_t)r->pend[i].len;
    st = cn_batch_plan_make(lens, r->n_pend, r->p->max_batch, r->max_batch_samples, r->rec->equal_length_batches, &plan,
                            err);
    if (st != CANARY_OK)
        goto out;
    size_t off = 0, done_in_window = 0;
    for (size_t b = 0; b < plan.n_batches; b++) {
        if ((st = check_cancel(r, err)) != CANARY_OK)
            goto out;
        size_t n = plan.sizes[b];
        size_t shortest = r->pend[plan.order[off]].len, longest = shortest;
        for (size_t k = 1; k < n; k++) {
            size_t l = r->pend[plan.order[off + k]].len;
            shortest = l < shortest ? l : shortest;
            longest = l > longest ? l : longest;
        }
        CN_DEBUG("pipeline", "batch of %zu chunk(s) of %.2f-%.2f s", n, (double)shortest / r->rec->sample_rate,
                 (double)longest / r->rec->sample_rate);
        for (size_t k = 0; k < n; k++) {
            const pending *pc = &r->pend[plan.order[off + k]];
            pcm[k] = pc->pcm;
            nlen[k] = pc->len;
        }
        memset(res, 0, n * sizeof *res);
        st = r->rec->transcribe(r->rec->self, pcm, nlen, n, res, err);
        if (st != CANARY_OK) {
            cn_error_prefix(err, "transcribing a batch of %zu chunks", n);
            goto out;
        }
        for (size_t k = 0; k < n; k++)
            r->pend[plan.order[off + k]].res = res[k];
        off += n;
        done_in_window += n;
        r->chunks_done += n;
        double done_s = committed_s + window_s * (double)done_in_window / (double)r->n_pend;
        if (!report(r, done_s)) {
            st = cn_error_set(err, CANARY_ECANCELED, "transcription canceled by the progress callback");
            goto out;
        }
    }
    for (size_t i = 0; i < r->n_pend; i++) {
        pending *pc = &r->pend[i];
        st = cn_merger_add(r->st[pc->input].merger, &pc->ch, &pc->res, err);
        if (st != CANARY_OK)
            goto out;
    }
    for (size_t i = 0; i < r->n_inputs; i++)
        r->st[i].committed = r->st[i].ended ? r->st[i].fed : r->st[i].pos;
out:
    pending_clear(r);
    cn_batch_plan_free(&plan);
    free(lens);
    free(pcm);
    free(nlen);
    free(res);
    return st;
}

/* PCM of one input that a future chunk may still need: samples [start, start + len). */
typedef struct pcm_window {
    float *buf;
    int64_t start;
    size_t len, cap;
} pcm_window;

static bool window_append(pcm_window *w, const float *x, size_t n) {
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 65536;
        while (cap < w->len + n)
            cap *= 2;
        float *b = realloc(w->buf, cap * sizeof *b);
        if (!b)
            return false;
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, x, n * sizeof *x);
    w->len += n;
    return true;
}

static void window_trim(pcm_window *w, int64_t keep_from) {
    if (keep_from <= w->start)
        return;
    size_t drop = (size_t)(keep_from - w->start);
    if (drop > w->len)
        drop = w->len;
    memmove(w->buf, w->buf + drop, (w->len - drop) * sizeof *w->buf);
    w->len -= drop;
    w->start += (int64_t)drop;
}

static cn_status pending_append(run *r, size_t input, const cn_chunk *ch, float *pcm, size_t len, cn_error *err) {
    if (r->n_pend == r->cap_pend) {
        size_t cap = r->cap_pend ? r->cap_pend * 2 : 32;
        pending *np = realloc(r->pend, cap * sizeof *np);
        if (!np) {
            free(pcm);
            return cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory");
        }
        r->pend = np;
        r->cap_pend = cap;
    }
    r->pend[r->n_pend++] = (pending){.input = input, .ch = *ch, .pcm = pcm, .len = len};
    r->pend_samples += (int64_t)len;
    r->chunks_total++;
    return CANARY_OK;
}

/* Builds the transcripts of inputs whose every chunk has been merged, and hands them over. */
static cn_status finish_ready(run *r, cn_error *err) {
    for (size_t i = 0; i < r->n_inputs; i++) {
        input_state *is = &r->st[i];
        if (!is->ended || is->finished)
            continue;
        cn_status st = cn_merger_finish(is->merger, (double)is->fed / r->rec->sample_rate, r->p->task,
                                        r->p->language, &r->out[i], err);
        if (st != CANARY_OK) {
            cn_error_prefix(err, "%s", r->inputs[i].name ? r->inputs[i].name : "input");
            return st;
        }
        is->finished = true;
        if (r->p->on_transcript)
            r->p->on_transcript(i, &r->out[i], r->p->transcript_user);
    }
    return CANARY_OK;
}

static cn_status flush(run *r, cn_error *err) {
    CN_TRY(run_pending(r, err));
    return finish_ready(r, err);
}

/* ---- the reader's outputs: inline (sequential) or into the hand-over queue ---- */

static cn_status handover_push(run *r, item it, cn_error *err) {
    handover *h = r->ho;
    item *n = malloc(sizeof *n);
    if (!n) {
        free(it.pcm);
        return cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory");
    }
    *n = it;
    n->next = NULL;
    pthread_mutex_lock(&h->mu);
    /* bounded: wait while the queue is full (an empty queue always takes one item) */
    while (!h->stop && h->head && h->samples + (int64_t)it.len > h->cap_samples &&
           !canary_cancel_requested(r->p->cancel))
        pthread_cond_wait(&h->cv, &h->mu);
    bool stop = h->stop;
    if (!stop) {
        if (h->tail)
            h->tail->next = n;
        else
            h->head = n;
        h->tail = n;
        h->samples += (int64_t)it.len;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    if (stop) {
        free(n->pcm);
        free(n);
        return cn_error_set(err, CANARY_ECANCELED, "transcription canceled");
    }
    return CANARY_OK;
}

static cn_status emit_chunk(run *r, size_t input, const cn_chunk *ch, const pcm_window *w, cn_error *err) {
    if (ch->start < w->start || ch->end > w->start + (int64_t)w->len || ch->end <= ch->start)
        return cn_error_set(err, CANARY_EINTERNAL,
                            "pipeline: chunk [%lld, %lld) is outside the kept audio [%lld, %lld)",
                            (long long)ch->start, (long long)ch->end, (long long)w->start,
                            (long long)(w->start + (int64_t)w->len));
    size_t len = (size_t)(ch->end - ch->start);
    float *pcm = malloc(len * sizeof *pcm);
    if (!pcm)
        return cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory for a %zu-sample chunk", len);
    memcpy(pcm, w->buf + (ch->start - w->start), len * sizeof *pcm);
    r->since_flush += (int64_t)len;
    if (!r->ho)
        return pending_append(r, input, ch, pcm, len, err);
    return handover_push(r, (item){.kind = ITEM_CHUNK, .input = input, .ch = *ch, .pcm = pcm, .len = len}, err);
}

/* The pending chunks are enough for a set of batches (the same points in the input whether or
 * not reading runs ahead, so the batches, and thus the results, are the same). */
static cn_status emit_flush(run *r, size_t input, cn_error *err) {
    r->since_flush = 0;
    if (!r->ho)
        return flush(r, err);
    const input_state *is = &r->rd[input];
    return handover_push(r, (item){.kind = ITEM_FLUSH, .input = input, .fed = is->fed, .pos = is->pos}, err);
}

static cn_status emit_end_input(run *r, size_t input, cn_error *err) {
    if (!r->ho)
        return CANARY_OK; /* r->rd is r->st */
    const input_state *is = &r->rd[input];
    return handover_push(r, (item){.kind = ITEM_END_INPUT, .input = input, .fed = is->fed, .pos = is->pos}, err);
}

/* Reads, analyses and plans one input, running batches whenever enough chunks are pending. */
static cn_status process_input(run *r, size_t idx, const cn_chunk_params *cp, cn_error *err) {
    cn_pcm_source *src = &r->inputs[idx];
    input_state *is = &r->rd[idx];
    cn_vad *vad = NULL;
    cn_chunker *chunker = NULL;
    pcm_window w = {0};
    float *block = malloc(READ_BLOCK * sizeof *block);
    cn_span regions[64];
    cn_status st;
    if (!block) {
        st = cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory");
        goto out;
    }
    if ((st = cn_vad_create(&r->p->vad, &vad, err)) != CANARY_OK ||
        (st = cn_chunker_create(cp, &chunker, err)) != CANARY_OK)
        goto out;
    const int64_t window_limit = 2 * r->max_batch_samples;
    for (;;) {
        if ((st = check_cancel(r, err)) != CANARY_OK)
            goto out;
        size_t got = 0;
        if ((st = src->read(src->self, block, READ_BLOCK, &got, err)) != CANARY_OK) {
            cn_error_prefix(err, "%s", src->name ? src->name : "input");
            goto out;
        }
        if (got > READ_BLOCK) {
            st = cn_error_set(err, CANARY_EINTERNAL, "%s: the source returned %zu samples for a %d-sample read",
                              src->name ? src->name : "input", got, READ_BLOCK);
            goto out;
        }
        if (got > 0) {
            if (!window_append(&w, block, got)) {
                st = cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory buffering audio");
                goto out;
            }
            if ((st = cn_vad_feed(vad, block, got, err)) != CANARY_OK)
                goto out;
            is->fed += (int64_t)got;
        } else {
            if ((st = cn_vad_finish(vad, err)) != CANARY_OK)
                goto out;
        }
        size_t n;
        while ((n = cn_vad_take(vad, regions, 64)) > 0) {
            for (size_t i = 0; i < n; i++)
                if ((st = cn_chunker_push(chunker, regions[i], err)) != CANARY_OK)
                    goto out;
        }
        cn_chunker_watermark(chunker, cn_vad_watermark(vad));
        if (got == 0)
            cn_chunker_finish(chunker, is->fed);
        cn_chunk ch;
        while (cn_chunker_next(chunker, &ch))
            if ((st = emit_chunk(r, idx, &ch, &w, err)) != CANARY_OK)
                goto out;
        is->pos = cn_chunker_position(chunker);
        window_trim(&w, is->pos);
        if (got == 0) {
            is->ended = true;
            is->pos = is->fed;
            break;
        }
        if (r->since_flush >= window_limit && (st = emit_flush(r, idx, err)) != CANARY_OK)
            goto out;
    }
    st = emit_end_input(r, idx, err);
out:
    free(block);
    free(w.buf);
    cn_vad_destroy(vad);
    cn_chunker_destroy(chunker);
    return st;
}

typedef struct reader_args {
    run *r;
    const cn_chunk_params *cp;
} reader_args;

/* The reader thread: decodes, runs the VAD and plans chunks for every input in turn, ahead of
 * inference by at most the hand-over's capacity. */
static void *reader_main(void *arg) {
    reader_args *a = arg;
    run *r = a->r;
    handover *h = r->ho;
    cn_error err;
    cn_error_clear(&err);
    cn_status st = CANARY_OK;
    for (size_t i = 0; i < r->n_inputs && st == CANARY_OK; i++)
        st = process_input(r, i, a->cp, &err);
    if (st == CANARY_OK)
        st = handover_push(r, (item){.kind = ITEM_DONE}, &err);
    if (st != CANARY_OK) {
        pthread_mutex_lock(&h->mu);
        h->reader_failed = true;
        h->reader_err = err;
        pthread_cond_broadcast(&h->cv);
        pthread_mutex_unlock(&h->mu);
    }
    return NULL;
}

/* Takes the next item, waiting for the reader; NULL when the reader failed (err filled) or the
 * run is canceled. */
static item *handover_pop(run *r, cn_error *err) {
    handover *h = r->ho;
    pthread_mutex_lock(&h->mu);
    while (!h->head && !h->reader_failed && !canary_cancel_requested(r->p->cancel)) {
        /* a cancel request does not signal the condition: look again every 50 ms */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    item *it = h->head;
    if (it) {
        h->head = it->next;
        if (!h->head)
            h->tail = NULL;
        h->samples -= (int64_t)it->len;
        pthread_cond_broadcast(&h->cv);
    } else if (h->reader_failed) {
        *err = h->reader_err;
    } else {
        cn_error_set(err, CANARY_ECANCELED, "transcription canceled");
    }
    pthread_mutex_unlock(&h->mu);
    return it;
}

/* The inference side of an overlapped run: consumes what the reader planned. */
static cn_status consume(run *r, cn_error *err) {
    for (;;) {
        item *it = handover_pop(r, err);
        if (!it)
            return err->code ? err->code : CANARY_ECANCELED;
        item_kind kind = it->kind;
        cn_status st = CANARY_OK;
        if (kind == ITEM_CHUNK) {
            st = pending_append(r, it->input, &it->ch, it->pcm, it->len, err);
        } else if (kind == ITEM_FLUSH || kind == ITEM_END_INPUT) {
            input_state *is = &r->st[it->input];
            is->fed = it->fed;
            is->pos = it->pos;
            is->ended = kind == ITEM_END_INPUT;
            if (kind == ITEM_FLUSH)
                st = flush(r, err);
        } else if (kind == ITEM_DONE) {
            st = flush(r, err);
        }
        free(it);
        if (st != CANARY_OK)
            return st;
        if (kind == ITEM_DONE)
            return CANARY_OK;
    }
}

static void handover_drain(handover *h) {
    for (item *it = h->head, *next; it; it = next) {
        next = it->next;
        free(it->pcm);
        free(it);
    }
    h->head = h->tail = NULL;
    h->samples = 0;
}

/* Reading on a second thread, inference on this one (see pipeline.h). */
static cn_status run_overlapped(run *r, const cn_chunk_params *cp, cn_error *err) {
    handover h = {.cap_samples = 2 * r->max_batch_samples};
    input_state *rd = calloc(r->n_inputs ? r->n_inputs : 1, sizeof *rd);
    if (!rd)
        return cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory");
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    r->rd = rd;
    r->ho = &h;
    reader_args a = {r, cp};
    pthread_t th;
    cn_status st;
    if (pthread_create(&th, NULL, reader_main, &a) != 0) {
        st = cn_error_set(err, CANARY_ENOMEM, "pipeline: cannot start the reader thread");
    } else {
        st = consume(r, err);
        pthread_mutex_lock(&h.mu);
        h.stop = true;
        pthread_cond_broadcast(&h.cv);
        pthread_mutex_unlock(&h.mu);
        pthread_join(th, NULL);
    }
    handover_drain(&h);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    free(rd);
    r->rd = NULL;
    r->ho = NULL;
    return st;
}

cn_status cn_pipeline_chunk_params(const cn_recognizer *rec, const cn_pipeline_params *p, cn_chunk_params *cp,
                                   cn_error *err) {
    if (!rec || !rec->transcribe || rec->sample_rate != 16000 || !(rec->max_chunk_s >= 1) || !(rec->frame_s > 0))
        return cn_error_set(err, CANARY_EINVAL, "pipeline: the recognizer must take 16 kHz audio with a limit >= 1 s");
    cn_chunk_params_default(cp);
    cp->sample_rate = rec->sample_rate;
    cp->max_s = p->chunk_max_s > 0 ? p->chunk_max_s : rec->max_chunk_s;
    if (cp->max_s > rec->max_chunk_s) {
        CN_INFO("pipeline", "chunk length %g s is longer than the model's limit; using %g s", cp->max_s,
                rec->max_chunk_s);
        cp->max_s = rec->max_chunk_s;
    }
    cp->min_s = fmin(p->chunk_min_s, cp->max_s);
    cp->overlap_s = p->overlap_s;
    cp->skip_silence_s = p->skip_silence_s;
    /* validate the planner settings once, before reading anything */
    cn_chunker *probe;
    CN_TRY(cn_chunker_create(cp, &probe, err));
    cn_chunker_destroy(probe);
    return CANARY_OK;
}

cn_status cn_pipeline_run(const cn_recognizer *rec, const cn_pipeline_params *p, cn_pcm_source *inputs,
                          size_t n_inputs, canary_transcript *out, cn_error *err) {
    memset(out, 0, n_inputs * sizeof *out);
    cn_chunk_params cp;
    CN_TRY(cn_pipeline_chunk_params(rec, p, &cp, err));
    if (p->max_batch < 1 || !(p->max_batch_s >= cp.max_s))
        return cn_error_set(err, CANARY_EINVAL,
                            "pipeline: max_batch %zu must be >= 1 and max_batch_s %g must be >= the chunk length %g s",
                            p->max_batch, p->max_batch_s, cp.max_s);

    run r = {.rec = rec, .p = p, .inputs = inputs, .n_inputs = n_inputs, .t0 = cn_now_ns()};
    r.max_batch_samples = (int64_t)ceil(p->max_batch_s * rec->sample_rate);
    r.st = calloc(n_inputs ? n_inputs : 1, sizeof *r.st);
    if (!r.st)
        return cn_error_set(err, CANARY_ENOMEM, "pipeline: out of memory");
    cn_merge_params mp = {.sample_rate = rec->sample_rate, .frame_s = rec->frame_s, .overlap_s = cp.overlap_s,
                          .max_segment_chars = p->max_segment_chars};
    r.out = out;
    cn_status st = CANARY_OK;
    for (size_t i = 0; i < n_inputs && st == CANARY_OK; i++)
        st = cn_merger_create(&mp, &r.st[i].merger, err);
    if (st == CANARY_OK && p->sequential) {
        r.rd = r.st;
        for (size_t i = 0; i < n_inputs && st == CANARY_OK; i++)
            st = process_input(&r, i, &cp, err);
        if (st == CANARY_OK)
            st = flush(&r, err);
    } else if (st == CANARY_OK) {
        st = run_overlapped(&r, &cp, err);
    }
    if (st == CANARY_OK)
        report(&r, total_audio_s(&r));
    if (st != CANARY_OK) {
        for (size_t i = 0; i < n_inputs; i++)
            canary_transcript_free(&out[i]);
    }
    pending_clear(&r);
    free(r.pend);
    for (size_t i = 0; i < n_inputs; i++)
        cn_merger_destroy(r.st[i].merger);
    free(r.st);
    return st;
}

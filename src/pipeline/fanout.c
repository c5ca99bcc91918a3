/* One batch over several recognizers at once (fanout.h). */
#include "pipeline/fanout.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

static int weight_of(const cn_fanout_part *p) { return p->retired ? 0 : p->weight; }

void cn_fanout_shares(const cn_fanout *f, size_t n, size_t *share) {
    long long total = 0;
    for (size_t i = 0; i < f->n_parts; i++)
        total += weight_of(&f->parts[i]);
    size_t given = 0;
    for (size_t i = 0; i < f->n_parts; i++) {
        share[i] = total > 0 ? (size_t)((unsigned long long)n * (unsigned long long)weight_of(&f->parts[i]) /
                                        (unsigned long long)total)
                             : 0;
        given += share[i];
    }
    if (total <= 0)
        return;
    for (size_t i = 0; given < n; i = (i + 1) % f->n_parts) { /* the remainder: one more each, in order */
        if (!weight_of(&f->parts[i]))
            continue;
        share[i]++;
        given++;
    }
}

typedef struct share_run {
    cn_fanout_part *part;
    const float *const *pcm;
    const size_t *lens;
    size_t n;
    cn_rec_result *out;
    cn_status st;
    cn_error err;
} share_run;

static void run_share(share_run *r) {
    uint64_t t0 = cn_now_ns();
    cn_error_clear(&r->err);
    r->st = r->part->rec.transcribe(r->part->rec.self, r->pcm, r->lens, r->n, r->out, &r->err);
    r->part->busy_s += cn_elapsed_s(t0);
    if (r->st == CANARY_OK) {
        r->part->batches++;
        r->part->chunks += r->n;
    }
}

static void *share_thread(void *arg) {
    run_share(arg);
    return NULL;
}

static bool any_left(const cn_fanout *f) {
    for (size_t i = 0; i < f->n_parts; i++)
        if (!f->parts[i].retired)
            return true;
    return false;
}

static cn_status fanout_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                   cn_rec_result *out, cn_error *err) {
    cn_fanout *f = self;
    size_t share[CN_FANOUT_MAX_PARTS];
    cn_fanout_shares(f, n, share);
    share_run runs[CN_FANOUT_MAX_PARTS];
    pthread_t threads[CN_FANOUT_MAX_PARTS];
    bool started[CN_FANOUT_MAX_PARTS] = {false};
    size_t at = 0, n_runs = 0;
    for (size_t i = 0; i < f->n_parts; i++) {
        if (!share[i])
            continue;
        runs[n_runs] = (share_run){.part = &f->parts[i], .pcm = pcm + at, .lens = lens + at, .n = share[i],
                                   .out = out + at};
        at += share[i];
        n_runs++;
    }
    if (at < n)
        return cn_error_set(err, CANARY_EDEVICE, "no device left to run a batch of %zu chunks", n);
    /* the first share on this thread, the others on threads of their own (inline when a thread
     * cannot start: slower, same result) */
    for (size_t r = 1; r < n_runs; r++)
        started[r] = pthread_create(&threads[r], NULL, share_thread, &runs[r]) == 0;
    if (n_runs)
        run_share(&runs[0]);
    for (size_t r = 1; r < n_runs; r++) {
        if (started[r])
            pthread_join(threads[r], NULL);
        else
            run_share(&runs[r]);
    }
    /* A part that lost its device is retired and its share runs again on the parts left (a failed
     * share freed its own results, so its slots are clean). */
    for (size_t r = 0; r < n_runs; r++)
        if (runs[r].st == CANARY_EDEVICE) {
            runs[r].part->retired = true;
            if (any_left(f)) {
                CN_WARN("fanout", "%s failed (%s) and is retired; its %zu chunk(s) and later batches go to the others",
                        runs[r].part->name, runs[r].err.msg, runs[r].n);
                cn_error_clear(&runs[r].err);
                runs[r].st = fanout_transcribe(self, runs[r].pcm, runs[r].lens, runs[r].n, runs[r].out, &runs[r].err);
            }
        }
    size_t failed = n_runs;
    for (size_t r = 0; r < n_runs && failed == n_runs; r++)
        if (runs[r].st != CANARY_OK)
            failed = r;
    if (failed == n_runs)
        return CANARY_OK;
    /* a failed share freed its own results; free the others' */
    for (size_t r = 0; r < n_runs; r++)
        if (runs[r].st == CANARY_OK)
            for (size_t k = 0; k < runs[r].n; k++)
                cn_rec_result_free(&runs[r].out[k]);
    return cn_error_set(err, runs[failed].st, "%s: %s", runs[failed].part->name, runs[failed].err.msg);
}

cn_status cn_fanout_bind(cn_fanout *f, cn_recognizer *out, cn_error *err) {
    if (f->n_parts == 0 || f->n_parts > CN_FANOUT_MAX_PARTS)
        return cn_error_set(err, CANARY_EINVAL, "fan-out over %zu recognizers (1 to %d)", f->n_parts,
                            CN_FANOUT_MAX_PARTS);
    const cn_recognizer *r0 = &f->parts[0].rec;
    *out = (cn_recognizer){.self = f,
                           .sample_rate = r0->sample_rate,
                           .max_chunk_s = r0->max_chunk_s,
                           .frame_s = r0->frame_s,
                           .equal_length_batches = false,
                           .transcribe = fanout_transcribe};
    for (size_t i = 0; i < f->n_parts; i++) {
        const cn_fanout_part *p = &f->parts[i];
        if (p->weight < 1)
            return cn_error_set(err, CANARY_EINVAL, "fan-out part %s: weight %d (must be at least 1)", p->name,
                                p->weight);
        if (p->rec.sample_rate != r0->sample_rate || p->rec.frame_s != r0->frame_s)
            return cn_error_set(err, CANARY_EINVAL,
                                "fan-out part %s: %d Hz, frames of %g s, where %s has %d Hz, frames of %g s",
                                p->name, p->rec.sample_rate, p->rec.frame_s, f->parts[0].name, r0->sample_rate,
                                r0->frame_s);
        if (p->rec.max_chunk_s < out->max_chunk_s)
            out->max_chunk_s = p->rec.max_chunk_s;
        out->equal_length_batches = out->equal_length_batches || p->rec.equal_length_batches;
    }
    return CANARY_OK;
}

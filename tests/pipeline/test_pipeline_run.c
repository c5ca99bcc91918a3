/* The whole pipeline over a deterministic recognizer double (fake_asr.h): transcripts equal the
 * words that were synthesised, with times; silence gives no text; several inputs in one batched
 * run; batch limits; progress; cancellation; errors; one hour of audio streamed. */
#include "test_util.h"

#include <math.h>
#include <stdatomic.h>

#include "fake_asr.h"
#include "pipeline/pipeline.h"

static void collect_words(const canary_transcript *t, fake_word *out, size_t cap, size_t *n, bool *approx) {
    *n = 0;
    *approx = false;
    for (size_t i = 0; i < t->n_segments; i++) {
        const canary_segment *s = &t->segments[i];
        *approx |= s->words_approximate;
        assert_true(s->start <= s->end);
        for (size_t k = 0; k < s->n_words; k++) {
            assert_true(*n < cap);
            int id = -1;
            assert_int_equal(sscanf(s->words[k].text, "w%d", &id), 1);
            out[*n] = (fake_word){id, s->words[k].start, s->words[k].end};
            (*n)++;
        }
    }
}

/* The transcript has exactly the synthesised words, in order, each starting within 0.1 s of its
 * true start (timestamps) ; times monotonic and inside the audio. */
static void check_transcript(const canary_transcript *t, const fake_audio *a, bool timestamps) {
    static fake_word got[20000];
    size_t n;
    bool approx;
    collect_words(t, got, 20000, &n, &approx);
    if (n != a->n_words) {
        size_t i = 0;
        while (i < n && i < a->n_words && got[i].id == a->words[i].id)
            i++;
        fail_msg("%zu words transcribed, %zu spoken; first difference at word %zu (%.2f s)", n, a->n_words, i,
                 i < a->n_words ? a->words[i].start : -1.0);
    }
    double prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i].id != a->words[i].id)
            fail_msg("word %zu: got w%d, spoken w%d at %.2f s", i, got[i].id, a->words[i].id, a->words[i].start);
        assert_true(got[i].start >= prev);
        assert_true(got[i].end >= got[i].start);
        assert_true(got[i].end <= t->duration + 1e-9);
        prev = got[i].start;
        if (timestamps && fabs(got[i].start - a->words[i].start) > 0.1)
            fail_msg("word %zu starts at %.3f s, spoken at %.3f s", i, got[i].start, a->words[i].start);
    }
    assert_int_equal(approx, !timestamps);
    assert_float_equal(t->duration, a->duration, 1e-9);
}

static cn_pipeline_params params(void) {
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    p.overlap_s = 1.0;
    p.max_batch = 4;
    p.max_batch_s = 100;
    return p;
}

static void run_one(fake_audio *a, bool timestamps, double overlap) {
    fake_asr f = {.timestamps = timestamps};
    cn_recognizer rec = fake_asr_recognizer(&f, 40);
    cn_pipeline_params p = params();
    p.overlap_s = overlap;
    cn_pcm_source src = fake_audio_source(a, "fake.wav");
    canary_transcript t;
    cn_error err;
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_OK);
    check_transcript(&t, a, timestamps);
    assert_true(f.max_batch_seen <= 4);
    assert_true(f.max_cost_seen <= 100 * 16000);
    assert_true(f.max_chunk_seen <= 40 * 16000);
    canary_transcript_free(&t);
}

static void test_utterances_with_timestamps(void **state) {
    fake_audio a;
    fake_audio_init(&a, 1, 300, false, false);
    run_one(&a, true, 1.0);
    fake_audio_free(&a);
}

static void test_monologues_hard_cuts_deduplicated(void **state) {
    /* runs of 50-90 s without a pause: hard cuts with 1 s overlap, the seam words de-duplicated */
    for (uint64_t seed = 2; seed < 5; seed++) {
        fake_audio a;
        fake_audio_init(&a, seed, 400, true, false);
        run_one(&a, true, 1.0);
        fake_audio_free(&a);
        fake_audio_init(&a, seed, 400, true, false);
        run_one(&a, false, 1.0); /* approximate times: the seam is matched by words alone */
        fake_audio_free(&a);
    }
}

static void test_silence_gives_no_text(void **state) {
    fake_audio a;
    fake_audio_init_silence(&a, 9, 120);
    fake_asr f = {.timestamps = true};
    cn_recognizer rec = fake_asr_recognizer(&f, 40);
    cn_pipeline_params p = params();
    cn_pcm_source src = fake_audio_source(&a, "silence.wav");
    canary_transcript t;
    cn_error err;
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_OK);
    assert_int_equal(f.calls, 0); /* nothing was sent to the model */
    assert_int_equal(t.n_segments, 0);
    assert_string_equal(t.text, "");
    assert_float_equal(t.duration, 120, 1e-9);
    canary_transcript_free(&t);
    fake_audio_free(&a);
}

typedef struct prog_log {
    size_t calls;
    canary_progress last;
    bool monotonic;
    size_t cancel_at; /* return false on this call */
} prog_log;

static bool on_progress(const canary_progress *p, void *user) {
    prog_log *l = user;
    if (l->calls > 0 && (p->chunks_done < l->last.chunks_done || p->fraction + 1e-12 < l->last.fraction))
        l->monotonic = false;
    if (p->fraction < 0 || p->fraction > 1 || p->chunks_done > p->chunks_total)
        l->monotonic = false;
    l->last = *p;
    l->calls++;
    return !(l->cancel_at && l->calls == l->cancel_at);
}

static void test_many_inputs_one_workload_and_progress(void **state) {
    fake_audio a[3];
    fake_audio_init(&a[0], 11, 6, false, false);
    fake_audio_init_silence(&a[1], 12, 30);
    fake_audio_init(&a[2], 13, 240, true, false);
    fake_asr f = {.timestamps = true};
    cn_recognizer rec = fake_asr_recognizer(&f, 40);
    cn_pipeline_params p = params();
    prog_log log = {.monotonic = true};
    p.progress = on_progress;
    p.progress_user = &log;
    cn_pcm_source src[3] = {fake_audio_source(&a[0], "a.wav"), fake_audio_source(&a[1], "b.wav"),
                            fake_audio_source(&a[2], "c.wav")};
    canary_transcript t[3];
    cn_error err;
    assert_int_equal(cn_pipeline_run(&rec, &p, src, 3, t, &err), CANARY_OK);
    check_transcript(&t[0], &a[0], true);
    assert_int_equal(t[1].n_segments, 0);
    check_transcript(&t[2], &a[2], true);
    assert_true(log.monotonic);
    assert_true(log.calls >= 2);
    assert_int_equal(log.last.chunks_done, f.chunks);
    assert_int_equal(log.last.chunks_total, f.chunks);
    assert_float_equal(log.last.fraction, 1.0, 1e-9);
    assert_float_equal(log.last.audio_total_s, 276, 1e-9);
    assert_float_equal(log.last.eta_s, 0, 1e-9);
    assert_true(log.last.rtf > 0);
    /* the short first file's chunk was batched together with chunks of the third */
    assert_true(f.calls < f.chunks);
    for (int i = 0; i < 3; i++) {
        canary_transcript_free(&t[i]);
        fake_audio_free(&a[i]);
    }
}

static void test_cancel_between_batches(void **state) {
    fake_audio a;
    fake_audio_init(&a, 21, 900, true, false);
    canary_cancel *c = canary_cancel_create();
    assert_non_null(c);
    fake_asr f = {.timestamps = true, .cancel_on_call = 2, .cancel = c};
    cn_recognizer rec = fake_asr_recognizer(&f, 40);
    cn_pipeline_params p = params();
    p.cancel = c;
    cn_pcm_source src = fake_audio_source(&a, "long.wav");
    canary_transcript t;
    cn_error err;
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_ECANCELED);
    assert_int_equal(f.calls, 2); /* the batch in flight finished; no other started */
    assert_null(t.segments);
    assert_non_null(strstr(err.msg, "canceled"));
    /* read far less than the input: the reader stopped too */
    assert_true(a.pos < (int64_t)(900 * 16000) / 2);
    canary_cancel_destroy(c);
    fake_audio_free(&a);

    /* cancel from the progress callback */
    fake_audio_init(&a, 22, 900, true, false);
    fake_asr g = {.timestamps = true};
    rec = fake_asr_recognizer(&g, 40);
    p = params();
    prog_log log = {.monotonic = true, .cancel_at = 1};
    p.progress = on_progress;
    p.progress_user = &log;
    src = fake_audio_source(&a, "long.wav");
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_ECANCELED);
    assert_int_equal(g.calls, 1);
    fake_audio_free(&a);
}

static void test_errors_propagate(void **state) {
    fake_audio a;
    fake_audio_init(&a, 31, 400, false, false);
    fake_asr f = {.timestamps = true, .fail_on_call = 2};
    cn_recognizer rec = fake_asr_recognizer(&f, 40);
    cn_pipeline_params p = params();
    cn_pcm_source src = fake_audio_source(&a, "x.wav");
    canary_transcript t;
    cn_error err;
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_EDEVICE);
    assert_non_null(strstr(err.msg, "transcribing a batch of"));
    assert_non_null(strstr(err.msg, "failing call 2"));
    /* budgets that cannot hold one chunk are refused before any work */
    p.max_batch_s = 20;
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "max_batch_s 20"));
    /* a configured chunk length above the model's limit is capped, not an error */
    fake_audio_free(&a);
    fake_audio_init(&a, 32, 200, true, false);
    fake_asr g = {.timestamps = true};
    rec = fake_asr_recognizer(&g, 20);
    p = params();
    p.chunk_max_s = 60;
    p.chunk_min_s = 5;
    src = fake_audio_source(&a, "y.wav");
    assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_OK);
    assert_true(g.max_chunk_seen <= 20 * 16000);
    check_transcript(&t, &a, true);
    canary_transcript_free(&t);
    fake_audio_free(&a);
}

typedef struct done_log {
    size_t n;
    size_t order[8];
    char *text[8];
} done_log;

static void on_done(size_t input, const canary_transcript *t, void *user) {
    done_log *l = user;
    assert_true(l->n < 8);
    l->order[l->n] = input;
    l->text[l->n] = strdup(t->text);
    l->n++;
}

/* The overlapped run (reader thread) gives exactly the sequential run's transcripts and batches,
 * and hands every transcript over once, in input order. */
static void test_overlap_equals_sequential(void **state) {
    char *docs[2][3];
    size_t calls[2], chunks[2], max_batch[2];
    for (int mode = 0; mode < 2; mode++) {
        fake_audio a[3];
        fake_audio_init(&a[0], 51, 120, true, false);
        fake_audio_init(&a[1], 52, 15, false, false);
        fake_audio_init(&a[2], 53, 200, true, true);
        fake_asr f = {.timestamps = true};
        cn_recognizer rec = fake_asr_recognizer(&f, 40);
        cn_pipeline_params p = params();
        p.max_batch = 3; /* many small sets of batches: many hand-over points */
        p.max_batch_s = 60;
        p.sequential = mode == 0;
        done_log log = {0};
        p.on_transcript = on_done;
        p.transcript_user = &log;
        cn_pcm_source src[3] = {fake_audio_source(&a[0], "a.wav"), fake_audio_source(&a[1], "b.wav"),
                                fake_audio_source(&a[2], "c.wav")};
        canary_transcript t[3];
        cn_error err;
        assert_int_equal(cn_pipeline_run(&rec, &p, src, 3, t, &err), CANARY_OK);
        assert_int_equal(log.n, 3);
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(log.order[i], i);
            assert_string_equal(log.text[i], t[i].text);
            free(log.text[i]);
            check_transcript(&t[i], &a[i], true);
            assert_int_equal(canary_transcript_render(&t[i], CANARY_FORMAT_VERBOSE_JSON, &docs[mode][i]), CANARY_OK);
            canary_transcript_free(&t[i]);
            fake_audio_free(&a[i]);
        }
        calls[mode] = f.calls;
        chunks[mode] = f.chunks;
        max_batch[mode] = f.max_batch_seen;
    }
    assert_int_equal(calls[0], calls[1]);
    assert_int_equal(chunks[0], chunks[1]);
    assert_int_equal(max_batch[0], max_batch[1]);
    assert_true(calls[0] > 10);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(docs[0][i], docs[1][i]);
        free(docs[0][i]);
        free(docs[1][i]);
    }
}

/* A source that requests a cancel at its k-th read (on the reader thread) and counts reads after. */
typedef struct cancel_src {
    cn_pcm_source inner;
    canary_cancel *cancel;
    size_t reads, cancel_at;
    atomic_size_t reads_after;
} cancel_src;

static cn_status cancel_src_read(void *self, float *buf, size_t max, size_t *got, cn_error *err) {
    cancel_src *c = self;
    if (canary_cancel_requested(c->cancel))
        atomic_fetch_add(&c->reads_after, 1);
    if (++c->reads == c->cancel_at)
        canary_cancel_request(c->cancel);
    return c->inner.read(c->inner.self, buf, max, got, err);
}

typedef struct counting_rec {
    cn_recognizer inner;
    const canary_cancel *cancel;
    atomic_size_t started_after_cancel;
} counting_rec;

static cn_status counting_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                     cn_rec_result *out, cn_error *err) {
    counting_rec *c = self;
    if (canary_cancel_requested(c->cancel))
        atomic_fetch_add(&c->started_after_cancel, 1);
    return c->inner.transcribe(c->inner.self, pcm, lens, n, out, err);
}

/* A cancel requested while the reader runs ahead: no batch starts after it, the reader reads
 * nothing more, and the run ends with CANARY_ECANCELED. */
static void test_cancel_while_reading_ahead(void **state) {
    for (size_t at = 1; at <= 1201; at += 300) {
        fake_audio a;
        fake_audio_init(&a, 61, 900, true, false);
        canary_cancel *c = canary_cancel_create();
        fake_asr f = {.timestamps = true};
        counting_rec cr = {.inner = fake_asr_recognizer(&f, 40), .cancel = c};
        atomic_init(&cr.started_after_cancel, 0);
        cn_recognizer rec = cr.inner;
        rec.self = &cr;
        rec.transcribe = counting_transcribe;
        cancel_src cs = {.inner = fake_audio_source(&a, "long.wav"), .cancel = c, .cancel_at = at};
        atomic_init(&cs.reads_after, 0);
        cn_pcm_source src = {.self = &cs, .name = "long.wav", .read = cancel_src_read};
        cn_pipeline_params p = params();
        p.cancel = c;
        canary_transcript t;
        cn_error err;
        assert_int_equal(cn_pipeline_run(&rec, &p, &src, 1, &t, &err), CANARY_ECANCELED);
        assert_non_null(strstr(err.msg, "canceled"));
        assert_int_equal(atomic_load(&cs.reads_after), 0);
        assert_int_equal(atomic_load(&cr.started_after_cancel), 0);
        assert_int_equal(cs.reads, at);
        canary_cancel_destroy(c);
        fake_audio_free(&a);
    }
}

static void test_one_hour(void **state) {
    /* an hour with monologues and minutes-long silences, streamed through in one run */
    fake_audio a;
    fake_audio_init(&a, 41, 3600, true, true);
    run_one(&a, true, 1.0);
    printf("# one hour: %zu words\n", a.n_words);
    fake_audio_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utterances_with_timestamps),
        cmocka_unit_test(test_monologues_hard_cuts_deduplicated),
        cmocka_unit_test(test_silence_gives_no_text),
        cmocka_unit_test(test_many_inputs_one_workload_and_progress),
        cmocka_unit_test(test_cancel_between_batches),
        cmocka_unit_test(test_errors_propagate),
        cmocka_unit_test(test_overlap_equals_sequential),
        cmocka_unit_test(test_cancel_while_reading_ahead),
        cmocka_unit_test(test_one_hour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

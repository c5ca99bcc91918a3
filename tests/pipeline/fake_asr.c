#include "fake_asr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SR 16000

static uint64_t next_u64(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}
static double uni(uint64_t *s) { return (double)next_u64(s) / 9007199254740992.0; }

static void add_word(fake_audio *a, size_t *cap, int id, double start, double end) {
    if (a->n_words == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        a->words = realloc(a->words, *cap * sizeof *a->words);
        if (!a->words)
            abort(); /* test code */
    }
    a->words[a->n_words++] = (fake_word){id, start, end};
}

void fake_audio_init(fake_audio *a, uint64_t seed, double seconds, bool monologues, bool long_silences) {
    memset(a, 0, sizeof *a);
    a->rng = seed;
    uint64_t r = seed ^ 0x9E3779B97F4A7C15ULL;
    size_t cap = 0;
    double t = 0.3 + uni(&r);
    size_t k = 0;
    while (t < seconds - 1.0) {
        double utt_len = monologues && uni(&r) < 0.08 ? 50 + 40 * uni(&r) : 0;
        int n = utt_len > 0 ? 100000 : 3 + (int)(uni(&r) * 10);
        double utt_start = t;
        for (int i = 0; i < n && t < seconds - 1.0; i++) {
            if (utt_len > 0 && t - utt_start > utt_len)
                break;
            double d = 0.15 + 0.35 * uni(&r);
            if (t + d > seconds - 0.5)
                break;
            /* ids never repeat within 40 consecutive words, so seams cannot match by accident */
            add_word(a, &cap, (int)((k * 7) % 40), t, t + d);
            k++;
            t += d + 0.08 + 0.17 * uni(&r);
        }
        t += long_silences && uni(&r) < 0.03 ? 60 + 120 * uni(&r) : 0.6 + 4.4 * uni(&r);
    }
    a->duration = seconds;
}

void fake_audio_init_silence(fake_audio *a, uint64_t seed, double seconds) {
    memset(a, 0, sizeof *a);
    a->rng = seed;
    a->duration = seconds;
}

void fake_audio_free(fake_audio *a) { free(a->words); }

static cn_status fake_read(void *self, float *buf, size_t max, size_t *got, cn_error *err) {
    fake_audio *a = self;
    int64_t total = (int64_t)(a->duration * SR);
    size_t n = 0;
    while (n < max && a->pos < total) {
        double t = (double)a->pos / SR;
        while (a->next_word < a->n_words && a->words[a->next_word].end <= t)
            a->next_word++;
        /* white noise at about -60 dBFS (uniform: cheaper than Gaussian, as good for a VAD) */
        double v = 0.0017 * (2 * uni(&a->rng) - 1);
        if (a->next_word < a->n_words && a->words[a->next_word].start <= t) {
            const fake_word *w = &a->words[a->next_word];
            double f = 400 + 50 * w->id;
            v += 0.3 * sin(2 * M_PI * f * (t - w->start));
        }
        buf[n++] = (float)v;
        a->pos++;
    }
    *got = n;
    return CANARY_OK;
}

cn_pcm_source fake_audio_source(fake_audio *a, const char *name) {
    return (cn_pcm_source){.self = a, .name = name, .expected_s = a->duration, .read = fake_read};
}

static bool push_token(cn_rec_result *r, size_t *cap, int id, const char *text, int s, int e) {
    if (r->n_tokens == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        cn_rec_token *t = realloc(r->tokens, *cap * sizeof *t);
        if (!t)
            return false;
        r->tokens = t;
    }
    char *copy = strdup(text);
    if (!copy)
        return false;
    r->tokens[r->n_tokens++] = (cn_rec_token){id, -0.25f, copy, s, e};
    return true;
}

static cn_status recognize_chunk(const fake_asr *f, const float *x, size_t n, cn_rec_result *out, cn_error *err) {
    const size_t hop = 160;
    size_t cap = 0;
    size_t nf = n / hop;
    size_t i = 0;
    while (i < nf) {
        double e = 0;
        for (size_t k = 0; k < hop; k++)
            e += (double)x[i * hop + k] * x[i * hop + k];
        if (sqrt(e / hop) < 0.02) {
            i++;
            continue;
        }
        size_t j = i;
        for (; j < nf; j++) {
            double ej = 0;
            for (size_t k = 0; k < hop; k++)
                ej += (double)x[j * hop + k] * x[j * hop + k];
            if (sqrt(ej / hop) < 0.02)
                break;
        }
        if (j - i >= 3) {
            size_t a = i * hop, b = j * hop, zc = 0;
            /* count sign changes of the tone only: samples below 0.02 (noise, edges) keep the last sign */
            int last = 0;
            size_t first_k = 0, last_k = 0;
            for (size_t k = a; k < b; k++) {
                int sgn = x[k] > 0.02f ? 1 : x[k] < -0.02f ? -1 : 0;
                if (sgn && sgn != last) {
                    if (last) {
                        zc++;
                        last_k = k;
                    } else {
                        first_k = k;
                    }
                    last = sgn;
                }
            }
            double freq = last_k > first_k ? (double)zc / (2.0 * (double)(last_k - first_k) / SR) : 0;
            int id = (int)lround((freq - 400) / 50);
            if (id >= 0 && id < 40) {
                int sf = f->timestamps ? (int)floor((double)a / SR / 0.08) : -1;
                int ef = f->timestamps ? (int)ceil((double)b / SR / 0.08) : -1;
                char digits[16];
                snprintf(digits, sizeof digits, "%d", id);
                if (!push_token(out, &cap, 1, " w", sf, ef) || !push_token(out, &cap, 100 + id, digits, sf, ef)) {
                    cn_rec_result_free(out);
                    return cn_error_set(err, CANARY_ENOMEM, "fake recognizer: out of memory");
                }
            }
        }
        i = j;
    }
    return CANARY_OK;
}

static cn_status fake_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                 cn_rec_result *out, cn_error *err) {
    fake_asr *f = self;
    f->calls++;
    if (f->cancel_on_call && f->calls == f->cancel_on_call)
        canary_cancel_request(f->cancel);
    if (f->fail_on_call && (f->calls == f->fail_on_call || (f->fail_from_then_on && f->calls > f->fail_on_call)))
        return cn_error_set(err, f->fail_status ? f->fail_status : CANARY_EDEVICE,
                            "fake recognizer: failing call %zu as asked", f->calls);
    size_t longest = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > longest)
            longest = lens[i];
        cn_status st = recognize_chunk(f, pcm[i], lens[i], &out[i], err);
        if (st != CANARY_OK) {
            for (size_t k = 0; k < i; k++)
                cn_rec_result_free(&out[k]);
            return st;
        }
    }
    f->chunks += n;
    if (n > f->max_batch_seen)
        f->max_batch_seen = n;
    if ((int64_t)(n * longest) > f->max_cost_seen)
        f->max_cost_seen = (int64_t)(n * longest);
    if (longest > f->max_chunk_seen)
        f->max_chunk_seen = longest;
    return CANARY_OK;
}

cn_recognizer fake_asr_recognizer(fake_asr *f, double max_chunk_s) {
    return (cn_recognizer){.self = f, .sample_rate = SR, .max_chunk_s = max_chunk_s, .frame_s = 0.08,
                           .transcribe = fake_transcribe};
}

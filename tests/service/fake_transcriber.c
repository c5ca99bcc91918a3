/* A deterministic stand-in for the engine, for service tests only. It reads WAV headers (any
 * rate, channels, bit depth), splits the audio into chunks of CANARY_FAKE_CHUNK_SECONDS (default
 * 1 s), "transcribes" each in CANARY_FAKE_CHUNK_MS (default 10 ms) and answers
 * "Chunk <i> of <n>." per chunk, so every output format has exactly predictable content.
 * A WAV at 11025 Hz fails at its second chunk (a decode error in the middle of a job). */
#include "fake_transcriber.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/strbuf.h"

struct cn_transcription {
    double duration, chunk_s;
    int n, done;
    int rate;
    cn_transcribe_options opts;
    cn_segment *segs;
};

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static cn_status parse_wav(const char *path, double *duration, int *rate_out, cn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_error_errno(err, 2, "cannot open %s", path);
    unsigned char h[12];
    if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) {
        fclose(f);
        return cn_error_set(err, CANARY_EFORMAT, "not a WAV file (the test transcriber reads only RIFF/WAVE)");
    }
    uint32_t rate = 0, block = 0;
    for (;;) {
        unsigned char ch[8];
        if (fread(ch, 1, 8, f) != 8)
            break;
        uint32_t size = le32(ch + 4);
        if (!memcmp(ch, "fmt ", 4)) {
            unsigned char fmt[16];
            if (size < 16 || fread(fmt, 1, 16, f) != 16)
                break;
            rate = le32(fmt + 4);
            block = le16(fmt + 12);
            if (fseek(f, (long)(size - 16 + (size & 1)), SEEK_CUR))
                break;
        } else if (!memcmp(ch, "data", 4)) {
            fclose(f);
            if (!rate || !block)
                return cn_error_set(err, CANARY_EFORMAT, "WAV data before a valid fmt chunk");
            *duration = (double)size / ((double)rate * block);
            *rate_out = (int)rate;
            return CANARY_OK;
        } else if (fseek(f, (long)size + (size & 1), SEEK_CUR)) {
            break;
        }
    }
    fclose(f);
    return cn_error_set(err, CANARY_EFORMAT, "truncated WAV file: no data chunk");
}

static cn_status fake_probe(cn_transcriber *t, const char *path, double *d, cn_error *err) {
    int rate;
    return parse_wav(path, d, &rate, err);
}

static double env_num(const char *name, double def) {
    const char *v = getenv(name);
    return v && *v ? atof(v) : def;
}

static cn_status fake_open(cn_transcriber *t, const char *path, const cn_transcribe_options *o, cn_transcription **out,
                          int *n_chunks, cn_error *err) {
    cn_transcription *s = calloc(1, sizeof *s);
    if (!s)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    cn_status st = parse_wav(path, &s->duration, &s->rate, err);
    if (st != CANARY_OK) {
        free(s);
        return st;
    }
    s->chunk_s = env_num("CANARY_FAKE_CHUNK_SECONDS", 1.0);
    s->n = (int)ceil(s->duration / s->chunk_s - 1e-9);
    if (s->n < 1)
        s->n = 1;
    s->opts = *o;
    s->opts.prompt = NULL;
    s->segs = calloc((size_t)s->n, sizeof *s->segs);
    if (!s->segs) {
        free(s);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    *out = s;
    *n_chunks = s->n;
    return CANARY_OK;
}

static cn_status fake_step(cn_transcriber *t, cn_transcription *s, const atomic_bool *cancel, cn_error *err) {
    double ms = env_num("CANARY_FAKE_CHUNK_MS", 10);
    for (double slept = 0; slept < ms; slept += 5) {
        if (atomic_load(cancel))
            return cn_error_set(err, CANARY_ECANCELED, "canceled");
        usleep((useconds_t)(fmin(5, ms - slept) * 1000));
    }
    if (s->rate == 11025 && s->done == 1)
        return cn_error_set(err, CANARY_EFORMAT, "corrupt audio at %.1f s (test transcriber)", s->done * s->chunk_s);
    int i = s->done++;
    cn_segment *g = &s->segs[i];
    g->start = i * s->chunk_s;
    g->end = fmin(s->duration, (i + 1) * s->chunk_s);
    char text[128];
    if (s->opts.task == CN_TASK_TRANSLATE)
        snprintf(text, sizeof text, " Chunk %d of %d (%s).", i + 1, s->n, s->opts.target_language);
    else
        snprintf(text, sizeof text, " Chunk %d of %d.", i + 1, s->n);
    g->text = strdup(text);
    return g->text ? CANARY_OK : cn_error_set(err, CANARY_ENOMEM, "out of memory");
}

static cn_status fake_finish(cn_transcriber *t, cn_transcription *s, cn_transcript *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    cn_strbuf sb;
    cn_sb_init(&sb);
    out->segments = calloc((size_t)s->n, sizeof *out->segments);
    out->words = calloc((size_t)s->n * 4, sizeof *out->words);
    if (!out->segments || !out->words) {
        free(out->segments);
        free(out->words);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    for (int i = 0; i < s->n; i++) {
        cn_sb_puts(&sb, s->segs[i].text + (i == 0)); /* no leading space on the first */
        out->segments[i] = (cn_segment){s->segs[i].start, s->segs[i].end, strdup(s->segs[i].text)};
        out->n_segments++;
        /* words: the segment's words spread evenly over it */
        char *copy = strdup(s->segs[i].text), *save = NULL;
        int nw = 0;
        char *words[4];
        for (char *w = strtok_r(copy, " ", &save); w && nw < 4; w = strtok_r(NULL, " ", &save))
            words[nw++] = w;
        double span = (s->segs[i].end - s->segs[i].start) / (nw ? nw : 1);
        for (int k = 0; k < nw; k++)
            out->words[out->n_words++] = (cn_word){s->segs[i].start + k * span, s->segs[i].start + (k + 1) * span,
                                                   strdup(words[k])};
        free(copy);
    }
    out->text = cn_sb_steal(&sb);
    snprintf(out->language, sizeof out->language, "%s",
             s->opts.task == CN_TASK_TRANSLATE ? s->opts.target_language : s->opts.language);
    out->task = s->opts.task;
    out->duration = s->duration;
    return CANARY_OK;
}

static void fake_close(cn_transcriber *t, cn_transcription *s) {
    for (int i = 0; i < s->n; i++)
        free(s->segs[i].text);
    free(s->segs);
    free(s);
}

static void fake_destroy(cn_transcriber *t) { free(t); }

static const cn_transcriber_ops fake_ops = {fake_probe, fake_open, fake_step, fake_finish, fake_close, fake_destroy};

cn_status cn_fake_transcriber_create(cn_transcriber **out, cn_error *err) {
    cn_transcriber *t = calloc(1, sizeof *t);
    if (!t)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    t->ops = &fake_ops;
    t->ready = true;
    snprintf(t->model_name, sizeof t->model_name, "test/fake-canary");
    snprintf(t->model_info_json, sizeof t->model_info_json, "{\"kind\":\"test double\",\"languages\":[\"en\",\"de\"]}");
    snprintf(t->device, sizeof t->device, "cpu");
    *out = t;
    return CANARY_OK;
}

/* A deterministic stand-in for the engine, for service tests only. It reads WAV headers (any
 * rate, channels, bit depth), splits the audio into chunks of CANARY_FAKE_CHUNK_SECONDS (default
 * 1 s) and answers "Chunk <i> of <n>." per chunk, so every output format has exactly predictable
 * content. A WAV at 11025 Hz fails at its second chunk (a decode error in the middle of a job).
 *
 * Simulated devices: CANARY_FAKE_DEVICES is a comma-separated list of
 *   name/workers/max_batch/ms_per_batch[/budget_mb[/item_mb[/fail_after]]]
 * e.g. "fast/1/4/20,slow/1/4/200". A batch takes ms_per_batch whatever its size (as on a GPU);
 * a device with fail_after = N fails (CANARY_EDEVICE) from its (N+1)-th batch on. Default: one
 * "cpu" device, 1 worker, batches of 1, CANARY_FAKE_CHUNK_MS (default 10) per batch.
 * CANARY_FAKE_BATCH_LOG=FILE appends one line per batch run:
 *   <device> <worker> <n> <job>:<chunk> ...   (job = the audio file's name)
 * so tests can check the batch compositions. */
#include "fake_transcriber.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include "base/strbuf.h"

typedef struct fake_chunk {
    cn_job_chunk base;
    int index;
    bool ran;            /* run_batch filled it */
} fake_chunk;

struct cn_transcription {
    double duration, chunk_s;
    int n, done, prepared;
    int rate;
    char name[128];
    cn_transcribe_options opts;
    cn_segment *segs;
    fake_chunk *chunks;  /* one per chunk */
};

typedef struct fake_device {
    double ms;
    int fail_after;      /* < 0: never */
    int batches;         /* run so far (under fake.mu) */
} fake_device;

typedef struct fake {
    pthread_mutex_t mu;
    fake_device dev[CN_TRANSCRIBER_MAX_DEVICES];
    FILE *log;
} fake;

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
    s->chunks = calloc((size_t)s->n, sizeof *s->chunks);
    if (!s->segs || !s->chunks) {
        free(s->segs);
        free(s->chunks);
        free(s);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    const char *base = strrchr(path, '/');
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : path);
    char key[96];
    snprintf(key, sizeof key, "%s|%s|%s|%d", o->task == CN_TASK_TRANSLATE ? "translate" : "transcribe", o->language,
             o->target_language, o->pnc);
    for (int i = 0; i < s->n; i++) {
        s->chunks[i].base.owner = s;
        s->chunks[i].base.seconds = fmin(s->chunk_s, s->duration - i * s->chunk_s);
        snprintf(s->chunks[i].base.batch_key, sizeof s->chunks[i].base.batch_key, "%s", key);
        s->chunks[i].index = i;
    }
    *out = s;
    *n_chunks = s->n;
    return CANARY_OK;
}

/* "Decoding": hands out the next chunks; the 11025 Hz file is corrupt at its second chunk. */
static cn_status fake_prepare(cn_transcriber *t, cn_transcription *s, const atomic_bool *cancel, int max,
                              cn_job_chunk **chunks, int *n, cn_error *err) {
    *n = 0;
    if (atomic_load(cancel))
        return cn_error_set(err, CANARY_ECANCELED, "canceled");
    while (s->prepared < s->n && *n < max) {
        if (s->rate == 11025 && s->prepared == 1)
            return *n ? CANARY_OK
                      : cn_error_set(err, CANARY_EFORMAT, "corrupt audio at %.1f s (test transcriber)", s->chunk_s);
        chunks[(*n)++] = &s->chunks[s->prepared++].base;
    }
    return CANARY_OK;
}

static cn_status fake_run_batch(cn_transcriber *t, int device, int worker, cn_job_chunk *const *chunks, int n,
                                cn_error *err) {
    fake *f = t->impl;
    fake_device *d = &f->dev[device];
    pthread_mutex_lock(&f->mu);
    int k = d->batches++;
    if (f->log) {
        fprintf(f->log, "%s %d %d", t->devices[device].name, worker, n);
        for (int i = 0; i < n; i++)
            fprintf(f->log, " %s:%d", chunks[i]->owner->name, ((fake_chunk *)chunks[i])->index);
        fputc('\n', f->log);
        fflush(f->log);
    }
    pthread_mutex_unlock(&f->mu);
    usleep((useconds_t)(d->ms * 1000));
    if (n > t->devices[device].max_batch)
        return cn_error_set(err, CANARY_EINVAL, "%d chunks in a batch on %s (max_batch %d)", n,
                            t->devices[device].name, t->devices[device].max_batch);
    if (d->fail_after >= 0 && k >= d->fail_after)
        return cn_error_set(err, CANARY_EDEVICE, "simulated failure of %s", t->devices[device].name);
    for (int i = 0; i < n; i++)
        ((fake_chunk *)chunks[i])->ran = true;
    return CANARY_OK;
}

static cn_status fake_complete(cn_transcriber *t, cn_transcription *s, cn_job_chunk *c, cn_step_progress *pr,
                               cn_error *err) {
    fake_chunk *fc = (fake_chunk *)c;
    if (!fc->ran || fc->index != s->done)
        return cn_error_set(err, CANARY_EINVAL, "chunk %d completed out of order or not run (next %d)", fc->index,
                            s->done);
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
    pr->chunks_done = s->done;
    pr->chunks_total = s->n;
    pr->finished = s->done == s->n;
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
        out->segments[i] = (cn_segment){.start = s->segs[i].start, .end = s->segs[i].end, .text = strdup(s->segs[i].text)};
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
    free(s->chunks);
    free(s);
}

static void fake_destroy(cn_transcriber *t) {
    fake *f = t->impl;
    if (f) {
        if (f->log)
            fclose(f->log);
        pthread_mutex_destroy(&f->mu);
        free(f);
    }
    free(t);
}

static const cn_transcriber_ops fake_ops = {fake_probe,    fake_open,   fake_prepare, fake_run_batch,
                                            fake_complete, fake_finish, fake_close,   fake_destroy};

/* CANARY_FAKE_DEVICES (see the top of this file). */
static cn_status parse_devices(cn_transcriber *t, fake *f, cn_error *err) {
    const char *spec = getenv("CANARY_FAKE_DEVICES");
    char def[64];
    if (!spec || !*spec) {
        snprintf(def, sizeof def, "cpu/1/1/%g", env_num("CANARY_FAKE_CHUNK_MS", 10));
        spec = def;
    }
    char *copy = strdup(spec), *save = NULL;
    if (!copy)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    cn_status st = CANARY_OK;
    for (char *e = strtok_r(copy, ",", &save); e && st == CANARY_OK; e = strtok_r(NULL, ",", &save)) {
        if (t->n_devices == CN_TRANSCRIBER_MAX_DEVICES) {
            st = cn_error_set(err, CANARY_EINVAL, "CANARY_FAKE_DEVICES: more than %d devices", CN_TRANSCRIBER_MAX_DEVICES);
            break;
        }
        cn_transcriber_device *d = &t->devices[t->n_devices];
        fake_device *fd = &f->dev[t->n_devices];
        char name[32];
        double ms = 10, budget_mb = 0, item_mb = 0;
        int fail_after = -1;
        int got = sscanf(e, "%31[^/]/%d/%d/%lf/%lf/%lf/%d", name, &d->workers, &d->max_batch, &ms, &budget_mb, &item_mb,
                         &fail_after);
        if (got < 4 || d->workers < 1 || d->max_batch < 1) {
            st = cn_error_set(err, CANARY_EINVAL,
                              "CANARY_FAKE_DEVICES entry '%s': want name/workers/max_batch/ms[/budget_mb[/item_mb[/fail_after]]]", e);
            break;
        }
        snprintf(d->name, sizeof d->name, "%s", name);
        d->mem_budget = (uint64_t)(budget_mb * 1048576.0);
        d->item_bytes = (uint64_t)(item_mb * 1048576.0);
        fd->ms = ms;
        fd->fail_after = fail_after;
        t->n_devices++;
    }
    free(copy);
    if (st == CANARY_OK) {
        size_t len = 0;
        for (int i = 0; i < t->n_devices; i++)
            len += (size_t)snprintf(t->device + len, sizeof t->device - len, "%s%s", i ? "," : "", t->devices[i].name);
    }
    return st;
}

cn_status cn_fake_transcriber_create(cn_transcriber **out, cn_error *err) {
    cn_transcriber *t = calloc(1, sizeof *t);
    if (!t)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    fake *f = calloc(1, sizeof *f);
    if (!f) {
        free(t);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&f->mu, NULL);
    t->impl = f;
    t->ops = &fake_ops;
    t->ready = true;
    snprintf(t->model_name, sizeof t->model_name, "test/fake-canary");
    snprintf(t->model_info_json, sizeof t->model_info_json, "{\"kind\":\"test double\",\"languages\":[\"en\",\"de\"]}");
    const char *log = getenv("CANARY_FAKE_BATCH_LOG");
    if (log && *log && !(f->log = fopen(log, "a"))) {
        fake_destroy(t);
        return cn_error_errno(err, errno, "cannot open CANARY_FAKE_BATCH_LOG %s", log);
    }
    cn_status st = parse_devices(t, f, err);
    if (st != CANARY_OK) {
        fake_destroy(t);
        return st;
    }
    *out = t;
    return CANARY_OK;
}

#include "pipeline/vad.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WIN 400         /* 25 ms at 16 kHz */
#define HOP 160         /* 10 ms */
#define NFFT 512
#define BLOCK 50        /* frames per noise-floor block (0.5 s) */
#define BAND_LO 8       /* 8 * 31.25 Hz = 250 Hz */
#define BAND_HI 128     /* 4000 Hz */
#define DIGITAL_SILENCE_DB (-90.0)
#define MAX_BLOCKS 256
#define SMOOTH 5
#define FRAME_OFF ((WIN - HOP) / 2)

/* FFTW's planner is not thread-safe; VADs may be created from several threads (server jobs). */
static pthread_mutex_t fftw_plan_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct frame_info {
    float db;
    float flatness;
} frame_info;

struct cn_vad {
    cn_vad_params p;
    int64_t samples_fed;
    bool finished;

    /* frame assembly: the last WIN samples, `fill` of them valid */
    float win_buf[WIN];
    size_t fill;
    float hann[WIN];
    float *fft_in;
    fftwf_complex *fft_out;
    fftwf_plan plan;

    /* frames analysed but not yet decided (waiting for the look-ahead), oldest first */
    frame_info *pending;
    size_t n_pending, cap_pending;
    int64_t first_pending; /* frame index of pending[0] */
    int64_t n_frames;      /* frames analysed so far */

    /* per-block minimum energy over non-silent frames; ring of the last n_blocks_keep blocks */
    float block_min[MAX_BLOCKS];
    int64_t block_of[MAX_BLOCKS]; /* which block index each slot holds (-1 empty) */
    float cur_block_min;
    int64_t cur_block;
    int floor_blocks_back, lookahead_blocks;

    /* run state over decided frames */
    bool in_run;
    int64_t run_start;   /* frame index */
    int64_t last_speech; /* frame index */
    int64_t speech_frames;
    bool run_is_continuation; /* started by a max_region cut: no leading pad */
    int64_t next_decide;      /* next frame index to decide */
    /* raw per-frame decisions of the last SMOOTH frames: a frame is speech when most of the
     * SMOOTH frames centred on it are (removes single-frame clicks and dropouts) */
    uint8_t raw[5];
    int64_t n_raw;

    /* final regions not yet taken */
    cn_span *regions;
    size_t n_regions, cap_regions, head;
    int64_t min_speech_frames, min_silence_frames, pad, max_region_frames;
    int64_t tiled; /* VAD off: samples already emitted as regions */
};

void cn_vad_params_default(cn_vad_params *p) {
    p->sample_rate = 16000;
    p->threshold_db = 9.0;
    p->abs_floor_dbfs = -65.0;
    p->flatness_max = 0.45;
    p->min_speech_s = 0.1;
    p->min_silence_s = 0.4;
    p->pad_s = 0.2;
    p->max_region_s = 30.0;
    p->floor_window_s = 3.0;
    p->lookahead_s = 1.0;
    p->disabled = false;
}

cn_status cn_vad_create(const cn_vad_params *p, cn_vad **out, cn_error *err) {
    *out = NULL;
    if (p->sample_rate != 16000)
        return cn_error_set(err, CANARY_EINVAL, "vad: sample rate %d Hz is not supported (only 16000)",
                            p->sample_rate);
    if (!(p->min_silence_s > 0 && p->min_silence_s <= 10))
        return cn_error_set(err, CANARY_EINVAL, "vad: min_silence_s %g is not in (0, 10]", p->min_silence_s);
    if (!(p->pad_s >= 0 && p->pad_s <= p->min_silence_s / 2))
        return cn_error_set(err, CANARY_EINVAL, "vad: pad_s %g must be in [0, min_silence_s/2 = %g]", p->pad_s,
                            p->min_silence_s / 2);
    if (!(p->min_speech_s >= 0 && p->min_speech_s <= 10))
        return cn_error_set(err, CANARY_EINVAL, "vad: min_speech_s %g is not in [0, 10]", p->min_speech_s);
    if (!(p->max_region_s >= 1 && p->max_region_s <= 3600))
        return cn_error_set(err, CANARY_EINVAL, "vad: max_region_s %g is not in [1, 3600]", p->max_region_s);
    if (!(p->floor_window_s >= 0.5 && p->lookahead_s >= 0 &&
          (p->floor_window_s + p->lookahead_s) * 2 + 2 < MAX_BLOCKS))
        return cn_error_set(err, CANARY_EINVAL, "vad: floor_window_s %g + lookahead_s %g must be in [0.5, %d] s",
                            p->floor_window_s, p->lookahead_s, MAX_BLOCKS / 2 - 2);
    if (!isfinite(p->threshold_db) || !isfinite(p->abs_floor_dbfs) || !(p->flatness_max > 0))
        return cn_error_set(err, CANARY_EINVAL, "vad: threshold_db, abs_floor_dbfs and flatness_max must be finite");

    cn_vad *v = calloc(1, sizeof *v);
    if (!v)
        return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
    v->p = *p;
    v->fft_in = fftwf_alloc_real(NFFT);
    v->fft_out = fftwf_alloc_complex(NFFT / 2 + 1);
    if (!v->fft_in || !v->fft_out) {
        cn_vad_destroy(v);
        return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
    }
    /* FFTW_ESTIMATE keeps planning quick and deterministic */
    pthread_mutex_lock(&fftw_plan_lock);
    v->plan = fftwf_plan_dft_r2c_1d(NFFT, v->fft_in, v->fft_out, FFTW_ESTIMATE);
    pthread_mutex_unlock(&fftw_plan_lock);
    if (!v->plan) {
        cn_vad_destroy(v);
        return cn_error_set(err, CANARY_EINTERNAL, "vad: FFTW could not plan a %d-point transform", NFFT);
    }
    for (int i = 0; i < WIN; i++)
        v->hann[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / WIN));
    for (int i = 0; i < MAX_BLOCKS; i++)
        v->block_of[i] = -1;
    v->cur_block_min = INFINITY;
    v->floor_blocks_back = (int)ceil(p->floor_window_s / (BLOCK * 0.01));
    v->lookahead_blocks = (int)ceil(p->lookahead_s / (BLOCK * 0.01));
    v->min_speech_frames = (int64_t)llround(p->min_speech_s * 100);
    v->min_silence_frames = (int64_t)llround(p->min_silence_s * 100);
    if (v->min_silence_frames < 1)
        v->min_silence_frames = 1;
    v->max_region_frames = (int64_t)llround(p->max_region_s * 100);
    v->pad = (int64_t)llround(p->pad_s * p->sample_rate);
    *out = v;
    return CANARY_OK;
}

void cn_vad_destroy(cn_vad *v) {
    if (!v)
        return;
    if (v->plan) {
        pthread_mutex_lock(&fftw_plan_lock);
        fftwf_destroy_plan(v->plan);
        pthread_mutex_unlock(&fftw_plan_lock);
    }
    fftwf_free(v->fft_in);
    fftwf_free(v->fft_out);
    free(v->pending);
    free(v->regions);
    free(v);
}

static bool push_region(cn_vad *v, int64_t start, int64_t end) {
    if (v->head > 0 && v->head == v->n_regions) {
        v->head = v->n_regions = 0;
    }
    if (v->n_regions == v->cap_regions) {
        if (v->head > 0) { /* compact before growing */
            memmove(v->regions, v->regions + v->head, (v->n_regions - v->head) * sizeof *v->regions);
            v->n_regions -= v->head;
            v->head = 0;
        }
        if (v->n_regions == v->cap_regions) {
            size_t cap = v->cap_regions ? v->cap_regions * 2 : 16;
            cn_span *r = realloc(v->regions, cap * sizeof *r);
            if (!r)
                return false;
            v->regions = r;
            v->cap_regions = cap;
        }
    }
    v->regions[v->n_regions++] = (cn_span){start, end};
    return true;
}

/* Emits the current run as a region; `continues` = cut by max_region (no trailing pad). */
static bool emit_run(cn_vad *v, bool continues) {
    /* frame t stands for the 10 ms at the centre of its window: [t*HOP + OFF, (t+1)*HOP + OFF) */
    int64_t s = v->run_start * HOP + FRAME_OFF;
    int64_t e = (v->last_speech + 1) * HOP + FRAME_OFF;
    if (!v->run_is_continuation)
        s = s > v->pad ? s - v->pad : 0;
    if (!continues)
        e += v->pad;
    return push_region(v, s, e);
}

static bool decide_frame(cn_vad *v, int64_t t, bool speech) {
    v->next_decide = t + 1;
    if (speech) {
        if (!v->in_run) {
            v->in_run = true;
            v->run_start = t;
            v->speech_frames = 0;
            v->run_is_continuation = false;
        }
        v->last_speech = t;
        v->speech_frames++;
        if (t + 1 - v->run_start >= v->max_region_frames) {
            /* a long run: hand out what we have so the caller can proceed; the next piece starts
             * exactly here */
            if (!emit_run(v, true))
                return false;
            v->run_start = t + 1;
            v->last_speech = t; /* so a silence right after still closes the run */
            v->speech_frames = v->min_speech_frames; /* the piece belongs to real speech */
            v->run_is_continuation = true;
        }
    } else if (v->in_run && t - v->last_speech >= v->min_silence_frames) {
        v->in_run = false;
        /* a continuation piece without speech of its own still carries the last window and pad */
        if (v->speech_frames >= v->min_speech_frames || v->run_is_continuation)
            return emit_run(v, false);
    }
    return true;
}

static float floor_for_block(const cn_vad *v, int64_t block, int64_t newest_block) {
    /* the past window; at the very start, where there is no past yet, the first look-ahead
     * blocks instead (so speech at 0 s is measured against the room, not against itself) */
    int64_t lo = block - v->floor_blocks_back, hi = block;
    if (block < v->lookahead_blocks)
        hi = v->lookahead_blocks;
    if (hi > newest_block)
        hi = newest_block;
    float m = INFINITY;
    for (int64_t b = lo < 0 ? 0 : lo; b <= hi; b++) {
        int slot = (int)(b % MAX_BLOCKS);
        if (v->block_of[slot] == b && v->block_min[slot] < m)
            m = v->block_min[slot];
    }
    return m;
}

/* Majority over frames t-2..t+2 (frames outside the audio count as silence). */
static bool smoothed(const cn_vad *v, int64_t t) {
    int votes = 0;
    for (int64_t k = t - SMOOTH / 2; k <= t + SMOOTH / 2; k++)
        if (k >= 0 && k < v->n_raw)
            votes += v->raw[k % SMOOTH];
    return votes > SMOOTH / 2;
}

static bool push_raw(cn_vad *v, bool speech) {
    v->raw[v->n_raw % SMOOTH] = speech;
    v->n_raw++;
    int64_t t = v->n_raw - 1 - SMOOTH / 2;
    return t < 0 || decide_frame(v, t, smoothed(v, t));
}

static bool flush_raw(cn_vad *v) {
    for (int64_t t = v->n_raw - SMOOTH / 2 < 0 ? 0 : v->n_raw - SMOOTH / 2; t < v->n_raw; t++)
        if (!decide_frame(v, t, smoothed(v, t)))
            return false;
    return true;
}

/* Decides pending frames whose look-ahead is complete (all when `flush`). */
static bool decide_ready(cn_vad *v, int64_t newest_complete, bool flush) {
    size_t i = 0;
    for (; i < v->n_pending; i++) {
        int64_t t = v->first_pending + (int64_t)i;
        int64_t b = t / BLOCK;
        /* a frame waits for its own block (the floor includes it) and, at the start, the look-ahead */
        if (!flush && (b > newest_complete || (b < v->lookahead_blocks && v->lookahead_blocks > newest_complete)))
            break;
        float floor_db = floor_for_block(v, b, newest_complete);
        if (!isfinite(floor_db) || floor_db < v->p.abs_floor_dbfs)
            floor_db = (float)v->p.abs_floor_dbfs;
        const frame_info *f = &v->pending[i];
        bool speech = f->db > floor_db + v->p.threshold_db && f->flatness < v->p.flatness_max;
        if (!push_raw(v, speech))
            return false;
    }
    if (i > 0) {
        memmove(v->pending, v->pending + i, (v->n_pending - i) * sizeof *v->pending);
        v->n_pending -= i;
        v->first_pending += (int64_t)i;
    }
    return true;
}

static void close_block(cn_vad *v) {
    int slot = (int)(v->cur_block % MAX_BLOCKS);
    v->block_of[slot] = v->cur_block;
    v->block_min[slot] = v->cur_block_min;
}

static bool analyse_frame(cn_vad *v) {
    for (int i = 0; i < WIN; i++) {
        float x = v->win_buf[i];
        v->fft_in[i] = isfinite(x) ? x * v->hann[i] : 0.0f;
    }
    memset(v->fft_in + WIN, 0, (NFFT - WIN) * sizeof(float));
    fftwf_execute(v->plan);
    /* Parseval: a full-scale sine gives about 0 dB over the band that holds it */
    const double norm = 2.0 / (NFFT * (WIN * 0.375));
    double sum = 0, sum_log = 0, prod = 1;
    for (int k = BAND_LO; k < BAND_HI; k++) {
        double re = v->fft_out[k][0], im = v->fft_out[k][1];
        double pw = (re * re + im * im) * norm + 1e-20;
        sum += pw;
        /* log of products of 8 (>= 1e-160, no underflow): an eighth of the log calls */
        prod *= pw;
        if ((k - BAND_LO) % 8 == 7) {
            sum_log += log(prod);
            prod = 1;
        }
    }
    sum_log += log(prod);
    int nb = BAND_HI - BAND_LO;
    frame_info f;
    f.db = (float)(10.0 * log10(sum + 1e-12));
    f.flatness = (float)(exp(sum_log / nb) / (sum / nb));

    int64_t t = v->n_frames++;
    int64_t b = t / BLOCK;
    if (b != v->cur_block) {
        close_block(v);
        v->cur_block = b;
        v->cur_block_min = INFINITY;
    }
    if (f.db > DIGITAL_SILENCE_DB && f.db < v->cur_block_min)
        v->cur_block_min = f.db;

    if (v->n_pending == v->cap_pending) {
        size_t cap = v->cap_pending ? v->cap_pending * 2 : 256;
        frame_info *p = realloc(v->pending, cap * sizeof *p);
        if (!p)
            return false;
        v->pending = p;
        v->cap_pending = cap;
    }
    v->pending[v->n_pending++] = f;
    if (t % BLOCK == BLOCK - 1) {
        close_block(v);
        return decide_ready(v, v->cur_block, false);
    }
    return true;
}

/* VAD off: regions tile [0, samples_fed) exactly; full max_region pieces are final as soon as fed. */
static bool emit_tiles(cn_vad *v, bool finishing) {
    int64_t piece = (int64_t)(v->p.max_region_s * v->p.sample_rate);
    while (v->samples_fed - v->tiled >= piece || (finishing && v->samples_fed > v->tiled)) {
        int64_t e = v->samples_fed - v->tiled >= piece ? v->tiled + piece : v->samples_fed;
        if (!push_region(v, v->tiled, e))
            return false;
        v->tiled = e;
    }
    return true;
}

cn_status cn_vad_feed(cn_vad *v, const float *pcm, size_t n, cn_error *err) {
    if (v->finished)
        return cn_error_set(err, CANARY_EINVAL, "vad: audio fed after cn_vad_finish");
    if (v->p.disabled) {
        v->samples_fed += (int64_t)n;
        if (!emit_tiles(v, false))
            return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
        return CANARY_OK;
    }
    for (size_t i = 0; i < n; i++) {
        v->win_buf[v->fill++] = pcm[i];
        if (v->fill == WIN) {
            if (!analyse_frame(v))
                return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory after %lld samples",
                                    (long long)v->samples_fed);
            memmove(v->win_buf, v->win_buf + HOP, (WIN - HOP) * sizeof(float));
            v->fill = WIN - HOP;
        }
        v->samples_fed++;
    }
    return CANARY_OK;
}

cn_status cn_vad_finish(cn_vad *v, cn_error *err) {
    if (v->finished)
        return CANARY_OK;
    if (v->p.disabled) {
        if (!emit_tiles(v, true))
            return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
        v->finished = true;
        return CANARY_OK;
    }
    /* the tail shorter than a window: analyse it zero-padded so that speech at the very end counts */
    if (v->fill > WIN - HOP || (v->n_frames == 0 && v->fill > 0)) {
        memset(v->win_buf + v->fill, 0, (WIN - v->fill) * sizeof(float));
        if (!analyse_frame(v))
            return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
    }
    close_block(v);
    if (!decide_ready(v, v->cur_block, true) || !flush_raw(v))
        return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
    if (v->in_run) {
        v->in_run = false;
        bool keep = v->speech_frames >= v->min_speech_frames || v->run_is_continuation;
        if (keep && !emit_run(v, false)) {
            return cn_error_set(err, CANARY_ENOMEM, "vad: out of memory");
        }
    }
    v->finished = true;
    return CANARY_OK;
}

size_t cn_vad_take(cn_vad *v, cn_span *out, size_t max) {
    size_t k = 0;
    while (k < max && v->head < v->n_regions)
        out[k++] = v->regions[v->head++];
    return k;
}

int64_t cn_vad_watermark(const cn_vad *v) {
    if (v->finished)
        return v->samples_fed;
    if (v->p.disabled)
        return v->tiled;
    int64_t frame = v->in_run ? v->run_start : v->next_decide;
    int64_t w = frame * HOP + FRAME_OFF;
    if (!(v->in_run && v->run_is_continuation))
        w -= v->pad;
    return w < 0 ? 0 : w;
}

int64_t cn_vad_samples_fed(const cn_vad *v) { return v->samples_fed; }

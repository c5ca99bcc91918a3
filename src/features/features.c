/* NeMo FilterbankFeatures in C (spec §3).
 *
 * Precision: the windowed frame, FFT, power and mel sums are in double, the log and the output in
 * float. NeMo itself runs float32 (torch.stft), but float32 rounding in the FFT moves log-mel values
 * of quiet bands by up to ~4e-4 after normalization (measured: torch.stft float32 vs a float64 DFT
 * on a chirp), which is beyond the 1e-4 parity bound against the float64 reference. The double FFT
 * keeps us within ~1e-5 of the exact result, i.e. as close to NeMo as NeMo is to itself across
 * BLAS/FFT backends. */
#include "features/features.h"

#include "base/threadpool.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

/* FFTW's planner (and plan destruction) share global state: one lock for every extractor. */
static pthread_mutex_t g_fftw_planner_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_N_FFT 65536
#define MAX_N_MELS 1024
#define NEMO_STD_EPS 1e-5

struct cn_features {
    cn_features_config cfg;   /* filterbank/window pointers cleared: we own copies below */
    int n_bins;               /* n_fft/2 + 1 */
    int win_offset;           /* the window sits centred in the n_fft frame */
    float *fb;                /* [n_mels, n_bins] */
    int *fb_first, *fb_end;   /* per mel row: nonzero weights are in [first, end) */
    double *window_d;         /* the window in double, for the frame product */
    fftw_plan plan;           /* executed with new-array execute on per-call buffers */
};

void cn_features_config_canary(cn_features_config *cfg, cn_feat_semantics semantics) {
    memset(cfg, 0, sizeof *cfg);
    cfg->sample_rate = 16000;
    cfg->n_mels = 128;
    cfg->n_fft = 512;
    cfg->win_length = 400;
    cfg->hop_length = 160;
    cfg->window = "hann";
    cfg->preemph = 0.97;
    cfg->lowfreq = 0;
    cfg->highfreq = 8000;
    cfg->log_zero_guard_value = 0x1p-24;
    cfg->log = true;
    cfg->mag_power = 2.0;
    cfg->mel_norm_slaney = true;
    cfg->normalize = CN_FEAT_NORM_PER_FEATURE;
    cfg->pad_to = 0;
    cfg->pad_value = 0.0f;
    cfg->semantics = semantics;
}

cn_status cn_feat_semantics_parse(const char *s, cn_feat_semantics *out, cn_error *err) {
    if (s && strcmp(s, "nemo-2.4") == 0)
        *out = CN_FEAT_NEMO_2_4;
    else if (s && strcmp(s, "nemo-2.5") == 0)
        *out = CN_FEAT_NEMO_2_5;
    else
        return cn_error_set(err, CANARY_EINVAL,
                            "feature semantics '%s' is unknown: use \"nemo-2.4\" (reflect padding, "
                            "L/hop+1 frames) or \"nemo-2.5\" (zero padding, L/hop frames)",
                            s ? s : "(null)");
    return CANARY_OK;
}

cn_feat_semantics cn_feat_semantics_auto(const char *variant, const char *nemo_version) {
    int major, minor;
    if (nemo_version && sscanf(nemo_version, "%d.%d", &major, &minor) == 2)
        return (major > 2 || (major == 2 && minor >= 5)) ? CN_FEAT_NEMO_2_5 : CN_FEAT_NEMO_2_4;
    if (variant && (strcmp(variant, "canary-1b") == 0 || strcmp(variant, "canary-1b-flash") == 0 ||
                    strcmp(variant, "canary-180m-flash") == 0))
        return CN_FEAT_NEMO_2_4;
    return CN_FEAT_NEMO_2_5;
}

const char *cn_feat_semantics_name(cn_feat_semantics s) {
    return s == CN_FEAT_NEMO_2_4 ? "nemo-2.4" : "nemo-2.5";
}

/* ---------------------------------------------------------------------------------------------
 * Window and mel filterbank (torch.*_window(periodic=False); librosa.filters.mel)
 * ------------------------------------------------------------------------------------------- */
static cn_status make_window(const char *name, int n, double *w, cn_error *err) {
    const double pi = 3.14159265358979323846;
    double den = n > 1 ? (double)(n - 1) : 1.0;
    for (int i = 0; i < n; i++) {
        double x = (double)i / den;
        double v;
        if (!name || strcmp(name, "hann") == 0)
            v = 0.5 - 0.5 * cos(2 * pi * x);
        else if (strcmp(name, "hamming") == 0)
            v = 0.54 - 0.46 * cos(2 * pi * x);
        else if (strcmp(name, "blackman") == 0)
            v = 0.42 - 0.5 * cos(2 * pi * x) + 0.08 * cos(4 * pi * x);
        else if (strcmp(name, "bartlett") == 0)
            v = 1.0 - fabs(2.0 * x - 1.0);
        else if (strcmp(name, "ones") == 0 || strcmp(name, "none") == 0)
            v = 1.0;
        else
            return cn_error_set(err, CANARY_EUNSUPPORTED,
                                "preprocessor window '%s' is not supported (hann, hamming, blackman, "
                                "bartlett, ones)", name);
        w[i] = n == 1 ? 1.0 : v;
    }
    return CANARY_OK;
}

/* librosa's default (Slaney) mel scale: linear below 1 kHz, logarithmic above. */
static double hz_to_mel(double hz) {
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    return hz >= min_log_hz ? min_log_mel + log(hz / min_log_hz) / logstep : hz / f_sp;
}

static double mel_to_hz(double mel) {
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
    const double logstep = log(6.4) / 27.0;
    return mel >= min_log_mel ? min_log_hz * exp(logstep * (mel - min_log_mel)) : f_sp * mel;
}

static cn_status make_filterbank(const cn_features_config *c, int n_bins, float *fb, cn_error *err) {
    int n = c->n_mels;
    double fmax = c->highfreq > 0 ? c->highfreq : c->sample_rate / 2.0;
    double *mel_f = malloc((size_t)(n + 2) * sizeof(double));
    if (!mel_f)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    double mlo = hz_to_mel(c->lowfreq), mhi = hz_to_mel(fmax);
    for (int i = 0; i < n + 2; i++)
        mel_f[i] = mel_to_hz(mlo + (mhi - mlo) * i / (n + 1));
    for (int m = 0; m < n; m++) {
        double fd0 = mel_f[m + 1] - mel_f[m], fd1 = mel_f[m + 2] - mel_f[m + 1];
        double enorm = c->mel_norm_slaney ? 2.0 / (mel_f[m + 2] - mel_f[m]) : 1.0;
        for (int k = 0; k < n_bins; k++) {
            double freq = (double)k * (c->sample_rate / 2.0) / (n_bins - 1);
            double lower = (freq - mel_f[m]) / fd0;
            double upper = (mel_f[m + 2] - freq) / fd1;
            double w = lower < upper ? lower : upper;
            /* librosa stores the triangle in float32 before the float64 Slaney scaling */
            float wf = (float)(w > 0 ? w : 0);
            fb[(size_t)m * n_bins + k] = (float)(wf * enorm);
        }
    }
    free(mel_f);
    return CANARY_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------------------------- */
static cn_status validate(const cn_features_config *c, cn_error *err) {
#define BAD(...) return cn_error_set(err, CANARY_EINVAL, __VA_ARGS__)
    if (c->sample_rate < 1000 || c->sample_rate > 768000)
        BAD("preprocessor sample_rate %d is outside 1000..768000", c->sample_rate);
    if (c->n_fft < 8 || c->n_fft > MAX_N_FFT)
        BAD("preprocessor n_fft %d is outside 8..%d", c->n_fft, MAX_N_FFT);
    if (c->win_length < 1 || c->win_length > c->n_fft)
        BAD("preprocessor win_length %d must be in 1..n_fft (%d)", c->win_length, c->n_fft);
    if (c->hop_length < 1 || c->hop_length > c->n_fft)
        BAD("preprocessor hop_length %d must be in 1..n_fft (%d)", c->hop_length, c->n_fft);
    if (c->n_mels < 1 || c->n_mels > MAX_N_MELS)
        BAD("preprocessor features (n_mels) %d is outside 1..%d", c->n_mels, MAX_N_MELS);
    if (!(c->preemph >= 0 && c->preemph < 1))
        BAD("preprocessor preemph %g must be in [0, 1)", c->preemph);
    if (!(c->mag_power > 0 && c->mag_power <= 4))
        BAD("preprocessor mag_power %g must be in (0, 4]", c->mag_power);
    double fmax = c->highfreq > 0 ? c->highfreq : c->sample_rate / 2.0;
    if (!(c->lowfreq >= 0 && c->lowfreq < fmax && fmax <= c->sample_rate / 2.0))
        BAD("preprocessor frequency range lowfreq %g .. highfreq %g must lie in 0..%g", c->lowfreq,
            fmax, c->sample_rate / 2.0);
    if (c->log && !(c->log_zero_guard_value > 0 && isfinite(c->log_zero_guard_value)))
        BAD("preprocessor log_zero_guard_value %g must be positive", c->log_zero_guard_value);
    if (c->pad_to < 0 || c->pad_to > 4096)
        BAD("preprocessor pad_to %d is outside 0..4096", c->pad_to);
    if (c->normalize != CN_FEAT_NORM_PER_FEATURE && c->normalize != CN_FEAT_NORM_NONE)
        BAD("unknown normalization %d", (int)c->normalize);
    if (c->semantics != CN_FEAT_NEMO_2_4 && c->semantics != CN_FEAT_NEMO_2_5)
        BAD("unknown feature semantics %d", (int)c->semantics);
#undef BAD
    return CANARY_OK;
}

cn_status cn_features_create(const cn_features_config *cfg, cn_features **out, cn_error *err) {
    *out = NULL;
    CN_TRY(validate(cfg, err));
    cn_features *f = calloc(1, sizeof *f);
    if (!f)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    f->cfg = *cfg;
    f->cfg.filterbank = NULL;
    f->cfg.window_values = NULL;
    f->cfg.window = NULL;
    f->n_bins = cfg->n_fft / 2 + 1;
    f->win_offset = (cfg->n_fft - cfg->win_length) / 2; /* torch.stft pads the window centrally */
    size_t fb_n = (size_t)cfg->n_mels * (size_t)f->n_bins;
    f->fb = malloc(fb_n * sizeof(float));
    f->fb_first = malloc((size_t)cfg->n_mels * sizeof(int));
    f->fb_end = malloc((size_t)cfg->n_mels * sizeof(int));
    cn_status st = CANARY_OK;
    if (!f->fb || !f->fb_first || !f->fb_end) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
        goto fail;
    }
    f->window_d = malloc((size_t)cfg->win_length * sizeof(double));
    if (!f->window_d) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg->window_values) {
        for (int i = 0; i < cfg->win_length; i++) {
            if (!isfinite(cfg->window_values[i])) {
                st = cn_error_set(err, CANARY_EFORMAT,
                                  "preprocessor.featurizer.window[%d] is not finite", i);
                goto fail;
            }
            f->window_d[i] = cfg->window_values[i];
        }
    } else if ((st = make_window(cfg->window, cfg->win_length, f->window_d, err)) != CANARY_OK) {
        goto fail;
    }
    if (cfg->filterbank) {
        for (size_t i = 0; i < fb_n; i++)
            if (!isfinite(cfg->filterbank[i])) {
                st = cn_error_set(err, CANARY_EFORMAT,
                                  "preprocessor.featurizer.fb[%zu] is not finite", i);
                goto fail;
            }
        memcpy(f->fb, cfg->filterbank, fb_n * sizeof(float));
    } else if ((st = make_filterbank(cfg, f->n_bins, f->fb, err)) != CANARY_OK) {
        goto fail;
    }
    /* Mel triangles are narrow: multiplying only their support makes the mel step ~20x cheaper.
     * Skipped weights are exact zeros, so the sum is unchanged (up to summation order). */
    for (int m = 0; m < cfg->n_mels; m++) {
        const float *row = f->fb + (size_t)m * f->n_bins;
        int a = 0, b = f->n_bins;
        while (a < b && row[a] == 0.0f)
            a++;
        while (b > a && row[b - 1] == 0.0f)
            b--;
        f->fb_first[m] = a;
        f->fb_end[m] = b;
    }

    double *in = fftw_malloc((size_t)cfg->n_fft * sizeof(double));
    fftw_complex *spec = fftw_malloc((size_t)f->n_bins * sizeof(fftw_complex));
    if (in && spec) {
        pthread_mutex_lock(&g_fftw_planner_lock);
        /* ESTIMATE: deterministic plans (MEASURE may pick different algorithms run to run) and
         * no start-up cost; the FFT is a small part of the time here. */
        f->plan = fftw_plan_dft_r2c_1d(cfg->n_fft, in, spec, FFTW_ESTIMATE);
        pthread_mutex_unlock(&g_fftw_planner_lock);
    }
    fftw_free(in);
    fftw_free(spec);
    if (!f->plan) {
        st = cn_error_set(err, CANARY_ENOMEM, "FFTW could not plan a %d-point FFT", cfg->n_fft);
        goto fail;
    }
    *out = f;
    return CANARY_OK;
fail:
    cn_features_destroy(f);
    return st;
}

void cn_features_destroy(cn_features *f) {
    if (!f)
        return;
    if (f->plan) {
        pthread_mutex_lock(&g_fftw_planner_lock);
        fftw_destroy_plan(f->plan);
        pthread_mutex_unlock(&g_fftw_planner_lock);
    }
    free(f->window_d);
    free(f->fb);
    free(f->fb_first);
    free(f->fb_end);
    free(f);
}

int cn_features_n_mels(const cn_features *f) { return f->cfg.n_mels; }
const cn_features_config *cn_features_cfg(const cn_features *f) { return &f->cfg; }
const double *cn_features_window(const cn_features *f) { return f->window_d; }
const float *cn_features_filterbank(const cn_features *f) { return f->fb; }
int cn_features_n_bins(const cn_features *f) { return f->n_bins; }
int cn_features_window_offset(const cn_features *f) { return f->win_offset; }
double cn_features_std_eps(void) { return NEMO_STD_EPS; }

static int64_t stft_frames(const cn_features *f, int64_t n) { return 1 + n / f->cfg.hop_length; }

int64_t cn_features_columns(const cn_features *f, int64_t n_samples) {
    int64_t t = stft_frames(f, n_samples);
    if (f->cfg.pad_to > 0 && t % f->cfg.pad_to)
        t += f->cfg.pad_to - t % f->cfg.pad_to;
    return t;
}

int64_t cn_features_valid_frames(const cn_features *f, int64_t n_samples) {
    if (n_samples <= 0)
        return 0;
    return n_samples / f->cfg.hop_length + (f->cfg.semantics == CN_FEAT_NEMO_2_4 ? 1 : 0);
}

/* ---------------------------------------------------------------------------------------------
 * Computation
 * ------------------------------------------------------------------------------------------- */
typedef struct scratch {
    double *in;          /* FFT input frame (fftw_malloc: same alignment as at planning) */
    fftw_complex *spec;
    double *power;
} scratch;

static void scratch_free(scratch *s) {
    fftw_free(s->in);
    fftw_free(s->spec);
    free(s->power);
}

static cn_status scratch_alloc(const cn_features *f, int64_t lpad, scratch *s, cn_error *err) {
    memset(s, 0, sizeof *s);
    s->in = fftw_malloc((size_t)f->cfg.n_fft * sizeof(double));
    s->spec = fftw_malloc((size_t)f->n_bins * sizeof(fftw_complex));
    s->power = malloc((size_t)f->n_bins * sizeof(double));
    if (!s->in || !s->spec || !s->power) {
        scratch_free(s);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory computing features for %lld samples",
                            (long long)lpad);
    }
    return CANARY_OK;
}

/* Index into a signal of length n for a (possibly negative or too large) position under the
 * centre padding in use; -1 = zero. Reflection repeats for signals shorter than the padding,
 * where torch itself would refuse. */
static int64_t pad_index(int64_t s, int64_t n, bool reflect) {
    if (s >= 0 && s < n)
        return s;
    if (!reflect)
        return -1;
    if (n == 1)
        return 0;
    int64_t period = 2 * (n - 1);
    s %= period;
    if (s < 0)
        s += period;
    return s < n ? s : period - s;
}

/* Sample i (0 <= i < padded length) of the pre-emphasized item: y[i] = x[i] - p x[i-1] with x = 0
 * past len. NeMo 2.5 masks y past len to 0; 2.4 lets the step at i = len through. Computed in
 * double (see the precision note at the top). */
static inline double preemphasized(const float *audio, int64_t len, int64_t i, double p, bool v25) {
    if (i >= len && (v25 || i > len))
        return 0.0;
    double x = i < len ? (double)audio[i] : 0.0;
    return i > 0 ? x - p * (double)audio[i - 1] : x;
}

/* One item: audio[0..len) padded with zeros to lpad. out: [n_mels, cols] with cols >=
 * columns(lpad); every column from the valid length on holds pad_value. */
static void compute_item(const cn_features *f, const float *audio, int64_t len, int64_t lpad, int64_t cols,
                         scratch *s, float *out, int64_t *valid_out) {
    const cn_features_config *c = &f->cfg;
    const bool v25 = c->semantics == CN_FEAT_NEMO_2_5;
    const int64_t T = stft_frames(f, lpad);
    const int64_t valid = cn_features_valid_frames(f, len) < T ? cn_features_valid_frames(f, len) : T;
    const int n_fft = c->n_fft, half = n_fft / 2, win = c->win_length, off = f->win_offset;
    const int n_mels = c->n_mels, n_bins = f->n_bins;
    const double preemph = c->preemph;
    *valid_out = valid;

    memset(s->in, 0, (size_t)n_fft * sizeof(double));
    const double guard = c->log_zero_guard_value;
    for (int64_t t = 0; t < T; t++) {
        int64_t base = t * c->hop_length - half + off; /* first sample under the window */
        if (base >= 1 && base + win <= len) {
            /* the common case: the whole window inside the real samples */
            const float *src = audio + base;
            for (int k = 0; k < win; k++)
                s->in[off + k] = ((double)src[k] - preemph * (double)src[k - 1]) * f->window_d[k];
        } else {
            for (int k = 0; k < win; k++) {
                int64_t idx = pad_index(base + k, lpad, !v25);
                s->in[off + k] = idx < 0 ? 0.0 : preemphasized(audio, len, idx, preemph, v25) * f->window_d[k];
            }
        }
        fftw_execute_dft_r2c(f->plan, s->in, s->spec);
        for (int k = 0; k < n_bins; k++) {
            double re = s->spec[k][0], im = s->spec[k][1];
            double p = re * re + im * im;
            if (c->mag_power != 2.0)
                p = pow(sqrt(p), c->mag_power);
            s->power[k] = p;
        }
        for (int m = 0; m < n_mels; m++) {
            const float *row = f->fb + (size_t)m * n_bins;
            double accd = 0.0;
            for (int k = f->fb_first[m]; k < f->fb_end[m]; k++)
                accd += row[k] * s->power[k];
            if (c->log)
                accd = c->log_guard_clamp ? log(accd > guard ? accd : guard) : log(accd + guard);
            out[(size_t)m * cols + t] = (float)accd;
        }
    }

    /* Per-feature normalization over the valid frames (unbiased std, + 1e-5 on the std), then
     * everything from the valid length on becomes pad_value. */
    for (int m = 0; m < n_mels; m++) {
        float *row = out + (size_t)m * cols;
        if (c->normalize == CN_FEAT_NORM_PER_FEATURE && valid > 0) {
            double sum = 0;
            for (int64_t t = 0; t < valid; t++)
                sum += row[t];
            double mean = sum / (double)valid;
            double ss = 0;
            for (int64_t t = 0; t < valid; t++) {
                double d = row[t] - mean;
                ss += d * d;
            }
            double sd = valid > 1 ? sqrt(ss / (double)(valid - 1)) : 0.0; /* NaN -> 0 as NeMo */
            sd += NEMO_STD_EPS;
            const float fmean = (float)mean, fsd = (float)sd;
            for (int64_t t = 0; t < valid; t++)
                row[t] = (row[t] - fmean) / fsd;
        }
        for (int64_t t = valid; t < cols; t++)
            row[t] = c->pad_value;
    }
}

/* Items of a batch on a pool: thread t computes with its own scratch. */
typedef struct {
    const cn_features *f;
    const float *const *audio;
    const int64_t *lens;
    int64_t lmax, cols;
    bool own_padding; /* each item padded as if alone (to its own length), not to lmax */
    size_t item;
    float *out;
    int64_t *valid;
    scratch *s; /* one per pool thread */
} batch_job;

static void batch_task(void *ctx, size_t b, int thread) {
    const batch_job *j = ctx;
    compute_item(j->f, j->audio[b], j->lens[b], j->own_padding ? j->lens[b] : j->lmax, j->cols, &j->s[thread],
                 j->out + b * j->item, &j->valid[b]);
}

static cn_status compute_batch(const cn_features *f, cn_pool *pool, const float *const *audio, const int64_t *lens,
                               int batch, bool own_padding, float *out, int64_t *valid, cn_error *err) {
    if (batch < 1)
        return cn_error_set(err, CANARY_EINVAL, "feature batch size %d must be at least 1", batch);
    int64_t lmax = 0;
    for (int b = 0; b < batch; b++) {
        if (lens[b] < 1)
            return cn_error_set(err, CANARY_EINVAL,
                                "feature input %d has %lld samples; at least 1 is needed", b,
                                (long long)lens[b]);
        if (!audio[b])
            return cn_error_set(err, CANARY_EINVAL, "feature input %d is NULL", b);
        if (lens[b] > lmax)
            lmax = lens[b];
        for (int64_t i = 0; i < lens[b]; i++)
            if (!isfinite(audio[b][i]))
                return cn_error_set(err, CANARY_EINVAL,
                                    "feature input %d: sample %lld (%.3f s) is not a finite number", b,
                                    (long long)i, (double)i / f->cfg.sample_rate);
    }
    if (lmax > ((int64_t)1 << 40))
        return cn_error_set(err, CANARY_ELIMIT, "feature input of %lld samples is too long",
                            (long long)lmax);
    /* one scratch (a full padded-length work area) per pool thread; one item needs no pool */
    int threads = pool && batch > 1 ? cn_pool_threads(pool) : 1;
    scratch *s = calloc((size_t)threads, sizeof *s);
    if (!s)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory for feature scratch");
    cn_status st = CANARY_OK;
    int made = 0;
    for (; made < threads && st == CANARY_OK; made++)
        st = scratch_alloc(f, lmax, &s[made], err);
    if (st == CANARY_OK) {
        int64_t cols = cn_features_columns(f, lmax);
        batch_job j = {f, audio, lens, lmax, cols, own_padding, (size_t)f->cfg.n_mels * (size_t)cols, out, valid, s};
        if (threads > 1)
            cn_pool_run(pool, (size_t)batch, batch_task, &j);
        else
            for (int b = 0; b < batch; b++)
                batch_task(&j, (size_t)b, 0);
    }
    for (int t = 0; t < made; t++)
        scratch_free(&s[t]);
    free(s);
    return st;
}

cn_status cn_features_compute_batch(const cn_features *f, const float *const *audio,
                                    const int64_t *lens, int batch, float *out, int64_t *valid,
                                    cn_error *err) {
    return cn_features_compute_batch_pool(f, NULL, audio, lens, batch, out, valid, err);
}

cn_status cn_features_compute_batch_pool(const cn_features *f, cn_pool *pool, const float *const *audio,
                                         const int64_t *lens, int batch, float *out, int64_t *valid,
                                         cn_error *err) {
    return compute_batch(f, pool, audio, lens, batch, false, out, valid, err);
}

cn_status cn_features_compute_items_pool(const cn_features *f, cn_pool *pool, const float *const *audio,
                                         const int64_t *lens, int batch, float *out, int64_t *valid,
                                         cn_error *err) {
    return compute_batch(f, pool, audio, lens, batch, true, out, valid, err);
}

cn_status cn_features_compute(const cn_features *f, const float *audio, int64_t n, float *out,
                              int64_t *valid, cn_error *err) {
    return cn_features_compute_batch(f, &audio, &n, 1, out, valid, err);
}

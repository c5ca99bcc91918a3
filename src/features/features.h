/* NeMo-exact log-mel front end (AudioToMelSpectrogramPreprocessor / FilterbankFeatures, eval mode).
 *
 * 16 kHz float audio -> pre-emphasis -> centred STFT (FFTW, double; see features.c) -> power -> mel
 * filterbank -> log(x + guard) -> per-feature normalization -> masking. Spec §3.
 *
 * Two NeMo behaviours exist (PR #13827, first in NeMo 2.5):
 *   CN_FEAT_NEMO_2_4: reflect centre padding, valid frames = L/hop + 1, pre-emphasis not masked.
 *   CN_FEAT_NEMO_2_5: zero centre padding, valid frames = L/hop, pre-emphasis masked past L.
 * In both the output has 1 + Lpad/hop columns (Lpad = the padded batch length); columns past the
 * valid length hold pad_value.
 *
 * The extractor is created once per model from the checkpoint's preprocessor settings (taken as
 * plain values: this module depends on base only) and is immutable afterwards, so any number of
 * threads may compute features with one extractor at the same time.
 */
#ifndef CN_FEATURES_FEATURES_H
#define CN_FEATURES_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum cn_feat_semantics {
    CN_FEAT_NEMO_2_4 = 0,
    CN_FEAT_NEMO_2_5 = 1,
} cn_feat_semantics;

typedef enum cn_feat_normalize {
    CN_FEAT_NORM_PER_FEATURE = 0, /* NeMo "per_feature" (Canary) */
    CN_FEAT_NORM_NONE = 1,        /* raw log-mel, e.g. for chunk-wise normalization later */
} cn_feat_normalize;

typedef struct cn_features_config {
    int sample_rate;        /* 16000 */
    int n_mels;             /* 128 */
    int n_fft;              /* 512 */
    int win_length;         /* 400 */
    int hop_length;         /* 160 */
    const char *window;     /* "hann" (also "hamming", "blackman", "bartlett", "ones"); NULL = hann */
    double preemph;         /* 0.97; 0 = none */
    double lowfreq;         /* 0 */
    double highfreq;        /* 8000; <= 0 means sample_rate / 2 */
    double log_zero_guard_value; /* 2^-24 */
    bool log_guard_clamp;   /* false: log(x + guard) ("add"); true: log(max(x, guard)) ("clamp") */
    bool log;               /* true */
    double mag_power;       /* 2.0 */
    bool mel_norm_slaney;   /* true: Slaney area normalization of computed filters */
    cn_feat_normalize normalize;
    int pad_to;             /* 0: none; else time axis padded to a multiple */
    float pad_value;        /* 0 */
    cn_feat_semantics semantics;
    /* Checkpoint buffers, copied at create; NULL = computed (Slaney mel; symmetric window). */
    const float *filterbank; /* [n_mels, n_fft/2 + 1] (preprocessor.featurizer.fb) */
    const float *window_values; /* [win_length] (preprocessor.featurizer.window) */
} cn_features_config;

/* From the loader's cn_preproc_desc (nemo/nemo.h) the engine fills: sample_rate, n_mels, n_fft,
 * win_length, hop_length, window, preemph, lowfreq, highfreq, log_zero_guard_value,
 * log_guard_clamp = (log_zero_guard_type == "clamp"), log, mag_power,
 * mel_norm_slaney = (mel_norm == "slaney"), normalize ("per_feature" -> PER_FEATURE), pad_to,
 * pad_value; and filterbank / window_values from the checkpoint tensors preprocessor.featurizer.fb
 * ([1, n_mels, n_fft/2+1]) and .window ([win_length]) as contiguous float32 -- pass them: NeMo's
 * stored float32 window differs from a recomputed one enough to move features by ~1.5e-4.
 * Not supported (the engine should refuse with CANARY_EUNSUPPORTED): frame_splicing > 1,
 * exact_pad = true, normalize "all_features" or a fixed mean/std. dither is ignored (inference). */

/* Canary's values (spec §3.2) with the given semantics. */
void cn_features_config_canary(cn_features_config *cfg, cn_feat_semantics semantics);

/* The default for "auto" (engine.feature_semantics), from the loader's model description:
 *  - a NeMo version recorded in the checkpoint's config decides when present (>= 2.5 -> nemo-2.5);
 *  - else canary-1b, canary-1b-flash, canary-180m-flash -> nemo-2.4: they were trained and their
 *    published WERs measured with NeMo < 2.5 (released Feb/Mar 2025, before PR #13827, July 2025);
 *  - canary-1b-v2 and unknown variants -> nemo-2.5: released after the change (Aug 2025), and what
 *    current NeMo, HF transformers and onnx-asr compute, i.e. what users compare against.
 * `variant` / `nemo_version` may be NULL or "". */
cn_feat_semantics cn_feat_semantics_auto(const char *variant, const char *nemo_version);

/* Parses "nemo-2.4" / "nemo-2.5". */
cn_status cn_feat_semantics_parse(const char *s, cn_feat_semantics *out, cn_error *err);
const char *cn_feat_semantics_name(cn_feat_semantics s);

typedef struct cn_features cn_features;

cn_status cn_features_create(const cn_features_config *cfg, cn_features **out, cn_error *err);
void cn_features_destroy(cn_features *f);

int cn_features_n_mels(const cn_features *f);
/* What another implementation of the same front end (a GPU's, model/) needs besides the filterbank
 * (cn_features_filterbank below): the configuration (its filterbank/window pointers cleared), the
 * window as used [win_length] (double), n_bins = n_fft/2 + 1, and where the window sits in the
 * n_fft frame. */
const cn_features_config *cn_features_cfg(const cn_features *f);
const double *cn_features_window(const cn_features *f);
int cn_features_n_bins(const cn_features *f);
int cn_features_window_offset(const cn_features *f);
/* The std epsilon of per-feature normalization (NeMo's 1e-5, added to the unbiased std). */
double cn_features_std_eps(void);
/* Output columns for a (padded) input of n samples: 1 + n/hop, rounded up to pad_to. */
int64_t cn_features_columns(const cn_features *f, int64_t n_samples);
/* Valid frames for an utterance of n samples (seq_len). */
int64_t cn_features_valid_frames(const cn_features *f, int64_t n_samples);

/* One utterance of n >= 1 samples. out: [n_mels, columns(n)] row-major (feature-major, as NeMo's
 * [B, F, T] for B = 1). *valid = valid_frames(n). Thread-safe. */
cn_status cn_features_compute(const cn_features *f, const float *audio, int64_t n, float *out,
                              int64_t *valid, cn_error *err);

/* A padded batch exactly as NeMo computes it: item b is audio[b][0..lens[b]) followed by zeros up
 * to max(lens). out: [batch, n_mels, columns(max(lens))]; valid[b] per item. Thread-safe. */
cn_status cn_features_compute_batch(const cn_features *f, const float *const *audio,
                                    const int64_t *lens, int batch, float *out, int64_t *valid,
                                    cn_error *err);

/* The same with the items spread over `pool`'s threads (NULL: the calling thread only). Each
 * item's result is the same as in cn_features_compute_batch. */
typedef struct cn_pool cn_pool;
cn_status cn_features_compute_batch_pool(const cn_features *f, cn_pool *pool, const float *const *audio,
                                         const int64_t *lens, int batch, float *out, int64_t *valid,
                                         cn_error *err);

/* Each item as if it were alone (its own centre padding: under 2.4 semantics the reflection at its
 * own end, not at the batch's), laid out as the batch above: out [batch, n_mels,
 * columns(max(lens))], columns past an item's valid length pad_value. An item's features then do
 * not depend on what it is batched with (equal, bit for bit, to cn_features_compute of it alone,
 * padded). Under 2.5 semantics the same numbers as cn_features_compute_batch_pool. */
cn_status cn_features_compute_items_pool(const cn_features *f, cn_pool *pool, const float *const *audio,
                                         const int64_t *lens, int batch, float *out, int64_t *valid,
                                         cn_error *err);

/* The mel filterbank in use, [n_mels, n_fft/2 + 1] (for tests and tools). */
const float *cn_features_filterbank(const cn_features *f);

#endif

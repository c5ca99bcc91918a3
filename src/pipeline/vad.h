/* Model-free voice-activity detection: finds the stretches of a 16 kHz recording that hold speech.
 *
 * Method (per 10 ms hop, 25 ms Hann window, 512-point FFT):
 *   - E    = energy of the 250-4000 Hz band in dB full scale (the band speech lives in; hum and
 *            hiss outside it do not count);
 *   - SF   = spectral flatness of that band (about 0.56 for white noise, below 0.3 for most
 *            speech frames; flatter frames are never speech);
 *   - N    = the noise floor: the minimum of E over the last `floor_window_s` (3 s; minimum
 *            statistics: it follows the noise up and down, and speech has pauses often enough
 *            to show it). During the first `lookahead_s` the floor also looks that far ahead, so
 *            that speech at 0 s is measured against the room, not against itself.
 *            Digital silence (E < -90 dB) does not count as noise.
 *   - a frame is speech when E > max(N, abs_floor_dbfs) + threshold_db and SF < flatness_max.
 * Single-frame decisions are smoothed by a 5-frame majority (clicks, dropouts). Speech frames
 * closer than `min_silence_s` are joined into one run; runs with less than
 * `min_speech_s` of speech frames are dropped (clicks); runs are widened by `pad_s` on both sides;
 * runs longer than `max_region_s` are emitted in adjacent pieces so that a caller never waits
 * longer than that for a decision (adjacent pieces have no gap: the cut is not a silence).
 *
 * Streaming: feed PCM blocks of any size; take the regions that are final as they appear.
 * Memory is constant apart from the regions not yet taken.
 */
#ifndef CN_PIPELINE_VAD_H
#define CN_PIPELINE_VAD_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* A half-open range of samples [start, end). */
typedef struct cn_span {
    int64_t start, end;
} cn_span;

typedef struct cn_vad_params {
    int sample_rate;       /* only 16000 is supported (the models' rate) */
    double threshold_db;   /* band energy above the noise floor that counts as speech */
    double abs_floor_dbfs; /* the floor used when the noise is quieter than this */
    double flatness_max;   /* frames with a flatter spectrum are noise */
    double min_speech_s;
    double min_silence_s;
    double pad_s;          /* must be <= min_silence_s / 2, so padded regions never overlap */
    double max_region_s;
    double floor_window_s;
    double lookahead_s;
    bool disabled;         /* every sample is speech: regions tile the input exactly, in pieces of
                              max_region_s (for audio known to be speech, or to match whole-clip
                              reference decoding) */
} cn_vad_params;

void cn_vad_params_default(cn_vad_params *p);

typedef struct cn_vad cn_vad;

cn_status cn_vad_create(const cn_vad_params *p, cn_vad **out, cn_error *err);
void cn_vad_destroy(cn_vad *v);
/* Feeds mono samples in [-1, 1] (values outside are fine; NaN/Inf count as silence). */
cn_status cn_vad_feed(cn_vad *v, const float *pcm, size_t n, cn_error *err);
/* Ends the input: every remaining region becomes final. */
cn_status cn_vad_finish(cn_vad *v, cn_error *err);
/* Moves up to `max` final regions, in time order, into `out`; returns how many. Regions are
 * sorted, do not overlap, and start >= 0; an end may lie past the last sample by up to pad_s
 * (callers clip to the audio length). */
size_t cn_vad_take(cn_vad *v, cn_span *out, size_t max);
/* No region that has not been taken yet will start before this sample. Equals the number of
 * samples fed once finished. */
int64_t cn_vad_watermark(const cn_vad *v);
int64_t cn_vad_samples_fed(const cn_vad *v);

#endif

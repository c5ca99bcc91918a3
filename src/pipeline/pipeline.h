/* The long-audio pipeline: PCM in, one transcript per input out.
 *
 *   source blocks -> VAD -> chunk planner -> pending chunks (PCM copied out) -> length-bucketed
 *   batches (across all inputs) -> recognizer -> merger (in order) -> transcript
 *
 * It streams: each input is read block by block, its audio is dropped as soon as no future chunk
 * can need it, and batches run whenever enough chunks are pending (about two batches' worth), so
 * memory is bounded by the batch budget plus the planner's look-ahead, not by the audio length
 * (the transcripts themselves grow with the text).
 *
 * Overlap: a reader thread decodes the inputs, runs the VAD and plans chunks (copying their PCM)
 * while the calling thread runs inference on the previous set of batches; the two meet in a
 * bounded queue (at most two batch budgets of PCM: the reader waits when it is full; so chunk PCM
 * held peaks at four budgets, against two when `sequential`). The reader
 * marks the points where the sequential path would run its batches, so the batches, and thus the
 * results, are identical to `sequential` runs (reading and inference in turn on the calling
 * thread). Features are computed inside the recognizer's batch call (the engine's threads).
 * A transcript is built, and handed to `on_transcript`, as soon as every chunk of its input has
 * been merged, so outputs can be written while later inputs are still being transcribed.
 *
 * Progress is reported after every batch; cancellation is checked before every batch and after
 * every block read, and wakes a waiting run within 50 ms.
 */
#ifndef CN_PIPELINE_PIPELINE_H
#define CN_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "canary/canary_pipeline.h"
#include "pipeline/chunker.h"
#include "pipeline/recognizer.h"
#include "pipeline/vad.h"

/* Where an input's 16 kHz mono samples come from. */
typedef struct cn_pcm_source {
    void *self;
    const char *name; /* for messages, e.g. the file name */
    double expected_s; /* the duration if known in advance (container header), else 0 */
    /* Reads up to `max` samples into `buf`, setting *got; *got == 0 means the end. */
    cn_status (*read)(void *self, float *buf, size_t max, size_t *got, cn_error *err);
} cn_pcm_source;

typedef struct cn_pipeline_params {
    double chunk_max_s;    /* 0 = the recognizer's limit; a longer value is capped to it */
    double chunk_min_s;
    double overlap_s;      /* before a chunk cut inside speech (default 1 s; CLI and service alike) */
    double skip_silence_s;
    size_t max_batch;      /* chunks per batch */
    double max_batch_s;    /* padded seconds of audio per batch (count x longest) */
    int max_segment_chars;
    cn_vad_params vad;
    const char *task;      /* "transcribe" | "translate" (copied into the transcript) */
    const char *language;  /* output language */
    canary_progress_fn progress;
    void *progress_user;
    const canary_cancel *cancel; /* may be NULL */
    /* Called on the calling thread with input `input`'s finished transcript (in input order),
     * before cn_pipeline_run returns; `t` stays owned by the run's out[] (NULL: not called). */
    void (*on_transcript)(size_t input, const canary_transcript *t, void *user);
    void *transcript_user;
    bool sequential; /* read and transcribe in turn on the calling thread (no reader thread) */
} cn_pipeline_params;

void cn_pipeline_params_default(cn_pipeline_params *p);

/* Transcribes `n_inputs` sources as one batched workload. On success out[i] holds input i's
 * transcript (canary_transcript_free each). On failure nothing is left allocated in out[]. */
cn_status cn_pipeline_run(const cn_recognizer *rec, const cn_pipeline_params *p, cn_pcm_source *inputs,
                          size_t n_inputs, canary_transcript *out, cn_error *err);

/* The planner settings a run uses: the chunk length capped to the recognizer's limit (with a
 * logged note), validated. */
cn_status cn_pipeline_chunk_params(const cn_recognizer *rec, const cn_pipeline_params *p, cn_chunk_params *cp,
                                   cn_error *err);

#endif

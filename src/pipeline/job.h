/* The pipeline one chunk at a time, for a scheduler that interleaves the chunks of many jobs
 * (the service's transcriber interface: probe/open/step/finish).
 *
 *   open:  reads the audio once through `plan_src` (VAD + chunk planner; no audio is kept) and
 *          returns the number of chunks;
 *   step:  transcribes the next chunk, reading its audio from `audio_src` (a second, sequential
 *          read of the same audio; only the current chunk is held);
 *   finish: merges into the transcript (same planner, merge and seams as cn_pipeline_run).
 * Cancel between steps. Batching across jobs is the caller's business (each step is a batch of 1).
 */
#ifndef CN_PIPELINE_JOB_H
#define CN_PIPELINE_JOB_H

#include <stddef.h>

#include "base/error.h"
#include "canary/canary_pipeline.h"
#include "pipeline/pipeline.h"

typedef struct cn_pipeline_job cn_pipeline_job;

/* `rec`, `p` and `audio_src` must outlive the job; `plan_src` is only read during the call. */
cn_status cn_pipeline_job_open(const cn_recognizer *rec, const cn_pipeline_params *p, cn_pcm_source *plan_src,
                               cn_pcm_source *audio_src, cn_pipeline_job **out, size_t *n_chunks, cn_error *err);
/* Transcribes the next chunk; CANARY_EINVAL after the last one. */
cn_status cn_pipeline_job_step(cn_pipeline_job *j, cn_error *err);
size_t cn_pipeline_job_chunks_done(const cn_pipeline_job *j);
double cn_pipeline_job_duration(const cn_pipeline_job *j);
/* After every step: the transcript (canary_transcript_free it). */
cn_status cn_pipeline_job_finish(cn_pipeline_job *j, canary_transcript *out, cn_error *err);
void cn_pipeline_job_destroy(cn_pipeline_job *j);

#endif

/* The service's view of speech recognition: a "transcriber" turns an audio file into a transcript,
 * one chunk at a time, so that the scheduler can interleave chunks of many jobs (a short job
 * submitted while a long one runs finishes quickly) and stop a job between chunks when it is
 * canceled. The product plugs in the engine + pipeline; tests plug in a deterministic double. */
#ifndef CN_SERVICE_TRANSCRIBER_H
#define CN_SERVICE_TRANSCRIBER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

typedef enum cn_task { CN_TASK_TRANSCRIBE = 0, CN_TASK_TRANSLATE = 1 } cn_task;

typedef struct cn_transcribe_options {
    cn_task task;
    char language[16];        /* source language ("" = transcriber default) */
    char target_language[16]; /* "" = same as source */
    char *prompt;             /* NULL or a style/context hint (owned) */
    bool pnc;
    double temperature;
    bool word_timestamps;
} cn_transcribe_options;

typedef struct cn_word {
    double start, end;
    char *word;
} cn_word;

typedef struct cn_segment {
    double start, end;
    char *text;
} cn_segment;

typedef struct cn_transcript {
    char *text;
    char language[16];
    cn_task task;
    double duration;
    cn_segment *segments;
    size_t n_segments;
    cn_word *words;
    size_t n_words;
} cn_transcript;

void cn_transcript_free(cn_transcript *t);
/* The full transcript as verbose JSON (what the store keeps). free() the result; NULL on ENOMEM. */
char *cn_transcript_to_json(const cn_transcript *t);
cn_status cn_transcript_from_json(const char *json, cn_transcript *out, cn_error *err);

/* Response formats of the OpenAI API. */
typedef enum cn_format { CN_FMT_JSON, CN_FMT_TEXT, CN_FMT_SRT, CN_FMT_VTT, CN_FMT_VERBOSE_JSON } cn_format;
/* Parses "json|text|srt|vtt|verbose_json"; false when unknown. */
bool cn_format_parse(const char *s, cn_format *out);
const char *cn_format_name(cn_format f);
const char *cn_format_content_type(cn_format f);
/* Renders a transcript; `words` adds word timings to verbose_json. free() the result. */
char *cn_transcript_render(const cn_transcript *t, cn_format f, bool words);

typedef struct cn_transcriber cn_transcriber;
typedef struct cn_transcription cn_transcription; /* one file in progress (opaque to the service) */

/* Where a transcription stands after a step. The total may grow while a long file is still being
 * read (it is an estimate until `finished`). */
typedef struct cn_step_progress {
    int chunks_done, chunks_total;
    bool finished; /* finish() may be called */
} cn_step_progress;

typedef struct cn_transcriber_ops {
    /* Checks that `path` is decodable audio and returns its duration, without transcribing.
     * CANARY_EFORMAT / EUNSUPPORTED mean the client sent bad audio (HTTP 400). */
    cn_status (*probe)(cn_transcriber *t, const char *path, double *duration_s, cn_error *err);
    /* Starts the work; `*n_chunks` estimates the steps (0 = not known yet). */
    cn_status (*open)(cn_transcriber *t, const char *path, const cn_transcribe_options *opts,
                      cn_transcription **out, int *n_chunks, cn_error *err);
    /* Runs the next unit of work (a chunk, or a batch of chunks) and reports progress. `cancel` may
     * be raised at any time; a step may then return ECANCELED. */
    cn_status (*step)(cn_transcriber *t, cn_transcription *s, const atomic_bool *cancel, cn_step_progress *pr,
                      cn_error *err);
    /* After the last step: the merged transcript. */
    cn_status (*finish)(cn_transcriber *t, cn_transcription *s, cn_transcript *out, cn_error *err);
    void (*close)(cn_transcriber *t, cn_transcription *s);
    void (*destroy)(cn_transcriber *t);
} cn_transcriber_ops;

struct cn_transcriber {
    const cn_transcriber_ops *ops;
    void *impl;
    /* false while the model loads (`reason` says so): queued jobs wait, synchronous requests get
     * 503. Flipped once by whoever loads the model, after the fields below are final. */
    atomic_bool ready;
    char reason[512];
    char model_name[128];    /* e.g. "nvidia/canary-180m-flash" */
    char model_info_json[1024]; /* a JSON object describing the model ("{}" if unknown) */
    char device[64];         /* where chunks run: "cpu", "cuda:0" */
};

/* The real one: the Canary engine (libcanary) behind the long-audio pipeline (VAD, chunking,
 * batching, merging). Loads the model at `model_path`; `workers` inference contexts run at once.
 * Each job's pipeline runs in its own thread and advances one batch per step(), so the
 * scheduler's round-robin interleaves jobs at batch granularity. */
struct cn_config;
cn_status cn_transcriber_engine_create(const struct cn_config *cfg, const char *model_path, int workers,
                                       cn_transcriber **out, cn_error *err);
void cn_transcriber_destroy(cn_transcriber *t);

#endif

/* The service's view of speech recognition: a "transcriber" turns an audio file into a transcript
 * chunk by chunk. A job's chunks are prepared (its audio decoded) on its own, but run in batches
 * with chunks of other jobs on any of the transcriber's devices, so that the scheduler interleaves
 * jobs (a short job submitted while a long one runs finishes quickly), keeps every device's
 * batches full, and stops a job between chunks when it is canceled. The product plugs in the
 * engine + pipeline; tests plug in a deterministic double with simulated devices. */
#ifndef CN_SERVICE_TRANSCRIBER_H
#define CN_SERVICE_TRANSCRIBER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    int *tokens;        /* the model's text token ids (owned; NULL when none) */
    size_t n_tokens;
    double avg_logprob; /* mean log-probability of the tokens (0 when none) */
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

/* Where a transcription stands. The total may grow while a long file is still being read (it is
 * an estimate until `finished`). */
typedef struct cn_step_progress {
    int chunks_done, chunks_total;
    bool finished; /* finish() may be called */
} cn_step_progress;

/* One chunk of audio of a transcription, prepared (decoded) and waiting to run in a batch. The
 * transcription owns it; the service only routes it: chunks of different transcriptions with the
 * same `batch_key` may run together in one batched call, on any device. */
typedef struct cn_job_chunk {
    cn_transcription *owner;
    double seconds;          /* audio length: the scheduler's work estimate */
    char batch_key[96];      /* equal keys = compatible decoding parameters (language, task, ...) */
} cn_job_chunk;

/* An executor the service runs batches on: a GPU (its own model replica) or the CPU (its
 * contexts). Filled by the transcriber; final once `ready` is true. */
#define CN_TRANSCRIBER_MAX_DEVICES 17
typedef struct cn_transcriber_device {
    char name[32];           /* "cpu", "cuda:0" */
    int workers;             /* batches it runs at once (contexts / streams), >= 1 */
    int max_batch;           /* chunks per batched call, >= 1 */
    uint64_t mem_budget;     /* bytes of batch memory admitted at once; 0 = unlimited */
    uint64_t item_bytes;     /* memory one chunk of a batch needs on it (0 = not accounted) */
} cn_transcriber_device;

typedef struct cn_transcriber_ops {
    /* Checks that `path` is decodable audio and returns its duration, without transcribing.
     * CANARY_EFORMAT / EUNSUPPORTED mean the client sent bad audio (HTTP 400). */
    cn_status (*probe)(cn_transcriber *t, const char *path, double *duration_s, cn_error *err);
    /* Starts the work; `*n_chunks` estimates the chunks (0 = not known yet). */
    cn_status (*open)(cn_transcriber *t, const char *path, const cn_transcribe_options *opts,
                      cn_transcription **out, int *n_chunks, cn_error *err);
    /* Reads and decodes the audio of the next chunk(s): on return `chunks[0..*n-1]` (at most
     * `max`, owned by `s`) wait to be run. *n == 0: no audio left, finish() may be called. Not
     * called again for `s` until every chunk it returned went through complete(). `cancel` may be
     * raised at any time; the call may then return ECANCELED. */
    cn_status (*prepare)(cn_transcriber *t, cn_transcription *s, const atomic_bool *cancel, int max,
                         cn_job_chunk **chunks, int *n, cn_error *err);
    /* Runs `n` chunks (of one or several transcriptions, all with the same batch_key) as one
     * batched call on devices[device], executor `worker` (0 <= worker < devices[device].workers;
     * calls for different workers run concurrently). The results stay in the chunks. Return
     * CANARY_EDEVICE when the device itself failed: the service runs the chunks elsewhere and
     * stops using the device; CANARY_ENOMEM when the batch did not fit its memory (the device
     * holding none of it afterwards): the service runs it again as halves and lowers the device's
     * batch limit. */
    cn_status (*run_batch)(cn_transcriber *t, int device, int worker, cn_job_chunk *const *chunks, int n, cn_error *err);
    /* Hands a chunk's result back to its transcription, in the order prepare() returned them;
     * `pr` tells where the transcription stands afterwards. */
    cn_status (*complete)(cn_transcriber *t, cn_transcription *s, cn_job_chunk *c, cn_step_progress *pr, cn_error *err);
    /* After the last chunk: the merged transcript. */
    cn_status (*finish)(cn_transcriber *t, cn_transcription *s, cn_transcript *out, cn_error *err);
    /* Also abandons chunks that were prepared and not completed (never while one is running). */
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
    char device[64];         /* the devices in use, comma-separated: "cpu", "cuda:0,cuda:1" */
    int n_devices;
    cn_transcriber_device devices[CN_TRANSCRIBER_MAX_DEVICES];
};

/* The real one: the Canary engine (libcanary) behind the long-audio pipeline (VAD, chunking,
 * merging). Loads one model replica per device chosen by the hardware profile and
 * engine.device (each GPU "cuda:N"; the CPU with `workers` contexts); each job's pipeline runs
 * in its own thread and hands its chunks to the service, which batches chunks of many jobs. */
struct cn_config;
cn_status cn_transcriber_engine_create(const struct cn_config *cfg, const char *model_path, int workers,
                                       cn_transcriber **out, cn_error *err);
void cn_transcriber_destroy(cn_transcriber *t);

#endif

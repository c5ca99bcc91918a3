/* Long-audio transcription results, output formats, progress and cancellation.
 *
 * A transcript is what the pipeline returns for one input file: segments with start/end in the
 * original audio's time, optional word timings, and the text. The writers turn it into the
 * formats users ask for (plain text, OpenAI's json / verbose_json, SubRip, WebVTT).
 */
#ifndef CANARY_PIPELINE_H
#define CANARY_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "canary/canary_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum canary_output_format {
    CANARY_FORMAT_TEXT = 0,     /* the text, one line per segment */
    CANARY_FORMAT_JSON,         /* {"text": "..."} */
    CANARY_FORMAT_VERBOSE_JSON, /* OpenAI's verbose_json: task, language, duration, text, segments, words */
    CANARY_FORMAT_SRT,          /* SubRip: HH:MM:SS,mmm */
    CANARY_FORMAT_VTT           /* WebVTT: HH:MM:SS.mmm */
} canary_output_format;

/* Parses "text|json|verbose_json|srt|vtt"; returns false when unknown. */
bool canary_output_format_parse(const char *name, canary_output_format *out);
const char *canary_output_format_name(canary_output_format f);
/* The usual file extension without a dot: "txt", "json", "json", "srt", "vtt". */
const char *canary_output_format_ext(canary_output_format f);

typedef struct canary_word {
    double start, end; /* seconds in the original audio */
    char *text;        /* UTF-8, no surrounding spaces */
} canary_word;

typedef struct canary_segment {
    int id;
    double start, end;    /* seconds in the original audio; start <= end */
    char *text;           /* UTF-8, trimmed */
    int *tokens;          /* the model's token ids for this segment (text tokens only) */
    size_t n_tokens;
    double avg_logprob;   /* mean log-probability of the tokens (0 when there are none) */
    canary_word *words;   /* NULL when the model gave no word timing */
    size_t n_words;
    /* true when the word times are an approximation (spread over the segment by character
     * count) rather than the model's own timestamp tokens */
    bool words_approximate;
} canary_segment;

typedef struct canary_transcript {
    char *task;      /* "transcribe" or "translate" */
    char *language;  /* the output language, e.g. "en" */
    double duration; /* seconds of input audio */
    char *text;      /* all segments joined by single spaces */
    canary_segment *segments;
    size_t n_segments;
} canary_transcript;

void canary_transcript_free(canary_transcript *t);

/* Renders `t` in format `f` into a NUL-terminated, valid UTF-8 string owned by the caller
 * (free()). Invalid UTF-8 in the transcript is replaced by U+FFFD. Returns CANARY_ENOMEM or
 * CANARY_EINVAL (unknown format) on failure, with *out = NULL. */
canary_status canary_transcript_render(const canary_transcript *t, canary_output_format f, char **out);

/* Progress of one pipeline run, reported after every batch. */
typedef struct canary_progress {
    double fraction;          /* 0..1 of the audio (all inputs) that has been transcribed */
    size_t chunks_done;
    size_t chunks_total;      /* chunks planned so far (grows while audio is still being read) */
    double audio_done_s;      /* seconds of audio covered by finished chunks and skipped silence */
    double audio_total_s;     /* seconds of audio known so far (exact once decoding has finished) */
    double elapsed_s;         /* wall time since the run started */
    double rtf;               /* real-time factor: elapsed_s / audio_done_s (0 until known) */
    double eta_s;             /* estimated seconds to finish (-1 until known) */
} canary_progress;

/* Called from the thread running the pipeline. Return false to cancel the run. */
typedef bool (*canary_progress_fn)(const canary_progress *p, void *user);

/* A flag another thread sets to stop a run; the pipeline checks it between batches and
 * then returns CANARY_ECANCELED. Create once, share by pointer. */
typedef struct canary_cancel canary_cancel;
canary_cancel *canary_cancel_create(void);
void canary_cancel_destroy(canary_cancel *c);
void canary_cancel_request(canary_cancel *c); /* thread-safe, async-signal-safe */
bool canary_cancel_requested(const canary_cancel *c);

#ifdef __cplusplus
}
#endif
#endif

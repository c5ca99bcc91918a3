/* Test doubles for the pipeline (tests only; the product never uses them).
 *
 * Synthetic "speech": each word is a tone burst whose frequency encodes the word id
 * (400 + 50 * id Hz, id 0..39), separated by short gaps; utterances are separated by pauses; white
 * noise at -60 dBFS runs throughout. The audio is generated on the fly, so an hour costs no memory.
 *
 * The fake recognizer finds the bursts in each chunk (10 ms RMS above 0.02), measures their
 * frequency by zero crossings and emits the tokens " w" + "<id>" per burst, with 80 ms timestamp
 * frames when timestamps are on. It is deterministic, and a burst cut by a chunk edge is heard in
 * both chunks, exactly the duplication the seam merge must remove.
 */
#ifndef CN_TEST_FAKE_ASR_H
#define CN_TEST_FAKE_ASR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canary/canary_pipeline.h"
#include "pipeline/pipeline.h"

typedef struct fake_word {
    int id;
    double start, end; /* seconds */
} fake_word;

/* A script of words and pauses, generated from a seed. */
typedef struct fake_audio {
    fake_word *words;
    size_t n_words;
    double duration;
    /* generator state */
    int64_t pos;
    size_t next_word;
    uint64_t rng;
} fake_audio;

/* Builds `seconds` of audio: utterances of 3-12 words with pauses of 0.6-5 s; when `monologues`,
 * some utterances run 50-90 s without any pause (forcing hard cuts); when `long_silences`, some
 * pauses last 1-3 minutes. */
void fake_audio_init(fake_audio *a, uint64_t seed, double seconds, bool monologues, bool long_silences);
/* Pure silence (noise only). */
void fake_audio_init_silence(fake_audio *a, uint64_t seed, double seconds);
void fake_audio_free(fake_audio *a);
cn_pcm_source fake_audio_source(fake_audio *a, const char *name);

typedef struct fake_asr {
    bool timestamps;
    size_t calls;
    size_t chunks;
    size_t max_batch_seen;
    int64_t max_cost_seen;   /* count x longest, samples */
    size_t max_chunk_seen;   /* samples */
    size_t fail_on_call;     /* 1-based; 0 = never */
    bool fail_from_then_on;  /* every call from fail_on_call on fails (a device that is gone) */
    cn_status fail_status;   /* what the failing call returns (0: CANARY_EDEVICE) */
    size_t cancel_on_call;   /* 1-based; requests `cancel` during that call */
    canary_cancel *cancel;
} fake_asr;

cn_recognizer fake_asr_recognizer(fake_asr *f, double max_chunk_s);

#endif

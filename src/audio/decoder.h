/* Streaming audio decoder: any container FFmpeg understands (wav, flac, mp3, ogg/vorbis, opus,
 * webm, m4a/aac, mp4/mov/mkv video with an audio stream, ...) or raw headerless s16le PCM, turned
 * into 16 kHz mono float32 blocks on demand.
 *
 * Memory stays bounded whatever the input length: packets are decoded one at a time as the caller
 * asks for samples. Samples are always finite: NaN/Inf in float inputs become 0 (with a warning). Several channels are averaged to mono (NeMo's downmix), then resampled with
 * soxr's high-quality filter (the one librosa uses by default).
 *
 * Not thread-safe per object; distinct decoders may be used from distinct threads.
 */
#ifndef CN_AUDIO_DECODER_H
#define CN_AUDIO_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define CN_AUDIO_RATE 16000

/* Sample rates accepted from any container or the raw input (Hz). */
#define CN_AUDIO_MIN_INPUT_RATE 1000
#define CN_AUDIO_MAX_INPUT_RATE 768000
#define CN_AUDIO_MAX_CHANNELS 64

typedef struct cn_audio_options {
    /* > 0: the input is headerless signed 16-bit little-endian PCM at this rate (no probing). */
    int raw_s16le_rate;
    /* channels of the raw input, interleaved (0 = 1). Ignored for containers. */
    int raw_channels;
    /* > 0: refuse inputs whose container claims a longer duration, and stop with CANARY_ELIMIT
     * when decoding passes it. 0 = no limit. */
    double max_duration_s;
} cn_audio_options;

typedef struct cn_audio_info {
    char container[32];   /* demuxer name, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2", "s16le" */
    char codec[32];       /* e.g. "pcm_s16le", "mp3float", "opus" */
    int input_rate;       /* Hz, as stored */
    int input_channels;
    /* Duration the container declares, in seconds; < 0 when it does not know. A header may lie:
     * the samples actually decoded are what counts. */
    double duration_s;
} cn_audio_info;

typedef struct cn_audio_decoder cn_audio_decoder;

/* Opens a file. `opt` may be NULL (a container, no duration limit). */
cn_status cn_audio_open_file(const char *path, const cn_audio_options *opt, cn_audio_decoder **out,
                             cn_error *err);

/* Opens a memory buffer (e.g. an HTTP upload). The bytes are not copied: they must stay valid and
 * unchanged until cn_audio_close. `name` labels error messages (may be NULL). */
cn_status cn_audio_open_memory(const void *data, size_t size, const char *name,
                               const cn_audio_options *opt, cn_audio_decoder **out, cn_error *err);

const cn_audio_info *cn_audio_get_info(const cn_audio_decoder *d);

/* Fills out[0..max) with the next 16 kHz mono samples; *n_read = 0 means the end of the stream.
 * Returns short blocks only at the end. An input with no samples at all is an error
 * (CANARY_EFORMAT), as is a stream that turns out corrupt before its end. */
cn_status cn_audio_read(cn_audio_decoder *d, float *out, size_t max, size_t *n_read, cn_error *err);

/* 16 kHz samples handed out so far. */
int64_t cn_audio_samples_read(const cn_audio_decoder *d);

void cn_audio_close(cn_audio_decoder *d);

/* Convenience for short inputs: decodes everything into a malloc'ed buffer (free()). Fails with
 * CANARY_ELIMIT beyond max_samples (0 = no limit). */
cn_status cn_audio_decode_all(cn_audio_decoder *d, size_t max_samples, float **out, size_t *n,
                              cn_error *err);

#endif

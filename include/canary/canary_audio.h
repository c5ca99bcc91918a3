/* libcanary audio input: decode any common audio/video container (or raw s16le PCM) into 16 kHz
 * mono float32, streaming in blocks so that long files never sit in memory whole.
 *
 *   canary_audio *a;
 *   char msg[512];
 *   if (canary_audio_open_file("talk.mp3", NULL, &a, msg, sizeof msg) != CANARY_OK) { puts(msg); ... }
 *   float block[16000]; size_t n;
 *   while (canary_audio_read(a, block, 16000, &n, msg, sizeof msg) == CANARY_OK && n > 0) { ... }
 *   canary_audio_close(a);
 *
 * Every function returns CANARY_OK or an error code and writes a readable message into
 * msg[0..msg_size) (when msg is not NULL).
 */
#ifndef CANARY_AUDIO_H
#define CANARY_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "canary/canary_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CANARY_AUDIO_SAMPLE_RATE 16000

typedef struct canary_audio canary_audio;

typedef struct canary_audio_options {
    int raw_s16le_rate;    /* > 0: headerless signed 16-bit little-endian PCM at this rate */
    int raw_channels;      /* interleaved channels of the raw input (0 = 1) */
    double max_duration_s; /* > 0: refuse or stop beyond this many seconds */
} canary_audio_options;

/* `opt` may be NULL. */
canary_status canary_audio_open_file(const char *path, const canary_audio_options *opt,
                                     canary_audio **out, char *msg, size_t msg_size);
/* The bytes are not copied and must outlive the decoder. */
canary_status canary_audio_open_memory(const void *data, size_t size, const canary_audio_options *opt,
                                       canary_audio **out, char *msg, size_t msg_size);
/* Next block of 16 kHz mono samples; *n_read == 0 at the end. */
canary_status canary_audio_read(canary_audio *a, float *out, size_t max, size_t *n_read, char *msg,
                                size_t msg_size);
/* Duration the container declares (seconds), or < 0 when unknown. */
double canary_audio_duration(const canary_audio *a);
void canary_audio_close(canary_audio *a);

#ifdef __cplusplus
}
#endif
#endif

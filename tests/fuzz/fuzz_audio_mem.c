/* Fuzzes the in-memory audio path (what an HTTP upload goes through): probing, demuxing, decoding
 * and resampling any bytes must give samples or a clean error, never a crash, hang or leak.
 * The first byte picks the mode: odd = raw s16le at a rate derived from the second byte, even =
 * container probing on the rest. A duration limit keeps each run short. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "audio/decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    cn_audio_options opt = {.max_duration_s = 120};
    if (data[0] & 1) {
        opt.raw_s16le_rate = 4000 + 1000 * (data[1] % 45);
        opt.raw_channels = 1 + (data[1] >> 6);
    }
    cn_audio_decoder *d;
    cn_error err;
    if (cn_audio_open_memory(data + 1, size - 1, "fuzz", &opt, &d, &err) != CANARY_OK)
        return 0;
    float block[4096];
    size_t got;
    while (cn_audio_read(d, block, 4096, &got, &err) == CANARY_OK && got > 0) {
    }
    cn_audio_close(d);
    return 0;
}

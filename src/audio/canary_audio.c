/* The public audio API: thin wrappers over audio/decoder.h. */
#include "canary/canary_audio.h"

#include <stdio.h>

#include "audio/decoder.h"

_Static_assert(sizeof(canary_audio_options) == sizeof(cn_audio_options), "option structs must match");

static canary_status report(cn_status st, const cn_error *e, char *msg, size_t msg_size) {
    if (msg && msg_size)
        snprintf(msg, msg_size, "%s", st == CANARY_OK ? "" : e->msg);
    return st;
}

static const cn_audio_options *to_cn(const canary_audio_options *opt, cn_audio_options *tmp) {
    if (!opt)
        return NULL;
    tmp->raw_s16le_rate = opt->raw_s16le_rate;
    tmp->raw_channels = opt->raw_channels;
    tmp->max_duration_s = opt->max_duration_s;
    return tmp;
}

canary_status canary_audio_open_file(const char *path, const canary_audio_options *opt,
                                     canary_audio **out, char *msg, size_t msg_size) {
    cn_error e = {0};
    cn_audio_options tmp;
    cn_status st = cn_audio_open_file(path, to_cn(opt, &tmp), (cn_audio_decoder **)out, &e);
    return report(st, &e, msg, msg_size);
}

canary_status canary_audio_open_memory(const void *data, size_t size, const canary_audio_options *opt,
                                       canary_audio **out, char *msg, size_t msg_size) {
    cn_error e = {0};
    cn_audio_options tmp;
    cn_status st = cn_audio_open_memory(data, size, NULL, to_cn(opt, &tmp), (cn_audio_decoder **)out, &e);
    return report(st, &e, msg, msg_size);
}

canary_status canary_audio_read(canary_audio *a, float *out, size_t max, size_t *n_read, char *msg,
                                size_t msg_size) {
    cn_error e = {0};
    cn_status st = cn_audio_read((cn_audio_decoder *)a, out, max, n_read, &e);
    return report(st, &e, msg, msg_size);
}

double canary_audio_duration(const canary_audio *a) {
    return cn_audio_get_info((const cn_audio_decoder *)a)->duration_s;
}

void canary_audio_close(canary_audio *a) { cn_audio_close((cn_audio_decoder *)a); }

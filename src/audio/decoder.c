/* Streaming decoder over FFmpeg 5.1 (libavformat, libavcodec, libswresample). */
#include "audio/decoder.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "base/log.h"

/* Demuxers we accept after probing. Anything else (images, playlists such as hls/concat that
 * would open other files or URLs, subtitles, ...) is refused before FFmpeg parses it further. */
static const char k_allowed_demuxers[] =
    "wav,w64,flac,mp3,ogg,matroska,webm,mov,mp4,m4a,3gp,3g2,aac,aiff,caf,au,amr,avi,asf,mpegts,"
    "mpeg,ac3,eac3,wv,ape,tta,flv,voc,s16le";

#define AVIO_BUFFER_SIZE 32768

typedef struct mem_source {
    const uint8_t *data;
    size_t size;
    size_t pos;
} mem_source;

struct cn_audio_decoder {
    char name[256];
    cn_audio_options opt;
    cn_audio_info info;

    AVFormatContext *fmt;
    AVIOContext *avio;      /* ours for memory input (fmt->pb is not freed by avformat then) */
    mem_source mem;
    AVCodecContext *codec;
    int stream_index;
    AVPacket *pkt;
    AVFrame *frame;

    SwrContext *swr;
    AVChannelLayout swr_in_layout;
    int swr_in_rate;
    int swr_in_format;

    float *buf;             /* resampled samples not yet handed out: buf[buf_pos..buf_len) */
    size_t buf_len, buf_pos, buf_cap;

    bool demux_done;        /* the demuxer reached its end; the decoder was sent a flush */
    bool decode_done;       /* the decoder is drained; the resampler was flushed */
    int64_t samples_out;
    int64_t corrupt_packets;
    int64_t nonfinite_samples; /* NaN/Inf output samples replaced by 0 */
};

/* ---------------------------------------------------------------------------------------------
 * FFmpeg's own logging goes to our debug log, once per process.
 * ------------------------------------------------------------------------------------------- */
static void av_log_to_cn(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_WARNING || cn_log_get_level() > CN_LOG_DEBUG)
        return;
    char line[512];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    CN_DEBUG("ffmpeg", "%s", line);
}

static pthread_once_t g_av_once = PTHREAD_ONCE_INIT;
static void av_init_once(void) { av_log_set_callback(av_log_to_cn); }

static const char *av_err(int code, char *buf, size_t n) {
    if (av_strerror(code, buf, n) < 0)
        snprintf(buf, n, "FFmpeg error %d", code);
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Memory input through a custom AVIOContext.
 * ------------------------------------------------------------------------------------------- */
static int mem_read(void *opaque, uint8_t *dst, int n) {
    mem_source *m = opaque;
    if (m->pos >= m->size)
        return AVERROR_EOF;
    size_t left = m->size - m->pos;
    size_t take = (size_t)n < left ? (size_t)n : left;
    memcpy(dst, m->data + m->pos, take);
    m->pos += take;
    return (int)take;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    mem_source *m = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)m->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)m->pos;
        break;
    case SEEK_END:
        base = (int64_t)m->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0 ||
        (uint64_t)(base + offset) > m->size)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + offset);
    return (int64_t)m->pos;
}

/* ---------------------------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------------------------- */
static cn_status check_rate_channels(const cn_audio_decoder *d, int rate, int channels, cn_error *err) {
    if (rate < CN_AUDIO_MIN_INPUT_RATE || rate > CN_AUDIO_MAX_INPUT_RATE)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "%s: sample rate %d Hz is outside the supported range %d..%d Hz", d->name,
                            rate, CN_AUDIO_MIN_INPUT_RATE, CN_AUDIO_MAX_INPUT_RATE);
    if (channels < 1 || channels > CN_AUDIO_MAX_CHANNELS)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "%s: %d audio channels is outside the supported range 1..%d", d->name,
                            channels, CN_AUDIO_MAX_CHANNELS);
    return CANARY_OK;
}

static cn_status open_stream(cn_audio_decoder *d, const char *path, cn_error *err) {
    char eb[128];
    int rc;
    const AVInputFormat *ifmt = NULL;
    AVDictionary *dict = NULL;

    d->fmt = avformat_alloc_context();
    if (!d->fmt)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);
    /* Never let a container pull in other files or URLs. */
    d->fmt->protocol_whitelist = av_strdup(path ? "file" : "none");
    d->fmt->format_whitelist = av_strdup(k_allowed_demuxers);
    if (!d->fmt->protocol_whitelist || !d->fmt->format_whitelist)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);

    if (d->opt.raw_s16le_rate > 0) {
        int ch = d->opt.raw_channels > 0 ? d->opt.raw_channels : 1;
        CN_TRY(check_rate_channels(d, d->opt.raw_s16le_rate, ch, err));
        ifmt = av_find_input_format("s16le");
        if (!ifmt)
            return cn_error_set(err, CANARY_EUNSUPPORTED, "this FFmpeg build lacks the s16le demuxer");
        char v[32];
        snprintf(v, sizeof v, "%d", d->opt.raw_s16le_rate);
        av_dict_set(&dict, "sample_rate", v, 0);
        snprintf(v, sizeof v, "%dc", ch);
        av_dict_set(&dict, "ch_layout", v, 0);
    }

    if (!path) {
        uint8_t *iobuf = av_malloc(AVIO_BUFFER_SIZE);
        if (!iobuf)
            return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);
        d->avio = avio_alloc_context(iobuf, AVIO_BUFFER_SIZE, 0, &d->mem, mem_read, NULL, mem_seek);
        if (!d->avio) {
            av_free(iobuf);
            return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);
        }
        d->fmt->pb = d->avio;
        d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    }

    /* Probe first ourselves so that a non-audio file gets a message naming what it is. */
    if (!ifmt) {
        AVIOContext *probe_pb = d->avio;
        AVIOContext *file_pb = NULL;
        if (path) {
            rc = avio_open2(&file_pb, path, AVIO_FLAG_READ, NULL, NULL);
            if (rc < 0) {
                av_dict_free(&dict);
                return cn_error_set(err, rc == AVERROR(ENOENT) ? CANARY_ENOTFOUND : CANARY_EIO,
                                    "%s: cannot open: %s", d->name, av_err(rc, eb, sizeof eb));
            }
            probe_pb = file_pb;
        }
        rc = av_probe_input_buffer2(probe_pb, &ifmt, path ? path : "", NULL, 0, 0);
        if (file_pb)
            avio_closep(&file_pb);
        else if (rc >= 0)
            avio_seek(d->avio, 0, SEEK_SET);
        if (rc < 0 || !ifmt) {
            av_dict_free(&dict);
            return cn_error_set(err, CANARY_EFORMAT,
                                "%s: not a recognized audio or video file (%s)", d->name,
                                rc < 0 ? av_err(rc, eb, sizeof eb) : "unknown format");
        }
        if (av_match_list(ifmt->name, k_allowed_demuxers, ',') <= 0) {
            av_dict_free(&dict);
            return cn_error_set(err, CANARY_EFORMAT,
                                "%s: detected '%s', which is not an audio container we accept "
                                "(wav, flac, mp3, ogg, opus, webm, m4a/mp4/mov, mkv, aac, ...)",
                                d->name, ifmt->name);
        }
    }

    rc = avformat_open_input(&d->fmt, path, ifmt, &dict);
    av_dict_free(&dict);
    if (rc < 0) {
        /* avformat_open_input frees the context on failure; our AVIO stays ours. */
        d->fmt = NULL;
        return cn_error_set(err, CANARY_EFORMAT, "%s: cannot read the container: %s", d->name,
                            av_err(rc, eb, sizeof eb));
    }
    rc = avformat_find_stream_info(d->fmt, NULL);
    if (rc < 0)
        return cn_error_set(err, CANARY_EFORMAT, "%s: cannot read stream information: %s", d->name,
                            av_err(rc, eb, sizeof eb));

    const AVCodec *dec = NULL;
    rc = av_find_best_stream(d->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &dec, 0);
    if (rc == AVERROR_STREAM_NOT_FOUND || (rc < 0 && rc != AVERROR_DECODER_NOT_FOUND))
        return cn_error_set(err, CANARY_EFORMAT, "%s: the %s file has no audio stream", d->name,
                            d->fmt->iformat->name);
    d->stream_index = rc >= 0 ? rc : -1;
    if (rc == AVERROR_DECODER_NOT_FOUND || !dec) {
        int idx = -1;
        for (unsigned i = 0; i < d->fmt->nb_streams; i++)
            if (d->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) {
                idx = (int)i;
                break;
            }
        const char *cname = idx >= 0 ? avcodec_get_name(d->fmt->streams[idx]->codecpar->codec_id) : "?";
        return cn_error_set(err, CANARY_EUNSUPPORTED, "%s: no decoder for the audio codec '%s'",
                            d->name, cname);
    }
    AVStream *st = d->fmt->streams[d->stream_index];
    const AVCodecParameters *par = st->codecpar;
    /* Let the demuxer skip video and other streams instead of handing us their packets. */
    for (unsigned i = 0; i < d->fmt->nb_streams; i++)
        if ((int)i != d->stream_index)
            d->fmt->streams[i]->discard = AVDISCARD_ALL;
    CN_TRY(check_rate_channels(d, par->sample_rate, par->ch_layout.nb_channels, err));

    d->codec = avcodec_alloc_context3(dec);
    if (!d->codec)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);
    rc = avcodec_parameters_to_context(d->codec, par);
    if (rc < 0)
        return cn_error_set(err, CANARY_EFORMAT, "%s: bad codec parameters: %s", d->name,
                            av_err(rc, eb, sizeof eb));
    d->codec->thread_count = 1; /* the pipeline parallelizes across files, not inside one */
    d->codec->pkt_timebase = st->time_base;
    rc = avcodec_open2(d->codec, dec, NULL);
    if (rc < 0)
        return cn_error_set(err, CANARY_EFORMAT, "%s: cannot open the %s decoder: %s", d->name,
                            dec->name, av_err(rc, eb, sizeof eb));

    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->pkt || !d->frame)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);

    /* Info and the declared duration. */
    snprintf(d->info.container, sizeof d->info.container, "%s", d->fmt->iformat->name);
    snprintf(d->info.codec, sizeof d->info.codec, "%s", dec->name);
    d->info.input_rate = par->sample_rate;
    d->info.input_channels = par->ch_layout.nb_channels;
    d->info.duration_s = -1;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0)
        d->info.duration_s = (double)st->duration * av_q2d(st->time_base);
    else if (d->fmt->duration != AV_NOPTS_VALUE && d->fmt->duration > 0)
        d->info.duration_s = (double)d->fmt->duration / AV_TIME_BASE;
    if (d->opt.max_duration_s > 0 && d->info.duration_s > d->opt.max_duration_s)
        return cn_error_set(err, CANARY_ELIMIT,
                            "%s: the file declares %.1f s of audio, more than the limit of %.1f s",
                            d->name, d->info.duration_s, d->opt.max_duration_s);
    return CANARY_OK;
}

static cn_status decoder_new(const char *name, const cn_audio_options *opt, cn_audio_decoder **out,
                             cn_error *err) {
    pthread_once(&g_av_once, av_init_once);
    *out = NULL;
    cn_audio_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory opening %s", name);
    snprintf(d->name, sizeof d->name, "%s", name);
    if (opt)
        d->opt = *opt;
    d->stream_index = -1;
    d->swr_in_rate = -1;
    *out = d;
    if (d->opt.max_duration_s < 0 || d->opt.raw_s16le_rate < 0 || d->opt.raw_channels < 0)
        return cn_error_set(err, CANARY_EINVAL, "%s: negative audio option", name);
    return CANARY_OK;
}

cn_status cn_audio_open_file(const char *path, const cn_audio_options *opt, cn_audio_decoder **out,
                             cn_error *err) {
    if (!path || !out)
        return cn_error_set(err, CANARY_EINVAL, "cn_audio_open_file: NULL argument");
    cn_audio_decoder *d;
    cn_status st = decoder_new(path, opt, &d, err);
    if (st == CANARY_OK) {
        struct stat sb;
        if (stat(path, &sb) != 0)
            st = errno == ENOENT ? cn_error_set(err, CANARY_ENOTFOUND, "%s: no such file", path)
                                 : cn_error_errno(err, errno, "%s", path);
        else if (S_ISDIR(sb.st_mode))
            st = cn_error_set(err, CANARY_EINVAL, "%s: is a directory, not an audio file", path);
        else if (sb.st_size == 0)
            st = cn_error_set(err, CANARY_EFORMAT, "%s: the file is empty", path);
        else {
            /* "file:" so that a name with a colon is never read as a protocol ("http:...") */
            size_t n = strlen(path) + 6;
            char *url = malloc(n);
            if (!url)
                st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
            else {
                snprintf(url, n, "file:%s", path);
                st = open_stream(d, url, err);
                free(url);
            }
        }
    }
    if (st != CANARY_OK) {
        cn_audio_close(d);
        return st;
    }
    *out = d;
    return CANARY_OK;
}

cn_status cn_audio_open_memory(const void *data, size_t size, const char *name,
                               const cn_audio_options *opt, cn_audio_decoder **out, cn_error *err) {
    if (!out || (!data && size))
        return cn_error_set(err, CANARY_EINVAL, "cn_audio_open_memory: NULL argument");
    cn_audio_decoder *d;
    cn_status st = decoder_new(name ? name : "<memory>", opt, &d, err);
    if (st == CANARY_OK) {
        d->mem.data = data;
        d->mem.size = size;
        if (size == 0)
            st = cn_error_set(err, CANARY_EFORMAT, "%s: the upload is empty", d->name);
        else
            st = open_stream(d, NULL, err);
    }
    if (st != CANARY_OK) {
        cn_audio_close(d);
        return st;
    }
    *out = d;
    return CANARY_OK;
}

const cn_audio_info *cn_audio_get_info(const cn_audio_decoder *d) { return &d->info; }
int64_t cn_audio_samples_read(const cn_audio_decoder *d) { return d->samples_out; }

void cn_audio_close(cn_audio_decoder *d) {
    if (!d)
        return;
    if (d->nonfinite_samples)
        CN_WARN("audio", "%s: %lld NaN/infinite samples were replaced by silence", d->name,
                (long long)d->nonfinite_samples);
    swr_free(&d->swr);
    av_channel_layout_uninit(&d->swr_in_layout);
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->codec);
    avformat_close_input(&d->fmt);
    if (d->avio) {
        av_freep(&d->avio->buffer);
        avio_context_free(&d->avio);
    }
    free(d->buf);
    free(d);
}

/* ---------------------------------------------------------------------------------------------
 * Resampling
 * ------------------------------------------------------------------------------------------- */
static cn_status buf_reserve(cn_audio_decoder *d, size_t extra, cn_error *err) {
    /* compact first: what was handed out is not needed */
    if (d->buf_pos) {
        memmove(d->buf, d->buf + d->buf_pos, (d->buf_len - d->buf_pos) * sizeof(float));
        d->buf_len -= d->buf_pos;
        d->buf_pos = 0;
    }
    if (d->buf_len + extra <= d->buf_cap)
        return CANARY_OK;
    size_t cap = d->buf_cap ? d->buf_cap : 4096;
    while (cap < d->buf_len + extra)
        cap *= 2;
    float *nb = realloc(d->buf, cap * sizeof(float));
    if (!nb)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory (%zu samples)", d->name, cap);
    d->buf = nb;
    d->buf_cap = cap;
    return CANARY_OK;
}

/* Runs the resampler on in (NULL = flush) and appends its output to buf. */
static cn_status resample(cn_audio_decoder *d, const uint8_t **in, int in_count, cn_error *err) {
    char eb[128];
    for (;;) {
        int cap = swr_get_out_samples(d->swr, in ? in_count : 0);
        if (cap < 0)
            return cn_error_set(err, CANARY_EINTERNAL, "%s: resampler: %s", d->name, av_err(cap, eb, sizeof eb));
        if (cap == 0 && in)
            cap = 1;
        cap += 256; /* slack: soxr's flush may produce a little more than the estimate */
        CN_TRY(buf_reserve(d, (size_t)cap, err));
        uint8_t *outp = (uint8_t *)(d->buf + d->buf_len);
        int n = swr_convert(d->swr, &outp, cap, in, in ? in_count : 0);
        if (n < 0)
            return cn_error_set(err, CANARY_EFORMAT, "%s: resampling failed: %s", d->name,
                                av_err(n, eb, sizeof eb));
        /* A float file may hold NaN or infinities; they would poison every feature frame they
         * touch (and the resampler smears them over its filter length). Silence them. */
        float *fresh = d->buf + d->buf_len;
        for (int i = 0; i < n; i++)
            if (!isfinite(fresh[i])) {
                fresh[i] = 0.0f;
                d->nonfinite_samples++;
            }
        d->buf_len += (size_t)n;
        /* A full output buffer may mean more is pending; ask again without new input. */
        if (n < cap)
            return CANARY_OK;
        in = NULL;
        in_count = 0;
        if (!d->decode_done)
            return CANARY_OK; /* the rest comes out with the next frame */
    }
}

static cn_status setup_swr(cn_audio_decoder *d, const AVFrame *f, cn_error *err) {
    char eb[128];
    int nch = f->ch_layout.nb_channels;
    CN_TRY(check_rate_channels(d, f->sample_rate, nch, err));
    if (d->swr && f->sample_rate == d->swr_in_rate && f->format == d->swr_in_format &&
        av_channel_layout_compare(&f->ch_layout, &d->swr_in_layout) == 0)
        return CANARY_OK;
    if (d->swr) {
        /* The stream changed rate or layout mid-way (e.g. concatenated mp3s): drain the old one. */
        bool done = d->decode_done;
        d->decode_done = true;
        cn_status st = resample(d, NULL, 0, err);
        d->decode_done = done;
        CN_TRY(st);
        swr_free(&d->swr);
    }
    av_channel_layout_uninit(&d->swr_in_layout);
    AVChannelLayout in_layout = {0}; /* av_channel_layout_copy uninits its destination first */
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in_layout, nch);
    else if (av_channel_layout_copy(&in_layout, &f->ch_layout) < 0)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int rc = swr_alloc_set_opts2(&d->swr, &mono, AV_SAMPLE_FMT_FLT, CN_AUDIO_RATE, &in_layout,
                                 (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
    if (rc >= 0 && d->swr) {
        /* soxr at its default (high) quality: what librosa.resample uses, so what NeMo saw. */
        av_opt_set_int(d->swr, "resampler", SWR_ENGINE_SOXR, 0);
        if (nch > 1) {
            /* NeMo averages channels; swresample's default would weight them by 1/sqrt(2). */
            double matrix[CN_AUDIO_MAX_CHANNELS];
            for (int i = 0; i < nch; i++)
                matrix[i] = 1.0 / nch;
            rc = swr_set_matrix(d->swr, matrix, nch);
        }
        if (rc >= 0)
            rc = swr_init(d->swr);
    }
    av_channel_layout_uninit(&in_layout);
    if (rc < 0 || !d->swr)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "%s: cannot convert %d Hz, %d channels, sample format %s: %s", d->name,
                            f->sample_rate, nch, av_get_sample_fmt_name((enum AVSampleFormat)f->format),
                            rc < 0 ? av_err(rc, eb, sizeof eb) : "out of memory");
    d->swr_in_rate = f->sample_rate;
    d->swr_in_format = f->format;
    if (av_channel_layout_copy(&d->swr_in_layout, &f->ch_layout) < 0)
        return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory", d->name);
    return CANARY_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding loop
 * ------------------------------------------------------------------------------------------- */
/* Feeds the decoder one more packet of our stream (or the flush at the end). */
static cn_status feed_packet(cn_audio_decoder *d, cn_error *err) {
    char eb[128];
    for (;;) {
        int rc = av_read_frame(d->fmt, d->pkt);
        if (rc == AVERROR_EOF || (rc < 0 && avio_feof(d->fmt->pb))) {
            /* A truncated file ends here too: keep what decoded, like the ffmpeg CLI. */
            d->demux_done = true;
            avcodec_send_packet(d->codec, NULL);
            return CANARY_OK;
        }
        if (rc < 0)
            return cn_error_set(err, rc == AVERROR(EIO) ? CANARY_EIO : CANARY_EFORMAT,
                                "%s: reading at %.2f s: %s", d->name,
                                (double)d->samples_out / CN_AUDIO_RATE, av_err(rc, eb, sizeof eb));
        if (d->pkt->stream_index != d->stream_index) {
            av_packet_unref(d->pkt);
            continue;
        }
        rc = avcodec_send_packet(d->codec, d->pkt);
        av_packet_unref(d->pkt);
        if (rc == AVERROR(EAGAIN))
            return CANARY_OK; /* should not happen: we drain frames before sending */
        if (rc < 0) {
            if (rc == AVERROR(ENOMEM))
                return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory decoding", d->name);
            /* One corrupt packet: skip it as the ffmpeg CLI does. */
            d->corrupt_packets++;
            continue;
        }
        return CANARY_OK;
    }
}

/* Produces more resampled samples into buf, or sets decode_done. */
static cn_status produce(cn_audio_decoder *d, cn_error *err) {
    char eb[128];
    while (!d->decode_done) {
        int rc = avcodec_receive_frame(d->codec, d->frame);
        if (rc == 0) {
            cn_status st = setup_swr(d, d->frame, err);
            if (st == CANARY_OK)
                st = resample(d, (const uint8_t **)d->frame->extended_data, d->frame->nb_samples, err);
            av_frame_unref(d->frame);
            CN_TRY(st);
            if (d->buf_len > d->buf_pos)
                return CANARY_OK;
            continue;
        }
        if (rc == AVERROR(EAGAIN)) {
            if (d->demux_done) /* cannot happen after a flush, but never spin */
                rc = AVERROR_EOF;
            else {
                CN_TRY(feed_packet(d, err));
                continue;
            }
        }
        if (rc == AVERROR_EOF) {
            d->decode_done = true;
            if (d->swr)
                CN_TRY(resample(d, NULL, 0, err));
            return CANARY_OK;
        }
        if (rc == AVERROR(ENOMEM))
            return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory decoding", d->name);
        /* A frame that fails to decode: skip it (the ffmpeg CLI does the same). */
        d->corrupt_packets++;
        if (d->corrupt_packets > 1000000)
            return cn_error_set(err, CANARY_EFORMAT, "%s: the audio stream is corrupt: %s", d->name,
                                av_err(rc, eb, sizeof eb));
    }
    return CANARY_OK;
}

cn_status cn_audio_read(cn_audio_decoder *d, float *out, size_t max, size_t *n_read, cn_error *err) {
    *n_read = 0;
    size_t got = 0;
    while (got < max) {
        if (d->buf_pos == d->buf_len) {
            if (d->decode_done)
                break;
            CN_TRY(produce(d, err));
            continue;
        }
        size_t take = d->buf_len - d->buf_pos;
        if (take > max - got)
            take = max - got;
        memcpy(out + got, d->buf + d->buf_pos, take * sizeof(float));
        d->buf_pos += take;
        got += take;
    }
    d->samples_out += (int64_t)got;
    *n_read = got;
    if (d->opt.max_duration_s > 0 && (double)d->samples_out > d->opt.max_duration_s * CN_AUDIO_RATE)
        return cn_error_set(err, CANARY_ELIMIT, "%s: the audio is longer than the limit of %.1f s",
                            d->name, d->opt.max_duration_s);
    if (got == 0 && max > 0 && d->samples_out == 0)
        return cn_error_set(err, CANARY_EFORMAT,
                            "%s: the %s stream contains no decodable audio samples%s", d->name,
                            d->info.codec, d->corrupt_packets ? " (every packet was corrupt)" : "");
    return CANARY_OK;
}

cn_status cn_audio_decode_all(cn_audio_decoder *d, size_t max_samples, float **out, size_t *n,
                              cn_error *err) {
    *out = NULL;
    *n = 0;
    size_t cap = 16000, len = 0;
    float *all = malloc(cap * sizeof(float));
    if (!all)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    for (;;) {
        if (cap - len < 4096) {
            if (cap > SIZE_MAX / 2 / sizeof(float)) {
                free(all);
                return cn_error_set(err, CANARY_ENOMEM, "%s: too long to hold in memory", d->name);
            }
            float *na = realloc(all, cap * 2 * sizeof(float));
            if (!na) {
                free(all);
                return cn_error_set(err, CANARY_ENOMEM, "%s: out of memory (%zu samples)", d->name, cap * 2);
            }
            all = na;
            cap *= 2;
        }
        size_t got;
        cn_status st = cn_audio_read(d, all + len, cap - len, &got, err);
        if (st != CANARY_OK) {
            free(all);
            return st;
        }
        if (got == 0)
            break;
        len += got;
        if (max_samples && len > max_samples) {
            free(all);
            return cn_error_set(err, CANARY_ELIMIT, "%s: more than %zu samples (%.1f s) of audio",
                                d->name, max_samples, (double)max_samples / CN_AUDIO_RATE);
        }
    }
    *out = all;
    *n = len;
    return CANARY_OK;
}

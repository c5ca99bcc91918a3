/* The streaming decoder: every listed container decodes to the right length and content, compared
 * with the ffmpeg command-line tool decoding the same file (a second path through FFmpeg with the
 * same downmix and resampler settings) and, for lossless 16 kHz inputs, with the source samples
 * bit for bit. Media are generated at test time with the ffmpeg CLI into a temporary directory. */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/decoder.h"
#include "canary/canary_audio.h"
#include "test_util.h"

#define SPEECH_RAW "/usr/share/pocketsphinx/test/data/goforward.raw"
#define FF "ffmpeg -nostdin -hide_banner -loglevel error -y "

static char g_dir[512];
static float *g_src16;     /* the 16 kHz mono source samples */
static size_t g_src16_n;
static double g_src_seconds;
static size_t g_src44_n;   /* the stereo master's length at 16 kHz */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static const char *tmp(const char *name) {
    static char bufs[8][1024];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 1024, "%s/%s", g_dir, name);
    return b;
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return b;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n)
        assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static float *decode_path(const char *path, const cn_audio_options *opt, size_t *n) {
    cn_audio_decoder *d;
    cn_error err = {0};
    if (cn_audio_open_file(path, opt, &d, &err) != CANARY_OK)
        fail_msg("open %s: %s", path, err.msg);
    float *x;
    if (cn_audio_decode_all(d, 0, &x, n, &err) != CANARY_OK)
        fail_msg("decode %s: %s", path, err.msg);
    cn_audio_close(d);
    return x;
}

static float *decode_memory(const char *path, const cn_audio_options *opt, size_t *n) {
    size_t len;
    uint8_t *bytes = read_all(path, &len);
    cn_audio_decoder *d;
    cn_error err = {0};
    if (cn_audio_open_memory(bytes, len, "upload", opt, &d, &err) != CANARY_OK)
        fail_msg("open %s from memory: %s", path, err.msg);
    float *x;
    if (cn_audio_decode_all(d, 0, &x, n, &err) != CANARY_OK)
        fail_msg("decode %s from memory: %s", path, err.msg);
    cn_audio_close(d);
    free(bytes);
    return x;
}

/* The second path: the ffmpeg CLI with an equal-weight downmix and soxr to 16 kHz. */
static float *decode_cli(const char *path, int channels, size_t *n) {
    const char *out = tmp("cli.f32");
    if (channels == 2)
        sh(FF "-i '%s' -vn -af 'aformat=sample_fmts=flt,pan=mono|c0=0.5*c0+0.5*c1,aresample=16000:resampler=soxr' -f f32le '%s'",
           path, out);
    else
        sh(FF "-i '%s' -vn -af 'aresample=16000:resampler=soxr' -ac 1 -f f32le '%s'", path, out);
    size_t bytes;
    float *x = (float *)read_all(out, &bytes);
    *n = bytes / sizeof(float);
    return x;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/audio", cn_test_tmpdir());
    mkdir(g_dir, 0755);
    /* Source: real speech when pocketsphinx-testdata is installed, else a tone. */
    struct stat sb;
    if (stat(SPEECH_RAW, &sb) == 0)
        sh(FF "-f s16le -ar 16000 -ac 1 -i " SPEECH_RAW " -c:a pcm_s16le '%s'", tmp("src16.wav"));
    else
        sh(FF "-f lavfi -i 'sine=frequency=500:sample_rate=16000:duration=2.79' -c:a pcm_s16le '%s'",
           tmp("src16.wav"));
    sh(FF "-i '%s' -f s16le '%s'", tmp("src16.wav"), tmp("src16.raw"));
    size_t bytes;
    int16_t *raw = (int16_t *)read_all(tmp("src16.raw"), &bytes);
    g_src16_n = bytes / 2;
    g_src16 = malloc(g_src16_n * sizeof(float));
    for (size_t i = 0; i < g_src16_n; i++)
        g_src16[i] = raw[i] / 32768.0f;
    free(raw);
    g_src_seconds = g_src16_n / 16000.0;
    /* A 44.1 kHz stereo master with different channels: speech left, a 300 Hz tone right. */
    sh(FF "-i '%s' -f lavfi -i 'sine=frequency=300:sample_rate=44100:duration=%.4f' -filter_complex "
          "'[0:a]aresample=44100:resampler=soxr,aformat=sample_fmts=fltp:channel_layouts=mono[l];"
          "[1:a]volume=0.3,aformat=sample_fmts=fltp:channel_layouts=mono[r];"
          "[l][r]join=inputs=2:channel_layout=stereo[a]' "
          "-map '[a]' -c:a pcm_s16le '%s'",
       tmp("src16.wav"), g_src_seconds, tmp("src44s.wav"));
    float *x = decode_cli(tmp("src44s.wav"), 2, &g_src44_n);
    free(x);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(g_src16);
    return 0;
}

typedef struct fmt_case {
    const char *file;
    const char *from;        /* "src16.wav" or "src44s.wav" */
    const char *args;        /* ffmpeg output options */
    int channels;            /* channels in the encoded file */
    int length_tol;          /* allowed |samples - source samples| at 16 kHz */
    bool video;              /* add a video stream */
} fmt_case;

/* Lossy codecs may add up to one codec frame at the end (e.g. 1152 samples at 44.1 kHz = 418 at
 * 16 kHz) when the container does not record the exact end; PCM/FLAC only resampling rounding. */
static const fmt_case k_formats[] = {
    {"pcm16_16k.wav", "src16.wav", "-c:a pcm_s16le", 1, 0, false},
    {"u8_8k.wav", "src44s.wav", "-ar 8000 -c:a pcm_u8", 2, 2, false},
    {"s24_44k.wav", "src44s.wav", "-c:a pcm_s24le", 2, 2, false},
    {"s32_48k.wav", "src44s.wav", "-ar 48000 -c:a pcm_s32le", 2, 2, false},
    {"f32_22k.wav", "src44s.wav", "-ar 22050 -c:a pcm_f32le", 2, 2, false},
    {"f64_32k_mono.wav", "src44s.wav", "-ar 32000 -ac 1 -c:a pcm_f64le", 1, 2, false},
    {"mono16k.flac", "src16.wav", "-c:a flac", 1, 0, false},
    {"stereo44k.flac", "src44s.wav", "-c:a flac", 2, 2, false},
    {"stereo44k.mp3", "src44s.wav", "-c:a libmp3lame -b:a 128k", 2, 420, false},
    {"stereo44k.ogg", "src44s.wav", "-c:a libvorbis -q:a 4", 2, 420, false},
    {"stereo48k.opus", "src44s.wav", "-c:a libopus -b:a 64k", 2, 420, false},
    {"stereo48k.webm", "src44s.wav", "-c:a libopus -b:a 64k", 2, 420, false},
    {"stereo44k.m4a", "src44s.wav", "-c:a aac -b:a 128k", 2, 420, false},
    /* ADTS records no encoder delay or padding: the 1024 priming samples and the last frame's
     * padding stay (every decoder, the ffmpeg CLI included, gives the same), < 2 frames. */
    {"stereo44k.aac", "src44s.wav", "-c:a aac -b:a 128k", 2, 745, false},
    {"video.mp4", "src44s.wav", "-c:v mpeg4 -c:a aac -b:a 128k -shortest", 2, 420, true},
    {"video.mov", "src44s.wav", "-c:v mpeg4 -c:a pcm_s16le -shortest", 2, 2, true},
    {"video.mkv", "src44s.wav", "-c:v mpeg4 -c:a flac -shortest", 2, 2, true},
};

static void test_every_format(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof k_formats / sizeof k_formats[0]; i++) {
        const fmt_case *fc = &k_formats[i];
        const char *path = tmp(fc->file);
        if (fc->video)
            sh(FF "-f lavfi -i 'testsrc=size=64x48:rate=5' -i '%s' -map 0:v -map 1:a %s '%s'",
               tmp(fc->from), fc->args, path);
        else
            sh(FF "-i '%s' %s '%s'", tmp(fc->from), fc->args, path);

        size_t n_file, n_mem, n_cli;
        float *a = decode_path(path, NULL, &n_file);
        float *b = decode_memory(path, NULL, &n_mem);
        float *c = decode_cli(path, fc->channels, &n_cli);
        /* file and memory input are the same decoder: identical output */
        assert_int_equal(n_file, n_mem);
        assert_memory_equal(a, b, n_file * sizeof(float));

        size_t n_src = strcmp(fc->from, "src16.wav") == 0 ? g_src16_n : g_src44_n;
        long dlen = (long)n_file - (long)n_src;
        long dcli = (long)n_file - (long)n_cli;
        size_t common = n_file < n_cli ? n_file : n_cli;
        double diff = max_abs_diff(a, c, common);
        double src_diff = fc->length_tol == 0 ? max_abs_diff(a, g_src16, common) : 0;
        print_message("%-18s %7zu samples (source %zu, cli %zu)  max|ours-cli| %.2g\n", fc->file,
                      n_file, n_src, n_cli, diff);
        bool ok = labs(dlen) <= fc->length_tol && labs(dcli) <= 160 && diff <= 1e-4 && src_diff == 0;
        if (!ok) {
            print_error("%s: length %+ld vs source (tolerance %d), %+ld vs cli; content diff %.3g, "
                        "source diff %.3g\n", fc->file, dlen, fc->length_tol, dcli, diff, src_diff);
            failures++;
        }
        /* the container's declared duration agrees with the samples (where it declares one; with a
         * video stream it may be the longer video's) */
        cn_audio_decoder *d;
        cn_error err = {0};
        assert_int_equal(cn_audio_open_file(path, NULL, &d, &err), CANARY_OK);
        const cn_audio_info *info = cn_audio_get_info(d);
        if (info->duration_s >= 0 && fabs(info->duration_s - n_src / 16000.0) > (fc->video ? 0.5 : 0.1)) {
            print_error("%s: declared duration %.3f s, source %.3f s\n", fc->file, info->duration_s,
                        n_src / 16000.0);
            failures++;
        }
        cn_audio_close(d);
        free(a);
        free(b);
        free(c);
    }
    assert_int_equal(failures, 0);
}

/* Small blocks give exactly the samples of one big read; the info describes the input. */
static void test_streaming_blocks(void **state) {
    (void)state;
    const char *path = tmp("stream.mp3");
    sh(FF "-i '%s' -c:a libmp3lame -b:a 96k '%s'", tmp("src44s.wav"), path);
    size_t n_all;
    float *all = decode_path(path, NULL, &n_all);
    cn_audio_decoder *d;
    cn_error err = {0};
    assert_int_equal(cn_audio_open_file(path, NULL, &d, &err), CANARY_OK);
    const cn_audio_info *info = cn_audio_get_info(d);
    assert_int_equal(info->input_rate, 44100);
    assert_int_equal(info->input_channels, 2);
    assert_string_equal(info->container, "mp3");
    assert_true(fabs(info->duration_s - g_src_seconds) < 0.1);
    float block[997];
    size_t pos = 0, got;
    for (;;) {
        assert_int_equal(cn_audio_read(d, block, 997, &got, &err), CANARY_OK);
        if (got == 0)
            break;
        assert_true(pos + got <= n_all);
        assert_memory_equal(block, all + pos, got * sizeof(float));
        pos += got;
        if (pos < n_all)
            assert_int_equal(got, 997); /* short blocks only at the end */
    }
    assert_int_equal(pos, n_all);
    assert_int_equal(cn_audio_samples_read(d), (int64_t)n_all);
    /* reading past the end keeps returning 0 without error */
    assert_int_equal(cn_audio_read(d, block, 997, &got, &err), CANARY_OK);
    assert_int_equal(got, 0);
    cn_audio_close(d);
    free(all);
}

static void test_raw_s16le(void **state) {
    (void)state;
    cn_audio_options opt = {.raw_s16le_rate = 16000};
    size_t n;
    float *x = decode_path(tmp("src16.raw"), &opt, &n);
    assert_int_equal(n, g_src16_n);
    assert_memory_equal(x, g_src16, n * sizeof(float)); /* no resampling at 16 kHz: exact */
    free(x);
    x = decode_memory(tmp("src16.raw"), &opt, &n);
    assert_int_equal(n, g_src16_n);
    assert_memory_equal(x, g_src16, n * sizeof(float));
    free(x);
    /* the same bytes declared as 8 kHz stereo: half the frames, upsampled x2 */
    opt = (cn_audio_options){.raw_s16le_rate = 8000, .raw_channels = 2};
    x = decode_path(tmp("src16.raw"), &opt, &n);
    assert_true(labs((long)n - (long)g_src16_n) <= 2);
    free(x);

    cn_audio_decoder *d = NULL;
    cn_error err = {0};
    opt = (cn_audio_options){.raw_s16le_rate = 100};
    assert_int_equal(cn_audio_open_file(tmp("src16.raw"), &opt, &d, &err), CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "sample rate 100 Hz"));
    assert_null(d);
    opt = (cn_audio_options){.raw_s16le_rate = 16000, .raw_channels = 1000};
    assert_int_equal(cn_audio_open_file(tmp("src16.raw"), &opt, &d, &err), CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "1000 audio channels"));
    opt = (cn_audio_options){.raw_s16le_rate = -5};
    assert_int_equal(cn_audio_open_file(tmp("src16.raw"), &opt, &d, &err), CANARY_EINVAL);
}

/* ---------------------------------------------------------------------------------------------
 * Bad input
 * ------------------------------------------------------------------------------------------- */
static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A canonical 16-bit PCM WAV header; data_bytes is what the header claims. */
static size_t wav_header(uint8_t *h, uint32_t rate, uint16_t channels, uint32_t data_bytes) {
    memcpy(h, "RIFF", 4);
    put_le(h + 4, 36 + (uint64_t)data_bytes > 0xffffffffu ? 0xffffffffu : 36 + data_bytes, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, 16, 4);
    put_le(h + 20, 1, 2);
    put_le(h + 22, channels, 2);
    put_le(h + 24, rate, 4);
    put_le(h + 28, (uint64_t)rate * channels * 2 > 0xffffffffu ? 0xffffffffu : rate * channels * 2, 4);
    put_le(h + 32, channels * 2, 2);
    put_le(h + 34, 16, 2);
    memcpy(h + 36, "data", 4);
    put_le(h + 40, data_bytes, 4);
    return 44;
}

static cn_status try_open_read(const char *path, const cn_audio_options *opt, size_t *n, cn_error *err) {
    cn_audio_decoder *d = NULL;
    *n = 0;
    cn_status st = cn_audio_open_file(path, opt, &d, err);
    if (st != CANARY_OK) {
        assert_null(d);
        assert_true(err->msg[0] != 0);
        return st;
    }
    float *x = NULL;
    st = cn_audio_decode_all(d, 0, &x, n, err);
    free(x);
    cn_audio_close(d);
    return st;
}

static void expect_error(const char *what, const char *path, const cn_audio_options *opt,
                         cn_status want, const char *needle) {
    cn_error err = {0};
    size_t n;
    cn_status st = try_open_read(path, opt, &n, &err);
    print_message("%-22s -> %s: %s\n", what, canary_status_str(st), err.msg);
    if (st != want)
        fail_msg("%s: expected %s, got %s (%s)", what, canary_status_str(want), canary_status_str(st), err.msg);
    if (needle && !strstr(err.msg, needle))
        fail_msg("%s: message '%s' lacks '%s'", what, err.msg, needle);
}

static void test_bad_inputs(void **state) {
    (void)state;
    uint8_t h[4096];
    cn_error err = {0};

    write_all(tmp("empty.wav"), "", 0);
    expect_error("empty file", tmp("empty.wav"), NULL, CANARY_EFORMAT, "empty");
    cn_audio_decoder *d = NULL;
    assert_int_equal(cn_audio_open_memory(h, 0, "upload.wav", NULL, &d, &err), CANARY_EFORMAT);
    assert_non_null(strstr(err.msg, "upload.wav: the upload is empty"));
    expect_error("missing file", tmp("does-not-exist.wav"), NULL, CANARY_ENOTFOUND, "does-not-exist.wav");
    expect_error("directory", g_dir, NULL, CANARY_EINVAL, "directory");
    /* a local file whose name looks like a URL is read as that file */
    sh("mkdir -p '%s/http:' && cp '%s' '%s/http:/x.wav'", g_dir, tmp("pcm16_16k.wav"), g_dir);
    size_t nurl;
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(g_dir), 0);
    float *xurl = decode_path("http://x.wav", NULL, &nurl);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(nurl, g_src16_n);
    free(xurl);

    /* truncated: a WAV cut inside its header; an MP3 cut in half still gives its first half; an
     * m4a cut in half has lost its index (moov at the end) */
    size_t len;
    uint8_t *wav = read_all(tmp("pcm16_16k.wav"), &len);
    write_all(tmp("trunc_hdr.wav"), wav, 30);
    expect_error("wav cut in its header", tmp("trunc_hdr.wav"), NULL, CANARY_EFORMAT, NULL);
    free(wav);
    uint8_t *mp3 = read_all(tmp("stereo44k.mp3"), &len);
    write_all(tmp("trunc.mp3"), mp3, len / 2);
    size_t n;
    assert_int_equal(try_open_read(tmp("trunc.mp3"), NULL, &n, &err), CANARY_OK);
    assert_true(n > g_src16_n / 3 && n < g_src16_n * 2 / 3);
    free(mp3);
    uint8_t *m4a = read_all(tmp("stereo44k.m4a"), &len);
    write_all(tmp("trunc.m4a"), m4a, len / 2);
    expect_error("m4a cut in half", tmp("trunc.m4a"), NULL, CANARY_EFORMAT, "trunc.m4a");
    free(m4a);

    /* not audio at all */
    sh(FF "-f lavfi -i 'color=c=red:size=16x16' -frames:v 1 '%s'", tmp("image.png"));
    expect_error("png image", tmp("image.png"), NULL, CANARY_EFORMAT, "png");
    write_all(tmp("notes.txt"), "This is a text file, not audio.\nLine two.\n", 43);
    expect_error("text file", tmp("notes.txt"), NULL, CANARY_EFORMAT, "notes.txt");
    sh(FF "-f lavfi -i 'testsrc=size=64x48:rate=5' -t 1 -c:v mpeg4 '%s'", tmp("silent_video.mp4"));
    expect_error("video without audio", tmp("silent_video.mp4"), NULL, CANARY_EFORMAT, "no audio stream");

    /* zero duration: a valid header and no samples */
    write_all(tmp("zero.wav"), h, wav_header(h, 16000, 1, 0));
    expect_error("zero-length wav", tmp("zero.wav"), NULL, CANARY_EFORMAT, "no decodable audio");

    /* one sample: decodes to exactly that sample */
    size_t hl = wav_header(h, 16000, 1, 2);
    put_le(h + hl, (uint16_t)-12345, 2);
    write_all(tmp("one.wav"), h, hl + 2);
    float *x;
    assert_int_equal(cn_audio_open_file(tmp("one.wav"), NULL, &d, &err), CANARY_OK);
    assert_int_equal(cn_audio_decode_all(d, 0, &x, &n, &err), CANARY_OK);
    assert_int_equal(n, 1);
    assert_true(x[0] == -12345 / 32768.0f);
    free(x);
    cn_audio_close(d);

    /* float samples that are NaN or infinite come out as silence, everything else untouched */
    {
        uint8_t fw[44 + 64 * 4];
        memcpy(fw, "RIFF", 4);
        put_le(fw + 4, 36 + 256, 4);
        memcpy(fw + 8, "WAVEfmt ", 8);
        put_le(fw + 16, 16, 4);
        put_le(fw + 20, 3, 2); /* IEEE float */
        put_le(fw + 22, 1, 2);
        put_le(fw + 24, 16000, 4);
        put_le(fw + 28, 64000, 4);
        put_le(fw + 32, 4, 2);
        put_le(fw + 34, 32, 2);
        memcpy(fw + 36, "data", 4);
        put_le(fw + 40, 256, 4);
        float vals[64];
        for (int i = 0; i < 64; i++)
            vals[i] = 0.01f * (float)i;
        vals[10] = NAN;
        vals[20] = INFINITY;
        vals[30] = -INFINITY;
        memcpy(fw + 44, vals, sizeof vals);
        write_all(tmp("nan.wav"), fw, sizeof fw);
        float *y;
        assert_int_equal(cn_audio_open_file(tmp("nan.wav"), NULL, &d, &err), CANARY_OK);
        assert_int_equal(cn_audio_decode_all(d, 0, &y, &n, &err), CANARY_OK);
        assert_int_equal(n, 64);
        for (int i = 0; i < 64; i++)
            assert_true(y[i] == (i == 10 || i == 20 || i == 30 ? 0.0f : vals[i]));
        free(y);
        cn_audio_close(d);
    }

    /* absurd sample rates */
    static const uint32_t rates[] = {0, 1, 999, 1000000, 0x7fffffffu, 0xffffffffu};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        hl = wav_header(h, rates[i], 1, 2000);
        memset(h + hl, 0x11, 2000);
        write_all(tmp("rate.wav"), h, hl + 2000);
        assert_int_not_equal(try_open_read(tmp("rate.wav"), NULL, &n, &err), CANARY_OK);
        print_message("wav at %u Hz -> %s\n", rates[i], err.msg);
        assert_non_null(strstr(err.msg, "rate.wav"));
    }
    /* absurd channel count */
    hl = wav_header(h, 16000, 300, 2400);
    memset(h + hl, 0, 2400);
    write_all(tmp("chans.wav"), h, hl + 2400);
    assert_int_not_equal(try_open_read(tmp("chans.wav"), NULL, &n, &err), CANARY_OK);
    print_message("wav with 300 channels -> %s\n", err.msg);

    /* a header that claims terabytes: RF64 declaring 2^40 data bytes, holding 1000 samples */
    uint8_t *rf = calloc(1, 4096);
    memcpy(rf, "RF64", 4);
    put_le(rf + 4, 0xffffffffu, 4);
    memcpy(rf + 8, "WAVEds64", 8);
    put_le(rf + 16, 28, 4);
    put_le(rf + 20, (1ull << 40) + 72, 8); /* riff size */
    put_le(rf + 28, 1ull << 40, 8);        /* data size: 1 TiB */
    put_le(rf + 36, 1ull << 39, 8);        /* sample count */
    put_le(rf + 44, 0, 4);
    memcpy(rf + 48, "fmt ", 4);
    put_le(rf + 52, 16, 4);
    put_le(rf + 56, 1, 2);
    put_le(rf + 58, 1, 2);
    put_le(rf + 60, 16000, 4);
    put_le(rf + 64, 32000, 4);
    put_le(rf + 68, 2, 2);
    put_le(rf + 70, 16, 2);
    memcpy(rf + 72, "data", 4);
    put_le(rf + 76, 0xffffffffu, 4);
    for (int i = 0; i < 1000; i++)
        put_le(rf + 80 + 2 * i, (uint16_t)(i * 7), 2);
    write_all(tmp("huge.wav"), rf, 80 + 2000);
    free(rf);
    assert_int_equal(cn_audio_open_file(tmp("huge.wav"), NULL, &d, &err), CANARY_OK);
    print_message("RF64 claiming 1 TiB: declared %.0f s\n", cn_audio_get_info(d)->duration_s);
    assert_int_equal(cn_audio_decode_all(d, 0, &x, &n, &err), CANARY_OK);
    assert_int_equal(n, 1000); /* what is really there, nothing allocated for the claim */
    assert_true(x[999] == (int16_t)(999 * 7) / 32768.0f);
    free(x);
    cn_audio_close(d);
    cn_audio_options lim = {.max_duration_s = 3600};
    expect_error("RF64 1 TiB, 1 h limit", tmp("huge.wav"), &lim, CANARY_ELIMIT, "declares");
}

/* The duration limit also holds while reading, for containers that declare nothing. */
static void test_duration_limit_while_reading(void **state) {
    (void)state;
    cn_audio_options opt = {.raw_s16le_rate = 16000, .max_duration_s = 1.0};
    cn_error err = {0};
    size_t n;
    assert_int_equal(try_open_read(tmp("src16.raw"), &opt, &n, &err), CANARY_ELIMIT);
    assert_non_null(strstr(err.msg, "limit of 1.0 s"));
}

static void test_public_api(void **state) {
    (void)state;
    canary_audio *a;
    char msg[256];
    assert_int_equal(canary_audio_open_file(tmp("mono16k.flac"), NULL, &a, msg, sizeof msg), CANARY_OK);
    assert_true(fabs(canary_audio_duration(a) - g_src_seconds) < 0.01);
    float block[4096];
    size_t got, total = 0;
    while (canary_audio_read(a, block, 4096, &got, msg, sizeof msg) == CANARY_OK && got > 0) {
        assert_memory_equal(block, g_src16 + total, got * sizeof(float));
        total += got;
    }
    assert_int_equal(total, g_src16_n);
    canary_audio_close(a);
    write_all(tmp("readme.txt"), "plain text\n", 11);
    assert_int_equal(canary_audio_open_file(tmp("readme.txt"), NULL, &a, msg, sizeof msg), CANARY_EFORMAT);
    assert_non_null(strstr(msg, "readme.txt"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_format),
        cmocka_unit_test(test_streaming_blocks),
        cmocka_unit_test(test_raw_s16le),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_duration_limit_while_reading),
        cmocka_unit_test(test_public_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

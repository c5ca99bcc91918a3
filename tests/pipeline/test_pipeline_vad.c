/* VAD: real recordings (pocketsphinx-testdata) placed between silences of known length, with
 * and without background noise, compared with hand-made labels (tests/pipeline/data/
 * vad_labels.tsv); synthetic speech from espeak-ng; noise-only input; streaming = one block. */
#include "test_util.h"

#include <math.h>
#include <stdbool.h>

#include "pipeline/vad.h"

#define SR 16000
#define DATA "/usr/share/pocketsphinx/test/data/"

typedef struct sig {
    float *x;
    size_t n, cap;
} sig;

static void sig_push(sig *s, float v) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        s->x = realloc(s->x, s->cap * sizeof *s->x);
        assert_non_null(s->x);
    }
    s->x[s->n++] = v;
}

static uint64_t rng = 1;
static double gauss(void) { /* Box-Muller over a 64-bit LCG: deterministic noise */
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u1 = ((double)(rng >> 11) + 1) / 9007199254740993.0;
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u2 = (double)(rng >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* Reads 16-bit mono 16 kHz PCM from a .raw file or the data chunk of a .wav file. */
static sig load_pcm(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (install pocketsphinx-testdata)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    long off = 0, end = len;
    if (len > 12 && memcmp(b, "RIFF", 4) == 0) {
        off = 12;
        while (off + 8 <= len) {
            uint32_t sz = b[off + 4] | b[off + 5] << 8 | b[off + 6] << 16 | (uint32_t)b[off + 7] << 24;
            if (memcmp(b + off, "data", 4) == 0) {
                off += 8;
                end = off + (long)sz < len ? off + (long)sz : len;
                break;
            }
            off += 8 + (long)sz;
        }
    }
    sig s = {0};
    for (long i = off; i + 1 < end; i += 2)
        sig_push(&s, (float)(int16_t)(b[i] | b[i + 1] << 8) / 32768.0f);
    free(b);
    return s;
}

static void append_silence(sig *s, double seconds, double noise_dbfs) {
    double a = noise_dbfs > -200 ? pow(10, noise_dbfs / 20) : 0;
    for (size_t i = 0; i < (size_t)(seconds * SR); i++)
        sig_push(s, (float)(a * gauss()));
}

static void append(sig *s, const sig *src, double noise_dbfs) {
    double a = noise_dbfs > -200 ? pow(10, noise_dbfs / 20) : 0;
    for (size_t i = 0; i < src->n; i++)
        sig_push(s, (float)(src->x[i] + a * gauss()));
}

typedef struct label {
    double start, end;
} label;

static size_t run_vad(const sig *s, size_t block, cn_span *out, size_t cap) {
    cn_vad_params p;
    cn_vad_params_default(&p);
    cn_vad *v;
    cn_error err;
    assert_int_equal(cn_vad_create(&p, &v, &err), CANARY_OK);
    size_t n = 0;
    int64_t last_w = 0;
    for (size_t i = 0; i < s->n; i += block) {
        size_t k = s->n - i < block ? s->n - i : block;
        assert_int_equal(cn_vad_feed(v, s->x + i, k, &err), CANARY_OK);
        n += cn_vad_take(v, out + n, cap - n);
        int64_t w = cn_vad_watermark(v);
        assert_true(w >= last_w); /* the watermark only moves forward ... */
        if (n)
            assert_true(w >= out[n - 1].start); /* ... and is past every region handed out */
        last_w = w;
    }
    assert_int_equal(cn_vad_finish(v, &err), CANARY_OK);
    n += cn_vad_take(v, out + n, cap - n);
    assert_int_equal(cn_vad_watermark(v), (int64_t)s->n);
    cn_vad_destroy(v);
    for (size_t i = 1; i < n; i++)
        assert_true(out[i].start >= out[i - 1].end);
    return n;
}

/* Every label is found with boundaries within tolerance, and no region lies outside the labels.
 * Tolerances: a start may come up to 0.6 s early (pad 0.2 s + breaths and room noise before the
 * first loud sample, which the -40 dBFS labels do not count) and 0.15 s late; an end 0.25 s early
 * (weak word endings under noise) or 0.6 s late. */
static void check_against_labels(const cn_span *r, size_t n, const label *lab, size_t nl, const char *what) {
    double err_sum = 0;
    int err_n = 0;
    for (size_t i = 0; i < n; i++) {
        double a = (double)r[i].start / SR, b = (double)r[i].end / SR;
        bool hit = false;
        for (size_t k = 0; k < nl; k++)
            hit |= a < lab[k].end + 0.6 && b > lab[k].start - 0.6;
        if (!hit)
            fail_msg("%s: region %.2f-%.2f s is outside every labelled utterance", what, a, b);
    }
    for (size_t k = 0; k < nl; k++) {
        double first = -1, last = -1, covered = 0;
        for (size_t i = 0; i < n; i++) {
            double a = (double)r[i].start / SR, b = (double)r[i].end / SR;
            if (b <= lab[k].start - 0.6 || a >= lab[k].end + 0.6)
                continue;
            if (first < 0)
                first = a;
            last = b;
            covered += fmin(b, lab[k].end) - fmax(a, lab[k].start) > 0 ? fmin(b, lab[k].end) - fmax(a, lab[k].start) : 0;
        }
        double len = lab[k].end - lab[k].start;
        if (first < 0)
            fail_msg("%s: utterance %.2f-%.2f s not detected", what, lab[k].start, lab[k].end);
        err_sum += fabs(first - lab[k].start) + fabs(last - lab[k].end);
        err_n += 2;
        if (first < lab[k].start - 0.6 || first > lab[k].start + 0.15 || last < lab[k].end - 0.25 ||
            last > lab[k].end + 0.6 || covered < 0.9 * len)
            fail_msg("%s: utterance %.2f-%.2f s detected as %.2f-%.2f s (%.0f%% covered)", what, lab[k].start,
                     lab[k].end, first, last, 100 * covered / len);
    }
    printf("# %s: %zu utterances, %zu regions, mean boundary distance %.3f s (pad included)\n", what, nl, n,
           err_sum / err_n);
}

static size_t load_labels(char names[][128], label *lab, size_t cap) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/pipeline/data/vad_labels.tsv", cn_test_source_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    size_t n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        assert_int_equal(sscanf(line, "%127s %lf %lf", names[n], &lab[n].start, &lab[n].end), 3);
        n++;
    }
    fclose(f);
    return n;
}

/* All recordings in one stream, between silences of 1.5-4 s, at a given background noise. */
static void recordings_case(double noise_dbfs, size_t block, const char *what) {
    char names[16][128];
    label lab[16], want[16];
    size_t nl = load_labels(names, lab, 16);
    assert_int_equal(nl, 8);
    sig s = {0};
    rng = 7;
    append_silence(&s, 3.0, noise_dbfs);
    for (size_t k = 0; k < nl; k++) {
        char path[512];
        snprintf(path, sizeof path, DATA "%s", names[k]);
        sig r = load_pcm(path);
        double off = (double)s.n / SR;
        want[k].start = off + lab[k].start;
        want[k].end = off + lab[k].end;
        append(&s, &r, noise_dbfs);
        append_silence(&s, 1.5 + 0.5 * (double)(k % 6), noise_dbfs);
        free(r.x);
    }
    static cn_span out[256];
    size_t n = run_vad(&s, block, out, 256);
    check_against_labels(out, n, want, nl, what);
    free(s.x);
}

static void test_recordings_digital_silence(void **state) { recordings_case(-300, 16000, "digital silence"); }
static void test_recordings_quiet_noise(void **state) { recordings_case(-55, 1234, "noise at -55 dBFS"); }
static void test_recordings_noisy(void **state) { recordings_case(-45, 333, "noise at -45 dBFS"); }

static void test_noise_only_and_noise_steps(void **state) {
    /* white noise whose level steps up and down by 25 dB: no speech anywhere */
    sig s = {0};
    rng = 3;
    append_silence(&s, 8, -60);
    append_silence(&s, 8, -35);
    append_silence(&s, 8, -60);
    append_silence(&s, 8, -300);
    static cn_span out[64];
    size_t n = run_vad(&s, 4000, out, 64);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "noise region %.2f-%.2f\n", (double)out[i].start / SR, (double)out[i].end / SR);
    assert_int_equal(n, 0);
    free(s.x);
}

static void test_espeak_synthetic_speech(void **state) {
    char dir[300], cmd[1024];
    snprintf(dir, sizeof dir, "%s", cn_test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "espeak-ng -w %s/tts.wav 'The quick brown fox jumps over the lazy dog.' && "
             "sox %s/tts.wav -r 16000 -c 1 -b 16 -e signed %s/tts16.wav",
             dir, dir, dir);
    if (system(cmd) != 0)
        fail_msg("espeak-ng or sox failed (install espeak-ng and sox): %s", cmd);
    char path[400];
    snprintf(path, sizeof path, "%s/tts16.wav", dir);
    sig tts = load_pcm(path);
    /* label the clean synthetic speech the same way as the recordings: first/last sample above 1% */
    size_t a = 0, b = tts.n;
    while (a < tts.n && fabsf(tts.x[a]) < 0.01f)
        a++;
    while (b > a && fabsf(tts.x[b - 1]) < 0.01f)
        b--;
    assert_true(b > a + SR);
    sig s = {0};
    rng = 11;
    label want[3];
    for (int k = 0; k < 3; k++) {
        append_silence(&s, 2.0 + k, -50);
        double off = (double)s.n / SR;
        want[k].start = off + (double)a / SR;
        want[k].end = off + (double)b / SR;
        append(&s, &tts, -50);
    }
    append_silence(&s, 2.5, -50);
    static cn_span out[64];
    size_t n = run_vad(&s, 8000, out, 64);
    check_against_labels(out, n, want, 3, "espeak-ng");
    free(s.x);
    free(tts.x);
}

static void test_block_size_does_not_matter(void **state) {
    char path[512];
    snprintf(path, sizeof path, DATA "numbers.raw");
    sig r = load_pcm(path);
    sig s = {0};
    rng = 5;
    append_silence(&s, 1.0, -50);
    append(&s, &r, -50);
    append_silence(&s, 2.0, -50);
    static cn_span a[64], b[64];
    size_t na = run_vad(&s, s.n, a, 64), nb = run_vad(&s, 1, b, 64);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].start, b[i].start);
        assert_int_equal(a[i].end, b[i].end);
    }
    free(s.x);
    free(r.x);
}

static void test_long_speech_is_split_and_params_checked(void **state) {
    /* 70 s of syllable-like sound without a pause (a 440 + 880 Hz tone whose loudness swings by
     * 26 dB four times a second): pieces of max_region_s, adjacent, covering it */
    sig s = {0};
    for (size_t i = 0; i < 70 * SR; i++) {
        double t = (double)i / SR, env = 0.05 + fabs(sin(2 * M_PI * 2 * t));
        sig_push(&s, (float)(env * (0.2 * sin(2 * M_PI * 440 * t) + 0.1 * sin(2 * M_PI * 880 * t))));
    }
    static cn_span out[16];
    size_t n = run_vad(&s, 16000, out, 16);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].start, 0);
    assert_int_equal(out[1].start, out[0].end);
    assert_int_equal(out[2].start, out[1].end);
    assert_true(out[2].end >= 70 * SR);
    free(s.x);

    cn_vad_params p;
    cn_vad_params_default(&p);
    cn_vad *v;
    cn_error err;
    p.sample_rate = 8000;
    assert_int_equal(cn_vad_create(&p, &v, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "8000"));
    cn_vad_params_default(&p);
    p.pad_s = 0.5;
    assert_int_equal(cn_vad_create(&p, &v, &err), CANARY_EINVAL);
    assert_non_null(strstr(err.msg, "pad_s"));
    /* NaN and Inf samples are treated as silence, not crashes */
    cn_vad_params_default(&p);
    assert_int_equal(cn_vad_create(&p, &v, &err), CANARY_OK);
    float bad[4000];
    for (int i = 0; i < 4000; i++)
        bad[i] = i % 2 ? NAN : INFINITY;
    assert_int_equal(cn_vad_feed(v, bad, 4000, &err), CANARY_OK);
    assert_int_equal(cn_vad_finish(v, &err), CANARY_OK);
    cn_span r;
    assert_int_equal(cn_vad_take(v, &r, 1), 0);
    assert_int_equal(cn_vad_feed(v, bad, 1, &err), CANARY_EINVAL);
    cn_vad_destroy(v);
}

/* VAD off: regions tile the input exactly (no padding, no gaps), in max_region_s pieces that become
 * final as soon as they are fed, and the watermark follows them. */
static void test_disabled_tiles_input_exactly(void **state) {
    cn_vad_params p;
    cn_vad_params_default(&p);
    p.disabled = true;
    p.max_region_s = 2.0;
    cn_vad *v;
    cn_error err;
    assert_int_equal(cn_vad_create(&p, &v, &err), CANARY_OK);
    static float zeros[7001];
    int64_t fed = 0;
    cn_span r[64];
    size_t n = 0;
    for (int i = 0; i < 11; i++) { /* 77011 samples, 4.81 s, fed in odd blocks */
        assert_int_equal(cn_vad_feed(v, zeros, 7001, &err), CANARY_OK);
        fed += 7001;
        n += cn_vad_take(v, r + n, 64 - n);
        assert_true(cn_vad_watermark(v) <= fed);
        assert_int_equal(cn_vad_watermark(v), (fed / 32000) * 32000);
    }
    assert_int_equal(cn_vad_finish(v, &err), CANARY_OK);
    n += cn_vad_take(v, r + n, 64 - n);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].end, 32000);
    assert_int_equal(r[1].start, 32000);
    assert_int_equal(r[1].end, 64000);
    assert_int_equal(r[2].start, 64000);
    assert_int_equal(r[2].end, 77011);
    assert_int_equal(cn_vad_watermark(v), 77011);
    cn_vad_destroy(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recordings_digital_silence),
        cmocka_unit_test(test_recordings_quiet_noise),
        cmocka_unit_test(test_recordings_noisy),
        cmocka_unit_test(test_noise_only_and_noise_steps),
        cmocka_unit_test(test_espeak_synthetic_speech),
        cmocka_unit_test(test_block_size_does_not_matter),
        cmocka_unit_test(test_long_speech_is_split_and_params_checked),
        cmocka_unit_test(test_disabled_tiles_input_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

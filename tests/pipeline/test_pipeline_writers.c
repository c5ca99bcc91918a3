/* Output writers: golden files for every format, plus format rules checked directly (valid
 * UTF-8, subtitle line lengths and time formats, JSON that parses with the expected fields).
 * Regenerate the goldens with CANARY_UPDATE_GOLDENS=1 after an intended change, and review the diff. */
#include "test_util.h"

#include <jansson.h>
#include <regex.h>

#include "canary/canary_pipeline.h"

static canary_word W(double s, double e, const char *t) { return (canary_word){s, e, (char *)t}; }

/* A fixed transcript exercising the awkward cases: non-ASCII text, an invalid byte, a control
 * character, markup characters, a segment too long for one cue, times past one hour. */
static void sample(canary_transcript *t, canary_segment *seg, canary_word *words, int *tokens) {
    static const char *long_text =
        "This segment is deliberately long so that it has to be split over more than one subtitle cue by the writer";
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 8; i++)
        tokens[i] = 1000 + i;
    seg[0] = (canary_segment){.id = 0, .start = 0.5, .end = 2.25, .text = "Hello, world.", .tokens = tokens,
                              .n_tokens = 3, .avg_logprob = -0.125, .words = words, .n_words = 2};
    words[0] = W(0.5, 1.0, "Hello,");
    words[1] = W(1.2, 2.25, "world.");
    seg[1] = (canary_segment){.id = 1, .start = 3.0, .end = 5.0, .text = "Grüße aus \"Köln\" \xE4\xB8\x96\xE7\x95\x8C \xFF\tok",
                              .tokens = tokens + 3, .n_tokens = 2, .avg_logprob = -0.5};
    seg[2] = (canary_segment){.id = 2, .start = 3725.004, .end = 3731.5, .text = (char *)long_text,
                              .tokens = tokens + 5, .n_tokens = 3, .avg_logprob = -1.0 / 3.0,
                              .words_approximate = false};
    seg[3] = (canary_segment){.id = 3, .start = 3732.0, .end = 3733.0, .text = "a <b> & c --> d",
                              .tokens = NULL, .n_tokens = 0, .avg_logprob = 0};
    t->task = "transcribe";
    t->language = "en";
    t->duration = 3734.25;
    t->text = "Hello, world. Grüße aus \"Köln\" \xE4\xB8\x96\xE7\x95\x8C \xFF\tok This segment is deliberately long so that it "
              "has to be split over more than one subtitle cue by the writer a <b> & c --> d";
    t->segments = seg;
    t->n_segments = 4;
}

static bool valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (!n || (n == 2 && *p < 0xC2))
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

static size_t cps(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static void check_golden(const char *name, const char *got) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/pipeline/golden/%s", cn_test_source_dir(), name);
    const char *upd = getenv("CANARY_UPDATE_GOLDENS");
    if (upd && strcmp(upd, "1") == 0) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
        return;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("golden file %s is missing (CANARY_UPDATE_GOLDENS=1 creates it)", path);
    static char want[65536];
    size_t n = fread(want, 1, sizeof want - 1, f);
    fclose(f);
    want[n] = 0;
    if (strcmp(want, got) != 0) {
        fprintf(stderr, "---- %s differs; got:\n%s\n----\n", name, got);
        fail_msg("output differs from %s", path);
    }
}

static char *render(canary_output_format f) {
    canary_transcript t;
    canary_segment seg[4];
    canary_word words[2];
    int tokens[8];
    sample(&t, seg, words, tokens);
    char *out;
    assert_int_equal(canary_transcript_render(&t, f, &out), CANARY_OK);
    assert_non_null(out);
    assert_true(valid_utf8(out));
    return out;
}

static void test_text(void **state) {
    char *s = render(CANARY_FORMAT_TEXT);
    check_golden("sample.txt", s);
    assert_non_null(strstr(s, "\xEF\xBF\xBD ok\n")); /* invalid byte replaced, tab turned into a space */
    free(s);
}

static void test_json(void **state) {
    char *s = render(CANARY_FORMAT_JSON);
    check_golden("sample.json", s);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    assert_non_null(j);
    assert_true(json_is_string(json_object_get(j, "text")));
    assert_int_equal(json_object_size(j), 1);
    json_decref(j);
    free(s);
}

static void test_verbose_json(void **state) {
    char *s = render(CANARY_FORMAT_VERBOSE_JSON);
    check_golden("sample.verbose.json", s);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "task")), "transcribe");
    assert_string_equal(json_string_value(json_object_get(j, "language")), "en");
    assert_float_equal(json_number_value(json_object_get(j, "duration")), 3734.25, 1e-9);
    json_t *segs = json_object_get(j, "segments");
    assert_int_equal(json_array_size(segs), 4);
    json_t *s0 = json_array_get(segs, 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "id")), 0);
    assert_float_equal(json_number_value(json_object_get(s0, "start")), 0.5, 1e-9);
    assert_float_equal(json_number_value(json_object_get(s0, "end")), 2.25, 1e-9);
    assert_int_equal(json_array_size(json_object_get(s0, "tokens")), 3);
    assert_float_equal(json_number_value(json_object_get(s0, "avg_logprob")), -0.125, 1e-9);
    json_t *words = json_object_get(j, "words");
    assert_int_equal(json_array_size(words), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(words, 1), "word")), "world.");
    assert_true(json_is_false(json_object_get(j, "words_approximate")));
    json_decref(j);
    free(s);
}

/* Checks cue structure: index (srt), "HH:MM:SS,mmm --> HH:MM:SS,mmm", 1-2 text lines of <= 42 chars. */
static void check_cues(const char *s, bool vtt) {
    regex_t re;
    assert_int_equal(regcomp(&re, vtt ? "^[0-9]{2}:[0-5][0-9]:[0-5][0-9]\\.[0-9]{3} --> [0-9]{2}:[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}$"
                                      : "^[0-9]{2}:[0-5][0-9]:[0-5][0-9],[0-9]{3} --> [0-9]{2}:[0-5][0-9]:[0-5][0-9],[0-9]{3}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    const char *p = s;
    if (vtt) {
        assert_true(strncmp(p, "WEBVTT\n\n", 8) == 0);
        p += 8;
    }
    int cue = 0;
    while (*p) {
        cue++;
        char line[256];
        const char *e = strchr(p, '\n');
        assert_non_null(e);
        if (!vtt) {
            snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
            assert_int_equal(atoi(line), cue);
            p = e + 1;
            e = strchr(p, '\n');
        }
        snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
        assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
        p = e + 1;
        int lines = 0;
        while (*p && *p != '\n') {
            e = strchr(p, '\n');
            assert_non_null(e);
            assert_true(cps(p, (size_t)(e - p)) <= 42);
            char text[256];
            snprintf(text, sizeof text, "%.*s", (int)(e - p), p);
            assert_null(strstr(text, "-->"));
            lines++;
            p = e + 1;
        }
        assert_true(lines >= 1 && lines <= 2);
        assert_int_equal(*p, '\n');
        p++;
    }
    assert_true(cue >= 5); /* the long segment became more than one cue */
    regfree(&re);
}

static void test_srt(void **state) {
    char *s = render(CANARY_FORMAT_SRT);
    check_golden("sample.srt", s);
    check_cues(s, false);
    assert_non_null(strstr(s, "01:02:05,004 --> "));
    free(s);
}

static void test_vtt(void **state) {
    char *s = render(CANARY_FORMAT_VTT);
    check_golden("sample.vtt", s);
    check_cues(s, true);
    assert_non_null(strstr(s, "a &lt;b&gt; &amp; c --&gt; d\n")); /* no raw "-->" or markup in cue text */
    assert_non_null(strstr(s, "01:02:05.004 --> "));
    free(s);
}

/* A time on a half millisecond (1.0005 s is stored just below it, 1.0005 x 1000 rounds to
 * 1000.5): every format shows the same millisecond, as the service's responses do. */
static void test_times_agree(void **state) {
    (void)state;
    canary_segment seg = {.id = 0, .start = 1.0005, .end = 65.2975, .text = "x"};
    canary_transcript t = {.task = "transcribe", .language = "en", .text = "x", .duration = 65.2975,
                           .segments = &seg, .n_segments = 1};
    char *v, *srt;
    assert_int_equal(canary_transcript_render(&t, CANARY_FORMAT_VERBOSE_JSON, &v), CANARY_OK);
    assert_int_equal(canary_transcript_render(&t, CANARY_FORMAT_SRT, &srt), CANARY_OK);
    assert_non_null(strstr(v, "\"start\":1.001,\"end\":65.298"));
    assert_non_null(strstr(v, "\"duration\":65.298"));
    assert_non_null(strstr(srt, "00:00:01,001 --> 00:01:05,298"));
    free(v);
    free(srt);
}

static void test_format_names(void **state) {
    canary_output_format f;
    const char *names[] = {"text", "json", "verbose_json", "srt", "vtt"};
    const char *ext[] = {"txt", "json", "json", "srt", "vtt"};
    for (int i = 0; i < 5; i++) {
        assert_true(canary_output_format_parse(names[i], &f));
        assert_int_equal(f, i);
        assert_string_equal(canary_output_format_name(f), names[i]);
        assert_string_equal(canary_output_format_ext(f), ext[i]);
    }
    assert_false(canary_output_format_parse("xml", &f));
    assert_false(canary_output_format_parse(NULL, &f));
    char *out = (char *)1;
    canary_transcript t = {0};
    assert_int_equal(canary_transcript_render(&t, (canary_output_format)99, &out), CANARY_EINVAL);
    assert_null(out);
    /* an empty transcript renders to valid, empty documents */
    assert_int_equal(canary_transcript_render(&t, CANARY_FORMAT_VTT, &out), CANARY_OK);
    assert_string_equal(out, "WEBVTT\n\n");
    free(out);
    assert_int_equal(canary_transcript_render(&t, CANARY_FORMAT_JSON, &out), CANARY_OK);
    assert_string_equal(out, "{\"text\":\"\"}\n");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),  cmocka_unit_test(test_json), cmocka_unit_test(test_verbose_json),
        cmocka_unit_test(test_srt),   cmocka_unit_test(test_vtt),  cmocka_unit_test(test_format_names), cmocka_unit_test(test_times_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tokenizers of the four tiny generated models: detokenization and encoding equal the
 * sentencepiece library (tokenizer_oracle.py), special-token ids and prompts equal the spec's
 * tables (§6.3, §6.4, §6.6), languages and prompt options are checked with clear errors. */
#include "test_util.h"

#include "nemo/nemo.h"
#include "nemo/tokenizer.h"

static cn_nemo *open_model(const char *layout) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), layout);
    cn_nemo *m = NULL;
    cn_error err;
    if (cn_nemo_open(path, NULL, &m, &err))
        fail_msg("%s", err.msg);
    return m;
}

static size_t parse_ids(const char *s, int *ids, size_t cap) {
    size_t n = 0;
    if (!strcmp(s, "-"))
        return 0;
    while (*s && n < cap) {
        ids[n++] = (int)strtol(s, (char **)&s, 10);
        if (*s == ',')
            s++;
    }
    return n;
}

static char *unhex(const char *h) {
    size_t n = strcmp(h, "-") ? strlen(h) / 2 : 0;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        sscanf(h + 2 * i, "%2hhx", (unsigned char *)&s[i]);
    s[n] = 0;
    return s;
}

static void check_oracle(const char *layout) {
    cn_nemo *m = open_model(layout);
    const cn_tokenizer *t = cn_nemo_tokenizer(m);
    char path[1024];
    snprintf(path, sizeof path, "%s/nemo_fixtures/tok_%s.txt", cn_test_binary_dir(), layout);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("missing %s", path);
    static char line[1 << 16];
    int ids[4096];
    size_t nd = 0, ne = 0, np = 0;
    cn_error err;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *save, *kind = strtok_r(line, " ", &save);
        if (!strcmp(kind, "D")) {
            size_t n = parse_ids(strtok_r(NULL, " ", &save), ids, 4096);
            char *want = unhex(strtok_r(NULL, " ", &save));
            char *got = NULL;
            assert_int_equal(cn_tok_decode(t, ids, n, &got, &err), CANARY_OK);
            if (strcmp(got, want))
                fail_msg("%s: decode #%zu: got '%s', sentencepiece/NeMo give '%s'", layout, nd, got, want);
            free(got);
            free(want);
            nd++;
        } else if (!strcmp(kind, "E")) {
            char *lang = strtok_r(NULL, " ", &save);
            char *text = unhex(strtok_r(NULL, " ", &save));
            size_t n = parse_ids(strtok_r(NULL, " ", &save), ids, 4096);
            int *got = NULL;
            size_t ng = 0;
            cn_status st = strcmp(lang, "-") ? cn_tok_encode_lang(t, lang, text, &got, &ng, &err)
                                             : cn_tok_encode(t, text, &got, &ng, &err);
            if (st)
                fail_msg("%s: encode '%s': %s", layout, text, err.msg);
            if (ng != n || memcmp(got, ids, n * sizeof *ids))
                fail_msg("%s: encode '%s' (%s) differs from sentencepiece (%zu vs %zu ids)", layout, text, lang, ng, n);
            free(got);
            free(text);
            ne++;
        } else if (!strcmp(kind, "P")) {
            size_t n = parse_ids(strtok_r(NULL, " ", &save), ids, 4096);
            cn_prompt_opts o = {.source_lang = "de", .target_lang = "en", .pnc = false, .itn = true, .timestamps = true};
            int got[64];
            size_t ng;
            assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_OK);
            assert_int_equal(ng, n);
            assert_memory_equal(got, ids, n * sizeof *ids);
            np++;
        }
    }
    fclose(f);
    assert_true(nd >= 300 && ne >= 150);
    if (!strcmp(layout, "canary-1b-v2"))
        assert_int_equal(np, 1);
    cn_nemo_close(m);
}

static void test_oracle_canary_1b(void **s) { check_oracle("canary-1b"); }
static void test_oracle_canary_1b_flash(void **s) { check_oracle("canary-1b-flash"); }
static void test_oracle_canary_180m_flash(void **s) { check_oracle("canary-180m-flash"); }
static void test_oracle_canary_1b_v2(void **s) { check_oracle("canary-1b-v2"); }

static void expect_prompt(const cn_tokenizer *t, cn_prompt_format fmt, const cn_prompt_opts *o, const int *want,
                          size_t n) {
    int got[64];
    size_t ng = 0;
    cn_error err;
    cn_status st = cn_tok_build_prompt(t, fmt, o, got, 64, &ng, &err);
    if (st)
        fail_msg("%s", err.msg);
    assert_int_equal(ng, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("prompt id %zu: %d (%s), spec says %d (%s)", i, got[i], cn_tok_piece(t, got[i]), want[i],
                     cn_tok_piece(t, want[i]));
}

/* spec §6.3: canary-1b spl_tokens ids */
static void test_canary1_prompt_table(void **s) {
    cn_nemo *m = open_model("canary-1b");
    const cn_tokenizer *t = cn_nemo_tokenizer(m);
    assert_int_equal(cn_tok_eos(t), 2);
    assert_int_equal(cn_tok_bos(t), 3);
    assert_int_equal(cn_tok_pad(t), 1);
    assert_int_equal(cn_tok_special(t, "<|nospeech|>"), 12);
    assert_int_equal(cn_tok_vocab_size(t), 32 + 4 * 128);
    assert_int_equal(cn_tok_language_count(t), 4);
    const char *langs[] = {"en", "de", "es", "fr"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(cn_tok_language_at(t, (size_t)i), langs[i]); /* YAML order */
    assert_null(cn_tok_language_at(t, 4));
    /* <|SOT|> <|SRC|> <|TASK|> <|TGT|> <|PNC|> */
    expect_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "en", .pnc = true}, (int[]){3, 4, 8, 4, 11}, 5);
    expect_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "de", .target_lang = "de"},
                  (int[]){3, 5, 8, 5, 10}, 5);
    expect_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "en", .target_lang = "fr", .pnc = true},
                  (int[]){3, 4, 9, 7, 11}, 5);
    expect_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "es", .target_lang = "en"},
                  (int[]){3, 6, 9, 4, 10}, 5);
    cn_error err;
    int ids[16];
    size_t n;
    assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "en", .itn = true},
                                         ids, 16, &n, &err),
                     CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "ITN"));
    assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "it"}, ids, 16, &n, &err),
                     CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'it'"));
    assert_non_null(strstr(err.msg, "en, de, es, fr"));
    assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY, &(cn_prompt_opts){.source_lang = "en"}, ids, 4, &n, &err),
                     CANARY_ELIMIT);
    /* special ids never reach the text; a language block's own <unk> stays literal as in NeMo */
    assert_true(cn_tok_is_special(t, 3));
    assert_false(cn_tok_is_special(t, 40));
    assert_int_equal(cn_tok_timestamp_value(t, 3), -1);
    char *text;
    int seq[] = {3, 4, 8, 4, 11, 32, 2};
    assert_int_equal(cn_tok_decode(t, seq, 7, &text, &err), CANARY_OK);
    assert_string_equal(text, "<unk>");
    free(text);
    cn_nemo_close(m);
}

/* spec §6.4: canary2 spl_tokens ids (flash models) */
static void test_canary2_prompt_table(void **s) {
    const char *layouts[] = {"canary-1b-flash", "canary-180m-flash"};
    for (int k = 0; k < 2; k++) {
        cn_nemo *m = open_model(layouts[k]);
        const cn_tokenizer *t = cn_nemo_tokenizer(m);
        assert_int_equal(cn_tok_eos(t), 3);
        assert_int_equal(cn_tok_bos(t), 4);
        assert_int_equal(cn_tok_pad(t), 2);
        assert_int_equal(cn_tok_special(t, "<|nospeech|>"), 1);
        assert_int_equal(cn_tok_special(t, "<|en|>"), 62);
        assert_int_equal(cn_tok_special(t, "<|fr|>"), 69);
        assert_int_equal(cn_tok_special(t, "<|de|>"), 76);
        assert_int_equal(cn_tok_special(t, "<|es|>"), 169);
        assert_int_equal(cn_tok_special(t, "<|0|>"), 205);
        assert_int_equal(cn_tok_special(t, "<|899|>"), 1104);
        assert_int_equal(cn_tok_special(t, "<|spk0|>"), 1105);
        assert_int_equal(cn_tok_special(t, "<|spltoken29|>"), 1150);
        assert_int_equal(cn_tok_special(t, "<|nosuchtoken|>"), -1);
        assert_int_equal(cn_tok_timestamp_value(t, 205), 0);
        assert_int_equal(cn_tok_timestamp_value(t, 1104), 899);
        assert_int_equal(cn_tok_timestamp_value(t, 1105), -1);
        assert_string_equal(cn_tok_piece(t, 1151), "\xE2\x96\x81");
        assert_null(cn_tok_piece(t, cn_tok_vocab_size(t)));
        assert_int_equal(cn_tok_vocab_size(t), 1152 + 4 * 128);
        /* <|startofcontext|> <|SOT|> <|EMO|> <|SRC|> <|TGT|> <|PNC|> <|ITN|> <|TS|> <|DIAR|> */
        expect_prompt(t, CN_PROMPT_CANARY2, &(cn_prompt_opts){.source_lang = "en", .pnc = true},
                      (int[]){7, 4, 16, 62, 62, 5, 9, 11, 13}, 9);
        expect_prompt(t, CN_PROMPT_CANARY2,
                      &(cn_prompt_opts){.source_lang = "de", .target_lang = "en", .itn = true, .timestamps = true,
                                        .diarize = true, .emotion = "happy"},
                      (int[]){7, 4, 18, 76, 62, 6, 8, 10, 12}, 9);
        expect_prompt(t, CN_PROMPT_CANARY2, &(cn_prompt_opts){.source_lang = "en", .target_lang = "es", .pnc = true},
                      (int[]){7, 4, 16, 62, 169, 5, 9, 11, 13}, 9);
        /* an optional decoder context sits between <|startofcontext|> and <|startoftranscript|> */
        int *ctx;
        size_t nctx;
        cn_error err;
        assert_int_equal(cn_tok_encode_lang(t, "en", "ab", &ctx, &nctx, &err), CANARY_OK);
        assert_true(nctx >= 1);
        int got[64];
        size_t ng;
        cn_prompt_opts o = {.source_lang = "en", .pnc = true, .decoder_context = ctx, .n_decoder_context = nctx};
        assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_OK);
        assert_int_equal(ng, 9 + nctx);
        assert_int_equal(got[0], 7);
        assert_memory_equal(got + 1, ctx, nctx * sizeof *ctx);
        assert_int_equal(got[1 + nctx], 4);
        free(ctx);
        o.decoder_context = (int[]){62};
        o.n_decoder_context = 1;
        assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_EINVAL);
        o = (cn_prompt_opts){.source_lang = "en", .emotion = "bored"};
        assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_EINVAL);
        assert_non_null(strstr(err.msg, "bored"));
        o = (cn_prompt_opts){.source_lang = "en", .target_lang = "ja"};
        assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_ENOTFOUND);
        assert_non_null(strstr(err.msg, "target language 'ja'"));
        o = (cn_prompt_opts){0};
        assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_EINVAL);
        assert_int_equal(cn_tok_encode(t, "ab", &ctx, &nctx, &err), CANARY_EUNSUPPORTED);
        assert_int_equal(cn_tok_encode_lang(t, "xx", "ab", &ctx, &nctx, &err), CANARY_ENOTFOUND);
        /* the 1b-flash tokenizer has no task tokens: the canary (v1) format cannot be built */
        o = (cn_prompt_opts){.source_lang = "en"};
        assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY, &o, got, 64, &ng, &err), CANARY_EUNSUPPORTED);
        assert_non_null(strstr(err.msg, "<|transcribe|>"));
        /* timestamp tokens are dropped from text */
        int seq[] = {205, 1152 + 5, 1104};
        char *text;
        assert_int_equal(cn_tok_decode(t, seq, 3, &text, &err), CANARY_OK);
        assert_null(strstr(text, "<|"));
        free(text);
        cn_nemo_close(m);
    }
}

static void test_v2_unified(void **s) {
    cn_nemo *m = open_model("canary-1b-v2");
    const cn_tokenizer *t = cn_nemo_tokenizer(m);
    assert_int_equal(cn_tok_vocab_size(t), 1900);
    assert_int_equal(cn_tok_eos(t), 3);
    assert_int_equal(cn_tok_bos(t), 4);
    assert_int_equal(cn_tok_language_count(t), 25);
    assert_string_equal(cn_tok_language_at(t, 0), "bg");
    assert_string_equal(cn_tok_language_at(t, 24), "uk");
    /* NeMo's encode of the prompt string: the dummy-prefix piece, then the 9 special tokens */
    int got[64];
    size_t ng;
    cn_error err;
    cn_prompt_opts o = {.source_lang = "en", .pnc = true};
    assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_OK);
    assert_int_equal(ng, 10);
    assert_string_equal(cn_tok_piece(t, got[0]), "\xE2\x96\x81");
    assert_int_equal(got[1], cn_tok_special(t, "<|startofcontext|>"));
    assert_int_equal(got[4], cn_tok_special(t, "<|en|>"));
    o.source_lang = "ja"; /* a tag exists in the tokenizer, but the model does not support it */
    assert_int_equal(cn_tok_build_prompt(t, CN_PROMPT_CANARY2, &o, got, 64, &ng, &err), CANARY_ENOTFOUND);
    cn_nemo_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_canary_1b),
        cmocka_unit_test(test_oracle_canary_1b_flash),
        cmocka_unit_test(test_oracle_canary_180m_flash),
        cmocka_unit_test(test_oracle_canary_1b_v2),
        cmocka_unit_test(test_canary1_prompt_table),
        cmocka_unit_test(test_canary2_prompt_table),
        cmocka_unit_test(test_v2_unified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

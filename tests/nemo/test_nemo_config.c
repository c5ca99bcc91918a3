/* model_config.yaml -> cn_model_desc: values, defaults, interpolations and precise errors. */
#include "test_util.h"

#include "nemo/model_config.h"

/* A canary2 config in NeMo's shape (the keys an engine needs; training keys omitted). */
static const char *BASE =
    "sample_rate: 16000\n"
    "prompt_format: canary2\n"
    "model_defaults:\n"
    "  asr_enc_hidden: 512\n"
    "  lm_dec_hidden: 1024\n"
    "tokenizer:\n"
    "  dir: null\n"
    "  type: agg\n"
    "  langs:\n"
    "    spl_tokens:\n"
    "      type: bpe\n"
    "      model_path: nemo:aaaa_tokenizer.model\n"
    "    en:\n"
    "      model_path: nemo:bbbb_tokenizer.model\n"
    "    de:\n"
    "      model_path: nemo:cccc_tokenizer.model\n"
    "preprocessor:\n"
    "  _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor\n"
    "  sample_rate: 16000\n"
    "  normalize: per_feature\n"
    "  window_size: 0.025\n"
    "  window_stride: 0.01\n"
    "  window: hann\n"
    "  features: 128\n"
    "  n_fft: 512\n"
    "  log: true\n"
    "  frame_splicing: 1\n"
    "  dither: 1.0e-05\n"
    "  pad_to: 0\n"
    "  pad_value: 0.0\n"
    "encoder:\n"
    "  _target_: nemo.collections.asr.modules.ConformerEncoder\n"
    "  feat_in: ${preprocessor.features}\n"
    "  feat_out: -1\n"
    "  n_layers: 17\n"
    "  d_model: ${model_defaults.asr_enc_hidden}\n"
    "  subsampling: dw_striding\n"
    "  subsampling_factor: 8\n"
    "  subsampling_conv_channels: 256\n"
    "  causal_downsampling: false\n"
    "  ff_expansion_factor: 4\n"
    "  self_attention_model: rel_pos\n"
    "  n_heads: 8\n"
    "  att_context_size: [-1, -1]\n"
    "  xscaling: false\n"
    "  untie_biases: true\n"
    "  pos_emb_max_len: 5000\n"
    "  conv_kernel_size: 9\n"
    "  conv_norm_type: batch_norm\n"
    "  conv_context_size: null\n"
    "transf_encoder:\n"
    "  num_layers: 0\n"
    "transf_decoder:\n"
    "  pre_ln_final_layer_norm: true\n"
    "  config_dict:\n"
    "    max_sequence_length: 1024\n"
    "    num_token_types: 0\n"
    "    learn_positional_encodings: false\n"
    "    hidden_size: 1024\n"
    "    inner_size: 4096\n"
    "    num_layers: 4\n"
    "    num_attention_heads: 8\n"
    "    hidden_act: relu\n"
    "    pre_ln: true\n"
    "head:\n"
    "  num_layers: 1\n"
    "  log_softmax: true\n"
    "  hidden_size: 1024\n"
    "  num_classes: 5248\n"
    "decoding:\n"
    "  strategy: beam\n"
    "  beam:\n"
    "    beam_size: 1\n"
    "    len_pen: 1.0\n"
    "    max_generation_delta: 50\n"
    "target: nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel\n"
    "nemo_version: 2.3.0rc0\n";

static cn_status parse(const char *yaml, cn_model_desc *d, cn_tok_config *t, cn_error *err) {
    return cn_model_config_parse(yaml, strlen(yaml), "model_config.yaml", d, t, err);
}

/* BASE with the first occurrence of `from` replaced by `to`. */
static char *edit(const char *from, const char *to) {
    const char *at = strstr(BASE, from);
    if (!at)
        fail_msg("test bug: '%s' not in BASE", from);
    size_t n = strlen(BASE) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - BASE), BASE, to, at + strlen(from));
    return s;
}

static void expect_error(const char *from, const char *to, cn_status code, const char *needle1, const char *needle2) {
    char *y = edit(from, to);
    cn_model_desc d;
    cn_tok_config *t = calloc(1, sizeof *t);
    cn_error err;
    cn_status st = parse(y, &d, t, &err);
    if (st != code)
        fail_msg("editing '%s' -> '%s': status %d (%s), expected %d", from, to, st, err.msg, code);
    if (needle1 && !strstr(err.msg, needle1))
        fail_msg("message '%s' lacks '%s'", err.msg, needle1);
    if (needle2 && !strstr(err.msg, needle2))
        fail_msg("message '%s' lacks '%s'", err.msg, needle2);
    free(t);
    free(y);
}

static void test_values(void **s) {
    cn_model_desc d;
    cn_tok_config *t = calloc(1, sizeof *t);
    cn_error err;
    cn_status st = parse(BASE, &d, t, &err);
    if (st)
        fail_msg("%s", err.msg);
    assert_int_equal(d.prompt_format, CN_PROMPT_CANARY2);
    assert_string_equal(d.nemo_version, "2.3.0rc0");
    assert_int_equal(d.pre.sample_rate, 16000);
    assert_int_equal(d.pre.n_mels, 128);
    assert_int_equal(d.pre.n_fft, 512);
    assert_int_equal(d.pre.win_length, 400);
    assert_int_equal(d.pre.hop_length, 160);
    assert_string_equal(d.pre.window, "hann");
    assert_string_equal(d.pre.normalize, "per_feature");
    assert_true(d.pre.preemph == 0.97);
    assert_true(d.pre.lowfreq == 0.0 && d.pre.highfreq == 8000.0);
    assert_true(d.pre.log_zero_guard_value == 0x1p-24);
    assert_string_equal(d.pre.log_zero_guard_type, "add");
    assert_true(d.pre.mag_power == 2.0);
    assert_true(d.pre.dither == 1e-5);
    assert_int_equal(d.pre.pad_to, 0);
    assert_true(d.pre.log);
    assert_int_equal(d.pre.frame_splicing, 1);
    assert_string_equal(d.pre.mel_norm, "slaney");
    assert_false(d.pre.exact_pad);
    assert_int_equal(d.enc.feat_in, 128); /* ${preprocessor.features} */
    assert_int_equal(d.enc.n_layers, 17);
    assert_int_equal(d.enc.d_model, 512); /* ${model_defaults.asr_enc_hidden} */
    assert_int_equal(d.enc.n_heads, 8);
    assert_int_equal(d.enc.ff_expansion_factor, 4);
    assert_int_equal(d.enc.conv_kernel_size, 9);
    assert_string_equal(d.enc.conv_norm_type, "batch_norm");
    assert_string_equal(d.enc.subsampling, "dw_striding");
    assert_int_equal(d.enc.subsampling_factor, 8);
    assert_int_equal(d.enc.subsampling_conv_channels, 256);
    assert_string_equal(d.enc.self_attention_model, "rel_pos");
    assert_int_equal(d.enc.att_context_left, -1);
    assert_int_equal(d.enc.att_context_right, -1);
    assert_false(d.enc.xscaling);
    assert_true(d.enc.untie_biases);
    assert_int_equal(d.enc.pos_emb_max_len, 5000);
    assert_true(d.enc.use_bias);
    assert_int_equal(d.asr_enc_hidden, 512);
    assert_int_equal(d.lm_dec_hidden, 1024);
    assert_true(d.has_enc_dec_proj);
    assert_int_equal(d.dec.n_layers, 4);
    assert_int_equal(d.dec.hidden, 1024);
    assert_int_equal(d.dec.inner, 4096);
    assert_int_equal(d.dec.n_heads, 8);
    assert_int_equal(d.dec.max_seq_len, 1024);
    assert_string_equal(d.dec.hidden_act, "relu");
    assert_true(d.dec.pre_ln);
    assert_true(d.dec.pre_ln_final_layer_norm);
    assert_false(d.dec.learn_positional_encodings);
    assert_int_equal(d.dec.vocab_size, 5248);
    assert_string_equal(d.decoding.strategy, "beam");
    assert_int_equal(d.decoding.beam_size, 1);
    assert_true(d.decoding.length_penalty == 0.0); /* len_pen is ignored by NeMo */
    assert_int_equal(d.decoding.max_generation_delta, 50);
    assert_string_equal(d.variant, "canary-180m-flash");
    assert_true(t->aggregate);
    assert_int_equal(t->n_sub, 3);
    assert_string_equal(t->sub[0].lang, "spl_tokens");
    assert_string_equal(t->sub[1].lang, "en");
    assert_string_equal(t->sub[2].lang, "de");
    assert_string_equal(t->sub[2].model_ref, "nemo:cccc_tokenizer.model");
    free(t);
}

static void test_defaults_and_variants(void **s) {
    /* decoding section absent: NeMo's default beam 1, no delta limit */
    char *y = edit("decoding:\n  strategy: beam\n  beam:\n    beam_size: 1\n    len_pen: 1.0\n    max_generation_delta: 50\n",
                   "");
    cn_model_desc d;
    cn_error err;
    assert_int_equal(parse(y, &d, NULL, &err), CANARY_OK);
    assert_string_equal(d.decoding.strategy, "beam");
    assert_int_equal(d.decoding.beam_size, 1);
    assert_int_equal(d.decoding.max_generation_delta, -1);
    free(y);
    y = edit("    len_pen: 1.0\n", "    length_penalty: 0.5\n");
    assert_int_equal(parse(y, &d, NULL, &err), CANARY_OK);
    assert_true(d.decoding.length_penalty == 0.5);
    free(y);
    y = edit("prompt_format: canary2\n", "prompt_format: canary\n");
    assert_int_equal(parse(y, &d, NULL, &err), CANARY_OK);
    assert_int_equal(d.prompt_format, CN_PROMPT_CANARY);
    assert_string_equal(d.variant, "canary-custom");
    free(y);
    y = edit("  asr_enc_hidden: 512\n", "  asr_enc_hidden: 1024\n");
    char *y2 = strdup(y);
    free(y);
    char *at = strstr(y2, "  n_layers: 17\n");
    memcpy(at, "  n_layers: 32\n", 15);
    assert_int_equal(parse(y2, &d, NULL, &err), CANARY_OK);
    assert_string_equal(d.variant, "canary-1b-flash");
    assert_false(d.has_enc_dec_proj);
    free(y2);
    /* the unified (monolingual) tokenizer */
    y = edit("  type: agg\n", "  type: bpe\n  model_path: nemo:dddd_tokenizer.model\n");
    cn_tok_config *t = calloc(1, sizeof *t);
    assert_int_equal(parse(y, &d, t, &err), CANARY_OK);
    assert_false(t->aggregate);
    assert_string_equal(t->model_ref, "nemo:dddd_tokenizer.model");
    free(t);
    free(y);
    /* log_zero_guard_value given as a name */
    y = edit("  pad_value: 0.0\n", "  pad_value: 0.0\n  log_zero_guard_value: tiny\n  highfreq: null\n");
    assert_int_equal(parse(y, &d, NULL, &err), CANARY_OK);
    assert_true(d.pre.log_zero_guard_value == 1.1754943508222875e-38);
    assert_true(d.pre.highfreq == 8000.0);
    free(y);
}

static void test_errors(void **s) {
    expect_error("  n_layers: 17\n", "", CANARY_EFORMAT, "missing required setting 'encoder.n_layers'", NULL);
    expect_error("  n_layers: 17\n", "  n_layers: seventeen\n", CANARY_EFORMAT, "line 35", "encoder.n_layers = 'seventeen' is not an integer");
    expect_error("  n_layers: 17\n", "  n_layers: 100000\n", CANARY_EFORMAT, "encoder.n_layers", "range");
    expect_error("  self_attention_model: rel_pos\n", "  self_attention_model: abs_pos\n", CANARY_EUNSUPPORTED,
                 "encoder.self_attention_model = 'abs_pos' is not supported", NULL);
    expect_error("  subsampling: dw_striding\n", "", CANARY_EUNSUPPORTED, "encoder.subsampling is not set",
                 "'striding'");
    expect_error("  conv_norm_type: batch_norm\n", "  conv_norm_type: layer_norm\n", CANARY_EUNSUPPORTED,
                 "encoder.conv_norm_type", NULL);
    expect_error("  n_heads: 8\n", "  n_heads: 7\n", CANARY_EFORMAT, "encoder.n_heads", "does not divide");
    expect_error("  d_model: ${model_defaults.asr_enc_hidden}\n", "  d_model: 510\n", CANARY_EFORMAT, "encoder.n_heads", NULL);
    expect_error("  att_context_size: [-1, -1]\n", "  att_context_size: [-1]\n", CANARY_EFORMAT,
                 "encoder.att_context_size", NULL);
    expect_error("  xscaling: false\n", "  xscaling: maybe\n", CANARY_EFORMAT, "encoder.xscaling = 'maybe' is not true or false", NULL);
    expect_error("    hidden_act: relu\n", "    hidden_act: gelu\n", CANARY_EUNSUPPORTED,
                 "transf_decoder.config_dict.hidden_act = 'gelu'", NULL);
    expect_error("    pre_ln: true\n", "    pre_ln: false\n", CANARY_EUNSUPPORTED, "pre_ln", NULL);
    expect_error("  num_layers: 0\n", "  num_layers: 2\n", CANARY_EUNSUPPORTED, "transf_encoder.num_layers", NULL);
    expect_error("  window: hann\n", "  window: hamming\n", CANARY_EUNSUPPORTED, "preprocessor.window = 'hamming'", NULL);
    expect_error("  window_size: 0.025\n", "  window_size: 'abc'\n", CANARY_EFORMAT, "preprocessor.window_size", NULL);
    expect_error("prompt_format: canary2\n", "prompt_format: canary3\n", CANARY_EUNSUPPORTED, "prompt_format = 'canary3'", NULL);
    expect_error("  feat_in: ${preprocessor.features}\n", "  feat_in: 80\n", CANARY_EFORMAT, "encoder.feat_in 80", "128");
    expect_error("  d_model: ${model_defaults.asr_enc_hidden}\n", "  d_model: 256\n", CANARY_EFORMAT, "asr_enc_hidden 512", "d_model 256");
    expect_error("target: nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel\n",
                 "target: nemo.collections.asr.models.rnnt_models.EncDecRNNTModel\n", CANARY_EUNSUPPORTED, "target", NULL);
    expect_error("  type: agg\n", "  type: wpe\n", CANARY_EUNSUPPORTED, "tokenizer.type = 'wpe'", NULL);
    expect_error("      model_path: nemo:bbbb_tokenizer.model\n", "      vocab_path: x\n", CANARY_EFORMAT,
                 "tokenizer.langs.en.model_path", NULL);
    expect_error("  strategy: beam\n", "  strategy: sampling\n", CANARY_EUNSUPPORTED, "decoding.strategy", NULL);
    expect_error("sample_rate: 16000\n", "sample_rate: [16000\n", CANARY_EFORMAT, "YAML syntax error", NULL);
    expect_error("sample_rate: 16000\n", "sample_rate: &a 16000\nx: *a\n", CANARY_EUNSUPPORTED, "aliases", NULL);
    expect_error("sample_rate: 16000\n", "sample_rate: 8000\n", CANARY_EFORMAT, "sample_rate 8000", NULL);
}

static void test_not_a_mapping(void **s) {
    cn_model_desc d;
    cn_error err;
    assert_int_equal(parse("- a\n- b\n", &d, NULL, &err), CANARY_EFORMAT);
    assert_non_null(strstr(err.msg, "not a YAML mapping"));
    assert_int_equal(parse("", &d, NULL, &err), CANARY_EFORMAT);
    /* deep nesting is refused, not recursed into */
    char deep[4096] = "";
    for (int i = 0; i < 200; i++)
        strcat(deep, "[");
    assert_int_not_equal(parse(deep, &d, NULL, &err), CANARY_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_defaults_and_variants),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_not_a_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* cn_nemo_open on the authentic tiny models of tools/make-test-model (fixture test_models): every
 * tensor's name, dtype, shape, storage sharing and sha256 equal what torch wrote (the generator's
 * .tsv manifests); the model description matches the generator's dimensions. */
#include <openssl/evp.h>

#include "test_util.h"

#include "nemo/nemo.h"
#include "nemo/tokenizer.h"

static const char *LAYOUTS[] = {"canary-1b", "canary-1b-flash", "canary-180m-flash", "canary-1b-v2"};

static void model_path(char *buf, size_t cap, const char *layout, const char *suffix) {
    snprintf(buf, cap, "%s/models/%s-tiny.nemo%s", cn_test_binary_dir(), layout, suffix);
}

static cn_nemo *open_model(const char *layout) {
    char path[1024];
    model_path(path, sizeof path, layout, "");
    cn_nemo *m = NULL;
    cn_error err;
    cn_status st = cn_nemo_open(path, NULL, &m, &err);
    if (st)
        fail_msg("%s", err.msg);
    return m;
}

static void sha256_hex(const void *data, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Row-major bytes of a tensor view (gathers strided views). */
static unsigned char *contiguous_bytes(const cn_tensor_view *t) {
    size_t es = cn_dtype_size(t->dtype);
    unsigned char *dst = malloc(t->nbytes + 1);
    int64_t numel = (int64_t)(t->nbytes / es);
    int64_t idx[CN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < numel; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * t->stride[d];
        memcpy(dst + (size_t)i * es, (const unsigned char *)t->data + off * (int64_t)es, es);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return dst;
}

typedef const cn_tensor_view *(*lookup_fn)(const cn_nemo *, const char *);

static size_t check_manifest(const cn_nemo *m, const char *tsv, lookup_fn lookup, bool ordered) {
    FILE *f = fopen(tsv, "r");
    if (!f)
        fail_msg("missing manifest %s", tsv);
    char line[4096];
    size_t n = 0;
    int group_to_storage[4096];
    memset(group_to_storage, -1, sizeof group_to_storage);
    while (fgets(line, sizeof line, f)) {
        char name[1024], dtype[16], shape[256], sha[80];
        int group;
        assert_int_equal(sscanf(line, "%1023s %15s %255s %d %79s", name, dtype, shape, &group, sha), 5);
        const cn_tensor_view *t = lookup(m, name);
        if (!t)
            fail_msg("tensor %s missing", name);
        if (ordered)
            assert_ptr_equal(cn_nemo_tensor_at(m, n), t);
        assert_string_equal(cn_dtype_name(t->dtype), dtype);
        char got[256] = "";
        if (t->ndim == 0)
            strcpy(got, "scalar");
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), d ? "x%lld" : "%lld", (long long)t->shape[d]);
        assert_string_equal(got, shape);
        assert_true(group >= 0 && group < 4096);
        if (group_to_storage[group] < 0)
            group_to_storage[group] = t->storage_id;
        assert_int_equal(group_to_storage[group], t->storage_id);
        unsigned char *bytes = contiguous_bytes(t);
        char hex[65];
        sha256_hex(bytes, t->nbytes, hex);
        free(bytes);
        if (strcmp(hex, sha) != 0)
            fail_msg("tensor %s: sha256 %s, torch wrote %s", name, hex, sha);
        n++;
    }
    fclose(f);
    return n;
}

static void test_every_tensor_equals_torch(void **s) {
    for (size_t i = 0; i < sizeof LAYOUTS / sizeof *LAYOUTS; i++) {
        cn_nemo *m = open_model(LAYOUTS[i]);
        char tsv[1024];
        model_path(tsv, sizeof tsv, LAYOUTS[i], ".model_weights.tsv");
        size_t n = check_manifest(m, tsv, cn_nemo_tensor, true);
        assert_int_equal(n, cn_nemo_tensor_count(m));
        if (!strcmp(LAYOUTS[i], "canary-1b-v2")) {
            model_path(tsv, sizeof tsv, LAYOUTS[i], ".timestamps_asr_model_weights.tsv");
            assert_true(check_manifest(m, tsv, cn_nemo_timestamps_tensor, false) > 0);
            assert_non_null(strstr(cn_nemo_timestamps_config_yaml(m), "EncDecCTCModelBPE"));
            assert_true(cn_nemo_desc(m)->has_timestamps_model);
        } else {
            assert_null(cn_nemo_timestamps_config_yaml(m));
            assert_null(cn_nemo_timestamps_tensor(m, "encoder.pre_encode.out.weight"));
            assert_false(cn_nemo_desc(m)->has_timestamps_model);
        }
        /* tied head: the decoder embedding and the classifier weight share one storage */
        const cn_tensor_view *emb = cn_nemo_tensor(m, "transf_decoder._embedding.token_embedding.weight");
        const cn_tensor_view *head = cn_nemo_tensor(m, "log_softmax.mlp.layer0.weight");
        assert_non_null(emb);
        assert_non_null(head);
        assert_ptr_equal(emb->data, head->data);
        assert_int_equal(emb->storage_id, head->storage_id);
        cn_nemo_close(m);
    }
}

/* Dimensions of the generator's tiny layouts (tools/testmodel/layouts.py). */
static void test_model_desc(void **s) {
    static const struct {
        const char *layout;
        cn_prompt_format pf;
        int enc_layers, d_enc, enc_heads, sub_ch, dec_layers, d_dec, dec_heads, max_seq, rows;
        bool proj;
    } want[] = {
        {"canary-1b", CN_PROMPT_CANARY, 2, 64, 4, 32, 3, 64, 4, 256, 544, false},
        {"canary-1b-flash", CN_PROMPT_CANARY2, 3, 64, 4, 32, 2, 64, 4, 256, 1664, false},
        {"canary-180m-flash", CN_PROMPT_CANARY2, 2, 48, 4, 32, 2, 64, 4, 256, 1664, true},
        {"canary-1b-v2", CN_PROMPT_CANARY2, 2, 64, 4, 32, 2, 64, 4, 256, 1904, false},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        cn_nemo *m = open_model(want[i].layout);
        const cn_model_desc *d = cn_nemo_desc(m);
        assert_int_equal(d->prompt_format, want[i].pf);
        assert_int_equal(d->enc.n_layers, want[i].enc_layers);
        assert_int_equal(d->enc.d_model, want[i].d_enc);
        assert_int_equal(d->enc.n_heads, want[i].enc_heads);
        assert_int_equal(d->enc.subsampling_conv_channels, want[i].sub_ch);
        assert_int_equal(d->enc.ff_expansion_factor, 4);
        assert_int_equal(d->enc.conv_kernel_size, 9);
        assert_int_equal(d->enc.subsampling_factor, 8);
        assert_int_equal(d->dec.n_layers, want[i].dec_layers);
        assert_int_equal(d->dec.hidden, want[i].d_dec);
        assert_int_equal(d->dec.inner, 4 * want[i].d_dec);
        assert_int_equal(d->dec.n_heads, want[i].dec_heads);
        assert_int_equal(d->dec.max_seq_len, want[i].max_seq);
        assert_int_equal(d->dec.vocab_size, want[i].rows);
        assert_int_equal(d->has_enc_dec_proj, want[i].proj);
        assert_int_equal(d->pre.n_mels, 128);
        assert_string_equal(d->variant, "canary-custom"); /* tiny dims match no release */
        if (want[i].proj)
            assert_int_equal(cn_nemo_expect(m, "encoder_decoder_proj.weight", 2,
                                            (int64_t[]){want[i].d_dec, want[i].d_enc}, NULL, NULL),
                             CANARY_OK);
        cn_error err;
        assert_int_equal(cn_nemo_expect(m, "encoder.pre_encode.out.weight", 2, (int64_t[]){7, -1}, NULL, &err),
                         CANARY_EFORMAT);
        assert_non_null(strstr(err.msg, "encoder.pre_encode.out.weight"));
        assert_non_null(strstr(err.msg, "[7, -1]"));
        assert_int_equal(cn_nemo_expect(m, "no.such.weight", 1, (int64_t[]){1}, NULL, &err), CANARY_ENOTFOUND);
        assert_non_null(strstr(cn_nemo_config_yaml(m), "prompt_format"));
        cn_nemo_close(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_tensor_equals_torch),
        cmocka_unit_test(test_model_desc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

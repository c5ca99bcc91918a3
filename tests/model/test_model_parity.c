/* Parity of the C engine with the PyTorch reference on every tiny layout: encoder activations
 * (fp32 within 1e-3 max abs), decoder log-probs of the first steps, identical greedy / beam-1 /
 * beam-4 ids, batched == one-at-a-time, and the bf16 path within its documented tolerance.
 *
 * Cases are read in the golden format (manifest.json + raw float32 arrays) from every directory
 * given in $CANARY_PARITY_DIRS (':'-separated; default: <build>/golden and <build>/engine_cases).
 * The same checks run on another backend with $CANARY_PARITY_DEVICE (an engine.device value, e.g.
 * "cuda" with $CANARY_CUDA_PLUGIN naming the plugin or its CPU emulation): $CANARY_PARITY_CASES
 * and $CANARY_PARITY_LAYOUTS (','-separated names) pick cases and layouts, and
 * $CANARY_PARITY_REDUCED (bf16,fp16,tf32; default bf16) the reduced precisions checked on every
 * picked case (else on batch and librivox only). */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>

#include "canary/canary.h"
#include "model/model.h"
#include "model/timestamps.h"
#include "nemo/nemo.h"
#include "nemo/tokenizer.h"
#include "nn/backend.h"
#include "nn/cuda_plugin.h"
#include "test_util.h"

#define ENC_TOL 1e-3f
#define LOGP_TOL 1e-3f
/* bf16: error relative to the reference (RMS over the output, and max |diff| against the largest
 * magnitude): bf16 keeps 8 significant bits, ~0.4% per rounding, compounded through every layer;
 * documented in docs/BENCHMARKS.md */
#define BF16_ENC_REL_RMS 0.04
#define BF16_ENC_REL_MAX 0.10f

typedef struct arr {
    float *data;
    int shape[4];
    int ndim;
    size_t n;
} arr;

static bool load_arr(const char *dir, json_t *arrays, const char *name, arr *out) {
    json_t *a = json_object_get(arrays, name);
    if (!a)
        return false;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(a, "file")));
    json_t *shape = json_object_get(a, "shape");
    out->ndim = (int)json_array_size(shape);
    out->n = 1;
    for (int i = 0; i < out->ndim && i < 4; i++) {
        out->shape[i] = (int)json_integer_value(json_array_get(shape, (size_t)i));
        out->n *= (size_t)out->shape[i];
    }
    out->data = malloc(sizeof(float) * (out->n ? out->n : 1));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(out->data, sizeof(float), out->n, f), out->n);
    fclose(f);
    return true;
}

typedef struct taps {
    cn_canary_ctx *ctx; /* taps hand over backend memory: read through the context */
    int item;   /* which batch item to compare */
    int rows;   /* valid rows */
    arr *sub, *layer0, *last, *enc;
    float err_sub, err_l0, err_last, err_enc;
    /* for batched == unbatched: a copy of encoder_out valid rows */
    float *enc_copy;
} taps;

static float cmp_rows(const float *got, int t_total, int d, int item, int rows, const arr *want) {
    const float *g = got + (size_t)item * t_total * d;
    assert_true(want->shape[0] >= rows); /* batch arrays are padded to the batch tensor */
    assert_int_equal(want->shape[1], d);
    float m = 0;
    for (size_t i = 0; i < (size_t)rows * d; i++) {
        float e = fabsf(g[i] - want->data[i]);
        if (!(e <= m))
            m = e;
    }
    return m;
}

static void tap_fn(void *ud, const char *stage, int layer, const float *dev, int n, int t, int d) {
    taps *tp = ud;
    size_t bytes = sizeof(float) * (size_t)n * t * d;
    float *data = malloc(bytes);
    cn_error err;
    cn_error_clear(&err);
    assert_non_null(data);
    if (cn_canary_read(tp->ctx, data, dev, bytes, &err) != CANARY_OK)
        fail_msg("reading the %s tap: %s", stage, err.msg);
    for (size_t i = 0; i < (size_t)n * t * d; i++)
        if (!isfinite(data[i]))
            fail_msg("%s tap: element %zu is %g", stage, i, (double)data[i]);
    if (strcmp(stage, "subsampling") == 0 && tp->sub)
        tp->err_sub = cmp_rows(data, t, d, tp->item, tp->rows, tp->sub);
    else if (strcmp(stage, "layer") == 0 && layer == 0 && tp->layer0)
        tp->err_l0 = cmp_rows(data, t, d, tp->item, tp->rows, tp->layer0);
    else if (strcmp(stage, "encoder_out") == 0 && tp->last)
        tp->err_last = cmp_rows(data, t, d, tp->item, tp->rows, tp->last);
    else if (strcmp(stage, "projected") == 0) {
        if (tp->enc)
            tp->err_enc = cmp_rows(data, t, d, tp->item, tp->rows, tp->enc);
        if (tp->enc_copy)
            memcpy(tp->enc_copy, data + (size_t)tp->item * t * d, sizeof(float) * (size_t)tp->rows * d);
    }
    free(data);
}

static int *json_ids(json_t *j, int *n) {
    *n = (int)json_array_size(j);
    int *ids = malloc(sizeof(int) * (size_t)(*n + 1));
    for (int i = 0; i < *n; i++)
        ids[i] = (int)json_integer_value(json_array_get(j, (size_t)i));
    return ids;
}

static void expect_ids(const char *what, const cn_hypothesis *h, json_t *want) {
    int n;
    int *ids = json_ids(want, &n);
    bool same = n == h->n;
    for (int i = 0; same && i < n; i++)
        same = ids[i] == h->ids[i];
    if (!same) {
        fprintf(stderr, "%s: got %d ids, want %d:", what, h->n, n);
        for (int i = 0; i < h->n && i < 20; i++)
            fprintf(stderr, " %d", h->ids[i]);
        fprintf(stderr, " | want");
        for (int i = 0; i < n && i < 20; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    assert_true(same);
}

typedef struct model_set {
    cn_nemo *nemo;
    cn_backend *be, *be_reduced; /* be_reduced: a GPU's TF32 backend for reduced precisions (as api.c) */
    cn_canary *net;
    cn_canary_ctx *ctx;
} model_set;


/* Timestamp cases (spec §7.7): the public API with params.timestamps builds the reference's prompt
 * (<|timestamp|> slot), decodes the same ids, exposes the <|N|> values, and gives NeMo's
 * timestamp-mode text; fixed probe sequences check that text where random weights close no group. */
static void check_timestamp_case(const char *dir, json_t *man, const char *layout, const model_set *ms,
                                 const int *prompt, int plen, int B) {
    const cn_tokenizer *tk = cn_nemo_tokenizer(ms->nemo);
    cn_error err;
    cn_error_clear(&err);
    cn_prompt_opts po = {.source_lang = "en", .target_lang = "en", .pnc = true, .timestamps = true};
    int built[64];
    size_t nb = 0;
    assert_int_equal(cn_tok_build_prompt(tk, cn_nemo_desc(ms->nemo)->prompt_format, &po, built, 64, &nb, &err),
                     CANARY_OK);
    assert_int_equal((int)nb, plen);
    for (int k = 0; k < plen; k++)
        assert_int_equal(built[k], prompt[k]);
    json_t *probes = json_object_get(man, "ts_probes");
    assert_true(json_array_size(probes) > 0);
    for (size_t k = 0; k < json_array_size(probes); k++) {
        json_t *pr = json_array_get(probes, k);
        int n;
        int *ids = json_ids(json_object_get(pr, "ids"), &n);
        char *text = NULL;
        assert_int_equal(cn_timestamp_text(tk, ids, (size_t)n, &text, &err), CANARY_OK);
        assert_string_equal(text, json_string_value(json_object_get(pr, "text")));
        free(text);
        free(ids);
    }
    /* the public API, beam 1 (the model's default) on the unpadded inputs */
    char path[1024], msg[512];
    snprintf(path, sizeof path, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), layout);
    canary_model *model = NULL;
    canary_context *ctx = NULL;
    assert_int_equal(canary_model_load(path, NULL, &model, msg, sizeof msg), CANARY_OK);
    assert_true(canary_model_has_timestamps(model));
    assert_true(fabs(canary_model_frame_seconds(model) - 0.08) < 1e-9);
    assert_int_equal(canary_context_create(model, 2, &ctx, msg, sizeof msg), CANARY_OK);
    canary_params p = canary_default_params(model);
    p.timestamps = true;
    p.search = CANARY_SEARCH_BEAM;
    p.beam_size = 1;
    const char *sem = json_string_value(json_object_get(man, "semantics"));
    p.features = sem && strcmp(sem, "nemo-2.5") == 0 ? CANARY_FEATURES_NEMO_2_5 : CANARY_FEATURES_NEMO_2_4;
    json_t *opt = json_object_get(man, "options");
    if (json_is_integer(json_object_get(opt, "max_generation_delta")))
        p.max_generation_delta = (int)json_integer_value(json_object_get(opt, "max_generation_delta"));
    json_t *arrays = json_object_get(man, "arrays");
    arr *in = calloc((size_t)B, sizeof(arr));
    const float **pcm = calloc((size_t)B, sizeof(float *));
    size_t *ns = calloc((size_t)B, sizeof(size_t));
    for (int i = 0; i < B; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, B > 1 ? "input_unpadded_%d" : "input_unpadded", i);
        if (!load_arr(dir, arrays, nm, &in[i])) {
            snprintf(nm, sizeof nm, B > 1 ? "input_%d" : "input", i);
            assert_true(load_arr(dir, arrays, nm, &in[i]));
        }
        pcm[i] = in[i].data;
        ns[i] = in[i].n;
    }
    if (canary_transcribe_batch(ctx, &p, pcm, ns, B, msg, sizeof msg) != CANARY_OK)
        fail_msg("%s: %s", layout, msg);
    json_t *want = json_object_get(man, "beam1_ids"), *wtext = json_object_get(man, "beam1_ts_text");
    int stamps = 0;
    for (int i = 0; i < B; i++) {
        int n;
        int *ids = json_ids(B > 1 ? json_array_get(want, (size_t)i) : want, &n);
        assert_int_equal(canary_result_token_count(ctx, i), n);
        for (int j = 0; j < n; j++) {
            canary_token t = canary_result_token(ctx, i, j);
            assert_int_equal(t.id, ids[j]);
            assert_int_equal(t.frame, cn_tok_timestamp_value(tk, ids[j]));
            stamps += t.frame >= 0;
        }
        assert_string_equal(canary_result_text(ctx, i),
                            json_string_value(B > 1 ? json_array_get(wtext, (size_t)i) : wtext));
        free(ids);
        free(in[i].data);
    }
    printf("  %s: public API with timestamps: beam-1 ids and text identical, %d timestamp tokens\n", layout, stamps);
    free(in);
    free(pcm);
    free(ns);
    canary_context_free(ctx);
    canary_model_free(model);
}

static const char *const prec_name[] = {"fp32", "bf16", "fp16", "tf32"};
static int n_checked;
/* Reduced-precision agreement per source and precision: [0] the reference goldens (speech), [1] the
 * engine's own cases (tones + noise, other EOS ids); the 99% applies to the goldens. */
static int red_agree[2][4], red_total[2][4], scan_kind;
static const char *device = "cpu";
static bool reduced[4] = {false, true, false, false}; /* by cn_precision */
static const char *picked_cases, *picked_layouts;     /* NULL: every one */

/* Whether `name` is an item of the ','-separated `list` (NULL: everything is). */
static bool picked(const char *list, const char *name) {
    if (!list)
        return true;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static bool finite_all(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

static void run_case(const char *dir, const char *layout) {
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *man = json_load_file(path, 0, &jerr);
    assert_non_null(man);
    json_t *arrays = json_object_get(man, "arrays");
    const char *sem = json_string_value(json_object_get(man, "semantics"));
    bool masked = sem && strcmp(sem, "nemo-2.5") == 0;
    snprintf(path, sizeof path, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), layout);
    model_set ms = {0};
    cn_error err;
    cn_error_clear(&err);
    if (cn_nemo_open(path, NULL, &ms.nemo, &err) != CANARY_OK)
        fail_msg("%s: %s", path, err.msg);
    char why[512];
    if (cn_backend_open(device, CN_PREC_F32, &ms.be, why, sizeof why, &err) != CANARY_OK)
        fail_msg("device %s: %s", device, err.msg);
    assert_string_equal(why, ""); /* a test asking for a device never falls back silently */
    bool gpu = strcmp(ms.be->ops->name, "cpu") != 0;
    if (gpu)
        assert_int_equal(cn_backend_open(device, CN_PREC_TF32, &ms.be_reduced, why, sizeof why, &err), CANARY_OK);
    if (cn_canary_load(ms.nemo, ms.be, CN_PREC_F32, &ms.net, &err) != CANARY_OK)
        fail_msg("%s: %s", path, err.msg);
    assert_int_equal(cn_canary_ctx_create(ms.net, 2, &ms.ctx, &err), CANARY_OK);

    int B = (int)json_integer_value(json_object_get(man, "batch_size"));
    bool batch = B > 1;
    if (B < 1)
        B = 1;
    json_t *lens = json_object_get(man, "lengths"), *opt = json_object_get(man, "options");
    arr *feats = calloc((size_t)B, sizeof(arr)), *sub = calloc((size_t)B, sizeof(arr)),
        *l0 = calloc((size_t)B, sizeof(arr)), *last = calloc((size_t)B, sizeof(arr)),
        *enc = calloc((size_t)B, sizeof(arr)), *steps = calloc((size_t)B, sizeof(arr)),
        *forced = calloc((size_t)B, sizeof(arr));
    const float **fp = calloc((size_t)B, sizeof(float *));
    int *t = calloc((size_t)B, sizeof(int)), *valid = calloc((size_t)B, sizeof(int)),
        *enc_len = calloc((size_t)B, sizeof(int));
    float **enc_batched = calloc((size_t)B, sizeof(float *));
    for (int i = 0; i < B; i++) {
        char nm[64];
#define LOAD(dst, base) (snprintf(nm, sizeof nm, batch ? base "_%d" : base, i), load_arr(dir, arrays, nm, dst))
        assert_true(LOAD(&feats[i], "features"));
        LOAD(&sub[i], "subsampling");
        LOAD(&l0[i], "enc_layer_0");
        LOAD(&last[i], "enc_layer_last");
        assert_true(LOAD(&enc[i], "encoder_out"));
        LOAD(&steps[i], "decoder_logprobs_first_steps");
        LOAD(&forced[i], "decoder_logprobs_forced");
#undef LOAD
        json_t *li = batch ? json_array_get(lens, (size_t)i) : lens;
        fp[i] = feats[i].data;
        t[i] = feats[i].shape[1];
        valid[i] = (int)json_integer_value(json_object_get(li, "features"));
        enc_len[i] = (int)json_integer_value(json_object_get(li, "encoder"));
    }
    int plen;
    int *prompt = json_ids(json_object_get(man, "prompt_ids"), &plen);
    int dd = cn_canary_desc(ms.net)->dec.hidden;
    assert_non_null(json_object_get(opt, "eos_id"));
    int eos = (int)json_integer_value(json_object_get(opt, "eos_id"));
    int pad = json_is_integer(json_object_get(opt, "pad_id")) ? (int)json_integer_value(json_object_get(opt, "pad_id")) : -1;
    int delta_beam = json_is_integer(json_object_get(opt, "max_generation_delta"))
                         ? (int)json_integer_value(json_object_get(opt, "max_generation_delta")) : -1;
    int delta_greedy = json_is_integer(json_object_get(opt, "max_generation_delta_greedy"))
                           ? (int)json_integer_value(json_object_get(opt, "max_generation_delta_greedy")) : delta_beam;


    /* 1. batched encoder, every item compared with the reference */
    for (int i = 0; i < B; i++) {
        taps tp = {.ctx = ms.ctx, .item = i, .rows = enc_len[i], .sub = sub[i].data ? &sub[i] : NULL,
                   .layer0 = l0[i].data ? &l0[i] : NULL, .last = last[i].data ? &last[i] : NULL, .enc = &enc[i]};
        enc_batched[i] = malloc(sizeof(float) * (size_t)tp.rows * dd);
        tp.enc_copy = enc_batched[i];
        cn_encoder_input in = {B, fp, t, valid, masked, false, NULL};
        assert_int_equal(cn_canary_encode(ms.ctx, &in, tap_fn, &tp, &err), CANARY_OK);
        assert_int_equal(cn_canary_encoded_length(ms.ctx, i), tp.rows);
        printf("  %s/%s item %d: max |diff| subsampling %.2e, layer 0 %.2e, last layer %.2e, encoder out %.2e\n",
               layout, json_string_value(json_object_get(man, "case")), i, (double)tp.err_sub, (double)tp.err_l0,
               (double)tp.err_last, (double)tp.err_enc);
        assert_true(tp.err_sub <= ENC_TOL && tp.err_l0 <= ENC_TOL && tp.err_last <= ENC_TOL && tp.err_enc <= ENC_TOL);
    }
    /* 2. decoding of the batch: greedy (with first-step log-probs), beam 1, beam 4 */
    static const struct { const char *key; cn_search s; int beam; bool alt; } strategies[] = {
        {"greedy_ids", CN_SEARCH_GREEDY, 1, false}, {"beam1_ids", CN_SEARCH_BEAM, 1, false},
        {"beam4_ids", CN_SEARCH_BEAM, 4, false},    {"alt_greedy_ids", CN_SEARCH_GREEDY, 1, true},
        {"alt_beam1_ids", CN_SEARCH_BEAM, 1, true}, {"alt_beam4_ids", CN_SEARCH_BEAM, 4, true}};
    cn_hypothesis *hyp = calloc((size_t)B, sizeof(cn_hypothesis));
    for (size_t s = 0; s < sizeof strategies / sizeof strategies[0]; s++) {
        json_t *want = json_object_get(man, strategies[s].key);
        if (!want)
            continue;
        cn_decode_opts o;
        cn_decode_opts_default(ms.net, &o);
        o.search = strategies[s].s;
        o.beam_size = strategies[s].beam;
        o.eos = strategies[s].alt ? (int)json_integer_value(json_object_get(man, "alt_eos_id")) : eos;
        o.pad = pad;
        o.max_generation_delta = strategies[s].s == CN_SEARCH_GREEDY ? delta_greedy : delta_beam;
        bool rec = strategies[s].s == CN_SEARCH_BEAM && strategies[s].beam == 1 && !strategies[s].alt;
        o.logprob_steps = rec && steps[0].data ? steps[0].shape[0] : 0;
        if (cn_canary_decode(ms.ctx, prompt, plen, &o, hyp, &err) != CANARY_OK)
            fail_msg("%s", err.msg);
        for (int i = 0; i < B; i++) {
            char what[128];
            snprintf(what, sizeof what, "%s %s item %d", layout, strategies[s].key, i);
            expect_ids(what, &hyp[i], batch ? json_array_get(want, (size_t)i) : want);
            if (strategies[s].alt && i == 0)
                printf("  %s: %d ids\n", what, hyp[i].n);
            const char *tkey = s == 0 ? "greedy_text" : s == 1 ? "beam1_text" : s == 2 ? "beam4_text" : NULL;
            json_t *wt = tkey ? json_object_get(man, tkey) : NULL;
            if (wt) {
                char *text = NULL;
                assert_int_equal(cn_tok_decode(cn_nemo_tokenizer(ms.nemo), hyp[i].ids, (size_t)hyp[i].n, &text, &err),
                                 CANARY_OK);
                assert_string_equal(text, json_string_value(batch ? json_array_get(wt, (size_t)i) : wt));
                free(text);
            }
            /* timestamp cases: NeMo's timestamp-mode text of the same ids */
            const char *tskey = s == 0 ? "greedy_ts_text" : s == 1 ? "beam1_ts_text" : s == 2 ? "beam4_ts_text" : NULL;
            json_t *wts = tskey ? json_object_get(man, tskey) : NULL;
            if (wts) {
                char *text = NULL;
                assert_int_equal(cn_timestamp_text(cn_nemo_tokenizer(ms.nemo), hyp[i].ids, (size_t)hyp[i].n, &text, &err),
                                 CANARY_OK);
                assert_string_equal(text, json_string_value(batch ? json_array_get(wts, (size_t)i) : wts));
                free(text);
            }
            if (rec && steps[i].data) {
                int ns = steps[i].shape[0] < hyp[i].n_steps ? steps[i].shape[0] : hyp[i].n_steps;
                assert_true(ns >= 1);
                float m = 0;
                for (size_t k = 0; k < (size_t)ns * steps[i].shape[1]; k++) {
                    float e = fabsf(hyp[i].step_logprobs[k] - steps[i].data[k]);
                    if (!(e <= m))
                        m = e;
                }
                printf("  %s item %d: beam-1 log-probs of %d steps, max |diff| %.2e\n", layout, i, ns, (double)m);
                assert_true(m <= LOGP_TOL);
            }
            cn_hypothesis_free(&hyp[i]);
        }
    }
    if (json_is_true(json_object_get(opt, "timestamp")))
        check_timestamp_case(dir, man, layout, &ms, prompt, plen, B);
    /* 2b. the incremental decoder with fixed ids fed at their true positions (beam-1 path) */
    json_t *fj = json_object_get(opt, "forced_ids");
    if (fj && forced[0].data) {
        int nf;
        int *fids = json_ids(fj, &nf);
        const int **fl = calloc((size_t)B, sizeof(int *));
        int *fn = calloc((size_t)B, sizeof(int));
        for (int i = 0; i < B; i++) {
            fl[i] = fids;
            fn[i] = nf;
        }
        cn_decode_opts o;
        cn_decode_opts_default(ms.net, &o);
        o.search = CN_SEARCH_BEAM;
        o.beam_size = 1;
        o.eos = eos;
        o.pad = pad;
        o.max_generation_delta = delta_beam;
        o.force_ids = fl;
        o.n_force = fn;
        o.max_new_tokens = nf + 1;
        o.ignore_eos = true;
        o.logprob_steps = forced[0].shape[0];
        if (cn_canary_decode(ms.ctx, prompt, plen, &o, hyp, &err) != CANARY_OK)
            fail_msg("%s", err.msg);
        for (int i = 0; i < B; i++) {
            assert_int_equal(hyp[i].n_steps, forced[i].shape[0]);
            float m = 0;
            for (size_t k = 0; k < forced[i].n; k++) {
                float e = fabsf(hyp[i].step_logprobs[k] - forced[i].data[k]);
                if (!(e <= m))
                    m = e;
            }
            printf("  %s item %d: forced-ids log-probs of %d steps, max |diff| %.2e\n", layout, i, hyp[i].n_steps,
                   (double)m);
            assert_true(m <= LOGP_TOL);
            cn_hypothesis_free(&hyp[i]);
        }
        free(fl);
        free(fn);
        free(fids);
    }
    /* 3. batched == one at a time (encoder rows and greedy / beam-4 ids) */
    if (B > 1)
        for (int i = 0; i < B; i++) {
            float *one = malloc(sizeof(float) * (size_t)enc_len[i] * dd);
            taps tp = {.ctx = ms.ctx, .item = 0, .rows = enc_len[i], .enc_copy = one};
            cn_encoder_input in = {1, &fp[i], &t[i], &valid[i], masked, false, NULL};
            assert_int_equal(cn_canary_encode(ms.ctx, &in, tap_fn, &tp, &err), CANARY_OK);
            float m = 0;
            for (size_t k = 0; k < (size_t)enc_len[i] * dd; k++) {
                float e = fabsf(one[k] - enc_batched[i][k]);
                if (!(e <= m))
                    m = e;
            }
            printf("  %s item %d: batched vs alone, encoder max |diff| %.2e\n", layout, i, (double)m);
            assert_true(m <= 1e-4f);
            free(one);
        }
    /* 4. reduced precisions (on the batch and librivox cases, to keep the ASan run short, or on
     * every picked case): encoder error relative to the reference (RMS and max), and greedy token
     * agreement under teacher forcing below. */
    const char *cname = json_string_value(json_object_get(man, "case"));
    bool do_reduced = picked_cases || strcmp(cname, "batch") == 0 || strcmp(cname, "librivox") == 0;
    for (int pr = 1; pr < 4 && do_reduced; pr++) {
        if (!reduced[pr])
            continue;
        if (pr == CN_PREC_F16 && !gpu)
            continue; /* the CPU refuses fp16 */
        cn_canary *rnet = NULL;
        cn_canary_ctx *rctx = NULL;
        if (cn_canary_load(ms.nemo, gpu ? ms.be_reduced : ms.be, (cn_precision)pr, &rnet, &err) != CANARY_OK)
            fail_msg("%s %s: %s", layout, prec_name[pr], err.msg);
        assert_int_equal(cn_canary_ctx_create(rnet, 2, &rctx, &err), CANARY_OK);
        for (int i = 0; i < B; i++) {
            float *got = malloc(sizeof(float) * (size_t)enc_len[i] * dd);
            taps tp = {.ctx = rctx, .item = i, .rows = enc_len[i], .enc_copy = got};
            cn_encoder_input in = {B, fp, t, valid, masked, false, NULL};
            assert_int_equal(cn_canary_encode(rctx, &in, tap_fn, &tp, &err), CANARY_OK);
            double se = 0, sr = 0;
            float mx = 0, ref_max = 0;
            for (size_t k = 0; k < (size_t)enc_len[i] * dd; k++) {
                float e = fabsf(got[k] - enc[i].data[k]);
                se += (double)e * e;
                sr += (double)enc[i].data[k] * enc[i].data[k];
                mx = e > mx ? e : mx;
                ref_max = fabsf(enc[i].data[k]) > ref_max ? fabsf(enc[i].data[k]) : ref_max;
            }
            double rel_rms = sr > 0 ? sqrt(se / sr) : 0;
            printf("  %s item %d: %s encoder relative RMS error %.2f%%, max |diff| %.2e (%.1f%% of max |ref|)\n",
                   layout, i, prec_name[pr], 100 * rel_rms, (double)mx, 100.0 * mx / (ref_max > 0 ? ref_max : 1));
            /* fp16 keeps 11 significant bits and tf32 11 in its products: bf16's bound covers both */
            assert_true(rel_rms <= BF16_ENC_REL_RMS && mx <= BF16_ENC_REL_MAX * ref_max);
            free(got);
        }
        /* Token agreement with teacher forcing: at every step of the reference's greedy output, is
         * the reduced-precision argmax the reference's token? (Free-running comparison would count
         * every token after a first flip as different, which says nothing about the rest.) */
        json_t *gw = json_object_get(man, "greedy_ids");
        int **force = calloc((size_t)B, sizeof(int *)), *nforce = calloc((size_t)B, sizeof(int));
        for (int i = 0; i < B; i++)
            force[i] = json_ids(batch ? json_array_get(gw, (size_t)i) : gw, &nforce[i]);
        cn_decode_opts o;
        cn_decode_opts_default(rnet, &o);
        o.search = CN_SEARCH_GREEDY;
        o.max_generation_delta = delta_greedy;
        o.eos = eos;
        o.pad = pad;
        o.force_ids = (const int *const *)force;
        o.n_force = nforce;
        o.logprob_steps = 4; /* the first steps' full rows: no NaN or Inf anywhere */
        assert_int_equal(cn_canary_decode(rctx, prompt, plen, &o, hyp, &err), CANARY_OK);
        /* An item below 90 % is no near-tie (docs/CUDA.md, the open reduced-precision fault): the
         * same decode again in the same process says whether it repeats (placement, data) or not
         * (a race, a library's nondeterminism). */
        bool broken = false;
        for (int i = 0; i < B; i++) {
            int steps_n = hyp[i].n < nforce[i] ? hyp[i].n : nforce[i], same = 0;
            for (int k = 0; k < steps_n; k++)
                same += hyp[i].best[k] == force[i][k];
            broken = broken || same * 10 < steps_n * 9;
        }
        if (broken) {
            cn_hypothesis *again = calloc((size_t)B, sizeof *again);
            assert_non_null(again);
            assert_int_equal(cn_canary_decode(rctx, prompt, plen, &o, again, &err), CANARY_OK);
            for (int i = 0; i < B; i++) {
                int n = again[i].n < hyp[i].n ? again[i].n : hyp[i].n, same = 0, ref = 0;
                for (int k = 0; k < n; k++) {
                    same += again[i].best[k] == hyp[i].best[k];
                    ref += k < nforce[i] && again[i].best[k] == force[i][k];
                }
                printf("    item %d decoded again: %d/%d as the first decode, %d/%d as the reference\n", i, same, n,
                       ref, n < nforce[i] ? n : nforce[i]);
                cn_hypothesis_free(&again[i]);
            }
            free(again);
        }
        int agree = 0, total = 0;
        for (int i = 0; i < B; i++) {
            /* steps: every reference token plus its final EOS (unless it hit the length limit) */
            int steps_n = hyp[i].n < nforce[i] ? hyp[i].n : nforce[i], item_agree = 0, first_diff = -1;
            for (int k = 0; k < steps_n; k++) {
                item_agree += hyp[i].best[k] == force[i][k];
                if (first_diff < 0 && hyp[i].best[k] != force[i][k])
                    first_diff = k;
            }
            if (item_agree < steps_n) /* where a disagreement sits tells a near-tie from a broken step */
                printf("    item %d: %d/%d identical, first difference at step %d\n", i, item_agree, steps_n, first_diff);
            agree += item_agree;
            total += steps_n;
            assert_true(finite_all(hyp[i].logprobs, (size_t)hyp[i].n));
            size_t rows_n = (size_t)hyp[i].n_steps * (size_t)cn_canary_desc(rnet)->dec.vocab_size;
            assert_true(finite_all(hyp[i].step_logprobs, rows_n));
            free(force[i]);
            cn_hypothesis_free(&hyp[i]);
        }
        free(force);
        free(nforce);
        printf("  %s: %s greedy tokens identical %d/%d (teacher-forced)\n", layout, prec_name[pr], agree, total);
        red_agree[scan_kind][pr] += agree;
        red_total[scan_kind][pr] += total;
        cn_canary_ctx_free(rctx);
        cn_canary_free(rnet);
    }
    n_checked++;

    for (int i = 0; i < B; i++) {
        free(feats[i].data), free(sub[i].data), free(l0[i].data), free(enc[i].data), free(steps[i].data);
        free(last[i].data), free(forced[i].data);
        free(enc_batched[i]);
    }
    free(feats), free(sub), free(l0), free(enc), free(steps), free(fp), free(t), free(valid), free(enc_batched);
    free(last), free(forced), free(enc_len);
    free(hyp), free(prompt);
    cn_canary_ctx_free(ms.ctx);
    cn_canary_free(ms.net);
    cn_backend_destroy(ms.be);
    cn_backend_destroy(ms.be_reduced);
    cn_nemo_close(ms.nemo);
    json_decref(man);
}

static void scan(const char *root) {
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char ldir[1024];
        snprintf(ldir, sizeof ldir, "%s/%s", root, e->d_name);
        DIR *cd = opendir(ldir);
        if (!cd)
            continue;
        struct dirent *ce;
        while ((ce = readdir(cd))) {
            if (ce->d_name[0] == '.')
                continue;
            char cdir[1536], man[1600];
            snprintf(cdir, sizeof cdir, "%s/%s", ldir, ce->d_name);
            snprintf(man, sizeof man, "%s/manifest.json", cdir);
            struct stat st;
            if (stat(man, &st) != 0)
                continue;
            if (!picked(picked_cases, ce->d_name) || !picked(picked_layouts, e->d_name))
                continue;
            printf("case %s/%s on %s\n", e->d_name, ce->d_name, device);
            run_case(cdir, e->d_name);
        }
        closedir(cd);
    }
    closedir(d);
}

static void test_parity(void **state) {
    (void)state;
    const char *dirs = getenv("CANARY_PARITY_DIRS");
    if (getenv("CANARY_PARITY_DEVICE") && *getenv("CANARY_PARITY_DEVICE"))
        device = getenv("CANARY_PARITY_DEVICE");
    picked_cases = getenv("CANARY_PARITY_CASES") && *getenv("CANARY_PARITY_CASES") ? getenv("CANARY_PARITY_CASES") : NULL;
    const char *lay = getenv("CANARY_PARITY_LAYOUTS");
    picked_layouts = lay && *lay ? lay : NULL;
    const char *red = getenv("CANARY_PARITY_REDUCED");
    if (red && *red) {
        reduced[CN_PREC_BF16] = strstr(red, "bf16") != NULL;
        reduced[CN_PREC_F16] = strstr(red, "fp16") != NULL;
        reduced[CN_PREC_TF32] = strstr(red, "tf32") != NULL;
    }
    char buf[4096];
    if (dirs)
        snprintf(buf, sizeof buf, "%s", dirs);
    else
        snprintf(buf, sizeof buf, "%s/golden:%s/engine_cases", cn_test_binary_dir(), cn_test_binary_dir());
    for (char *save = NULL, *p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        scan_kind = strstr(p, "engine_cases") ? 1 : 0;
        scan(p);
    }
    printf("%d cases checked on %s\n", n_checked, device);
    for (int pr = 1; pr < 4; pr++)
        for (int kind = 0; kind < 2; kind++) {
            if (!red_total[kind][pr])
                continue;
            printf("%s teacher-forced token agreement, %s: %d/%d\n", prec_name[pr], kind ? "engine cases" : "goldens",
                   red_agree[kind][pr], red_total[kind][pr]);
            /* bf16 on the CPU over the goldens (real speech through the reference): at least 99% as
             * the issue asks (about 99.3% measured; the reference itself with the same rounding
             * reaches 99.5% and PyTorch's bf16 autocast 98.1%: tests/reference/bf16_agreement.py,
             * docs/BENCHMARKS.md). Elsewhere (the engine's tone cases, ~97%; the emulated GPU's
             * kernels on a subset of cases) the bound guards against regressions. */
            bool strict = pr == CN_PREC_BF16 && kind == 0 && strcmp(device, "cpu") == 0 && !picked_cases;
            int bound = strict ? 99 : 95;
            /* CANARY_PARITY_MIN_AGREEMENT=P holds the goldens to P% (tests/cuda/engine-gpu-check.sh:
             * 99 on a GPU, every case, as the issue asks of bf16 and fp16) */
            const char *min_agree = getenv("CANARY_PARITY_MIN_AGREEMENT");
            if (kind == 0 && min_agree && atoi(min_agree) > 0)
                bound = atoi(min_agree);
            assert_true(red_agree[kind][pr] * 100 >= red_total[kind][pr] * bound);
        }
    assert_true(n_checked > 0);
}

typedef struct run_out {
    int n[8];
    int id[8][512];
    float lp[8][512];
} run_out;

static void run_api(canary_context *ctx, const canary_params *p, const float *const *pcm, const size_t *ns, int n,
                    run_out *o) {
    char msg[512];
    if (canary_transcribe_batch(ctx, p, pcm, ns, n, msg, sizeof msg) != CANARY_OK)
        fail_msg("transcribe: %s", msg);
    for (int i = 0; i < n; i++) {
        o->n[i] = canary_result_token_count(ctx, i);
        assert_true(o->n[i] <= 512);
        for (int j = 0; j < o->n[i]; j++) {
            canary_token t = canary_result_token(ctx, i, j);
            o->id[i][j] = t.id;
            o->lp[i][j] = t.logprob;
        }
    }
}

/* canary_params.batch_independent: utterances of unequal lengths in one batch give each exactly
 * what it gives alone (ids, and log-probabilities to float rounding), on every tiny layout, on
 * $CANARY_PARITY_DEVICE, in fp32. Two runs: each item decoding to its own length limit
 * (ignore_eos, max_generation_delta 2: proves the per-item limit) and to its own EOS. Without it
 * the batch is NeMo's: the shorter items decode to the longest one's limit and, under nemo-2.4
 * features, with other log-probabilities (padding reaches their last frames): both are checked, so
 * the test would notice if independence stopped mattering. */
static void test_batch_independent(void **state) {
    (void)state;
    static const char *const layouts[] = {"canary-1b", "canary-1b-flash", "canary-180m-flash", "canary-1b-v2"};
    enum { N = 4 };
    const size_t ns[N] = {24000, 41000, 17000, 33333};
    float *pcm[N];
    for (int i = 0; i < N; i++)
        pcm[i] = cn_test_speechlike(ns[i], (unsigned)i + 3);
    int checked = 0;
    for (size_t l = 0; l < sizeof layouts / sizeof *layouts; l++) {
        if (!picked(picked_layouts, layouts[l]))
            continue;
        char path[1024], msg[512];
        snprintf(path, sizeof path, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), layouts[l]);
        canary_model_params mp = canary_model_default_params();
        mp.device = device;
        canary_model *model = NULL;
        canary_context *ctx = NULL;
        if (canary_model_load(path, &mp, &model, msg, sizeof msg) != CANARY_OK)
            fail_msg("%s on %s: %s", path, device, msg);
        assert_int_equal(canary_context_create(model, 2, &ctx, msg, sizeof msg), CANARY_OK);
        static run_out ind, nemo, alone;
        for (int mode = 0; mode < 2; mode++) {
            canary_params p = canary_default_params(model);
            bool v24 = p.features == CANARY_FEATURES_NEMO_2_4;
            if (mode == 0) { /* to the length limit */
                p.ignore_eos = true;
                p.max_new_tokens = 500;
                p.max_generation_delta = 2;
            }
            p.batch_independent = true;
            run_api(ctx, &p, (const float *const *)pcm, ns, N, &ind);
            p.batch_independent = false;
            run_api(ctx, &p, (const float *const *)pcm, ns, N, &nemo);
            float worst = 0, nemo_worst = 0;
            int longer = 0, tokens = 0, nemo_other_ids = 0;
            for (int i = 0; i < N; i++) {
                run_api(ctx, &p, (const float *const *)&pcm[i], &ns[i], 1, &alone);
                if (ind.n[i] != alone.n[0])
                    fail_msg("%s, run %d, item %d: %d tokens in the independent batch, %d alone", layouts[l], mode, i,
                             ind.n[i], alone.n[0]);
                for (int j = 0; j < alone.n[0]; j++) {
                    assert_int_equal(ind.id[i][j], alone.id[0][j]);
                    float e = fabsf(ind.lp[i][j] - alone.lp[0][j]);
                    worst = e > worst ? e : worst;
                }
                tokens += alone.n[0];
                longer += nemo.n[i] > alone.n[0];
                int common = nemo.n[i] < alone.n[0] ? nemo.n[i] : alone.n[0];
                int j = 0;
                for (; j < common && nemo.id[i][j] == alone.id[0][j]; j++) {
                    float e = fabsf(nemo.lp[i][j] - alone.lp[0][j]);
                    nemo_worst = e > nemo_worst ? e : nemo_worst;
                }
                nemo_other_ids += j < common;
            }
            printf("  %s (%s) on %s, %s: %d tokens, independent batch vs alone max |dlogp| %.2e; NeMo's batch: %d "
                   "of %d items longer, %d with other ids, max |dlogp| before them %.2e\n",
                   layouts[l], v24 ? "nemo-2.4" : "nemo-2.5", device, mode ? "to EOS" : "to the length limit", tokens,
                   worst, longer, N, nemo_other_ids, nemo_worst);
            assert_true(worst <= 1e-4);
            if (mode == 0) {
                assert_true(tokens >= 4 * N);  /* every item decoded something */
                assert_int_equal(longer, N - 1); /* all but the longest item run to the batch's limit */
            }
            if (v24 && mode == 0) /* the padding reaches NeMo 2.4's features: other ids or log-probs */
                assert_true(nemo_other_ids > 0 || nemo_worst > 1e-4);
        }
        canary_context_free(ctx);
        canary_model_free(model);
        checked++;
    }
    for (int i = 0; i < N; i++)
        free(pcm[i]);
    assert_true(checked > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity), cmocka_unit_test(test_batch_independent)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* CPU backend operations against naive reference implementations written out in full here,
 * on random data, with 1 and 3 threads (odd splits exercise the block edges). */
#include <float.h>
#include <math.h>

#include "nn/backend.h"
#include "nn/cpu/cpu_internal.h"
#include "test_util.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}
static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}
static float act_ref(cn_act a, float v) {
    return a == CN_ACT_RELU ? (v > 0 ? v : 0) : a == CN_ACT_SILU ? v / (1.0f + expf(-v)) : v;
}

typedef struct {
    cn_backend *be;
    cn_exec *ex;
    const cn_backend_ops *ops;
} fixture;

static fixture make(int threads) {
    fixture f;
    cn_error err;
    assert_int_equal(cn_cpu_backend_create(&f.be, &err), CANARY_OK);
    f.ops = f.be->ops;
    assert_int_equal(f.ops->exec_create(f.be, threads, &f.ex, &err), CANARY_OK);
    return f;
}
static void unmake(fixture *f) {
    f->ops->exec_destroy(f->ex);
    cn_backend_destroy(f->be);
}

static void check_linear(int threads, int m, int n, int k, cn_act act, bool acc, cn_precision prec, float tol) {
    fixture f = make(threads);
    float *w = rand_buf((size_t)n * k), *b = rand_buf((size_t)n), *x = rand_buf((size_t)m * (k + 3));
    float *y = rand_buf((size_t)m * (n + 5)), *ref = malloc(sizeof(float) * (size_t)m * (n + 5));
    memcpy(ref, y, sizeof(float) * (size_t)m * (n + 5));
    cn_linear *lin;
    cn_error err;
    assert_int_equal(f.ops->linear_create(f.be, w, b, n, k, prec, false, &lin, &err), CANARY_OK);
    f.ops->linear(f.ex, lin, x, k + 3, m, y, n + 5, act, acc, 0.5f);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = b[j];
            for (int p = 0; p < k; p++) {
                float xv = x[(size_t)i * (k + 3) + p], wv = w[(size_t)j * k + p];
                if (prec == CN_PREC_BF16) {
                    xv = cn_bf16_to_f32(cn_f32_to_bf16(xv));
                    wv = cn_bf16_to_f32(cn_f32_to_bf16(wv));
                }
                s += (double)xv * wv;
            }
            float *r = &ref[(size_t)i * (n + 5) + j];
            *r = acc ? *r + 0.5f * (float)s : act_ref(act, (float)s);
        }
    float d = max_abs_diff(y, ref, (size_t)m * (n + 5));
    if (d > tol)
        fail_msg("linear m=%d n=%d k=%d act=%d acc=%d prec=%d threads=%d: max diff %g", m, n, k, act, acc, prec,
                 threads, d);
    f.ops->linear_destroy(f.be, lin);
    free(w), free(b), free(x), free(y), free(ref);
    unmake(&f);
}

static void test_linear(void **state) {
    (void)state;
    for (int th = 1; th <= 3; th += 2) {
        check_linear(th, 1, 37, 19, CN_ACT_NONE, false, CN_PREC_F32, 1e-4f);
        check_linear(th, 70, 33, 64, CN_ACT_RELU, false, CN_PREC_F32, 1e-4f);
        check_linear(th, 130, 17, 40, CN_ACT_SILU, false, CN_PREC_F32, 1e-4f);
        check_linear(th, 9, 100, 31, CN_ACT_NONE, true, CN_PREC_F32, 1e-4f);
        check_linear(th, 5, 45, 70, CN_ACT_SILU, false, CN_PREC_BF16, 1e-3f);
        check_linear(th, 67, 21, 33, CN_ACT_NONE, true, CN_PREC_BF16, 1e-3f);
        /* the packed kernel's edges: row groups of 1-4, column blocks of 1-4 with partial last blocks,
         * several k passes (256 per pass) with and without accumulation */
        for (int m = 1; m <= 9; m++)
            check_linear(th, m, 16 * m + m % 3, 96, m % 2 ? CN_ACT_NONE : CN_ACT_RELU, m % 3 == 0, CN_PREC_BF16, 1e-3f);
        check_linear(th, 13, 130, 700, CN_ACT_NONE, false, CN_PREC_BF16, 2e-3f);
        check_linear(th, 6, 64, 520, CN_ACT_NONE, true, CN_PREC_BF16, 2e-3f);
    }
}

/* vmath.c: exp against double-precision exp over the whole clamped range, every length tail. */
static void test_vexp(void **state) {
    (void)state;
    enum { N = 20001 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        x[i] = -87.0f + 175.0f * (float)i / (N - 1);
    memcpy(y, x, sizeof(float) * N);
    cn_cpu_vexp(y, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double e = exp((double)x[i]), rel = fabs(y[i] - e) / e;
        worst = rel > worst ? rel : worst;
    }
    assert_true(worst < 2.5e-7);
    float edge[5] = {NAN, -1e4f, 1e4f, 0.0f, -0.0f};
    cn_cpu_vexp(edge, 5);
    assert_true(isnan(edge[0]));
    assert_true(edge[1] >= 0 && edge[1] < 1e-37f);  /* clamped, not exactly 0 */
    assert_true(isfinite(edge[2]) && edge[2] > 1e38f);
    assert_true(edge[3] == 1.0f && edge[4] == 1.0f);
    for (int n = 1; n <= 33; n++) { /* tails: vector and partial lanes agree */
        float a[33], b[33], g[33], out[33];
        for (int i = 0; i < n; i++) {
            a[i] = b[i] = (float)(i - 16) * 0.37f;
            g[i] = (float)(16 - i) * 0.29f;
        }
        cn_cpu_vsilu(b, n);
        cn_cpu_vglu(a, g, out, n);
        for (int i = 0; i < n; i++) {
            double sil = a[i] / (1.0 + exp(-(double)a[i])), glu = a[i] / (1.0 + exp(-(double)g[i]));
            assert_true(fabs(b[i] - sil) <= 1e-6 * (1 + fabs(sil)));
            assert_true(fabs(out[i] - glu) <= 1e-6 * (1 + fabs(glu)));
        }
    }
    free(x), free(y);
}

static void test_bf16_rounding(void **state) {
    (void)state;
    assert_int_equal(cn_f32_to_bf16(1.0f), 0x3f80);
    /* 1 + 2^-8 is exactly half-way between two bf16 values: ties to even (down to 1.0). */
    assert_int_equal(cn_f32_to_bf16(1.00390625f), 0x3f80);
    /* 1 + 3*2^-8 is half-way as well: rounds up to the even mantissa 0x3f82. */
    assert_int_equal(cn_f32_to_bf16(1.01171875f), 0x3f82);
    assert_true(cn_bf16_to_f32(cn_f32_to_bf16(-2.5f)) == -2.5f);
    assert_true(isnan(cn_bf16_to_f32(cn_f32_to_bf16(NAN))));
}

static void test_layer_norm_glu_dwconv(void **state) {
    (void)state;
    fixture f = make(3);
    int rows = 11, d = 24;
    float *x = rand_buf((size_t)rows * d), *g = rand_buf(d), *b = rand_buf(d), *y = malloc(sizeof(float) * rows * d);
    f.ops->layer_norm(f.ex, x, y, rows, d, g, b, 1e-5f);
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++)
            mean += x[r * d + i];
        mean /= d;
        for (int i = 0; i < d; i++)
            var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
        var /= d;
        for (int i = 0; i < d; i++) {
            double e = (x[r * d + i] - mean) / sqrt(var + 1e-5) * g[i] + b[i];
            assert_true(fabs(e - y[r * d + i]) < 1e-5);
        }
    }
    /* GLU with a time mask, 2 sequences of 5 steps */
    int n_seq = 2, t = 5, valid[2] = {5, 3};
    float *gx = rand_buf((size_t)n_seq * t * 2 * d), *gy = malloc(sizeof(float) * n_seq * t * d);
    f.ops->glu_mask(f.ex, gx, gy, n_seq, t, d, valid);
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < t; i++)
            for (int c = 0; c < d; c++) {
                const float *r = gx + ((size_t)s * t + i) * 2 * d;
                float e = i < valid[s] ? r[c] / (1.0f + expf(-r[d + c])) : 0.0f;
                assert_true(fabsf(e - gy[((size_t)s * t + i) * d + c]) < 1e-6f);
            }
    /* depthwise conv1d, kernel 9, pad 4, SiLU */
    int k = 9;
    float *w = rand_buf((size_t)d * k), *cb = rand_buf(d), *cy = malloc(sizeof(float) * n_seq * t * d);
    f.ops->dwconv1d(f.ex, gy, cy, n_seq, t, d, w, cb, k, CN_ACT_SILU);
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < t; i++)
            for (int c = 0; c < d; c++) {
                float acc = cb[c];
                for (int q = 0; q < k; q++) {
                    int ti = i + q - 4;
                    if (ti >= 0 && ti < t)
                        acc += w[c * k + q] * gy[((size_t)s * t + ti) * d + c];
                }
                assert_true(fabsf(act_ref(CN_ACT_SILU, acc) - cy[((size_t)s * t + i) * d + c]) < 1e-5f);
            }
    free(x), free(g), free(b), free(y), free(gx), free(gy), free(w), free(cb), free(cy);
    unmake(&f);
}

/* Reference conv2d in NCHW, as PyTorch defines it (stride 2, pad 1, 3x3), groups = 1 (c_in 1) or c. */
static void conv2d_ref(const float *x /* [c_in][t][f] */, int t, int f, int c_in, int c, const float *w,
                       const float *b, float *y /* [c][to][fo] */) {
    int to_n = (t + 1) / 2, fo_n = (f + 1) / 2;
    for (int ch = 0; ch < c; ch++)
        for (int to = 0; to < to_n; to++)
            for (int fo = 0; fo < fo_n; fo++) {
                float acc = b[ch];
                int ci = c_in == 1 ? 0 : ch;
                for (int dt = 0; dt < 3; dt++)
                    for (int df = 0; df < 3; df++) {
                        int ti = 2 * to - 1 + dt, fi = 2 * fo - 1 + df;
                        if (ti >= 0 && ti < t && fi >= 0 && fi < f)
                            acc += w[ch * 9 + dt * 3 + df] * x[((size_t)ci * t + ti) * f + fi];
                    }
                y[((size_t)ch * to_n + to) * fo_n + fo] = acc;
            }
}

static void test_conv2d(void **state) {
    (void)state;
    fixture f = make(3);
    int t = 9, fr = 10, c = 6;
    float *x = rand_buf((size_t)t * fr), *w = rand_buf((size_t)c * 9), *b = rand_buf(c);
    int to = (t + 1) / 2, fo = (fr + 1) / 2;
    float *y = malloc(sizeof(float) * to * fo * c), *ref = malloc(sizeof(float) * to * fo * c);
    f.ops->conv2d_s2(f.ex, x, y, 1, t, fr, 1, c, w, b, NULL, CN_ACT_RELU);
    conv2d_ref(x, t, fr, 1, c, w, b, ref);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < to; i++)
            for (int j = 0; j < fo; j++)
                assert_true(fabsf(act_ref(CN_ACT_RELU, ref[(ch * to + i) * fo + j]) - y[(i * fo + j) * c + ch]) < 1e-5f);
    /* depthwise on channels-last input; with valid_in = 5 the rows >= 5 read as zero */
    float *xn = malloc(sizeof(float) * c * t * fr), *xl = rand_buf((size_t)t * fr * c);
    int valid = 5;
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < t; i++)
            for (int j = 0; j < fr; j++)
                xn[(ch * t + i) * fr + j] = i < valid ? xl[(i * fr + j) * c + ch] : 0.0f;
    f.ops->conv2d_s2(f.ex, xl, y, 1, t, fr, c, c, w, b, &valid, CN_ACT_NONE);
    conv2d_ref(xn, t, fr, c, c, w, b, ref);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < to; i++)
            for (int j = 0; j < fo; j++)
                assert_true(fabsf(ref[(ch * to + i) * fo + j] - y[(i * fo + j) * c + ch]) < 1e-5f);
    free(x), free(w), free(b), free(y), free(ref), free(xn), free(xl);
    unmake(&f);
}

/* Relative-position attention against NeMo's formulation written literally: the full [T, 2T-1]
 * positional score matrix, the Transformer-XL rel_shift by pad/reshape, -10000 masking, zeroing. */
static void test_rel_attention(void **state) {
    (void)state;
    fixture f = make(3);
    int n_seq = 2, t = 7, h = 2, dk = 4, d = h * dk, np = 2 * t - 1;
    int valid[2] = {7, 4};
    float *qkv = rand_buf((size_t)n_seq * t * 3 * d), *pos = rand_buf((size_t)np * d);
    float *u = rand_buf((size_t)h * dk), *v = rand_buf((size_t)h * dk);
    float *out = rand_buf((size_t)n_seq * t * d);
    cn_relattn_args a = {n_seq, t, h, dk, qkv, pos, u, v, valid, out};
    f.ops->rel_attention(f.ex, &a);
    for (int s = 0; s < n_seq; s++)
        for (int hh = 0; hh < h; hh++) {
            float bd_raw[7][13], padded[7][14], shifted[7][7];
            for (int i = 0; i < t; i++)
                for (int m = 0; m < np; m++) {
                    float acc = 0;
                    for (int c = 0; c < dk; c++)
                        acc += (qkv[((size_t)s * t + i) * 3 * d + hh * dk + c] + v[hh * dk + c]) * pos[m * d + hh * dk + c];
                    bd_raw[i][m] = acc;
                }
            /* pad a zero column on the left, view [t, 2t] as [2t, t], drop the first row, view back as
             * [t, 2t-1] and keep the first t columns */
            for (int i = 0; i < t; i++) {
                padded[i][0] = 0;
                for (int m = 0; m < np; m++)
                    padded[i][m + 1] = bd_raw[i][m];
            }
            const float *flat = &padded[0][0];
            for (int i = 0; i < t; i++)
                for (int j = 0; j < t; j++)
                    shifted[i][j] = flat[t + i * np + j];
            for (int i = 0; i < t; i++) {
                float sc[7], mx = -FLT_MAX, sum = 0;
                for (int j = 0; j < t; j++) {
                    float ac = 0;
                    for (int c = 0; c < dk; c++)
                        ac += (qkv[((size_t)s * t + i) * 3 * d + hh * dk + c] + u[hh * dk + c]) *
                              qkv[((size_t)s * t + j) * 3 * d + d + hh * dk + c];
                    sc[j] = (ac + shifted[i][j]) / sqrtf((float)dk);
                    if (i >= valid[s] || j >= valid[s])
                        sc[j] = -10000.0f;
                    if (sc[j] > mx)
                        mx = sc[j];
                }
                for (int j = 0; j < t; j++)
                    sum += (sc[j] = expf(sc[j] - mx));
                for (int c = 0; c < dk; c++) {
                    float o = 0;
                    for (int j = 0; j < t; j++) {
                        float p = (i >= valid[s] || j >= valid[s]) ? 0.0f : sc[j] / sum;
                        o += p * qkv[((size_t)s * t + j) * 3 * d + 2 * d + hh * dk + c];
                    }
                    float got = out[((size_t)s * t + i) * d + hh * dk + c];
                    if (fabsf(o - got) > 1e-5f)
                        fail_msg("rel_attention s=%d h=%d i=%d c=%d: %g vs %g", s, hh, i, c, got, o);
                }
            }
        }
    free(qkv), free(pos), free(u), free(v), free(out);
    unmake(&f);
}

static void test_attention(void **state) {
    (void)state;
    fixture f = make(2);
    /* 3 query sequences over 2 key blocks (beams sharing one utterance's cross-attention K/V), causal */
    int n_seq = 3, h = 2, dk = 3, d = h * dk, lq = 4, lk = 6, blocks[3] = {1, 0, 1}, kvalid[2] = {6, 5};
    float *q = rand_buf((size_t)n_seq * lq * d), *k = rand_buf((size_t)2 * lk * d), *v = rand_buf((size_t)2 * lk * d);
    float *out = malloc(sizeof(float) * n_seq * lq * d);
    for (int causal = -1; causal <= 2; causal += 3) {
        cn_attn_args a = {n_seq, h, dk, lq, lk, q, d, (size_t)lq * d, k, v, d, (size_t)lk * d, blocks, kvalid,
                          causal, 0.5f, out, d, (size_t)lq * d};
        f.ops->attention(f.ex, &a);
        for (int s = 0; s < n_seq; s++)
            for (int hh = 0; hh < h; hh++)
                for (int i = 0; i < lq; i++) {
                    float sc[6], mx = -FLT_MAX, sum = 0;
                    const float *kb = k + (size_t)blocks[s] * lk * d, *vb = v + (size_t)blocks[s] * lk * d;
                    for (int j = 0; j < lk; j++) {
                        float acc = 0;
                        for (int c = 0; c < dk; c++)
                            acc += q[((size_t)s * lq + i) * d + hh * dk + c] * kb[j * d + hh * dk + c];
                        sc[j] = acc * 0.5f;
                        if (j >= kvalid[blocks[s]] || (causal >= 0 && j > i + causal))
                            sc[j] += -10000.0f; /* NeMo's additive mask */
                        if (sc[j] > mx)
                            mx = sc[j];
                    }
                    for (int j = 0; j < lk; j++)
                        sum += (sc[j] = expf(sc[j] - mx));
                    for (int c = 0; c < dk; c++) {
                        float o = 0;
                        for (int j = 0; j < lk; j++)
                            o += sc[j] / sum * vb[j * d + hh * dk + c];
                        assert_true(fabsf(o - out[((size_t)s * lq + i) * d + hh * dk + c]) < 1e-5f);
                    }
                }
    }
    free(q), free(k), free(v), free(out);
    unmake(&f);
}

static void test_logsoftmax_topk_embed(void **state) {
    (void)state;
    fixture f = make(2);
    int rows = 3, n = 50;
    float *x = rand_buf((size_t)rows * n), *ref = malloc(sizeof(float) * rows * n);
    memcpy(ref, x, sizeof(float) * rows * n);
    x[7] = x[9] = 5.0f; /* a tie: the lower index ranks first */
    ref[7] = ref[9] = 5.0f;
    f.ops->log_softmax(f.ex, x, rows, n);
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += exp((double)ref[r * n + i]);
        for (int i = 0; i < n; i++)
            assert_true(fabs(x[r * n + i] - (ref[r * n + i] - log(s))) < 1e-5);
    }
    float vals[3 * 4];
    int idx[3 * 4];
    f.ops->topk(f.ex, x, rows, n, 4, vals, idx);
    assert_int_equal(idx[0], 7);
    assert_int_equal(idx[1], 9);
    for (int r = 0; r < rows; r++)
        for (int kk = 0; kk < 4; kk++) {
            assert_true(vals[r * 4 + kk] == x[r * n + idx[r * 4 + kk]]);
            int greater = 0;
            for (int i = 0; i < n; i++)
                greater += x[r * n + i] > vals[r * 4 + kk];
            assert_true(greater <= kk);
            if (kk)
                assert_true(vals[r * 4 + kk] <= vals[r * 4 + kk - 1]);
        }
    float table[4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8}, posv[3 * 2] = {0.5f, 0.25f, 10, 20, 30, 40};
    int ids[2] = {3, 1}, positions[2] = {2, 0};
    float e[4];
    f.ops->embed(f.ex, table, posv, ids, positions, 2, 2, e);
    assert_true(e[0] == 37 && e[1] == 48 && e[2] == 3.5f && e[3] == 4.25f);
    free(x), free(ref);
    unmake(&f);
}

static void test_physical_cores(void **state) {
    (void)state;
    int p = cn_physical_cores();
    assert_true(p >= 1 && p <= cn_cpu_count());
    assert_non_null(cn_cpu_gemm_name());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_vexp),
        cmocka_unit_test(test_layer_norm_glu_dwconv),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_rel_attention),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_logsoftmax_topk_embed),
        cmocka_unit_test(test_physical_cores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

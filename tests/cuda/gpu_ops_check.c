/* GPU parity check of the CUDA backend, standalone: loads libcanary_cuda.so with dlopen, runs
 * every backend operation on random inputs in every precision and compares with a naive CPU
 * reference written here (double accumulation, no BLAS), printing one JSON line per case. With
 * `--bench` it then times the canary-1b-flash encoder and decoder shapes at batch 1, 64 and 128.
 *
 *   gpu_ops_check PLUGIN.so [--bench | --bench-tiny] [--quick] [--prec f32,tf32,bf16,f16] [--batches 1,64,128]
 *                 [--repeat N]   (every case N times on one exec, new random inputs each time, only
 *                                 failures printed: catches results that go wrong now and then)
 *   cpu_ops_check --cpu [--quick]   (built with CN_CHECK_CPU and cn_nn: the same cases on the CPU
 *                                    backend, which proves the references and the harness here)
 *
 * Exit status: 0 all cases passed, 1 a case failed, 77 no usable GPU / plugin (ctest SKIP), 2 usage.
 * Needs only libc and libdl: it builds on machines without our Debian libraries. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/backend.h"
#include "nn/cuda_plugin_abi.h"

#define SKIP 77

typedef long (*lt_fallbacks_fn)(cn_exec *ex);

typedef struct ctx {
    const cn_backend_ops *o;
    cn_backend *be;
    cn_exec *ex;
    cn_precision prec;
    const char *pname;
} ctx;

static int g_failures, g_cases;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof(float) + 4);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
    return p;
}

static float *zeros(size_t n) {
    float *p = calloc(n + 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    return p;
}

static float *dev(ctx *c, const float *h, size_t n) {
    float *d = c->o->alloc(c->ex, n * sizeof(float) + 4);
    if (!d) {
        fprintf(stderr, "device allocation of %zu floats failed\n", n);
        exit(1);
    }
    if (h)
        c->o->upload(c->ex, d, h, n * sizeof(float));
    return d;
}

static void get(ctx *c, float *h, const float *d, size_t n) { c->o->download(c->ex, h, d, n * sizeof(float)); }

static const float *konst(ctx *c, const float *h, size_t n) {
    const float *p = NULL;
    cn_error e = {0};
    if (c->o->constant(c->be, h, n, &p, &e) != CANARY_OK) {
        fprintf(stderr, "constant(): %s\n", e.msg);
        exit(1);
    }
    return p;
}

static void check_sync(ctx *c, const char *op) {
    cn_error e = {0};
    if (c->o->sync(c->ex, &e) != CANARY_OK) {
        printf("{\"op\":\"%s\",\"prec\":\"%s\",\"ok\":false,\"error\":\"%s\"}\n", op, c->pname, e.msg);
        g_failures++;
    }
}

static int g_repeat = 1; /* --repeat: passing cases are then not printed */

/* Max error relative to the reference's largest magnitude; non-finite outputs always fail. */
static void report(ctx *c, const char *op, const char *cs, const float *got, const double *ref, size_t n, double tol) {
    double maxref = 1e-3, maxerr = 0;
    size_t bad = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(ref[i]) > maxref)
            maxref = fabs(ref[i]);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            bad++;
            continue;
        }
        double e = fabs((double)got[i] - ref[i]);
        if (e > maxerr) {
            maxerr = e;
            worst = i;
        }
    }
    double rel = maxerr / maxref;
    bool ok = bad == 0 && rel <= tol;
    g_cases++;
    if (!ok)
        g_failures++;
    if (ok && g_repeat > 1)
        return;
    printf("{\"op\":\"%s\",\"case\":\"%s\",\"prec\":\"%s\",\"n\":%zu,\"max_abs_err\":%.3g,\"rel_err\":%.3g,"
           "\"tol\":%.3g,\"nonfinite\":%zu,\"worst\":%zu,\"got\":%.6g,\"ref\":%.6g,\"ok\":%s}\n",
           op, cs, c->pname, n, maxerr, rel, tol, bad, worst, n ? (double)got[worst] : 0.0, n ? ref[worst] : 0.0,
           ok ? "true" : "false");
    fflush(stdout);
}

static double gemm_tol(cn_precision p) {
    switch (p) {
    case CN_PREC_BF16: return 2e-2; /* 8-bit mantissa inputs, fp32 accumulation */
    case CN_PREC_F16: return 4e-3;  /* 11-bit mantissa inputs */
    case CN_PREC_TF32: return 4e-3; /* 10-bit mantissa products */
    default: return 2e-5;
    }
}
/* Attention GEMMs run in TF32 on sm80+ in every mode but f32. */
static double attn_tol(cn_precision p) { return p == CN_PREC_F32 ? 2e-5 : 4e-3; }
#define ELEM_TOL 2e-5 /* fp32 element-wise ops (fast exp on the GPU) */

static double act_d(cn_act a, double v) {
    if (a == CN_ACT_RELU)
        return v > 0 ? v : 0;
    if (a == CN_ACT_SILU)
        return v / (1.0 + exp(-v));
    return v;
}

/* ---------------------------------------------------------------------------------------------- */

static void t_linear(ctx *c, const char *cs, int m, int n_in, int n_out, bool bias, cn_act act, bool acc, float alpha,
                     int ldx_pad, int ldy_pad) {
    int ldx = n_in + ldx_pad, ldy = n_out + ldy_pad;
    float *w = rnd((size_t)n_out * n_in, 1.0f / sqrtf((float)n_in)), *b = bias ? rnd((size_t)n_out, 0.5f) : NULL;
    float *x = rnd((size_t)m * ldx, 1.0f), *y0 = rnd((size_t)m * ldy, 1.0f);
    cn_linear *l = NULL;
    cn_error e = {0};
    if (c->o->linear_create(c->be, w, b, n_out, n_in, c->prec, false, &l, &e) != CANARY_OK) {
        printf("{\"op\":\"linear\",\"case\":\"%s\",\"prec\":\"%s\",\"ok\":false,\"error\":\"%s\"}\n", cs, c->pname, e.msg);
        g_failures++;
        free(w), free(b), free(x), free(y0);
        return;
    }
    /* x and y sit at an odd offset inside their buffers when padded, as model code slices do */
    float *dx = dev(c, x, (size_t)m * ldx + 1), *dy = dev(c, y0, (size_t)m * ldy + 1);
    c->o->linear(c->ex, l, dx + (ldx_pad ? 1 : 0), ldx, m, dy + (ldy_pad ? 1 : 0), ldy, act, acc, alpha);
    float *got = zeros((size_t)m * ldy + 1);
    get(c, got, dy, (size_t)m * ldy + 1);
    check_sync(c, "linear");
    double *ref = calloc((size_t)m * n_out, sizeof(double));
    float *g2 = zeros((size_t)m * n_out);
    for (int i = 0; i < m; i++)
        for (int o = 0; o < n_out; o++) {
            double s = 0;
            const float *xr = x + (ldx_pad ? 1 : 0) + (size_t)i * ldx; /* the device read x at offset 1 */
            for (int k = 0; k < n_in; k++)
                s += (double)xr[k] * w[(size_t)o * n_in + k];
            if (b)
                s += b[o];
            size_t yi = (ldy_pad ? 1 : 0) + (size_t)i * ldy + o;
            ref[(size_t)i * n_out + o] = acc ? (double)y0[yi] + alpha * s : act_d(act, s);
            g2[(size_t)i * n_out + o] = got[yi];
        }
    report(c, "linear", cs, g2, ref, (size_t)m * n_out, gemm_tol(c->prec));
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    c->o->linear_destroy(c->be, l);
    free(w), free(b), free(x), free(y0), free(got), free(ref), free(g2);
}

/* A feed-forward block (the backend's optional ffn): y0 + alpha(act(x W1' + b1) W2' + b2) or without
 * accumulation, against double; half precisions keep the hidden layer in their type, so their
 * tolerance is the linear's. Skipped where the backend has no ffn (the CPU). */
static void t_ffn(ctx *c, const char *cs, int m, int n_in, int dh, int n_out, cn_act act, bool acc, float alpha) {
    if (!c->o->ffn)
        return;
    float *w1 = rnd((size_t)dh * n_in, 1.0f / sqrtf((float)n_in)), *b1 = rnd((size_t)dh, 0.5f);
    float *w2 = rnd((size_t)n_out * dh, 1.0f / sqrtf((float)dh)), *b2 = rnd((size_t)n_out, 0.5f);
    float *x = rnd((size_t)m * n_in, 1.0f), *y0 = rnd((size_t)m * n_out, 1.0f);
    cn_linear *l1 = NULL, *l2 = NULL;
    cn_error e = {0};
    if (c->o->linear_create(c->be, w1, b1, dh, n_in, c->prec, false, &l1, &e) != CANARY_OK ||
        c->o->linear_create(c->be, w2, b2, n_out, dh, c->prec, false, &l2, &e) != CANARY_OK) {
        printf("{\"op\":\"ffn\",\"case\":\"%s\",\"prec\":\"%s\",\"ok\":false,\"error\":\"%s\"}\n", cs, c->pname, e.msg);
        g_failures++;
        return;
    }
    float *dx = dev(c, x, (size_t)m * n_in), *dy = dev(c, y0, (size_t)m * n_out), *dh_buf = dev(c, NULL, (size_t)m * dh);
    c->o->ffn(c->ex, l1, l2, dx, n_in, m, dh_buf, dy, n_out, act, acc, alpha);
    float *got = zeros((size_t)m * n_out);
    get(c, got, dy, (size_t)m * n_out);
    check_sync(c, "ffn");
    double *ref = calloc((size_t)m * n_out, sizeof(double)), *h = calloc((size_t)dh, sizeof(double));
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < dh; j++) {
            double s = b1[j];
            for (int k = 0; k < n_in; k++)
                s += (double)x[(size_t)i * n_in + k] * w1[(size_t)j * n_in + k];
            h[j] = act_d(act, s);
        }
        for (int o = 0; o < n_out; o++) {
            double s = b2[o];
            for (int j = 0; j < dh; j++)
                s += h[j] * w2[(size_t)o * dh + j];
            ref[(size_t)i * n_out + o] = acc ? (double)y0[(size_t)i * n_out + o] + alpha * s : s;
        }
    }
    report(c, "ffn", cs, got, ref, (size_t)m * n_out, gemm_tol(c->prec));
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    c->o->free(c->ex, dh_buf);
    c->o->linear_destroy(c->be, l1);
    c->o->linear_destroy(c->be, l2);
    free(w1), free(b1), free(w2), free(b2), free(x), free(y0), free(got), free(ref), free(h);
}

/* The encoder input's transpose: n matrices [rows, cols] -> [y_rows, rows], rows past cols zero. */
static void t_transpose(ctx *c, int n, int rows, int cols, int y_rows) {
    size_t nx = (size_t)n * rows * cols, ny = (size_t)n * y_rows * rows;
    float *x = rnd(nx, 1.0f), *got = zeros(ny);
    float *dx = dev(c, x, nx), *dy = dev(c, NULL, ny);
    float *junk = rnd(ny, 1.0f); /* the padding rows must be written, not left from before */
    c->o->upload(c->ex, dy, junk, ny * sizeof(float));
    c->o->transpose(c->ex, dx, dy, n, rows, cols, y_rows);
    get(c, got, dy, ny);
    check_sync(c, "transpose");
    double *ref = calloc(ny, sizeof(double));
    for (int b = 0; b < n; b++)
        for (int r = 0; r < rows; r++)
            for (int cc = 0; cc < cols; cc++)
                ref[(size_t)b * y_rows * rows + (size_t)cc * rows + r] = x[(size_t)b * rows * cols + (size_t)r * cols + cc];
    char cs[64];
    snprintf(cs, sizeof cs, "n%d_%dx%d_to_%dx%d", n, rows, cols, y_rows, rows);
    report(c, "transpose", cs, got, ref, ny, 0.0);
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    free(x), free(got), free(junk), free(ref);
}

static void t_layer_norm(ctx *c, int rows, int d, bool inplace) {
    float *x = rnd((size_t)rows * d, 3.0f), *g = rnd((size_t)d, 1.0f), *b = rnd((size_t)d, 1.0f);
    for (size_t i = 0; i < (size_t)rows * d; i++)
        x[i] += 2.0f; /* a mean far from zero tests the centred variance */
    float *dx = dev(c, x, (size_t)rows * d), *dy = inplace ? dx : dev(c, NULL, (size_t)rows * d);
    c->o->layer_norm(c->ex, dx, dy, rows, d, konst(c, g, (size_t)d), konst(c, b, (size_t)d), 1e-5f);
    float *got = zeros((size_t)rows * d);
    get(c, got, dy, (size_t)rows * d);
    check_sync(c, "layer_norm");
    double *ref = calloc((size_t)rows * d, sizeof(double));
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        double mean = 0, var = 0;
        for (int i = 0; i < d; i++)
            mean += xr[i];
        mean /= d;
        for (int i = 0; i < d; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        var /= d;
        for (int i = 0; i < d; i++)
            ref[(size_t)r * d + i] = (xr[i] - mean) / sqrt(var + 1e-5) * g[i] + b[i];
    }
    char cs[64];
    snprintf(cs, sizeof cs, "rows%d_d%d%s", rows, d, inplace ? "_inplace" : "");
    report(c, "layer_norm", cs, got, ref, (size_t)rows * d, 1e-5);
    c->o->free(c->ex, dx);
    if (!inplace)
        c->o->free(c->ex, dy);
    free(x), free(g), free(b), free(got), free(ref);
}

static void t_glu(ctx *c, int d) { /* d % 4 == 0: four channels at a time */
    int S = 3, t = 17, valid[3] = {17, 5, 0};
    size_t n = (size_t)S * t * d;
    float *x = rnd(2 * n, 4.0f);
    float *dx = dev(c, x, 2 * n), *dy = dev(c, NULL, n);
    c->o->glu_mask(c->ex, dx, dy, S, t, d, valid);
    float *got = zeros(n);
    get(c, got, dy, n);
    check_sync(c, "glu_mask");
    double *ref = calloc(n, sizeof(double));
    for (int s = 0; s < S; s++)
        for (int i = 0; i < t; i++)
            for (int ch = 0; ch < d; ch++) {
                size_t r = (size_t)s * t + i;
                const float *xr = x + r * 2 * d;
                ref[r * d + ch] = i >= valid[s] ? 0.0 : xr[ch] / (1.0 + exp(-(double)xr[d + ch]));
            }
    char cs[64];
    snprintf(cs, sizeof cs, "s3_t17_d%d_valid17,5,0", d);
    report(c, "glu_mask", cs, got, ref, n, ELEM_TOL);
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    free(x), free(got), free(ref);
}

static void t_dwconv(ctx *c, int S, int t, int d, int k, bool bias, cn_act act) {
    size_t n = (size_t)S * t * d;
    float *x = rnd(n, 1.0f), *w = rnd((size_t)d * k, 0.5f), *b = rnd((size_t)d, 0.5f);
    float *dx = dev(c, x, n), *dy = dev(c, NULL, n);
    c->o->dwconv1d(c->ex, dx, dy, S, t, d, konst(c, w, (size_t)d * k), bias ? konst(c, b, (size_t)d) : NULL, k, act);
    float *got = zeros(n);
    get(c, got, dy, n);
    check_sync(c, "dwconv1d");
    double *ref = calloc(n, sizeof(double));
    int half = (k - 1) / 2;
    for (int s = 0; s < S; s++)
        for (int i = 0; i < t; i++)
            for (int ch = 0; ch < d; ch++) {
                double a = bias ? b[ch] : 0.0;
                for (int q = 0; q < k; q++) {
                    int ti = i + q - half;
                    if (ti >= 0 && ti < t)
                        a += (double)w[(size_t)ch * k + q] * x[((size_t)s * t + ti) * d + ch];
                }
                ref[((size_t)s * t + i) * d + ch] = act_d(act, a);
            }
    char cs[64];
    snprintf(cs, sizeof cs, "s%d_t%d_d%d_k%d%s", S, t, d, k, bias ? "" : "_nobias");
    report(c, "dwconv1d", cs, got, ref, n, ELEM_TOL);
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    free(x), free(w), free(b), free(got), free(ref);
}

/* conv2d_s2_pair (optional): the double reference runs the two convs one after the other, the
 * first's output kept, as the two-call path does. */
static void t_conv2d_pair(ctx *c, int S, int t, int f, int ch, const int *v0, const int *v1) {
    if (!c->o->conv2d_s2_pair)
        return;
    int t1 = (t + 1) / 2, f1 = (f + 1) / 2, t2 = (t1 + 1) / 2, f2 = (f1 + 1) / 2;
    size_t nin = (size_t)S * t * f, nmid = (size_t)S * t1 * f1 * ch, nout = (size_t)S * t2 * f2 * ch;
    float *x = rnd(nin, 1.0f), *w1 = rnd((size_t)ch * 9, 0.5f), *b1 = rnd((size_t)ch, 0.5f);
    float *w2 = rnd((size_t)ch * 9, 0.5f), *b2 = rnd((size_t)ch, 0.5f);
    float *dx = dev(c, x, nin), *dy = dev(c, NULL, nout);
    c->o->conv2d_s2_pair(c->ex, dx, dy, S, t, f, ch, konst(c, w1, (size_t)ch * 9), konst(c, b1, (size_t)ch),
                         konst(c, w2, (size_t)ch * 9), konst(c, b2, (size_t)ch), v0, v1);
    float *got = zeros(nout);
    get(c, got, dy, nout);
    check_sync(c, "conv2d_s2_pair");
    double *mid = calloc(nmid, sizeof(double)), *ref = calloc(nout, sizeof(double));
    for (int s = 0; s < S; s++) {
        int lim0 = v0 ? (v0[s] < t ? v0[s] : t) : t, lim1 = v1 ? (v1[s] < t1 ? v1[s] : t1) : t1;
        for (int a = 0; a < t1; a++)
            for (int q = 0; q < f1; q++)
                for (int k = 0; k < ch; k++) {
                    double acc = b1[k];
                    for (int dt = 0; dt < 3; dt++)
                        for (int df = 0; df < 3; df++) {
                            int ti = 2 * a - 1 + dt, fi = 2 * q - 1 + df;
                            if (ti >= 0 && ti < lim0 && fi >= 0 && fi < f)
                                acc += (double)w1[(size_t)k * 9 + dt * 3 + df] * x[((size_t)s * t + ti) * f + fi];
                        }
                    mid[(((size_t)s * t1 + a) * f1 + q) * ch + k] = acc > 0 ? acc : 0;
                }
        for (int a = 0; a < t2; a++)
            for (int q = 0; q < f2; q++)
                for (int k = 0; k < ch; k++) {
                    double acc = b2[k];
                    for (int dt = 0; dt < 3; dt++)
                        for (int df = 0; df < 3; df++) {
                            int ti = 2 * a - 1 + dt, fi = 2 * q - 1 + df;
                            if (ti >= 0 && ti < lim1 && fi >= 0 && fi < f1)
                                acc += (double)w2[(size_t)k * 9 + dt * 3 + df] *
                                       mid[(((size_t)s * t1 + ti) * f1 + fi) * ch + k];
                        }
                    ref[(((size_t)s * t2 + a) * f2 + q) * ch + k] = acc;
                }
    }
    char cs[64];
    snprintf(cs, sizeof cs, "s%d_t%d_f%d_c%d%s", S, t, f, ch, v0 ? "_valid" : "");
    report(c, "conv2d_s2_pair", cs, got, ref, nout, ELEM_TOL);
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    free(x), free(w1), free(b1), free(w2), free(b2), free(got), free(mid), free(ref);
}

static void t_conv2d(ctx *c, int S, int t, int f, int c_in, int ch, const int *valid, cn_act act) {
    int to = (t + 1) / 2, fo = (f + 1) / 2;
    size_t nin = (size_t)S * t * f * c_in, nout = (size_t)S * to * fo * ch;
    float *x = rnd(nin, 1.0f), *w = rnd((size_t)ch * 9, 0.5f), *b = rnd((size_t)ch, 0.5f);
    float *dx = dev(c, x, nin), *dy = dev(c, NULL, nout);
    c->o->conv2d_s2(c->ex, dx, dy, S, t, f, c_in, ch, konst(c, w, (size_t)ch * 9), konst(c, b, (size_t)ch), valid, act);
    float *got = zeros(nout);
    get(c, got, dy, nout);
    check_sync(c, "conv2d_s2");
    double *ref = calloc(nout, sizeof(double));
    for (int s = 0; s < S; s++) {
        int lim = valid ? (valid[s] < t ? valid[s] : t) : t;
        for (int a = 0; a < to; a++)
            for (int q = 0; q < fo; q++)
                for (int k = 0; k < ch; k++) {
                    double acc = b[k];
                    for (int dt = 0; dt < 3; dt++)
                        for (int df = 0; df < 3; df++) {
                            int ti = 2 * a - 1 + dt, fi = 2 * q - 1 + df;
                            if (ti < 0 || ti >= lim || fi < 0 || fi >= f)
                                continue;
                            double xv = c_in == 1 ? x[((size_t)s * t + ti) * f + fi]
                                                  : x[(((size_t)s * t + ti) * f + fi) * ch + k];
                            acc += (double)w[(size_t)k * 9 + dt * 3 + df] * xv;
                        }
                    ref[(((size_t)s * to + a) * fo + q) * ch + k] = act_d(act, acc);
                }
    }
    char cs[64];
    snprintf(cs, sizeof cs, "s%d_t%d_f%d_cin%d_c%d%s", S, t, f, c_in, ch, valid ? "_valid" : "");
    report(c, "conv2d_s2", cs, got, ref, nout, ELEM_TOL);
    c->o->free(c->ex, dx);
    c->o->free(c->ex, dy);
    free(x), free(w), free(b), free(got), free(ref);
}

static void t_mask_time(ctx *c) {
    int S = 3, t = 10, valid[3] = {10, 3, -1};
    size_t row = 24, n = (size_t)S * t * row;
    float *x = rnd(n, 1.0f), *dx = dev(c, x, n);
    c->o->mask_time(c->ex, dx, S, t, row, valid);
    float *got = zeros(n);
    get(c, got, dx, n);
    check_sync(c, "mask_time");
    double *ref = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        int s = (int)(i / (t * row)), tt = (int)(i / row % t);
        ref[i] = tt >= valid[s] ? 0.0 : x[i];
    }
    report(c, "mask_time", "s3_t10_valid10,3,-1", got, ref, n, 0.0);
    c->o->free(c->ex, dx);
    free(x), free(got), free(ref);
}

static void t_rel_attention(ctx *c, int S, int t, int H, int dk, const int *valid) {
    int d = H * dk, np = 2 * t - 1;
    size_t nqkv = (size_t)S * t * 3 * d, nout = (size_t)S * t * d;
    float *qkv = rnd(nqkv, 1.0f), *pos = rnd((size_t)np * d, 1.0f), *bu = rnd((size_t)d, 0.3f),
          *bv = rnd((size_t)d, 0.3f);
    float *dqkv = dev(c, qkv, nqkv), *dpos = dev(c, pos, (size_t)np * d), *dout = dev(c, NULL, nout);
    cn_relattn_args a = {.n_seq = S, .t = t, .n_heads = H, .head_dim = dk, .qkv = dqkv, .pos = dpos,
                         .bias_u = konst(c, bu, (size_t)d), .bias_v = konst(c, bv, (size_t)d), .valid = valid,
                         .out = dout};
    c->o->rel_attention(c->ex, &a);
    float *got = zeros(nout);
    get(c, got, dout, nout);
    check_sync(c, "rel_attention");
    double *ref = calloc(nout, sizeof(double)), *p = calloc((size_t)t, sizeof(double));
    double scale = 1.0 / sqrt((double)dk);
    for (int s = 0; s < S; s++) {
        int nv = valid ? valid[s] : t;
        nv = nv < 0 ? 0 : nv > t ? t : nv;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < nv; i++) {
                const float *q = qkv + ((size_t)s * t + i) * 3 * d + (size_t)h * dk;
                double mx = -DBL_MAX, sum = 0;
                for (int j = 0; j < nv; j++) {
                    const float *k = qkv + ((size_t)s * t + j) * 3 * d + d + (size_t)h * dk;
                    const float *pr = pos + (size_t)(t - 1 - i + j) * d + (size_t)h * dk;
                    double ac = 0, bd = 0;
                    for (int e = 0; e < dk; e++) {
                        ac += ((double)q[e] + bu[h * dk + e]) * k[e];
                        bd += ((double)q[e] + bv[h * dk + e]) * pr[e];
                    }
                    p[j] = (ac + bd) * scale;
                    if (p[j] > mx)
                        mx = p[j];
                }
                for (int j = 0; j < nv; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int e = 0; e < dk; e++) {
                    double o = 0;
                    for (int j = 0; j < nv; j++)
                        o += p[j] / sum * qkv[((size_t)s * t + j) * 3 * d + 2 * d + (size_t)h * dk + e];
                    ref[((size_t)s * t + i) * d + (size_t)h * dk + e] = o;
                }
            }
    }
    char cs[64];
    snprintf(cs, sizeof cs, "s%d_t%d_h%d_dk%d%s", S, t, H, dk, valid ? "_valid" : "");
    report(c, "rel_attention", cs, got, ref, nout, attn_tol(c->prec));
    c->o->free(c->ex, dqkv);
    c->o->free(c->ex, dpos);
    c->o->free(c->ex, dout);
    free(qkv), free(pos), free(bu), free(bv), free(got), free(ref), free(p);
}

/* Decoder-style attention: q rows of n_seq sequences over kv blocks (cache layout [blk][lk][ldk]). */
static void t_attention(ctx *c, const char *cs, int S, int lq, int lk, int H, int dk, const int *kv_block,
                        const int *kv_valid, int n_blocks, int causal) {
    int d = H * dk, ldq = d + 5, ldk = 2 * d, ldo = d + 3;
    size_t nq = (size_t)S * lq * ldq, nkv = (size_t)n_blocks * lk * ldk, no = (size_t)S * lq * ldo;
    float *q = rnd(nq, 1.0f), *kv = rnd(nkv, 1.0f);
    float *dq = dev(c, q, nq), *dkv = dev(c, kv, nkv), *dout = dev(c, NULL, no);
    cn_attn_args a = {.n_seq = S, .n_heads = H, .head_dim = dk, .lq = lq, .lk = lk, .q = dq, .ldq = ldq,
                      .q_seq_stride = (size_t)lq * ldq, .k = dkv, .v = dkv + d, .ldk = ldk,
                      .kv_seq_stride = (size_t)lk * ldk, .kv_block = kv_block, .kv_valid = kv_valid,
                      .causal_offset = causal, .scale = 1.0f / sqrtf((float)dk), .out = dout, .ldo = ldo,
                      .out_seq_stride = (size_t)lq * ldo};
    c->o->attention(c->ex, &a);
    float *got = zeros(no), *g2 = zeros((size_t)S * lq * d);
    get(c, got, dout, no);
    check_sync(c, "attention");
    double *ref = calloc((size_t)S * lq * d, sizeof(double)), *p = calloc((size_t)lk, sizeof(double));
    for (int s = 0; s < S; s++) {
        int blk = kv_block ? kv_block[s] : s;
        int n0 = lk;
        if (kv_valid && kv_valid[blk] > 0 && kv_valid[blk] < lk)
            n0 = kv_valid[blk];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < lq; i++) {
                int n = n0;
                if (causal >= 0 && i + causal + 1 < n)
                    n = i + causal + 1;
                const float *qr = q + (size_t)s * lq * ldq + (size_t)i * ldq + (size_t)h * dk;
                double mx = -DBL_MAX, sum = 0;
                for (int j = 0; j < n; j++) {
                    const float *kr = kv + (size_t)blk * lk * ldk + (size_t)j * ldk + (size_t)h * dk;
                    double dot = 0;
                    for (int e = 0; e < dk; e++)
                        dot += (double)qr[e] * kr[e];
                    p[j] = dot * a.scale;
                    if (p[j] > mx)
                        mx = p[j];
                }
                for (int j = 0; j < n; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int e = 0; e < dk; e++) {
                    double o = 0;
                    for (int j = 0; j < n; j++)
                        o += p[j] / sum * kv[(size_t)blk * lk * ldk + (size_t)j * ldk + d + (size_t)h * dk + e];
                    size_t oi = ((size_t)s * lq + i) * d + (size_t)h * dk + e;
                    ref[oi] = o;
                    g2[oi] = got[(size_t)s * lq * ldo + (size_t)i * ldo + (size_t)h * dk + e];
                }
            }
    }
    report(c, "attention", cs, g2, ref, (size_t)S * lq * d, ELEM_TOL * 5);
    c->o->free(c->ex, dq);
    c->o->free(c->ex, dkv);
    c->o->free(c->ex, dout);
    free(q), free(kv), free(got), free(g2), free(ref), free(p);
}

static void t_embed(ctx *c) {
    int V = 50, P = 40, d = 32, n = 7, ids[7] = {0, 49, 3, 3, 17, 2, 48}, pos[7] = {0, 1, 2, 39, 5, 5, 0};
    float *tab = rnd((size_t)V * d, 1.0f), *pe = rnd((size_t)P * d, 1.0f);
    float *dout = dev(c, NULL, (size_t)n * d);
    c->o->embed(c->ex, konst(c, tab, (size_t)V * d), konst(c, pe, (size_t)P * d), ids, pos, n, d, dout);
    float *got = zeros((size_t)n * d);
    get(c, got, dout, (size_t)n * d);
    check_sync(c, "embed");
    double *ref = calloc((size_t)n * d, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int e = 0; e < d; e++)
            ref[(size_t)i * d + e] = (double)tab[(size_t)ids[i] * d + e] + pe[(size_t)pos[i] * d + e];
    report(c, "embed", "v50_d32_n7", got, ref, (size_t)n * d, 1e-6);
    c->o->free(c->ex, dout);
    free(tab), free(pe), free(got), free(ref);
}

static void t_log_softmax(ctx *c, int rows, int n) {
    size_t total = (size_t)rows * n;
    float *x = rnd(total, 8.0f), *dx = dev(c, x, total);
    x[3] = -1e30f; /* a masked logit stays finite */
    c->o->upload(c->ex, dx, x, total * sizeof(float));
    c->o->log_softmax(c->ex, dx, rows, n);
    float *got = zeros(total);
    get(c, got, dx, total);
    check_sync(c, "log_softmax");
    double *ref = calloc(total, sizeof(double));
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        double mx = -DBL_MAX, s = 0;
        for (int i = 0; i < n; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        for (int i = 0; i < n; i++)
            s += exp(xr[i] - mx);
        for (int i = 0; i < n; i++)
            ref[(size_t)r * n + i] = xr[i] - mx - log(s);
    }
    /* the masked entry (~-1e30) must come out finite and hugely negative; the rest compare tightly */
    bool masked_ok = isfinite(got[3]) && got[3] < -1e29f;
    ref[3] = got[3] = 0.0f;
    if (!masked_ok) {
        printf("{\"op\":\"log_softmax\",\"case\":\"masked_logit\",\"prec\":\"%s\",\"ok\":false}\n", c->pname);
        g_failures++;
    }
    report(c, "log_softmax", rows == 1 ? "rows1" : "rows5_vocab", got, ref, total, 1e-6);
    c->o->free(c->ex, dx);
    free(x), free(got), free(ref);
}

/* Exact: values and indices must equal the CPU algorithm's, ties to the lower index. */
static void t_topk(ctx *c, bool host_input) {
    int rows = 6, n = 5248, k = 4;
    size_t total = (size_t)rows * n;
    float *x = rnd(total, 5.0f);
    for (int r = 0; r < rows; r++) { /* ties: the best value appears 3 times, the next twice */
        float *xr = x + (size_t)r * n;
        xr[100 + r] = xr[5000] = xr[7 + r] = 9.0f;
        xr[4000] = xr[200 + 3 * r] = 8.5f;
    }
    x[(size_t)5 * n + 17] = -INFINITY;
    float *vals = zeros((size_t)rows * k), vref[24];
    int idx[24], iref[24];
    float *dx = host_input ? NULL : dev(c, x, total);
    c->o->topk(c->ex, host_input ? x : dx, rows, n, k, vals, idx);
    check_sync(c, "topk");
    for (int r = 0; r < rows; r++) { /* reference: the CPU backend's algorithm */
        const float *xr = x + (size_t)r * n;
        float *v = vref + r * k;
        int *ix = iref + r * k, have = 0;
        for (int i = 0; i < n; i++) {
            float val = xr[i];
            if (have == k && !(val > v[k - 1]))
                continue;
            int pos = have < k ? have : k - 1;
            while (pos > 0 && val > v[pos - 1]) {
                v[pos] = v[pos - 1];
                ix[pos] = ix[pos - 1];
                pos--;
            }
            v[pos] = val;
            ix[pos] = i;
            if (have < k)
                have++;
        }
    }
    int mism = 0;
    for (int i = 0; i < rows * k; i++)
        if (idx[i] != iref[i] || vals[i] != vref[i])
            mism++;
    g_cases++;
    if (mism)
        g_failures++;
    printf("{\"op\":\"topk\",\"case\":\"%s\",\"prec\":\"%s\",\"n\":%d,\"mismatches\":%d,\"first\":[%d,%d,%d,%d],"
           "\"ref\":[%d,%d,%d,%d],\"ok\":%s}\n",
           host_input ? "host_input" : "rows6_n5248_k4_ties", c->pname, rows * k, mism, idx[0], idx[1], idx[2], idx[3],
           iref[0], iref[1], iref[2], iref[3], mism ? "false" : "true");
    if (dx)
        c->o->free(c->ex, dx);
    free(x), free(vals);
}

/* The arena: fresh allocations are zeroed, freed blocks are reused, contents survive neighbours. */
static void t_arena(ctx *c) {
    size_t n = 1 << 20;
    float *h = rnd(n, 1.0f), *back = zeros(n);
    float *a = dev(c, h, n), *b = dev(c, NULL, 1000), *cc = dev(c, NULL, 3 * n);
    c->o->free(c->ex, b);
    float *d2 = dev(c, NULL, 500); /* fits in b's hole */
    c->o->copy(c->ex, cc + 7, a, n * sizeof(float));
    get(c, back, cc + 7, n);
    int bad = memcmp(back, h, n * sizeof(float)) != 0;
    get(c, back, d2, 500);
    for (int i = 0; i < 500; i++)
        bad += back[i] != 0.0f;
    /* copy_2d: 37 rows of 5 floats from pitch 11 to pitch 6 */
    c->o->copy_2d(c->ex, d2, 6 * sizeof(float), a + 3, 11 * sizeof(float), 5 * sizeof(float), 37);
    get(c, back, d2, 6 * 37);
    for (int r = 0; r < 37; r++)
        for (int i = 0; i < 6; i++)
            bad += back[r * 6 + i] != (i < 5 ? h[3 + r * 11 + i] : 0.0f);
    /* copy_2d of whole words (a kernel) and of bytes (not multiples of 4: cudaMemcpy2DAsync): 3 rows
     * of 7 bytes from pitch 13 to pitch 9, into a zeroed block */
    float *z = dev(c, NULL, 16);
    c->o->copy_2d(c->ex, z, 9, (const char *)a + 1, 13, 7, 3);
    unsigned char zb[64], *hb = (unsigned char *)h + 1;
    get(c, (float *)zb, z, 16);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 9; i++)
            bad += r * 9 + i < 27 && zb[r * 9 + i] != (i < 7 ? hb[r * 13 + i] : 0);
    c->o->free(c->ex, z);
    check_sync(c, "arena");
    g_cases++;
    if (bad)
        g_failures++;
    printf("{\"op\":\"arena\",\"case\":\"alloc_free_reuse_copy_copy2d\",\"prec\":\"%s\",\"reused_hole\":%s,\"bad\":%d,"
           "\"ok\":%s}\n",
           c->pname, d2 == b ? "true" : "false", bad, bad ? "false" : "true");
    c->o->free(c->ex, a);
    c->o->free(c->ex, cc);
    c->o->free(c->ex, d2);
    free(h), free(back);
}

static void run_checks(ctx *c, bool quick) {
    t_arena(c);
    /* linear: every epilogue, strided/offset operands, odd sizes, and an encoder-sized layer */
    t_linear(c, "m37_k160_n96_bias", 37, 160, 96, true, CN_ACT_NONE, false, 0, 0, 0);
    t_linear(c, "m37_k160_n96_relu", 37, 160, 96, true, CN_ACT_RELU, false, 0, 0, 0);
    t_linear(c, "m37_k160_n96_relu_nobias", 37, 160, 96, false, CN_ACT_RELU, false, 0, 0, 0);
    t_linear(c, "m37_k160_n96_silu", 37, 160, 96, true, CN_ACT_SILU, false, 0, 0, 0);
    t_linear(c, "m37_k160_n96_nobias", 37, 160, 96, false, CN_ACT_NONE, false, 0, 0, 0);
    t_linear(c, "m37_k160_n96_acc0.5", 37, 160, 96, true, CN_ACT_NONE, true, 0.5f, 0, 0);
    t_linear(c, "m37_k160_n96_acc1_nobias", 37, 160, 96, false, CN_ACT_NONE, true, 1.0f, 0, 0);
    t_linear(c, "m37_k160_n96_acc1_bias", 37, 160, 96, true, CN_ACT_NONE, true, 1.0f, 0, 0);
    t_linear(c, "m1_k64_n33_acc1_bias_decoder_row", 1, 64, 33, true, CN_ACT_NONE, true, 1.0f, 0, 0);
    t_linear(c, "m5_k96_n80_strided_offset", 5, 96, 80, true, CN_ACT_NONE, false, 0, 7, 3);
    t_linear(c, "m1_k64_n33_decoder_row", 1, 64, 33, true, CN_ACT_NONE, false, 0, 0, 0);
    if (!quick)
        t_linear(c, "m67_k1024_n1536_silu", 67, 1024, 1536, true, CN_ACT_SILU, false, 0, 0, 0);
    t_ffn(c, "m37_k96_h160_n80_silu_acc0.5", 37, 96, 160, 80, CN_ACT_SILU, true, 0.5f);
    t_ffn(c, "m3_k64_h96_n64_relu_acc1_decoder", 3, 64, 96, 64, CN_ACT_RELU, true, 1.0f);
    t_ffn(c, "m9_k40_h72_n24_silu", 9, 40, 72, 24, CN_ACT_SILU, false, 0.0f);
    /* a hidden width that is not a multiple of 8: the bias/activation pass one value at a time */
    t_ffn(c, "m5_k40_h70_n24_silu", 5, 40, 70, 24, CN_ACT_SILU, false, 0.0f);
    t_transpose(c, 3, 40, 77, 77);
    t_transpose(c, 2, 128, 101, 130); /* an encoder input: 128 mels, padded frames */
    t_transpose(c, 1, 5, 3, 70);
    t_layer_norm(c, 50, 1024, false);
    t_layer_norm(c, 9, 80, true);
    t_layer_norm(c, 6, 200, false); /* the warp kernel's partial last float4 group */
    t_layer_norm(c, 5, 83, false);  /* d not a multiple of 4: the block kernel */
    t_layer_norm(c, 3, 1536, true); /* d > 1024: the block kernel */
    /* more rows than a grid's y dimension (65535): the element-wise kernels' row stride */
    t_linear(c, "m70001_k8_n12_silu_rows_beyond_grid_y", 70001, 8, 12, true, CN_ACT_SILU, false, 0, 0, 0);
    t_glu(c, 64);
    t_glu(c, 66);
    t_dwconv(c, 2, 19, 48, 9, true, CN_ACT_SILU);
    t_dwconv(c, 3, 3, 300, 9, true, CN_ACT_SILU);
    t_dwconv(c, 1, 33, 257, 9, false, CN_ACT_NONE);
    /* k = 9 over enough frames and sequences runs as tiles of 16 frames (>= 1024 blocks): a partial
     * last tile, channels over two blocks */
    t_dwconv(c, 64, 130, 260, 9, true, CN_ACT_SILU);
    t_dwconv(c, 1, 40, 24, 31, false, CN_ACT_NONE);
    int v2[2] = {21, 9};
    t_conv2d(c, 2, 21, 16, 1, 8, v2, CN_ACT_RELU);
    t_conv2d(c, 2, 11, 8, 8, 8, NULL, CN_ACT_NONE);
    int v5[2] = {11, 4};
    t_conv2d(c, 2, 11, 9, 8, 8, v5, CN_ACT_NONE);
    t_conv2d_pair(c, 2, 41, 16, 8, NULL, NULL);
    int p0[3] = {41, 17, 3}, p1[3] = {21, 9, 2}; /* as the model's: valid1 = ceil(valid0 / 2) */
    t_conv2d_pair(c, 3, 41, 15, 40, p0, p1);       /* odd frequencies; more channels than a warp */
    int q0[2] = {9, 30}, q1[2] = {3, 15};          /* a mask tighter than ceil(valid0 / 2) */
    t_conv2d_pair(c, 2, 30, 128, 256, q0, q1);     /* the real first layer's width */
    t_mask_time(c);
    int rv[3] = {13, 7, 1};
    t_rel_attention(c, 3, 13, 4, 16, rv);
    t_rel_attention(c, 2, 9, 2, 8, NULL);
    int rv3[5] = {11, 4, 11, 9, 1}; /* more sequences than heads: the GEMMs batch over sequences */
    t_rel_attention(c, 5, 11, 2, 8, rv3);
    if (!quick) {
        int rv2[2] = {126, 100};
        t_rel_attention(c, 2, 126, 8, 128, rv2);
    }
    int blk[4] = {0, 0, 1, 1}, kvv[2] = {20, 12};
    t_attention(c, "self_cached_causal_blocks", 4, 3, 20, 4, 16, blk, kvv, 2, 17);
    int cv[2] = {126, 50};
    t_attention(c, "cross_kv_valid", 2, 2, 126, 8, 128, NULL, cv, 2, -1);
    int zero_valid[1] = {0};
    t_attention(c, "cross_valid0_means_unmasked", 1, 1, 30, 2, 8, NULL, zero_valid, 1, -1);
    /* head sizes that leave threads out of the weighted sum's groups (96: 2 groups of 96 of 256
     * threads) or need one group (256), with key counts not a multiple of the 4 scored at a time */
    int cv3[2] = {45, 7};
    t_attention(c, "head_dim_96_groups", 2, 1, 45, 3, 96, NULL, cv3, 2, -1);
    t_attention(c, "head_dim_256_one_group", 1, 2, 37, 2, 256, NULL, NULL, 1, -1);
    if (!quick)
        t_attention(c, "long_keys_global_scores", 1, 1, 12000, 2, 64, NULL, NULL, 1, -1);
    t_embed(c);
    t_log_softmax(c, 5, 5248);
    t_topk(c, false);
    t_topk(c, true);
}

/* ---------------------------------------------------------------------------------------------- */
/* Benchmark: canary-1b-flash shapes (d 1024, 8 heads, ff 4096, conv kernel 9, 32 encoder and 4
 * decoder layers, vocab 5248, 10-s inputs = 1001 frames x 128 mels -> T = 126 after 8x subsampling). */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bsync(ctx *c) { check_sync(c, "bench"); }

/* canary-1b-flash; --bench-tiny swaps in a toy size that exercises the same code in seconds (for the
 * CPU emulation of the plugin). T follows from FR (three stride-2 halvings). */
static int ENC_LAYERS = 32, DEC_LAYERS = 4, D = 1024, FF = 4096, H = 8, T = 126, FR = 1001, MEL = 128, SUBC = 256,
           VOCAB = 5248, KCONV = 9, GEMM_BATCH = 128;
static const char *BENCH_NAME = "canary-1b-flash";
static int ENC_REPS = 3, DEC_REPS = 2; /* best of */
static int NEW = 40; /* generated tokens */
enum { PROMPT = 9, MAX_DEC_LAYERS = 16 };

static void bench_tiny(void) {
    ENC_LAYERS = 2, DEC_LAYERS = 1, D = 64, FF = 256, H = 4, FR = 65, MEL = 16, SUBC = 8, VOCAB = 100, KCONV = 9;
    GEMM_BATCH = 2;
    BENCH_NAME = "tiny";
    ENC_REPS = DEC_REPS = 1;
    NEW = 4;
    T = ((FR + 1) / 2 + 1) / 2;
    T = (T + 1) / 2;
}

typedef struct enc_layer {
    cn_linear *ff1_in, *ff1_out, *qkv, *pos, *att_out, *pw1, *pw2, *ff2_in, *ff2_out;
    const float *ln[12], *dw_w, *dw_b, *bu, *bv;
} enc_layer;

typedef struct dec_layer {
    cn_linear *qkv, *sout, *cq, *ckv, *cout, *ff_in, *ff_out;
} dec_layer;

static cn_linear *mk(ctx *c, const float *w, const float *b, int n_out, int n_in) {
    cn_linear *l = NULL;
    cn_error e = {0};
    if (c->o->linear_create(c->be, w, b, n_out, n_in, c->prec, false, &l, &e) != CANARY_OK) {
        fprintf(stderr, "linear_create %dx%d: %s\n", n_out, n_in, e.msg);
        exit(1);
    }
    return l;
}

static void bench(ctx *c, const int *batches, int n_batches) {
    /* one random host array is the source of every layer's weights (values do not matter for speed) */
    float *w = rnd((size_t)FF * D, 0.02f), *bias = rnd(FF, 0.02f), *ones = rnd(FF, 0.1f);
    for (int i = 0; i < FF; i++)
        ones[i] += 1.0f;
    enc_layer *L = calloc(ENC_LAYERS, sizeof *L);
    for (int l = 0; l < ENC_LAYERS; l++) {
        L[l].ff1_in = mk(c, w, bias, FF, D), L[l].ff1_out = mk(c, w, bias, D, FF);
        L[l].ff2_in = mk(c, w, bias, FF, D), L[l].ff2_out = mk(c, w, bias, D, FF);
        L[l].qkv = mk(c, w, bias, 3 * D, D), L[l].pos = mk(c, w, NULL, D, D), L[l].att_out = mk(c, w, bias, D, D);
        L[l].pw1 = mk(c, w, bias, 2 * D, D), L[l].pw2 = mk(c, w, bias, D, D);
        for (int i = 0; i < 12; i++)
            L[l].ln[i] = konst(c, i % 2 ? bias : ones, D);
        L[l].dw_w = konst(c, w, (size_t)D * KCONV), L[l].dw_b = konst(c, bias, D);
        L[l].bu = konst(c, bias, D), L[l].bv = konst(c, bias + 7, D);
    }
    const float *sub_w = konst(c, w, SUBC * 9), *sub_b = konst(c, bias, SUBC);
    cn_linear *sub_pw1 = mk(c, w, bias, SUBC, SUBC), *sub_pw2 = mk(c, w, bias, SUBC, SUBC);
    cn_linear *sub_out = mk(c, w, bias, D, SUBC * (MEL / 8)); /* 256*16 = 4096 = FF: w has room (tiny: 16) */
    dec_layer *DL = calloc(DEC_LAYERS, sizeof *DL);
    for (int l = 0; l < DEC_LAYERS; l++) {
        DL[l].qkv = mk(c, w, bias, 3 * D, D), DL[l].sout = mk(c, w, bias, D, D), DL[l].cq = mk(c, w, bias, D, D);
        DL[l].ckv = mk(c, w, bias, 2 * D, D), DL[l].cout = mk(c, w, bias, D, D);
        DL[l].ff_in = mk(c, w, bias, FF, D), DL[l].ff_out = mk(c, w, bias, D, FF);
    }
    float *headw = rnd((size_t)VOCAB * D, 0.02f);
    cn_linear *head = mk(c, headw, NULL, VOCAB, D);
    const float *emb = konst(c, headw, (size_t)VOCAB * D), *pe = konst(c, w, (size_t)64 * D); /* positions < PROMPT + NEW */
    const float *dln = konst(c, ones, D), *dlb = konst(c, bias, D);
    bsync(c);

    for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        size_t rows = (size_t)B * T;
        int t1 = (FR + 1) / 2, f1 = MEL / 2, t2 = (t1 + 1) / 2, f2 = f1 / 2, f3 = f2 / 2;
        float *feat = dev(c, NULL, (size_t)B * FR * MEL);
        float *sa = dev(c, NULL, (size_t)B * t1 * f1 * SUBC), *sb = dev(c, NULL, (size_t)B * t1 * f1 * SUBC);
        float *x = dev(c, NULL, rows * D), *ln = dev(c, NULL, rows * D), *wide = dev(c, NULL, rows * FF),
              *att = dev(c, NULL, rows * D), *cv = dev(c, NULL, rows * D), *pe_in = dev(c, w, (size_t)(2 * T - 1) * D),
              *posb = dev(c, NULL, (size_t)(2 * T - 1) * D);
        float *feat_h = rnd((size_t)B * FR * MEL, 1.0f);
        c->o->upload(c->ex, feat, feat_h, sizeof(float) * (size_t)B * FR * MEL);
        free(feat_h);
        int *valid = malloc(sizeof(int) * (size_t)B);
        for (int s = 0; s < B; s++)
            valid[s] = T;
        double best_enc = 1e30, best_sub = 1e30;
        for (int rep = 0; rep < ENC_REPS; rep++) {
            bsync(c);
            double t0 = now();
            /* subsampling: conv(1->C) relu, dw conv, pw relu, dw conv, pw relu, linear to d */
            if (c->o->conv2d_s2_pair) { /* as the model runs it where the backend has it */
                c->o->conv2d_s2_pair(c->ex, feat, sb, B, FR, MEL, SUBC, sub_w, sub_b, sub_w, sub_b, NULL, NULL);
            } else {
                c->o->conv2d_s2(c->ex, feat, sa, B, FR, MEL, 1, SUBC, sub_w, sub_b, NULL, CN_ACT_RELU);
                c->o->conv2d_s2(c->ex, sa, sb, B, t1, f1, SUBC, SUBC, sub_w, sub_b, NULL, CN_ACT_NONE);
            }
            c->o->linear(c->ex, sub_pw1, sb, SUBC, B * t2 * f2, sa, SUBC, CN_ACT_RELU, false, 0);
            c->o->conv2d_s2(c->ex, sa, sb, B, t2, f2, SUBC, SUBC, sub_w, sub_b, NULL, CN_ACT_NONE);
            c->o->linear(c->ex, sub_pw2, sb, SUBC, B * T * f3, sa, SUBC, CN_ACT_RELU, false, 0);
            c->o->linear(c->ex, sub_out, sa, f3 * SUBC, (int)rows, x, D, CN_ACT_NONE, false, 0);
            bsync(c);
            double t_sub = now() - t0;
            for (int l = 0; l < ENC_LAYERS; l++) { /* the op sequence of src/model/model.c */
                enc_layer *E = &L[l];
                c->o->layer_norm(c->ex, x, ln, (int)rows, D, E->ln[0], E->ln[1], 1e-5f);
                c->o->linear(c->ex, E->ff1_in, ln, D, (int)rows, wide, FF, CN_ACT_SILU, false, 0);
                c->o->linear(c->ex, E->ff1_out, wide, FF, (int)rows, x, D, CN_ACT_NONE, true, 0.5f);
                c->o->layer_norm(c->ex, x, ln, (int)rows, D, E->ln[2], E->ln[3], 1e-5f);
                c->o->linear(c->ex, E->qkv, ln, D, (int)rows, wide, 3 * D, CN_ACT_NONE, false, 0);
                c->o->linear(c->ex, E->pos, pe_in, D, 2 * T - 1, posb, D, CN_ACT_NONE, false, 0);
                cn_relattn_args ra = {.n_seq = B, .t = T, .n_heads = H, .head_dim = D / H, .qkv = wide, .pos = posb,
                                      .bias_u = E->bu, .bias_v = E->bv, .valid = valid, .out = att};
                c->o->rel_attention(c->ex, &ra);
                c->o->linear(c->ex, E->att_out, att, D, (int)rows, x, D, CN_ACT_NONE, true, 1.0f);
                c->o->layer_norm(c->ex, x, ln, (int)rows, D, E->ln[4], E->ln[5], 1e-5f);
                c->o->linear(c->ex, E->pw1, ln, D, (int)rows, wide, 2 * D, CN_ACT_NONE, false, 0);
                c->o->glu_mask(c->ex, wide, att, B, T, D, valid);
                c->o->dwconv1d(c->ex, att, cv, B, T, D, E->dw_w, E->dw_b, KCONV, CN_ACT_SILU);
                c->o->linear(c->ex, E->pw2, cv, D, (int)rows, x, D, CN_ACT_NONE, true, 1.0f);
                c->o->layer_norm(c->ex, x, ln, (int)rows, D, E->ln[6], E->ln[7], 1e-5f);
                c->o->linear(c->ex, E->ff2_in, ln, D, (int)rows, wide, FF, CN_ACT_SILU, false, 0);
                c->o->linear(c->ex, E->ff2_out, wide, FF, (int)rows, x, D, CN_ACT_NONE, true, 0.5f);
                c->o->layer_norm(c->ex, x, x, (int)rows, D, E->ln[8], E->ln[9], 1e-5f);
            }
            bsync(c);
            double t_enc = now() - t0;
            if (t_enc < best_enc)
                best_enc = t_enc, best_sub = t_sub;
        }
        /* decoder: cross K/V once, a 9-token prompt step, then 40 one-token steps with a growing
         * self-attention cache; greedy top-1 per step (downloaded as the model does) */
        int cap = PROMPT + NEW;
        float *ckv[MAX_DEC_LAYERS], *kc[MAX_DEC_LAYERS], *vc[MAX_DEC_LAYERS];
        for (int l = 0; l < DEC_LAYERS; l++) {
            ckv[l] = dev(c, NULL, rows * 2 * D);
            kc[l] = dev(c, NULL, (size_t)B * cap * D);
            vc[l] = dev(c, NULL, (size_t)B * cap * D);
        }
        size_t drows_max = (size_t)B * PROMPT;
        float *dx = dev(c, NULL, drows_max * D), *dln_b = dev(c, NULL, drows_max * D),
              *dq = dev(c, NULL, drows_max * FF), *datt = dev(c, NULL, drows_max * D), *last = dev(c, NULL, (size_t)B * D),
              *logits = dev(c, NULL, (size_t)B * VOCAB);
        int *ids = malloc(sizeof(int) * drows_max), *pos = malloc(sizeof(int) * drows_max), *top = malloc(sizeof(int) * B);
        float *topv = malloc(sizeof(float) * B);
        int *encv = malloc(sizeof(int) * B);
        for (int s = 0; s < B; s++)
            encv[s] = T;
        double best_dec = 1e30;
        for (int rep = 0; rep < DEC_REPS; rep++) {
            bsync(c);
            double t0 = now();
            for (int l = 0; l < DEC_LAYERS; l++)
                c->o->linear(c->ex, DL[l].ckv, x, D, (int)rows, ckv[l], 2 * D, CN_ACT_NONE, false, 0);
            for (int step = 0; step <= NEW; step++) {
                int lq = step == 0 ? PROMPT : 1, past = step == 0 ? 0 : PROMPT + step - 1;
                int n = B * lq;
                for (int i = 0; i < n; i++)
                    ids[i] = (i * 31 + step) % VOCAB, pos[i] = past + i % lq;
                c->o->embed(c->ex, emb, pe, ids, pos, n, D, dx);
                c->o->layer_norm(c->ex, dx, dx, n, D, dln, dlb, 1e-5f);
                for (int l = 0; l < DEC_LAYERS; l++) {
                    c->o->layer_norm(c->ex, dx, dln_b, n, D, dln, dlb, 1e-5f);
                    c->o->linear(c->ex, DL[l].qkv, dln_b, D, n, dq, 3 * D, CN_ACT_NONE, false, 0);
                    if (lq == 1) { /* append this step's K/V row of every sequence: one 2-D copy each */
                        c->o->copy_2d(c->ex, kc[l] + (size_t)past * D, sizeof(float) * cap * D, dq + D,
                                      sizeof(float) * 3 * D, sizeof(float) * D, (size_t)B);
                        c->o->copy_2d(c->ex, vc[l] + (size_t)past * D, sizeof(float) * cap * D, dq + 2 * D,
                                      sizeof(float) * 3 * D, sizeof(float) * D, (size_t)B);
                    } else
                    for (int s = 0; s < B; s++) { /* the prompt: lq rows per sequence */
                        size_t src = (size_t)s * lq * 3 * D, dst = ((size_t)s * cap + past) * D;
                        c->o->copy_2d(c->ex, kc[l] + dst, sizeof(float) * D, dq + src + D, sizeof(float) * 3 * D,
                                      sizeof(float) * D, (size_t)lq);
                        c->o->copy_2d(c->ex, vc[l] + dst, sizeof(float) * D, dq + src + 2 * D, sizeof(float) * 3 * D,
                                      sizeof(float) * D, (size_t)lq);
                    }
                    cn_attn_args sa2 = {.n_seq = B, .n_heads = H, .head_dim = D / H, .lq = lq, .lk = past + lq,
                                        .q = dq, .ldq = 3 * D, .q_seq_stride = (size_t)lq * 3 * D, .k = kc[l],
                                        .v = vc[l], .ldk = D, .kv_seq_stride = (size_t)cap * D,
                                        .causal_offset = past, .scale = 1.0f / sqrtf(D / H), .out = datt, .ldo = D,
                                        .out_seq_stride = (size_t)lq * D};
                    c->o->attention(c->ex, &sa2);
                    c->o->linear(c->ex, DL[l].sout, datt, D, n, dx, D, CN_ACT_NONE, true, 1.0f);
                    c->o->layer_norm(c->ex, dx, dln_b, n, D, dln, dlb, 1e-5f);
                    c->o->linear(c->ex, DL[l].cq, dln_b, D, n, dq, D, CN_ACT_NONE, false, 0);
                    cn_attn_args ca = {.n_seq = B, .n_heads = H, .head_dim = D / H, .lq = lq, .lk = T, .q = dq,
                                       .ldq = D, .q_seq_stride = (size_t)lq * D, .k = ckv[l], .v = ckv[l] + D,
                                       .ldk = 2 * D, .kv_seq_stride = (size_t)T * 2 * D, .kv_valid = encv,
                                       .causal_offset = -1, .scale = 1.0f / sqrtf(D / H), .out = datt, .ldo = D,
                                       .out_seq_stride = (size_t)lq * D};
                    c->o->attention(c->ex, &ca);
                    c->o->linear(c->ex, DL[l].cout, datt, D, n, dx, D, CN_ACT_NONE, true, 1.0f);
                    c->o->layer_norm(c->ex, dx, dln_b, n, D, dln, dlb, 1e-5f);
                    c->o->linear(c->ex, DL[l].ff_in, dln_b, D, n, dq, FF, CN_ACT_RELU, false, 0);
                    c->o->linear(c->ex, DL[l].ff_out, dq, FF, n, dx, D, CN_ACT_NONE, true, 1.0f);
                }
                c->o->copy_2d(c->ex, last, sizeof(float) * D, dx + (size_t)(lq - 1) * D, sizeof(float) * lq * D,
                              sizeof(float) * D, (size_t)B);
                c->o->layer_norm(c->ex, last, last, B, D, dln, dlb, 1e-5f);
                c->o->linear(c->ex, head, last, D, B, logits, VOCAB, CN_ACT_NONE, false, 0);
                c->o->log_softmax(c->ex, logits, B, VOCAB);
                c->o->topk(c->ex, logits, B, VOCAB, 1, topv, top);
            }
            bsync(c);
            double t_dec = now() - t0;
            if (t_dec < best_dec)
                best_dec = t_dec;
        }
        double total = best_enc + best_dec;
        int bad = 0; /* the last step's top-1 log-probabilities: finite and <= 0 */
        for (int s = 0; s < B; s++)
            bad += !(isfinite(topv[s]) && topv[s] <= 0.0f) || top[s] < 0 || top[s] >= VOCAB;
        if (bad) {
            printf("{\"bench\":\"%s\",\"prec\":\"%s\",\"batch\":%d,\"ok\":false,\"error\":\"%d rows with a "
                   "non-finite or out-of-range top-1\"}\n", BENCH_NAME, c->pname, B, bad);
            g_failures++;
        }
        printf("{\"bench\":\"%s\",\"prec\":\"%s\",\"batch\":%d,\"audio_s\":%.0f,\"subsampling_ms\":%.2f,"
               "\"encoder_ms\":%.2f,\"encoder_rtfx\":%.1f,\"decoder_ms\":%.2f,\"total_ms\":%.2f,\"total_rtfx\":%.1f,"
               "\"note\":\"ops-level pipeline: encoder %d layers + decoder prompt %d + %d greedy steps; no feature "
               "extraction\"}\n",
               BENCH_NAME, c->pname, B, 10.0 * B, best_sub * 1e3, best_enc * 1e3, 10.0 * B / best_enc, best_dec * 1e3,
               total * 1e3, 10.0 * B / total, ENC_LAYERS, PROMPT, NEW);
        fflush(stdout);
        for (int l = 0; l < DEC_LAYERS; l++)
            c->o->free(c->ex, ckv[l]), c->o->free(c->ex, kc[l]), c->o->free(c->ex, vc[l]);
        float *bufs[] = {feat, sa, sb, x, ln, wide, att, cv, pe_in, posb, dx, dln_b, dq, datt, last, logits};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
            c->o->free(c->ex, bufs[i]);
        free(valid), free(ids), free(pos), free(top), free(topv), free(encv);
    }
    /* GEMM microbenchmark: the encoder's layer shapes at batch 128 (rows = 128 * 126) */
    int gm[][2] = {{FF, D}, {D, FF}, {3 * D, D}, {2 * D, D}, {D, D}};
    size_t rows = (size_t)GEMM_BATCH * T;
    float *gx = dev(c, NULL, rows * FF), *gy = dev(c, NULL, rows * FF);
    for (size_t i = 0; i < sizeof gm / sizeof *gm; i++) {
        cn_linear *l = mk(c, w, bias, gm[i][0], gm[i][1]);
        c->o->linear(c->ex, l, gx, gm[i][1], (int)rows, gy, gm[i][0], CN_ACT_NONE, false, 0);
        bsync(c);
        int it = 20;
        double t0 = now();
        for (int r = 0; r < it; r++)
            c->o->linear(c->ex, l, gx, gm[i][1], (int)rows, gy, gm[i][0], CN_ACT_NONE, false, 0);
        bsync(c);
        double dt = (now() - t0) / it;
        printf("{\"bench\":\"gemm\",\"prec\":\"%s\",\"m\":%zu,\"n\":%d,\"k\":%d,\"ms\":%.3f,\"tflops\":%.1f}\n", c->pname,
               rows, gm[i][0], gm[i][1], dt * 1e3, 2.0 * rows * gm[i][0] * gm[i][1] / dt / 1e12);
        c->o->linear_destroy(c->be, l);
    }
    c->o->free(c->ex, gx);
    c->o->free(c->ex, gy);
    for (int l = 0; l < ENC_LAYERS; l++) {
        cn_linear *ls[] = {L[l].ff1_in, L[l].ff1_out, L[l].ff2_in, L[l].ff2_out, L[l].qkv,
                           L[l].pos,    L[l].att_out, L[l].pw1,    L[l].pw2};
        for (size_t i = 0; i < sizeof ls / sizeof *ls; i++)
            c->o->linear_destroy(c->be, ls[i]);
    }
    for (int l = 0; l < DEC_LAYERS; l++) {
        cn_linear *ls[] = {DL[l].qkv, DL[l].sout, DL[l].cq, DL[l].ckv, DL[l].cout, DL[l].ff_in, DL[l].ff_out};
        for (size_t i = 0; i < sizeof ls / sizeof *ls; i++)
            c->o->linear_destroy(c->be, ls[i]);
    }
    c->o->linear_destroy(c->be, sub_pw1);
    c->o->linear_destroy(c->be, sub_pw2);
    c->o->linear_destroy(c->be, sub_out);
    c->o->linear_destroy(c->be, head);
    free(L), free(DL), free(w), free(bias), free(ones), free(headw);
}

static void run_precision(ctx *c, bool bench_pass, bool quick, const char *batches_s, lt_fallbacks_fn lt_fb) {
    cn_error e = {0};
    if (c->o->exec_create(c->be, 1, &c->ex, &e) != CANARY_OK) {
        printf("{\"prec\":\"%s\",\"ok\":false,\"error\":\"exec: %s\"}\n", c->pname, e.msg);
        g_failures++;
        return;
    }
    if (!bench_pass) {
        for (int r = 0; r < g_repeat; r++)
            run_checks(c, quick);
    } else {
        int batches[8], nb = 0;
        for (const char *p = batches_s; *p && nb < 8;) {
            batches[nb++] = atoi(p);
            p = strchr(p, ',');
            if (!p)
                break;
            p++;
        }
        bench(c, batches, nb);
    }
    if (lt_fb)
        printf("{\"prec\":\"%s\",\"lt_fallbacks\":%ld}\n", c->pname, lt_fb(c->ex));
    c->o->exec_destroy(c->ex);
}

static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s PLUGIN.so [--bench] [--quick] [--prec f32,tf32,bf16,f16] [--batches 1,64,128] [--repeat N]\n",
                argv[0]);
        return 2;
    }
    bool do_bench = false, quick = false;
    const char *precs = "f32,tf32,bf16,f16", *bench_precs = "bf16,f16,tf32", *batches_s = "1,64,128";
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--bench"))
            do_bench = true;
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--bench-tiny"))
            do_bench = true, bench_tiny();
        else if (!strcmp(argv[i], "--prec") && i + 1 < argc)
            precs = argv[++i];
        else if (!strcmp(argv[i], "--bench-prec") && i + 1 < argc)
            bench_precs = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            batches_s = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            g_repeat = atoi(argv[++i]);
            if (g_repeat < 1)
                g_repeat = 1;
        }
    }
#ifdef CN_CHECK_CPU
    if (!strcmp(argv[1], "--cpu")) {
        static const struct {
            const char *name;
            cn_precision p;
        } cpu_precs[] = {{"f32", CN_PREC_F32}, {"tf32", CN_PREC_TF32}, {"bf16", CN_PREC_BF16}};
        for (size_t pi = 0; pi < 3; pi++) {
            ctx c = {.prec = cpu_precs[pi].p, .pname = cpu_precs[pi].name};
            cn_error e = {0};
            if (cn_cpu_backend_create(&c.be, &e) != CANARY_OK) {
                printf("{\"status\":\"fail\",\"reason\":\"%s\"}\n", e.msg);
                return 1;
            }
            c.o = c.be->ops;
            run_precision(&c, false, quick, batches_s, NULL);
            c.o->destroy(c.be);
        }
        printf("{\"status\":\"%s\",\"cases\":%d,\"failures\":%d}\n", g_failures ? "fail" : "pass", g_cases,
               g_failures);
        return g_failures ? 1 : 0;
    }
#endif
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("{\"status\":\"skip\",\"reason\":\"CUDA plugin not loadable: %s\"}\n", dlerror());
        return SKIP;
    }
    cn_cuda_abi_version_fn abi = (cn_cuda_abi_version_fn)dlsym(h, "cn_cuda_abi_version");
    cn_cuda_enumerate_fn enumerate = (cn_cuda_enumerate_fn)dlsym(h, "cn_cuda_enumerate");
    cn_cuda_versions_fn versions = (cn_cuda_versions_fn)dlsym(h, "cn_cuda_versions");
    cn_cuda_backend_create_fn create = (cn_cuda_backend_create_fn)dlsym(h, "cn_cuda_backend_create");
    lt_fallbacks_fn lt_fb = (lt_fallbacks_fn)dlsym(h, "cn_cuda_exec_lt_fallbacks");
    if (!abi || abi() != CN_CUDA_PLUGIN_ABI || !enumerate || !create || !versions) {
        printf("{\"status\":\"fail\",\"reason\":\"%s: plugin ABI %d (need %d) or missing symbols\"}\n", argv[1],
               abi ? abi() : -1, CN_CUDA_PLUGIN_ABI);
        return 1;
    }
    cn_cuda_device_info dev_info[16];
    char msg[512] = "";
    int nd = enumerate(dev_info, 16, msg, sizeof msg);
    int rt = 0, drv = 0;
    versions(&rt, &drv);
    if (nd <= 0) {
        printf("{\"status\":\"skip\",\"reason\":\"no CUDA device: %s\",\"cuda_runtime\":%d,\"driver\":%d}\n",
               nd < 0 ? msg : "the driver reports 0 devices", rt, drv);
        return SKIP;
    }
    printf("{\"device\":\"%s\",\"cc\":\"%d.%d\",\"mem_MiB\":%zu,\"cuda_runtime\":%d,\"driver\":%d,\"lt\":%s}\n",
           dev_info[0].name, dev_info[0].cc_major, dev_info[0].cc_minor, dev_info[0].total_mem >> 20, rt, drv,
           getenv("CANARY_CUDA_NO_LT") ? "false" : "true");
    static const struct {
        const char *name;
        cn_precision p;
    } all[] = {{"f32", CN_PREC_F32}, {"tf32", CN_PREC_TF32}, {"bf16", CN_PREC_BF16}, {"f16", CN_PREC_F16}};
    for (int pass = 0; pass < 2; pass++) {
        const char *list = pass == 0 ? precs : bench_precs;
        if (pass == 1 && !do_bench)
            break;
        for (size_t pi = 0; pi < 4; pi++) {
            if (!in_list(list, all[pi].name))
                continue;
            if (all[pi].p == CN_PREC_BF16 && dev_info[0].cc_major < 8) {
                printf("{\"prec\":\"bf16\",\"status\":\"skip\",\"reason\":\"compute capability < 8.0\"}\n");
                continue;
            }
            ctx c = {.prec = all[pi].p, .pname = all[pi].name};
            cn_error e = {0};
            if (create(0, all[pi].p, &c.be, &e) != CANARY_OK) {
                printf("{\"prec\":\"%s\",\"ok\":false,\"error\":\"backend: %s\"}\n", c.pname, e.msg);
                g_failures++;
                continue;
            }
            c.o = c.be->ops;
            run_precision(&c, pass == 1, quick, batches_s, lt_fb);
            c.o->destroy(c.be);
        }
    }
    printf("{\"status\":\"%s\",\"cases\":%d,\"failures\":%d}\n", g_failures ? "fail" : "pass", g_cases, g_failures);
    return g_failures ? 1 : 0;
}

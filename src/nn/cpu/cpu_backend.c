/* The CPU backend: every operation of nn/backend.h, multi-threaded over the exec's cn_pool.
 * Large loops are split into tasks; GEMMs go to gemm.c one block per task. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cpu/cpu_internal.h"

typedef struct cpu_backend {
    cn_backend base;
} cpu_backend;

/* ------------------------------------------------------------------------------------------- */
/* Memory                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void *cpu_alloc(cn_exec *ex, size_t bytes) {
    (void)ex;
    if (bytes == 0)
        bytes = 1;
    /* 64-byte alignment for vector loads; zeroed so padded tails are well defined. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

static void cpu_free(cn_exec *ex, void *p) {
    (void)ex;
    free(p);
}

static void cpu_copy(cn_exec *ex, void *dst, const void *src, size_t bytes) {
    (void)ex;
    if (bytes)
        memmove(dst, src, bytes);
}

bool cn_cpu_scratch_reserve(cn_exec *ex, size_t floats) {
    for (int t = 0; t < ex->n_threads; t++) {
        if (ex->scratch_floats[t] >= floats)
            continue;
        float *p = cpu_alloc(ex, floats * sizeof(float));
        if (!p)
            return false;
        free(ex->scratch[t]);
        ex->scratch[t] = p;
        ex->scratch_floats[t] = floats;
    }
    return true;
}

static cn_status cpu_exec_create(cn_backend *be, int n_threads, cn_exec **out, cn_error *err) {
    if (n_threads <= 0)
        n_threads = cn_physical_cores();
    cn_exec *ex = calloc(1, sizeof *ex);
    if (!ex)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory creating a CPU context");
    ex->base.be = be;
    ex->n_threads = n_threads;
    ex->scratch = calloc((size_t)n_threads, sizeof(float *));
    ex->scratch_floats = calloc((size_t)n_threads, sizeof(size_t));
    if (!ex->scratch || !ex->scratch_floats) {
        free(ex->scratch);
        free(ex->scratch_floats);
        free(ex);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory creating a CPU context");
    }
    cn_status st = cn_pool_create(n_threads, &ex->pool, err);
    if (st != CANARY_OK) {
        free(ex->scratch);
        free(ex->scratch_floats);
        free(ex);
        return st;
    }
    cn_cpu_gemm_init();
    *out = ex;
    return CANARY_OK;
}

static void cpu_exec_destroy(cn_exec *ex) {
    if (!ex)
        return;
    cn_pool_destroy(ex->pool);
    for (int t = 0; t < ex->n_threads; t++)
        free(ex->scratch[t]);
    free(ex->scratch);
    free(ex->scratch_floats);
    free(ex);
}

/* ------------------------------------------------------------------------------------------- */
/* Linear layers                                                                               */
/* ------------------------------------------------------------------------------------------- */

static cn_status cpu_linear_create(cn_backend *be, const float *w, const float *b, int n_out, int n_in,
                                   cn_precision prec, bool persistent, cn_linear **out, cn_error *err) {
    (void)be;
    if (prec == CN_PREC_F16)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "precision f16 needs the CUDA backend; the CPU backend supports f32 and bf16");
    cn_linear *l = calloc(1, sizeof *l);
    if (!l)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory for a %dx%d layer", n_out, n_in);
    l->n_out = n_out;
    l->n_in = n_in;
    l->prec = prec;
    size_t nw = (size_t)n_out * (size_t)n_in;
    if (prec == CN_PREC_BF16) {
        l->k_pad = (n_in + 31) / 32 * 32;
        l->w_bf16 = cpu_alloc(NULL, cn_cpu_bf16_packed_elems(n_out, l->k_pad) * sizeof(uint16_t));
        if (l->w_bf16)
            cn_cpu_bf16_pack(w, n_out, n_in, l->k_pad, l->w_bf16);
    } else if (persistent) {
        l->w = w; /* read in place: a mapped checkpoint stays shared, clean page cache */
    } else {
        l->owned_w = cpu_alloc(NULL, nw * sizeof(float));
        if (l->owned_w)
            memcpy(l->owned_w, w, nw * sizeof(float));
        l->w = l->owned_w;
    }
    if (b) {
        l->b = cpu_alloc(NULL, (size_t)n_out * sizeof(float));
        if (l->b)
            memcpy(l->b, b, (size_t)n_out * sizeof(float));
    }
    if ((prec == CN_PREC_BF16 ? !l->w_bf16 : !l->w) || (b && !l->b)) {
        free(l->owned_w);
        free(l->w_bf16);
        free(l->b);
        free(l);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory for a %dx%d layer", n_out, n_in);
    }
    *out = l;
    return CANARY_OK;
}

static void cpu_linear_destroy(cn_backend *be, cn_linear *l) {
    (void)be;
    if (!l)
        return;
    free(l->owned_w);
    free(l->w_bf16);
    free(l->b);
    free(l);
}

static inline float act_apply(cn_act act, float v) {
    switch (act) {
    case CN_ACT_RELU:
        return v > 0 ? v : 0;
    case CN_ACT_SILU:
        return v / (1.0f + expf(-v));
    default:
        return v;
    }
}

static inline void act_row(cn_act act, float *y, int n) {
    if (act == CN_ACT_SILU)
        cn_cpu_vsilu(y, n);
    else if (act == CN_ACT_RELU)
        for (int c = 0; c < n; c++)
            y[c] = y[c] > 0 ? y[c] : 0;
}

typedef struct {
    const cn_linear *l;
    const float *x;
    int ldx, m;
    float *y;
    int ldy;
    cn_act act;
    bool accumulate;
    float alpha;
    int mb, nb, n_mblocks;
    const uint16_t *xb; /* bf16 activations [m, k_pad] */
} linear_job;

CN_CPU_CLONES static void linear_task(void *ctx, size_t task, int thread) {
    (void)thread;
    const linear_job *j = ctx;
    const cn_linear *l = j->l;
    int i0 = (int)(task % (size_t)j->n_mblocks) * j->mb;
    int n0 = (int)(task / (size_t)j->n_mblocks) * j->nb;
    int mi = j->m - i0 < j->mb ? j->m - i0 : j->mb;
    int ni = l->n_out - n0 < j->nb ? l->n_out - n0 : j->nb;
    if (mi <= 0 || ni <= 0)
        return;
    float *y = j->y + (size_t)i0 * j->ldy + n0;
    if (l->prec == CN_PREC_BF16)
        /* n0 is a multiple of 64 (the split below), i.e. a packed group boundary */
        cn_cpu_gemm_bf16(mi, ni, l->k_pad, j->xb + (size_t)i0 * l->k_pad, l->w_bf16 + (size_t)n0 * l->k_pad, y,
                         j->ldy, j->alpha, j->accumulate);
    else
        cn_cpu_sgemm_nt(mi, ni, l->n_in, j->accumulate ? j->alpha : 1.0f, j->x + (size_t)i0 * j->ldx, j->ldx,
                        l->w + (size_t)n0 * l->n_in, l->n_in, j->accumulate ? 1.0f : 0.0f, y, j->ldy);
    /* Epilogue on the block just written, while it is in cache. */
    for (int i = 0; i < mi; i++) {
        float *yr = y + (size_t)i * j->ldy;
        if (j->accumulate) {
            if (l->b)
                for (int c = 0; c < ni; c++)
                    yr[c] += j->alpha * l->b[n0 + c];
        } else {
            if (l->b)
                for (int c = 0; c < ni; c++)
                    yr[c] += l->b[n0 + c];
            act_row(j->act, yr, ni);
        }
    }
}

typedef struct {
    const float *x;
    int ldx, k, k_pad;
    uint16_t *xb;
} tobf16_job;

static void tobf16_task(void *ctx, size_t row, int thread) {
    (void)thread;
    const tobf16_job *j = ctx;
    cn_cpu_to_bf16(j->x + row * (size_t)j->ldx, j->k, j->k_pad, j->xb + row * (size_t)j->k_pad);
}

static void cpu_linear(cn_exec *ex, const cn_linear *l, const float *x, int ldx, int m, float *y, int ldy,
                       cn_act act, bool accumulate, float alpha) {
    if (m <= 0)
        return;
    linear_job j = {.l = l, .x = x, .ldx = ldx, .m = m, .y = y, .ldy = ldy, .act = act,
                    .accumulate = accumulate, .alpha = alpha};
    if (l->prec == CN_PREC_BF16) {
        /* The bf16 copy of x lives in thread 0's scratch tail: reserve once per shape. */
        size_t need = ((size_t)m * (size_t)l->k_pad + 1) / 2 + 16;
        if (!cn_cpu_scratch_reserve(ex, need))
            return; /* out of memory: the caller's planned buffers make this unreachable */
        tobf16_job tj = {x, ldx, l->n_in, l->k_pad, (uint16_t *)(void *)ex->scratch[0]};
        cn_pool_run(ex->pool, (size_t)m, tobf16_task, &tj);
        j.xb = tj.xb;
    }
    /* Split the larger dimension so every thread gets about two blocks. */
    int target = ex->n_threads * 2;
    if (ex->n_threads == 1) {
        j.mb = m;
        j.nb = l->n_out;
    } else if (l->n_out >= m || m < 64) {
        j.mb = m;
        j.nb = ((l->n_out + target - 1) / target + 63) / 64 * 64; /* whole packed bf16 groups */
    } else {
        j.nb = l->n_out;
        j.mb = ((m + target - 1) / target + 7) / 8 * 8;
    }
    j.n_mblocks = (m + j.mb - 1) / j.mb;
    int n_nblocks = (l->n_out + j.nb - 1) / j.nb;
    cn_pool_run(ex->pool, (size_t)j.n_mblocks * (size_t)n_nblocks, linear_task, &j);
}

/* ------------------------------------------------------------------------------------------- */
/* Normalisation and element-wise                                                              */
/* ------------------------------------------------------------------------------------------- */

typedef struct {
    const float *x;
    float *y;
    int d;
    const float *g, *b;
    float eps;
} ln_job;

CN_CPU_CLONES static void ln_task(void *ctx, size_t r, int thread) {
    (void)thread;
    const ln_job *j = ctx;
    const float *x = j->x + r * (size_t)j->d;
    float *y = j->y + r * (size_t)j->d;
    float mean = 0;
    for (int i = 0; i < j->d; i++)
        mean += x[i];
    mean /= (float)j->d;
    float var = 0;
    for (int i = 0; i < j->d; i++) {
        float c = x[i] - mean;
        var += c * c;
    }
    var /= (float)j->d;
    float inv = 1.0f / sqrtf(var + j->eps);
    for (int i = 0; i < j->d; i++)
        y[i] = (x[i] - mean) * inv * j->g[i] + j->b[i];
}

static void cpu_layer_norm(cn_exec *ex, const float *x, float *y, int rows, int d, const float *gamma,
                           const float *beta, float eps) {
    ln_job j = {x, y, d, gamma, beta, eps};
    cn_pool_run(ex->pool, (size_t)rows, ln_task, &j);
}

typedef struct {
    const float *x;
    float *y;
    int t, d;
    const int *valid;
} glu_job;

CN_CPU_CLONES static void glu_task(void *ctx, size_t r, int thread) {
    (void)thread;
    const glu_job *j = ctx;
    int s = (int)(r / (size_t)j->t), t = (int)(r % (size_t)j->t);
    float *y = j->y + r * (size_t)j->d;
    if (j->valid && t >= j->valid[s]) {
        memset(y, 0, sizeof(float) * (size_t)j->d);
        return;
    }
    const float *x = j->x + r * (size_t)j->d * 2;
    cn_cpu_vglu(x, x + j->d, y, j->d);
}

static void cpu_glu_mask(cn_exec *ex, const float *x, float *y, int n_seq, int t, int d, const int *valid) {
    glu_job j = {x, y, t, d, valid};
    cn_pool_run(ex->pool, (size_t)n_seq * (size_t)t, glu_task, &j);
}

typedef struct {
    const float *x;
    float *y;
    int t, d, k;
    const float *w, *b;
    cn_act act;
} dw1_job;

CN_CPU_CLONES static void dw1_task(void *ctx, size_t r, int thread) {
    (void)thread;
    const dw1_job *j = ctx;
    int s = (int)(r / (size_t)j->t), t = (int)(r % (size_t)j->t);
    int half = (j->k - 1) / 2;
    const float *xs = j->x + (size_t)s * j->t * j->d;
    float *y = j->y + r * (size_t)j->d;
    for (int c = 0; c < j->d; c++)
        y[c] = j->b ? j->b[c] : 0.0f;
    for (int q = 0; q < j->k; q++) {
        int tt = t + q - half;
        if (tt < 0 || tt >= j->t)
            continue;
        const float *xr = xs + (size_t)tt * j->d;
        for (int c = 0; c < j->d; c++)
            y[c] += j->w[(size_t)c * j->k + q] * xr[c];
    }
    act_row(j->act, y, j->d);
}

static void cpu_dwconv1d(cn_exec *ex, const float *x, float *y, int n_seq, int t, int d, const float *w,
                         const float *b, int k, cn_act act) {
    dw1_job j = {x, y, t, d, k, w, b, act};
    cn_pool_run(ex->pool, (size_t)n_seq * (size_t)t, dw1_task, &j);
}

typedef struct {
    const float *x;
    float *y;
    int t, f, c_in, c, t_out, f_out;
    const float *w, *b;
    const int *valid;
    cn_act act;
    const float *wt; /* w transposed to [9 taps][c] */
} c2_job;

CN_CPU_CLONES static void c2_task(void *ctx, size_t r, int thread) {
    (void)thread;
    const c2_job *j = ctx;
    int s = (int)(r / (size_t)j->t_out), to = (int)(r % (size_t)j->t_out);
    int t_lim = j->valid ? (j->valid[s] < j->t ? j->valid[s] : j->t) : j->t;
    const float *xs = j->x + (size_t)s * j->t * j->f * j->c_in;
    float *yrow = j->y + r * (size_t)j->f_out * j->c;
    for (int fo = 0; fo < j->f_out; fo++) {
        float *y = yrow + (size_t)fo * j->c;
        for (int ch = 0; ch < j->c; ch++)
            y[ch] = j->b[ch];
        for (int dt = 0; dt < 3; dt++) {
            int ti = 2 * to - 1 + dt;
            if (ti < 0 || ti >= t_lim)
                continue;
            for (int df = 0; df < 3; df++) {
                int fi = 2 * fo - 1 + df;
                if (fi < 0 || fi >= j->f)
                    continue;
                int tap = dt * 3 + df;
                const float *wt = j->wt + (size_t)tap * j->c; /* contiguous over channels */
                if (j->c_in == 1) {
                    float xv = xs[(size_t)ti * j->f + fi];
                    for (int ch = 0; ch < j->c; ch++)
                        y[ch] += wt[ch] * xv;
                } else {
                    const float *xv = xs + ((size_t)ti * j->f + fi) * j->c;
                    for (int ch = 0; ch < j->c; ch++)
                        y[ch] += wt[ch] * xv[ch];
                }
            }
        }
        for (int ch = 0; ch < j->c; ch++)
            y[ch] = act_apply(j->act, y[ch]);
    }
}

static void cpu_conv2d_s2(cn_exec *ex, const float *x, float *y, int n_seq, int t, int f, int c_in, int c,
                          const float *w, const float *b, const int *valid_in, cn_act act) {
    /* Tap-major weights let the channel loop vectorise; 9·c floats per call, reused per shape. */
    if (!cn_cpu_scratch_reserve(ex, (size_t)9 * (size_t)c + 16))
        return;
    float *wt = ex->scratch[0];
    for (int ch = 0; ch < c; ch++)
        for (int tap = 0; tap < 9; tap++)
            wt[(size_t)tap * c + ch] = w[(size_t)ch * 9 + tap];
    c2_job j = {x, y, t, f, c_in, c, (t + 1) / 2, (f + 1) / 2, w, b, valid_in, act, wt};
    cn_pool_run(ex->pool, (size_t)n_seq * (size_t)j.t_out, c2_task, &j);
}

/* The first two subsampling convs in one pass (conv2d_s2_pair): a task per (sequence, output
 * row) computes the three first-conv rows it reads into its thread's scratch ([3][f1][c], 196 KB
 * for 128 mels and 256 channels: in cache), then the depthwise row from them; the first conv's
 * whole output (131 MB per 40-s item) is never in memory. Same taps, same order as two
 * conv2d_s2 calls. */
typedef struct {
    const float *x;
    float *y;
    int t, f, c, t1, f1, t2, f2;
    const float *b1, *b2, *wt1, *wt2; /* wt: [9 taps][c] */
    const int *v0, *v1;
    cn_exec *ex;
    size_t rows_at; /* a thread's rows start here in its scratch */
} c2p_job;

CN_CPU_CLONES static void c2p_task(void *ctx, size_t r, int thread) {
    const c2p_job *j = ctx;
    int s = (int)(r / (size_t)j->t2), to = (int)(r % (size_t)j->t2), c = j->c, f1 = j->f1;
    int t0_lim = j->v0 ? (j->v0[s] < j->t ? j->v0[s] : j->t) : j->t;
    int t1_lim = j->v1 ? (j->v1[s] < j->t1 ? j->v1[s] : j->t1) : j->t1;
    const float *xs = j->x + (size_t)s * j->t * j->f;
    float *rows = j->ex->scratch[thread] + j->rows_at;
    bool have[3];
    for (int dr = 0; dr < 3; dr++) {
        int r1 = 2 * to - 1 + dr;
        have[dr] = r1 >= 0 && r1 < t1_lim; /* else padding, or masked: zeros */
        if (!have[dr])
            continue;
        for (int q = 0; q < f1; q++) {
            float *h = rows + ((size_t)dr * f1 + q) * c;
            for (int ch = 0; ch < c; ch++)
                h[ch] = j->b1[ch];
            for (int dt = 0; dt < 3; dt++) {
                int ti = 2 * r1 - 1 + dt;
                if (ti < 0 || ti >= t0_lim)
                    continue;
                for (int df = 0; df < 3; df++) {
                    int fi = 2 * q - 1 + df;
                    if (fi < 0 || fi >= j->f)
                        continue;
                    float xv = xs[(size_t)ti * j->f + fi];
                    const float *wt = j->wt1 + (size_t)(dt * 3 + df) * c;
                    for (int ch = 0; ch < c; ch++)
                        h[ch] += wt[ch] * xv;
                }
            }
            for (int ch = 0; ch < c; ch++)
                h[ch] = h[ch] > 0.0f ? h[ch] : 0.0f;
        }
    }
    float *yrow = j->y + r * (size_t)j->f2 * c;
    for (int fo = 0; fo < j->f2; fo++) {
        float *y = yrow + (size_t)fo * c;
        for (int ch = 0; ch < c; ch++)
            y[ch] = j->b2[ch];
        for (int dr = 0; dr < 3; dr++) {
            if (!have[dr])
                continue;
            for (int dc = 0; dc < 3; dc++) {
                int q = 2 * fo - 1 + dc;
                if (q < 0 || q >= f1)
                    continue;
                const float *h = rows + ((size_t)dr * f1 + q) * c, *wt = j->wt2 + (size_t)(dr * 3 + dc) * c;
                for (int ch = 0; ch < c; ch++)
                    y[ch] += wt[ch] * h[ch];
            }
        }
    }
}

static void cpu_conv2d_s2_pair(cn_exec *ex, const float *x, float *y, int n_seq, int t, int f, int c, const float *w1,
                               const float *b1, const float *w2, const float *b2, const int *valid0,
                               const int *valid1) {
    int t1 = (t + 1) / 2, f1 = (f + 1) / 2;
    size_t wfloats = (size_t)18 * c + 16;
    if (!cn_cpu_scratch_reserve(ex, wfloats + (size_t)3 * f1 * c))
        return;
    float *wt1 = ex->scratch[0], *wt2 = wt1 + (size_t)9 * c; /* thread 0's rows come after them */
    for (int ch = 0; ch < c; ch++)
        for (int tap = 0; tap < 9; tap++) {
            wt1[(size_t)tap * c + ch] = w1[(size_t)ch * 9 + tap];
            wt2[(size_t)tap * c + ch] = w2[(size_t)ch * 9 + tap];
        }
    c2p_job j = {x, y, t, f, c, t1, f1, (t1 + 1) / 2, (f1 + 1) / 2, b1, b2, wt1, wt2, valid0, valid1, ex, wfloats};
    cn_pool_run(ex->pool, (size_t)n_seq * (size_t)j.t2, c2p_task, &j);
}

static void cpu_mask_time(cn_exec *ex, float *x, int n_seq, int t, size_t row, const int *valid) {
    (void)ex;
    for (int s = 0; s < n_seq; s++) {
        int v = valid[s] < 0 ? 0 : valid[s];
        if (v < t)
            memset(x + ((size_t)s * t + v) * row, 0, sizeof(float) * row * (size_t)(t - v));
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Attention                                                                                   */
/* ------------------------------------------------------------------------------------------- */


typedef struct {
    const cn_relattn_args *a;
    cn_exec *ex;
} rel_job;

CN_CPU_CLONES static void rel_task(void *ctx, size_t task, int thread) {
    const rel_job *j = ctx;
    const cn_relattn_args *a = j->a;
    int s = (int)(task / (size_t)a->n_heads), h = (int)(task % (size_t)a->n_heads);
    int t = a->t, dk = a->head_dim, d = a->n_heads * dk, np = 2 * t - 1;
    int valid = a->valid ? a->valid[s] : t;
    if (valid > t)
        valid = t;
    if (valid < 0)
        valid = 0;
    float *scr = j->ex->scratch[thread];
    float *ac = scr;                            /* [valid, valid] */
    float *bd = ac + (size_t)t * t;             /* [valid, 2t-1] */
    float *qu = bd + (size_t)t * np;            /* [valid, dk] */
    float *qv = qu + (size_t)t * dk;
    const float *qkv = a->qkv + (size_t)s * t * 3 * d;
    float *out = a->out + (size_t)s * t * d + (size_t)h * dk;
    /* Padded query rows: every score masked, probabilities zeroed -> zero output. */
    for (int i = valid; i < t; i++)
        memset(out + (size_t)i * d, 0, sizeof(float) * (size_t)dk);
    if (valid == 0)
        return;
    for (int i = 0; i < valid; i++) {
        const float *q = qkv + (size_t)i * 3 * d + (size_t)h * dk;
        for (int c = 0; c < dk; c++) {
            qu[(size_t)i * dk + c] = q[c] + a->bias_u[(size_t)h * dk + c];
            qv[(size_t)i * dk + c] = q[c] + a->bias_v[(size_t)h * dk + c];
        }
    }
    const float *kh = qkv + d + (size_t)h * dk, *vh = qkv + 2 * (size_t)d + (size_t)h * dk;
    cn_cpu_sgemm_nt(valid, valid, dk, 1.0f, qu, dk, kh, 3 * d, 0.0f, ac, valid);
    /* Only relative positions i-j with i, j < valid are needed: rows m = t-1-(i-j). */
    int m0 = t - valid, nm = 2 * valid - 1;
    cn_cpu_sgemm_nt(valid, nm, dk, 1.0f, qv, dk, a->pos + (size_t)m0 * d + (size_t)h * dk, d, 0.0f, bd, nm);
    float scale = 1.0f / sqrtf((float)dk);
    for (int i = 0; i < valid; i++) {
        float *row = ac + (size_t)i * valid;
        const float *b = bd + (size_t)i * nm;
        float mx = -FLT_MAX;
        for (int jj = 0; jj < valid; jj++) {
            /* rel_shift: query i, key j uses relative position i-j, i.e. table row t-1-i+j. */
            row[jj] = (row[jj] + b[(valid - 1) - i + jj]) * scale;
            if (row[jj] > mx)
                mx = row[jj];
        }
        float sum = 0;
        for (int jj = 0; jj < valid; jj++)
            row[jj] -= mx;
        cn_cpu_vexp(row, valid);
        for (int jj = 0; jj < valid; jj++)
            sum += row[jj];
        float inv = 1.0f / sum;
        for (int jj = 0; jj < valid; jj++)
            row[jj] *= inv;
    }
    cn_cpu_sgemm_nn(valid, dk, valid, 1.0f, ac, valid, vh, 3 * d, 0.0f, out, d);
}

static void cpu_rel_attention(cn_exec *ex, const cn_relattn_args *a) {
    int t = a->t, dk = a->head_dim;
    size_t need = (size_t)t * t + (size_t)t * (2 * (size_t)t - 1) + 2 * (size_t)t * dk;
    if (!cn_cpu_scratch_reserve(ex, need))
        return;
    rel_job j = {a, ex};
    cn_pool_run(ex->pool, (size_t)a->n_seq * (size_t)a->n_heads, rel_task, &j);
}

typedef struct {
    const cn_attn_args *a;
    cn_exec *ex;
} att_job;

/* q·k over 16 lanes (a fixed summation order: results do not depend on the ISA clone). */
typedef float v16f __attribute__((vector_size(64)));
static inline __attribute__((always_inline)) float dot_f32(const float *x, const float *y, int n) {
    int c = 0;
    float dot = 0;
    if (n >= 16) {
        v16f acc = {0}, xv, yv;
        for (; c + 16 <= n; c += 16) {
            memcpy(&xv, x + c, sizeof xv);
            memcpy(&yv, y + c, sizeof yv);
            acc += xv * yv;
        }
        for (int l = 0; l < 16; l++)
            dot += acc[l];
    }
    for (; c < n; c++)
        dot += x[c] * y[c];
    return dot;
}

CN_CPU_CLONES static void att_task(void *ctx, size_t task, int thread) {
    const att_job *j = ctx;
    const cn_attn_args *a = j->a;
    int s = (int)(task / (size_t)a->n_heads), h = (int)(task % (size_t)a->n_heads);
    int blk = a->kv_block ? a->kv_block[s] : s;
    int lk = a->lk;
    if (a->kv_valid && a->kv_valid[blk] > 0 && a->kv_valid[blk] < lk)
        lk = a->kv_valid[blk]; /* all keys masked (valid 0): -10000 everywhere == no mask */
    const float *k = a->k + (size_t)blk * a->kv_seq_stride + (size_t)h * a->head_dim;
    const float *v = a->v + (size_t)blk * a->kv_seq_stride + (size_t)h * a->head_dim;
    float *p = j->ex->scratch[thread];
    for (int i = 0; i < a->lq; i++) {
        const float *q = a->q + (size_t)s * a->q_seq_stride + (size_t)i * a->ldq + (size_t)h * a->head_dim;
        float *o = a->out + (size_t)s * a->out_seq_stride + (size_t)i * a->ldo + (size_t)h * a->head_dim;
        int n = lk;
        if (a->causal_offset >= 0 && i + a->causal_offset + 1 < n)
            n = i + a->causal_offset + 1;
        float mx = -FLT_MAX;
        for (int jj = 0; jj < n; jj++) {
            float dot = dot_f32(q, k + (size_t)jj * a->ldk, a->head_dim);
            p[jj] = dot * a->scale;
            if (p[jj] > mx)
                mx = p[jj];
        }
        float sum = 0;
        for (int jj = 0; jj < n; jj++)
            p[jj] -= mx;
        cn_cpu_vexp(p, n);
        for (int jj = 0; jj < n; jj++)
            sum += p[jj];
        float inv = 1.0f / sum;
        for (int c = 0; c < a->head_dim; c++)
            o[c] = 0;
        for (int jj = 0; jj < n; jj++) {
            const float *vr = v + (size_t)jj * a->ldk;
            float w = p[jj] * inv;
            for (int c = 0; c < a->head_dim; c++)
                o[c] += w * vr[c];
        }
    }
}

static void cpu_attention(cn_exec *ex, const cn_attn_args *a) {
    if (!cn_cpu_scratch_reserve(ex, (size_t)a->lk + 16))
        return;
    att_job j = {a, ex};
    cn_pool_run(ex->pool, (size_t)a->n_seq * (size_t)a->n_heads, att_task, &j);
}

/* ------------------------------------------------------------------------------------------- */
/* Decoder helpers                                                                             */
/* ------------------------------------------------------------------------------------------- */

static void cpu_embed(cn_exec *ex, const float *table, const float *pos, const int *ids, const int *positions,
                      int n, int d, float *out) {
    (void)ex;
    for (int i = 0; i < n; i++) {
        const float *e = table + (size_t)ids[i] * d, *p = pos + (size_t)positions[i] * d;
        float *o = out + (size_t)i * d;
        for (int c = 0; c < d; c++)
            o[c] = e[c] + p[c];
    }
}

typedef struct {
    float *x;
    int n;
} lsm_job;

CN_CPU_CLONES static void lsm_task(void *ctx, size_t r, int thread) {
    (void)thread;
    const lsm_job *j = ctx;
    float *x = j->x + r * (size_t)j->n;
    float mx = -FLT_MAX;
    for (int i = 0; i < j->n; i++)
        if (x[i] > mx)
            mx = x[i];
    double sum = 0;
    for (int i = 0; i < j->n; i++)
        sum += exp((double)(x[i] - mx));
    float lse = mx + (float)log(sum);
    for (int i = 0; i < j->n; i++)
        x[i] -= lse;
}

static void cpu_log_softmax(cn_exec *ex, float *x, int rows, int n) {
    lsm_job j = {x, n};
    cn_pool_run(ex->pool, (size_t)rows, lsm_task, &j);
}

static void cpu_topk(cn_exec *ex, const float *x, int rows, int n, int k, float *vals, int *idx) {
    (void)ex;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *v = vals + (size_t)r * k;
        int *ix = idx + (size_t)r * k;
        int have = 0;
        for (int i = 0; i < n; i++) {
            float val = xr[i];
            if (have == k && !(val > v[k - 1]))
                continue; /* strict: an equal later value never displaces an earlier one */
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
}

/* ------------------------------------------------------------------------------------------- */

static cn_status cpu_constant(cn_backend *be, const float *host, size_t n, const float **out, cn_error *err) {
    (void)be;
    (void)n;
    (void)err;
    *out = host; /* host memory is what the CPU operations read */
    return CANARY_OK;
}

static cn_status cpu_sync(cn_exec *ex, cn_error *err) {
    (void)ex;
    (void)err;
    return CANARY_OK;
}

/* In 32 x 32 tiles, so that the strided side of a tile stays in L1. */
static void cpu_transpose(cn_exec *ex, const float *x, float *y, int n, int rows, int cols, int y_rows) {
    (void)ex;
    for (int b = 0; b < n; b++) {
        const float *xb = x + (size_t)b * rows * cols;
        float *yb = y + (size_t)b * y_rows * rows;
        for (int c0 = 0; c0 < cols; c0 += 32)
            for (int r0 = 0; r0 < rows; r0 += 32) {
                int c1 = c0 + 32 < cols ? c0 + 32 : cols, r1 = r0 + 32 < rows ? r0 + 32 : rows;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        yb[(size_t)c * rows + r] = xb[(size_t)r * cols + c];
            }
        if (y_rows > cols)
            memset(yb + (size_t)cols * rows, 0, sizeof(float) * (size_t)(y_rows - cols) * rows);
    }
}

static void cpu_copy_2d(cn_exec *ex, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                        size_t rows) {
    (void)ex;
    for (size_t r = 0; r < rows; r++)
        memmove((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, width);
}

static void cpu_destroy(cn_backend *be) { free(be); }

static const cn_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .exec_create = cpu_exec_create,
    .exec_destroy = cpu_exec_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .linear_create = cpu_linear_create,
    .linear_destroy = cpu_linear_destroy,
    .linear = cpu_linear,
    .layer_norm = cpu_layer_norm,
    .glu_mask = cpu_glu_mask,
    .dwconv1d = cpu_dwconv1d,
    .conv2d_s2 = cpu_conv2d_s2,
    .conv2d_s2_pair = cpu_conv2d_s2_pair,
    .mask_time = cpu_mask_time,
    .rel_attention = cpu_rel_attention,
    .attention = cpu_attention,
    .embed = cpu_embed,
    .log_softmax = cpu_log_softmax,
    .topk = cpu_topk,
    .constant = cpu_constant,
    .sync = cpu_sync,
    .copy_2d = cpu_copy_2d,
    .transpose = cpu_transpose,
};

cn_status cn_cpu_backend_create(cn_backend **out, cn_error *err) {
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory creating the CPU backend");
    b->base.ops = &cpu_ops;
    cn_cpu_gemm_init();
    *out = &b->base;
    return CANARY_OK;
}

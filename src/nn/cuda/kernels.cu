// CUDA kernels of the backend operations other than the cuBLAS GEMMs. Statistics (LayerNorm mean
// and variance, softmax maxima and sums) are always fp32, whatever the layers' precision.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <float.h>
#include <math.h>

#include "nn/cuda/cuda_internal.h"

#define THREADS 256

static inline unsigned blocks_for(size_t n, int threads = THREADS) {
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    return (unsigned)(b > 1u << 30 ? 1u << 30 : b); // kernels below loop with a grid stride
}

__device__ __forceinline__ float act_apply(cn_act act, float v) {
    if (act == CN_ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (act == CN_ACT_SILU) return v / (1.0f + __expf(-v));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < nw ? part[lane] : 0.0f;
        s = warp_sum(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    float r = total;
    __syncthreads(); // part/total may be reused by the next call
    return r;
}

__device__ float block_max(float v) {
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < nw ? part[lane] : -FLT_MAX;
        s = warp_max(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// ---- conversions and GEMM epilogue ------------------------------------------------------------

__global__ void k_f32_to_bf16(const float *x, int ldx, int cols, size_t n, __nv_bfloat16 *out) {
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        out[i] = __float2bfloat16_rn(x[r * (size_t)ldx + c]);
    }
}

__global__ void k_f32_to_f16(const float *x, int ldx, int cols, size_t n, __half *out) {
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        out[i] = __float2half_rn(x[r * (size_t)ldx + c]);
    }
}

void cu_f32_to_half(cudaStream_t st, const float *x, int ldx, int rows, int cols, void *out, bool bf16) {
    size_t n = (size_t)rows * (size_t)cols;
    if (!n) return;
    if (bf16)
        k_f32_to_bf16<<<blocks_for(n), THREADS, 0, st>>>(x, ldx, cols, n, (__nv_bfloat16 *)out);
    else
        k_f32_to_f16<<<blocks_for(n), THREADS, 0, st>>>(x, ldx, cols, n, (__half *)out);
}

void cu_convert_weights(cudaStream_t st, const float *w, size_t n, void *out, cn_precision prec) {
    if (!n) return;
    if (prec == CN_PREC_BF16)
        k_f32_to_bf16<<<blocks_for(n), THREADS, 0, st>>>(w, 1, 1, n, (__nv_bfloat16 *)out);
    else
        k_f32_to_f16<<<blocks_for(n), THREADS, 0, st>>>(w, 1, 1, n, (__half *)out);
}

__global__ void k_bias_act(float *y, int ldy, int cols, size_t n, const float *b, cn_act act, bool accumulate,
                           float alpha) {
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        float *p = y + r * (size_t)ldy + c;
        if (accumulate)
            *p += alpha * b[c];
        else
            *p = act_apply(act, *p + (b ? b[c] : 0.0f));
    }
}

void cu_bias_act(cudaStream_t st, float *y, int ldy, int rows, int cols, const float *b, cn_act act, bool accumulate,
                 float alpha) {
    size_t n = (size_t)rows * (size_t)cols;
    if (!n || (accumulate && !b) || (!accumulate && !b && act == CN_ACT_NONE)) return;
    k_bias_act<<<blocks_for(n), THREADS, 0, st>>>(y, ldy, cols, n, b, act, accumulate, alpha);
}

// ---- normalisation and element-wise ----------------------------------------------------------

// One block per row; two passes over the row (mean, then centred variance) as the CPU does.
__global__ void k_layer_norm(const float *x, float *y, int d, const float *g, const float *b, float eps) {
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    float s = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    float mean = block_sum(s) / (float)d;
    float v = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float c = xr[i] - mean;
        v += c * c;
    }
    float inv = rsqrtf(block_sum(v) / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] - mean) * inv * g[i] + b[i];
}

void cu_layer_norm(cudaStream_t st, const float *x, float *y, int rows, int d, const float *g, const float *b,
                   float eps) {
    if (rows <= 0) return;
    k_layer_norm<<<rows, THREADS, 0, st>>>(x, y, d, g, b, eps);
}

__global__ void k_glu_mask(const float *x, float *y, int t, int d, size_t n, const int *valid) {
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)d, c = i % (size_t)d;
        int s = (int)(r / (size_t)t), tt = (int)(r % (size_t)t);
        if (valid && tt >= valid[s]) {
            y[i] = 0.0f;
        } else {
            const float *xr = x + r * 2 * (size_t)d;
            y[i] = xr[c] * (1.0f / (1.0f + __expf(-xr[d + c])));
        }
    }
}

void cu_glu_mask(cudaStream_t st, const float *x, float *y, int n_seq, int t, int d, const int *valid) {
    size_t n = (size_t)n_seq * t * d;
    if (!n) return;
    k_glu_mask<<<blocks_for(n), THREADS, 0, st>>>(x, y, t, d, n, valid);
}

__global__ void k_dwconv1d(const float *x, float *y, int t, int d, size_t n, const float *w, const float *b, int k,
                           cn_act act) {
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)d;
        int c = (int)(i % (size_t)d);
        int s = (int)(r / (size_t)t), tt = (int)(r % (size_t)t);
        int half = (k - 1) / 2;
        const float *xs = x + (size_t)s * t * d;
        float acc = b ? b[c] : 0.0f;
        for (int q = 0; q < k; q++) {
            int ti = tt + q - half;
            if (ti >= 0 && ti < t) acc += w[(size_t)c * k + q] * xs[(size_t)ti * d + c];
        }
        y[i] = act_apply(act, acc);
    }
}

void cu_dwconv1d(cudaStream_t st, const float *x, float *y, int n_seq, int t, int d, const float *w, const float *b,
                 int k, cn_act act) {
    size_t n = (size_t)n_seq * t * d;
    if (!n) return;
    k_dwconv1d<<<blocks_for(n), THREADS, 0, st>>>(x, y, t, d, n, w, b, k, act);
}

__global__ void k_conv2d_s2(const float *x, float *y, int t, int f, int c_in, int c, int t_out, int f_out, size_t n,
                            const float *w, const float *b, const int *valid, cn_act act) {
    GRID_STRIDE(i, n) {
        int ch = (int)(i % (size_t)c);
        size_t r = i / (size_t)c;
        int fo = (int)(r % (size_t)f_out);
        r /= (size_t)f_out;
        int to = (int)(r % (size_t)t_out);
        int s = (int)(r / (size_t)t_out);
        int t_lim = valid ? (valid[s] < t ? valid[s] : t) : t;
        const float *xs = x + (size_t)s * t * f * c_in;
        float acc = b[ch];
        for (int dt = 0; dt < 3; dt++) {
            int ti = 2 * to - 1 + dt;
            if (ti < 0 || ti >= t_lim) continue;
            for (int df = 0; df < 3; df++) {
                int fi = 2 * fo - 1 + df;
                if (fi < 0 || fi >= f) continue;
                float xv = c_in == 1 ? xs[(size_t)ti * f + fi] : xs[((size_t)ti * f + fi) * c + ch];
                acc += w[(size_t)ch * 9 + dt * 3 + df] * xv;
            }
        }
        y[i] = act_apply(act, acc);
    }
}

void cu_conv2d_s2(cudaStream_t st, const float *x, float *y, int n_seq, int t, int f, int c_in, int c, const float *w,
                  const float *b, const int *valid, cn_act act) {
    int t_out = (t + 1) / 2, f_out = (f + 1) / 2;
    size_t n = (size_t)n_seq * t_out * f_out * c;
    if (!n) return;
    k_conv2d_s2<<<blocks_for(n), THREADS, 0, st>>>(x, y, t, f, c_in, c, t_out, f_out, n, w, b, valid, act);
}

__global__ void k_mask_time(float *x, int t, size_t row, size_t n, const int *valid) {
    GRID_STRIDE(i, n) {
        size_t r = i / row;
        int s = (int)(r / (size_t)t), tt = (int)(r % (size_t)t);
        if (tt >= valid[s]) x[i] = 0.0f; // negative valid: everything is padding
    }
}

void cu_mask_time(cudaStream_t st, float *x, int n_seq, int t, size_t row, const int *valid) {
    size_t n = (size_t)n_seq * t * row;
    if (!n) return;
    k_mask_time<<<blocks_for(n), THREADS, 0, st>>>(x, t, row, n, valid);
}

// ---- relative-position attention ---------------------------------------------------------------

__global__ void k_rel_split(const float *qkv, const float *bu, const float *bv, int n_seq, int t, int h, int dk,
                            size_t n, float *qu, float *qv, float *k, float *v) {
    int d = h * dk;
    GRID_STRIDE(i, n) {
        int col = (int)(i % (size_t)d);
        size_t r = i / (size_t)d; // s*t + row
        int s = (int)(r / (size_t)t), row = (int)(r % (size_t)t);
        int hh = col / dk, c = col % dk;
        const float *src = qkv + r * 3 * (size_t)d;
        size_t dst = (((size_t)hh * n_seq + s) * t + row) * dk + c;
        float q = src[col];
        qu[dst] = q + bu[col];
        qv[dst] = q + bv[col];
        k[dst] = src[d + col];
        v[dst] = src[2 * d + col];
    }
}

void cu_rel_split(cudaStream_t st, const float *qkv, const float *bu, const float *bv, int n_seq, int t, int h,
                  int dk, float *qu, float *qv, float *k, float *v) {
    size_t n = (size_t)n_seq * t * h * dk;
    if (!n) return;
    k_rel_split<<<blocks_for(n), THREADS, 0, st>>>(qkv, bu, bv, n_seq, t, h, dk, n, qu, qv, k, v);
}

// One block per query row of one (head, sequence): scores ac[i, j] + bd[i, t-1-i+j] (rel_shift),
// scaled, softmax over the valid keys; masked keys and padded query rows get probability 0.
__global__ void k_rel_softmax(float *ac, const float *bd, int n_seq, int t, float scale, const int *valid) {
    int i = blockIdx.x % t;
    int b = blockIdx.x / t; // h*n_seq + s
    int s = b % n_seq, hh = b / n_seq;
    int nv = valid ? valid[s] : t;
    nv = nv < 0 ? 0 : (nv > t ? t : nv);
    float *row = ac + ((size_t)b * t + i) * t;
    if (i >= nv) {
        for (int j = threadIdx.x; j < t; j += blockDim.x) row[j] = 0.0f;
        return;
    }
    const float *brow = bd + ((size_t)hh * n_seq * t + (size_t)s * t + i) * (size_t)(2 * t - 1) + (t - 1 - i);
    float mx = -FLT_MAX;
    for (int j = threadIdx.x; j < nv; j += blockDim.x) {
        float sc = (row[j] + brow[j]) * scale;
        row[j] = sc;
        mx = fmaxf(mx, sc);
    }
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < nv; j += blockDim.x) {
        float e = __expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = 1.0f / block_sum(sum);
    for (int j = threadIdx.x; j < t; j += blockDim.x) row[j] = j < nv ? row[j] * inv : 0.0f;
}

void cu_rel_softmax(cudaStream_t st, float *ac, const float *bd, int n_seq, int t, int h, float scale,
                    const int *valid) {
    size_t rows = (size_t)h * n_seq * t;
    if (!rows) return;
    k_rel_softmax<<<(unsigned)rows, 128, 0, st>>>(ac, bd, n_seq, t, scale, valid);
}

// ---- standard attention (decoder self- and cross-attention) --------------------------------------

#define ATT_THREADS 128
#define ATT_SMEM_BYTES (44 * 1024)

// One block per (sequence, head, query row). Scores live in shared memory when they fit, else in
// `scores_global` (one lk-row per block). Each warp scores whole keys (lanes split head_dim, so the
// key row is read coalesced); then one softmax and a weighted sum of value rows over threads.
__global__ void k_attention(cn_attn_args a, const int *kv_block, const int *kv_valid, float *scores_global) {
    extern __shared__ float smem[];
    int sh = blockIdx.x, i = blockIdx.y;
    int s = sh / a.n_heads, h = sh % a.n_heads;
    int blk = kv_block ? kv_block[s] : s;
    int lk = a.lk;
    if (kv_valid && kv_valid[blk] > 0 && kv_valid[blk] < lk) lk = kv_valid[blk]; // valid 0: no mask (as NeMo)
    int n = lk;
    if (a.causal_offset >= 0 && i + a.causal_offset + 1 < n) n = i + a.causal_offset + 1;
    int dk = a.head_dim;
    float *q = smem;
    float *p = scores_global ? scores_global + ((size_t)blockIdx.y * gridDim.x + blockIdx.x) * (size_t)a.lk : smem + dk;
    const float *qg = a.q + (size_t)s * a.q_seq_stride + (size_t)i * a.ldq + (size_t)h * dk;
    for (int c = threadIdx.x; c < dk; c += blockDim.x) q[c] = qg[c];
    __syncthreads();
    const float *kb = a.k + (size_t)blk * a.kv_seq_stride + (size_t)h * dk;
    const float *vb = a.v + (size_t)blk * a.kv_seq_stride + (size_t)h * dk;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int j = warp; j < n; j += nw) {
        const float *kr = kb + (size_t)j * a.ldk;
        float dot = 0.0f;
        for (int c = lane; c < dk; c += 32) dot += q[c] * kr[c];
        dot = warp_sum(dot);
        if (lane == 0) p[j] = dot * a.scale;
    }
    __syncthreads();
    float mx = -FLT_MAX;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, p[j]);
    mx = block_max(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = __expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_sum(sum); // also a barrier: every p[j] is written
    float inv = n > 0 ? 1.0f / sum : 0.0f;
    float *o = a.out + (size_t)s * a.out_seq_stride + (size_t)i * a.ldo + (size_t)h * dk;
    for (int c = threadIdx.x; c < dk; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += p[j] * vb[(size_t)j * a.ldk + c];
        o[c] = acc * inv;
    }
}

int cu_attention_smem_keys(void) { return ATT_SMEM_BYTES / (int)sizeof(float) - 1024; }

void cu_attention(cudaStream_t st, const cn_attn_args *a, const int *kv_block, const int *kv_valid,
                  float *scores_global) {
    if (a->n_seq <= 0 || a->lq <= 0 || a->n_heads <= 0) return;
    size_t smem = sizeof(float) * ((size_t)a->head_dim + (scores_global ? 0 : (size_t)a->lk));
    dim3 grid((unsigned)(a->n_seq * a->n_heads), (unsigned)a->lq);
    k_attention<<<grid, ATT_THREADS, smem, st>>>(*a, kv_block, kv_valid, scores_global);
}

// ---- decoder helpers --------------------------------------------------------------------------

__global__ void k_embed(const float *table, const float *pos, const int *ids, const int *positions, int d, size_t n,
                        float *out) {
    GRID_STRIDE(i, n) {
        size_t r = i / (size_t)d, c = i % (size_t)d;
        out[i] = table[(size_t)ids[r] * d + c] + pos[(size_t)positions[r] * d + c];
    }
}

void cu_embed(cudaStream_t st, const float *table, const float *pos, const int *ids, const int *positions, int n,
              int d, float *out) {
    size_t total = (size_t)n * d;
    if (!total) return;
    k_embed<<<blocks_for(total), THREADS, 0, st>>>(table, pos, ids, positions, d, total, out);
}

__global__ void k_log_softmax(float *x, int n) {
    float *xr = x + (size_t)blockIdx.x * n;
    float mx = -FLT_MAX;
    for (int i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, xr[i]);
    mx = block_max(mx);
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(xr[i] - mx);
    float lse = mx + logf(block_sum(s));
    for (int i = threadIdx.x; i < n; i += blockDim.x) xr[i] -= lse;
}

void cu_log_softmax(cudaStream_t st, float *x, int rows, int n) {
    if (rows <= 0 || n <= 0) return;
    k_log_softmax<<<rows, 512, 0, st>>>(x, n);
}

// Top-k per row by k rounds of a block-wide arg-max in the order (value descending, index
// ascending); round r takes the best element strictly after round r-1's pick in that order, so
// ties go to the lower index as on the CPU. NaN never qualifies. k is small (beam size).
__global__ void k_topk(const float *x, int n, int k, float *vals, int *idx) {
    __shared__ float sv[THREADS];
    __shared__ int si[THREADS];
    const float *xr = x + (size_t)blockIdx.x * n;
    float pv = INFINITY;
    int pi = -1;
    for (int r = 0; r < k; r++) {
        float bv = -INFINITY;
        int bi = -1;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float v = xr[i];
            bool after = v < pv || (v == pv && i > pi);
            if (after && (bi < 0 || v > bv)) { // i ascends per thread: equal values keep the lower
                bv = v;
                bi = i;
            }
        }
        sv[threadIdx.x] = bv;
        si[threadIdx.x] = bi;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if ((int)threadIdx.x < w) {
                float ov = sv[threadIdx.x + w];
                int oi = si[threadIdx.x + w];
                float mv = sv[threadIdx.x];
                int mi = si[threadIdx.x];
                if (oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi))) {
                    sv[threadIdx.x] = ov;
                    si[threadIdx.x] = oi;
                }
            }
            __syncthreads();
        }
        pv = sv[0];
        pi = si[0];
        if (threadIdx.x == 0) {
            vals[(size_t)blockIdx.x * k + r] = pi >= 0 ? pv : -INFINITY;
            idx[(size_t)blockIdx.x * k + r] = pi;
        }
        __syncthreads();
        if (pi < 0) pv = -INFINITY, pi = n; // nothing left: later rounds find nothing either
    }
}

void cu_topk(cudaStream_t st, const float *x, int rows, int n, int k, float *vals, int *idx) {
    if (rows <= 0 || k <= 0) return;
    k_topk<<<rows, THREADS, 0, st>>>(x, n, k, vals, idx);
}

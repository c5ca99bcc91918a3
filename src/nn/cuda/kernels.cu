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

// ---- launch shapes -----------------------------------------------------------------------------
// Kernels over [rows, cols] or [sequence, time, cols] tensors run on 2-D/3-D grids: threads and
// blockIdx.x walk the columns, blockIdx.y the rows or times, blockIdx.z the sequences (each with a
// grid stride), so no thread splits a flat index. A 64-bit division costs tens of instructions on a
// GPU, three of them per element made these memory-bound kernels instruction-bound (an H200 spent
// 15.8 ms of a 180-ms batch of 128 in the subsampling convolutions).
#define MAX_GRID_YZ 65535u

static inline unsigned cap_yz(size_t n) { return (unsigned)(n == 0 ? 1 : n < MAX_GRID_YZ ? n : MAX_GRID_YZ); }

static inline dim3 grid_rows(size_t rows, size_t cols, int threads) {
    size_t gx = (cols + (size_t)threads - 1) / (size_t)threads;
    return dim3((unsigned)(gx ? (gx < (1u << 30) ? gx : 1u << 30) : 1), cap_yz(rows));
}

static inline dim3 grid_seq(int n_seq, int t, size_t cols, int threads) {
    dim3 g = grid_rows((size_t)t, cols, threads);
    g.z = cap_yz((size_t)n_seq);
    return g;
}

#define ROW_LOOP(r, rows) for (size_t r = blockIdx.y; r < (size_t)(rows); r += gridDim.y)
#define SEQ_LOOP(s, tt, n_seq, t)                                  \
    for (int s = (int)blockIdx.z; s < (n_seq); s += (int)gridDim.z) \
        for (int tt = (int)blockIdx.y; tt < (t); tt += (int)gridDim.y)
#define COL_LOOP(c, cols) \
    for (size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x; c < (size_t)(cols); c += (size_t)gridDim.x * blockDim.x)

static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// ---- conversions and GEMM epilogue ------------------------------------------------------------

template <bool BF16> __device__ __forceinline__ unsigned to_bits16(float v) {
    if (BF16) return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(v));
    return (unsigned)__half_as_ushort(__float2half_rn(v));
}

// The inputs of a half-precision GEMM: x[rows, cols] (row stride ldx) packed into out[rows, cols].
template <bool BF16>
__global__ void k_f32_to_16(const float *x, size_t ldx, int cols, size_t rows, unsigned short *out) {
    ROW_LOOP(r, rows) {
        const float *xr = x + r * ldx;
        unsigned short *o = out + r * (size_t)cols;
        COL_LOOP(c, cols) o[c] = (unsigned short)to_bits16<BF16>(xr[c]);
    }
}

// The same four columns at a time (16-byte loads, 8-byte stores) when rows are 16-byte aligned.
template <bool BF16>
__global__ void k_f32_to_16_v4(const float4 *x, size_t ldx4, int cols4, size_t rows, uint2 *out) {
    ROW_LOOP(r, rows) {
        const float4 *xr = x + r * ldx4;
        uint2 *o = out + r * (size_t)cols4;
        COL_LOOP(c, cols4) {
            float4 v = xr[c];
            uint2 p;
            p.x = to_bits16<BF16>(v.x) | to_bits16<BF16>(v.y) << 16;
            p.y = to_bits16<BF16>(v.z) | to_bits16<BF16>(v.w) << 16;
            o[c] = p;
        }
    }
}

void cu_f32_to_half(cudaStream_t st, const float *x, int ldx, int rows, int cols, void *out, bool bf16) {
    if (rows <= 0 || cols <= 0) return;
    if (cols % 4 == 0 && ldx % 4 == 0 && aligned16(x) && ((uintptr_t)out & 7u) == 0) {
        void (*k)(const float4 *, size_t, int, size_t, uint2 *) = bf16 ? k_f32_to_16_v4<true> : k_f32_to_16_v4<false>;
        k<<<grid_rows((size_t)rows, (size_t)cols / 4, THREADS), THREADS, 0, st>>>(
            (const float4 *)x, (size_t)ldx / 4, cols / 4, (size_t)rows, (uint2 *)out);
    } else {
        void (*k)(const float *, size_t, int, size_t, unsigned short *) = bf16 ? k_f32_to_16<true> : k_f32_to_16<false>;
        k<<<grid_rows((size_t)rows, (size_t)cols, THREADS), THREADS, 0, st>>>(x, (size_t)ldx, cols, (size_t)rows,
                                                                              (unsigned short *)out);
    }
}

// Weights, once at load: a flat array.
template <bool BF16> __global__ void k_weights_to_16(const float *w, size_t n, unsigned short *out) {
    GRID_STRIDE(i, n) out[i] = (unsigned short)to_bits16<BF16>(w[i]);
}

void cu_convert_weights(cudaStream_t st, const float *w, size_t n, void *out, cn_precision prec) {
    if (!n) return;
    void (*k)(const float *, size_t, unsigned short *) =
        prec == CN_PREC_BF16 ? k_weights_to_16<true> : k_weights_to_16<false>;
    k<<<blocks_for(n), THREADS, 0, st>>>(w, n, (unsigned short *)out);
}

__global__ void k_scale(const float *x, float alpha, size_t n, float *y) { GRID_STRIDE(i, n) y[i] = alpha * x[i]; }

void cu_scale(cudaStream_t st, const float *x, float alpha, size_t n, float *y) {
    if (!n) return;
    k_scale<<<blocks_for(n), THREADS, 0, st>>>(x, alpha, n, y);
}

__global__ void k_bias_act(float *y, size_t ldy, int cols, size_t rows, const float *b, cn_act act, bool accumulate,
                           float alpha) {
    ROW_LOOP(r, rows) {
        float *yr = y + r * ldy;
        COL_LOOP(c, cols) {
            if (accumulate)
                yr[c] += alpha * b[c];
            else
                yr[c] = act_apply(act, yr[c] + (b ? b[c] : 0.0f));
        }
    }
}

void cu_bias_act(cudaStream_t st, float *y, int ldy, int rows, int cols, const float *b, cn_act act, bool accumulate,
                 float alpha) {
    if (rows <= 0 || cols <= 0 || (accumulate && !b) || (!accumulate && !b && act == CN_ACT_NONE)) return;
    k_bias_act<<<grid_rows((size_t)rows, (size_t)cols, THREADS), THREADS, 0, st>>>(y, (size_t)ldy, cols, (size_t)rows,
                                                                                   b, act, accumulate, alpha);
}

// Strided copies of 4-byte words between device buffers (KV-cache appends, the last-row gather): a
// kernel rather than cudaMemcpy2DAsync so that a recorded decoder step holds only kernel nodes,
// whose parameters an executable graph can take from step to step.
__global__ void k_copy_words(unsigned *dst, size_t dst_pitch, const unsigned *src, size_t src_pitch, size_t words,
                             size_t rows) {
    ROW_LOOP(r, rows) {
        unsigned *d = dst + r * dst_pitch;
        const unsigned *s = src + r * src_pitch;
        COL_LOOP(c, words) d[c] = s[c];
    }
}

bool cu_copy_2d_words(cudaStream_t st, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                      size_t rows) {
    if (((uintptr_t)dst | (uintptr_t)src | dst_pitch | src_pitch | width) & 3u)
        return false;
    if (!width || !rows)
        return true;
    k_copy_words<<<grid_rows(rows, width / 4, THREADS), THREADS, 0, st>>>((unsigned *)dst, dst_pitch / 4,
                                                                         (const unsigned *)src, src_pitch / 4,
                                                                         width / 4, rows);
    return true;
}

template <bool BF16> __device__ __forceinline__ float from_bits16(unsigned short b) {
    if (BF16) return __bfloat162float(__ushort_as_bfloat16(b));
    return __half2float(__ushort_as_half(b));
}

// The hidden layer of a half-precision feed-forward block: bias and activation in fp32, in place.
template <bool BF16>
__global__ void k_bias_act_16(unsigned short *h, size_t ldh, int cols, size_t rows, const float *b, cn_act act) {
    ROW_LOOP(r, rows) {
        unsigned short *hr = h + r * ldh;
        COL_LOOP(c, cols) hr[c] = (unsigned short)to_bits16<BF16>(act_apply(act, from_bits16<BF16>(hr[c]) + (b ? b[c] : 0.0f)));
    }
}

// Eight values at a time (16-byte accesses): with 2-byte accesses this pass over the FFN's hidden
// layer (132 MB read and written for canary-1b-flash at batch 128) ran well under bandwidth.
template <bool BF16> __device__ __forceinline__ unsigned act_pair(unsigned p, float b0, float b1, cn_act act) {
    float lo = act_apply(act, from_bits16<BF16>((unsigned short)(p & 0xffffu)) + b0);
    float hi = act_apply(act, from_bits16<BF16>((unsigned short)(p >> 16)) + b1);
    return to_bits16<BF16>(lo) | to_bits16<BF16>(hi) << 16;
}
template <bool BF16>
__global__ void k_bias_act_16_v8(uint4 *h, size_t ldh8, int cols8, size_t rows, const float4 *b, cn_act act) {
    ROW_LOOP(r, rows) {
        uint4 *hr = h + r * ldh8;
        COL_LOOP(c, cols8) {
            uint4 v = hr[c];
            float4 b0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b1 = b0;
            if (b) b0 = b[2 * c], b1 = b[2 * c + 1];
            v.x = act_pair<BF16>(v.x, b0.x, b0.y, act);
            v.y = act_pair<BF16>(v.y, b0.z, b0.w, act);
            v.z = act_pair<BF16>(v.z, b1.x, b1.y, act);
            v.w = act_pair<BF16>(v.w, b1.z, b1.w, act);
            hr[c] = v;
        }
    }
}

void cu_bias_act_half(cudaStream_t st, void *h, int ldh, int rows, int cols, const float *b, cn_act act, bool bf16) {
    if (rows <= 0 || cols <= 0 || (!b && act == CN_ACT_NONE)) return;
    if (cols % 8 == 0 && ldh % 8 == 0 && aligned16(h) && (!b || aligned16(b))) {
        void (*k)(uint4 *, size_t, int, size_t, const float4 *, cn_act) =
            bf16 ? k_bias_act_16_v8<true> : k_bias_act_16_v8<false>;
        k<<<grid_rows((size_t)rows, (size_t)cols / 8, THREADS), THREADS, 0, st>>>(
            (uint4 *)h, (size_t)ldh / 8, cols / 8, (size_t)rows, (const float4 *)b, act);
        return;
    }
    void (*k)(unsigned short *, size_t, int, size_t, const float *, cn_act) = bf16 ? k_bias_act_16<true> : k_bias_act_16<false>;
    k<<<grid_rows((size_t)rows, (size_t)cols, THREADS), THREADS, 0, st>>>((unsigned short *)h, (size_t)ldh, cols,
                                                                          (size_t)rows, b, act);
}

// Batched transpose through a 32 x 33 shared tile (coalesced reads and writes, no bank conflicts):
// block (column tile, row tile, matrix); rows of y past cols are zeroed by the blocks of the last
// column tiles' grid stride below.
__global__ void k_transpose(const float *x, float *y, int n, int rows, int cols, int y_rows) {
    __shared__ float tile[32][33];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5; // 32 x 8 threads
    for (int b = (int)blockIdx.z; b < n; b += (int)gridDim.z) {
        const float *xb = x + (size_t)b * rows * cols;
        float *yb = y + (size_t)b * y_rows * rows;
        for (int r0 = (int)blockIdx.y * 32; r0 < rows; r0 += (int)gridDim.y * 32)
            for (int c0 = (int)blockIdx.x * 32; c0 < y_rows; c0 += (int)gridDim.x * 32) {
                for (int k = ty; k < 32; k += 8) {
                    int r = r0 + k, c = c0 + tx;
                    tile[k][tx] = r < rows && c < cols ? xb[(size_t)r * cols + c] : 0.0f;
                }
                __syncthreads();
                for (int k = ty; k < 32; k += 8) {
                    int c = c0 + k, r = r0 + tx; // y row c, column r
                    if (c < y_rows && r < rows) yb[(size_t)c * rows + r] = tile[tx][k];
                }
                __syncthreads();
            }
    }
}

void cu_transpose(cudaStream_t st, const float *x, float *y, int n, int rows, int cols, int y_rows) {
    if (n <= 0 || rows <= 0 || y_rows <= 0) return;
    dim3 g((unsigned)((y_rows + 31) / 32), cap_yz(((size_t)rows + 31) / 32), cap_yz((size_t)n));
    k_transpose<<<g, 256, 0, st>>>(x, y, n, rows, cols, y_rows);
}

// ---- log-mel features (nn/backend.h log_mel; features/features.c is the reference) ------------

// Sample i of an item's pre-emphasized signal (len samples of audio): NeMo 2.5 masks it past len,
// 2.4 lets the step at i = len through. In double, as features/ computes.
__device__ __forceinline__ double mel_preemph(const float *a, int len, long i, double p, bool v25) {
    if (i >= len && (v25 || i > len)) return 0.0;
    double x = i < len ? (double)a[i] : 0.0;
    return i > 0 ? x - p * (double)a[i - 1] : x;
}

// A position of the centred frame in the padded batch signal of length lpad: -1 for zero padding
// (2.5), else the reflected index (2.4; repeated for signals shorter than the padding).
__device__ __forceinline__ long mel_pad_index(long s, long n, bool reflect) {
    if (s >= 0 && s < n) return s;
    if (!reflect) return -1;
    if (n == 1) return 0;
    long period = 2 * (n - 1);
    s %= period;
    if (s < 0) s += period;
    return s < n ? s : period - s;
}

// frames[b*T + t][k] = the pre-emphasized sample under window position k times the window.
// own: each item's centre padding at its own length (as if alone), not at the batch's lpad.
template <typename F>
__global__ void k_mel_frames(const float *pcm, int lpad, const int *lens, int n, int T, int hop, int n_fft, int off,
                             int win, const double *window, double preemph, bool v25, bool own, F *frames) {
    for (int b = (int)blockIdx.z; b < n; b += (int)gridDim.z) {
        const float *a = pcm + (size_t)b * lpad;
        int len = lens[b];
        for (int t = (int)blockIdx.y; t < T; t += (int)gridDim.y) {
            long base = (long)t * hop - n_fft / 2 + off;
            F *row = frames + ((size_t)b * T + t) * win;
            for (int k = (int)(blockIdx.x * blockDim.x + threadIdx.x); k < win; k += (int)(gridDim.x * blockDim.x)) {
                long idx = mel_pad_index(base + k, own ? len : lpad, !v25);
                row[k] = idx < 0 ? (F)0 : (F)(mel_preemph(a, len, idx, preemph, v25) * window[k]);
            }
        }
    }
}

void cu_mel_frames(cudaStream_t st, const float *pcm, int lpad, const int *lens, int n, int T, int hop, int n_fft,
                   int off, int win, const double *window, double preemph, bool v25, bool own, void *frames,
                   bool dbl) {
    if (n <= 0 || T <= 0 || win <= 0) return;
    dim3 g = grid_seq(n, T, (size_t)win, THREADS);
    if (dbl) {
        void (*k)(const float *, int, const int *, int, int, int, int, int, int, const double *, double, bool, bool,
                  double *) = k_mel_frames<double>;
        k<<<g, THREADS, 0, st>>>(pcm, lpad, lens, n, T, hop, n_fft, off, win, window, preemph, v25, own,
                                 (double *)frames);
    } else {
        void (*k)(const float *, int, const int *, int, int, int, int, int, int, const double *, double, bool, bool,
                  float *) = k_mel_frames<float>;
        k<<<g, THREADS, 0, st>>>(pcm, lpad, lens, n, T, hop, n_fft, off, win, window, preemph, v25, own,
                                 (float *)frames);
    }
}

// power[r][k] = |spec[r][k]|^mag_power from the DFT's [re (n_bins) | im (n_bins)] rows.
template <typename F>
__global__ void k_mel_power(const F *spec, size_t rows, int n_bins, double mag_power, float *power) {
    ROW_LOOP(r, rows) {
        const F *s = spec + r * 2 * (size_t)n_bins;
        float *p = power + r * (size_t)n_bins;
        COL_LOOP(k, n_bins) {
            double re = s[k], im = s[n_bins + k], v = re * re + im * im;
            if (mag_power != 2.0) v = pow(sqrt(v), mag_power);
            p[k] = (float)v;
        }
    }
}

void cu_mel_power(cudaStream_t st, const void *spec, size_t rows, int n_bins, double mag_power, float *power, bool dbl) {
    if (!rows || n_bins <= 0) return;
    dim3 g = grid_rows(rows, (size_t)n_bins, THREADS);
    if (dbl) {
        void (*k)(const double *, size_t, int, double, float *) = k_mel_power<double>;
        k<<<g, THREADS, 0, st>>>((const double *)spec, rows, n_bins, mag_power, power);
    } else {
        void (*k)(const float *, size_t, int, double, float *) = k_mel_power<float>;
        k<<<g, THREADS, 0, st>>>((const float *)spec, rows, n_bins, mag_power, power);
    }
}

__device__ double block_sum_d(double v) {
    __shared__ double part[THREADS];
    part[threadIdx.x] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    double r = part[0];
    __syncthreads();
    return r;
}

// One block per (mel, item) over out[b][t][m]: log, then normalization over the valid frames
// (double sums of the float values, unbiased std + eps, as features/), then pad_value from the
// valid length to cols.
__global__ void k_mel_log_norm(float *out, int n, int T, int cols, int n_mels, const int *valid, bool do_log,
                               bool clamp, double guard, bool normalize, double std_eps, float pad_value) {
    int m = (int)blockIdx.x, b = (int)blockIdx.y;
    if (m >= n_mels || b >= n) return;
    float *col = out + (size_t)b * cols * n_mels + m;
    int nv = valid[b];
    if (do_log)
        for (int t = (int)threadIdx.x; t < T; t += (int)blockDim.x) {
            double v = col[(size_t)t * n_mels];
            col[(size_t)t * n_mels] = (float)(clamp ? log(v > guard ? v : guard) : log(v + guard));
        }
    __syncthreads();
    if (normalize && nv > 0) {
        double s = 0.0;
        for (int t = (int)threadIdx.x; t < nv; t += (int)blockDim.x) s += col[(size_t)t * n_mels];
        double mean = block_sum_d(s) / (double)nv;
        double q = 0.0;
        for (int t = (int)threadIdx.x; t < nv; t += (int)blockDim.x) {
            double d = col[(size_t)t * n_mels] - mean;
            q += d * d;
        }
        q = block_sum_d(q);
        double sd = nv > 1 ? sqrt(q / (double)(nv - 1)) : 0.0;
        float fmean = (float)mean, fsd = (float)(sd + std_eps);
        for (int t = (int)threadIdx.x; t < nv; t += (int)blockDim.x)
            col[(size_t)t * n_mels] = (col[(size_t)t * n_mels] - fmean) / fsd;
    }
    for (int t = (int)threadIdx.x + (nv > 0 ? nv : 0); t < cols; t += (int)blockDim.x) col[(size_t)t * n_mels] = pad_value;
}

void cu_mel_log_norm(cudaStream_t st, float *out, int n, int T, int cols, int n_mels, const int *valid, bool do_log,
                     bool clamp, double guard, bool normalize, double std_eps, float pad_value) {
    if (n <= 0 || n_mels <= 0) return;
    dim3 g((unsigned)n_mels, cap_yz((size_t)n));
    k_mel_log_norm<<<g, THREADS, 0, st>>>(out, n, T, cols, n_mels, valid, do_log, clamp, guard, normalize, std_eps,
                                          pad_value);
}

// ---- normalisation and element-wise ----------------------------------------------------------

// One block per row; two passes over the row (mean, then centred variance) as the CPU does. For
// rows the warp kernel below does not take (d not a multiple of 4, unaligned, or d > 1024).
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

// One warp per row, the row held in registers (V float4 per lane, d <= 128 V): one read and one
// write of the row and no block barriers; same two-pass statistics. In place is fine (the row is
// read whole before it is written).
template <int V>
__global__ void k_layer_norm_warp(const float *x, float *y, size_t rows, int d, const float *g, const float *b,
                                  float eps) {
    int lane = threadIdx.x & 31, wpb = blockDim.x >> 5, d4 = d >> 2;
    const float4 *g4 = (const float4 *)g, *b4 = (const float4 *)b;
    for (size_t r = (size_t)blockIdx.x * wpb + (threadIdx.x >> 5); r < rows; r += (size_t)gridDim.x * wpb) {
        const float4 *xr = (const float4 *)(x + r * (size_t)d);
        float4 *yr = (float4 *)(y + r * (size_t)d);
        float4 v[V];
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < V; k++) {
            int i = lane + 32 * k;
            if (i < d4) {
                v[k] = xr[i];
                s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
            } else {
                v[k].x = v[k].y = v[k].z = v[k].w = 0.0f;
            }
        }
        float mean = warp_sum(s) / (float)d;
        float q = 0.0f;
#pragma unroll
        for (int k = 0; k < V; k++) {
            if (lane + 32 * k < d4) {
                float a = v[k].x - mean, bb = v[k].y - mean, c = v[k].z - mean, e = v[k].w - mean;
                q += (a * a + bb * bb) + (c * c + e * e);
            }
        }
        float inv = rsqrtf(warp_sum(q) / (float)d + eps);
#pragma unroll
        for (int k = 0; k < V; k++) {
            int i = lane + 32 * k;
            if (i < d4) {
                float4 gg = g4[i], be = b4[i], o;
                o.x = (v[k].x - mean) * inv * gg.x + be.x;
                o.y = (v[k].y - mean) * inv * gg.y + be.y;
                o.z = (v[k].z - mean) * inv * gg.z + be.z;
                o.w = (v[k].w - mean) * inv * gg.w + be.w;
                yr[i] = o;
            }
        }
    }
}

void cu_layer_norm(cudaStream_t st, const float *x, float *y, int rows, int d, const float *g, const float *b,
                   float eps) {
    if (rows <= 0 || d <= 0) return;
    if (d % 4 == 0 && d <= 1024 && aligned16(x) && aligned16(y) && aligned16(g) && aligned16(b)) {
        int v = (d + 127) / 128;
        void (*k)(const float *, float *, size_t, int, const float *, const float *, float) =
            v <= 1 ? k_layer_norm_warp<1> : v <= 2 ? k_layer_norm_warp<2> : v <= 4 ? k_layer_norm_warp<4>
                                                                                    : k_layer_norm_warp<8>;
        const int wpb = 4; // warps (rows) per block
        unsigned blocks = blocks_for((size_t)rows, wpb);
        k<<<blocks, 32 * wpb, 0, st>>>(x, y, (size_t)rows, d, g, b, eps);
        return;
    }
    k_layer_norm<<<rows, THREADS, 0, st>>>(x, y, d, g, b, eps);
}

__device__ __forceinline__ float glu1(float a, float g) { return a * (1.0f / (1.0f + __expf(-g))); }

__global__ void k_glu_mask(const float *x, float *y, int n_seq, int t, int d, const int *valid) {
    SEQ_LOOP(s, tt, n_seq, t) {
        size_t r = (size_t)s * t + tt;
        float *yr = y + r * d;
        const float *xr = x + r * 2 * (size_t)d;
        bool pad = valid && tt >= valid[s];
        COL_LOOP(c, d) yr[c] = pad ? 0.0f : glu1(xr[c], xr[d + c]);
    }
}

// Four channels at a time (16-byte loads and stores) when rows allow: the scalar kernel moved
// about 2 TB/s on an H200.
__global__ void k_glu_mask_v4(const float4 *x, float4 *y, int n_seq, int t, int d4, const int *valid) {
    SEQ_LOOP(s, tt, n_seq, t) {
        size_t r = (size_t)s * t + tt;
        float4 *yr = y + r * d4;
        const float4 *xr = x + r * 2 * (size_t)d4;
        bool pad = valid && tt >= valid[s];
        COL_LOOP(c, d4) {
            float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (!pad) {
                float4 a = xr[c], g = xr[d4 + c];
                o = make_float4(glu1(a.x, g.x), glu1(a.y, g.y), glu1(a.z, g.z), glu1(a.w, g.w));
            }
            yr[c] = o;
        }
    }
}

void cu_glu_mask(cudaStream_t st, const float *x, float *y, int n_seq, int t, int d, const int *valid) {
    if (n_seq <= 0 || t <= 0 || d <= 0) return;
    if (d % 4 == 0 && aligned16(x) && aligned16(y)) {
        k_glu_mask_v4<<<grid_seq(n_seq, t, (size_t)d / 4, THREADS), THREADS, 0, st>>>(
            (const float4 *)x, (float4 *)y, n_seq, t, d / 4, valid);
        return;
    }
    k_glu_mask<<<grid_seq(n_seq, t, (size_t)d, THREADS), THREADS, 0, st>>>(x, y, n_seq, t, d, valid);
}

__global__ void k_dwconv1d(const float *x, float *y, int n_seq, int t, int d, const float *w, const float *b, int k,
                           cn_act act) {
    int half = (k - 1) / 2;
    SEQ_LOOP(s, tt, n_seq, t) {
        const float *xs = x + (size_t)s * t * d;
        float *yr = y + ((size_t)s * t + tt) * d;
        int q0 = tt - half < 0 ? half - tt : 0, q1 = tt - half + k > t ? t - tt + half : k; // taps inside [0, t)
        COL_LOOP(c, d) {
            float acc = b ? b[c] : 0.0f;
            const float *wc = w + c * (size_t)k;
            for (int q = q0; q < q1; q++) acc += wc[q] * xs[(size_t)(tt + q - half) * d + c];
            yr[c] = act_apply(act, acc);
        }
    }
}

// The same for the kernel size every Canary uses (9), a thread per channel over a tile of DW_TILE
// outputs: the tile's DW_TILE + k - 1 inputs are loaded into registers first (independent loads,
// all in flight at once; a window loaded one input per output waited on each), so each input is
// read once per tile instead of k times, and the weights once per tile. Same taps, same order,
// same sums as k_dwconv1d (out-of-range taps add w * 0).
#define DW_TILE 16
template <int K>
__global__ void k_dwconv1d_tiled(const float *x, float *y, int n_seq, int t, int d, const float *w, const float *b,
                                 cn_act act) {
    const int half = (K - 1) / 2;
    int n_tiles = (t + DW_TILE - 1) / DW_TILE;
    SEQ_LOOP(s, tile, n_seq, n_tiles) {
        int t0 = tile * DW_TILE;
        const float *xs = x + (size_t)s * t * d;
        float *ys = y + (size_t)s * t * d;
        COL_LOOP(c, d) {
            float xin[DW_TILE + K - 1];
#pragma unroll
            for (int q = 0; q < DW_TILE + K - 1; q++) {
                int tt = t0 - half + q;
                xin[q] = tt >= 0 && tt < t ? xs[(size_t)tt * d + c] : 0.0f;
            }
            float wr[K];
#pragma unroll
            for (int q = 0; q < K; q++) wr[q] = w[c * K + q];
            float bias = b ? b[c] : 0.0f;
#pragma unroll
            for (int i = 0; i < DW_TILE; i++) {
                float acc = bias;
#pragma unroll
                for (int q = 0; q < K; q++) acc += wr[q] * xin[i + q];
                if (t0 + i < t)
                    ys[(size_t)(t0 + i) * d + c] = act_apply(act, acc);
            }
        }
    }
}

void cu_dwconv1d(cudaStream_t st, const float *x, float *y, int n_seq, int t, int d, const float *w, const float *b,
                 int k, cn_act act) {
    if (n_seq <= 0 || t <= 0 || d <= 0) return;
    int n_tiles = (t + DW_TILE - 1) / DW_TILE;
    // tiles only when they still fill the GPU (a batch of one 10-s item is 32 blocks of tiles: slower)
    if (k == 9 && (size_t)n_seq * n_tiles * ((d + THREADS - 1) / THREADS) >= 1024) {
        void (*k9)(const float *, float *, int, int, int, const float *, const float *, cn_act) = k_dwconv1d_tiled<9>;
        k9<<<grid_seq(n_seq, n_tiles, (size_t)d, THREADS), THREADS, 0, st>>>(x, y, n_seq, t, d, w, b, act);
        return;
    }
    k_dwconv1d<<<grid_seq(n_seq, t, (size_t)d, THREADS), THREADS, 0, st>>>(x, y, n_seq, t, d, w, b, k, act);
}

// 3x3, stride 2, padding 1 over [s, t, f, c_in] (channels last; c_in is 1, or c for the depthwise
// layers): a block per (sequence, output time), a thread per output channel with its 9 weights in
// registers, looping over the output frequencies. With c_in 1 the warp reads one input value at a
// time (a broadcast); depthwise it reads 32 consecutive channels (coalesced).
__global__ void k_conv2d_s2(const float *x, float *y, int n_seq, int t, int f, int c_in, int c, int t_out, int f_out,
                            const float *w, const float *b, const int *valid, cn_act act) {
    SEQ_LOOP(s, to, n_seq, t_out) {
        int t_lim = valid ? (valid[s] < t ? valid[s] : t) : t;
        const float *xs = x + (size_t)s * t * f * c_in;
        float *ys = y + ((size_t)s * t_out + to) * (size_t)f_out * c;
        COL_LOOP(ch, c) {
            float wr[9];
#pragma unroll
            for (int q = 0; q < 9; q++) wr[q] = w[ch * 9 + q];
            float bias = b[ch];
            for (int fo = 0; fo < f_out; fo++) {
                float acc = bias;
#pragma unroll
                for (int dt = 0; dt < 3; dt++) {
                    int ti = 2 * to - 1 + dt;
                    if (ti < 0 || ti >= t_lim) continue;
#pragma unroll
                    for (int df = 0; df < 3; df++) {
                        int fi = 2 * fo - 1 + df;
                        if (fi < 0 || fi >= f) continue;
                        float xv = c_in == 1 ? xs[(size_t)ti * f + fi] : xs[((size_t)ti * f + fi) * c + ch];
                        acc += wr[dt * 3 + df] * xv;
                    }
                }
                ys[(size_t)fo * c + ch] = act_apply(act, acc);
            }
        }
    }
}

void cu_conv2d_s2(cudaStream_t st, const float *x, float *y, int n_seq, int t, int f, int c_in, int c, const float *w,
                  const float *b, const int *valid, cn_act act) {
    int t_out = (t + 1) / 2, f_out = (f + 1) / 2;
    if (n_seq <= 0 || t_out <= 0 || f_out <= 0 || c <= 0) return;
    int threads = c < THREADS ? (c + 31) / 32 * 32 : THREADS;
    k_conv2d_s2<<<grid_seq(n_seq, t_out, (size_t)c, threads), threads, 0, st>>>(x, y, n_seq, t, f, c_in, c, t_out,
                                                                                 f_out, w, b, valid, act);
}

// The first two subsampling convolutions in one pass: conv 3x3/2 (1 -> c) + ReLU, then the
// depthwise 3x3/2, without the first's output [s, t1, f1, c] in memory (the encoder's largest
// tensor: 131 MB per 40-s item for 256 channels) -- each value of it is computed where the
// depthwise conv reads it (2.25 times over, 9 MACs each: cheap beside the memory traffic saved).
// A block per (sequence, output time), a thread per channel with both 9-tap filters in registers;
// the input values are the same for every channel (broadcast reads from shared memory). Masks as
// conv2d_s2's:
// input rows from valid0[s] on and first-conv rows from valid1[s] on read as zero.
__global__ void k_conv2d_s2_pair(const float *x, float *y, int n_seq, int t, int f, int c, int t1, int f1, int t2,
                                 int f2, const float *w1, const float *b1, const float *w2, const float *b2,
                                 const int *valid0, const int *valid1) {
    // The 7 input rows an output row reads (4*to-3 .. 4*to+3), staged once per block in shared
    // memory with a zero column on each side and zeros outside the input or past valid0[s]: the
    // 54 first-conv MACs per output then need no index arithmetic or bounds tests (with them and
    // global reads the kernel was instruction-bound: 6.9 ms of a batch of 128 on an H200).
    extern __shared__ float smem[];
    int fp = f + 2; // a staged row: input columns -1 .. f
    SEQ_LOOP(s, to, n_seq, t2) {
        int t0_lim = valid0 ? (valid0[s] < t ? valid0[s] : t) : t;
        int t1_lim = valid1 ? (valid1[s] < t1 ? valid1[s] : t1) : t1;
        const float *xs = x + (size_t)s * t * f;
        for (int k = (int)threadIdx.x; k < 7 * fp; k += (int)blockDim.x) {
            int i = k / fp, j = k - i * fp, ti = 4 * to - 3 + i, fi = j - 1;
            smem[k] = ti >= 0 && ti < t0_lim && fi >= 0 && fi < f ? xs[(size_t)ti * f + fi] : 0.0f;
        }
        __syncthreads();
        float *ys = y + ((size_t)s * t2 + to) * (size_t)f2 * c;
        COL_LOOP(ch, c) {
            float wa[9], wb[9];
#pragma unroll
            for (int q = 0; q < 9; q++) {
                wa[q] = w1[ch * 9 + q];
                wb[q] = w2[ch * 9 + q];
            }
            float ba = b1[ch], bb = b2[ch];
            float carry[3] = {0.0f, 0.0f, 0.0f}; // first-conv column 2*fo - 1, computed as the last one
            for (int fo = 0; fo < f2; fo++) {
                float acc = bb;
#pragma unroll
                for (int dc = 0; dc < 3; dc++) {
                    int c1 = 2 * fo - 1 + dc; // first-conv column
#pragma unroll
                    for (int dr = 0; dr < 3; dr++) {
                        int r1 = 2 * to - 1 + dr; // first-conv row
                        float h;
                        if (dc == 0 && fo > 0) {
                            h = carry[dr];
                        } else if (r1 < 0 || r1 >= t1_lim || c1 < 0 || c1 >= f1) {
                            h = 0.0f; // padding, or masked
                        } else {
                            // input row 2*r1-1+dt is staged row 2*dr+dt; column 2*c1-1+df is 2*c1+df
                            const float *p = smem + 2 * dr * fp + 2 * c1;
                            h = ba;
#pragma unroll
                            for (int dt = 0; dt < 3; dt++)
#pragma unroll
                                for (int df = 0; df < 3; df++) h += wa[dt * 3 + df] * p[dt * fp + df];
                            h = h > 0.0f ? h : 0.0f;
                        }
                        if (dc == 2)
                            carry[dr] = h;
                        acc += wb[dr * 3 + dc] * h;
                    }
                }
                ys[(size_t)fo * c + ch] = acc;
            }
        }
        __syncthreads(); // the next (sequence, time) restages the rows
    }
}

void cu_conv2d_s2_pair(cudaStream_t st, const float *x, float *y, int n_seq, int t, int f, int c, const float *w1,
                       const float *b1, const float *w2, const float *b2, const int *valid0, const int *valid1) {
    int t1 = (t + 1) / 2, f1 = (f + 1) / 2, t2 = (t1 + 1) / 2, f2 = (f1 + 1) / 2;
    if (n_seq <= 0 || t2 <= 0 || f2 <= 0 || c <= 0) return;
    int threads = c < THREADS ? (c + 31) / 32 * 32 : THREADS;
    size_t smem = sizeof(float) * 7 * (size_t)(f + 2); // 3.6 KB for 128 mel bins
    k_conv2d_s2_pair<<<grid_seq(n_seq, t2, (size_t)c, threads), threads, smem, st>>>(x, y, n_seq, t, f, c, t1, f1, t2,
                                                                                    f2, w1, b1, w2, b2, valid0, valid1);
}

__global__ void k_mask_time(float *x, int n_seq, int t, size_t row, const int *valid) {
    SEQ_LOOP(s, tt, n_seq, t) {
        if (tt < valid[s]) continue; // negative valid: everything is padding
        float *xr = x + ((size_t)s * t + tt) * row;
        COL_LOOP(c, row) xr[c] = 0.0f;
    }
}

void cu_mask_time(cudaStream_t st, float *x, int n_seq, int t, size_t row, const int *valid) {
    if (n_seq <= 0 || t <= 0 || !row) return;
    k_mask_time<<<grid_seq(n_seq, t, row, THREADS), THREADS, 0, st>>>(x, n_seq, t, row, valid);
}

// ---- relative-position attention ---------------------------------------------------------------

// The bias terms of rel-pos attention, one warp per dot product of dk: ku[h, s, j] = u_h · k_(s,j),h
// (the key row j of sequence s, head h's columns), then vp[h, p] = v_h · pos_p,h.
__global__ void k_rel_bias_dots(const float *k, int ld, const float *u, const float *pos, int d, const float *bv,
                                int n_seq, int t, int h, int dk, float *ku, float *vp, int ldp) {
    int lane = threadIdx.x & 31, wpb = blockDim.x >> 5, np = 2 * t - 1;
    size_t n_ku = (size_t)h * n_seq * t, n = n_ku + (size_t)h * np;
    for (size_t w = (size_t)blockIdx.x * wpb + (threadIdx.x >> 5); w < n; w += (size_t)gridDim.x * wpb) {
        const float *a, *b;
        float *out;
        if (w < n_ku) {
            size_t st = w % ((size_t)n_seq * t); // s * t + j
            int hh = (int)(w / ((size_t)n_seq * t));
            a = k + st * (size_t)ld + (size_t)hh * dk;
            b = u + (size_t)hh * dk;
            out = ku + w;
        } else {
            size_t w2 = w - n_ku;
            int hh = (int)(w2 / (size_t)np), p = (int)(w2 % (size_t)np);
            a = pos + (size_t)p * d + (size_t)hh * dk;
            b = bv + (size_t)hh * dk;
            out = vp + (size_t)hh * ldp + p;
        }
        float sum = 0.0f;
        for (int c = lane; c < dk; c += 32) sum += a[c] * b[c];
        sum = warp_sum(sum);
        if (lane == 0) *out = sum;
    }
}

void cu_rel_bias_dots(cudaStream_t st, const float *k, int ld, const float *u, const float *pos, int d,
                      const float *bv, int n_seq, int t, int h, int dk, float *ku, float *vp, int ldp) {
    size_t n = (size_t)h * n_seq * t + (size_t)h * (2 * t - 1);
    if (!n) return;
    const int wpb = 8;
    k_rel_bias_dots<<<blocks_for(n, wpb), 32 * wpb, 0, st>>>(k, ld, u, pos, d, bv, n_seq, t, h, dk, ku, vp, ldp);
}

// One warp per query row of one (head, sequence): scores ac[i, j] + bd[i, t-1-i+j] (rel_shift),
// scaled, softmax over the valid keys; masked keys and padded query rows get probability 0. Rows
// are a few hundred keys: a warp per row needs no block barriers (a block per row spent most of its
// time in them).
__global__ void k_rel_softmax(float *ac, int ldt, const float *bd, int ldp, const float *ku, const float *vp,
                              int n_seq, int t, size_t rows, float scale, const int *valid) {
    int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (size_t row_id = (size_t)blockIdx.x * wpb + (threadIdx.x >> 5); row_id < rows;
         row_id += (size_t)gridDim.x * wpb) {
        int i = (int)(row_id % (size_t)t);
        size_t b = row_id / (size_t)t; // h*n_seq + s
        int s = (int)(b % (size_t)n_seq), hh = (int)(b / (size_t)n_seq);
        int nv = valid ? valid[s] : t;
        nv = nv < 0 ? 0 : (nv > t ? t : nv);
        float *row = ac + row_id * (size_t)ldt;
        if (i >= nv) {
            for (int j = lane; j < t; j += 32) row[j] = 0.0f;
            continue;
        }
        const float *brow = bd + ((size_t)hh * n_seq * t + (size_t)s * t + i) * (size_t)ldp + (t - 1 - i);
        const float *kurow = ku + b * (size_t)t, *vprow = vp + (size_t)hh * ldp + (t - 1 - i);
        float mx = -FLT_MAX;
        for (int j = lane; j < nv; j += 32) {
            float sc = ((row[j] + kurow[j]) + (brow[j] + vprow[j])) * scale;
            row[j] = sc;
            mx = fmaxf(mx, sc);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int j = lane; j < nv; j += 32) {
            float e = __expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / warp_sum(sum);
        for (int j = lane; j < t; j += 32) row[j] = j < nv ? row[j] * inv : 0.0f;
    }
}

void cu_rel_softmax(cudaStream_t st, float *ac, int ldt, const float *bd, int ldp, const float *ku, const float *vp,
                    int n_seq, int t, int h, float scale, const int *valid) {
    size_t rows = (size_t)h * n_seq * t;
    if (!rows) return;
    const int wpb = 8; // warps (rows) per block
    unsigned blocks = blocks_for(rows, wpb);
    k_rel_softmax<<<blocks, 32 * wpb, 0, st>>>(ac, ldt, bd, ldp, ku, vp, n_seq, t, rows, scale, valid);
}

// ---- standard attention (decoder self- and cross-attention) --------------------------------------

#define ATT_THREADS 256
#define ATT_SMEM_BYTES (44 * 1024)

// One block per (sequence, head, query row). Scores live in shared memory when they fit, else in
// `scores_global` (one lk-row per block). A decoder step at batch 1 is 8 such blocks, so the work
// inside a block is what hides memory latency: each warp scores four keys at a time (lanes split
// head_dim, so key rows are read coalesced, four loads in flight per lane), then one softmax, then
// the weighted sum of value rows with the threads in G = blockDim / head_dim groups, each over
// every G-th key (partial sums in shared memory, added in a fixed order: deterministic).
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
    int G = (int)blockDim.x >= 2 * dk ? (int)blockDim.x / dk : 1; // groups for the weighted sum
    float *q = smem, *part = smem + dk;                              // part: [G, dk]
    float *p = scores_global ? scores_global + ((size_t)blockIdx.y * gridDim.x + blockIdx.x) * (size_t)a.lk
                             : smem + dk + (size_t)G * dk;
    const float *qg = a.q + (size_t)s * a.q_seq_stride + (size_t)i * a.ldq + (size_t)h * dk;
    for (int c = threadIdx.x; c < dk; c += blockDim.x) q[c] = qg[c];
    __syncthreads();
    const float *kb = a.k + (size_t)blk * a.kv_seq_stride + (size_t)h * dk;
    const float *vb = a.v + (size_t)blk * a.kv_seq_stride + (size_t)h * dk;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int j0 = 4 * warp; j0 < n; j0 += 4 * nw) {
        // rows past n repeat row j0 (always valid) and are not stored
        const float *k0 = kb + (size_t)j0 * a.ldk;
        const float *k1 = j0 + 1 < n ? k0 + a.ldk : k0, *k2 = j0 + 2 < n ? k0 + 2 * (size_t)a.ldk : k0,
                    *k3 = j0 + 3 < n ? k0 + 3 * (size_t)a.ldk : k0;
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
        for (int c = lane; c < dk; c += 32) {
            float qc = q[c];
            d0 += qc * k0[c];
            d1 += qc * k1[c];
            d2 += qc * k2[c];
            d3 += qc * k3[c];
        }
        d0 = warp_sum(d0);
        d1 = warp_sum(d1);
        d2 = warp_sum(d2);
        d3 = warp_sum(d3);
        if (lane == 0) {
            p[j0] = d0 * a.scale;
            if (j0 + 1 < n) p[j0 + 1] = d1 * a.scale;
            if (j0 + 2 < n) p[j0 + 2] = d2 * a.scale;
            if (j0 + 3 < n) p[j0 + 3] = d3 * a.scale;
        }
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
    if (G == 1) {
        for (int c = threadIdx.x; c < dk; c += blockDim.x) {
            float acc = 0.0f;
            for (int j = 0; j < n; j++) acc += p[j] * vb[(size_t)j * a.ldk + c];
            o[c] = acc * inv;
        }
        return;
    }
    int g = (int)threadIdx.x / dk, c = (int)threadIdx.x % dk;
    if (g < G) {
        float acc = 0.0f;
#pragma unroll 4
        for (int j = g; j < n; j += G) acc += p[j] * vb[(size_t)j * a.ldk + c];
        part[g * dk + c] = acc;
    }
    __syncthreads();
    for (int cc = threadIdx.x; cc < dk; cc += blockDim.x) {
        float acc = 0.0f;
        for (int gg = 0; gg < G; gg++) acc += part[gg * dk + cc];
        o[cc] = acc * inv;
    }
}

// Shared memory holds q, the weighted sum's partials (at most max(ATT_THREADS, dk) floats) and
// the scores: the reserve of 1024 floats covers head_dim up to 512.
int cu_attention_smem_keys(void) { return ATT_SMEM_BYTES / (int)sizeof(float) - 1024; }

void cu_attention(cudaStream_t st, const cn_attn_args *a, const int *kv_block, const int *kv_valid,
                  float *scores_global) {
    if (a->n_seq <= 0 || a->lq <= 0 || a->n_heads <= 0) return;
    int G = ATT_THREADS >= 2 * a->head_dim ? ATT_THREADS / a->head_dim : 1;
    size_t smem = sizeof(float) * ((size_t)a->head_dim * (1 + (size_t)G) + (scores_global ? 0 : (size_t)a->lk));
    // In 4 KiB steps: a decoder step's self-attention grows by one key per step, and a recorded step
    // (CUDA graph) is updated in place more surely when its launches keep their shape.
    smem = (smem + 4095) / 4096 * 4096;
    dim3 grid((unsigned)(a->n_seq * a->n_heads), (unsigned)a->lq);
    k_attention<<<grid, ATT_THREADS, smem, st>>>(*a, kv_block, kv_valid, scores_global);
}

// ---- decoder helpers --------------------------------------------------------------------------

__global__ void k_embed(const float *table, const float *pos, const int *ids, const int *positions, int d, size_t n,
                        float *out) {
    ROW_LOOP(r, n) {
        const float *tr = table + (size_t)ids[r] * d, *pr = pos + (size_t)positions[r] * d;
        float *o = out + r * (size_t)d;
        COL_LOOP(c, d) o[c] = tr[c] + pr[c];
    }
}

void cu_embed(cudaStream_t st, const float *table, const float *pos, const int *ids, const int *positions, int n,
              int d, float *out) {
    if (n <= 0 || d <= 0) return;
    k_embed<<<grid_rows((size_t)n, (size_t)d, THREADS), THREADS, 0, st>>>(table, pos, ids, positions, d, (size_t)n,
                                                                          out);
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

/* The backend interface: the tensor operations the Canary network needs, provided by a backend
 * that owns the memory they run on. Model code (src/model/) describes the network once in terms of
 * these operations; the CPU backend (nn/cpu/) implements them in-process, a CUDA backend plugs in
 * behind the same table without touching model code.
 *
 * Two objects:
 *   cn_backend  one per loaded model: the operation table plus state shared read-only by every
 *               context (prepared weights, library handles). Thread-safe after creation.
 *   cn_exec     one per inference context: worker threads, scratch memory. Used by one thread at a
 *               time; concurrent contexts never share an exec.
 *
 * All float buffers passed to operations are backend memory (alloc) or constants (constant); on
 * the CPU both are ordinary host memory. Integer arrays (valid lengths, ids, positions, kv blocks)
 * are always host memory. Matrices are row-major; `ld*` arguments are row strides in elements.
 */
#ifndef CN_NN_BACKEND_H
#define CN_NN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum cn_act { CN_ACT_NONE = 0, CN_ACT_RELU, CN_ACT_SILU } cn_act;
/* Storage/math precision of a linear layer. Activations stay fp32 between operations in every mode;
 * reduced precisions convert a layer's input on the fly and accumulate in fp32.
 *   F32   exact fp32 GEMMs.
 *   BF16  bf16 weights and inputs (CPU: AVX512-BF16 or emulated; CUDA: tensor cores).
 *   F16   fp16 weights and inputs (CUDA only; the CPU backend refuses it).
 *   TF32  fp32 weights, TF32 tensor-core GEMMs on sm80+ GPUs (exact fp32 elsewhere and on the CPU). */
typedef enum cn_precision { CN_PREC_F32 = 0, CN_PREC_BF16 = 1, CN_PREC_F16 = 2, CN_PREC_TF32 = 3 } cn_precision;

typedef struct cn_backend cn_backend;
typedef struct cn_exec cn_exec;
/* A dense layer y = x·Wᵀ + b prepared for one backend (packed, converted to bf16, ...). */
typedef struct cn_linear cn_linear;

/* Arguments of multi-head scaled dot-product attention over `n_seq` independent sequences.
 * Query row i of sequence s is q + s*q_seq_stride + i*ldq (heads side by side, head h at column
 * h*head_dim); keys/values of sequence s come from block kv_block[s] (or s when kv_block is NULL):
 * k + blk*kv_seq_stride + j*ldk. Output rows are laid out like the queries. */
typedef struct cn_attn_args {
    int n_seq, n_heads, head_dim;
    int lq, lk;
    const float *q;
    int ldq;
    size_t q_seq_stride;
    const float *k, *v;
    int ldk;
    size_t kv_seq_stride;
    const int *kv_block;  /* NULL: identity */
    const int *kv_valid;  /* per kv block: keys j >= kv_valid[blk] are masked (NULL: none) */
    int causal_offset;    /* >= 0: query i sees keys j <= i + causal_offset; < 0: no causal mask */
    float scale;          /* applied to q·k */
    float *out;
    int ldo;
    size_t out_seq_stride;
} cn_attn_args;

/* Relative-position self-attention of the FastConformer encoder (NeMo RelPositionMultiHeadAttention)
 * for `n_seq` sequences of `t` frames: qkv rows [t, 3d] per sequence (q | k | v), the projected
 * positional table pos [2t-1, d] (row m <-> relative position t-1-m), per-head biases u, v [h, dk].
 * Scores of keys or queries at >= valid[s] are masked to -10000 and their probabilities zeroed
 * (so padded query rows produce zeros), as NeMo does. */
typedef struct cn_relattn_args {
    int n_seq, t, n_heads, head_dim;
    const float *qkv;
    const float *pos;
    const float *bias_u, *bias_v;
    const int *valid;
    float *out; /* [n_seq, t, d] */
} cn_relattn_args;

/* The log-mel front end as a backend computes it (log_mel): NeMo's FilterbankFeatures in eval mode,
 * described in plain values (model/ fills it from features/). */
typedef struct cn_mel_desc {
    int n_fft, hop, win, win_offset; /* the window [win] sits at win_offset in the n_fft frame */
    int n_bins, n_mels;              /* n_fft/2 + 1; filterbank rows */
    int pad_to;                      /* columns rounded up to a multiple (0: none) */
    bool nemo_2_5;                   /* zero centre padding, pre-emphasis masked past the length;
                                      * else (2.4) reflect padding over the padded batch length */
    bool own_padding;                /* each item padded as if alone (2.4: reflected at its own
                                      * length): features/'s cn_features_compute_items_pool */
    int valid_extra;                 /* valid frames = length / hop + valid_extra (2.4: 1) */
    float preemph;                   /* 0: none */
    double mag_power;                /* 2: power spectrum */
    bool log, log_clamp;             /* log(x + guard) or log(max(x, guard)) */
    double log_guard;
    bool normalize;                  /* per feature over the valid frames, unbiased std + std_eps */
    double std_eps;
    float pad_value;                 /* columns from the valid length on */
    const double *window;            /* [win] */
    const float *filterbank;         /* [n_mels, n_bins] */
} cn_mel_desc;

typedef struct cn_backend_ops {
    const char *name;
    void (*destroy)(cn_backend *be);
    cn_status (*exec_create)(cn_backend *be, int n_threads, cn_exec **out, cn_error *err);
    void (*exec_destroy)(cn_exec *ex);

    void *(*alloc)(cn_exec *ex, size_t bytes); /* zeroed; NULL when out of memory */
    void (*free)(cn_exec *ex, void *p);
    void (*upload)(cn_exec *ex, void *dst, const void *src, size_t bytes);
    void (*download)(cn_exec *ex, void *dst, const void *src, size_t bytes);
    void (*copy)(cn_exec *ex, void *dst, const void *src, size_t bytes);

    /* Weights: w [n_out, n_in] and b [n_out] (b may be NULL) are host fp32, copied or converted;
     * with `persistent` (they outlive the layer, e.g. a memory-mapped checkpoint) a backend may
     * reference them in place instead. */
    cn_status (*linear_create)(cn_backend *be, const float *w, const float *b, int n_out, int n_in,
                               cn_precision prec, bool persistent, cn_linear **out, cn_error *err);
    void (*linear_destroy)(cn_backend *be, cn_linear *lin);
    /* accumulate false: y = act(x·Wᵀ + b);  true: y += alpha·(x·Wᵀ + b) (act must be NONE). */
    void (*linear)(cn_exec *ex, const cn_linear *lin, const float *x, int ldx, int m, float *y, int ldy,
                   cn_act act, bool accumulate, float alpha);

    /* y = LayerNorm(x) over rows of width d (eps), gamma/beta [d]. x may equal y. */
    void (*layer_norm)(cn_exec *ex, const float *x, float *y, int rows, int d, const float *gamma,
                       const float *beta, float eps);
    /* GLU over channels of x [n_seq, t, 2d] -> y [n_seq, t, d]; rows t >= valid[s] become 0. */
    void (*glu_mask)(cn_exec *ex, const float *x, float *y, int n_seq, int t, int d, const int *valid);
    /* Depthwise conv1d over time with symmetric zero padding (k-1)/2, per-channel weights w [d, k]
     * (BatchNorm folded in) and bias, followed by `act`. x, y [n_seq, t, d], x != y. */
    void (*dwconv1d)(cn_exec *ex, const float *x, float *y, int n_seq, int t, int d, const float *w,
                     const float *b, int k, cn_act act);
    /* 2-D convolution, 3x3 kernel, stride 2, padding 1, channels-last [n_seq, t, f, c]:
     * groups == 1 only for c_in == 1 (the first subsampling layer: x is [n_seq, t, f]); otherwise
     * depthwise (c_in == c_out == c). w [c, 9], bias [c]. Output [n_seq, t_out, f_out, c] with
     * t_out = (t+1)/2, f_out = (f+1)/2. Input rows at time >= valid_in[s] read as zero when
     * valid_in is non-NULL (NeMo >= 2.5 masking). */
    void (*conv2d_s2)(cn_exec *ex, const float *x, float *y, int n_seq, int t, int f, int c_in, int c,
                      const float *w, const float *b, const int *valid_in, cn_act act);
    /* Zero rows (each `row` floats) at time >= valid[s] of a [n_seq, t, row] tensor. */
    void (*mask_time)(cn_exec *ex, float *x, int n_seq, int t, size_t row, const int *valid);
    void (*rel_attention)(cn_exec *ex, const cn_relattn_args *a);
    void (*attention)(cn_exec *ex, const cn_attn_args *a);
    /* out[i] = table[ids[i]] + pos[positions[i]] (rows of width d). */
    void (*embed)(cn_exec *ex, const float *table, const float *pos, const int *ids, const int *positions,
                  int n, int d, float *out);
    /* In-place log-softmax over rows of width n. */
    void (*log_softmax)(cn_exec *ex, float *x, int rows, int n);
    /* Per row: the k largest values in descending order (ties: lower index first) and their indices;
     * results are host memory. */
    void (*topk)(cn_exec *ex, const float *x, int rows, int n, int k, float *vals, int *idx);

    /* Small model constants (LayerNorm gamma/beta, conv weights, attention biases, embedding and
     * positional tables) are loaded as host fp32 arrays; this makes one usable by the operations
     * above. The CPU returns `host` itself; a GPU backend uploads a copy that lives until the
     * backend is destroyed. `host` stays owned by the caller. */
    cn_status (*constant)(cn_backend *be, const float *host, size_t n, const float **out, cn_error *err);
    /* Waits for the exec's queued work and reports the first failure since the last call (GPU
     * operations are asynchronous and cannot fail in place). The CPU always returns CANARY_OK. */
    cn_status (*sync)(cn_exec *ex, cn_error *err);
    /* `rows` copies of `width` bytes between backend buffers with row pitches in bytes: one call
     * where per-row copy() calls would cost a GPU launch each (KV-cache appends, gathers). */
    void (*copy_2d)(cn_exec *ex, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                    size_t rows);
    /* Optional (NULL where there is nothing to gain, as on the CPU): the operations queued between
     * capture_begin and capture_end run as one unit (a CUDA graph: a decoder step is ~100 small
     * kernels whose launches cost more than their work). capture_begin returns false when it did
     * not begin (off, or unavailable): the operations then run as usual. No download, topk or sync
     * in between. capture_end launches what was recorded and returns true, or returns false when
     * the capture was given up (an operation could not be recorded): then none of those operations
     * ran and the caller queues them again, now without capture. */
    bool (*capture_begin)(cn_exec *ex);
    bool (*capture_end)(cn_exec *ex);
    /* Optional (NULL: two linear() calls do it): a feed-forward block, y = act(x·W1ᵀ + b1)·W2ᵀ + b2,
     * or with accumulate y += alpha·(…) (l_in [dh, n_in], l_out [n_out, dh]). `hidden` is the
     * caller's [m, dh] fp32 buffer, which the backend may use in any format (its contents after
     * the call are unspecified): a GPU keeps a half-precision hidden layer in its own type. */
    void (*ffn)(cn_exec *ex, const cn_linear *l_in, const cn_linear *l_out, const float *x, int ldx, int m,
                float *hidden, float *y, int ldy, cn_act act, bool accumulate, float alpha);
    /* n matrices x[b] [rows, cols] -> y[b] [y_rows, rows]: the first cols rows of y[b] are x[b]ᵀ, the
     * rest zero (y_rows >= cols). The encoder's input: features [n_mels, t] per item, uploaded as
     * they are, to time-major [t_max, n_mels] where the device is (a host transpose of a batch of
     * 128 took 40 ms on one core). */
    void (*transpose)(cn_exec *ex, const float *x, float *y, int n, int rows, int cols, int y_rows);
    /* Optional (NULL: malloc/free serve): host memory that upload() reads fastest (a GPU's pinned,
     * page-locked memory: a batch of 128 ten-second feature maps is 65 MB). NULL when refused. */
    void *(*host_alloc)(cn_backend *be, size_t bytes);
    void (*host_free)(cn_backend *be, void *p);
    /* Optional (NULL: the CPU computes features): log-mel features of n utterances where the data
     * is. pcm: backend memory [n, lpad] (item b's first lens[b] samples are its audio, lens host
     * ints, 1 <= lens[b] <= lpad); out: backend memory [n, cols, n_mels], time-major, cols = 1 +
     * lpad/hop rounded up to pad_to; valid[b] (host) gets item b's valid frames. The same numbers as
     * features/ up to the precision of an fp32 DFT (features/ computes in double). */
    void (*log_mel)(cn_exec *ex, const cn_mel_desc *d, const float *pcm, const int *lens, int n, int lpad, float *out,
                    int *valid);
    /* Optional (NULL: two conv2d_s2 calls): conv2d_s2 with c_in 1 and ReLU (w1, b1), then the
     * depthwise conv2d_s2 without activation (w2, b2), in one pass that never stores the first's
     * output [n_seq, t1, f1, c] (t1 = (t+1)/2): the encoder's largest tensor. x [n_seq, t, f], y
     * [n_seq, (t1+1)/2, (f1+1)/2, c]; valid0 / valid1 mask the two convs' inputs as conv2d_s2's
     * valid_in does (both NULL or both set). */
    void (*conv2d_s2_pair)(cn_exec *ex, const float *x, float *y, int n_seq, int t, int f, int c, const float *w1,
                           const float *b1, const float *w2, const float *b2, const int *valid0, const int *valid1);
} cn_backend_ops;

struct cn_backend {
    const cn_backend_ops *ops;
};

/* The CPU backend. Loads the BLAS library on first use (see nn/cpu/gemm.c). */
cn_status cn_cpu_backend_create(cn_backend **out, cn_error *err);

/* Convenience wrappers, so model code reads as a description of the network. */
static inline void cn_backend_destroy(cn_backend *be) {
    if (be)
        be->ops->destroy(be);
}

/* The backend an exec belongs to (every exec struct starts with this pointer). */
typedef struct cn_exec_base {
    cn_backend *be;
} cn_exec_base;
#define CN_EXEC_OPS(ex) (((const cn_exec_base *)(const void *)(ex))->be->ops)

/* Number of physical cores (hyperthread siblings counted once), affinity-aware; >= 1. */
int cn_physical_cores(void);
/* Short description of the CPU backend's GEMM path ("openblas SkylakeX", ...). */
const char *cn_cpu_gemm_name(void);
/* True when this CPU runs the native bf16 dot-product kernels (AVX512-BF16). */
bool cn_cpu_has_bf16(void);

#endif

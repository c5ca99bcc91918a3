// Private to the CUDA backend plugin: the backend, exec and linear objects and the kernel launchers
// (kernels.cu) that backend.cu calls. Everything runs on the exec's stream.
#ifndef CN_NN_CUDA_INTERNAL_H
#define CN_NN_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdint.h>

extern "C" {
#include "nn/backend.h"
}

#define CN_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

typedef struct cu_const {
    void *p;
    struct cu_const *next;
} cu_const;

typedef struct cu_backend {
    cn_backend base;
    int device;
    int cc_major, cc_minor;
    bool tf32_internal;   // attention GEMMs may use TF32 (backend prec != F32 and sm80+)
    bool use_lt;          // cuBLASLt epilogues (CANARY_CUDA_NO_LT=1 forces the plain path)
    int lt_min_rows;      // CANARY_CUDA_LT_MIN_ROWS: GEMMs of fewer rows take the plain path (diagnosis)
    bool lt_no_splitk;    // CANARY_CUDA_LT_NO_SPLITK=1: no split-K reduction schemes (diagnosis)
    bool fast_fp64;       // fp64 at >= 1/4 of the fp32 rate (A100, H100): log_mel's DFT in double
    size_t unit;          // the arena's chunk granularity and log_mel's slice: min(256 MiB, memory / 64)
    cudaStream_t stream;  // weight uploads and conversions
    pthread_mutex_t lock; // guards `consts`
    cu_const *consts;
} cu_backend;

// A block of the exec's device arena: [base, base+size) inside one chunk (one cudaMalloc).
typedef struct cu_block {
    const void *chunk; // blocks merge only within a chunk, even when two chunks happen to be adjacent
    char *base;
    size_t size;
    bool used;
    struct cu_block *next;
} cu_block;

typedef struct cu_chunk {
    char *mem;
    size_t size;
    struct cu_chunk *next;
} cu_chunk;

// A cuBLASLt plan for one (layer, shape, epilogue): descriptors and the chosen algorithm.
typedef struct cu_plan {
    // the key: a layer freed and another created at the same address must not hit a stale plan
    const cn_linear *lin;
    unsigned long long serial; // the layer's, so a reused address alone cannot match
    const float *bias;
    int n_in, n_out, prec;
    int m, ldx, ldy, epi;
    bool valid, ok;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} cu_plan;

// A staging slot's host copy of the ints it holds (n 0: nothing known).
typedef struct cu_stage {
    int *host;
    size_t n, cap;
    unsigned long used; // stage_clock of the last use
} cu_stage;
#define CU_STAGE_SLOTS 8

#define CU_PLANS 4096
#define CU_PLAN_WAYS 8

// A layer's bias times alpha, for accumulating layers with alpha != 1 (the Conformer's half-step
// feed-forward residuals): y += alpha*(x*W^T + b) is then one GEMM with the bias epilogue.
typedef struct cu_scaled_bias {
    unsigned long long serial; // the layer's (cn_linear.serial)
    float alpha;
    float *dev; // alpha * bias, n_out floats
} cu_scaled_bias;
#define CU_SCALED_BIASES 512

struct cn_exec {
    cn_exec_base base;
    cu_backend *be;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *lt_work;   // cuBLASLt's workspace, zeroed at creation (exec_create says why)
    void *blas_work; // cuBLAS's, the same size, also zeroed
    size_t lt_work_size;
    cu_chunk *chunks;
    cu_block *blocks;
    size_t arena_used, arena_peak; // bytes in live blocks, now and at most (the profile reports them)
    // Scratch: ints staged from the host, half-precision inputs, attention intermediates.
    int *ints; // CU_STAGE_SLOTS slots of ints_cap / CU_STAGE_SLOTS
    size_t ints_cap;
    cu_stage stage[CU_STAGE_SLOTS]; // what each slot holds
    unsigned long stage_clock;
    long stage_hits; // stagings that found their ints already on the device
    void *scratch;
    size_t scratch_cap;
    float *host_topk; // pinned results of topk
    size_t host_topk_cap;
    cudaError_t first_error; // sticky until sync() reports it
    char first_error_where[96];
    cu_plan plans[CU_PLANS];
    unsigned plan_evict;
    cu_scaled_bias scaled[CU_SCALED_BIASES];
    int n_scaled;
    long lt_fallbacks;       // GEMMs that cuBLASLt refused and the plain path ran
    // CUDA graphs (CANARY_CUDA_GRAPHS=1): decoder steps recorded and launched as one graph.
    bool graphs;             // on for this exec
    bool capturing;          // the stream is recording
    bool doomed;             // the recording will be discarded (an operation could not be recorded)
    char capture_why[128];   // why the last one was discarded
    cudaGraphExec_t gexec;   // the last step's executable graph, updated in place while the shape holds
    char *pin;               // pinned host copies of the ints staged while recording
    size_t pin_cap, pin_used, pin_want;
    int give_ups_in_row;
    long graph_launches, graph_instantiations, graph_updates, graph_give_ups;
    // log_mel's constants on the device, for the descriptor they were made from
    const void *mel_for_window, *mel_for_fb;
    int mel_n_fft, mel_win, mel_off, mel_n_bins, mel_n_mels;
    float *mel_basis;   // [win, 2 n_bins]: cos | -sin of the DFT at the window's frame positions
    double *mel_basis_d; // the same in double (the fp64 DFT)
    double *mel_window; // [win]
    float *mel_fb;      // [n_mels, n_bins]
    struct cu_prof *prof;    // per-operation profile (CANARY_CUDA_PROFILE), NULL when off
};

struct cn_linear {
    int n_out, n_in;
    cn_precision prec;
    void *w;  // [n_out, n_in] fp32, bf16 or fp16 on the device
    float *b; // [n_out] device or NULL
    unsigned long long serial; // unique per layer ever created: caches keyed by it never see a reused address
};

// Records the first failure of an operation (ops return void; sync() reports it).
void cu_note(cn_exec *ex, cudaError_t e, const char *where);
// While recording a graph: the recording will be discarded, for this reason.
void capture_doom(cn_exec *ex, const char *what, const char *detail);
#define CU_NOTE(ex, expr, where) cu_note((ex), (expr), (where))

// ---- per-operation profile (profile.cu; CANARY_CUDA_PROFILE) ---------------------------------
// Each operation opens a cu_prof_scope after bind(): with the profile off it costs one branch.
typedef enum cu_op {
    CU_OP_LINEAR, CU_OP_LAYER_NORM, CU_OP_GLU_MASK, CU_OP_DWCONV1D, CU_OP_CONV2D_S2, CU_OP_MASK_TIME,
    CU_OP_REL_ATTENTION, CU_OP_ATTENTION, CU_OP_EMBED, CU_OP_LOG_SOFTMAX, CU_OP_TOPK, CU_OP_TOPK_HOST, CU_OP_COPY,
    CU_OP_COPY_2D, CU_OP_UPLOAD, CU_OP_DOWNLOAD, CU_OP_ALLOC, CU_OP_SYNC, CU_OP_GRAPH_LAUNCH, CU_OP_FFN, CU_OP_TRANSPOSE, CU_OP_LOG_MEL, CU_OP_CONV2D_S2_PAIR, CU_OP_COUNT
} cu_op;
struct cu_prof *cu_prof_create(void); // NULL unless CANARY_CUDA_PROFILE is set (and not "0")
void cu_prof_destroy(cn_exec *ex);    // resolves, reports, frees (the stream must be idle)
int cu_prof_begin(cn_exec *ex, cu_op op, long a, long b, long c, long d, long e, double *t0);
void cu_prof_end(cn_exec *ex, cu_op op, int key, double t0);
void cu_prof_before_wait(cn_exec *ex); // an op about to wait for its stream: its GPU part ends here
struct cu_prof_scope {
    cn_exec *ex;
    cu_op op;
    int key = -1;
    double t0 = 0;
    cu_prof_scope(cn_exec *e, cu_op o, long a = 0, long b = 0, long c = 0, long d = 0, long f = 0)
        : ex(e->prof ? e : nullptr), op(o) {
        if (ex)
            key = cu_prof_begin(ex, op, a, b, c, d, f, &t0);
    }
    ~cu_prof_scope() {
        if (ex)
            cu_prof_end(ex, op, key, t0);
    }
};
#define CU_PROF(ex, ...) cu_prof_scope cu_prof_scope_((ex), __VA_ARGS__)

// ---- kernel launchers (kernels.cu); all on stream `st` ---------------------------------------
void cu_f32_to_half(cudaStream_t st, const float *x, int ldx, int rows, int cols, void *out, bool bf16);
void cu_scale(cudaStream_t st, const float *x, float alpha, size_t n, float *y);
void cu_bias_act(cudaStream_t st, float *y, int ldy, int rows, int cols, const float *b, cn_act act, bool accumulate,
                 float alpha);
// log_mel's pieces (backend.cu has the sequence): frames [n*T, win] of the pre-emphasized,
// windowed signal; power [rows, n_bins] from DFT rows [re | im]; log, normalization and padding in
// place over out [n, cols, n_mels].
// frames/spec in double (dbl) or float.
void cu_mel_frames(cudaStream_t st, const float *pcm, int lpad, const int *lens, int n, int T, int hop, int n_fft,
                   int off, int win, const double *window, double preemph, bool v25, bool own, void *frames,
                   bool dbl);
void cu_mel_power(cudaStream_t st, const void *spec, size_t rows, int n_bins, double mag_power, float *power, bool dbl);
void cu_mel_log_norm(cudaStream_t st, float *out, int n, int T, int cols, int n_mels, const int *valid, bool do_log,
                     bool clamp, double guard, bool normalize, double std_eps, float pad_value);
// y[b] [y_rows, rows] = x[b] [rows, cols] transposed, rows past cols zeroed (nn/backend.h).
void cu_transpose(cudaStream_t st, const float *x, float *y, int n, int rows, int cols, int y_rows);
// h = act(h + b) in place over a bf16 (or fp16) matrix [rows, cols] (row stride ldh), in fp32 math.
void cu_bias_act_half(cudaStream_t st, void *h, int ldh, int rows, int cols, const float *b, cn_act act, bool bf16);
void cu_layer_norm(cudaStream_t st, const float *x, float *y, int rows, int d, const float *g, const float *b,
                   float eps);
void cu_glu_mask(cudaStream_t st, const float *x, float *y, int n_seq, int t, int d, const int *valid);
void cu_dwconv1d(cudaStream_t st, const float *x, float *y, int n_seq, int t, int d, const float *w, const float *b,
                 int k, cn_act act);
void cu_conv2d_s2(cudaStream_t st, const float *x, float *y, int n_seq, int t, int f, int c_in, int c, const float *w,
                  const float *b, const int *valid, cn_act act);
void cu_conv2d_s2_pair(cudaStream_t st, const float *x, float *y, int n_seq, int t, int f, int c, const float *w1,
                       const float *b1, const float *w2, const float *b2, const int *valid0, const int *valid1);
void cu_mask_time(cudaStream_t st, float *x, int n_seq, int t, size_t row, const int *valid);
// Rel-pos attention pieces: the bias terms ku [h, s, t] = u·k and vp [h, ldp] = v·pos (k rows ld
// apart, pos rows d apart, head h at column h*dk) ...
void cu_rel_bias_dots(cudaStream_t st, const float *k, int ld, const float *u, const float *pos, int d,
                      const float *bv, int n_seq, int t, int h, int dk, float *ku, float *vp, int ldp);
// ... and in place over ac [h*s, t, t] (rows ldt apart): add ku, rel-shifted bd [h, s*t, 2t-1] (rows
// ldp apart) and vp, scale, mask, softmax.
void cu_rel_softmax(cudaStream_t st, float *ac, int ldt, const float *bd, int ldp, const float *ku, const float *vp,
                    int n_seq, int t, int h, float scale, const int *valid);
void cu_attention(cudaStream_t st, const cn_attn_args *a, const int *kv_block, const int *kv_valid,
                  float *scores_global);
int cu_attention_smem_keys(void); // the largest lk the shared-memory variant takes
void cu_embed(cudaStream_t st, const float *table, const float *pos, const int *ids, const int *positions, int n,
              int d, float *out);
void cu_log_softmax(cudaStream_t st, float *x, int rows, int n);
void cu_topk(cudaStream_t st, const float *x, int rows, int n, int k, float *vals, int *idx);
// dst/src device buffers, pitches and width in bytes; false (nothing queued) unless all are
// multiples of 4.
bool cu_copy_2d_words(cudaStream_t st, void *dst, size_t dst_pitch, const void *src, size_t src_pitch, size_t width,
                      size_t rows);
void cu_convert_weights(cudaStream_t st, const float *w, size_t n, void *out, cn_precision prec);

#endif

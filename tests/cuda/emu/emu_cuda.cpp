// The CPU stand-in declared in emu_cuda.h. Kernel threads are fibers (ucontext) of one OS thread:
// each runs until it reaches __syncthreads (all of the block's live threads must arrive) or a warp
// shuffle (the warp's 32 lanes must arrive), so barrier-synchronised code runs as on a GPU and a
// missing arrival is reported as a deadlock instead of hanging.
#include <map>
#include <mutex>
#include <ucontext.h>
#include <vector>

#include "emu_cuda.h"

thread_local emu_idx threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

namespace {
enum fstate { RUN, AT_BLOCK, AT_WARP, DONE };
struct fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    fstate st;
};
std::vector<fiber> g_fibers;
ucontext_t g_sched;
int g_cur;
const std::function<void()> *g_body;
std::vector<char> g_smem;
float g_warp_buf[32][32];

void fiber_main() {
    (*g_body)();
    g_fibers[g_cur].st = DONE;
    swapcontext(&g_fibers[g_cur].ctx, &g_sched);
}

void wait_as(fstate s) {
    g_fibers[g_cur].st = s;
    swapcontext(&g_fibers[g_cur].ctx, &g_sched);
}
} // namespace

void __syncthreads() { wait_as(AT_BLOCK); }

float __shfl_xor_sync(unsigned, float v, int o) {
    int w = (int)threadIdx.x >> 5, l = (int)threadIdx.x & 31;
    g_warp_buf[w][l] = v;
    wait_as(AT_WARP);
    float r = g_warp_buf[w][l ^ o];
    wait_as(AT_WARP);
    return r;
}

void *emu_dynamic_smem() { return g_smem.data(); }

void emu_run(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    int nt = (int)(block.x * block.y * block.z);
    if (nt % 32 || nt > 1024) {
        fprintf(stderr, "emu: block of %d threads\n", nt);
        abort();
    }
    g_smem.assign(smem + 16, 0);
    g_body = &body;
    g_fibers.resize((size_t)nt);
    blockDim = block;
    gridDim = grid;
    for (unsigned by = 0; by < grid.y; by++)
        for (unsigned bx = 0; bx < grid.x; bx++) {
            blockIdx = {bx, by, 0};
            for (int t = 0; t < nt; t++) {
                fiber &f = g_fibers[(size_t)t];
                f.stack.resize(256 << 10);
                getcontext(&f.ctx);
                f.ctx.uc_stack.ss_sp = f.stack.data();
                f.ctx.uc_stack.ss_size = f.stack.size();
                f.ctx.uc_link = nullptr;
                makecontext(&f.ctx, fiber_main, 0);
                f.st = RUN;
            }
            for (;;) {
                for (int t = 0; t < nt; t++)
                    if (g_fibers[(size_t)t].st == RUN) {
                        g_cur = t;
                        threadIdx = {(unsigned)t, 0, 0};
                        swapcontext(&g_sched, &g_fibers[(size_t)t].ctx);
                    }
                int done = 0, at_block = 0;
                bool released = false;
                for (int w = 0; w < nt / 32; w++) { // a warp whose 32 lanes all wait at a shuffle
                    int n = 0;
                    for (int l = 0; l < 32; l++)
                        n += g_fibers[(size_t)(w * 32 + l)].st == AT_WARP;
                    if (n == 32) {
                        for (int l = 0; l < 32; l++)
                            g_fibers[(size_t)(w * 32 + l)].st = RUN;
                        released = true;
                    }
                }
                if (released)
                    continue;
                for (auto &f : g_fibers) {
                    done += f.st == DONE;
                    at_block += f.st == AT_BLOCK;
                }
                if (done == nt)
                    break;
                if (at_block + done == nt && at_block > 0) {
                    for (auto &f : g_fibers)
                        if (f.st == AT_BLOCK)
                            f.st = RUN;
                    continue;
                }
                fprintf(stderr, "emu: deadlock in block (%u,%u): %d done, %d at __syncthreads, rest at shuffles\n",
                        bx, by, done, at_block);
                abort();
            }
        }
}

// ---- runtime ------------------------------------------------------------------------------------
namespace {
std::mutex g_mem_mu;
std::map<uintptr_t, size_t> g_allocs; // device allocations: start -> size
}

const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated CUDA error"; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->major = 9;
    p->totalGlobalMem = (size_t)16 << 30;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p)
        return cudaErrorMemoryAllocation;
    memset(*p, 0xa5, n); // device memory is not zeroed: the backend must zero what it promises
    std::lock_guard<std::mutex> g(g_mem_mu);
    g_allocs[(uintptr_t)*p] = n ? n : 1;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p)
        return cudaSuccess;
    std::lock_guard<std::mutex> g(g_mem_mu);
    g_allocs.erase((uintptr_t)p);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind,
                              cudaStream_t) {
    if (w > dp || w > sp)
        return cudaErrorInvalidValue;
    for (size_t r = 0; r < h; r++)
        memmove((char *)d + r * dp, (const char *)s + r * sp, w);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    *s = (cudaStream_t)1;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    std::lock_guard<std::mutex> g(g_mem_mu);
    a->type = cudaMemoryTypeUnregistered;
    a->device = -1;
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it != g_allocs.begin()) {
        --it;
        if ((uintptr_t)p < it->first + it->second) {
            a->type = cudaMemoryTypeDevice;
            a->device = 0;
        }
    }
    return cudaSuccess;
}

// ---- GEMMs --------------------------------------------------------------------------------------
namespace {
float load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F)
        return ((const float *)p)[i];
    uint16_t b = ((const uint16_t *)p)[i];
    if (t == CUDA_R_16BF) {
        uint32_t u = (uint32_t)b << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    _Float16 h;
    memcpy(&h, &b, 2);
    return (float)h;
}
// C (m x n, ldc, fp32) = alpha op(A) op(B) + beta C, column-major as cuBLAS defines it
void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const void *A, cudaDataType_t at, long lda,
          const void *B, cudaDataType_t bt, long ldb, float beta, float *C, long ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float a = ta ? load(A, at, (size_t)(p + i * lda)) : load(A, at, (size_t)(i + p * lda));
                float b = tb ? load(B, bt, (size_t)(j + p * ldb)) : load(B, bt, (size_t)(p + j * ldb));
                s += (double)a * b;
            }
            float *c = C + i + (size_t)j * ldc;
            *c = (float)(alpha * s + (beta != 0.0f ? beta * *c : 0.0f));
        }
}
size_t esize(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
} // namespace

struct emu_blas {
    int unused;
};
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new emu_blas();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                            cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t, cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F || at != bt)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    gemm(ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb,
         *(const float *)beta, (float *)C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType_t at, int lda,
                                          long long sa, const void *B, cudaDataType_t bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType_t ct, int ldc, long long sc,
                                          int count, cublasComputeType_t, cublasGemmAlgo_t) {
    if (ct != CUDA_R_32F || at != bt)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    for (int b = 0; b < count; b++)
        gemm(ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, *(const float *)alpha,
             (const char *)A + (size_t)b * sa * esize(at), at, lda, (const char *)B + (size_t)b * sb * esize(bt), bt,
             ldb, *(const float *)beta, (float *)C + (size_t)b * sc, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

// ---- cuBLASLt (the documented semantics: D = epilogue(alpha op(A) op(B) + beta C + bias)) -------
struct emu_lt {
    int unused;
};
struct emu_desc {
    bool ta = false, tb = false;
    int epi = CUBLASLT_EPILOGUE_DEFAULT;
    const float *bias = nullptr;
};
struct emu_layout {
    cudaDataType_t t;
    uint64_t rows, cols;
    int64_t ld;
};
struct emu_pref {
    int unused;
};
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new emu_lt();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t, cudaDataType_t) {
    *d = new emu_desc();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v,
                                              size_t n) {
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA: d->ta = *(const int *)v == CUBLAS_OP_T; break;
    case CUBLASLT_MATMUL_DESC_TRANSB: d->tb = *(const int *)v == CUBLAS_OP_T; break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: d->epi = *(const int *)v; break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: memcpy(&d->bias, v, n); break;
    default: break;
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (ld < (int64_t)rows)
        return CUBLAS_STATUS_INVALID_VALUE;
    *l = new emu_layout{t, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new emu_pref();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void *, size_t) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t, int,
                                              cublasLtMatmulHeuristicResult_t *res, int *n) {
    // shapes must agree as cuBLASLt checks them
    uint64_t m = d->ta ? a->cols : a->rows, k = d->ta ? a->rows : a->cols;
    uint64_t kb = d->tb ? b->cols : b->rows, nn = d->tb ? b->rows : b->cols;
    *n = 0;
    if (k != kb || c->rows != m || c->cols != nn || dl->rows != m || dl->cols != nn)
        return CUBLAS_STATUS_INVALID_VALUE;
    memset(res, 0, sizeof *res);
    *n = 1;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t) {
    if (C != D || lc->ld != ld->ld)
        return CUBLAS_STATUS_NOT_SUPPORTED; // the backend only computes in place
    int m = (int)(d->ta ? la->cols : la->rows), k = (int)(d->ta ? la->rows : la->cols);
    int n = (int)(d->tb ? lb->rows : lb->cols);
    float *out = (float *)D;
    gemm(d->ta, d->tb, m, n, k, *(const float *)alpha, A, la->t, la->ld, B, lb->t, lb->ld, *(const float *)beta, out,
         ld->ld);
    bool bias = d->epi == CUBLASLT_EPILOGUE_BIAS || d->epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    bool relu = d->epi == CUBLASLT_EPILOGUE_RELU || d->epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float *v = out + i + (size_t)j * ld->ld;
            if (bias)
                *v += d->bias[i];
            if (relu && *v < 0)
                *v = 0;
        }
    return CUBLAS_STATUS_SUCCESS;
}

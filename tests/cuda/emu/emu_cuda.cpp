// The CPU stand-in declared in emu_cuda.h. Kernel threads are fibers of one OS thread (launches
// from several host threads take turns):
// each runs until it reaches __syncthreads (all of the block's live threads must arrive) or a warp
// shuffle (the warp's 32 lanes must arrive), so barrier-synchronised code runs as on a GPU and a
// missing arrival is reported as a deadlock instead of hanging.
#include <iterator>
#include <atomic>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <ucontext.h>
#include <vector>

#include "emu_cuda.h"

// Plain globals: kernels run on one host thread at a time (as the fibers' state below), and a
// dlopen'ed library's thread_local costs a __tls_get_addr call per access (intercepted by ASan).
emu_idx threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {
enum fstate { RUN, AT_BLOCK, AT_WARP, DONE };

// Switching fibers: on x86-64 a few instructions that swap the callee-saved registers and the
// stack pointer. glibc's swapcontext makes a sigprocmask system call per switch, and under ASan
// its interceptor clears the shadow of the whole fiber stack each time: together they made the
// emulation ~10x slower, too slow to run the whole model in CI. Elsewhere ucontext is kept.
#if defined(__x86_64__)
extern "C" void emu_switch(void **save_sp, void *load_sp);
asm(".text\n"
    ".globl emu_switch\n"
    ".hidden emu_switch\n"
    ".type emu_switch,@function\n"
    "emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_switch, .-emu_switch\n");
struct fiber {
    void *sp;
    char *stack;
    fstate st;
};
void *g_sched_sp;
#else
struct fiber {
    ucontext_t ctx;
    char *stack;
    fstate st;
};
ucontext_t g_sched;
#endif
const size_t FIBER_STACK = 256 << 10;
std::vector<fiber> g_fibers;
struct free_stacks { // at exit or dlclose
    ~free_stacks() {
        for (auto &f : g_fibers)
            free(f.stack);
    }
} g_free_stacks;
int g_cur;
const std::function<void()> *g_body;
std::vector<char> g_smem;
float g_warp_buf[2][32][32];
unsigned char g_shfl_parity[1024]; // per thread of the block: which of the two buffers is next

void to_scheduler() {
#if defined(__x86_64__)
    emu_switch(&g_fibers[(size_t)g_cur].sp, g_sched_sp);
#else
    swapcontext(&g_fibers[(size_t)g_cur].ctx, &g_sched);
#endif
}

void to_fiber(int t) {
#if defined(__x86_64__)
    emu_switch(&g_sched_sp, g_fibers[(size_t)t].sp);
#else
    swapcontext(&g_sched, &g_fibers[(size_t)t].ctx);
#endif
}

[[noreturn]] void fiber_main() {
    (*g_body)();
    g_fibers[(size_t)g_cur].st = DONE;
    to_scheduler();
    abort(); // a finished fiber is restarted from fiber_main, never resumed
}

// A fresh start of fiber f at fiber_main.
void fiber_start(fiber &f, int t) {
    g_shfl_parity[t] = 0;
    if (!f.stack && !(f.stack = (char *)malloc(FIBER_STACK))) {
        fprintf(stderr, "emu: out of memory for fiber stacks\n");
        abort();
    }
#if defined(__x86_64__)
    // [top-8] unused, [top-16] the return address emu_switch's ret jumps to (16-byte aligned, so
    // fiber_main starts with the ABI's alignment), below it the six registers emu_switch pops.
    uintptr_t top = ((uintptr_t)f.stack + FIBER_STACK) & ~(uintptr_t)15;
    void **sp = (void **)(top - 16);
    *sp = (void *)fiber_main;
    for (int i = 0; i < 6; i++)
        *--sp = nullptr;
    f.sp = sp;
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = FIBER_STACK;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
#endif
    f.st = RUN;
}

void wait_as(fstate s) {
    g_fibers[(size_t)g_cur].st = s;
    to_scheduler();
}
} // namespace

void __syncthreads() { wait_as(AT_BLOCK); }

// Two buffers used alternately: a lane that has read its partner's value may write its next
// shuffle's value at once, since no lane can reach the shuffle after that before every lane has
// arrived at the next one (so has read this one). One meeting per shuffle instead of two.
float __shfl_xor_sync(unsigned, float v, int o) {
    int t = (int)threadIdx.x, w = t >> 5, l = t & 31, p = g_shfl_parity[t];
    g_warp_buf[p][w][l] = v;
    wait_as(AT_WARP);
    g_shfl_parity[t] = (unsigned char)(p ^ 1);
    return g_warp_buf[p][w][l ^ o];
}

void *emu_dynamic_smem() { return g_smem.data(); }

void emu_run(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    static std::mutex launch_mu; // the fibers, shared memory and indices below are process-wide
    std::lock_guard<std::mutex> launch(launch_mu);
    int nt = (int)(block.x * block.y * block.z);
    if (nt % 32 || nt > 1024) {
        fprintf(stderr, "emu: block of %d threads\n", nt);
        abort();
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 ||
        block.y != 1 || block.z != 1) {
        fprintf(stderr, "emu: invalid launch: grid %u x %u x %u, block %u x %u x %u\n", grid.x, grid.y, grid.z,
                block.x, block.y, block.z);
        abort(); // a GPU refuses such a launch (cudaErrorInvalidConfiguration)
    }
    g_smem.assign(smem + 16, 0);
    g_body = &body;
    if (g_fibers.size() < (size_t)nt)
        g_fibers.resize((size_t)nt, fiber{});
    blockDim = block;
    gridDim = grid;
    for (unsigned long long yz = 0; yz < (unsigned long long)grid.y * grid.z; yz++) // blocks in y, then z
        for (unsigned bx = 0; bx < grid.x; bx++) {
            blockIdx = {bx, (unsigned)(yz % grid.y), (unsigned)(yz / grid.y)};
            for (int t = 0; t < nt; t++)
                fiber_start(g_fibers[(size_t)t], t);
            for (;;) {
                // Warp by warp: its lanes run until each waits at __syncthreads or is done; a warp
                // whose 32 lanes all wait at a shuffle continues at once (warps are independent
                // between barriers, and this keeps a shuffle's cost to its own warp).
                for (int w = 0; w < nt / 32; w++)
                    for (;;) {
                        int at_warp = 0;
                        for (int t = w * 32; t < w * 32 + 32; t++) {
                            if (g_fibers[(size_t)t].st == RUN) {
                                g_cur = t;
                                threadIdx = {(unsigned)t, 0, 0};
                                to_fiber(t);
                            }
                            at_warp += g_fibers[(size_t)t].st == AT_WARP;
                        }
                        if (at_warp != 32)
                            break;
                        for (int t = w * 32; t < w * 32 + 32; t++)
                            g_fibers[(size_t)t].st = RUN;
                    }
                int done = 0, at_block = 0;
                for (int t = 0; t < nt; t++) {
                    done += g_fibers[(size_t)t].st == DONE;
                    at_block += g_fibers[(size_t)t].st == AT_BLOCK;
                }
                if (done == nt)
                    break;
                if (at_block + done == nt && at_block > 0) {
                    for (int t = 0; t < nt; t++)
                        if (g_fibers[(size_t)t].st == AT_BLOCK)
                            g_fibers[(size_t)t].st = RUN;
                    continue;
                }
                fprintf(stderr, "emu: deadlock in block (%u,%u,%u): %d done, %d at __syncthreads, rest at shuffles\n",
                        bx, blockIdx.y, blockIdx.z, done, at_block);
                abort();
            }
        }
}

// ---- runtime ------------------------------------------------------------------------------------
namespace {
struct emu_alloc {
    size_t size;
    int device;
};
std::mutex g_mem_mu;
std::map<uintptr_t, emu_alloc> g_allocs; // device allocations by start address
thread_local int g_device;               // the calling thread's current device (cudaSetDevice)
thread_local cudaError_t g_last_error;   // for cudaGetLastError, as launch failures are reported

std::atomic<long> g_launches[8]; // kernel launches per device, for CANARY_EMU_LOST_DEVICE

int device_count() {
    const char *e = getenv("CANARY_EMU_DEVICES");
    int n = e ? atoi(e) : 1;
    return n >= 1 && n <= 8 ? n : 1;
}
} // namespace

bool emu_device_lost(bool launch) {
    static int lost_dev = -1;
    static long lost_from = 0;
    static std::once_flag once;
    std::call_once(once, [] {
        const char *e = getenv("CANARY_EMU_LOST_DEVICE");
        if (e && sscanf(e, "%d:%ld", &lost_dev, &lost_from) != 2)
            lost_dev = -1;
    });
    if (g_device != lost_dev || g_device < 0 || g_device >= 8)
        return false;
    long n = launch ? ++g_launches[g_device] : g_launches[g_device].load();
    if (n < lost_from)
        return false;
    g_last_error = cudaErrorLaunchFailure;
    return true;
}
#define LOST_RETURN(value)                                                                                        \
    do {                                                                                                          \
        if (emu_device_lost(false))                                                                               \
            return value;                                                                                         \
    } while (0)

struct emu_stream {
    int device;
    std::vector<std::pair<std::function<void()>, const void *>> *rec; // recording: the work kept for the graph
    bool rec_invalid;                          // something the graph cannot hold was queued
    bool blocking;                             // created without cudaStreamNonBlocking: waits for the legacy stream
};
struct emu_graph {
    std::vector<std::pair<std::function<void()>, const void *>> work; // (work, kind)
};
namespace {
std::map<uintptr_t, size_t> g_pinned; // cudaHostAlloc'ed ranges (guarded by g_mem_mu)

// Host memory a recorded copy may read or write when the graph runs: device or pinned memory only
// (a pageable source cannot be captured, as on a GPU).
bool capturable(const void *p) {
    std::lock_guard<std::mutex> g(g_mem_mu);
    auto d = g_allocs.upper_bound((uintptr_t)p);
    if (d != g_allocs.begin() && (uintptr_t)p < std::prev(d)->first + std::prev(d)->second.size)
        return true;
    auto h = g_pinned.upper_bound((uintptr_t)p);
    return h != g_pinned.begin() && (uintptr_t)p < std::prev(h)->first + std::prev(h)->second;
}
// An operation that would wait for a recording stream, or read pageable memory into it,
// invalidates the recording (cudaStreamEndCapture then fails) and fails itself.
cudaError_t invalidate(emu_stream *s) {
    s->rec_invalid = true;
    return cudaErrorStreamCaptureUnsupported;
}
} // namespace

// ---- the legacy default stream --------------------------------------------------------------------
// cudaMemcpy from pageable host memory to the device, and cudaMemset, run on the legacy default
// stream and may return before the device memory holds the data (CUDA's "API synchronization
// behavior": the function returns once the pageable buffer has been copied to staging memory, "but
// the DMA to final destination may not have completed"). Streams created with cudaStreamNonBlocking
// (all of the backend's) do not wait for the legacy stream. The emulation keeps such work pending
// until something that does wait for it: cudaStreamSynchronize of the legacy stream or of a blocking
// stream, cudaFree and cudaFreeHost (which synchronise the device), a cudaMemcpy that returns only
// when done (device to host, from pinned memory), or work queued on the legacy stream or a blocking
// stream. A kernel on a non-blocking stream reads meanwhile what the memory held before: code that
// relies on an order CUDA does not promise fails here every time instead of once in a while on a GPU
// (an H200 once converted a layer's weights to bf16 before their upload had landed).
namespace {
std::mutex g_legacy_mu;
std::vector<std::function<void()>> g_legacy[8]; // per device, in queue order

void legacy_defer(std::function<void()> work) {
    std::lock_guard<std::mutex> g(g_legacy_mu);
    int d = g_device >= 0 && g_device < 8 ? g_device : 0;
    g_legacy[d].push_back(std::move(work));
}
void legacy_flush(int device) {
    std::vector<std::function<void()>> run;
    {
        std::lock_guard<std::mutex> g(g_legacy_mu);
        int d = device >= 0 && device < 8 ? device : 0;
        run.swap(g_legacy[d]);
    }
    for (auto &w : run)
        w();
}
// Work queued on `stream` waits for the legacy stream when it is the legacy stream or a blocking one.
void legacy_order(void *stream) {
    emu_stream *s = (emu_stream *)stream;
    if (!s)
        legacy_flush(g_device);
    else if (s->blocking)
        legacy_flush(s->device);
}
} // namespace

// ---- pinned host memory read by copies in flight ----------------------------------------------------
// cudaMemcpyAsync from pinned host memory returns at once and the copy reads the host buffer when
// the stream gets to it: writing the buffer before the stream has been synchronised races with the
// copy. The emulation copies at once (stream order is kept) and remembers what it read; when the
// stream is next waited for (cudaStreamSynchronize, or cudaFree/cudaFreeHost, which wait for the
// device) it checks that the buffer still holds those bytes and stops the process if not.
namespace {
struct pinned_read {
    const void *src;
    std::vector<unsigned char> bytes;
};
std::mutex g_reads_mu;
std::map<void *, std::vector<pinned_read>> g_reads; // by stream
thread_local void *g_graph_stream;                  // the stream a graph being launched runs on

void note_pinned_read(void *stream, const void *s, size_t n) {
    std::lock_guard<std::mutex> g(g_reads_mu);
    g_reads[stream].push_back({s, std::vector<unsigned char>((const unsigned char *)s, (const unsigned char *)s + n)});
}
// all: every stream's (a device-wide wait); otherwise `stream`'s
void check_pinned_reads(void *stream, bool all) {
    std::lock_guard<std::mutex> g(g_reads_mu);
    for (auto it = g_reads.begin(); it != g_reads.end();) {
        if (!all && it->first != stream) {
            ++it;
            continue;
        }
        for (auto &r : it->second)
            if (memcmp(r.src, r.bytes.data(), r.bytes.size()) != 0) {
                fprintf(stderr,
                        "emu: pinned host memory at %p (%zu bytes) was written while an asynchronous copy from it "
                        "was still queued on stream %p: synchronise the stream before reusing the buffer\n",
                        r.src, r.bytes.size(), it->first);
                abort();
            }
        it = g_reads.erase(it);
    }
}
} // namespace

const char K_COPY[] = "memcpy", K_COPY2D[] = "memcpy2d", K_SET[] = "memset", K_GEMM[] = "gemm";
bool emu_record(void *stream, const std::function<void()> &work, const void *kind) {
    emu_stream *s = (emu_stream *)stream;
    if (!s || !s->rec)
        legacy_order(stream); // about to run now: after the legacy stream's work where it waits for it
    if (!s || !s->rec)
        return false;
    s->rec->emplace_back(work, kind);
    return true;
}

bool emu_stream_ok(void *stream, const char *what) {
    int dev = stream ? ((emu_stream *)stream)->device : g_device; // the legacy stream: current device
    if (dev == g_device)
        return true;
    fprintf(stderr, "emu: %s on a stream of device %d while device %d is current (cudaSetDevice missing)\n", what,
            dev, g_device);
    g_last_error = cudaErrorInvalidResourceHandle;
    return false;
}

const char *cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess                      ? "no error"
           : e == cudaErrorInvalidDevice         ? "invalid device ordinal"
           : e == cudaErrorInvalidResourceHandle ? "invalid resource handle"
           : e == cudaErrorLaunchFailure         ? "unspecified launch failure"
           : e == cudaErrorMemoryAllocation      ? "out of memory"
                                                 : "emulated CUDA error";
}
cudaError_t cudaGetLastError() {
    LOST_RETURN(cudaErrorLaunchFailure); // sticky, as a device's context after such an error
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = device_count();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= device_count())
        return cudaErrorInvalidDevice;
    g_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d < 0 || d >= device_count())
        return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation");
    p->major = 9;
    p->totalGlobalMem = (size_t)16 << 30;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d) {
    if (d < 0 || d >= device_count())
        return cudaErrorInvalidDevice;
    *v = a == cudaDevAttrSingleToDoublePrecisionPerfRatio ? 2 : 0; // an A100/H100-like part
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
namespace {
size_t g_dev_used[8]; // bytes cudaMalloc'ed per device (guarded by g_mem_mu)
// CANARY_EMU_MEM_MB=N: each device has N MiB (as a GPU that another process fills); beyond it
// cudaMalloc fails with cudaErrorMemoryAllocation
size_t device_mem_limit() {
    static const size_t mb = getenv("CANARY_EMU_MEM_MB") ? strtoull(getenv("CANARY_EMU_MEM_MB"), nullptr, 10) : 0;
    return mb << 20;
}
} // namespace
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    LOST_RETURN(cudaErrorLaunchFailure);
    std::lock_guard<std::mutex> g(g_mem_mu);
    size_t total = device_mem_limit() ? device_mem_limit() : (size_t)16 << 30;
    size_t used = g_device >= 0 && g_device < 8 ? g_dev_used[g_device] : 0;
    *total_bytes = total;
    *free_bytes = used < total ? total - used : 0;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n) {
    LOST_RETURN(cudaErrorLaunchFailure);
    size_t size = n ? n : 1;
    {
        std::lock_guard<std::mutex> g(g_mem_mu);
        size_t limit = device_mem_limit();
        if (limit && g_device >= 0 && g_device < 8 && g_dev_used[g_device] + size > limit)
            return cudaErrorMemoryAllocation;
    }
    *p = malloc(size);
    if (!*p)
        return cudaErrorMemoryAllocation;
    // device memory is not zeroed: the backend must zero what it promises. CANARY_EMU_FILL=0xNN
    // picks the byte (0xff: NaN in fp32 and fp16, as stale memory on a real card can read)
    static int fill = -1;
    if (fill < 0) {
        const char *f = getenv("CANARY_EMU_FILL");
        fill = f && *f ? (int)(strtol(f, NULL, 0) & 0xff) : 0xa5;
    }
    memset(*p, fill, n);
    std::lock_guard<std::mutex> g(g_mem_mu);
    g_allocs[(uintptr_t)*p] = {size, g_device};
    if (g_device >= 0 && g_device < 8)
        g_dev_used[g_device] += size;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p)
        return cudaSuccess;
    {
        int dev = g_device;
        {
            std::lock_guard<std::mutex> g(g_mem_mu);
            auto a = g_allocs.find((uintptr_t)p);
            if (a != g_allocs.end())
                dev = a->second.device;
        }
        legacy_flush(dev); // cudaFree synchronises the device
        check_pinned_reads(nullptr, true);
    }
    std::lock_guard<std::mutex> g(g_mem_mu);
    auto a = g_allocs.find((uintptr_t)p);
    if (a != g_allocs.end() && a->second.device >= 0 && a->second.device < 8)
        g_dev_used[a->second.device] -= a->second.size;
    g_allocs.erase((uintptr_t)p);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    legacy_flush(g_device);
    check_pinned_reads(nullptr, true);
    {
        std::lock_guard<std::mutex> g(g_mem_mu);
        g_pinned.erase((uintptr_t)p);
    }
    free(p);
    return cudaSuccess;
}
namespace {
bool is_device_ptr(const void *p) {
    std::lock_guard<std::mutex> g(g_mem_mu);
    auto d = g_allocs.upper_bound((uintptr_t)p);
    return d != g_allocs.begin() && (uintptr_t)p < std::prev(d)->first + std::prev(d)->second.size;
}
bool is_pinned_ptr(const void *p) {
    std::lock_guard<std::mutex> g(g_mem_mu);
    auto h = g_pinned.upper_bound((uintptr_t)p);
    return h != g_pinned.begin() && (uintptr_t)p < std::prev(h)->first + std::prev(h)->second;
}
} // namespace
// On the legacy stream: from pageable host memory to the device it returns once the source is
// staged, the device memory written later (see "the legacy default stream"); otherwise it returns
// when the copy is done, after the legacy stream's earlier work.
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    LOST_RETURN(cudaErrorLaunchFailure);
    if (n && is_device_ptr(d) && !is_device_ptr(s) && !is_pinned_ptr(s)) {
        auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char *)s,
                                                                   (const unsigned char *)s + n);
        legacy_defer([=] { memcpy(d, staged->data(), n); });
        return cudaSuccess;
    }
    legacy_flush(g_device);
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t st) {
    LOST_RETURN(cudaErrorLaunchFailure);
    if (!emu_stream_ok(st, "cudaMemcpyAsync"))
        return cudaErrorInvalidResourceHandle;
    emu_stream *es = (emu_stream *)st;
    if (!es || !es->rec)
        legacy_order(st);
    if (es && es->rec) {
        if (!capturable(d) || !capturable(s))
            return invalidate(es);
        bool pinned = n && is_pinned_ptr(s);
        es->rec->emplace_back(
            [=] {
                if (pinned)
                    note_pinned_read(g_graph_stream, s, n);
                memmove(d, s, n);
            },
            K_COPY);
        return cudaSuccess;
    }
    if (n && is_pinned_ptr(s))
        note_pinned_read(st, s, n);
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind,
                              cudaStream_t st) {
    LOST_RETURN(cudaErrorLaunchFailure);
    if (!emu_stream_ok(st, "cudaMemcpy2DAsync"))
        return cudaErrorInvalidResourceHandle;
    if (w > dp || w > sp)
        return cudaErrorInvalidValue;
    auto run = [=] {
        for (size_t r = 0; r < h; r++)
            memmove((char *)d + r * dp, (const char *)s + r * sp, w);
    };
    emu_stream *es = (emu_stream *)st;
    if (es && es->rec && (!capturable(d) || !capturable(s)))
        return invalidate(es);
    if (!emu_record(st, run, K_COPY2D))
        run();
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st) {
    LOST_RETURN(cudaErrorLaunchFailure);
    if (!emu_stream_ok(st, "cudaMemsetAsync"))
        return cudaErrorInvalidResourceHandle;
    auto run = [=] { memset(d, v, n); };
    if (!emu_record(st, run, K_SET))
        run();
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) { // the legacy stream: not recorded, not waited for
    LOST_RETURN(cudaErrorLaunchFailure);
    legacy_defer([=] { memset(d, v, n); });
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) {
    *p = malloc(n ? n : 1);
    if (!*p)
        return cudaErrorMemoryAllocation;
    std::lock_guard<std::mutex> g(g_mem_mu);
    g_pinned[(uintptr_t)*p] = n ? n : 1;
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new emu_stream{g_device, nullptr, false, !(flags & cudaStreamNonBlocking)};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s)
        delete ((emu_stream *)s)->rec;
    {
        std::lock_guard<std::mutex> g(g_reads_mu);
        g_reads.erase(s);
    }
    delete (emu_stream *)s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    LOST_RETURN(cudaErrorLaunchFailure);
    if (!emu_stream_ok(s, "cudaStreamSynchronize"))
        return cudaErrorInvalidResourceHandle;
    if (s && ((emu_stream *)s)->rec)
        return invalidate((emu_stream *)s);
    legacy_order(s); // the legacy stream, or a blocking one that waits for it
    check_pinned_reads(s, false);
    return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    emu_stream *es = (emu_stream *)s;
    if (!es || es->rec)
        return cudaErrorInvalidValue; // the legacy stream cannot record; no nested recordings
    es->rec = new std::vector<std::pair<std::function<void()>, const void *>>();
    es->rec_invalid = false;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    emu_stream *es = (emu_stream *)s;
    *g = nullptr;
    if (!es || !es->rec)
        return cudaErrorInvalidValue;
    auto *rec = es->rec;
    es->rec = nullptr;
    if (es->rec_invalid) {
        delete rec;
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = new emu_graph{std::move(*rec)};
    delete rec;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long) {
    *e = new emu_graph{g->work};
    return cudaSuccess;
}
// As on a GPU, an update needs the same topology (here: the same number of operations); their
// parameters (addresses, lengths) may change.
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t e, cudaGraph_t g, cudaGraphExecUpdateResultInfo *info) {
    if (info)
        info->result = 0;
    if (e->work.size() != g->work.size())
        return cudaErrorGraphExecUpdateFailure;
    for (size_t i = 0; i < g->work.size(); i++)
        if (e->work[i].second != g->work[i].second)
            return cudaErrorGraphExecUpdateFailure;
    e->work = g->work;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    LOST_RETURN(cudaErrorLaunchFailure);
    if (!emu_stream_ok(s, "cudaGraphLaunch"))
        return cudaErrorInvalidResourceHandle;
    g_graph_stream = s;
    for (auto &w : e->work)
        if (!emu_record(s, w.first, w.second))
            w.first();
    g_graph_stream = nullptr;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    std::lock_guard<std::mutex> g(g_mem_mu);
    a->type = cudaMemoryTypeUnregistered;
    a->device = -1;
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it != g_allocs.begin()) {
        --it;
        if ((uintptr_t)p < it->first + it->second.size) {
            a->type = cudaMemoryTypeDevice;
            a->device = it->second.device;
        }
    }
    return cudaSuccess;
}

struct emu_event {
    unsigned flags;
    bool recorded;
    double ms; // CLOCK_MONOTONIC when recorded
};
namespace {
std::atomic<long> g_event_records;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    *e = new emu_event{flags, false, 0};
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e)
        return g_last_error = cudaErrorInvalidResourceHandle;
    if (!emu_stream_ok(s, "cudaEventRecord"))
        return cudaErrorInvalidResourceHandle;
    static const long fail_at = getenv("CANARY_EMU_EVENT_FAIL") ? atol(getenv("CANARY_EMU_EVENT_FAIL")) : 0;
    if (++g_event_records == fail_at)
        return g_last_error = cudaErrorUnknown;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    e->ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    e->recorded = true;
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    // as CUDA: both recorded, both with timing
    if (!start || !end || !start->recorded || !end->recorded || (start->flags | end->flags) & cudaEventDisableTiming)
        return g_last_error = cudaErrorInvalidResourceHandle;
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

// ---- GEMMs --------------------------------------------------------------------------------------
namespace {
double load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F)
        return ((const float *)p)[i];
    if (t == CUDA_R_64F)
        return ((const double *)p)[i];
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
void store(void *p, cudaDataType_t t, size_t i, double v) {
    if (t == CUDA_R_32F) {
        ((float *)p)[i] = (float)v;
        return;
    }
    if (t == CUDA_R_64F) {
        ((double *)p)[i] = v;
        return;
    }
    uint16_t b;
    if (t == CUDA_R_16BF) {
        __nv_bfloat16 h = __float2bfloat16_rn((float)v);
        b = h.bits;
    } else {
        _Float16 h = (_Float16)(float)v;
        memcpy(&b, &h, 2);
    }
    ((uint16_t *)p)[i] = b;
}
// C (m x n, ldc, of type ct) = alpha op(A) op(B) + beta C, column-major as cuBLAS defines it; the
// sum in double, rounded once to ct (as a GPU rounds its fp32 accumulator once).
void gemm_t(bool ta, bool tb, int m, int n, int k, double alpha, const void *A, cudaDataType_t at, long lda,
            const void *B, cudaDataType_t bt, long ldb, double beta, void *C, cudaDataType_t ct, long ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double a = ta ? load(A, at, (size_t)(p + i * lda)) : load(A, at, (size_t)(i + p * lda));
                double b = tb ? load(B, bt, (size_t)(j + p * ldb)) : load(B, bt, (size_t)(p + j * ldb));
                s += a * b;
            }
            size_t ci = i + (size_t)j * ldc;
            // the accumulator rounded once to the output type (fp32 for a float C, as a GPU)
            double acc = alpha * s + (beta != 0.0 ? beta * load(C, ct, ci) : 0.0);
            store(C, ct, ci, ct == CUDA_R_64F ? acc : (double)(float)acc);
        }
}
void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const void *A, cudaDataType_t at, long lda,
          const void *B, cudaDataType_t bt, long ldb, float beta, float *C, long ldc) {
    gemm_t(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, CUDA_R_32F, ldc);
}
size_t esize(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
} // namespace

struct emu_blas {
    int device; // cuBLAS binds a handle to the device current at its creation
    cudaStream_t stream;
    unsigned char *ws = nullptr; // cublasSetWorkspace's buffer
    size_t ws_size = 0;
};
namespace {
// What a real card showed (docs/CUDA.md): cuBLAS's kernels leave partial sums in their workspace,
// and some cuBLASLt kernels read theirs as counters that must start at zero. The emulation does
// both, so a backend that shares the two workspaces or leaves one as allocated gets wrong results
// here too (NaN), not only on a GPU.
const size_t EMU_WS_CHECKED = 4096;
void blas_scribble(unsigned char *ws, size_t size) {
    if (ws)
        memset(ws, 0x5a, size < EMU_WS_CHECKED ? size : EMU_WS_CHECKED);
}
bool lt_workspace_clean(const unsigned char *ws, size_t size) {
    for (size_t i = 0; ws && i < size && i < EMU_WS_CHECKED; i++)
        if (ws[i])
            return false;
    return true;
}
} // namespace
namespace {
bool handle_ok(int device, const char *what) {
    if (device == g_device)
        return true;
    fprintf(stderr, "emu: %s with a handle of device %d while device %d is current (cudaSetDevice missing)\n", what,
            device, g_device);
    return false;
}
} // namespace
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new emu_blas{g_device, nullptr, nullptr, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (s && ((emu_stream *)s)->device != h->device)
        return CUBLAS_STATUS_INVALID_VALUE;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t size) {
    h->ws = (unsigned char *)ws;
    h->ws_size = size;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                            cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t comp, cublasGemmAlgo_t) {
    LOST_RETURN(CUBLAS_STATUS_EXECUTION_FAILED);
    if (!handle_ok(h->device, "cublasGemmEx"))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    if ((ct != CUDA_R_32F && ct != at) || at != bt || ((comp == CUBLAS_COMPUTE_64F) != (at == CUDA_R_64F)))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    // host scalars, read now: double for the fp64 compute type, else float
    double al = comp == CUBLAS_COMPUTE_64F ? *(const double *)alpha : *(const float *)alpha;
    double be = comp == CUBLAS_COMPUTE_64F ? *(const double *)beta : *(const float *)beta;
    unsigned char *ws = h->ws;
    size_t ws_size = h->ws_size;
    auto run = [=] {
        gemm_t(ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, al, A, at, lda, B, bt, ldb, be, C, ct, ldc);
        blas_scribble(ws, ws_size);
    };
    if (!emu_record(h->stream, run, K_GEMM))
        run();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType_t at, int lda,
                                          long long sa, const void *B, cudaDataType_t bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType_t ct, int ldc, long long sc,
                                          int count, cublasComputeType_t, cublasGemmAlgo_t) {
    LOST_RETURN(CUBLAS_STATUS_EXECUTION_FAILED);
    if (!handle_ok(h->device, "cublasGemmStridedBatchedEx"))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    if (ct != CUDA_R_32F || at != bt)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta;
    unsigned char *ws = h->ws;
    size_t ws_size = h->ws_size;
    auto run = [=] {
        for (int b = 0; b < count; b++)
            gemm(ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, al, (const char *)A + (size_t)b * sa * esize(at), at,
                 lda, (const char *)B + (size_t)b * sb * esize(bt), bt, ldb, be, (float *)C + (size_t)b * sc, ldc);
        blas_scribble(ws, ws_size);
    };
    if (!emu_record(h->stream, run, K_GEMM))
        run();
    return CUBLAS_STATUS_SUCCESS;
}

// ---- cuBLASLt (the documented semantics: D = epilogue(alpha op(A) op(B) + beta C + bias)) -------
struct emu_lt {
    int device;
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
    *h = new emu_lt{g_device};
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
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *, void *workspace, size_t ws_size, cudaStream_t st) {
    LOST_RETURN(CUBLAS_STATUS_EXECUTION_FAILED);
    if (!handle_ok(h->device, "cublasLtMatmul") || !emu_stream_ok(st, "cublasLtMatmul"))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    if (C != D || lc->ld != ld->ld)
        return CUBLAS_STATUS_NOT_SUPPORTED; // the backend only computes in place
    int m = (int)(d->ta ? la->cols : la->rows), k = (int)(d->ta ? la->rows : la->cols);
    int n = (int)(d->tb ? lb->rows : lb->cols);
    // everything read now, as cuBLASLt does (descriptors and host scalars may change after the call)
    float al = *(const float *)alpha, be = *(const float *)beta;
    bool ta = d->ta, tb = d->tb;
    cudaDataType_t at = la->t, bt = lb->t, dt = ld->t;
    if (dt != CUDA_R_32F && (dt != at || d->epi != CUBLASLT_EPILOGUE_DEFAULT))
        return CUBLAS_STATUS_NOT_SUPPORTED; // half outputs: only what the backend uses (no epilogue)
    long lda = la->ld, ldb = lb->ld, ldd = ld->ld;
    bool bias = d->epi == CUBLASLT_EPILOGUE_BIAS || d->epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    bool relu = d->epi == CUBLASLT_EPILOGUE_RELU || d->epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    const float *bias_p = d->bias;
    const unsigned char *ws = (const unsigned char *)workspace;
    auto run = [=] {
        gemm_t(ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, D, dt, ldd);
        if (!lt_workspace_clean(ws, ws_size)) { // stale counters: the result is garbage (NaN here)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    if (dt == CUDA_R_32F)
                        ((float *)D)[i + (size_t)j * ldd] = NAN;
                    else
                        ((unsigned short *)D)[i + (size_t)j * ldd] = 0x7fff;
                }
            return;
        }
        if (dt != CUDA_R_32F)
            return;
        float *out = (float *)D;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float *v = out + i + (size_t)j * ldd;
                if (bias)
                    *v += bias_p[i];
                if (relu && *v < 0)
                    *v = 0;
            }
    };
    if (!emu_record(st, run, K_GEMM))
        run();
    return CUBLAS_STATUS_SUCCESS;
}

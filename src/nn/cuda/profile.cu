// The per-operation GPU profile of an exec (CANARY_CUDA_PROFILE, docs/CUDA.md): for every backend
// operation a pair of CUDA events around it on the exec's stream and the host time spent in its
// function, accumulated per key (operation + shape class). Elapsed times are read only where the
// stream is idle anyway (sync(), download, device topk), so the profile adds event records and
// queries, never a synchronisation. Each stretch of operations between two such points is a
// "window": its span (first event to last) against the sum of its operations' GPU times says how
// busy the GPU was. As an operation's events also time the launch latency when the GPU waits for
// the host, each operation also notes whether the GPU had already finished the previous one when
// the host began it ("starved"): the direct sign of a launch- or host-bound stretch.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/cuda/cuda_internal.h"

#define PROF_KEYS 384          // distinct (operation, shape class) keys; beyond: one "other" per operation
#define PROF_SLOTS 1024        // hash slots (a power of two above PROF_KEYS)
#define PROF_MAX_PENDING 65536 // operations between two idle points; beyond that the profile stops

static const char *const op_names[CU_OP_COUNT] = {
    "linear",    "layer_norm", "glu_mask", "dwconv1d", "conv2d_s2", "mask_time", "rel_attention",
    "attention", "embed",      "log_softmax", "topk",  "topk_host", "copy",      "copy_2d",
    "upload",    "download",   "alloc",    "sync",      "graph_launch", "ffn", "transpose", "log_mel",
    "conv2d_s2_pair"};

typedef struct prof_key {
    int op;
    bool recorded; // queued while the stream records a CUDA graph: host time only (no events there)
    long dim[5];
    long calls, starved;
    double gpu_ms, host_ms;
} prof_key;

typedef struct prof_rec { // one operation queued since the last idle point
    int key, op;
    cudaEvent_t start, end;
    bool ended;
    int starved; // 1: the GPU had finished the previous operation when the host began this one;
                 // 0: it had not; -1: the window's first operation (follows an idle point)
} prof_rec;

// Windows are classed by what they ran: the encoder's, the decoder's (steps, top-k) and the rest.
enum { CLASS_ENCODER, CLASS_DECODER, CLASS_OTHER, CLASS_COUNT };
static const char *const class_names[CLASS_COUNT] = {"encoder", "decoder", "other"};
typedef struct prof_class {
    long windows, ops, checked, starved;
    double gpu_ms, span_ms, host_ms;
} prof_class;

struct cu_prof {
    prof_key keys[PROF_KEYS + CU_OP_COUNT];
    int n_keys;
    int slot[PROF_SLOTS];   // key index + 1; 0: empty
    int other[CU_OP_COUNT]; // the operation's "other" key + 1
    prof_rec *pend;
    int n_pend, cap_pend;
    int open;            // pend index of the operation in flight, -1 when none
    bool resolve_at_end; // the operation in flight waits for the stream: resolve when it ends
    cudaEvent_t *pool;   // events ready for reuse
    int n_pool, cap_pool;
    prof_class cls[CLASS_COUNT];
    double window_host_ms;
    int id;
    char stopped[160]; // why profiling stopped ("" while it runs)
};

static int g_paused; // cn_cuda_profile_pause(): operations are not recorded (a benchmark's warm-up)
static int g_ids;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static bool host_only(int op) { return op == CU_OP_SYNC || op == CU_OP_TOPK_HOST; }

static long pow2_up(long v) {
    long p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

// Shape classes: sizes that vary call by call (bytes, decoder keys) rounded up to a power of two,
// so that the key set stays small.
static void normalise(int op, long *d) {
    switch (op) {
    case CU_OP_ATTENTION:
        d[3] = pow2_up(d[3]);
        break;
    case CU_OP_COPY:
    case CU_OP_UPLOAD:
    case CU_OP_DOWNLOAD:
    case CU_OP_ALLOC:
        d[0] = pow2_up(d[0]);
        break;
    case CU_OP_COPY_2D:
        d[1] = pow2_up(d[1]);
        break;
    default:
        break;
    }
}

static const char *prec_name(long p) {
    return p == CN_PREC_BF16 ? "bf16" : p == CN_PREC_F16 ? "fp16" : p == CN_PREC_TF32 ? "tf32" : "fp32";
}

static void key_name(const prof_key *k, char *s, size_t n) {
    if (k->recorded && n > 9) { // "recorded linear m=.."
        memcpy(s, "recorded ", 9);
        s += 9;
        n -= 9;
    }
    const long *d = k->dim;
    const char *name = op_names[k->op];
    if (d[0] < 0) {
        snprintf(s, n, "%s other", name);
        return;
    }
    switch (k->op) {
    case CU_OP_LINEAR:
    case CU_OP_FFN: // the first layer's shape: m rows, n hidden, k inputs
        snprintf(s, n, "%s m=%ld n=%ld k=%ld %s", name, d[0], d[1], d[2], prec_name(d[3]));
        break;
    case CU_OP_LAYER_NORM:
    case CU_OP_LOG_SOFTMAX:
        snprintf(s, n, "%s rows=%ld d=%ld", name, d[0], d[1]);
        break;
    case CU_OP_GLU_MASK:
        snprintf(s, n, "glu_mask seqs=%ld t=%ld d=%ld", d[0], d[1], d[2]);
        break;
    case CU_OP_DWCONV1D:
        snprintf(s, n, "dwconv1d seqs=%ld t=%ld d=%ld k=%ld", d[0], d[1], d[2], d[3]);
        break;
    case CU_OP_CONV2D_S2:
        snprintf(s, n, "conv2d_s2 seqs=%ld t=%ld f=%ld c_in=%ld c=%ld", d[0], d[1], d[2], d[3], d[4]);
        break;
    case CU_OP_MASK_TIME:
        snprintf(s, n, "mask_time seqs=%ld t=%ld", d[0], d[1]);
        break;
    case CU_OP_CONV2D_S2_PAIR:
        snprintf(s, n, "conv2d_s2_pair seqs=%ld t=%ld f=%ld c=%ld", d[0], d[1], d[2], d[3]);
        break;
    case CU_OP_REL_ATTENTION:
        snprintf(s, n, "rel_attention seqs=%ld t=%ld h=%ld dk=%ld", d[0], d[1], d[2], d[3]);
        break;
    case CU_OP_ATTENTION:
        snprintf(s, n, "attention %s rows=%ld h=%ld lq=%ld lk<=%ld", d[4] ? "self" : "cross", d[0], d[1], d[2],
                 d[3]);
        break;
    case CU_OP_EMBED:
        snprintf(s, n, "embed n=%ld d=%ld", d[0], d[1]);
        break;
    case CU_OP_TOPK:
    case CU_OP_TOPK_HOST:
        snprintf(s, n, "%s rows=%ld n=%ld k=%ld", name, d[0], d[1], d[2]);
        break;
    case CU_OP_COPY_2D:
        snprintf(s, n, "copy_2d rows=%ld width<=%ld", d[0], d[1]);
        break;
    case CU_OP_COPY:
    case CU_OP_UPLOAD:
    case CU_OP_DOWNLOAD:
    case CU_OP_ALLOC:
        snprintf(s, n, "%s bytes<=%ld", name, d[0]);
        break;
    case CU_OP_TRANSPOSE:
        snprintf(s, n, "transpose n=%ld rows=%ld cols=%ld", d[0], d[1], d[2]);
        break;
    case CU_OP_LOG_MEL:
        snprintf(s, n, "log_mel n=%ld samples=%ld mels=%ld", d[0], d[1], d[2]);
        break;
    default:
        snprintf(s, n, "%s", name);
        break;
    }
}

static int other_key(cu_prof *p, int op, bool recorded) {
    if (!p->other[op]) {
        prof_key *k = &p->keys[p->n_keys];
        memset(k, 0, sizeof *k);
        k->op = op;
        k->recorded = recorded;
        k->dim[0] = -1;
        p->other[op] = ++p->n_keys;
    }
    return p->other[op] - 1;
}

static int key_of(cu_prof *p, int op, bool recorded, const long *d) {
    unsigned long h = (unsigned long)(op * 2 + recorded) * 0x9e3779b97f4a7c15ul;
    for (int i = 0; i < 5; i++)
        h = (h ^ (unsigned long)d[i]) * 0x100000001b3ul;
    for (unsigned i = 0; i < PROF_SLOTS; i++) {
        unsigned s = (unsigned)(h + i) & (PROF_SLOTS - 1);
        int k = p->slot[s] - 1;
        if (k < 0) {
            if (p->n_keys >= PROF_KEYS)
                return other_key(p, op, recorded);
            prof_key *nk = &p->keys[p->n_keys];
            memset(nk, 0, sizeof *nk);
            nk->op = op;
            nk->recorded = recorded;
            memcpy(nk->dim, d, sizeof nk->dim);
            p->slot[s] = ++p->n_keys;
            return p->n_keys - 1;
        }
        if (p->keys[k].op == op && p->keys[k].recorded == recorded &&
            memcmp(p->keys[k].dim, d, sizeof p->keys[k].dim) == 0)
            return k;
    }
    return other_key(p, op, recorded);
}

// A failing event call ends profiling, never the operation: noted once, the runtime's last error
// cleared so that the operation's own error check does not see it.
static void stop(cu_prof *p, const char *what, cudaError_t e) {
    if (e != cudaSuccess)
        cudaGetLastError();
    if (p->stopped[0])
        return;
    snprintf(p->stopped, sizeof p->stopped, "%s%s%s", what, e != cudaSuccess ? ": " : "",
             e != cudaSuccess ? cudaGetErrorString(e) : "");
    for (char *c = p->stopped; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '\'';
    fprintf(stderr, "canary: CUDA profile of exec %d stopped: %s\n", p->id, p->stopped);
}

static bool take_event(cu_prof *p, cudaEvent_t *ev) {
    if (p->n_pool > 0) {
        *ev = p->pool[--p->n_pool];
        return true;
    }
    cudaError_t e = cudaEventCreate(ev); // timing events: default flags
    if (e != cudaSuccess)
        stop(p, "cudaEventCreate", e);
    return e == cudaSuccess;
}

static void give_event(cu_prof *p, cudaEvent_t ev) {
    if (p->n_pool == p->cap_pool) {
        int cap = p->cap_pool ? 2 * p->cap_pool : 256;
        cudaEvent_t *np = (cudaEvent_t *)realloc(p->pool, sizeof *np * (size_t)cap);
        if (!np) {
            cudaEventDestroy(ev);
            return;
        }
        p->pool = np;
        p->cap_pool = cap;
    }
    p->pool[p->n_pool++] = ev;
}

static void release_pending(cu_prof *p) {
    for (int i = 0; i < p->n_pend; i++) {
        give_event(p, p->pend[i].start);
        give_event(p, p->pend[i].end);
    }
    p->n_pend = 0;
    p->open = -1;
    p->window_host_ms = 0;
}

static bool encoder_op(int op) {
    return op == CU_OP_CONV2D_S2 || op == CU_OP_CONV2D_S2_PAIR || op == CU_OP_REL_ATTENTION || op == CU_OP_DWCONV1D || op == CU_OP_GLU_MASK ||
           op == CU_OP_MASK_TIME || op == CU_OP_TRANSPOSE || op == CU_OP_LOG_MEL;
}
static bool decoder_op(int op) {
    return op == CU_OP_EMBED || op == CU_OP_ATTENTION || op == CU_OP_LOG_SOFTMAX || op == CU_OP_TOPK ||
           op == CU_OP_GRAPH_LAUNCH;
}

// Closes the window when its last event has completed (always so at an idle point): every
// operation's GPU time, the window's span. Otherwise the window stays open (no waiting).
static void resolve(cn_exec *ex) {
    cu_prof *p = ex->prof;
    if (p->stopped[0] || p->n_pend == 0)
        return;
    prof_rec *last = &p->pend[p->n_pend - 1];
    if (!last->ended)
        return;
    cudaError_t e = cudaEventQuery(last->end);
    if (e == cudaErrorNotReady) {
        cudaGetLastError();
        return;
    }
    if (e != cudaSuccess)
        return stop(p, "cudaEventQuery", e);
    double sum = 0;
    long starved = 0, checked = 0;
    bool enc = false, dec = false;
    for (int i = 0; i < p->n_pend; i++) {
        prof_rec *r = &p->pend[i];
        float ms = 0;
        if ((e = cudaEventElapsedTime(&ms, r->start, r->end)) != cudaSuccess)
            return stop(p, "cudaEventElapsedTime", e);
        p->keys[r->key].gpu_ms += ms;
        p->keys[r->key].starved += r->starved == 1;
        starved += r->starved == 1;
        checked += r->starved >= 0;
        sum += ms;
        enc = enc || encoder_op(r->op);
        dec = dec || decoder_op(r->op);
    }
    float span = 0;
    if ((e = cudaEventElapsedTime(&span, p->pend[0].start, last->end)) != cudaSuccess)
        return stop(p, "cudaEventElapsedTime", e);
    prof_class *c = &p->cls[enc ? CLASS_ENCODER : dec ? CLASS_DECODER : CLASS_OTHER];
    c->windows++;
    c->ops += p->n_pend;
    c->checked += checked;
    c->starved += starved;
    c->gpu_ms += sum;
    c->span_ms += span;
    c->host_ms += p->window_host_ms;
    release_pending(p);
}

struct cu_prof *cu_prof_create(void) {
    const char *v = getenv("CANARY_CUDA_PROFILE");
    if (!v || !*v || strcmp(v, "0") == 0)
        return NULL;
    cu_prof *p = (cu_prof *)calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "canary: out of memory for the CUDA profile; profiling off\n");
        return NULL;
    }
    p->open = -1;
    p->id = __atomic_add_fetch(&g_ids, 1, __ATOMIC_RELAXED);
    return p;
}

int cu_prof_begin(cn_exec *ex, cu_op op, long a, long b, long c, long d, long e, double *t0) {
    cu_prof *p = ex->prof;
    if (p->stopped[0] || __atomic_load_n(&g_paused, __ATOMIC_RELAXED))
        return -1;
    long dim[5] = {a, b, c, d, e};
    normalise(op, dim);
    // Events on a stream that records a graph cannot be timed or queried: the graph's launch is timed
    bool recorded = ex->capturing;
    int key = key_of(p, op, recorded, dim);
    p->open = -1;
    p->resolve_at_end = false;
    if (!host_only(op) && !recorded) {
        if (p->n_pend >= PROF_MAX_PENDING) {
            stop(p, "too many operations between two synchronisations", cudaSuccess);
            return -1;
        }
        if (p->n_pend == p->cap_pend) {
            int cap = p->cap_pend ? 2 * p->cap_pend : 256;
            prof_rec *np = (prof_rec *)realloc(p->pend, sizeof *np * (size_t)cap);
            if (!np) {
                stop(p, "out of memory", cudaSuccess);
                return -1;
            }
            p->pend = np;
            p->cap_pend = cap;
        }
        prof_rec *r = &p->pend[p->n_pend];
        r->starved = -1;
        if (p->n_pend > 0 && p->pend[p->n_pend - 1].ended) {
            cudaError_t q = cudaEventQuery(p->pend[p->n_pend - 1].end);
            if (q != cudaSuccess && q != cudaErrorNotReady) {
                stop(p, "cudaEventQuery", q);
                return -1;
            }
            if (q == cudaErrorNotReady)
                cudaGetLastError(); // not an error: the GPU is still busy
            r->starved = q == cudaSuccess;
        }
        if (!take_event(p, &r->start))
            return -1;
        if (!take_event(p, &r->end)) {
            give_event(p, r->start);
            return -1;
        }
        cudaError_t er = cudaEventRecord(r->start, ex->stream);
        if (er != cudaSuccess) {
            give_event(p, r->start);
            give_event(p, r->end);
            stop(p, "cudaEventRecord", er);
            return -1;
        }
        r->key = key;
        r->op = op;
        r->ended = false;
        p->open = p->n_pend++;
    }
    *t0 = now_ms();
    return key;
}

static void end_gpu_part(cn_exec *ex) {
    cu_prof *p = ex->prof;
    prof_rec *r = &p->pend[p->open];
    if (r->ended)
        return;
    cudaError_t e = cudaEventRecord(r->end, ex->stream);
    if (e != cudaSuccess)
        return stop(p, "cudaEventRecord", e);
    r->ended = true;
}

void cu_prof_before_wait(cn_exec *ex) {
    cu_prof *p = ex->prof;
    if (!p || p->stopped[0] || p->open < 0)
        return;
    end_gpu_part(ex);
    p->resolve_at_end = true;
}

void cu_prof_end(cn_exec *ex, cu_op op, int key, double t0) {
    cu_prof *p = ex->prof;
    if (key < 0 || p->stopped[0])
        return;
    double host = now_ms() - t0;
    p->keys[key].calls++;
    p->keys[key].host_ms += host;
    if (p->open >= 0) {
        p->window_host_ms += host;
        end_gpu_part(ex);
        p->open = -1;
    }
    if (op == CU_OP_SYNC || p->resolve_at_end) { // the stream is idle: close the window
        p->resolve_at_end = false;
        resolve(ex);
    }
}

// ---- the report ---------------------------------------------------------------------------------

typedef struct sink {
    FILE *f; // or
    int fd;  // one write() per line: lines of several processes appending to one file stay whole
} sink;

static void emit(sink *s, const char *line) {
    if (s->f) {
        fputs(line, s->f);
        return;
    }
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(s->fd, line, n);
        if (w <= 0)
            return;
        line += w;
        n -= (size_t)w;
    }
}

static int by_gpu_desc(const void *a, const void *b, void *keys) {
    const prof_key *ka = &((const prof_key *)keys)[*(const int *)a], *kb = &((const prof_key *)keys)[*(const int *)b];
    if (ka->gpu_ms != kb->gpu_ms)
        return ka->gpu_ms < kb->gpu_ms ? 1 : -1;
    if (ka->host_ms != kb->host_ms)
        return ka->host_ms < kb->host_ms ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

static void report(cn_exec *ex, sink *s) {
    cu_prof *p = ex->prof;
    long calls = 0;
    int order[PROF_KEYS + CU_OP_COUNT], n = 0;
    for (int i = 0; i < p->n_keys; i++)
        if (p->keys[i].calls > 0) {
            order[n++] = i;
            calls += p->keys[i].calls;
        }
    if (calls == 0 && !p->stopped[0])
        return; // an exec that ran nothing (the other precision's) says nothing
    qsort_r(order, (size_t)n, sizeof order[0], by_gpu_desc, p->keys);
    char exec_id[48], line[512], name[128];
    snprintf(exec_id, sizeof exec_id, "%ld.%d", (long)getpid(), p->id);
    double sync_host = 0;
    for (int i = 0; i < n; i++) {
        const prof_key *k = &p->keys[order[i]];
        if (k->op == CU_OP_SYNC)
            sync_host += k->host_ms;
        key_name(k, name, sizeof name);
        snprintf(line, sizeof line,
                 "{\"cuda_profile\":\"%s\",\"calls\":%ld,\"gpu_ms\":%.4f,\"host_ms\":%.4f,\"starved\":%ld,"
                 "\"exec\":\"%s\",\"device\":%d}\n",
                 name, k->calls, k->gpu_ms, k->host_ms, k->starved, exec_id, ex->be->device);
        emit(s, line);
    }
    prof_class all = {};
    for (int c = 0; c <= CLASS_COUNT; c++) {
        const prof_class *pc = c < CLASS_COUNT ? &p->cls[c] : &all;
        if (c < CLASS_COUNT) {
            all.windows += pc->windows;
            all.ops += pc->ops;
            all.checked += pc->checked;
            all.starved += pc->starved;
            all.gpu_ms += pc->gpu_ms;
            all.span_ms += pc->span_ms;
            all.host_ms += pc->host_ms;
        }
        double busy = pc->span_ms > 0 ? pc->gpu_ms / pc->span_ms : 0;
        busy = busy > 1 ? 1 : busy; // float rounding of back-to-back events
        double starved = pc->checked > 0 ? (double)pc->starved / (double)pc->checked : 0;
        int at = snprintf(line, sizeof line,
                          "{\"cuda_profile_summary\":\"%s\",\"windows\":%ld,\"ops\":%ld,\"gpu_ms\":%.4f,"
                          "\"span_ms\":%.4f,\"busy\":%.4f,\"starved\":%.4f,\"host_ms\":%.4f",
                          c < CLASS_COUNT ? class_names[c] : "all", pc->windows, pc->ops, pc->gpu_ms, pc->span_ms,
                          busy, starved, pc->host_ms);
        if (c == CLASS_COUNT)
            at += snprintf(line + at, sizeof line - (size_t)at, ",\"sync_host_ms\":%.4f,\"stopped\":\"%s\"", sync_host,
                           p->stopped);
        snprintf(line + at, sizeof line - (size_t)at, ",\"exec\":\"%s\",\"device\":%d}\n", exec_id, ex->be->device);
        emit(s, line);
    }
    // Device memory this exec held: what hw/profile's per-chunk model must cover (the arena's
    // peak of live blocks plus the scratch of the largest operation), and what it reserved.
    size_t reserved = 0;
    for (const cu_chunk *c = ex->chunks; c; c = c->next)
        reserved += c->size;
    snprintf(line, sizeof line,
             "{\"cuda_memory\":\"exec\",\"arena_peak_bytes\":%zu,\"arena_reserved_bytes\":%zu,\"scratch_bytes\":%zu,"
             "\"ints_bytes\":%zu,\"lt_workspace_bytes\":%zu,\"exec\":\"%s\",\"device\":%d}\n",
             ex->arena_peak, reserved, ex->scratch_cap, ex->ints_cap * sizeof(int), ex->lt_work_size, exec_id,
             ex->be->device);
    emit(s, line);
}

void cu_prof_destroy(cn_exec *ex) {
    cu_prof *p = ex->prof;
    if (!p)
        return;
    resolve(ex); // the caller synchronised the stream: the last window closes
    // CANARY_CUDA_PROFILE=<path> (anything with a '/' or a '.') appends there, any other value
    // (1, on, stderr) writes to stderr.
    const char *v = getenv("CANARY_CUDA_PROFILE");
    sink s = {NULL, -1};
    if (v && (strchr(v, '/') || strchr(v, '.'))) {
        s.fd = open(v, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (s.fd < 0)
            fprintf(stderr, "canary: CUDA profile: cannot open %s; writing to stderr\n", v);
    }
    if (s.fd < 0)
        s.f = stderr;
    report(ex, &s);
    if (s.fd >= 0)
        close(s.fd);
    for (int i = 0; i < p->n_pend; i++) {
        cudaEventDestroy(p->pend[i].start);
        cudaEventDestroy(p->pend[i].end);
    }
    for (int i = 0; i < p->n_pool; i++)
        cudaEventDestroy(p->pool[i]);
    cudaGetLastError();
    free(p->pend);
    free(p->pool);
    free(p);
    ex->prof = NULL;
}

// The profile so far, as at exec destroy (closes the last window only if its work has finished).
CN_CUDA_EXPORT void cn_cuda_exec_profile_write(cn_exec *ex, FILE *f) {
    if (!ex || !ex->prof || !f)
        return;
    cudaSetDevice(ex->be->device);
    resolve(ex);
    sink s = {f, -1};
    report(ex, &s);
}

// Pauses (1) or resumes (0) the recording of every exec of this process, between operations: a
// benchmark pauses around its warm-up runs so that the profile covers the timed runs only.
CN_CUDA_EXPORT void cn_cuda_profile_pause(int paused) { __atomic_store_n(&g_paused, paused != 0, __ATOMIC_RELAXED); }

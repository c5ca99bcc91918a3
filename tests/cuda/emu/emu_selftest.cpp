// The emulation's own promises about ordering (emu_cuda.cpp), checked directly: the parity tests
// rely on them to catch host/device races that a GPU shows only now and then.
//   1. cudaMemcpy to the device and cudaMemset are held back from non-blocking streams until
//      something waits for the legacy stream; blocking streams and the legacy stream see them.
//   2. Writing pinned host memory that a queued asynchronous copy reads, before the stream is
//      synchronised, stops the process; writing it after the sync is fine.
// Exit 0 when all hold.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emu_cuda.h"

static int g_fail;
#define CHECK(cond, what)                                                                                         \
    do {                                                                                                          \
        if (!(cond)) {                                                                                            \
            fprintf(stderr, "FAIL: %s\n", what);                                                                  \
            g_fail = 1;                                                                                           \
        } else {                                                                                                  \
            printf("ok: %s\n", what);                                                                             \
        }                                                                                                         \
    } while (0)

static void legacy_stream() {
    const int want[4] = {1, 2, 3, 4};
    int *d = nullptr, *seen = nullptr;
    cudaMalloc((void **)&d, sizeof want);
    cudaMalloc((void **)&seen, sizeof want);
    memset(d, 0, sizeof want); // emulated device memory is host memory: set a known "before"
    cudaStream_t nb = nullptr, blocking = nullptr;
    cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&blocking, 0);

    cudaMemcpy(d, want, sizeof want, cudaMemcpyHostToDevice);
    cudaMemcpyAsync(seen, d, sizeof want, cudaMemcpyDeviceToDevice, nb);
    CHECK(seen[0] == 0 && seen[3] == 0, "a non-blocking stream does not wait for cudaMemcpy's upload");
    cudaStreamSynchronize(nb);
    CHECK(d[0] == 0, "synchronising a non-blocking stream does not land the legacy stream's work");
    cudaStreamSynchronize(0);
    CHECK(memcmp(d, want, sizeof want) == 0, "synchronising the legacy stream lands it");

    cudaMemset(d, 0, sizeof want);
    memset(seen, 0xff, sizeof want);
    cudaMemcpyAsync(seen, d, sizeof want, cudaMemcpyDeviceToDevice, blocking);
    CHECK(seen[0] == 0 && seen[3] == 0, "a blocking stream waits for cudaMemset");

    const int more[4] = {5, 6, 7, 8};
    cudaMemcpy(d, more, sizeof more, cudaMemcpyHostToDevice);
    memset(seen, 0xff, sizeof more);
    cudaMemcpyAsync(seen, d, sizeof more, cudaMemcpyDeviceToDevice, nb);
    CHECK(seen[0] == 0 && seen[3] == 0, "held back again (the stream reads the memset's zeros)");
    cudaFree(seen); // waits for the device
    CHECK(memcmp(d, more, sizeof more) == 0, "cudaFree lands it");

    int back[4] = {0, 0, 0, 0};
    cudaMemcpy(d, want, sizeof want, cudaMemcpyHostToDevice);
    cudaMemcpy(back, d, sizeof back, cudaMemcpyDeviceToHost);
    CHECK(memcmp(back, want, sizeof want) == 0, "a copy back on the legacy stream comes after its upload");
    cudaFree(d);
    cudaStreamDestroy(nb);
    cudaStreamDestroy(blocking);
}

// In a child: queue a copy from pinned memory, then write the buffer before (race) or after the sync.
static int pinned_child(bool race) {
    pid_t pid = fork();
    if (pid == 0) {
        int *h = nullptr, *d = nullptr;
        cudaHostAlloc((void **)&h, 64, 0);
        cudaMalloc((void **)&d, 64);
        cudaStream_t st = nullptr;
        cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
        memset(h, 1, 64);
        cudaMemcpyAsync(d, h, 64, cudaMemcpyHostToDevice, st);
        if (!race)
            cudaStreamSynchronize(st);
        h[3] = 42; // the next batch's data
        cudaStreamSynchronize(st);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main() {
    legacy_stream();
    int st = pinned_child(true);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "writing pinned memory under a queued copy stops the process");
    st = pinned_child(false);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writing it after the stream's sync is fine");
    return g_fail;
}

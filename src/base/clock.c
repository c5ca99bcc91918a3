#include "base/clock.h"

#include <time.h>

uint64_t cn_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double cn_now_s(void) { return (double)cn_now_ns() * 1e-9; }

double cn_elapsed_s(uint64_t since_ns) { return (double)(cn_now_ns() - since_ns) * 1e-9; }

int64_t cn_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

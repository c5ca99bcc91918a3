/* Monotonic time for measuring durations (never wall-clock time). */
#ifndef CN_BASE_CLOCK_H
#define CN_BASE_CLOCK_H

#include <stdint.h>

uint64_t cn_now_ns(void);            /* CLOCK_MONOTONIC in nanoseconds */
double cn_now_s(void);               /* CLOCK_MONOTONIC in seconds */
double cn_elapsed_s(uint64_t since_ns);
int64_t cn_unix_ms(void);            /* wall clock, for timestamps stored in records */

#endif

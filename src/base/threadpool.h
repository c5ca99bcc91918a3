/* A fixed pool of worker threads for data-parallel loops (the compute kernels' threading).
 *
 * cn_pool_run splits [0, n) into tasks that the workers and the calling thread take from a shared
 * counter; it returns when all are done. One run at a time per pool: a pool belongs to one
 * inference context, so concurrent contexts each have their own pool and never contend.
 */
#ifndef CN_BASE_THREADPOOL_H
#define CN_BASE_THREADPOOL_H

#include <stddef.h>

#include "base/error.h"

typedef struct cn_pool cn_pool;

/* fn(ctx, task_index, thread_index): thread_index is in [0, n_threads) and stable per thread,
 * so callers can index per-thread scratch buffers with it. */
typedef void (*cn_pool_fn)(void *ctx, size_t task, int thread);

/* n_threads counts the calling thread: 1 means "no extra threads". */
cn_status cn_pool_create(int n_threads, cn_pool **out, cn_error *err);
void cn_pool_destroy(cn_pool *pool);
int cn_pool_threads(const cn_pool *pool);
/* Runs fn for every task in [0, n_tasks). A NULL pool runs everything on the caller. */
void cn_pool_run(cn_pool *pool, size_t n_tasks, cn_pool_fn fn, void *ctx);

/* Number of online logical CPUs the process may use (affinity and cgroup quota aware). */
int cn_cpu_count(void);

#endif

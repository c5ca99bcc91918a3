#include "base/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct cn_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    /* the current run */
    cn_pool_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next;
    int busy_workers;
    unsigned long generation;
    int shutdown;
};

typedef struct {
    cn_pool *pool;
    int index;
} worker_arg;

static void drain(cn_pool *p, int thread) {
    for (;;) {
        size_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks)
            break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    cn_pool *p = wa.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->shutdown && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->shutdown)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        drain(p, wa.index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy_workers == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

cn_status cn_pool_create(int n_threads, cn_pool **out, cn_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return cn_error_set(err, CANARY_EINVAL, "thread count %d is outside 1..1024", n_threads);
    cn_pool *p = calloc(1, sizeof *p);
    if (!p)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory creating a thread pool");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            cn_pool_destroy(p);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory creating a thread pool");
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            int rc = wa ? 0 : 1;
            if (wa) {
                wa->pool = p;
                wa->index = i;
                rc = pthread_create(&p->threads[i - 1], NULL, worker_main, wa);
                if (rc)
                    free(wa);
            }
            if (rc) {
                p->n_threads = i; /* destroy joins the ones that started */
                cn_pool_destroy(p);
                return cn_error_set(err, CANARY_ENOMEM, "could not start thread %d of %d", i, n_threads);
            }
        }
    }
    *out = p;
    return CANARY_OK;
}

void cn_pool_destroy(cn_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i - 1], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int cn_pool_threads(const cn_pool *p) { return p ? p->n_threads : 1; }

void cn_pool_run(cn_pool *p, size_t n_tasks, cn_pool_fn fn, void *ctx) {
    if (n_tasks == 0)
        return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy_workers = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    drain(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->busy_workers > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* cgroup v2 "cpu.max" quota ("max 100000" or "200000 100000"), rounded up; 0 when unlimited. */
static int cgroup_cpu_limit(void) {
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (!f)
        return 0;
    char quota[32] = {0};
    long period = 0;
    int n = fscanf(f, "%31s %ld", quota, &period);
    fclose(f);
    if (n != 2 || period <= 0 || quota[0] == 'm')
        return 0;
    long q = atol(quota);
    if (q <= 0)
        return 0;
    return (int)((q + period - 1) / period);
}

int cn_cpu_count(void) {
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    int lim = cgroup_cpu_limit();
    if (lim > 0 && lim < n)
        n = lim;
    return n;
}

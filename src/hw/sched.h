/* Multi-device scheduling: one executor (thread) per device worker; batches go to the least-loaded
 * healthy device that has the memory for them. A device whose run fails with CANARY_EDEVICE is
 * marked unhealthy and its batch is re-queued on the others. Each batch records the devices that
 * tried it, so a job's record can show where it ran.
 *
 * The scheduler does not know what a batch is: the caller supplies per-device `run` functions (a
 * model replica and stream on a GPU, a thread pool on the CPU) and opaque payloads.
 */
#ifndef CN_HW_SCHED_H
#define CN_HW_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

#define CN_SCHED_MAX_DEVICES 17
#define CN_SCHED_MAX_TRIES 8

typedef struct cn_sched_batch cn_sched_batch;

/* Runs one batch on a device. `worker` is in [0, workers). Return CANARY_EDEVICE when the device
 * itself failed (the batch is retried elsewhere, the device retired); any other error fails the
 * batch only. Called without scheduler locks held. */
typedef cn_status (*cn_sched_run_fn)(void *device_ctx, int worker, cn_sched_batch *batch, cn_error *err);

typedef struct cn_sched_device {
    char name[32];          /* "cuda:0", "cpu" */
    int workers;            /* executors (threads) for this device, >= 1 */
    uint64_t mem_budget;    /* bytes of batch memory admitted concurrently; 0 = unlimited */
    cn_sched_run_fn run;
    void *ctx;
} cn_sched_device;

struct cn_sched_batch {
    /* set by the caller */
    uint64_t job_id;
    uint64_t mem_bytes;     /* memory this batch needs on a device while it runs */
    double cost;            /* work estimate (e.g. audio seconds) for load accounting */
    void *payload;
    void (*done)(cn_sched_batch *batch, void *user); /* called once, from an executor thread */
    void *user;
    /* filled by the scheduler */
    cn_status status;
    char error[256];
    int n_tries;
    int tried[CN_SCHED_MAX_TRIES]; /* device indices in order; the last one ran it (or failed) */
    int device;             /* device that completed it, -1 if none */
    cn_sched_batch *next_;  /* internal: queue link */
};

typedef struct cn_sched_device_stats {
    bool healthy;
    int busy_workers;
    uint64_t mem_in_use;
    uint64_t batches_done, batches_failed;
    double cost_done;
    uint64_t busy_ns;       /* total time executors spent in run() */
    char last_error[256];
} cn_sched_device_stats;

typedef struct cn_sched cn_sched;

cn_status cn_sched_create(const cn_sched_device *devices, int n_devices, cn_sched **out, cn_error *err);
/* Waits for queued and running batches, then stops the executors. */
void cn_sched_destroy(cn_sched *s);

/* Queues a batch. Fails at once (CANARY_ELIMIT, naming the sizes) when no healthy device could ever
 * admit its memory, or CANARY_EDEVICE when no healthy device is left. */
cn_status cn_sched_submit(cn_sched *s, cn_sched_batch *batch, cn_error *err);
/* Blocks until nothing is queued or running. */
void cn_sched_drain(cn_sched *s);

int cn_sched_device_count(const cn_sched *s);
void cn_sched_stats(cn_sched *s, int device, cn_sched_device_stats *out);
const char *cn_sched_device_name(const cn_sched *s, int device);

/* Per-device gauges and counters for /metrics (Prometheus text format): canary_device_healthy,
 * canary_device_busy_workers, canary_device_memory_in_use_bytes, canary_device_memory_budget_bytes,
 * canary_device_busy_seconds_total,
 * canary_device_batches_total{outcome="done|failed"}, each labelled device="cuda:0". */
void cn_sched_metrics(cn_sched *s, cn_strbuf *sb);
/* The same as a JSON array, for the service's GET / hardware block. */
void cn_sched_stats_json(cn_sched *s, cn_strbuf *sb);

#endif

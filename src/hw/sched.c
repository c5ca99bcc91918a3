/* Multi-device scheduler (see sched.h). One mutex guards everything; executors wait on their
 * device's condition variable for batches the dispatcher assigned to them. */
#include "hw/sched.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

typedef struct {
    cn_sched_batch *head, *tail;
} queue;

static void q_push_back(queue *q, cn_sched_batch *b) {
    b->next_ = NULL;
    if (q->tail)
        q->tail->next_ = b;
    else
        q->head = b;
    q->tail = b;
}

static void q_push_front(queue *q, cn_sched_batch *b) {
    b->next_ = q->head;
    q->head = b;
    if (!q->tail)
        q->tail = b;
}

static cn_sched_batch *q_pop(queue *q) {
    cn_sched_batch *b = q->head;
    if (b) {
        q->head = b->next_;
        if (!q->head)
            q->tail = NULL;
        b->next_ = NULL;
    }
    return b;
}

typedef struct {
    cn_sched_device d;
    pthread_cond_t cv;
    queue mailbox;          /* assigned, not yet picked up by a worker */
    int n_assigned;
    uint64_t assigned_mem;
    cn_sched_device_stats st;
} device_state;

typedef struct executor_arg executor_arg;

struct cn_sched {
    pthread_mutex_t mu;
    pthread_cond_t idle_cv;
    queue pending;
    int n_devices;
    device_state dev[CN_SCHED_MAX_DEVICES];
    pthread_t *threads;
    executor_arg *args;     /* one per thread, alive until the threads are joined */
    int n_threads;
    bool stopping;
    int outstanding;        /* submitted and not yet completed */
};

struct executor_arg {
    cn_sched *s;
    int device, worker;
};

static bool tried_on(const cn_sched_batch *b, int dev) {
    for (int i = 0; i < b->n_tries; i++)
        if (b->tried[i] == dev)
            return true;
    return false;
}

static bool could_admit(const device_state *ds, const cn_sched_batch *b) {
    return ds->d.mem_budget == 0 || b->mem_bytes <= ds->d.mem_budget;
}

/* A device that may still run this batch some day. */
static bool has_candidate(const cn_sched *s, const cn_sched_batch *b) {
    for (int i = 0; i < s->n_devices; i++)
        if (s->dev[i].st.healthy && !tried_on(b, i) && could_admit(&s->dev[i], b))
            return true;
    return false;
}

/* Measured speed: cost per busy second (0 until something ran). */
static double rate(const device_state *ds) {
    return ds->st.busy_ns ? ds->st.cost_done / ((double)ds->st.busy_ns * 1e-9) : 0.0;
}

/* Assigns pending batches to devices; batches that can no longer run anywhere go to `failed`.
 * Called with the lock held. A batch that does not fit right now is skipped, so a large batch
 * waiting for memory does not hold up small ones behind it. */
static void dispatch(cn_sched *s, queue *failed) {
    queue keep = {0};
    cn_sched_batch *b;
    while ((b = q_pop(&s->pending))) {
        if (!has_candidate(s, b)) {
            q_push_back(failed, b);
            continue;
        }
        int best = -1;
        double best_load = 0, best_rate = 0;
        for (int i = 0; i < s->n_devices; i++) {
            device_state *ds = &s->dev[i];
            if (!ds->st.healthy || tried_on(b, i))
                continue;
            int occupied = ds->st.busy_workers + ds->n_assigned;
            if (occupied >= ds->d.workers)
                continue;
            if (ds->d.mem_budget && ds->st.mem_in_use + ds->assigned_mem + b->mem_bytes > ds->d.mem_budget)
                continue;
            double load = (double)occupied / ds->d.workers;
            double r = rate(ds);
            if (best < 0 || load < best_load || (load == best_load && r > best_rate)) {
                best = i;
                best_load = load;
                best_rate = r;
            }
        }
        if (best < 0) {
            q_push_back(&keep, b);
            continue;
        }
        device_state *ds = &s->dev[best];
        q_push_back(&ds->mailbox, b);
        ds->n_assigned++;
        ds->assigned_mem += b->mem_bytes;
        pthread_cond_signal(&ds->cv);
    }
    s->pending = keep;
}

static void fail_unplaceable(cn_sched_batch *b) {
    if (b->status == CANARY_OK)
        b->status = CANARY_EDEVICE;
    if (!b->error[0])
        snprintf(b->error, sizeof b->error, "no healthy device can run this batch");
    b->device = -1;
}

/* Runs the done callbacks of `failed` without the lock. Called with the lock held. */
static void complete_failed(cn_sched *s, queue *failed) {
    cn_sched_batch *b;
    while ((b = q_pop(failed))) {
        fail_unplaceable(b);
        pthread_mutex_unlock(&s->mu);
        if (b->done)
            b->done(b, b->user);
        pthread_mutex_lock(&s->mu);
        s->outstanding--;
    }
    if (s->outstanding == 0)
        pthread_cond_broadcast(&s->idle_cv);
}

static void *executor(void *arg) {
    executor_arg *ea = arg;
    cn_sched *s = ea->s;
    device_state *ds = &s->dev[ea->device];
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!ds->mailbox.head && !s->stopping)
            pthread_cond_wait(&ds->cv, &s->mu);
        cn_sched_batch *b = q_pop(&ds->mailbox);
        if (!b)
            break; /* stopping and nothing left */
        ds->n_assigned--;
        ds->assigned_mem -= b->mem_bytes;
        ds->st.busy_workers++;
        ds->st.mem_in_use += b->mem_bytes;
        if (b->n_tries < CN_SCHED_MAX_TRIES)
            b->tried[b->n_tries++] = ea->device;
        pthread_mutex_unlock(&s->mu);

        cn_error err;
        cn_error_clear(&err);
        uint64_t t0 = cn_now_ns();
        cn_status st = ds->d.run(ds->d.ctx, ea->worker, b, &err);
        uint64_t dt = cn_now_ns() - t0;

        pthread_mutex_lock(&s->mu);
        ds->st.busy_workers--;
        ds->st.mem_in_use -= b->mem_bytes;
        ds->st.busy_ns += dt;
        queue failed = {0};
        bool finished = true;
        if (st == CANARY_OK) {
            b->status = CANARY_OK;
            b->device = ea->device;
            ds->st.batches_done++;
            ds->st.cost_done += b->cost;
        } else {
            ds->st.batches_failed++;
            snprintf(ds->st.last_error, sizeof ds->st.last_error, "%s", err.msg);
            snprintf(b->error, sizeof b->error, "%s: %s", ds->d.name, err.msg);
            b->status = st;
            b->device = -1;
            if (st == CANARY_EDEVICE) {
                if (ds->st.healthy)
                    CN_WARN("sched", "device %s failed and is marked unhealthy: %s", ds->d.name, err.msg);
                ds->st.healthy = false;
                /* its queued work goes back to the others */
                cn_sched_batch *q;
                while ((q = q_pop(&ds->mailbox))) {
                    ds->n_assigned--;
                    ds->assigned_mem -= q->mem_bytes;
                    q_push_front(&s->pending, q);
                }
                if (has_candidate(s, b) && b->n_tries < CN_SCHED_MAX_TRIES) {
                    q_push_front(&s->pending, b);
                    finished = false;
                }
            }
        }
        dispatch(s, &failed);
        if (finished) {
            pthread_mutex_unlock(&s->mu);
            if (b->done)
                b->done(b, b->user);
            pthread_mutex_lock(&s->mu);
            s->outstanding--;
        }
        complete_failed(s, &failed);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

cn_status cn_sched_create(const cn_sched_device *devices, int n_devices, cn_sched **out, cn_error *err) {
    *out = NULL;
    if (n_devices < 1 || n_devices > CN_SCHED_MAX_DEVICES)
        return cn_error_set(err, CANARY_EINVAL, "scheduler: %d devices (1..%d allowed)", n_devices,
                            CN_SCHED_MAX_DEVICES);
    int threads = 0;
    for (int i = 0; i < n_devices; i++) {
        if (devices[i].workers < 1 || devices[i].workers > 256 || !devices[i].run)
            return cn_error_set(err, CANARY_EINVAL, "scheduler: device %s needs 1..256 workers and a run function",
                                devices[i].name);
        threads += devices[i].workers;
    }
    cn_sched *s = calloc(1, sizeof *s);
    if (s) {
        s->threads = calloc((size_t)threads, sizeof *s->threads);
        s->args = calloc((size_t)threads, sizeof *s->args);
    }
    if (!s || !s->args || !s->threads) {
        if (s) {
            free(s->threads);
            free(s->args);
        }
        free(s);
        return cn_error_set(err, CANARY_ENOMEM, "scheduler: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    s->n_devices = n_devices;
    for (int i = 0; i < n_devices; i++) {
        s->dev[i].d = devices[i];
        s->dev[i].st.healthy = true;
        pthread_cond_init(&s->dev[i].cv, NULL);
    }
    int t = 0;
    for (int i = 0; i < n_devices; i++)
        for (int w = 0; w < devices[i].workers; w++) {
            s->args[t] = (executor_arg){s, i, w};
            if (pthread_create(&s->threads[t], NULL, executor, &s->args[t]) != 0) {
                s->n_threads = t;
                cn_sched_destroy(s);
                return cn_error_set(err, CANARY_ENOMEM, "scheduler: cannot start executor thread %d", t);
            }
            t++;
        }
    s->n_threads = t;
    *out = s;
    return CANARY_OK;
}

void cn_sched_drain(cn_sched *s) {
    pthread_mutex_lock(&s->mu);
    while (s->outstanding > 0)
        pthread_cond_wait(&s->idle_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void cn_sched_destroy(cn_sched *s) {
    if (!s)
        return;
    cn_sched_drain(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (int i = 0; i < s->n_devices; i++)
        pthread_cond_broadcast(&s->dev[i].cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    free(s->args);
    for (int i = 0; i < s->n_devices; i++)
        pthread_cond_destroy(&s->dev[i].cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->threads);
    free(s);
}

cn_status cn_sched_submit(cn_sched *s, cn_sched_batch *b, cn_error *err) {
    b->status = CANARY_OK;
    b->error[0] = '\0';
    b->n_tries = 0;
    b->device = -1;
    b->next_ = NULL;
    pthread_mutex_lock(&s->mu);
    int healthy = 0, biggest = -1;
    for (int i = 0; i < s->n_devices; i++) {
        if (!s->dev[i].st.healthy)
            continue;
        healthy++;
        if (could_admit(&s->dev[i], b))
            goto admit;
        if (biggest < 0 || s->dev[i].d.mem_budget > s->dev[biggest].d.mem_budget)
            biggest = i;
    }
    pthread_mutex_unlock(&s->mu);
    if (!healthy)
        return cn_error_set(err, CANARY_EDEVICE, "no healthy device left to run batches");
    char who[48] = "";
    if (b->job_id)
        snprintf(who, sizeof who, " of job %llu", (unsigned long long)b->job_id);
    return cn_error_set(err, CANARY_ELIMIT,
                        "batch%s needs %.1f MiB; the largest device budget is %.1f MiB (%s): "
                        "use a smaller engine.max_batch or engine.chunk_seconds",
                        who, (double)b->mem_bytes / 1048576.0, (double)s->dev[biggest].d.mem_budget / 1048576.0,
                        s->dev[biggest].d.name);
admit:
    s->outstanding++;
    q_push_back(&s->pending, b);
    queue failed = {0};
    dispatch(s, &failed);
    complete_failed(s, &failed);
    pthread_mutex_unlock(&s->mu);
    return CANARY_OK;
}

int cn_sched_device_count(const cn_sched *s) { return s->n_devices; }

const char *cn_sched_device_name(const cn_sched *s, int device) {
    return device >= 0 && device < s->n_devices ? s->dev[device].d.name : "none";
}

void cn_sched_stats(cn_sched *s, int device, cn_sched_device_stats *out) {
    memset(out, 0, sizeof *out);
    if (device < 0 || device >= s->n_devices)
        return;
    pthread_mutex_lock(&s->mu);
    *out = s->dev[device].st;
    pthread_mutex_unlock(&s->mu);
}

void cn_sched_metrics(cn_sched *s, cn_strbuf *sb) {
    cn_sched_device_stats st[CN_SCHED_MAX_DEVICES];
    for (int i = 0; i < s->n_devices; i++)
        cn_sched_stats(s, i, &st[i]);
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"canary_device_healthy", "gauge", "1 while the device runs batches, 0 after it failed."},
        {"canary_device_busy_workers", "gauge", "Executors of the device running a batch now."},
        {"canary_device_memory_in_use_bytes", "gauge", "Batch memory admitted on the device now."},
        {"canary_device_memory_budget_bytes", "gauge", "Batch memory the device admits at once (0 = unlimited)."},
        {"canary_device_busy_seconds_total", "counter", "Time the device's executors spent running batches."},
        {"canary_device_batches_total", "counter", "Batches run on the device, by outcome."},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        cn_sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name, m[k].type);
        for (int i = 0; i < s->n_devices; i++) {
            const char *dev = s->dev[i].d.name;
            switch (k) {
            case 0: cn_sb_printf(sb, "%s{device=\"%s\"} %d\n", m[k].name, dev, st[i].healthy ? 1 : 0); break;
            case 1: cn_sb_printf(sb, "%s{device=\"%s\"} %d\n", m[k].name, dev, st[i].busy_workers); break;
            case 2:
                cn_sb_printf(sb, "%s{device=\"%s\"} %llu\n", m[k].name, dev, (unsigned long long)st[i].mem_in_use);
                break;
            case 3:
                cn_sb_printf(sb, "%s{device=\"%s\"} %llu\n", m[k].name, dev,
                             (unsigned long long)s->dev[i].d.mem_budget);
                break;
            case 4: cn_sb_printf(sb, "%s{device=\"%s\"} %.6f\n", m[k].name, dev, (double)st[i].busy_ns * 1e-9); break;
            default:
                cn_sb_printf(sb, "%s{device=\"%s\",outcome=\"done\"} %llu\n", m[k].name, dev,
                             (unsigned long long)st[i].batches_done);
                cn_sb_printf(sb, "%s{device=\"%s\",outcome=\"failed\"} %llu\n", m[k].name, dev,
                             (unsigned long long)st[i].batches_failed);
                break;
            }
        }
    }
}

void cn_sched_stats_json(cn_sched *s, cn_strbuf *sb) {
    cn_sb_putc(sb, '[');
    for (int i = 0; i < s->n_devices; i++) {
        cn_sched_device_stats st;
        cn_sched_stats(s, i, &st);
        cn_sb_puts(sb, i ? ",{\"device\":" : "{\"device\":");
        cn_sb_json_string(sb, s->dev[i].d.name);
        cn_sb_printf(sb,
                     ",\"healthy\":%s,\"workers\":%d,\"busy_workers\":%d,\"memory_in_use_bytes\":%llu,"
                     "\"memory_budget_bytes\":%llu,\"busy_seconds\":%.6f,\"batches_done\":%llu,"
                     "\"batches_failed\":%llu,\"last_error\":",
                     st.healthy ? "true" : "false", s->dev[i].d.workers, st.busy_workers,
                     (unsigned long long)st.mem_in_use, (unsigned long long)s->dev[i].d.mem_budget,
                     (double)st.busy_ns * 1e-9, (unsigned long long)st.batches_done,
                     (unsigned long long)st.batches_failed);
        cn_sb_json_string(sb, st.last_error);
        cn_sb_putc(sb, '}');
    }
    cn_sb_putc(sb, ']');
}

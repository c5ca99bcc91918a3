/* The scheduler: a bounded set of unfinished jobs, a FIFO of queued ones and an "active" set.
 * Feeder threads (server.workers) open active jobs and prepare their next chunks (decoding the
 * audio); batches are formed from the prepared chunks of all active jobs, round-robin one chunk
 * per job per round, and run on the device executors of hw/sched (least-loaded healthy device
 * with the memory for the batch; a failing device's batches move to the others). Interleaving
 * at chunk granularity is what lets a 3-second job submitted while a 3-hour job runs finish
 * within seconds: it joins the active set at once and its chunk rides in the next batch. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "service/internal.h"

sjob *sjob_new(void) {
    sjob *j = calloc(1, sizeof *j);
    if (j) {
        j->refs = 1; /* the live list's reference */
        atomic_init(&j->cancel, false);
    }
    return j;
}

static void sjob_free(sjob *j) {
    free(j->audio_path);
    free(j->opts.prompt);
    free(j->error);
    free(j->error_code);
    free(j->result_json);
    free(j);
}

static void bump(cn_service *s) {
    s->version++;
    pthread_cond_broadcast(&s->changed);
}

static void live_remove(cn_service *s, sjob *j) {
    for (int i = 0; i < s->n_live; i++)
        if (s->live[i] == j) {
            s->live[i] = s->live[--s->n_live];
            break;
        }
}

void sched_release(cn_service *s, sjob *j) {
    pthread_mutex_lock(&s->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        sjob_free(j);
}

sjob *sched_find(cn_service *s, const char *id, const char *owner) {
    sjob *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_live; i++)
        if (strcmp(s->live[i]->id, id) == 0 && (!owner || strcmp(s->live[i]->owner, owner) == 0)) {
            found = s->live[i];
            found->refs++;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return found;
}

int sched_unfinished(cn_service *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_live;
    pthread_mutex_unlock(&s->mu);
    return n;
}

cn_status sched_submit(cn_service *s, sjob *j, bool accepted, cn_error *err) {
    pthread_mutex_lock(&s->mu);
    if ((!accepted && s->n_live >= s->opt.queue_size) || s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return cn_error_set(err, CANARY_ELIMIT, "the queue is full (%d unfinished jobs, server.queue_size = %d)",
                            s->n_live, s->opt.queue_size);
    }
    if (s->n_live == s->cap_live) {
        int cap = s->cap_live ? s->cap_live * 2 : 64;
        sjob **g = realloc(s->live, (size_t)cap * sizeof *g);
        if (!g) {
            pthread_mutex_unlock(&s->mu);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory queueing a job");
        }
        s->live = g;
        s->cap_live = cap;
    }
    s->live[s->n_live++] = j;
    j->status = CN_JOB_QUEUED;
    j->next = NULL;
    if (s->pending_tail)
        s->pending_tail->next = j;
    else
        s->pending_head = j;
    s->pending_tail = j;
    bump(s);
    pthread_mutex_unlock(&s->mu);
    return CANARY_OK;
}

/* Records a terminal state: store first (so that a client that sees the state in memory finds it
 * in the store too), then memory. Called without s->mu. */
static void finish_job(cn_service *s, sjob *j, cn_job_status st, const char *result, const char *error,
                       const char *code, cn_status err_status) {
    int64_t now = cn_unix_ms();
    if (j->persistent) {
        cn_error err;
        cn_error_clear(&err);
        if (s->store->ops->set_finished(s->store, j->id, st, now, result, error, code, &err) != CANARY_OK)
            CN_ERROR("sched", "job %s: %s", j->id, err.msg);
    }
    if (j->audio_path && unlink(j->audio_path) != 0 && errno != ENOENT)
        CN_WARN("sched", "job %s: cannot delete audio %s: %s", j->id, j->audio_path, strerror(errno));
    if (j->session) {
        s->tr->ops->close(s->tr, j->session);
        j->session = NULL;
    }
    metrics_finished(s, st);
    if (st == CN_JOB_COMPLETED)
        CN_INFO("sched", "job %s completed (%.1f s of audio, %d chunks)", j->id, j->audio_seconds, j->chunks_total);
    else
        CN_INFO("sched", "job %s %s: %s", j->id, cn_job_status_name(st), error ? error : "");
    pthread_mutex_lock(&s->mu);
    j->status = st;
    j->finished_ms = now;
    j->error_status = err_status;
    free(j->error);
    free(j->error_code);
    j->error = error ? strdup(error) : NULL;
    j->error_code = code ? strdup(code) : NULL;
    if (result && !j->persistent)
        j->result_json = strdup(result);
    if (j->active) {
        j->active = false;
        s->n_active--;
    }
    live_remove(s, j);
    bool webhook = j->persistent && j->has_webhook;
    bump(s);
    pthread_mutex_unlock(&s->mu);
    if (webhook)
        webhook_enqueue(s, j->id);
    sched_release(s, j);
}

static const char *error_code_for(cn_status st) {
    switch (st) {
    case CANARY_EFORMAT:
    case CANARY_EUNSUPPORTED:
        return "invalid_audio";
    case CANARY_ELIMIT:
        return "limit_exceeded";
    case CANARY_ECANCELED:
        return "canceled";
    case CANARY_EINVAL:
        return "invalid_request";
    case CANARY_EDEVICE:
        return "device_failed"; /* the hardware, not the request or our code: GET / says which */
    case CANARY_ENOMEM:
        return "out_of_memory"; /* not even one chunk fits (batches are split first) */
    default:
        return "internal_error";
    }
}

void sched_cancel(cn_service *s, sjob *j) {
    atomic_store(&j->cancel, true);
    pthread_mutex_lock(&s->mu);
    bool queued = j->status == CN_JOB_QUEUED && !j->active && !j->busy;
    if (queued) { /* unlink from the FIFO and finish it here */
        sjob **pp = &s->pending_head, *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = j->next;
            if (s->pending_tail == j)
                s->pending_tail = prev;
        } else {
            queued = false;
        }
    }
    bump(s);
    pthread_mutex_unlock(&s->mu);
    if (queued)
        finish_job(s, j, CN_JOB_CANCELED, NULL, "canceled by the client", "canceled", CANARY_ECANCELED);
}

/* ---------- devices: one executor per device worker, driven by hw/sched ---------- */

typedef struct sbatch {
    cn_sched_batch sb;
    cn_service *s;
    int n;
    cn_job_chunk *chunks[SCHED_MAX_PREP];
    sjob *jobs[SCHED_MAX_PREP];
    int slot[SCHED_MAX_PREP]; /* index into jobs[i]->prep */
} sbatch;

/* Runs chunks on a device executor. A batch the device has no memory for (another process took
 * it, or shapes the memory model did not foresee) runs again as halves, down to one chunk, and
 * the device's batch limit drops to the half that was tried: time is lost once, not the jobs. */
static cn_status run_chunks(cn_service *s, int device, int worker, cn_job_chunk *const *chunks, int n,
                            cn_error *err) {
    cn_status st = s->tr->ops->run_batch(s->tr, device, worker, chunks, n, err);
    if (st != CANARY_ENOMEM || n < 2)
        return st;
    int h = n / 2;
    pthread_mutex_lock(&s->mu);
    bool lowered = s->dev[device].max_batch > n - h;
    if (lowered)
        s->dev[device].max_batch = n - h;
    pthread_mutex_unlock(&s->mu);
    CN_WARN("sched", "%s: out of memory for a batch of %d chunks (%s); running it as %d + %d%s", s->dev[device].name,
            n, err->msg, h, n - h, lowered ? "; batches of at most that from now on" : "");
    cn_error_clear(err);
    st = run_chunks(s, device, worker, chunks, h, err);
    return st == CANARY_OK ? run_chunks(s, device, worker, chunks + h, n - h, err) : st;
}

/* Runs a batch on one device executor; a batch larger than the device's max_batch (formed for a
 * bigger device, or before the limit dropped) runs as several calls. */
static cn_status device_run(void *ctx, int worker, cn_sched_batch *b, cn_error *err) {
    struct xs_device_ctx *dc = ctx;
    cn_service *s = dc->s;
    sbatch *x = b->payload;
    pthread_mutex_lock(&s->mu);
    int max = s->dev[dc->device].max_batch > 0 ? s->dev[dc->device].max_batch : 1;
    pthread_mutex_unlock(&s->mu);
    double t0 = cn_now_s();
    cn_status st = CANARY_OK;
    for (int off = 0; off < x->n && st == CANARY_OK; off += max) {
        int n = x->n - off < max ? x->n - off : max;
        st = run_chunks(s, dc->device, worker, x->chunks + off, n, err);
    }
    double dt = cn_now_s() - t0;
    pthread_mutex_lock(&s->m.mu);
    s->m.busy_seconds += dt;
    pthread_mutex_unlock(&s->m.mu);
    return st;
}

static void batch_done(cn_sched_batch *b, void *user);

/* The batch size the service forms: the largest batch a healthy device takes (its max_batch,
 * fewer when its memory budget admits fewer; a device with a smaller max_batch splits it), and
 * the executors that may run one at a time. Called with s->mu held. */
static void device_capacity(cn_service *s, int *slots, int *cap, uint64_t *item_bytes, int *chunk_slots) {
    *slots = 0;
    *cap = 1;
    *item_bytes = 0;
    *chunk_slots = 0;
    for (int i = 0; i < s->n_dev; i++) {
        cn_sched_device_stats st;
        cn_sched_stats(s->xs, i, &st);
        if (!st.healthy)
            continue;
        *slots += s->dev[i].workers;
        int max = s->dev[i].max_batch > 0 ? s->dev[i].max_batch : 1;
        *chunk_slots += s->dev[i].workers * max;
        /* no larger than the device can admit at all */
        if (s->dev[i].mem_budget && s->dev[i].item_bytes && s->dev[i].mem_budget / s->dev[i].item_bytes < (uint64_t)max)
            max = (int)(s->dev[i].mem_budget / s->dev[i].item_bytes);
        if (max > *cap)
            *cap = max;
        if (s->dev[i].item_bytes > *item_bytes)
            *item_bytes = s->dev[i].item_bytes;
    }
    if (*cap > SCHED_MAX_PREP)
        *cap = SCHED_MAX_PREP;
}

static bool chunk_waiting(const sjob *j, const char *key) {
    if (j->ending || atomic_load(&j->cancel))
        return false;
    for (int k = 0; k < j->n_prep; k++)
        if (j->prep[k].state == CHUNK_READY && (!key || strcmp(j->prep[k].c->batch_key, key) == 0))
            return true;
    return false;
}

/* Forms batches while executors are free: chunks are taken round-robin across jobs (one chunk
 * per job per round, starting after the job served first last time), so a short job's chunk
 * rides in the next batch beside a long job's; only chunks with the first chunk's batch_key
 * join it. Called with s->mu held; the batches are submitted after unlocking (submit may call
 * batch_done). */
static int form_batches(cn_service *s, sbatch **out, int max_out) {
    if (!s->xs || s->stopping)
        return 0;
    int slots, cap, chunk_slots;
    uint64_t item_bytes;
    device_capacity(s, &slots, &cap, &item_bytes, &chunk_slots);
    if (slots == 0)
        slots = 1; /* no healthy device left: submitting fails the batch with that reason */
    int n_out = 0;
    while (s->in_flight < slots && n_out < max_out && s->n_live > 0) {
        int n = s->n_live, first = -1;
        for (int k = 0; k < n && first < 0; k++)
            if (chunk_waiting(s->live[(s->rr + k) % n], NULL))
                first = (s->rr + k) % n;
        if (first < 0)
            break;
        sbatch *x = calloc(1, sizeof *x);
        if (!x)
            break;
        x->s = s;
        const char *key = NULL;
        for (bool took = true; took && x->n < cap;) {
            took = false;
            for (int k = 0; k < n && x->n < cap; k++) {
                sjob *j = s->live[(first + k) % n];
                if (!chunk_waiting(j, key))
                    continue;
                for (int c = 0; c < j->n_prep; c++)
                    if (j->prep[c].state == CHUNK_READY && (!key || strcmp(j->prep[c].c->batch_key, key) == 0)) {
                        prep_chunk *pc = &j->prep[c];
                        key = pc->c->batch_key;
                        pc->state = CHUNK_RUNNING;
                        s->n_ready--;
                        j->n_running++;
                        j->refs++;
                        x->chunks[x->n] = pc->c;
                        x->jobs[x->n] = j;
                        x->slot[x->n] = c;
                        x->sb.cost += pc->c->seconds;
                        x->n++;
                        took = true;
                        break;
                    }
            }
        }
        s->rr = (first + 1) % n;
        x->sb.mem_bytes = item_bytes * (uint64_t)x->n;
        x->sb.payload = x;
        x->sb.done = batch_done;
        x->sb.user = x;
        s->in_flight++;
        out[n_out++] = x;
    }
    return n_out;
}

/* Forms and submits what can run now. Called without s->mu. */
static void pump(cn_service *s) {
    for (;;) {
        sbatch *xs[8];
        pthread_mutex_lock(&s->mu);
        int n = form_batches(s, xs, 8);
        cn_sched *sched = s->xs;
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n; i++) {
            cn_error err;
            cn_error_clear(&err);
            if (cn_sched_submit(sched, &xs[i]->sb, &err) != CANARY_OK) {
                xs[i]->sb.status = err.code ? err.code : CANARY_EDEVICE;
                snprintf(xs[i]->sb.error, sizeof xs[i]->sb.error, "%s", err.msg);
                xs[i]->sb.device = -1;
                batch_done(&xs[i]->sb, xs[i]);
            }
        }
        if (n < 8)
            return;
    }
}

/* From a device executor: route the results back to their jobs (the feeders complete them). */
static void batch_done(cn_sched_batch *b, void *user) {
    sbatch *x = user;
    cn_service *s = x->s;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < x->n; i++) {
        sjob *j = x->jobs[i];
        prep_chunk *pc = &j->prep[x->slot[i]];
        j->n_running--;
        if (b->status == CANARY_OK) {
            pc->state = CHUNK_RETURNED;
            if (b->device >= 0 && b->device < 32)
                j->device_mask |= 1u << b->device;
        } else {
            pc->state = CHUNK_FAILED;
            if (j->chunk_status == CANARY_OK) {
                j->chunk_status = b->status;
                snprintf(j->chunk_error, sizeof j->chunk_error, "%s", b->error[0] ? b->error : "the batch failed");
            }
        }
    }
    s->in_flight--;
    bump(s);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->m.mu);
    if (b->status == CANARY_OK) {
        s->m.batches++;
        s->m.batch_chunks += (uint64_t)x->n;
        s->m.chunks += (uint64_t)x->n;
    }
    pthread_mutex_unlock(&s->m.mu);
    for (int i = 0; i < x->n; i++)
        sched_release(s, x->jobs[i]);
    free(x);
    pump(s);
}

void sched_device_names(cn_service *s, uint32_t mask, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->n_dev && i < 32; i++)
        if (mask & (1u << i)) {
            int w = snprintf(buf + len, n - len, "%s%s", len ? "," : "", s->dev[i].name);
            if (w < 0 || (size_t)w >= n - len)
                break;
            len += (size_t)w;
        }
}

/* The executors, once the model (and so the device list) is ready. Called with s->mu held. */
static void devices_start(cn_service *s) {
    cn_transcriber *t = s->tr;
    s->n_dev = t->n_devices > 0 ? t->n_devices : 1;
    if (t->n_devices > 0)
        memcpy(s->dev, t->devices, sizeof s->dev[0] * (size_t)s->n_dev);
    else /* a transcriber without a device list: one device, the service's worker count */
        s->dev[0] = (cn_transcriber_device){.workers = s->n_workers, .max_batch = 1};
    if (!s->dev[0].name[0])
        snprintf(s->dev[0].name, sizeof s->dev[0].name, "%s", t->device[0] ? t->device : "cpu");
    cn_sched_device d[CN_TRANSCRIBER_MAX_DEVICES];
    memset(d, 0, sizeof d);
    for (int i = 0; i < s->n_dev; i++) {
        snprintf(d[i].name, sizeof d[i].name, "%s", s->dev[i].name);
        d[i].workers = s->dev[i].workers;
        d[i].mem_budget = s->dev[i].mem_budget;
        d[i].run = device_run;
        s->dev_ctx[i] = (struct xs_device_ctx){s, i};
        d[i].ctx = &s->dev_ctx[i];
    }
    cn_error err;
    cn_error_clear(&err);
    if (cn_sched_create(d, s->n_dev, &s->xs, &err) != CANARY_OK) {
        snprintf(s->xs_error, sizeof s->xs_error, "cannot start the device executors: %s", err.msg);
        CN_ERROR("sched", "%s", s->xs_error);
        return;
    }
    /* enough jobs in flight to fill every executor's batch twice over (short jobs give one chunk
     * each), and a few more to start at once */
    int batch_slots = 0;
    for (int i = 0; i < s->n_dev; i++)
        batch_slots += s->dev[i].workers * (s->dev[i].max_batch > 0 ? s->dev[i].max_batch : 1);
    s->chunk_slots = batch_slots;
    /* at most 64 + workers: every active job may hold a few chunks of decoded audio */
    int want = 2 * batch_slots < 64 ? 2 * batch_slots : 64;
    if (s->max_active < want + s->n_workers)
        s->max_active = want + s->n_workers;
    for (int i = 0; i < s->n_dev; i++)
        CN_INFO("sched", "device %s: %d executor(s), batches of up to %d chunk(s)%s", s->dev[i].name,
                s->dev[i].workers, s->dev[i].max_batch, s->dev[i].mem_budget ? ", memory admitted" : "");
}

/* Whether a feeder has something to do for `j`: open it, complete returned chunks (in order),
 * prepare the next ones, or end it (canceled / failed) once none of its chunks is running. */
static bool feedable(const cn_service *s, const sjob *j) {
    if (!j->active || j->busy)
        return false;
    bool cancel = atomic_load(&j->cancel);
    if (j->n_running > 0)
        return !cancel && j->next_complete < j->n_prep && j->prep[j->next_complete].state == CHUNK_RETURNED;
    if (cancel || !j->session)
        return true;
    /* preparing more: only while fewer chunks wait than four times what the executors hold
     * (each prepared chunk holds its decoded audio) */
    if (j->next_complete >= j->n_prep)
        return s->n_ready < 4 * (s->chunk_slots > 0 ? s->chunk_slots : 1);
    chunk_state st = j->prep[j->next_complete].state;
    return st == CHUNK_RETURNED || st == CHUNK_FAILED;
}

/* Picks the next job a feeder serves: active jobs round-robin; queued jobs join while there is
 * room. */
static sjob *pick(cn_service *s) {
    if (!s->tr->ready)
        return NULL; /* the model is still loading: jobs wait queued (cn_service_model_ready wakes us) */
    if (!s->xs && !s->xs_error[0])
        devices_start(s);
    while (s->pending_head && s->n_active < s->max_active) {
        sjob *j = s->pending_head;
        s->pending_head = j->next;
        if (!s->pending_head)
            s->pending_tail = NULL;
        j->next = NULL;
        j->active = true;
        s->n_active++;
    }
    int n = s->n_live;
    for (int k = 0; k < n; k++) {
        sjob *j = s->live[(s->feed_rr + k) % n];
        if (feedable(s, j)) {
            s->feed_rr = (s->feed_rr + k + 1) % n;
            return j;
        }
    }
    return NULL;
}

static void fail_job(cn_service *s, sjob *j, cn_status st, const char *msg) {
    finish_job(s, j, CN_JOB_FAILED, NULL, msg, s->tr->ready ? error_code_for(st) : "model_not_loaded", st);
}

/* Before ending a job: true when none of its chunks is in a batch (their buffers belong to its
 * session); from then on its prepared chunks join no batch. */
static bool claim_end(cn_service *s, sjob *j) {
    pthread_mutex_lock(&s->mu);
    bool ok = j->n_running == 0;
    if (ok && !j->ending) {
        j->ending = true;
        for (int k = 0; k < j->n_prep; k++)
            s->n_ready -= j->prep[k].state == CHUNK_READY;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* One feeder turn for `j` (j->busy is set, so no other feeder touches it). */
static void feed(cn_service *s, sjob *j) {
    cn_error err;
    cn_error_clear(&err);
    cn_transcriber *t = s->tr;
    if (atomic_load(&j->cancel)) {
        if (!claim_end(s, j))
            return; /* back when its running chunks are */
        finish_job(s, j, CN_JOB_CANCELED, NULL, "canceled by the client", "canceled", CANARY_ECANCELED);
        return;
    }
    if (!j->session) {
        if (s->xs_error[0]) {
            fail_job(s, j, CANARY_EDEVICE, s->xs_error);
            return;
        }
        int n_chunks = 0;
        cn_status st = t->ops->open(t, j->audio_path, &j->opts, &j->session, &n_chunks, &err);
        if (st == CANARY_OK && j->audio_seconds > s->opt.max_audio_seconds)
            st = cn_error_set(&err, CANARY_ELIMIT, "the audio is %.1f s long; server.max_audio_seconds is %.0f s",
                              j->audio_seconds, s->opt.max_audio_seconds);
        if (st != CANARY_OK) {
            fail_job(s, j, st, err.msg);
            return;
        }
        int64_t now = cn_unix_ms();
        if (j->persistent &&
            s->store->ops->set_processing(s->store, j->id, now, j->audio_seconds, n_chunks, "", &err))
            CN_ERROR("sched", "job %s: %s", j->id, err.msg);
        pthread_mutex_lock(&s->mu);
        j->status = CN_JOB_PROCESSING;
        j->started_ms = now;
        j->chunks_total = n_chunks;
        bump(s);
        pthread_mutex_unlock(&s->mu);
        CN_INFO("sched", "job %s processing (%.1f s of audio, %d chunks)", j->id, j->audio_seconds, n_chunks);
    }
    /* results back, in the order prepare() gave the chunks */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        prep_chunk *pc = j->next_complete < j->n_prep ? &j->prep[j->next_complete] : NULL;
        chunk_state state = pc ? pc->state : CHUNK_READY;
        bool others_running = j->n_running > 0;
        pthread_mutex_unlock(&s->mu);
        if (!pc || state == CHUNK_READY || state == CHUNK_RUNNING)
            break;
        if (state == CHUNK_FAILED) {
            if (others_running || !claim_end(s, j))
                return; /* fail it once its other chunks are back (they use its buffers) */
            fail_job(s, j, j->chunk_status, j->chunk_error);
            return;
        }
        cn_step_progress pr = {0};
        cn_status st = t->ops->complete(t, j->session, pc->c, &pr, &err);
        if (st != CANARY_OK) {
            pthread_mutex_lock(&s->mu);
            pc->state = CHUNK_FAILED;
            if (j->chunk_status == CANARY_OK) {
                j->chunk_status = st;
                snprintf(j->chunk_error, sizeof j->chunk_error, "%s", err.msg);
            }
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        j->next_complete++;
        j->chunks_done = pr.chunks_done;
        if (pr.chunks_total > 0)
            j->chunks_total = pr.chunks_total;
        if (j->chunks_total < j->chunks_done)
            j->chunks_total = j->chunks_done;
        bump(s);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    bool all_back = j->next_complete >= j->n_prep;
    /* A job may prepare enough chunks to fill every executor twice (a lone long job then uses
     * all the devices, and its next batch is ready while one runs), at most SCHED_MAX_PREP. */
    int cap = 1, slots, chunk_slots = 1;
    uint64_t item;
    if (s->xs)
        device_capacity(s, &slots, &cap, &item, &chunk_slots);
    cap = 2 * chunk_slots < 1 ? 1 : 2 * chunk_slots > SCHED_MAX_PREP ? SCHED_MAX_PREP : 2 * chunk_slots;
    pthread_mutex_unlock(&s->mu);
    if (!all_back)
        return; /* more of its chunks are still in batches */

    cn_job_chunk *chunks[SCHED_MAX_PREP];
    int n = 0;
    cn_status st = t->ops->prepare(t, j->session, &j->cancel, cap, chunks, &n, &err);
    if (st == CANARY_ECANCELED || atomic_load(&j->cancel)) {
        claim_end(s, j); /* none running: all were back before prepare */
        finish_job(s, j, CN_JOB_CANCELED, NULL, "canceled by the client", "canceled", CANARY_ECANCELED);
        return;
    }
    if (st == CANARY_OK && (n < 0 || n > cap))
        st = cn_error_set(&err, CANARY_EINVAL, "the transcriber prepared %d chunks (at most %d asked)", n, cap);
    if (st != CANARY_OK) {
        fail_job(s, j, st, err.msg);
        return;
    }
    if (n > 0) {
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++)
            j->prep[i] = (prep_chunk){.c = chunks[i], .state = CHUNK_READY};
        j->n_prep = n;
        j->next_complete = 0;
        s->n_ready += n;
        pthread_mutex_unlock(&s->mu);
        return; /* pump() batches them */
    }
    /* no audio left: the transcript (the total was an estimate until now) */
    char devs[256];
    pthread_mutex_lock(&s->mu);
    j->chunks_total = j->chunks_done;
    sched_device_names(s, j->device_mask, devs, sizeof devs);
    bump(s);
    pthread_mutex_unlock(&s->mu);
    if (j->persistent) {
        if (s->store->ops->set_progress(s->store, j->id, j->chunks_done, j->chunks_total, devs, &err))
            CN_ERROR("sched", "job %s: %s", j->id, err.msg);
    }
    cn_transcript tr;
    st = t->ops->finish(t, j->session, &tr, &err);
    if (st != CANARY_OK) {
        fail_job(s, j, st, err.msg);
        return;
    }
    char *json = cn_transcript_to_json(&tr);
    cn_transcript_free(&tr);
    if (!json) {
        finish_job(s, j, CN_JOB_FAILED, NULL, "out of memory serialising the transcript", "internal_error",
                   CANARY_ENOMEM);
        return;
    }
    pthread_mutex_lock(&s->m.mu);
    s->m.audio_seconds_done += j->audio_seconds;
    pthread_mutex_unlock(&s->m.mu);
    finish_job(s, j, CN_JOB_COMPLETED, json, NULL, NULL, CANARY_OK);
    free(json);
}

static void *worker_main(void *arg) {
    cn_service *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        sjob *j = pick(s);
        if (!j) {
            pthread_cond_wait(&s->changed, &s->mu);
            continue;
        }
        j->busy = true;
        j->refs++;
        pthread_mutex_unlock(&s->mu);
        feed(s, j);
        pthread_mutex_lock(&s->mu);
        j->busy = false;
        bump(s);
        pthread_mutex_unlock(&s->mu);
        sched_release(s, j);
        pump(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void abs_deadline(struct timespec *ts, double timeout_s) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    double whole = floor(timeout_s);
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool sched_wait(cn_service *s, sjob *j, double timeout_s) {
    struct timespec ts;
    abs_deadline(&ts, timeout_s);
    pthread_mutex_lock(&s->mu);
    while (!cn_job_status_terminal(j->status) && !s->stopping)
        if (pthread_cond_timedwait(&s->changed, &s->mu, &ts) == ETIMEDOUT)
            break;
    bool done = cn_job_status_terminal(j->status);
    pthread_mutex_unlock(&s->mu);
    return done;
}

void sched_wait_change(cn_service *s, uint64_t *seen, double timeout_s) {
    struct timespec ts;
    abs_deadline(&ts, timeout_s);
    pthread_mutex_lock(&s->mu);
    while (s->version == *seen && !s->stopping)
        if (pthread_cond_timedwait(&s->changed, &s->mu, &ts) == ETIMEDOUT)
            break;
    *seen = s->version;
    pthread_mutex_unlock(&s->mu);
}

/* Parses the stored options of a job back (the same JSON the HTTP layer wrote). */
#include <jansson.h>
static void options_from_json(const char *text, cn_transcribe_options *o) {
    memset(o, 0, sizeof *o);
    o->pnc = true;
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (!j)
        return;
    const char *task = json_string_value(json_object_get(j, "task"));
    o->task = task && strcmp(task, "translate") == 0 ? CN_TASK_TRANSLATE : CN_TASK_TRANSCRIBE;
    const char *v;
    if ((v = json_string_value(json_object_get(j, "language"))))
        snprintf(o->language, sizeof o->language, "%s", v);
    if ((v = json_string_value(json_object_get(j, "target_language"))))
        snprintf(o->target_language, sizeof o->target_language, "%s", v);
    if ((v = json_string_value(json_object_get(j, "prompt"))))
        o->prompt = strdup(v);
    o->pnc = json_is_false(json_object_get(j, "pnc")) ? false : true;
    o->temperature = json_number_value(json_object_get(j, "temperature"));
    o->word_timestamps = json_is_true(json_object_get(j, "word_timestamps"));
    json_decref(j);
}

void sched_load_queued(cn_service *s) {
    cn_job_record *recs;
    int n;
    cn_error err;
    cn_error_clear(&err);
    if (s->store->ops->list_queued(s->store, &recs, &n, &err) != CANARY_OK) {
        CN_ERROR("sched", "cannot load queued jobs: %s", err.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        sjob *j = sjob_new();
        if (!j)
            break;
        snprintf(j->id, sizeof j->id, "%s", recs[i].id);
        snprintf(j->owner, sizeof j->owner, "%s", recs[i].owner);
        j->persistent = true;
        j->audio_path = recs[i].audio_path;
        recs[i].audio_path = NULL;
        j->audio_seconds = recs[i].audio_seconds;
        j->created_ms = recs[i].created_ms;
        j->has_webhook = recs[i].webhook_url != NULL;
        options_from_json(recs[i].options_json, &j->opts);
        if (sched_submit(s, j, true, &err) != CANARY_OK) {
            CN_ERROR("sched", "job %s: %s", recs[i].id, err.msg);
            sjob_free(j);
        }
    }
    if (n)
        CN_INFO("sched", "resumed %d queued job(s) from the store", n);
    cn_records_free(recs, n);
}

/* Removes finished jobs older than the retention time. */
static void *sweeper_main(void *arg) {
    cn_service *s = arg;
    double ttl_s = s->opt.result_ttl_hours * 3600.0;
    double period = fmin(60.0, fmax(0.2, ttl_s / 4));
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stopping;
        seen = s->version;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        char **paths;
        int n;
        cn_error err;
        cn_error_clear(&err);
        if (s->store->ops->expire(s->store, cn_unix_ms() - (int64_t)(ttl_s * 1000.0), &paths, &n, &err) != CANARY_OK)
            CN_WARN("sched", "expiring old jobs: %s", err.msg);
        else {
            for (int i = 0; i < n; i++) {
                unlink(paths[i]);
                free(paths[i]);
            }
            free(paths);
        }
        double until = cn_now_s() + period;
        while (cn_now_s() < until) {
            sched_wait_change(s, &seen, until - cn_now_s());
            pthread_mutex_lock(&s->mu);
            stop = s->stopping;
            pthread_mutex_unlock(&s->mu);
            if (stop)
                return NULL;
        }
    }
    return NULL;
}

cn_status sched_start(cn_service *s, cn_error *err) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    s->n_workers = s->opt.workers > 0 ? s->opt.workers : 1;
    /* A few more active jobs than workers, so that new short jobs start at once. */
    s->max_active = s->n_workers * 4;
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    for (int i = 0; i < s->n_workers; i++)
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) {
            s->n_workers = i;
            return cn_error_set(err, CANARY_EIO, "cannot start worker thread %d", i);
        }
    if (pthread_create(&s->sweeper_thread, NULL, sweeper_main, s) != 0)
        return cn_error_set(err, CANARY_EIO, "cannot start the expiry thread");
    return CANARY_OK;
}

void sched_stop(cn_service *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    bump(s);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    pthread_join(s->sweeper_thread, NULL);
    free(s->workers);
    /* batches on the devices finish (their results are dropped with the sessions below) */
    cn_sched_destroy(s->xs);
    s->xs = NULL;
    /* Unfinished jobs stay queued/processing in the store and run again at the next start. */
    for (int i = 0; i < s->n_live; i++) {
        sjob *j = s->live[i];
        if (j->session)
            s->tr->ops->close(s->tr, j->session);
        j->session = NULL;
        if (--j->refs == 0)
            sjob_free(j);
    }
    free(s->live);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->mu);
}

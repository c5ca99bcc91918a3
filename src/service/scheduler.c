/* The scheduler: a bounded set of unfinished jobs, a FIFO of queued ones and a small "active" set
 * whose chunks the workers run round-robin. Interleaving at chunk granularity is what lets a
 * 3-second job submitted while a 3-hour job runs finish within seconds: it joins the active set
 * at once and gets every other chunk. */
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

/* Picks the next runnable chunk: active jobs round-robin; queued jobs join while there is room. */
static sjob *pick(cn_service *s) {
    if (!s->tr->ready)
        return NULL; /* the model is still loading: jobs wait queued (cn_service_model_ready wakes us) */
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
        sjob *j = s->live[(s->rr + k) % n];
        if (j->active && !j->busy) {
            s->rr = (s->rr + k + 1) % n;
            return j;
        }
    }
    return NULL;
}

static void run_one(cn_service *s, sjob *j) {
    cn_error err;
    cn_error_clear(&err);
    cn_transcriber *t = s->tr;
    if (atomic_load(&j->cancel)) {
        finish_job(s, j, CN_JOB_CANCELED, NULL, "canceled by the client", "canceled", CANARY_ECANCELED);
        return;
    }
    double t0 = cn_now_s();
    if (!j->session) {
        int n_chunks = 0;
        cn_status st = t->ops->open(t, j->audio_path, &j->opts, &j->session, &n_chunks, &err);
        if (st == CANARY_OK && j->audio_seconds > s->opt.max_audio_seconds)
            st = cn_error_set(&err, CANARY_ELIMIT, "the audio is %.1f s long; server.max_audio_seconds is %.0f s",
                              j->audio_seconds, s->opt.max_audio_seconds);
        if (st != CANARY_OK) {
            finish_job(s, j, CN_JOB_FAILED, NULL, err.msg, t->ready ? error_code_for(st) : "model_not_loaded", st);
            return;
        }
        int64_t now = cn_unix_ms();
        if (j->persistent &&
            s->store->ops->set_processing(s->store, j->id, now, j->audio_seconds, n_chunks, t->device, &err))
            CN_ERROR("sched", "job %s: %s", j->id, err.msg);
        pthread_mutex_lock(&s->mu);
        j->status = CN_JOB_PROCESSING;
        j->started_ms = now;
        j->chunks_total = n_chunks;
        bump(s);
        pthread_mutex_unlock(&s->mu);
        CN_INFO("sched", "job %s processing (%.1f s of audio, %d chunks)", j->id, j->audio_seconds, n_chunks);
    }
    cn_step_progress pr = {0};
    cn_status st = t->ops->step(t, j->session, &j->cancel, &pr, &err);
    double dt = cn_now_s() - t0;
    pthread_mutex_lock(&s->m.mu);
    s->m.busy_seconds += dt;
    if (st == CANARY_OK && pr.chunks_done > j->chunks_done)
        s->m.chunks += (uint64_t)(pr.chunks_done - j->chunks_done);
    pthread_mutex_unlock(&s->m.mu);
    if (st == CANARY_ECANCELED || atomic_load(&j->cancel)) {
        finish_job(s, j, CN_JOB_CANCELED, NULL, "canceled by the client", "canceled", CANARY_ECANCELED);
        return;
    }
    if (st != CANARY_OK) {
        finish_job(s, j, CN_JOB_FAILED, NULL, err.msg, error_code_for(st), st);
        return;
    }
    pthread_mutex_lock(&s->mu);
    j->chunks_done = pr.chunks_done;
    if (pr.chunks_total > 0)
        j->chunks_total = pr.chunks_total;
    bump(s);
    pthread_mutex_unlock(&s->mu);
    if (pr.finished) {
        if (j->persistent && s->store->ops->set_progress(s->store, j->id, j->chunks_done, j->chunks_total, &err))
            CN_ERROR("sched", "job %s: %s", j->id, err.msg);
        cn_transcript tr;
        st = t->ops->finish(t, j->session, &tr, &err);
        if (st != CANARY_OK) {
            finish_job(s, j, CN_JOB_FAILED, NULL, err.msg, error_code_for(st), st);
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
        run_one(s, j);
        pthread_mutex_lock(&s->mu);
        j->busy = false;
        bump(s);
        pthread_mutex_unlock(&s->mu);
        sched_release(s, j);
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

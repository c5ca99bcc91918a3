/* Shared state of the service's parts (scheduler, webhooks, HTTP front end). Not a public header. */
#ifndef CN_SERVICE_INTERNAL_H
#define CN_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hw/sched.h"
#include "service/service.h"
#include "service/store.h"

/* Chunks one prepare() may hand out (also the largest batch the service forms). */
#define SCHED_MAX_PREP 64

typedef enum chunk_state {
    CHUNK_READY = 0,         /* prepared, waiting for a batch */
    CHUNK_RUNNING,           /* in a batch on a device */
    CHUNK_RETURNED,          /* ran; complete() it */
    CHUNK_FAILED             /* its batch failed: the job fails with `error` */
} chunk_state;

typedef struct prep_chunk {
    cn_job_chunk *c;
    chunk_state state;
} prep_chunk;

/* A job the scheduler knows: every unfinished job (persistent or a synchronous request). */
typedef struct sjob {
    char id[40];
    char owner[72];
    bool persistent;         /* a /v1/jobs job (in the store) rather than a synchronous request */
    int refs;                /* under sched.mu */
    cn_job_status status;
    atomic_bool cancel;
    char *audio_path;
    cn_transcribe_options opts;
    double audio_seconds;
    int chunks_done, chunks_total;
    int64_t created_ms, started_ms, finished_ms;
    cn_status error_status;
    char *error, *error_code;
    char *result_json;       /* transcript, kept for synchronous requests */
    bool has_webhook;
    cn_transcription *session;
    bool busy, active;       /* busy: a feeder thread is calling the transcriber for it */
    prep_chunk prep[SCHED_MAX_PREP]; /* the chunks of the last prepare(), in order */
    int n_prep, next_complete, n_running;
    bool ending;             /* a feeder is ending it: its chunks join no batch */
    cn_status chunk_status;  /* the first failure of one of its chunks (CHUNK_FAILED) */
    char chunk_error[300];
    uint32_t device_mask;    /* devices that ran its chunks (bit = device index) */
    struct sjob *next;       /* pending FIFO link */
} sjob;

#define N_ROUTES_MAX 16
#define N_BUCKETS 12
typedef struct metrics {
    pthread_mutex_t mu;
    uint64_t requests[N_ROUTES_MAX][N_BUCKETS + 1]; /* histogram counts, last = +Inf */
    double request_seconds[N_ROUTES_MAX];
    uint64_t request_count[N_ROUTES_MAX];
    uint64_t finished[CN_JOB_N_STATUS];
    uint64_t chunks;
    double audio_seconds_done;
    double busy_seconds;     /* time device executors spent running batches */
    uint64_t batches, batch_chunks; /* batches run and the chunks in them */
    uint64_t webhooks_ok, webhooks_failed;
    uint64_t rejected_queue_full;
} metrics;

typedef struct webhook_item {
    char id[40];
    int attempt;
    double due;              /* monotonic seconds */
    struct webhook_item *next;
} webhook_item;

struct cn_service {
    cn_service_options opt;
    char *data_dir;
    cn_transcriber *tr;
    cn_store *store;
    char webhook_secret[128];
    char **keys;             /* API keys */
    int n_keys;
    double started_s;
    char *hardware_json;     /* detected once at start */

    /* scheduler */
    pthread_mutex_t mu;
    pthread_cond_t changed;  /* broadcast on every job change */
    uint64_t version;        /* bumped with every broadcast */
    sjob **live;             /* unfinished jobs */
    int n_live, cap_live;
    sjob *pending_head, *pending_tail;
    int n_active, max_active, rr, feed_rr; /* rr: batch formation; feed_rr: feeders */
    bool stopping;
    pthread_t *workers;      /* feeders: open, prepare (decode audio), complete, finish */
    int n_workers;
    /* devices: one executor per device worker (hw/sched.h), created once the model is ready */
    cn_sched *xs;
    char xs_error[256];      /* why it could not be created */
    int n_dev;
    cn_transcriber_device dev[CN_TRANSCRIBER_MAX_DEVICES];
    struct xs_device_ctx { struct cn_service *s; int device; } dev_ctx[CN_TRANSCRIBER_MAX_DEVICES];
    int in_flight;           /* batches submitted, not yet done */
    int n_ready;             /* prepared chunks waiting for a batch, over all jobs */
    int chunk_slots;         /* sum over devices of workers x max_batch */

    /* webhooks and expiry */
    pthread_mutex_t wmu;
    pthread_cond_t wcond;
    webhook_item *wq;
    pthread_t webhook_thread, sweeper_thread;

    metrics m;
    void *daemon;            /* struct MHD_Daemon */
    int port;
};

/* scheduler.c */
cn_status sched_start(cn_service *s, cn_error *err);
/* Names of the devices in `mask` ("cpu,cuda:0") into buf. */
void sched_device_names(cn_service *s, uint32_t mask, char *buf, size_t n);
void sched_stop(cn_service *s);
/* Adds a job (takes ownership of audio_path and options strings). Fails with ELIMIT when full,
 * unless `accepted` (a job already acknowledged to its client, which must run regardless). */
cn_status sched_submit(cn_service *s, sjob *j, bool accepted, cn_error *err);
sjob *sjob_new(void);
/* Finds a live job by id (owner NULL = any) and takes a reference; NULL when not live. */
sjob *sched_find(cn_service *s, const char *id, const char *owner);
void sched_release(cn_service *s, sjob *j);
/* Requests cancellation; a queued job ends at once. */
void sched_cancel(cn_service *s, sjob *j);
int sched_unfinished(cn_service *s);
/* Waits until the job is terminal or `timeout_s` passes; true when terminal. */
bool sched_wait(cn_service *s, sjob *j, double timeout_s);
/* Waits until version != *seen or timeout; updates *seen. */
void sched_wait_change(cn_service *s, uint64_t *seen, double timeout_s);
void sched_load_queued(cn_service *s);

/* webhook.c */
cn_status webhook_start(cn_service *s, cn_error *err);
void webhook_stop(cn_service *s);
void webhook_enqueue(cn_service *s, const char *id);
cn_status webhook_load_secret(cn_service *s, cn_error *err);

/* http.c */
cn_status http_start(cn_service *s, cn_error *err);
void http_stop(cn_service *s);
/* The job object of the API (record from the store, live progress overlaid). */
char *job_json_text(cn_service *s, const cn_job_record *r);
void metrics_finished(cn_service *s, cn_job_status st);

#endif

/* The durable job store behind a small interface: SQLite (WAL) today; a PostgreSQL back end can
 * implement the same operations later (server.database = postgresql://...).
 * Every operation is atomic and thread-safe. Uploaded audio lives in files under the data
 * directory; the store keeps their paths, the job state and the finished transcript. */
#ifndef CN_SERVICE_STORE_H
#define CN_SERVICE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

typedef enum cn_job_status {
    CN_JOB_QUEUED = 0,
    CN_JOB_PROCESSING,
    CN_JOB_COMPLETED,
    CN_JOB_FAILED,
    CN_JOB_CANCELED,
    CN_JOB_N_STATUS
} cn_job_status;

const char *cn_job_status_name(cn_job_status s);
bool cn_job_status_parse(const char *s, cn_job_status *out);
static inline bool cn_job_status_terminal(cn_job_status s) { return s >= CN_JOB_COMPLETED; }

typedef enum cn_webhook_state { CN_WEBHOOK_NONE = 0, CN_WEBHOOK_PENDING, CN_WEBHOOK_DELIVERED, CN_WEBHOOK_GAVE_UP } cn_webhook_state;

typedef struct cn_job_record {
    char id[40];
    char owner[72];          /* hash of the API key that created it; "" without auth */
    char *idempotency_key;   /* NULL if none */
    cn_job_status status;
    char *options_json;      /* task, language, ... as submitted (JSON object) */
    char *audio_path;        /* NULL once the audio is deleted */
    char *filename;          /* the client's file name */
    char *webhook_url;       /* NULL if none */
    cn_webhook_state webhook_state;
    double audio_seconds;
    int chunks_done, chunks_total;
    char *device;            /* the devices that ran it, comma-separated ("cpu", "cuda:0,cuda:1") */
    char *error;             /* message when failed/canceled */
    char *error_code;        /* short machine code ("invalid_audio", "canceled", ...) */
    char *result_json;       /* the transcript (cn_transcript_to_json) when completed and asked for */
    int64_t created_ms, started_ms, finished_ms; /* unix ms; 0 = not yet */
} cn_job_record;

void cn_job_record_free(cn_job_record *r);

typedef struct cn_store cn_store;

typedef struct cn_store_ops {
    /* Inserts a queued job. With an idempotency key already used by the same owner, inserts
     * nothing, fills `existing` with that job and sets *duplicate. */
    cn_status (*insert)(cn_store *s, const cn_job_record *r, bool *duplicate, cn_job_record *existing, cn_error *err);
    /* owner NULL = any owner. CANARY_ENOTFOUND when absent or owned by someone else. */
    cn_status (*get)(cn_store *s, const char *id, const char *owner, bool with_result, cn_job_record *out,
                     cn_error *err);
    /* Newest first; `after_id` (or NULL) continues a previous page; status < 0 = all. */
    cn_status (*list)(cn_store *s, const char *owner, int status, const char *after_id, int limit,
                      cn_job_record **out, int *n, bool *has_more, cn_error *err);
    cn_status (*set_processing)(cn_store *s, const char *id, int64_t started_ms, double audio_seconds,
                                int chunks_total, const char *device, cn_error *err);
    /* `devices`: the devices that ran its chunks so far, comma-separated ("cuda:0,cuda:1"). */
    cn_status (*set_progress)(cn_store *s, const char *id, int chunks_done, int chunks_total, const char *devices,
                              cn_error *err);
    /* Terminal state; clears audio_path (the caller deletes the file). */
    cn_status (*set_finished)(cn_store *s, const char *id, cn_job_status st, int64_t finished_ms, const char *result,
                              const char *error, const char *error_code, cn_error *err);
    cn_status (*set_webhook_state)(cn_store *s, const char *id, cn_webhook_state st, cn_error *err);
    cn_status (*remove)(cn_store *s, const char *id, cn_error *err);
    /* At startup: jobs left "processing" by a crash go back to "queued". */
    cn_status (*requeue_interrupted)(cn_store *s, int *n, cn_error *err);
    /* Queued jobs, oldest first (with_result false). */
    cn_status (*list_queued)(cn_store *s, cn_job_record **out, int *n, cn_error *err);
    /* Finished jobs whose webhook is still pending (to resend after a restart). */
    cn_status (*list_pending_webhooks)(cn_store *s, cn_job_record **out, int *n, cn_error *err);
    /* Finished jobs older than `before_ms`: removed, their audio paths returned to delete. */
    cn_status (*expire)(cn_store *s, int64_t before_ms, char ***paths, int *n, cn_error *err);
    cn_status (*count_by_status)(cn_store *s, long counts[CN_JOB_N_STATUS], cn_error *err);
    void (*close)(cn_store *s);
} cn_store_ops;

struct cn_store {
    const cn_store_ops *ops;
};

/* Opens (creating) <dir>/jobs.db in WAL mode. */
cn_status cn_store_open_sqlite(const char *dir, cn_store **out, cn_error *err);
/* Dispatches on `database`: "" = SQLite in data_dir; postgresql:// is not implemented yet. */
cn_status cn_store_open(const char *database, const char *data_dir, cn_store **out, cn_error *err);
void cn_records_free(cn_job_record *r, int n);

#endif

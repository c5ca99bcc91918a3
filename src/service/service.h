/* canary-stt serve: the HTTP service (OpenAI-compatible endpoints, durable async jobs, SSE
 * progress, webhooks) over a transcriber. See docs/API.md for the wire contract. */
#ifndef CN_SERVICE_SERVICE_H
#define CN_SERVICE_SERVICE_H

#include <stdbool.h>

#include "base/config.h"
#include "base/error.h"
#include "service/transcriber.h"

typedef struct cn_service_options {
    const char *host;          /* bind address (127.0.0.1 unless told otherwise) */
    int port;                  /* 0 = any free port (see cn_service_port) */
    const char *data_dir;
    const char *database;      /* "" = SQLite in data_dir */
    long long max_upload_bytes;
    double max_audio_seconds;
    int queue_size;            /* unfinished jobs (queued + processing) before 429 */
    int workers;               /* chunks run concurrently; 0 = auto */
    const char *api_keys;      /* comma-separated; "" = no auth */
    double result_ttl_hours;
    int request_timeout_s;     /* idle timeout while receiving a request */
    const char *webhook_secret; /* "" = a random secret kept in <data_dir>/webhook_secret */
    double webhook_backoff_s;  /* first retry delay; doubles per attempt */
    int webhook_attempts;
    const char *default_language; /* when a request names none */
    bool default_pnc;
} cn_service_options;

/* Maps the configuration's server.* settings onto options (strings point into cfg). */
void cn_service_options_from_config(const cn_config *cfg, cn_service_options *o);

typedef struct cn_service cn_service;

/* Opens the store under data_dir, requeues interrupted jobs, starts workers and the HTTP server.
 * The service borrows `t` (destroy it after cn_service_stop). */
cn_status cn_service_start(const cn_service_options *o, cn_transcriber *t, cn_service **out, cn_error *err);
int cn_service_port(const cn_service *s);
/* Tells the workers that the borrowed transcriber's `ready` became true (the model finished loading
 * after cn_service_start): queued jobs start. */
void cn_service_model_ready(cn_service *s);
/* Stops accepting requests, lets running chunks finish (their jobs stay queued for the next
 * start), and frees everything. */
void cn_service_stop(cn_service *s);

/* Runs the service until SIGINT/SIGTERM. Writes the bound port to `port_file` when not NULL
 * (tests use port 0). Returns a process exit status. */
int cn_service_run(const cn_service_options *o, cn_transcriber *t, const char *port_file);

/* One route of the HTTP API (exported so that a test keeps openapi.json in sync). */
typedef struct cn_route_info {
    const char *method;
    const char *path; /* OpenAPI template, e.g. /v1/jobs/{id} */
} cn_route_info;
extern const cn_route_info cn_service_routes[];
extern const int cn_service_n_routes;
/* The OpenAPI 3 document served at /openapi.json (docs/openapi.json, embedded at build time). */
extern const char cn_openapi_json[];

/* The "hardware" block of GET / (from the hw module's detection). Returns a JSON object text;
 * free() it. */
char *cn_service_hardware_json(int workers);

#endif

/* The HTTP front end on libmicrohttpd, one thread per connection: handlers may block (a
 * synchronous transcription waits for its job; an SSE stream waits for progress) without
 * stalling other clients, and a waiting handler can watch its own socket to notice a client that
 * went away. Uploads stream to a file under <data_dir>/tmp as they arrive. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "service/internal.h"
#include "service/request.h"

enum {
    R_ROOT, R_HEALTH, R_METRICS, R_OPENAPI, R_MODELS, R_TRANSCRIBE, R_TRANSLATE, R_JOB_SUBMIT, R_JOB_LIST,
    R_JOB_GET, R_JOB_DELETE, R_JOB_RESULT, R_JOB_EVENTS, R_N
};

const cn_route_info cn_service_routes[] = {
    [R_ROOT] = {"GET", "/"},
    [R_HEALTH] = {"GET", "/health"},
    [R_METRICS] = {"GET", "/metrics"},
    [R_OPENAPI] = {"GET", "/openapi.json"},
    [R_MODELS] = {"GET", "/v1/models"},
    [R_TRANSCRIBE] = {"POST", "/v1/audio/transcriptions"},
    [R_TRANSLATE] = {"POST", "/v1/audio/translations"},
    [R_JOB_SUBMIT] = {"POST", "/v1/jobs"},
    [R_JOB_LIST] = {"GET", "/v1/jobs"},
    [R_JOB_GET] = {"GET", "/v1/jobs/{id}"},
    [R_JOB_DELETE] = {"DELETE", "/v1/jobs/{id}"},
    [R_JOB_RESULT] = {"GET", "/v1/jobs/{id}/result"},
    [R_JOB_EVENTS] = {"GET", "/v1/jobs/{id}/events"},
};
const int cn_service_n_routes = R_N;
_Static_assert(R_N <= N_ROUTES_MAX, "grow N_ROUTES_MAX");

static const double buckets[N_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60};

typedef struct req {
    cn_service *s;
    int route;             /* -1 until matched */
    char rid[72];
    uint64_t t0;
    unsigned status;
    char owner[72];
    char id[40];           /* {id} of job routes */
    const char *method;
    char url[256];
    /* uploads */
    struct MHD_PostProcessor *pp;
    cn_form form;
    int fd;
    char file_path[4200];
    char filename[256];
    bool file_seen, too_large, bad;
    char bad_msg[512];
    const char *bad_param;
    unsigned long long body_bytes;
    /* the closing multipart delimiter: bytes after it (an epilogue, such as the CRLF the OpenAI
     * Node SDK appends) make libmicrohttpd 0.9.75's post processor fail, so they are dropped */
    char delim[96];
    size_t delim_len;
    char tail[96];
    size_t tail_len;
    bool closed;
    /* A refusal decided before the body (401, 429, 503...) is sent after the body has been
     * read: answering first makes the client see a reset instead of the error while it is
     * still sending. */
    bool defer;
    struct MHD_Response *deferred;
} req;

/* ---------- responses ---------- */

static enum MHD_Result queue(req *r, struct MHD_Connection *c, unsigned status, const char *ctype, char *body,
                             const char *retry_after) {
    if (!body)
        return MHD_NO; /* out of memory: drop the connection */
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    if (retry_after)
        MHD_add_response_header(resp, "Retry-After", retry_after);
    r->status = status;
    if (r->defer) {
        r->deferred = resp;
        return MHD_YES;
    }
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(req *r, struct MHD_Connection *c, unsigned status, json_t *o) {
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (!body)
        return MHD_NO;
    return queue(r, c, status, "application/json", body, NULL);
}

static const char *error_type(unsigned status) {
    if (status == 401)
        return "authentication_error";
    if (status == 429)
        return "rate_limit_error";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

/* OpenAI's error shape: {"error": {"message", "type", "param", "code"}}. */
static enum MHD_Result send_error(req *r, struct MHD_Connection *c, unsigned status, const char *param,
                                  const char *code, const char *retry_after, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static enum MHD_Result send_error(req *r, struct MHD_Connection *c, unsigned status, const char *param,
                                  const char *code, const char *retry_after, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg, "type", error_type(status), "param",
                          param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (!body)
        return MHD_NO;
    CN_INFO("http", "rid=%s %u: %s", r->rid, status, msg);
    return queue(r, c, status, "application/json", body, retry_after);
}

/* ---------- helpers ---------- */

static void random_hex(char *out, size_t nbytes) {
    unsigned char raw[32];
    if (nbytes > sizeof raw)
        nbytes = sizeof raw;
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes) /* fall back on the clock: ids must not repeat */
        for (size_t i = 0; i < nbytes; i++)
            raw[i] = (unsigned char)(cn_now_ns() >> (8 * (i % 8))) ^ (unsigned char)rand();
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static double unix_s(int64_t ms) { return (double)ms / 1000.0; }

char *job_json_text(cn_service *s, const cn_job_record *rec) {
    cn_job_status st = rec->status;
    int done = rec->chunks_done, total = rec->chunks_total;
    int64_t started = rec->started_ms;
    char live_devices[256] = "";
    /* the live job is fresher while it runs; once the store says finished it is final (finish_job
     * writes the store before the live status, and an SSE stream must not end on "processing") */
    sjob *live = cn_job_status_terminal(rec->status) ? NULL : sched_find(s, rec->id, NULL);
    if (live) {
        pthread_mutex_lock(&s->mu);
        if (!cn_job_status_terminal(live->status)) {
            st = live->status;
            done = live->chunks_done;
            total = live->chunks_total;
            if (live->started_ms)
                started = live->started_ms;
            sched_device_names(s, live->device_mask, live_devices, sizeof live_devices);
        }
        pthread_mutex_unlock(&s->mu);
        sched_release(s, live);
    }
    json_t *opts = rec->options_json ? json_loads(rec->options_json, 0, NULL) : NULL;
    if (!opts)
        opts = json_object();
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(rec->id));
    json_object_set_new(o, "object", json_string("job"));
    json_object_set_new(o, "status", json_string(cn_job_status_name(st)));
    const char *keys[] = {"task", "model", "language", "target_language", "response_format"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(opts, keys[i]);
        json_object_set(o, keys[i], v ? v : json_null());
    }
    json_object_set_new(o, "filename", rec->filename ? json_string(rec->filename) : json_null());
    json_object_set_new(o, "created_at", json_real(unix_s(rec->created_ms)));
    json_object_set_new(o, "started_at", started ? json_real(unix_s(started)) : json_null());
    json_object_set_new(o, "finished_at", rec->finished_ms ? json_real(unix_s(rec->finished_ms)) : json_null());
    json_object_set_new(o, "audio_seconds", json_real(rec->audio_seconds));
    double progress = st == CN_JOB_COMPLETED ? 1.0 : total > 0 ? (double)done / total : 0.0;
    json_object_set_new(o, "progress", json_real(progress));
    json_object_set_new(o, "chunks", json_pack("{s:i, s:i}", "done", st == CN_JOB_COMPLETED ? total : done,
                                                "total", total));
    json_t *eta = json_null();
    if (st == CN_JOB_PROCESSING && done > 0 && started) {
        double elapsed = unix_s(cn_unix_ms() - started);
        eta = json_real(round(elapsed / done * (total - done) * 10.0) / 10.0);
    }
    json_object_set_new(o, "eta_seconds", eta);
    /* the devices that ran its chunks (so far, while it runs); kept with the record once done */
    json_t *devices = json_array();
    const char *names = st == CN_JOB_PROCESSING ? live_devices : rec->device ? rec->device : "";
    for (const char *p = names; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n)
            json_array_append_new(devices, json_stringn(p, n));
        p += n + (e != NULL);
    }
    json_object_set_new(o, "devices", devices);
    json_object_set_new(o, "error",
                        rec->error ? json_pack("{s:s, s:s}", "message", rec->error, "code",
                                               rec->error_code ? rec->error_code : "error")
                                   : json_null());
    json_object_set_new(o, "webhook_url", rec->webhook_url ? json_string(rec->webhook_url) : json_null());
    json_decref(opts);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    return text;
}

void metrics_finished(cn_service *s, cn_job_status st) {
    pthread_mutex_lock(&s->m.mu);
    s->m.finished[st]++;
    pthread_mutex_unlock(&s->m.mu);
}

/* ---------- routing and auth ---------- */

static int match_route(const char *method, const char *url, char *id, size_t id_size, bool *known_path) {
    *known_path = false;
    for (int i = 0; i < R_N; i++) {
        if (strchr(cn_service_routes[i].path, '{'))
            continue;
        if (strcmp(url, cn_service_routes[i].path) == 0) {
            *known_path = true;
            if (strcmp(method, cn_service_routes[i].method) == 0)
                return i;
        }
    }
    if (strncmp(url, "/v1/jobs/", 9) == 0) {
        const char *p = url + 9, *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= id_size)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (!(p[i] == '_' || (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z')))
                return -1;
        memcpy(id, p, n);
        id[n] = 0;
        const char *rest = slash ? slash : "";
        *known_path = true;
        if (!*rest && !strcmp(method, "GET"))
            return R_JOB_GET;
        if (!*rest && !strcmp(method, "DELETE"))
            return R_JOB_DELETE;
        if (!strcmp(rest, "/result") && !strcmp(method, "GET"))
            return R_JOB_RESULT;
        if (!strcmp(rest, "/events") && !strcmp(method, "GET"))
            return R_JOB_EVENTS;
        if (*rest && strcmp(rest, "/result") && strcmp(rest, "/events"))
            *known_path = false;
    }
    return -1;
}

/* The owner of a request: "" without auth, else a hash of its key (raw keys are never stored). */
static bool authenticate(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    if (s->n_keys == 0)
        return true;
    const char *key;
    size_t len;
    if (!cn_bearer_token(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), &key, &len))
        return false;
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, h);
    bool ok = false;
    for (int i = 0; i < s->n_keys; i++) {
        unsigned char k[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)s->keys[i], strlen(s->keys[i]), k);
        if (CRYPTO_memcmp(h, k, sizeof h) == 0)
            ok = true;
    }
    if (!ok)
        return false;
    snprintf(r->owner, sizeof r->owner, "k_");
    for (int i = 0; i < 16; i++)
        snprintf(r->owner + 2 + 2 * i, 3, "%02x", h[i]);
    return true;
}

/* ---------- uploads ---------- */

static enum MHD_Result on_form(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data,
                               uint64_t off, size_t size) {
    req *r = cls;
    if (r->bad || r->too_large)
        return MHD_YES;
    if (strcmp(key, "file") == 0) {
        if (r->fd < 0) {
            if (r->file_seen) {
                r->bad = true;
                r->bad_param = "file";
                snprintf(r->bad_msg, sizeof r->bad_msg, "send exactly one 'file' field");
                return MHD_YES;
            }
            r->file_seen = true;
            snprintf(r->filename, sizeof r->filename, "%s", filename ? filename : "");
            snprintf(r->file_path, sizeof r->file_path, "%s/tmp/%s.part", r->s->data_dir, r->rid);
            r->fd = open(r->file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (r->fd < 0) {
                r->bad = true;
                snprintf(r->bad_msg, sizeof r->bad_msg, "cannot store the upload: %s", strerror(errno));
                r->file_path[0] = 0;
                return MHD_YES;
            }
        }
        size_t done = 0;
        while (done < size) {
            ssize_t w = write(r->fd, data + done, size - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r->bad = true;
                snprintf(r->bad_msg, sizeof r->bad_msg, "cannot store the upload: %s", strerror(errno));
                return MHD_YES;
            }
            done += (size_t)w;
        }
        return MHD_YES;
    }
    cn_error err;
    cn_error_clear(&err);
    if (cn_form_add(&r->form, key, data, off, size, &err) != CANARY_OK) {
        r->bad = true;
        r->bad_param = NULL;
        snprintf(r->bad_msg, sizeof r->bad_msg, "%s", err.msg);
    }
    return MHD_YES;
}

/* Remembers "\r\n--<boundary>--" from the Content-Type header. */
static void set_delimiter(req *r, const char *ctype) {
    const char *b = ctype ? strstr(ctype, "boundary=") : NULL;
    if (!b)
        return;
    b += 9;
    bool quoted = *b == '"';
    b += quoted;
    size_t n = 0;
    while (b[n] && (quoted ? b[n] != '"' : (b[n] != ';' && b[n] != ' ')))
        n++;
    if (n == 0 || n > 70)
        return;
    r->delim_len = (size_t)snprintf(r->delim, sizeof r->delim, "\r\n--%.*s--", (int)n, b);
}

/* How many bytes of `data` belong before the end of the multipart body (all when the closing
 * delimiter has not been seen yet); sets r->closed once it has. */
static size_t bytes_before_epilogue(req *r, const char *data, size_t n) {
    if (!r->delim_len)
        return n;
    size_t d = r->delim_len;
    char buf[192];
    size_t k = n < d - 1 ? n : d - 1;
    memcpy(buf, r->tail, r->tail_len);
    memcpy(buf + r->tail_len, data, k);
    const char *p = memmem(buf, r->tail_len + k, r->delim, d);
    if (p) {
        r->closed = true;
        return (size_t)(p - buf) + d - r->tail_len;
    }
    p = memmem(data, n, r->delim, d);
    if (p) {
        r->closed = true;
        return (size_t)(p - data) + d;
    }
    /* keep the last d-1 bytes of everything seen so far */
    size_t total = r->tail_len + n, keep = total < d - 1 ? total : d - 1;
    if (n >= keep) {
        memcpy(r->tail, data + n - keep, keep);
    } else {
        size_t from_tail = keep - n;
        memmove(r->tail, r->tail + r->tail_len - from_tail, from_tail);
        memcpy(r->tail + from_tail, data, n);
    }
    r->tail_len = keep;
    return n;
}

/* Closes and flushes the upload; true when a file is ready at r->file_path. */
static bool finish_upload(req *r) {
    if (r->fd < 0)
        return false;
    bool ok = fsync(r->fd) == 0;
    ok = close(r->fd) == 0 && ok;
    r->fd = -1;
    return ok;
}

/* The client closed its end while we wait (a synchronous request): stop its work. */
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static bool is_upload_route(int route) {
    return route == R_TRANSCRIBE || route == R_TRANSLATE || route == R_JOB_SUBMIT;
}

static void retry_after_text(cn_service *s, char *buf, size_t n) {
    /* a rough estimate: a few seconds per queued job per worker, at least 1, at most 120 */
    int unfinished = sched_unfinished(s);
    int secs = unfinished / (s->n_workers > 0 ? s->n_workers : 1);
    snprintf(buf, n, "%d", secs < 1 ? 1 : secs > 120 ? 120 : secs);
}

/* ---------- handlers ---------- */

static json_t *model_json(cn_service *s) {
    /* model_info_json is final only once ready is true (it is filled in while the model loads) */
    json_t *info = s->tr->ready ? json_loads(s->tr->model_info_json, 0, NULL) : NULL;
    if (!json_is_object(info)) {
        json_decref(info);
        info = json_object();
    }
    json_object_set_new(info, "name", json_string(s->tr->model_name));
    json_object_set_new(info, "loaded", json_boolean(s->tr->ready));
    /* the devices in use ("cpu", "cuda:0,cuda:1"); known once the model is loaded */
    json_object_set_new(info, "device", s->tr->ready ? json_string(s->tr->device) : json_null());
    if (!s->tr->ready)
        json_object_set_new(info, "reason", json_string(s->tr->reason));
    return info;
}

static enum MHD_Result h_root(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    json_t *hardware = s->hardware_json ? json_loads(s->hardware_json, 0, NULL) : NULL;
    long counts[CN_JOB_N_STATUS] = {0};
    cn_error err;
    cn_error_clear(&err);
    s->store->ops->count_by_status(s->store, counts, &err);
    pthread_mutex_lock(&s->mu);
    int unfinished = s->n_live, active = s->n_active;
    cn_sched *xs = s->xs;
    pthread_mutex_unlock(&s->mu);
    if (!json_is_object(hardware)) {
        json_decref(hardware);
        hardware = json_object();
    }
    /* the executors' live state (health, load, memory, batches): empty until the model is ready */
    json_t *devs = NULL;
    if (xs) {
        cn_strbuf sb;
        cn_sb_init(&sb);
        cn_sched_stats_json(xs, &sb);
        devs = json_loads(cn_sb_str(&sb), 0, NULL);
        cn_sb_free(&sb);
        /* the batch size each takes now (the scheduler lowers it after an out-of-memory split) */
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < json_array_size(devs) && (int)i < s->n_dev; i++)
            json_object_set_new(json_array_get(devs, i), "max_batch", json_integer(s->dev[i].max_batch));
        pthread_mutex_unlock(&s->mu);
    }
    json_object_set_new(hardware, "devices", devs ? devs : json_array());
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:{s:i, s:i, s:i, s:i, s:I, s:I}}", "message",
                          "Canary STT API is running", "version", CANARY_VERSION, "model", model_json(s), "hardware",
                          hardware ? hardware : json_object(), "queue", "unfinished", unfinished, "active", active,
                          "capacity", s->opt.queue_size, "workers", s->n_workers, "queued_jobs",
                          (json_int_t)counts[CN_JOB_QUEUED], "processing_jobs", (json_int_t)counts[CN_JOB_PROCESSING]);
    return send_json(r, c, 200, o);
}

static enum MHD_Result h_health(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    char msg[700];
    if (s->tr->ready) {
        /* every device retired after failures: nothing can run (the log and GET / say why) */
        pthread_mutex_lock(&s->mu);
        cn_sched *xs = s->xs;
        pthread_mutex_unlock(&s->mu);
        int healthy = 0, n = xs ? cn_sched_device_count(xs) : 0;
        for (int i = 0; i < n; i++) {
            cn_sched_device_stats st;
            cn_sched_stats(xs, i, &st);
            healthy += st.healthy;
        }
        if (!xs || healthy > 0)
            return send_json(r, c, 200, json_pack("{s:s, s:s}", "status", "ok", "model", s->tr->model_name));
        snprintf(msg, sizeof msg, "no healthy device left: all %d failed (see GET / hardware.devices)", n);
        return send_json(r, c, 503, json_pack("{s:s, s:s, s:s}", "status", "unavailable", "model",
                                              s->tr->model_name, "message", msg));
    }
    snprintf(msg, sizeof msg, "no model loaded: %s", s->tr->reason);
    return send_json(r, c, 503, json_pack("{s:s, s:s, s:s}", "status", "unavailable", "model", s->tr->model_name,
                                          "message", msg));
}

static enum MHD_Result h_models(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    json_t *m = json_pack("{s:s, s:s, s:i, s:s, s:b}", "id", s->tr->model_name, "object", "model", "created", 0,
                          "owned_by", "nvidia", "ready", s->tr->ready);
    return send_json(r, c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

static enum MHD_Result h_openapi(req *r, struct MHD_Connection *c) {
    return queue(r, c, 200, "application/json", strdup(cn_openapi_json), NULL);
}

static enum MHD_Result h_metrics(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    long counts[CN_JOB_N_STATUS] = {0};
    cn_error err;
    cn_error_clear(&err);
    s->store->ops->count_by_status(s->store, counts, &err);
    pthread_mutex_lock(&s->mu);
    int unfinished = s->n_live, active = s->n_active;
    pthread_mutex_unlock(&s->mu);
    cn_strbuf b;
    cn_sb_init(&b);
    cn_sb_puts(&b, "# HELP canary_model_ready 1 when a model is loaded and jobs can run.\n"
                   "# TYPE canary_model_ready gauge\n");
    cn_sb_printf(&b, "canary_model_ready %d\n", s->tr->ready ? 1 : 0);
    cn_sb_puts(&b, "# HELP canary_jobs Stored async jobs by status.\n# TYPE canary_jobs gauge\n");
    for (int i = 0; i < CN_JOB_N_STATUS; i++)
        cn_sb_printf(&b, "canary_jobs{status=\"%s\"} %ld\n", cn_job_status_name((cn_job_status)i), counts[i]);
    cn_sb_puts(&b, "# HELP canary_queue_depth Unfinished jobs (queued or processing), synchronous requests "
                   "included.\n# TYPE canary_queue_depth gauge\n");
    cn_sb_printf(&b, "canary_queue_depth %d\n", unfinished);
    cn_sb_printf(&b, "# HELP canary_queue_active Jobs whose chunks are being interleaved.\n"
                     "# TYPE canary_queue_active gauge\ncanary_queue_active %d\n",
                 active);
    cn_sb_printf(&b, "# HELP canary_queue_capacity server.queue_size.\n# TYPE canary_queue_capacity gauge\n"
                     "canary_queue_capacity %d\n",
                 s->opt.queue_size);
    pthread_mutex_lock(&s->m.mu);
    metrics m = s->m;
    pthread_mutex_unlock(&s->m.mu);
    cn_sb_puts(&b, "# HELP canary_jobs_finished_total Jobs (and synchronous requests) finished since start.\n"
                   "# TYPE canary_jobs_finished_total counter\n");
    for (int i = CN_JOB_COMPLETED; i < CN_JOB_N_STATUS; i++)
        cn_sb_printf(&b, "canary_jobs_finished_total{status=\"%s\"} %llu\n", cn_job_status_name((cn_job_status)i),
                     (unsigned long long)m.finished[i]);
    cn_sb_printf(&b, "# HELP canary_chunks_processed_total Audio chunks transcribed.\n"
                     "# TYPE canary_chunks_processed_total counter\ncanary_chunks_processed_total %llu\n",
                 (unsigned long long)m.chunks);
    cn_sb_printf(&b, "# HELP canary_audio_seconds_total Seconds of audio in completed jobs.\n"
                     "# TYPE canary_audio_seconds_total counter\ncanary_audio_seconds_total %.3f\n",
                 m.audio_seconds_done);
    cn_sb_printf(&b, "# HELP canary_real_time_factor Processing time divided by audio time (lower is faster).\n"
                     "# TYPE canary_real_time_factor gauge\ncanary_real_time_factor %.6f\n",
                 m.audio_seconds_done > 0 ? m.busy_seconds / m.audio_seconds_done : 0.0);
    cn_sb_printf(&b, "# HELP canary_batches_total Batches run on the devices.\n"
                     "# TYPE canary_batches_total counter\ncanary_batches_total %llu\n"
                     "# HELP canary_batch_chunks_total Chunks in those batches (divided by canary_batches_total: "
                     "the mean batch size).\n# TYPE canary_batch_chunks_total counter\ncanary_batch_chunks_total %llu\n",
                 (unsigned long long)m.batches, (unsigned long long)m.batch_chunks);
    /* per device: healthy, busy executors, memory in use and budget, busy seconds, batches by
     * outcome (hw/sched.h); absent until the model is ready */
    pthread_mutex_lock(&s->mu);
    cn_sched *xs = s->xs;
    pthread_mutex_unlock(&s->mu);
    if (xs)
        cn_sched_metrics(xs, &b);
    cn_sb_printf(&b, "# HELP canary_webhooks_total Webhook deliveries by outcome.\n"
                     "# TYPE canary_webhooks_total counter\ncanary_webhooks_total{result=\"delivered\"} %llu\n"
                     "canary_webhooks_total{result=\"failed\"} %llu\n",
                 (unsigned long long)m.webhooks_ok, (unsigned long long)m.webhooks_failed);
    cn_sb_printf(&b, "# HELP canary_rejected_total Requests refused because the queue was full.\n"
                     "# TYPE canary_rejected_total counter\ncanary_rejected_total{reason=\"queue_full\"} %llu\n",
                 (unsigned long long)m.rejected_queue_full);
    cn_sb_puts(&b, "# HELP canary_http_request_duration_seconds Request latency by route.\n"
                   "# TYPE canary_http_request_duration_seconds histogram\n");
    for (int i = 0; i < R_N; i++) {
        uint64_t cum = 0;
        const char *route = cn_service_routes[i].path;
        const char *method = cn_service_routes[i].method;
        for (int k = 0; k <= N_BUCKETS; k++) {
            cum += m.requests[i][k];
            if (k < N_BUCKETS)
                cn_sb_printf(&b,
                             "canary_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} "
                             "%llu\n",
                             method, route, buckets[k], (unsigned long long)cum);
            else
                cn_sb_printf(&b,
                             "canary_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} "
                             "%llu\n",
                             method, route, (unsigned long long)cum);
        }
        cn_sb_printf(&b, "canary_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", method,
                     route, m.request_seconds[i]);
        cn_sb_printf(&b, "canary_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n", method,
                     route, (unsigned long long)m.request_count[i]);
    }
    return queue(r, c, 200, "text/plain; version=0.0.4; charset=utf-8", cn_sb_steal(&b), NULL);
}

/* Options as stored with a job (and read back by the scheduler after a restart). */
static char *options_json(const cn_request_params *p) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:f, s:b, s:s}", "task",
                          p->opts.task == CN_TASK_TRANSLATE ? "translate" : "transcribe", "model", p->model,
                          "language", p->opts.language, "target_language", p->opts.target_language, "pnc",
                          p->opts.pnc, "temperature", p->opts.temperature, "word_timestamps", p->words,
                          "response_format", cn_format_name(p->format));
    if (o && p->opts.prompt)
        json_object_set_new(o, "prompt", json_string(p->opts.prompt));
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    return s;
}

/* Parses the form and probes the audio; on failure queues the 400 and returns false. */
static bool validate_upload(req *r, struct MHD_Connection *c, cn_task task, bool jobs, cn_request_params *p,
                            double *duration, enum MHD_Result *ret) {
    cn_service *s = r->s;
    if (r->bad) {
        *ret = send_error(r, c, 400, r->bad_param, "invalid_request", NULL, "%s", r->bad_msg);
        return false;
    }
    if (!r->file_seen || !finish_upload(r)) {
        *ret = send_error(r, c, 400, "file", "missing_file", NULL,
                          "a multipart/form-data body with a non-empty 'file' field is required");
        return false;
    }
    cn_error err;
    cn_error_clear(&err);
    const char *param = NULL;
    if (cn_request_params_parse(&r->form, task, jobs, s->opt.default_language, s->opt.default_pnc, p,
                                &param, &err) != CANARY_OK) {
        *ret = send_error(r, c, 400, param, "invalid_parameter", NULL, "%s", err.msg);
        return false;
    }
    *duration = 0;
    if (s->tr->ready) {
        cn_status st = s->tr->ops->probe(s->tr, r->file_path, duration, &err);
        if (st != CANARY_OK) {
            cn_request_params_free(p);
            if (st == CANARY_EFORMAT || st == CANARY_EUNSUPPORTED || st == CANARY_EINVAL)
                *ret = send_error(r, c, 400, "file", "invalid_audio", NULL,
                                  "could not decode the uploaded file '%s' as audio: %s", r->filename, err.msg);
            else
                *ret = send_error(r, c, 500, NULL, "internal_error", NULL, "probing the upload: %s", err.msg);
            return false;
        }
        if (*duration > s->opt.max_audio_seconds) {
            cn_request_params_free(p);
            *ret = send_error(r, c, 400, "file", "audio_too_long", NULL,
                              "the audio is %.1f s long; this server accepts at most %.0f s (server.max_audio_seconds)",
                              *duration, s->opt.max_audio_seconds);
            return false;
        }
    }
    return true;
}

static enum MHD_Result h_sync(req *r, struct MHD_Connection *c, cn_task task) {
    cn_service *s = r->s;
    cn_request_params p;
    double duration;
    enum MHD_Result ret;
    if (!validate_upload(r, c, task, false, &p, &duration, &ret))
        return ret;
    sjob *j = sjob_new();
    if (!j) {
        cn_request_params_free(&p);
        return send_error(r, c, 500, NULL, "internal_error", NULL, "out of memory");
    }
    snprintf(j->id, sizeof j->id, "req_%.30s", r->rid);
    snprintf(j->owner, sizeof j->owner, "%s", r->owner);
    j->audio_path = strdup(r->file_path);
    r->file_path[0] = 0; /* the job deletes it now */
    j->opts = p.opts;
    j->audio_seconds = duration;
    j->created_ms = cn_unix_ms();
    j->refs = 2; /* the live list's and ours */
    cn_error err;
    cn_error_clear(&err);
    if (sched_submit(s, j, false, &err) != CANARY_OK) {
        unlink(j->audio_path);
        j->refs = 1;
        sched_release(s, j);
        pthread_mutex_lock(&s->m.mu);
        s->m.rejected_queue_full++;
        pthread_mutex_unlock(&s->m.mu);
        char ra[16];
        retry_after_text(s, ra, sizeof ra);
        return send_error(r, c, 429, NULL, "queue_full", ra, "%s; retry later", err.msg);
    }
    while (!sched_wait(s, j, 0.2)) {
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping) {
            sched_release(s, j);
            return send_error(r, c, 503, NULL, "shutting_down", "5", "the server is shutting down; retry");
        }
        if (client_gone(c)) {
            CN_INFO("http", "rid=%s: client disconnected; canceling its transcription", r->rid);
            sched_cancel(s, j);
            sched_wait(s, j, 30);
            sched_release(s, j);
            r->status = 499;
            return MHD_NO;
        }
    }
    enum MHD_Result out;
    if (j->status == CN_JOB_COMPLETED) {
        cn_transcript t;
        if (cn_transcript_from_json(j->result_json, &t, &err) != CANARY_OK) {
            out = send_error(r, c, 500, NULL, "internal_error", NULL, "%s", err.msg);
        } else {
            char *body = cn_transcript_render(&t, p.format, p.words);
            cn_transcript_free(&t);
            out = body ? queue(r, c, 200, cn_format_content_type(p.format), body, NULL)
                       : send_error(r, c, 500, NULL, "internal_error", NULL, "out of memory");
        }
    } else {
        cn_status st = j->error_status;
        /* a failed device or one without memory for a chunk is unavailability (503), not a bug (500) */
        unsigned code = st == CANARY_EFORMAT || st == CANARY_EUNSUPPORTED || st == CANARY_EINVAL || st == CANARY_ELIMIT
                            ? 400
                        : st == CANARY_EDEVICE || st == CANARY_ENOMEM ? 503
                                                                      : 500;
        out = send_error(r, c, code, code == 400 ? "file" : NULL, j->error_code ? j->error_code : "error", NULL,
                         "%s", j->error ? j->error : "transcription failed");
    }
    sched_release(s, j);
    return out;
}

static enum MHD_Result h_job_submit(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    cn_request_params p;
    double duration;
    enum MHD_Result ret;
    if (!validate_upload(r, c, CN_TASK_TRANSCRIBE, true, &p, &duration, &ret))
        return ret;
    const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (idem && (strlen(idem) == 0 || strlen(idem) > 255)) {
        cn_request_params_free(&p);
        return send_error(r, c, 400, NULL, "invalid_idempotency_key", NULL,
                          "the Idempotency-Key header must be 1 to 255 characters");
    }
    cn_job_record rec;
    memset(&rec, 0, sizeof rec);
    memcpy(rec.id, "job_", 4);
    random_hex(rec.id + 4, 12);
    snprintf(rec.owner, sizeof rec.owner, "%s", r->owner);
    char audio[4200];
    snprintf(audio, sizeof audio, "%s/audio/%s", s->data_dir, rec.id);
    if (rename(r->file_path, audio) != 0) {
        cn_request_params_free(&p);
        return send_error(r, c, 500, NULL, "internal_error", NULL, "cannot store the upload: %s", strerror(errno));
    }
    r->file_path[0] = 0;
    char dirpath[4200];
    snprintf(dirpath, sizeof dirpath, "%s/audio", s->data_dir);
    int dfd = open(dirpath, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* the rename itself must survive a crash before the 202 */
        fsync(dfd);
        close(dfd);
    }
    rec.idempotency_key = idem ? (char *)idem : NULL;
    rec.status = CN_JOB_QUEUED;
    rec.options_json = options_json(&p);
    rec.audio_path = audio;
    rec.filename = r->filename;
    rec.webhook_url = p.webhook_url[0] ? p.webhook_url : NULL;
    rec.webhook_state = p.webhook_url[0] ? CN_WEBHOOK_PENDING : CN_WEBHOOK_NONE;
    rec.audio_seconds = duration;
    rec.created_ms = cn_unix_ms();
    bool dup = false;
    cn_job_record existing;
    memset(&existing, 0, sizeof existing);
    cn_error err;
    cn_error_clear(&err);
    if (sched_unfinished(s) >= s->opt.queue_size) {
        unlink(audio);
        free(rec.options_json);
        cn_request_params_free(&p);
        pthread_mutex_lock(&s->m.mu);
        s->m.rejected_queue_full++;
        pthread_mutex_unlock(&s->m.mu);
        char ra[16];
        retry_after_text(s, ra, sizeof ra);
        return send_error(r, c, 429, NULL, "queue_full", ra,
                          "the queue is full (server.queue_size = %d unfinished jobs); retry later", s->opt.queue_size);
    }
    cn_status st = s->store->ops->insert(s->store, &rec, &dup, &existing, &err);
    free(rec.options_json);
    if (st != CANARY_OK || dup) {
        unlink(audio);
        cn_request_params_free(&p);
        if (st != CANARY_OK)
            return send_error(r, c, 500, NULL, "internal_error", NULL, "%s", err.msg);
        char *body = job_json_text(s, &existing);
        cn_job_record_free(&existing);
        struct MHD_Response *resp = NULL;
        if (body)
            resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "X-Request-Id", r->rid);
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        r->status = 202;
        enum MHD_Result q = MHD_queue_response(c, 202, resp);
        MHD_destroy_response(resp);
        return q;
    }
    sjob *j = sjob_new();
    if (j) {
        snprintf(j->id, sizeof j->id, "%s", rec.id);
        snprintf(j->owner, sizeof j->owner, "%s", rec.owner);
        j->persistent = true;
        j->audio_path = strdup(audio);
        j->opts = p.opts;
        p.opts.prompt = NULL;
        j->audio_seconds = duration;
        j->created_ms = rec.created_ms;
        j->has_webhook = rec.webhook_url != NULL;
    }
    if (!j || sched_submit(s, j, true, &err) != CANARY_OK) {
        /* Out of memory or shutting down: the job is stored and runs after the next start. */
        CN_WARN("http", "rid=%s: job %s stored but not scheduled now: %s", r->rid, rec.id, j ? err.msg : "no memory");
        if (j) {
            free(j->audio_path);
            free(j->opts.prompt);
            free(j);
        }
    }
    cn_request_params_free(&p);
    cn_job_record got;
    if (s->store->ops->get(s->store, rec.id, NULL, false, &got, &err) != CANARY_OK)
        return send_error(r, c, 500, NULL, "internal_error", NULL, "%s", err.msg);
    char *body = job_json_text(s, &got);
    cn_job_record_free(&got);
    CN_INFO("http", "rid=%s: job %s queued (%s, %.1f s of audio)", r->rid, rec.id, r->filename, duration);
    struct MHD_Response *resp = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE)
                                     : NULL;
    if (!resp)
        return MHD_NO;
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", rec.id);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    MHD_add_response_header(resp, "Location", loc);
    r->status = 202;
    enum MHD_Result q = MHD_queue_response(c, 202, resp);
    MHD_destroy_response(resp);
    return q;
}

static const char *owner_filter(req *r) { return r->s->n_keys ? r->owner : NULL; }

static enum MHD_Result h_job_list(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    const char *status = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
    const char *limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    int st = -1;
    if (status) {
        cn_job_status js;
        if (!cn_job_status_parse(status, &js))
            return send_error(r, c, 400, "status", "invalid_parameter", NULL,
                              "status = '%.32s'; use queued, processing, completed, failed or canceled", status);
        st = (int)js;
    }
    int limit = 20;
    if (limit_s) {
        char *end;
        long v = strtol(limit_s, &end, 10);
        if (!limit_s[0] || *end || v < 1 || v > 100)
            return send_error(r, c, 400, "limit", "invalid_parameter", NULL, "limit = '%.32s' must be 1 to 100",
                              limit_s);
        limit = (int)v;
    }
    cn_error err;
    cn_error_clear(&err);
    if (after) {
        cn_job_record a;
        if (s->store->ops->get(s->store, after, owner_filter(r), false, &a, &err) != CANARY_OK)
            return send_error(r, c, 400, "after", "invalid_parameter", NULL, "after = '%.64s': no such job", after);
        cn_job_record_free(&a);
    }
    cn_job_record *recs;
    int n;
    bool more;
    if (s->store->ops->list(s->store, owner_filter(r), st, after, limit, &recs, &n, &more, &err) != CANARY_OK)
        return send_error(r, c, 500, NULL, "internal_error", NULL, "%s", err.msg);
    json_t *data = json_array();
    for (int i = 0; i < n; i++) {
        char *t = job_json_text(s, &recs[i]);
        json_t *o = t ? json_loads(t, 0, NULL) : NULL;
        free(t);
        if (o)
            json_array_append_new(data, o);
    }
    json_t *o = json_pack("{s:s, s:o, s:b, s:o, s:o}", "object", "list", "data", data, "has_more", more, "first_id",
                          n ? json_string(recs[0].id) : json_null(), "last_id",
                          n ? json_string(recs[n - 1].id) : json_null());
    cn_records_free(recs, n);
    return send_json(r, c, 200, o);
}

static enum MHD_Result not_found(req *r, struct MHD_Connection *c) {
    return send_error(r, c, 404, "id", "job_not_found", NULL, "no job with id '%s'", r->id);
}

static enum MHD_Result h_job_get(req *r, struct MHD_Connection *c) {
    cn_job_record rec;
    cn_error err;
    cn_error_clear(&err);
    if (r->s->store->ops->get(r->s->store, r->id, owner_filter(r), false, &rec, &err) != CANARY_OK)
        return not_found(r, c);
    char *body = job_json_text(r->s, &rec);
    cn_job_record_free(&rec);
    return body ? queue(r, c, 200, "application/json", body, NULL) : MHD_NO;
}

static enum MHD_Result h_job_delete(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    cn_job_record rec;
    cn_error err;
    cn_error_clear(&err);
    if (s->store->ops->get(s->store, r->id, owner_filter(r), false, &rec, &err) != CANARY_OK)
        return not_found(r, c);
    if (!cn_job_status_terminal(rec.status)) {
        /* Cancel: the job stops after its current chunk, its audio is deleted, and it stays
         * visible as "canceled" until the retention time passes. */
        sjob *j = sched_find(s, r->id, NULL);
        if (j) {
            sched_cancel(s, j);
            sched_wait(s, j, 30);
            sched_release(s, j);
        } else {
            s->store->ops->set_finished(s->store, r->id, CN_JOB_CANCELED, cn_unix_ms(), NULL,
                                        "canceled by the client", "canceled", &err);
            if (rec.audio_path)
                unlink(rec.audio_path);
        }
        cn_job_record_free(&rec);
        if (s->store->ops->get(s->store, r->id, NULL, false, &rec, &err) != CANARY_OK)
            return not_found(r, c);
        char *body = job_json_text(s, &rec);
        cn_job_record_free(&rec);
        return body ? queue(r, c, 200, "application/json", body, NULL) : MHD_NO;
    }
    /* Finished: delete the job and its result. */
    if (rec.audio_path)
        unlink(rec.audio_path);
    cn_job_record_free(&rec);
    if (s->store->ops->remove(s->store, r->id, &err) != CANARY_OK)
        return send_error(r, c, 500, NULL, "internal_error", NULL, "%s", err.msg);
    return send_json(r, c, 200, json_pack("{s:s, s:s, s:b}", "id", r->id, "object", "job.deleted", "deleted", 1));
}

static enum MHD_Result h_job_result(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    cn_job_record rec;
    cn_error err;
    cn_error_clear(&err);
    if (s->store->ops->get(s->store, r->id, owner_filter(r), true, &rec, &err) != CANARY_OK)
        return not_found(r, c);
    const char *fmt_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    json_t *opts = rec.options_json ? json_loads(rec.options_json, 0, NULL) : NULL;
    const char *def = json_string_value(json_object_get(opts, "response_format"));
    cn_format fmt = CN_FMT_JSON;
    if (!cn_format_parse(fmt_s ? fmt_s : def ? def : "json", &fmt)) {
        json_decref(opts);
        cn_job_record_free(&rec);
        return send_error(r, c, 400, "format", "invalid_parameter", NULL,
                          "format = '%.32s'; use json, text, srt, verbose_json or vtt", fmt_s);
    }
    json_decref(opts);
    enum MHD_Result ret;
    if (rec.status != CN_JOB_COMPLETED || !rec.result_json) {
        if (rec.status == CN_JOB_FAILED)
            ret = send_error(r, c, 409, NULL, "job_failed", NULL, "job %s failed: %s", rec.id,
                             rec.error ? rec.error : "unknown error");
        else
            ret = send_error(r, c, 409, NULL, "job_not_completed", NULL, "job %s is %s; its result is not available",
                             rec.id, cn_job_status_name(rec.status));
        cn_job_record_free(&rec);
        return ret;
    }
    cn_transcript t;
    if (cn_transcript_from_json(rec.result_json, &t, &err) != CANARY_OK) {
        cn_job_record_free(&rec);
        return send_error(r, c, 500, NULL, "internal_error", NULL, "%s", err.msg);
    }
    cn_job_record_free(&rec);
    char *body = cn_transcript_render(&t, fmt, true);
    cn_transcript_free(&t);
    return body ? queue(r, c, 200, cn_format_content_type(fmt), body, NULL) : MHD_NO;
}

/* ---------- server-sent events ---------- */

typedef struct sse {
    cn_service *s;
    char id[40];
    char owner[72];
    bool use_owner;
    cn_strbuf out;
    size_t pos;
    bool done;
    char last[64];
    uint64_t seen;
    double keepalive_s; /* below the idle timeout, so that quiet streams stay open */
} sse;

/* Appends the next event(s) to e->out, waiting for a change (or 15 s for a keep-alive). */
static void sse_next(sse *e) {
    cn_service *s = e->s;
    for (;;) {
        cn_job_record rec;
        cn_error err;
        cn_error_clear(&err);
        if (s->store->ops->get(s->store, e->id, e->use_owner ? e->owner : NULL, false, &rec, &err) != CANARY_OK) {
            cn_sb_printf(&e->out, "event: error\ndata: {\"message\":\"job %s no longer exists\"}\n\n", e->id);
            e->done = true;
            return;
        }
        char *json = job_json_text(s, &rec);
        json_t *o = json ? json_loads(json, 0, NULL) : NULL;
        const char *st = json_string_value(json_object_get(o, "status"));
        char sig[64];
        snprintf(sig, sizeof sig, "%s/%lld", st ? st : "?",
                 (long long)json_integer_value(json_object_get(json_object_get(o, "chunks"), "done")));
        bool terminal = cn_job_status_terminal(rec.status);
        cn_job_record_free(&rec);
        if (strcmp(sig, e->last) != 0 || terminal) {
            snprintf(e->last, sizeof e->last, "%s", sig);
            cn_sb_printf(&e->out, "event: %s\ndata: %s\n\n", terminal ? (st ? st : "done") : "progress",
                         json ? json : "{}");
            e->done = terminal;
            json_decref(o);
            free(json);
            return;
        }
        json_decref(o);
        free(json);
        uint64_t before = e->seen;
        double t0 = cn_now_s();
        sched_wait_change(s, &e->seen, e->keepalive_s);
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping) {
            e->done = true;
            return;
        }
        if (e->seen == before && cn_now_s() - t0 >= e->keepalive_s - 0.1) {
            cn_sb_puts(&e->out, ": keep-alive\n\n");
            return;
        }
        /* progress can change many times a second: at most ~10 events per second */
        usleep(100000);
        sched_wait_change(s, &e->seen, 0);
    }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse *e = cls;
    if (e->pos >= e->out.len) {
        if (e->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        cn_sb_reset(&e->out);
        e->pos = 0;
        sse_next(e);
        if (e->out.len == 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = e->out.len - e->pos < max ? e->out.len - e->pos : max;
    memcpy(buf, e->out.data + e->pos, n);
    e->pos += n;
    return (ssize_t)n;
}

static void sse_free(void *cls) {
    sse *e = cls;
    cn_sb_free(&e->out);
    free(e);
}

static enum MHD_Result h_job_events(req *r, struct MHD_Connection *c) {
    cn_service *s = r->s;
    cn_job_record rec;
    cn_error err;
    cn_error_clear(&err);
    if (s->store->ops->get(s->store, r->id, owner_filter(r), false, &rec, &err) != CANARY_OK)
        return not_found(r, c);
    cn_job_record_free(&rec);
    sse *e = calloc(1, sizeof *e);
    if (!e)
        return MHD_NO;
    e->s = s;
    snprintf(e->id, sizeof e->id, "%s", r->id);
    snprintf(e->owner, sizeof e->owner, "%s", r->owner);
    e->use_owner = s->n_keys > 0;
    e->keepalive_s = s->opt.request_timeout_s / 2.0 < 15.0 ? s->opt.request_timeout_s / 2.0 : 15.0;
    if (e->keepalive_s < 0.5)
        e->keepalive_s = 0.5;
    cn_sb_init(&e->out);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e, sse_free);
    if (!resp) {
        sse_free(e);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    r->status = 200;
    enum MHD_Result q = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return q;
}

/* ---------- the access handler ---------- */

static void set_request_id(req *r, struct MHD_Connection *c) {
    const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (given && strlen(given) > 0 && strlen(given) < 64) {
        bool ok = true;
        for (const char *p = given; *p; p++)
            if (!(*p == '-' || *p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= 'A' && *p <= 'Z')))
                ok = false;
        if (ok) {
            snprintf(r->rid, sizeof r->rid, "%s", given);
            return;
        }
    }
    random_hex(r->rid, 8);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    cn_service *s = cls;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->s = s;
        r->fd = -1;
        r->t0 = cn_now_ns();
        r->method = method;
        snprintf(r->url, sizeof r->url, "%s", url);
        set_request_id(r, c);
        *con_cls = r;
        const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        r->defer = (clen && strtoull(clen, NULL, 10) > 0) ||
                   MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
        bool known;
        r->route = match_route(method, url, r->id, sizeof r->id, &known);
        if (r->route < 0) {
            if (known)
                return send_error(r, c, 405, NULL, "method_not_allowed", NULL, "%s is not allowed on %s", method,
                                  url);
            return send_error(r, c, 404, NULL, "not_found", NULL, "no such endpoint: %s %s", method, url);
        }
        if (strncmp(url, "/v1/", 4) == 0 && !authenticate(r, c))
            return send_error(r, c, 401, NULL, "invalid_api_key", NULL,
                              "a valid API key is required: send 'Authorization: Bearer <key>'");
        if (is_upload_route(r->route)) {
            if (r->route != R_JOB_SUBMIT && !s->tr->ready)
                return send_error(r, c, 503, NULL, "model_not_loaded", "30", "no model loaded: %s", s->tr->reason);
            if (sched_unfinished(s) >= s->opt.queue_size) {
                pthread_mutex_lock(&s->m.mu);
                s->m.rejected_queue_full++;
                pthread_mutex_unlock(&s->m.mu);
                char ra[16];
                retry_after_text(s, ra, sizeof ra);
                return send_error(r, c, 429, NULL, "queue_full", ra,
                                  "the queue is full (server.queue_size = %d unfinished jobs); retry later",
                                  s->opt.queue_size);
            }
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->opt.max_upload_bytes) {
                r->defer = false; /* refused at once: reading it would be the harm */
                return send_error(r, c, 413, "file", "file_too_large", NULL,
                                  "the upload is %s bytes; this server accepts at most %lld bytes "
                                  "(server.max_upload_mb)",
                                  cl, s->opt.max_upload_bytes);
            }
            set_delimiter(r, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"));
            r->pp = MHD_create_post_processor(c, 64 * 1024, on_form, r);
            if (!r->pp)
                return send_error(r, c, 400, NULL, "invalid_content_type", NULL,
                                  "send the audio as multipart/form-data with a 'file' field");
        }
        return MHD_YES;
    }
    if (r->status) { /* refused before the body: drain it (bounded), then answer */
        r->body_bytes += *upload_data_size;
        if (r->body_bytes > (unsigned long long)s->opt.max_upload_bytes + (64ull << 20))
            return MHD_NO;
        if (*upload_data_size == 0 && r->deferred) {
            enum MHD_Result q = MHD_queue_response(c, r->status, r->deferred);
            MHD_destroy_response(r->deferred);
            r->deferred = NULL;
            return q;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (r->pp) {
            r->body_bytes += *upload_data_size;
            if (r->body_bytes > (unsigned long long)s->opt.max_upload_bytes + (64ull << 20))
                return MHD_NO; /* libmicrohttpd answers only once the body is in: cut off a client
                                  that keeps sending far past the limit */
            if (r->body_bytes > (unsigned long long)s->opt.max_upload_bytes)
                r->too_large = true; /* keep reading (and dropping) so that the 413 reaches the client */
            if (!r->too_large && !r->closed) {
                size_t n = bytes_before_epilogue(r, upload_data, *upload_data_size);
                if (MHD_post_process(r->pp, upload_data, n) != MHD_YES && !r->bad) {
                    r->bad = true;
                    snprintf(r->bad_msg, sizeof r->bad_msg, "malformed multipart/form-data body");
                }
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    r->defer = false; /* the body is in: answer directly from now on */
    if (r->pp) {
        if (MHD_destroy_post_processor(r->pp) != MHD_YES && !r->bad && !r->too_large) {
            r->bad = true;
            snprintf(r->bad_msg, sizeof r->bad_msg, "malformed or truncated multipart/form-data body");
        }
        r->pp = NULL;
    }
    if (r->too_large)
        return send_error(r, c, 413, "file", "file_too_large", NULL,
                          "the upload is larger than %lld bytes (server.max_upload_mb)", s->opt.max_upload_bytes);
    switch (r->route) {
    case R_ROOT: return h_root(r, c);
    case R_HEALTH: return h_health(r, c);
    case R_METRICS: return h_metrics(r, c);
    case R_OPENAPI: return h_openapi(r, c);
    case R_MODELS: return h_models(r, c);
    case R_TRANSCRIBE: return h_sync(r, c, CN_TASK_TRANSCRIBE);
    case R_TRANSLATE: return h_sync(r, c, CN_TASK_TRANSLATE);
    case R_JOB_SUBMIT: return h_job_submit(r, c);
    case R_JOB_LIST: return h_job_list(r, c);
    case R_JOB_GET: return h_job_get(r, c);
    case R_JOB_DELETE: return h_job_delete(r, c);
    case R_JOB_RESULT: return h_job_result(r, c);
    case R_JOB_EVENTS: return h_job_events(r, c);
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    cn_service *s = cls;
    req *r = *con_cls;
    if (!r)
        return;
    double dt = cn_elapsed_s(r->t0);
    if (r->route >= 0) {
        pthread_mutex_lock(&s->m.mu);
        int k = 0;
        while (k < N_BUCKETS && dt > buckets[k])
            k++;
        s->m.requests[r->route][k]++;
        s->m.request_seconds[r->route] += dt;
        s->m.request_count[r->route]++;
        pthread_mutex_unlock(&s->m.mu);
    }
    CN_INFO("http", "rid=%s %s %s -> %u (%.1f ms)%s", r->rid, r->method, r->url, r->status, dt * 1e3,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    if (r->deferred)
        MHD_destroy_response(r->deferred);
    if (r->fd >= 0)
        close(r->fd);
    if (r->file_path[0])
        unlink(r->file_path);
    cn_form_free(&r->form);
    free(r);
    *con_cls = NULL;
}

cn_status http_start(cn_service *s, cn_error *err) {
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (strchr(s->opt.host, ':')) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)s->opt.port);
        if (inet_pton(AF_INET6, s->opt.host, &a6.sin6_addr) != 1)
            return cn_error_set(err, CANARY_EINVAL, "server.host = '%s' is not an IP address", s->opt.host);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)s->opt.port);
        if (inet_pton(AF_INET, s->opt.host, &a4.sin_addr) != 1)
            return cn_error_set(err, CANARY_EINVAL, "server.host = '%s' is not an IPv4/IPv6 address", s->opt.host);
        sa = (struct sockaddr *)&a4;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->opt.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opt.request_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        s, MHD_OPTION_CONNECTION_LIMIT, 512u, MHD_OPTION_END);
    if (!d)
        return cn_error_set(err, CANARY_EIO, "cannot listen on %s:%d (is the port in use?)", s->opt.host,
                            s->opt.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->opt.port;
    s->daemon = d;
    return CANARY_OK;
}

void http_stop(cn_service *s) {
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

/* Service lifecycle: data directory, store, recovery of interrupted jobs, threads, shutdown. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "hw/hw.h"
#include "service/internal.h"

void cn_service_options_from_config(const cn_config *cfg, cn_service_options *o) {
    memset(o, 0, sizeof *o);
    o->host = cfg->host;
    o->port = cfg->port;
    o->data_dir = cfg->data_dir;
    o->database = cfg->database;
    o->max_upload_bytes = (long long)cfg->max_upload_mb * 1024 * 1024;
    o->max_audio_seconds = cfg->max_audio_seconds;
    o->queue_size = cfg->queue_size;
    o->workers = cfg->workers;
    o->api_keys = cfg->api_keys;
    o->result_ttl_hours = cfg->result_ttl_hours;
    o->request_timeout_s = cfg->request_timeout_s;
    o->webhook_secret = cfg->webhook_secret;
    o->webhook_backoff_s = cfg->webhook_backoff_s;
    o->webhook_attempts = cfg->webhook_attempts;
    o->default_language = cfg->language;
    o->default_pnc = cfg->pnc;
}

/* The "hardware" block of GET /: the keys clients of this API family expect (gpus as a count,
 * gpu_names, system_memory_gb, max_workers) plus the hw module's full detection as "detail". */
char *cn_service_hardware_json(int workers) {
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    cn_strbuf sb;
    cn_sb_init(&sb);
    cn_sb_printf(&sb, "{\"gpus\":%d,\"gpu_names\":[", hw.n_gpus);
    for (int i = 0; i < hw.n_gpus; i++) {
        if (i)
            cn_sb_putc(&sb, ',');
        cn_sb_json_string(&sb, hw.gpus[i].name);
    }
    cn_sb_printf(&sb, "],\"system_memory_gb\":%.1f,\"cpu_count\":%d,\"compute_cpus\":%d,\"max_workers\":%d,"
                      "\"detail\":",
                 (double)hw.mem_total / (1024.0 * 1024 * 1024), hw.logical_cores, cn_hw_compute_cpus(&hw), workers);
    cn_hw_info_json(&hw, &sb);
    cn_sb_putc(&sb, '}');
    return cn_sb_steal(&sb);
}

static void clear_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

static cn_status parse_keys(cn_service *s, cn_error *err) {
    const char *p = s->opt.api_keys ? s->opt.api_keys : "";
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            char **g = realloc(s->keys, (size_t)(s->n_keys + 1) * sizeof *g);
            if (!g)
                return cn_error_set(err, CANARY_ENOMEM, "out of memory");
            s->keys = g;
            s->keys[s->n_keys] = strndup(p, n);
            if (!s->keys[s->n_keys])
                return cn_error_set(err, CANARY_ENOMEM, "out of memory");
            s->n_keys++;
        }
        p = e;
    }
    return CANARY_OK;
}

static void free_service(cn_service *s) {
    if (s->store)
        s->store->ops->close(s->store);
    for (int i = 0; i < s->n_keys; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->data_dir);
    free(s->hardware_json);
    pthread_mutex_destroy(&s->m.mu);
    free(s);
}

cn_status cn_service_start(const cn_service_options *o, cn_transcriber *t, cn_service **out, cn_error *err) {
    cn_service *s = calloc(1, sizeof *s);
    if (!s)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    s->opt = *o;
    if (s->opt.webhook_attempts < 1)
        s->opt.webhook_attempts = 1;
    if (s->opt.webhook_backoff_s <= 0)
        s->opt.webhook_backoff_s = 1;
    s->tr = t;
    s->started_s = cn_now_s();
    pthread_mutex_init(&s->m.mu, NULL);
    s->data_dir = strdup(o->data_dir);
    char sub[4200];
    cn_status st = s->data_dir ? parse_keys(s, err) : cn_error_set(err, CANARY_ENOMEM, "out of memory");
    if (st == CANARY_OK)
        st = cn_mkdirs(s->data_dir, err);
    snprintf(sub, sizeof sub, "%s/audio", s->data_dir);
    if (st == CANARY_OK)
        st = cn_mkdirs(sub, err);
    snprintf(sub, sizeof sub, "%s/tmp", s->data_dir);
    if (st == CANARY_OK)
        st = cn_mkdirs(sub, err);
    if (st == CANARY_OK)
        clear_dir(sub); /* partial uploads of a previous run: never acknowledged, so never owed */
    if (st == CANARY_OK)
        st = cn_store_open(o->database, s->data_dir, &s->store, err);
    if (st == CANARY_OK)
        st = webhook_load_secret(s, err);
    int requeued = 0;
    if (st == CANARY_OK)
        st = s->store->ops->requeue_interrupted(s->store, &requeued, err);
    if (st != CANARY_OK) {
        free_service(s);
        return cn_error_prefix(err, "starting the service");
    }
    s->hardware_json = cn_service_hardware_json(s->opt.workers > 0 ? s->opt.workers : 1);
    if (requeued)
        CN_INFO("service", "%d job(s) interrupted by the previous shutdown run again", requeued);
    if ((st = sched_start(s, err)) != CANARY_OK || (st = webhook_start(s, err)) != CANARY_OK) {
        cn_service_stop(s);
        return st;
    }
    sched_load_queued(s);
    if ((st = http_start(s, err)) != CANARY_OK) {
        cn_service_stop(s);
        return st;
    }
    CN_INFO("service", "listening on http://%s:%d (data in %s, %d worker(s), model %s: %s)", o->host, s->port,
            s->data_dir, s->n_workers, t->model_name, t->ready ? "ready" : t->reason);
    *out = s;
    return CANARY_OK;
}

int cn_service_port(const cn_service *s) { return s->port; }

void cn_service_model_ready(cn_service *s) {
    CN_INFO("service", "model %s ready", s->tr->model_name);
    pthread_mutex_lock(&s->mu);
    s->version++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
}

void cn_service_stop(cn_service *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->version++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
    http_stop(s);
    if (s->webhook_thread)
        webhook_stop(s);
    sched_stop(s);
    free_service(s);
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

int cn_service_run(const cn_service_options *o, cn_transcriber *t, const char *port_file) {
    cn_error err;
    cn_error_clear(&err);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cn_service *s;
    if (cn_service_start(o, t, &s, &err) != CANARY_OK) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        return 1;
    }
    if (port_file) {
        char text[16];
        int n = snprintf(text, sizeof text, "%d\n", cn_service_port(s));
        if (cn_write_file_atomic(port_file, text, (size_t)n, &err) != CANARY_OK) {
            fprintf(stderr, "canary-stt serve: %s\n", err.msg);
            cn_service_stop(s);
            return 1;
        }
    }
    while (!stop_signal)
        pause();
    CN_INFO("service", "signal %d: shutting down (unfinished jobs resume at the next start)", (int)stop_signal);
    cn_service_stop(s);
    return 0;
}

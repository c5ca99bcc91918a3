/* canary-stt serve: the HTTP service. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "cli/cli.h"
#include "hw/hw.h"
#include "hw/profile.h"
#include "service/service.h"

/* What the service sees from the start: the port opens before the model loads, so /health answers
 * 503 ("loading") instead of refusing connections and jobs can be queued meanwhile. Once the engine
 * is loaded this forwards to it. The service only calls probe/open after `ready` (an atomic
 * flipped after `engine` and the info fields are set), so no lock is needed. */
typedef struct loading_transcriber {
    cn_transcriber pub;
    cn_transcriber *engine;
} loading_transcriber;

static cn_transcriber *engine_of(cn_transcriber *t) { return ((loading_transcriber *)t->impl)->engine; }

static cn_status fwd_probe(cn_transcriber *t, const char *path, double *d, cn_error *err) {
    if (!t->ready)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "%s", t->reason);
    return engine_of(t)->ops->probe(engine_of(t), path, d, err);
}
static cn_status fwd_open(cn_transcriber *t, const char *path, const cn_transcribe_options *o, cn_transcription **out,
                          int *n, cn_error *err) {
    if (!t->ready)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "%s", t->reason);
    return engine_of(t)->ops->open(engine_of(t), path, o, out, n, err);
}
static cn_status fwd_prepare(cn_transcriber *t, cn_transcription *s, const atomic_bool *c, int max, cn_job_chunk **chunks,
                             int *n, cn_error *err) {
    return engine_of(t)->ops->prepare(engine_of(t), s, c, max, chunks, n, err);
}
static cn_status fwd_run_batch(cn_transcriber *t, int device, int worker, cn_job_chunk *const *chunks, int n,
                               cn_error *err) {
    return engine_of(t)->ops->run_batch(engine_of(t), device, worker, chunks, n, err);
}
static cn_status fwd_complete(cn_transcriber *t, cn_transcription *s, cn_job_chunk *c, cn_step_progress *pr,
                              cn_error *err) {
    return engine_of(t)->ops->complete(engine_of(t), s, c, pr, err);
}
static cn_status fwd_finish(cn_transcriber *t, cn_transcription *s, cn_transcript *o, cn_error *err) {
    return engine_of(t)->ops->finish(engine_of(t), s, o, err);
}
static void fwd_close(cn_transcriber *t, cn_transcription *s) { engine_of(t)->ops->close(engine_of(t), s); }
static void fwd_destroy(cn_transcriber *t) {
    cn_transcriber_destroy(engine_of(t));
    free(t->impl);
}
static const cn_transcriber_ops loading_ops = {fwd_probe,    fwd_open,   fwd_prepare, fwd_run_batch,
                                               fwd_complete, fwd_finish, fwd_close,   fwd_destroy};

static loading_transcriber *loading_create(const char *model_name, const char *path) {
    loading_transcriber *lt = calloc(1, sizeof *lt);
    if (!lt)
        return NULL;
    lt->pub.ops = &loading_ops;
    lt->pub.impl = lt;
    atomic_init(&lt->pub.ready, false);
    if (strcmp(model_name, path) == 0)
        snprintf(lt->pub.reason, sizeof lt->pub.reason, "model %s is loading", model_name);
    else
        snprintf(lt->pub.reason, sizeof lt->pub.reason, "model %s is loading from %s", model_name, path);
    snprintf(lt->pub.model_name, sizeof lt->pub.model_name, "%s", model_name);
    snprintf(lt->pub.model_info_json, sizeof lt->pub.model_info_json, "{}");
    /* the devices are known once the engine has loaded (copied before `ready` flips) */
    snprintf(lt->pub.device, sizeof lt->pub.device, "loading");
    return lt;
}

/* server.workers = 0 (auto): the hardware profile's executors for the CPU when the CPU runs the
 * model; when only GPUs do, the CPU's cores decode audio for them (one feeder per core, up to 16). */
static int auto_workers(const cn_config *cfg, const char *model_path) {
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    cn_hw_model m;
    cn_hw_model_resolve(model_path, cfg->cache_dir && cfg->cache_dir[0] ? cfg->cache_dir : NULL, &m, NULL, 0);
    static cn_profile prof; /* large; one call */
    cn_error err;
    cn_error_clear(&err);
    if (cn_profile_compute(&hw, &m, cfg, &prof, &err) != CANARY_OK)
        return 1;
    bool gpu = false;
    for (int i = 0; i < prof.n_devices; i++) {
        if (prof.dev[i].usable && prof.dev[i].kind == CN_DEV_CPU && prof.dev[i].workers > 0)
            return prof.dev[i].workers;
        gpu = gpu || (prof.dev[i].usable && prof.dev[i].kind == CN_DEV_CUDA);
    }
    int cpus = cn_hw_compute_cpus(&hw);
    return gpu && cpus > 1 ? (cpus > 16 ? 16 : cpus) : 1;
}

int cmd_serve(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"port-file", true, "write the bound port to FILE (useful with --port 0)"},
        {0},
    };
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("serve", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    if (p.help) {
        printf("Usage: canary-stt serve [--model M.nemo|DIR|ORG/NAME] [--port N] [--host ADDR] [--data-dir DIR] [--api-keys K1,K2]\n\n"
               "Runs the HTTP API: OpenAI-compatible /v1/audio/transcriptions and /v1/audio/translations,\n"
               "durable async jobs under /v1/jobs, /health, /metrics, /openapi.json (docs/API.md).\n\n");
        cn_cli_print_opts(opts);
        printf("\nSettings:\n");
        cn_config_print_help(stdout);
        cn_config_free(&cfg);
        return 0;
    }
    if (p.n_pos > 0) {
        fprintf(stderr, "canary-stt serve: unexpected argument '%s'\n", p.pos[0]);
        cn_config_free(&cfg);
        return 2;
    }
    if (cn_cli_setup_logging(&cfg, &err)) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        cn_config_free(&cfg);
        return 2;
    }
    /* A model that cannot be found fails here, before any port opens: a hub name with neither
     * network nor cache gets the hub module's paragraph on how to go on. */
    char *path = NULL;
    if (cn_cli_check_device(&cfg, "serve") != CANARY_OK) {
        cn_config_free(&cfg);
        return 1;
    }
    if (cn_cli_model_path(&cfg, NULL, &path, &err) != CANARY_OK) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        cn_config_free(&cfg);
        return 1;
    }
    cn_service_options o;
    cn_service_options_from_config(&cfg, &o);
    if (o.workers <= 0)
        o.workers = auto_workers(&cfg, path);
    loading_transcriber *lt = loading_create(cfg.model, path);
    if (!lt) {
        fprintf(stderr, "canary-stt serve: out of memory\n");
        free(path);
        cn_config_free(&cfg);
        return 1;
    }
    /* SIGINT/SIGTERM are blocked in every thread (they inherit the mask) and taken by sigwait below,
     * after the model has loaded: a signal during the load stops the service right after it. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    int rc = 1;
    cn_service *svc = NULL;
    if (cn_service_start(&o, &lt->pub, &svc, &err) != CANARY_OK) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        goto done;
    }
    if (p.values[0]) {
        char text[16];
        int n = snprintf(text, sizeof text, "%d\n", cn_service_port(svc));
        if (cn_write_file_atomic(p.values[0], text, (size_t)n, &err) != CANARY_OK) {
            fprintf(stderr, "canary-stt serve: %s\n", err.msg);
            goto done;
        }
    }
    cn_transcriber *engine = NULL;
    if (cn_transcriber_engine_create(&cfg, path, o.workers > 0 ? o.workers : 1, &engine, &err) != CANARY_OK) {
        /* a model that exists but cannot be loaded will not load on a retry either: stop */
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        goto done;
    }
    lt->engine = engine;
    snprintf(lt->pub.model_info_json, sizeof lt->pub.model_info_json, "%s", engine->model_info_json);
    snprintf(lt->pub.device, sizeof lt->pub.device, "%s", engine->device);
    lt->pub.n_devices = engine->n_devices;
    memcpy(lt->pub.devices, engine->devices, sizeof engine->devices);
    atomic_store(&lt->pub.ready, true);
    cn_service_model_ready(svc);
    int sig = 0;
    sigwait(&stop_set, &sig);
    CN_INFO("service", "signal %d: shutting down (unfinished jobs resume at the next start)", sig);
    rc = 0;
done:
    cn_service_stop(svc);
    cn_transcriber_destroy(&lt->pub);
    free(path);
    cn_config_free(&cfg);
    return rc;
}

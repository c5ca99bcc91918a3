/* canary-stt serve: the HTTP service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "hub/hub.h"
#include "hw/hw.h"
#include "hw/profile.h"
#include "service/service.h"

/* The configured model with the real engine, or, when it cannot be loaded, a transcriber that
 * says why: serve still starts, /health answers 503 with the reason and jobs fail with it. */
static cn_status make_transcriber(const cn_config *cfg, const cn_service_options *o, cn_transcriber **out,
                                  cn_error *err) {
    char reason[900];
    struct stat st;
    char *path = NULL;
    if (stat(cfg->model, &st) == 0) {
        path = strdup(cfg->model);
    } else if (cn_hub_is_repo_name(cfg->model)) {
        /* serve never downloads on its own: `canary-stt models pull` does, visibly */
        cn_hub_opts ho;
        cn_hub_opts_init(&ho);
        ho.cache_dir = cfg->cache_dir;
        cn_error e2;
        cn_error_clear(&e2);
        if (cn_hub_find_cached(&ho, cfg->model, &path, &e2) != CANARY_OK) {
            snprintf(reason, sizeof reason,
                     "model '%s' is not downloaded; run `canary-stt models pull %s` or set --model to a .nemo file",
                     cfg->model, cfg->model);
            path = NULL;
        }
    } else {
        snprintf(reason, sizeof reason, "model '%s' is neither a file nor a hub name (org/name)", cfg->model);
    }
    if (path) {
        cn_error e2;
        cn_error_clear(&e2);
        cn_status s = cn_transcriber_engine_create(cfg, path, o->workers > 0 ? o->workers : 1, out, &e2);
        free(path);
        if (s == CANARY_OK)
            return CANARY_OK;
        snprintf(reason, sizeof reason, "%s", e2.msg);
    }
    fprintf(stderr, "canary-stt serve: no model loaded: %s\n", reason);
    return cn_transcriber_unavailable_create(cfg->model, reason, out, err);
}

/* server.workers = 0 (auto): the hardware profile's executors for the CPU, the device the engine
 * runs on today. */
static int auto_workers(const cn_config *cfg) {
    cn_hw_info hw;
    cn_hw_detect(NULL, &hw);
    const cn_hw_model *m = cn_hw_model_preset(cfg->model);
    if (!m)
        m = cn_hw_model_preset("canary-180m-flash");
    static cn_profile prof; /* large; one call */
    cn_error err;
    cn_error_clear(&err);
    if (!m || cn_profile_compute(&hw, m, cfg, &prof, &err) != CANARY_OK)
        return 1;
    for (int i = 0; i < prof.n_devices; i++)
        if (prof.dev[i].usable && prof.dev[i].kind == CN_DEV_CPU && prof.dev[i].workers > 0)
            return prof.dev[i].workers;
    return 1;
}

int cmd_serve(int argc, char **argv) {
    static const cn_opt opts[] = {
        {"port-file", true, "write the bound port to FILE (useful with --port 0)"},
        {0},
    };
    cn_config cfg;
    cn_error err;
    cn_error_clear(&err);
    if (cn_config_init(&cfg, &err)) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        return 1;
    }
    cn_cli_parsed p;
    if (cn_cli_parse(argc, argv, opts, &cfg, &p, &err)) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        cn_config_free(&cfg);
        return 2;
    }
    if (p.help) {
        printf("Usage: canary-stt serve [--model M.nemo] [--port N] [--host ADDR] [--data-dir DIR] [--api-keys K1,K2]\n\n"
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
    cn_service_options o;
    cn_service_options_from_config(&cfg, &o);
    if (o.workers <= 0)
        o.workers = auto_workers(&cfg);
    cn_transcriber *t;
    if (make_transcriber(&cfg, &o, &t, &err)) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        cn_config_free(&cfg);
        return 1;
    }
    int rc = cn_service_run(&o, t, p.values[0]);
    cn_transcriber_destroy(t);
    cn_config_free(&cfg);
    return rc;
}

/* canary-stt serve: the HTTP service. */
#include <stdio.h>

#include "cli/cli.h"
#include "service/service.h"

/* The engine is not part of this build yet: serve starts, answers /, /health (503 with the
 * reason), /metrics, /openapi.json, and accepts jobs, which fail with that reason. */
static cn_status make_transcriber(const cn_config *cfg, cn_transcriber **out, cn_error *err) {
    return cn_transcriber_unavailable_create(
        cfg->model, "this build has no inference engine yet (the CPU engine and pipeline have not landed)", out, err);
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
        printf("Usage: canary-stt serve [--port N] [--host ADDR] [--data-dir DIR] [--api-keys K1,K2] ...\n\n"
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
    cn_transcriber *t;
    if (make_transcriber(&cfg, &t, &err)) {
        fprintf(stderr, "canary-stt serve: %s\n", err.msg);
        cn_config_free(&cfg);
        return 1;
    }
    cn_service_options o;
    cn_service_options_from_config(&cfg, &o);
    int rc = cn_service_run(&o, t, p.values[0]);
    cn_transcriber_destroy(t);
    cn_config_free(&cfg);
    return rc;
}

/* canary-stt-testserver: `canary-stt serve` with the deterministic test transcriber instead of
 * the engine. Takes the same settings (--port 0 --port-file F --data-dir D ...). With
 * --ready-when FILE it starts like serve does while a model loads (not ready: /health 503, jobs
 * wait queued) and becomes ready once FILE exists, so a test decides when "loading" ends. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/file.h"
#include "cli/cli.h"
#include "fake_transcriber.h"
#include "service/service.h"

int main(int argc, char **argv) {
    static const cn_opt opts[] = {{"port-file", true, "write the bound port to FILE"},
                                  {"ready-when", true, "not ready until FILE exists"},
                                  {0}};
    cn_config cfg;
    cn_error err;
    cn_error_clear(&err);
    cn_cli_parsed p;
    if (cn_config_init(&cfg, &err) || cn_cli_parse(argc - 1, argv + 1, opts, &cfg, &p, &err) ||
        cn_cli_setup_logging(&cfg, &err)) {
        fprintf(stderr, "canary-stt-testserver: %s\n", err.msg);
        return 2;
    }
    cn_transcriber *t;
    if (cn_fake_transcriber_create(&t, &err)) {
        fprintf(stderr, "canary-stt-testserver: %s\n", err.msg);
        return 1;
    }
    cn_service_options o;
    cn_service_options_from_config(&cfg, &o);
    const char *ready_when = p.values[1];
    if (!ready_when) {
        int rc = cn_service_run(&o, t, p.values[0]);
        cn_transcriber_destroy(t);
        cn_config_free(&cfg);
        return rc;
    }
    atomic_store(&t->ready, false);
    snprintf(t->reason, sizeof t->reason, "model %s is loading", t->model_name);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    cn_service *s;
    int rc = 1;
    if (cn_service_start(&o, t, &s, &err) != CANARY_OK) {
        fprintf(stderr, "canary-stt-testserver: %s\n", err.msg);
        goto done;
    }
    if (p.values[0]) {
        char text[16];
        int n = snprintf(text, sizeof text, "%d\n", cn_service_port(s));
        if (cn_write_file_atomic(p.values[0], text, (size_t)n, &err) != CANARY_OK) {
            fprintf(stderr, "canary-stt-testserver: %s\n", err.msg);
            cn_service_stop(s);
            goto done;
        }
    }
    struct stat st;
    const struct timespec tick = {0, 20 * 1000 * 1000};
    struct timespec now = {0, 0};
    while (stat(ready_when, &st) != 0) {
        if (sigtimedwait(&stop_set, NULL, &now) > 0) { /* stopped while "loading" */
            cn_service_stop(s);
            rc = 0;
            goto done;
        }
        nanosleep(&tick, NULL);
    }
    atomic_store(&t->ready, true);
    cn_service_model_ready(s);
    int sig;
    sigwait(&stop_set, &sig);
    cn_service_stop(s);
    rc = 0;
done:
    cn_transcriber_destroy(t);
    cn_config_free(&cfg);
    return rc;
}

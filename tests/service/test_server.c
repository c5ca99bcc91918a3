/* canary-stt-testserver: `canary-stt serve` with the deterministic test transcriber instead of
 * the engine. Takes the same settings (--port 0 --port-file F --data-dir D ...). */
#include <stdio.h>

#include "cli/cli.h"
#include "fake_transcriber.h"
#include "service/service.h"

int main(int argc, char **argv) {
    static const cn_opt opts[] = {{"port-file", true, "write the bound port to FILE"}, {0}};
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
    int rc = cn_service_run(&o, t, p.values[0]);
    cn_transcriber_destroy(t);
    cn_config_free(&cfg);
    return rc;
}

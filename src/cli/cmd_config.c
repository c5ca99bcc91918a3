/* canary-stt config: the effective configuration and the source of every value. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_config(int argc, char **argv) {
    static const cn_opt opts[] = {{"json", false, "print JSON instead of text"}, {0}};
    cn_config cfg;
    cn_cli_parsed p;
    int start_rc = cn_cli_start("config", argc, argv, opts, &cfg, &p);
    if (start_rc)
        return start_rc;
    cn_error err;
    cn_error_clear(&err);
    if (p.help) {
        printf("Usage: canary-stt config [--json] [--config FILE] [--SETTING VALUE ...]\n\n"
               "Prints the effective configuration: built-in defaults, overridden by the config file\n"
               "(--config FILE or $CANARY_CONFIG; YAML), then CANARY_* environment variables, then flags.\n\n");
        cn_cli_print_opts(opts);
        printf("\nSettings:\n");
        cn_config_print_help(stdout);
        cn_config_free(&cfg);
        return 0;
    }
    if (p.n_pos > 0) {
        fprintf(stderr, "canary-stt config: unexpected argument '%s'\n", p.pos[0]);
        cn_config_free(&cfg);
        return 2;
    }
    cn_config_print(&cfg, stdout, p.values[0] != NULL);
    cn_config_free(&cfg);
    return 0;
}

/* Subcommands whose issues have not landed yet. Each moves to its own cmd_<name>.c when it does. */
#include "cli/cli.h"

int cmd_serve(int argc, char **argv) { return cn_cli_not_available("serve", "the HTTP service"); }
int cmd_hwinfo(int argc, char **argv) { return cn_cli_not_available("hwinfo", "hardware detection"); }
int cmd_models(int argc, char **argv) { return cn_cli_not_available("models", "model management"); }

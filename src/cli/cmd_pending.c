/* Subcommands whose issues have not landed yet. Each moves to its own cmd_<name>.c when it does. */
#include "cli/cli.h"

int cmd_model_info(int argc, char **argv) { return cn_cli_not_available("model-info", ".nemo loading"); }

/* Subcommands whose issues have not landed yet. Each moves to its own cmd_<name>.c when it does. */
#include "cli/cli.h"

int cmd_transcribe(int argc, char **argv) { return cn_cli_not_available("transcribe", "the CPU engine"); }
int cmd_bench(int argc, char **argv) { return cn_cli_not_available("bench", "the CPU engine"); }

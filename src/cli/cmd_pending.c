/* Subcommands whose issues have not landed yet. Each moves to its own cmd_<name>.c when it does.
 * (None are left.) */
#include "cli/cli.h"

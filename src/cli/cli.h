/* Command-line front end: subcommand dispatch and shared option parsing. */
#ifndef CN_CLI_H
#define CN_CLI_H

#include <stdbool.h>

#include "base/config.h"

/* A subcommand-specific option. Config settings (--threads, --port, ...) are accepted by every
 * subcommand without being listed here. */
typedef struct cn_opt {
    const char *name;  /* without dashes: "format" */
    bool has_arg;
    const char *help;
} cn_opt;

#define CN_CLI_MAX_OPTS 32
#define CN_CLI_MAX_POS 256

typedef struct cn_cli_parsed {
    const char *values[CN_CLI_MAX_OPTS]; /* per opts[] entry: NULL absent, "" flag given, else value */
    int n_pos;
    char *pos[CN_CLI_MAX_POS];
    bool help;
} cn_cli_parsed;

/* Parses argv (after the subcommand name) and builds the layered configuration:
 * defaults < --config FILE (or $CANARY_CONFIG) < CANARY_* env < setting flags.
 * `cfg` must be initialised with cn_config_init. */
cn_status cn_cli_parse(int argc, char **argv, const cn_opt *opts, cn_config *cfg, cn_cli_parsed *out,
                       cn_error *err);

/* The common start of every subcommand: builds the configuration (cn_config_init) and parses
 * argv (cn_cli_parse). Returns 0, or the exit status after printing "canary-stt <cmd>: <message>"
 * (1 when the configuration cannot be built, 2 for a usage error); on failure `cfg` is freed. */
int cn_cli_start(const char *cmd, int argc, char **argv, const cn_opt *opts, cn_config *cfg, cn_cli_parsed *out);

/* Applies log.level / log.format from the configuration. */
cn_status cn_cli_setup_logging(const cn_config *cfg, cn_error *err);

void cn_cli_print_opts(const cn_opt *opts);

/* --model for every subcommand: `spec` (NULL: the configured model, setting `model`) as a local
 * path. An existing .nemo file or unpacked directory is used as it is; a hub name
 * ("nvidia/canary-1b-flash[@rev]") comes from the cache or is fetched into it on first use
 * (hub/hub.h, cache_dir). When that fails, err holds the paragraph that says what was tried and
 * how to go on. *out is malloc'd. */
cn_status cn_cli_model_path(const cn_config *cfg, const char *spec, char **out, cn_error *err);

/* cn_cli_model_path for the configured model, then cfg->model is that local path (its source is
 * kept). On failure prints "canary-stt <cmd>: <why>" and returns the status. */
cn_status cn_cli_resolve_model(cn_config *cfg, const char *cmd);

/* engine.device: checks the spelling (cpu, cuda, cuda:N[,M...], auto); the engine decides at load
 * whether the GPU is usable (`serve` loads one replica per chosen device, see
 * service/transcriber_engine.c; other commands warn that they use the first GPU of a list).
 * Prints the message prefixed with `canary-stt <cmd>`. */
cn_status cn_cli_check_device(const cn_config *cfg, const char *cmd);

/* Subcommands: each returns the process exit status. */
int cmd_transcribe(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_hwinfo(int argc, char **argv);
int cmd_model_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_models(int argc, char **argv);

/* For subcommands whose issue has not landed: says so and returns 2. */
int cn_cli_not_available(const char *cmd, const char *what);

#endif

/* Shared by the engine subcommands (transcribe, bench). */
#ifndef CN_CLI_ENGINE_OPTS_H
#define CN_CLI_ENGINE_OPTS_H

#include <stddef.h>

#include "canary/canary.h"
#include "cli/cli.h"

/* Decodes a whole audio file to 16 kHz mono float (malloc'ed). */
cn_status cn_cli_read_audio(const char *path, float **out, size_t *n, char *msg, size_t msg_size);
/* Builds run parameters from the settings and the subcommand options lang, target-lang, beam,
 * search (those present in `opts`). */
cn_status cn_cli_engine_params(const cn_config *cfg, const cn_cli_parsed *p, const cn_opt *opts,
                               const canary_model *model, canary_params *out, char *msg, size_t msg_size);

#endif

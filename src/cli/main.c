/* canary-stt: one executable, several subcommands. */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"
#include "nn/cuda_plugin.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"transcribe", cmd_transcribe, "transcribe or translate audio/video files"},
    {"serve", cmd_serve, "run the HTTP service (OpenAI-compatible API, async jobs)"},
    {"hwinfo", cmd_hwinfo, "show detected hardware and the configuration chosen for it"},
    {"model-info", cmd_model_info, "describe a .nemo checkpoint"},
    {"models", cmd_models, "pull, list and remove cached models"},
    {"bench", cmd_bench, "measure speed on this machine"},
    {"config", cmd_config, "print the effective configuration and where each value came from"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out,
            "canary-stt %s: speech-to-text with NVIDIA Canary models\n\n"
            "Usage: canary-stt <command> [options] [args]\n\nCommands:\n",
            CANARY_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nEvery command takes --config FILE and the settings listed by `canary-stt config --help`.\n"
            "`canary-stt <command> --help` describes a command.\n");
}

static void version(void) {
    printf("canary-stt %s\n", CANARY_VERSION);
    const cn_cuda_plugin *plugin;
    cn_error err;
    cn_error_clear(&err);
    if (cn_cuda_plugin_get(&plugin, &err) == CANARY_OK) {
        int rt = 0, drv = 0;
        plugin->versions(&rt, &drv);
        printf("CUDA backend: plugin %s (runtime %d.%d, driver %s)\n", plugin->path, rt / 1000, (rt % 1000) / 10,
               drv ? "present" : "not found");
    } else {
        printf("CUDA backend: unavailable (%s)\n", err.msg);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        version();
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "canary-stt: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "nn/cuda_plugin.h"
#include "hub/hub.h"

static int find_opt(const cn_opt *opts, const char *name) {
    for (int i = 0; opts && opts[i].name; i++)
        if (strcmp(opts[i].name, name) == 0)
            return i;
    return -1;
}

cn_status cn_cli_parse(int argc, char **argv, const cn_opt *opts, cn_config *cfg, cn_cli_parsed *out,
                       cn_error *err) {
    memset(out, 0, sizeof *out);
    /* Pass 1: the config file must be layered before env and flags. */
    const char *config_file = getenv("CANARY_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return cn_error_set(err, CANARY_EINVAL, "--config needs a file path");
            config_file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_file = argv[i] + 9;
        }
    }
    if (config_file && *config_file)
        CN_TRY(cn_config_load_file(cfg, config_file, err));
    CN_TRY(cn_config_load_env(cfg, NULL, err));

    /* Pass 2: everything else. */
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            if (out->n_pos >= CN_CLI_MAX_POS)
                return cn_error_set(err, CANARY_ELIMIT, "too many arguments (at most %d)", CN_CLI_MAX_POS);
            out->pos[out->n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            out->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return cn_error_set(err, CANARY_EINVAL, "unknown option '%s' (options are spelled --name)", a);
        char name[128];
        const char *eq = strchr(a + 2, '=');
        size_t nl = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (nl >= sizeof name)
            return cn_error_set(err, CANARY_EINVAL, "option too long: '%s'", a);
        memcpy(name, a + 2, nl);
        name[nl] = '\0';
        if (strcmp(name, "config") == 0) {
            if (!eq)
                i++;
            continue;
        }
        int k = find_opt(opts, name);
        bool is_setting = k < 0 && cn_config_is_flag(name);
        if (k < 0 && !is_setting)
            return cn_error_set(err, CANARY_EINVAL, "unknown option '--%s' (see --help)", name);
        const char *value = "";
        bool needs_arg = is_setting || opts[k].has_arg;
        if (needs_arg) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return cn_error_set(err, CANARY_EINVAL, "option '--%s' needs a value", name);
        } else if (eq) {
            return cn_error_set(err, CANARY_EINVAL, "option '--%s' takes no value", name);
        }
        if (is_setting)
            CN_TRY(cn_config_set(cfg, name, value, CN_SRC_FLAG, err));
        else
            out->values[k] = value;
    }
    return CANARY_OK;
}

int cn_cli_start(const char *cmd, int argc, char **argv, const cn_opt *opts, cn_config *cfg, cn_cli_parsed *out) {
    cn_error err;
    cn_error_clear(&err);
    if (cn_config_init(cfg, &err)) {
        fprintf(stderr, "canary-stt %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (cn_cli_parse(argc, argv, opts, cfg, out, &err)) {
        fprintf(stderr, "canary-stt %s: %s\n", cmd, err.msg);
        cn_config_free(cfg);
        return 2;
    }
    return 0;
}

cn_status cn_cli_setup_logging(const cn_config *cfg, cn_error *err) {
    int lvl = cn_log_level_parse(cfg->log_level);
    if (lvl < 0)
        return cn_error_set(err, CANARY_EINVAL, "log.level: '%s' is not debug, info, warn, error or off",
                            cfg->log_level);
    cn_log_set_level((cn_log_level)lvl);
    if (strcmp(cfg->log_format, "json") == 0)
        cn_log_set_format(CN_LOG_JSON);
    else if (strcmp(cfg->log_format, "text") == 0)
        cn_log_set_format(CN_LOG_TEXT);
    else
        return cn_error_set(err, CANARY_EINVAL, "log.format: '%s' is not text or json", cfg->log_format);
    return CANARY_OK;
}

void cn_cli_print_opts(const cn_opt *opts) {
    for (int i = 0; opts && opts[i].name; i++)
        printf("  --%-20s %s\n", opts[i].has_arg ? opts[i].name : opts[i].name, opts[i].help);
}

cn_status cn_cli_model_path(const cn_config *cfg, const char *spec, char **out, cn_error *err) {
    cn_hub_opts ho;
    cn_hub_opts_from_config(&ho, cfg);
    return cn_hub_resolve_model(spec ? spec : cfg->model, &ho, out, err);
}

cn_status cn_cli_resolve_model(cn_config *cfg, const char *cmd) {
    cn_error err;
    cn_error_clear(&err);
    char *path = NULL;
    cn_status st = cn_cli_model_path(cfg, NULL, &path, &err);
    if (st != CANARY_OK) {
        fprintf(stderr, "canary-stt %s: %s\n", cmd, err.msg);
        return st;
    }
    if (cn_hub_is_repo_name(cfg->model))
        CN_INFO("model", "%s -> %s", cfg->model, path);
    /* swapped in place so that the setting keeps the source it came from */
    free(cfg->model);
    cfg->model = path;
    return CANARY_OK;
}

cn_status cn_cli_check_device(const cn_config *cfg, const char *cmd) {
    /* Only the spelling is checked here: whether the GPU is usable is the engine's answer at load
     * (an explicit cuda device that cannot be used fails there; auto falls back with a warning). */
    const char *d = cfg->device;
    bool ok = strcmp(d, "cpu") == 0 || strcmp(d, "auto") == 0 || strcmp(d, "cuda") == 0;
    if (strncmp(d, "cuda:", 5) == 0) {
        const char *q = d + 5;
        ok = *q != '\0';
        for (; ok && *q; q++)
            ok = (*q >= '0' && *q <= '9') || (*q == ',' && q[1] >= '0' && q[1] <= '9' && q[-1] != ':');
    }
    if (!ok) {
        fprintf(stderr, "canary-stt %s: engine.device=%s: expected cpu, cuda, cuda:N[,M...] or auto\n", cmd, d);
        return CANARY_EINVAL;
    }
    /* serve and transcribe place a replica on each listed GPU; the other commands use the first */
    if (strchr(d, ',') && strcmp(cmd, "serve") != 0 && strcmp(cmd, "transcribe") != 0)
        CN_WARN("cli", "engine.device=%s: canary-stt %s runs on one GPU, cuda:%.*s (canary-stt serve uses every GPU "
                       "listed)", d, cmd, (int)strcspn(d + 5, ","), d + 5);
    return CANARY_OK;
}

int cn_cli_not_available(const char *cmd, const char *what) {
    fprintf(stderr,
            "canary-stt %s: not available in this build (%s has not landed yet).\n"
            "See `canary-stt --help` for what this build can do.\n",
            cmd, what);
    return 2;
}

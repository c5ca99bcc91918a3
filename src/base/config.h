/* The one configuration of canary-stt.
 *
 * Every setting is declared once in config.c's table (key, type, default, help). Values are
 * layered, later layers winning: built-in defaults < config file (YAML) < environment variables
 * CANARY_<KEY> < command-line flags. The config remembers where each value came from, so
 * `canary-stt config` can print the effective configuration with its sources.
 *
 * Naming: key "server.port" <-> YAML `server: {port: ...}` <-> env CANARY_SERVER_PORT <-> flag
 * --port (the last key component, '_' written as '-'); top-level keys have no section.
 */
#ifndef CN_BASE_CONFIG_H
#define CN_BASE_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "base/error.h"

typedef enum cn_config_source {
    CN_SRC_DEFAULT = 0,
    CN_SRC_FILE,
    CN_SRC_ENV,
    CN_SRC_FLAG,
    CN_SRC_AUTO /* filled in by hardware auto-configuration */
} cn_config_source;

/* Sentinel for "choose automatically" in integer settings. */
#define CN_AUTO 0

typedef struct cn_config {
    /* model */
    char *model;            /* path to a .nemo / directory, or a hub name */
    char *cache_dir;        /* model cache; "" = $XDG_CACHE_HOME/canary-stt */
    char *language;         /* default source language */
    char *target_language;  /* "" = same as source (transcription) */
    bool pnc;               /* punctuation and capitalization */
    int beam_size;
    /* engine */
    char *device;           /* auto | cpu | cuda | cuda:N[,M] */
    char *precision;        /* auto | fp32 | bf16 | fp16 */
    int threads;            /* CPU threads; 0 = auto */
    int max_batch;          /* 0 = auto */
    double chunk_seconds;   /* 0 = model limit */
    char *feature_semantics; /* auto | nemo-2.4 | nemo-2.5 */
    /* server */
    char *host;
    int port;
    char *data_dir;
    char *database;         /* "" = SQLite in data_dir; postgresql://... for PostgreSQL */
    int max_upload_mb;
    double max_audio_seconds;
    int queue_size;
    int workers;            /* concurrent jobs; 0 = auto */
    char *api_keys;         /* comma-separated Bearer keys; "" = no auth */
    double result_ttl_hours;
    int request_timeout_s;
    char *webhook_secret;   /* HMAC key for webhook signatures; "" = generated in data_dir */
    double webhook_backoff_s; /* first webhook retry delay (doubles per attempt) */
    int webhook_attempts;   /* webhook deliveries tried before giving up */
    /* logging */
    char *log_level;
    char *log_format;       /* text | json */
    /* hardware auto-configuration overrides (hw/profile.h; 0 = auto) */
    int streams;            /* executors per GPU */
    int memory_budget_mb;   /* memory each device may use */
    /* where the config file came from ("" if none) */
    char *config_file;

    cn_config_source sources[64]; /* indexed like the field table */
} cn_config;

/* Fills built-in defaults. Never fails except out of memory. */
cn_status cn_config_init(cn_config *cfg, cn_error *err);
void cn_config_free(cn_config *cfg);

/* Layers a YAML file over the current values. Unknown keys are errors naming the key. */
cn_status cn_config_load_file(cn_config *cfg, const char *path, cn_error *err);
/* Layers a YAML document from memory (for tests and fuzzing). `origin` names it in errors. */
cn_status cn_config_load_yaml(cn_config *cfg, const char *yaml, size_t len, const char *origin,
                              cn_error *err);
/* Layers CANARY_* environment variables (from `envp`, or environ when NULL). */
cn_status cn_config_load_env(cn_config *cfg, char *const *envp, cn_error *err);
/* Sets one value by key ("server.port") or flag name ("port"), recording `src`. */
cn_status cn_config_set(cn_config *cfg, const char *key_or_flag, const char *value, cn_config_source src,
                        cn_error *err);
/* True when `flag` (without leading dashes) names a config setting. */
bool cn_config_is_flag(const char *flag);

/* Writes the effective configuration, one "key = value  (source)" line each, or JSON. */
void cn_config_print(const cn_config *cfg, FILE *out, bool json);
/* Writes the --help lines for all settings. */
void cn_config_print_help(FILE *out);
const char *cn_config_source_name(cn_config_source src);

#endif

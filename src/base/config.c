#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/file.h"
#include "base/strbuf.h"

typedef enum { T_STR, T_INT, T_BOOL, T_DOUBLE } field_type;

typedef struct {
    const char *key;  /* "section.name" or "name" */
    field_type type;
    size_t offset;
    const char *def;
    double min, max;  /* for numbers */
    const char *help;
} field;

#define F(key, type, member, def, min, max, help) {key, type, offsetof(cn_config, member), def, min, max, help}

static const field fields[] = {
    F("model", T_STR, model, "nvidia/canary-180m-flash", 0, 0,
      "model: path to a .nemo file or unpacked directory, or a hub name"),
    F("cache_dir", T_STR, cache_dir, "", 0, 0, "model cache directory (default $XDG_CACHE_HOME/canary-stt)"),
    F("language", T_STR, language, "en", 0, 0, "default source language"),
    F("target_language", T_STR, target_language, "", 0, 0,
      "default target language; empty or equal to the source means transcription"),
    F("pnc", T_BOOL, pnc, "true", 0, 0, "punctuation and capitalization"),
    F("beam_size", T_INT, beam_size, "1", 1, 64, "beam width (1 = NeMo's default beam-1 path)"),
    F("engine.device", T_STR, device, "auto", 0, 0, "auto | cpu | cuda | cuda:N[,M...]"),
    F("engine.precision", T_STR, precision, "auto", 0, 0, "auto | fp32 | tf32 | bf16 | fp16"),
    F("engine.threads", T_INT, threads, "0", 0, 1024, "CPU threads for inference (0 = physical cores)"),
    F("engine.max_batch", T_INT, max_batch, "0", 0, 4096, "maximum chunks per batch (0 = auto)"),
    F("engine.chunk_seconds", T_DOUBLE, chunk_seconds, "0", 0, 3600,
      "maximum chunk length in seconds (0 = the model's limit; never above it)"),
    F("engine.feature_semantics", T_STR, feature_semantics, "auto", 0, 0,
      "log-mel front end: auto | nemo-2.4 | nemo-2.5"),
    F("server.host", T_STR, host, "127.0.0.1", 0, 0, "address the HTTP server binds to"),
    F("server.port", T_INT, port, "8080", 0, 65535, "TCP port of the HTTP server (0 = any free port)"),
    F("server.data_dir", T_STR, data_dir, "canary-data", 0, 0, "directory for the job store, uploads, results"),
    F("server.database", T_STR, database, "", 0, 0,
      "job store: empty = SQLite in data_dir, or a postgresql:// URL"),
    F("server.max_upload_mb", T_INT, max_upload_mb, "1024", 1, 1048576, "largest accepted upload in MiB"),
    F("server.max_audio_seconds", T_DOUBLE, max_audio_seconds, "14400", 1, 1e7, "longest accepted audio"),
    F("server.queue_size", T_INT, queue_size, "256", 1, 1000000, "queued jobs before 429/503"),
    F("server.workers", T_INT, workers, "0", 0, 4096, "jobs processed concurrently (0 = auto)"),
    F("server.api_keys", T_STR, api_keys, "", 0, 0, "comma-separated API keys (Bearer); empty = no auth"),
    F("server.result_ttl_hours", T_DOUBLE, result_ttl_hours, "168", 0, 1e6,
      "hours a finished job's audio and result are kept"),
    F("server.request_timeout_s", T_INT, request_timeout_s, "60", 1, 86400,
      "seconds a client may take to send headers and body"),
    F("log.level", T_STR, log_level, "info", 0, 0, "debug | info | warn | error | off"),
    F("log.format", T_STR, log_format, "text", 0, 0, "text | json"),
    F("engine.streams", T_INT, streams, "0", 0, 64, "executors (CUDA streams) per GPU, sharing one model copy (0 = auto)"),
    F("engine.memory_budget_mb", T_INT, memory_budget_mb, "0", 0, 16777216,
      "memory each device may use for weights and activations, in MiB (0 = auto)"),
    F("server.webhook_secret", T_STR, webhook_secret, "", 0, 0,
      "HMAC-SHA256 key signing webhooks (empty = a random key kept in data_dir/webhook_secret)"),
    F("server.webhook_backoff_s", T_DOUBLE, webhook_backoff_s, "2", 0.01, 3600,
      "seconds before the first webhook retry; doubles with each attempt"),
    F("server.webhook_attempts", T_INT, webhook_attempts, "6", 1, 100, "webhook deliveries tried before giving up"),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])
_Static_assert(N_FIELDS <= sizeof(((cn_config *)0)->sources) / sizeof(cn_config_source), "grow sources[]");

static void *field_ptr(cn_config *cfg, const field *f) { return (char *)cfg + f->offset; }
static const void *field_cptr(const cn_config *cfg, const field *f) { return (const char *)cfg + f->offset; }

static const char *flag_name(const field *f, char *buf, size_t n) {
    const char *dot = strrchr(f->key, '.');
    snprintf(buf, n, "%s", dot ? dot + 1 : f->key);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
    return buf;
}

static void env_name(const field *f, char *buf, size_t n) {
    snprintf(buf, n, "CANARY_%s", f->key);
    for (char *p = buf; *p; p++)
        *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
}

static const field *find_field(const char *name) {
    char buf[64];
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (strcmp(fields[i].key, name) == 0 || strcmp(flag_name(&fields[i], buf, sizeof buf), name) == 0)
            return &fields[i];
    }
    /* also accept underscores in flag spellings: --data_dir */
    char norm[64];
    snprintf(norm, sizeof norm, "%s", name);
    for (char *p = norm; *p; p++)
        if (*p == '_')
            *p = '-';
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strcmp(flag_name(&fields[i], buf, sizeof buf), norm) == 0)
            return &fields[i];
    return NULL;
}

bool cn_config_is_flag(const char *flag) { return find_field(flag) != NULL; }

static cn_status parse_bool(const char *v, bool *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = true; return CANARY_OK; }
        if (strcasecmp(v, no[i]) == 0) { *out = false; return CANARY_OK; }
    }
    return CANARY_EINVAL;
}

static cn_status set_field(cn_config *cfg, const field *f, const char *value, cn_config_source src,
                           cn_error *err) {
    void *p = field_ptr(cfg, f);
    switch (f->type) {
    case T_STR: {
        char *copy = strdup(value);
        if (!copy)
            return cn_error_set(err, CANARY_ENOMEM, "out of memory");
        free(*(char **)p);
        *(char **)p = copy;
        break;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (errno || end == value || *end || v < (long)f->min || v > (long)f->max)
            return cn_error_set(err, CANARY_EINVAL, "%s: '%s' is not an integer in %ld..%ld", f->key, value,
                                (long)f->min, (long)f->max);
        *(int *)p = (int)v;
        break;
    }
    case T_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (errno || end == value || *end || !isfinite(v) || v < f->min || v > f->max)
            return cn_error_set(err, CANARY_EINVAL, "%s: '%s' is not a number in %g..%g", f->key, value, f->min,
                                f->max);
        *(double *)p = v;
        break;
    }
    case T_BOOL:
        if (parse_bool(value, (bool *)p) != CANARY_OK)
            return cn_error_set(err, CANARY_EINVAL, "%s: '%s' is not a boolean (true/false, yes/no, 1/0)",
                                f->key, value);
        break;
    }
    cfg->sources[f - fields] = src;
    return CANARY_OK;
}

cn_status cn_config_init(cn_config *cfg, cn_error *err) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_FIELDS; i++) {
        cn_status st = set_field(cfg, &fields[i], fields[i].def, CN_SRC_DEFAULT, err);
        if (st) {
            cn_config_free(cfg);
            return st;
        }
    }
    cfg->config_file = strdup("");
    if (!cfg->config_file) {
        cn_config_free(cfg);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    }
    return CANARY_OK;
}

void cn_config_free(cn_config *cfg) {
    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].type == T_STR) {
            char **p = field_ptr(cfg, &fields[i]);
            free(*p);
            *p = NULL;
        }
    free(cfg->config_file);
    cfg->config_file = NULL;
}

cn_status cn_config_set(cn_config *cfg, const char *name, const char *value, cn_config_source src,
                        cn_error *err) {
    const field *f = find_field(name);
    if (!f)
        return cn_error_set(err, CANARY_EINVAL, "unknown setting '%s' (see `canary-stt config`)", name);
    return set_field(cfg, f, value, src, err);
}

cn_status cn_config_load_env(cn_config *cfg, char *const *envp, cn_error *err) {
    extern char **environ;
    char *const *env = envp ? envp : environ;
    for (size_t i = 0; i < N_FIELDS; i++) {
        char name[96];
        env_name(&fields[i], name, sizeof name);
        size_t nl = strlen(name);
        for (char *const *e = env; e && *e; e++) {
            if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
                cn_status st = set_field(cfg, &fields[i], *e + nl + 1, CN_SRC_ENV, err);
                if (st)
                    return cn_error_prefix(err, "environment variable %s", name);
            }
        }
    }
    return CANARY_OK;
}

/* YAML: a mapping of scalars, with one level of nested mappings for sections. */
static cn_status yaml_error(cn_error *err, const char *origin, const yaml_mark_t *m, const char *what) {
    return cn_error_set(err, CANARY_EFORMAT, "%s:%zu:%zu: %s", origin, m->line + 1, m->column + 1, what);
}

cn_status cn_config_load_yaml(cn_config *cfg, const char *yaml, size_t len, const char *origin, cn_error *err) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        cn_status st = cn_error_set(err, CANARY_EFORMAT, "%s:%zu:%zu: YAML error: %s", origin,
                                    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                    parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return st;
    }
    cn_status st = CANARY_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        goto done; /* empty file: nothing to layer */
    if (root->type != YAML_MAPPING_NODE) {
        st = yaml_error(err, origin, &root->start_mark, "the top level must be a mapping of settings");
        goto done;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE) {
            st = yaml_error(err, origin, &root->start_mark, "keys must be plain strings");
            goto done;
        }
        const char *ks = (const char *)k->data.scalar.value;
        if (v->type == YAML_SCALAR_NODE) {
            const field *f = find_field(ks);
            if (!f || strchr(f->key, '.')) {
                char msg[256];
                snprintf(msg, sizeof msg, "unknown setting '%s'", ks);
                st = yaml_error(err, origin, &k->start_mark, msg);
                goto done;
            }
            st = set_field(cfg, f, (const char *)v->data.scalar.value, CN_SRC_FILE, err);
            if (st) {
                cn_error_prefix(err, "%s:%zu", origin, k->start_mark.line + 1);
                goto done;
            }
        } else if (v->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
                yaml_node_t *k2 = yaml_document_get_node(&doc, q->key);
                yaml_node_t *v2 = yaml_document_get_node(&doc, q->value);
                if (!k2 || !v2 || k2->type != YAML_SCALAR_NODE || v2->type != YAML_SCALAR_NODE) {
                    st = yaml_error(err, origin, &v->start_mark, "section values must be plain scalars");
                    goto done;
                }
                char full[160];
                snprintf(full, sizeof full, "%s.%s", ks, (const char *)k2->data.scalar.value);
                const field *f = NULL;
                for (size_t i = 0; i < N_FIELDS; i++)
                    if (strcmp(fields[i].key, full) == 0)
                        f = &fields[i];
                if (!f) {
                    char msg[256];
                    snprintf(msg, sizeof msg, "unknown setting '%s'", full);
                    st = yaml_error(err, origin, &k2->start_mark, msg);
                    goto done;
                }
                st = set_field(cfg, f, (const char *)v2->data.scalar.value, CN_SRC_FILE, err);
                if (st) {
                    cn_error_prefix(err, "%s:%zu", origin, k2->start_mark.line + 1);
                    goto done;
                }
            }
        } else {
            st = yaml_error(err, origin, &v->start_mark, "lists are not valid setting values");
            goto done;
        }
    }
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

cn_status cn_config_load_file(cn_config *cfg, const char *path, cn_error *err) {
    char *text;
    size_t len;
    CN_TRY(cn_read_file(path, 1 << 20, &text, &len, err));
    cn_status st = cn_config_load_yaml(cfg, text, len, path, err);
    free(text);
    if (st == CANARY_OK) {
        char *copy = strdup(path);
        if (copy) {
            free(cfg->config_file);
            cfg->config_file = copy;
        }
    }
    return st;
}

const char *cn_config_source_name(cn_config_source src) {
    switch (src) {
    case CN_SRC_DEFAULT: return "default";
    case CN_SRC_FILE: return "file";
    case CN_SRC_ENV: return "env";
    case CN_SRC_FLAG: return "flag";
    case CN_SRC_AUTO: return "auto";
    }
    return "?";
}

static void value_string(const cn_config *cfg, const field *f, cn_strbuf *sb, bool json) {
    const void *p = field_cptr(cfg, f);
    switch (f->type) {
    case T_STR:
        if (json)
            cn_sb_json_string(sb, *(char *const *)p);
        else
            cn_sb_puts(sb, *(char *const *)p);
        break;
    case T_INT: cn_sb_printf(sb, "%d", *(const int *)p); break;
    case T_DOUBLE: cn_sb_printf(sb, "%g", *(const double *)p); break;
    case T_BOOL: cn_sb_puts(sb, *(const bool *)p ? "true" : "false"); break;
    }
}

void cn_config_print(const cn_config *cfg, FILE *out, bool json) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    if (json) {
        cn_sb_puts(&sb, "{\"config_file\":");
        cn_sb_json_string(&sb, cfg->config_file ? cfg->config_file : "");
        cn_sb_puts(&sb, ",\"settings\":{");
    } else if (cfg->config_file && *cfg->config_file) {
        cn_sb_printf(&sb, "# config file: %s\n", cfg->config_file);
    } else {
        cn_sb_puts(&sb, "# config file: none\n");
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        const field *f = &fields[i];
        const char *src = cn_config_source_name(cfg->sources[i]);
        if (json) {
            cn_sb_printf(&sb, "%s\"%s\":{\"value\":", i ? "," : "", f->key);
            value_string(cfg, f, &sb, true);
            cn_sb_printf(&sb, ",\"source\":\"%s\"}", src);
        } else {
            cn_strbuf v;
            cn_sb_init(&v);
            value_string(cfg, f, &v, false);
            const char *vs = cn_sb_str(&v);
            cn_sb_printf(&sb, "%-26s = %-28s (%s)\n", f->key, *vs ? vs : "\"\"", src);
            cn_sb_free(&v);
        }
    }
    if (json)
        cn_sb_puts(&sb, "}}\n");
    fputs(cn_sb_str(&sb), out);
    cn_sb_free(&sb);
}

void cn_config_print_help(FILE *out) {
    for (size_t i = 0; i < N_FIELDS; i++) {
        char flag[64], env[96];
        flag_name(&fields[i], flag, sizeof flag);
        env_name(&fields[i], env, sizeof env);
        fprintf(out, "  --%-20s %s\n  %-22s   (env %s, file key %s, default \"%s\")\n", flag, fields[i].help, "",
                env, fields[i].key, fields[i].def);
    }
}

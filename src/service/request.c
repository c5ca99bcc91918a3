#include "service/request.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cn_form_free(cn_form *f) {
    for (int i = 0; i < f->n; i++)
        cn_sb_free(&f->fields[i].value);
    f->n = 0;
}

cn_status cn_form_add(cn_form *f, const char *key, const char *data, uint64_t off, size_t size, cn_error *err) {
    size_t klen = strlen(key);
    if (klen == 0 || klen >= sizeof f->fields[0].key)
        return cn_error_set(err, CANARY_EINVAL, "form field name '%.40s' is empty or longer than %zu bytes", key,
                            sizeof f->fields[0].key - 1);
    cn_form_field *fld = NULL;
    if (off > 0) /* continue the newest value of this key */
        for (int i = f->n - 1; i >= 0; i--)
            if (strcmp(f->fields[i].key, key) == 0) {
                fld = &f->fields[i];
                break;
            }
    if (!fld) {
        if (f->n >= CN_FORM_MAX_FIELDS)
            return cn_error_set(err, CANARY_ELIMIT, "more than %d form fields", CN_FORM_MAX_FIELDS);
        fld = &f->fields[f->n++];
        memcpy(fld->key, key, klen + 1);
        cn_sb_init(&fld->value);
    }
    if (fld->value.len + size > CN_FORM_MAX_VALUE)
        return cn_error_set(err, CANARY_ELIMIT, "form field '%s' is longer than %d bytes", key, CN_FORM_MAX_VALUE);
    cn_sb_putn(&fld->value, data, size);
    if (cn_sb_failed(&fld->value))
        return cn_error_set(err, CANARY_ENOMEM, "out of memory reading form field '%s'", key);
    return CANARY_OK;
}

const char *cn_form_get(const cn_form *f, const char *key) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->fields[i].key, key) == 0)
            return cn_sb_str(&f->fields[i].value);
    return NULL;
}

/* Language codes: "en", "de", "pt-BR"... The transcriber rejects ones its model lacks. */
static bool valid_language(const char *s) {
    size_t n = strlen(s);
    if (n < 2 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalpha((unsigned char)s[i]) && !(s[i] == '-' && i >= 2))
            return false;
    return true;
}

static bool parse_bool(const char *s, bool *out) {
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = false;
    else
        return false;
    return true;
}

static void lower_copy(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = 0;
}

void cn_request_params_free(cn_request_params *p) {
    free(p->opts.prompt);
    p->opts.prompt = NULL;
}

static cn_status parse_fields(const cn_form *f, cn_task default_task, bool jobs, const char *default_language,
                              bool default_pnc, cn_request_params *out, const char **param, cn_error *err) {
    out->opts.task = default_task;
    out->opts.pnc = default_pnc;
    out->format = CN_FMT_JSON;
    *param = NULL;
    bool word = false, segment_seen = false;
    for (int i = 0; i < f->n; i++) {
        const char *k = f->fields[i].key, *v = cn_sb_str(&f->fields[i].value);
        *param = k;
        if (strlen(v) != f->fields[i].value.len)
            return cn_error_set(err, CANARY_EINVAL, "'%s' contains a NUL byte", k);
        if (!strcmp(k, "model")) {
            if (strlen(v) >= sizeof out->model)
                return cn_error_set(err, CANARY_EINVAL, "'model' is longer than %zu bytes", sizeof out->model - 1);
            snprintf(out->model, sizeof out->model, "%s", v);
        } else if (!strcmp(k, "language") || !strcmp(k, "target_language")) {
            if (v[0] && !valid_language(v))
                return cn_error_set(err, CANARY_EINVAL,
                                    "'%s' = '%.32s' is not a language code (expected ISO-639-1 such as 'en' or 'de')",
                                    k, v);
            lower_copy(!strcmp(k, "language") ? out->opts.language : out->opts.target_language,
                       sizeof out->opts.language, v);
        } else if (!strcmp(k, "prompt")) {
            free(out->opts.prompt);
            out->opts.prompt = v[0] ? strdup(v) : NULL;
        } else if (!strcmp(k, "response_format")) {
            if (!cn_format_parse(v, &out->format))
                return cn_error_set(err, CANARY_EINVAL,
                                    "'response_format' = '%.32s' is not supported; use json, text, srt, verbose_json "
                                    "or vtt",
                                    v);
        } else if (!strcmp(k, "temperature")) {
            char *end;
            double t = strtod(v, &end);
            if (!v[0] || *end || !isfinite(t) || t < 0 || t > 1)
                return cn_error_set(err, CANARY_EINVAL, "'temperature' = '%.32s' must be a number from 0 to 1", v);
            out->opts.temperature = t;
        } else if (!strcmp(k, "timestamp_granularities[]") || !strcmp(k, "timestamp_granularities")) {
            if (!strcmp(v, "word"))
                word = true;
            else if (!strcmp(v, "segment"))
                segment_seen = true;
            else
                return cn_error_set(err, CANARY_EINVAL,
                                    "'timestamp_granularities[]' = '%.32s'; use 'word' and/or 'segment'", v);
        } else if (!strcmp(k, "pnc")) {
            if (!parse_bool(v, &out->opts.pnc))
                return cn_error_set(err, CANARY_EINVAL, "'pnc' = '%.32s' must be true or false", v);
        } else if (jobs && !strcmp(k, "task")) {
            if (!strcmp(v, "transcribe"))
                out->opts.task = CN_TASK_TRANSCRIBE;
            else if (!strcmp(v, "translate"))
                out->opts.task = CN_TASK_TRANSLATE;
            else
                return cn_error_set(err, CANARY_EINVAL, "'task' = '%.32s'; use 'transcribe' or 'translate'", v);
        } else if (jobs && !strcmp(k, "webhook_url")) {
            if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
                return cn_error_set(err, CANARY_EINVAL, "'webhook_url' must be an http:// or https:// URL");
            if (strlen(v) >= sizeof out->webhook_url)
                return cn_error_set(err, CANARY_EINVAL, "'webhook_url' is longer than %zu bytes",
                                    sizeof out->webhook_url - 1);
            snprintf(out->webhook_url, sizeof out->webhook_url, "%s", v);
        } else if (!strcmp(k, "stream")) {
            bool stream = false;
            if (!parse_bool(v, &stream) || stream)
                return cn_error_set(err, CANARY_EINVAL,
                                    "'stream' is not supported here; use POST /v1/jobs and GET /v1/jobs/{id}/events "
                                    "for progress");
        } else {
            /* Unknown fields are ignored like OpenAI's own optional ones (clients send extras). */
        }
    }
    *param = NULL;
    (void)segment_seen;
    if (word && out->format != CN_FMT_VERBOSE_JSON && !jobs) {
        *param = "timestamp_granularities[]";
        return cn_error_set(err, CANARY_EINVAL,
                            "word timestamps ('timestamp_granularities[]' = 'word') need response_format=verbose_json");
    }
    out->opts.word_timestamps = word;
    out->words = word;
    if (!out->opts.language[0])
        snprintf(out->opts.language, sizeof out->opts.language, "%s", default_language ? default_language : "en");
    if (out->opts.task == CN_TASK_TRANSLATE && !out->opts.target_language[0])
        snprintf(out->opts.target_language, sizeof out->opts.target_language, "en");
    return CANARY_OK;
}

cn_status cn_request_params_parse(const cn_form *f, cn_task default_task, bool jobs, const char *default_language,
                                  bool default_pnc, cn_request_params *out, const char **param, cn_error *err) {
    memset(out, 0, sizeof *out);
    cn_status st = parse_fields(f, default_task, jobs, default_language, default_pnc, out, param, err);
    if (st != CANARY_OK)
        cn_request_params_free(out); /* a field parsed before the bad one may own memory */
    return st;
}

bool cn_bearer_token(const char *h, const char **key, size_t *len) {
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return false;
    *key = h;
    *len = n;
    return true;
}

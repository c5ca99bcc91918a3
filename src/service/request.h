/* Request parameters of the transcription endpoints: the multipart form as it arrives (values in
 * pieces, gotcha 4 of deps.md) and its validation into transcription options. Pure functions of
 * untrusted bytes, fuzzed by tests/fuzz/service.cmake. */
#ifndef CN_SERVICE_REQUEST_H
#define CN_SERVICE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "service/transcriber.h"

#define CN_FORM_MAX_FIELDS 32
#define CN_FORM_MAX_VALUE (64 * 1024)

typedef struct cn_form_field {
    char key[64];
    cn_strbuf value;
} cn_form_field;

typedef struct cn_form {
    cn_form_field fields[CN_FORM_MAX_FIELDS];
    int n;
} cn_form;

void cn_form_free(cn_form *f);
/* Adds one piece of a (non-file) field value. off == 0 starts a new value (a repeated key such as
 * timestamp_granularities[] gives several); other pieces extend the newest value of that key.
 * Fails (EINVAL / ELIMIT) on too many fields, long keys or values over CN_FORM_MAX_VALUE. */
cn_status cn_form_add(cn_form *f, const char *key, const char *data, uint64_t off, size_t size, cn_error *err);
/* The first value of `key`, or NULL. */
const char *cn_form_get(const cn_form *f, const char *key);

typedef struct cn_request_params {
    cn_transcribe_options opts; /* opts.prompt is owned */
    cn_format format;
    bool words;                 /* word-level timestamps asked for */
    char model[128];
    char webhook_url[2048];     /* "" = none */
} cn_request_params;

/* Validates the form. On failure `*param` names the offending field (OpenAI's error.param) and
 * the error says what is accepted. `default_task` comes from the endpoint; `jobs` allows the
 * job-only fields (task, webhook_url). */
cn_status cn_request_params_parse(const cn_form *f, cn_task default_task, bool jobs, const char *default_language,
                                  bool default_pnc, cn_request_params *out, const char **param, cn_error *err);
void cn_request_params_free(cn_request_params *p);

/* "Bearer <key>" -> key (a pointer into header and its length); false when malformed. */
bool cn_bearer_token(const char *header, const char **key, size_t *len);

#endif

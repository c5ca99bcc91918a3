#include "nemo/nemo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "nemo/archive.h"
#include "nemo/checkpoint.h"
#include "nemo/model_config.h"
#include "nemo/tokenizer_load.h"

struct cn_nemo {
    cn_archive archive;
    char *config_yaml;
    char *ts_config_yaml;
    cn_checkpoint weights;
    cn_checkpoint ts_weights;
    cn_model_desc desc;
    cn_tokenizer *tok;
};

static cn_status copy_text(const cn_archive_member *m, char **out, cn_error *err) {
    if (memchr(m->data, 0, m->size))
        return cn_error_set(err, CANARY_EFORMAT, "%s contains a NUL byte: not a text file", m->name);
    *out = malloc(m->size + 1);
    if (!*out)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory reading %s", m->name);
    memcpy(*out, m->data, m->size);
    (*out)[m->size] = 0;
    return CANARY_OK;
}

static cn_status load(cn_nemo *m, const char *path, const char *cache_dir, cn_error *err) {
    CN_TRY(cn_archive_open(path, cache_dir, &m->archive, err));
    const cn_archive_member *cfg = cn_archive_find(&m->archive, "model_config.yaml");
    const cn_archive_member *w = cn_archive_find(&m->archive, "model_weights.ckpt");
    if (!cfg || !w)
        return cn_error_set(err, CANARY_EFORMAT, "%s has no %s: not a NeMo checkpoint", path,
                            !cfg ? "model_config.yaml" : "model_weights.ckpt");
    CN_TRY(copy_text(cfg, &m->config_yaml, err));
    cn_tok_config *tokcfg = calloc(1, sizeof *tokcfg);
    if (!tokcfg)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory opening %s", path);
    cn_status st = cn_model_config_parse(m->config_yaml, cfg->size, "model_config.yaml", &m->desc, tokcfg, err);
    if (!st)
        st = cn_tokenizer_load(&m->archive, tokcfg, &m->tok, err);
    free(tokcfg);
    CN_TRY(st);
    CN_TRY(cn_checkpoint_load(w->data, w->size, "model_weights.ckpt", &m->weights, err));
    /* the embedding rows are the truth for the vocabulary (NeMo rounds the tokenizer's size up to 8) */
    const int64_t emb_shape[2] = {-1, m->desc.dec.hidden};
    const cn_tensor_view *emb;
    CN_TRY(cn_nemo_expect(m, "transf_decoder._embedding.token_embedding.weight", 2, emb_shape, &emb, err));
    if (emb->shape[0] < 1 || emb->shape[0] > (1 << 24))
        return cn_error_set(err, CANARY_EFORMAT, "token embedding has %lld rows", (long long)emb->shape[0]);
    if (m->desc.dec.vocab_size && m->desc.dec.vocab_size != emb->shape[0])
        CN_WARN("nemo", "%s: the config says vocab_size %d, the checkpoint's embedding has %lld rows; using the latter",
                path, m->desc.dec.vocab_size, (long long)emb->shape[0]);
    m->desc.dec.vocab_size = (int)emb->shape[0];
    int tok_vocab = cn_tok_vocab_size(m->tok);
    int64_t rows = 8 * (((int64_t)tok_vocab + 7) / 8);
    if (emb->shape[0] != rows)
        return cn_error_set(err, CANARY_EFORMAT,
                            "the tokenizer has %d ids, so the decoder needs %lld embedding rows (a multiple of 8), "
                            "but transf_decoder._embedding.token_embedding.weight has %lld: mismatched tokenizer",
                            tok_vocab, (long long)rows, (long long)emb->shape[0]);
    cn_model_desc_set_variant(&m->desc);
    const cn_archive_member *tcfg = cn_archive_find(&m->archive, "timestamps_asr_model_config.yaml");
    const cn_archive_member *tw = cn_archive_find(&m->archive, "timestamps_asr_model_weights.ckpt");
    if (tcfg && tw) {
        CN_TRY(copy_text(tcfg, &m->ts_config_yaml, err));
        CN_TRY(cn_checkpoint_load(tw->data, tw->size, "timestamps_asr_model_weights.ckpt", &m->ts_weights, err));
        m->desc.has_timestamps_model = true;
    } else if (tcfg || tw) {
        return cn_error_set(err, CANARY_EFORMAT, "%s has %s but not %s", path, tcfg ? tcfg->name : tw->name,
                            tcfg ? "timestamps_asr_model_weights.ckpt" : "timestamps_asr_model_config.yaml");
    }
    return CANARY_OK;
}

cn_status cn_nemo_open(const char *path, const char *cache_dir, cn_nemo **out, cn_error *err) {
    *out = NULL;
    cn_nemo *m = calloc(1, sizeof *m);
    if (!m)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory opening %s", path);
    cn_status st = load(m, path, cache_dir, err);
    if (st) {
        if (!strstr(err ? err->msg : "", path))
            cn_error_prefix(err, "loading %s", path);
        cn_nemo_close(m);
        return st;
    }
    CN_DEBUG("nemo", "%s: %zu tensors in %d storages", path, m->weights.n, m->weights.n_storages);
    *out = m;
    return CANARY_OK;
}

void cn_nemo_close(cn_nemo *m) {
    if (!m)
        return;
    cn_tokenizer_free(m->tok);
    cn_checkpoint_free(&m->weights);
    cn_checkpoint_free(&m->ts_weights);
    free(m->config_yaml);
    free(m->ts_config_yaml);
    cn_archive_close(&m->archive);
    free(m);
}

const cn_model_desc *cn_nemo_desc(const cn_nemo *m) { return &m->desc; }
const cn_tokenizer *cn_nemo_tokenizer(const cn_nemo *m) { return m->tok; }

const cn_tensor_view *cn_nemo_tensor(const cn_nemo *m, const char *name) {
    return cn_checkpoint_find(&m->weights, name);
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

cn_status cn_nemo_expect(const cn_nemo *m, const char *name, int ndim, const int64_t *shape,
                         const cn_tensor_view **out, cn_error *err) {
    const cn_tensor_view *t = cn_nemo_tensor(m, name);
    if (!t)
        return cn_error_set(err, CANARY_ENOTFOUND, "the checkpoint has no tensor '%s'", name);
    bool ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] < 0 || shape[d] == t->shape[d];
    if (!ok) {
        char want[160], have[160];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(have, sizeof have, t->ndim, t->shape);
        return cn_error_set(err, CANARY_EFORMAT, "tensor '%s' has shape %s; the config implies %s", name, have, want);
    }
    if (out)
        *out = t;
    return CANARY_OK;
}

size_t cn_nemo_tensor_count(const cn_nemo *m) { return m->weights.n; }
const cn_tensor_view *cn_nemo_tensor_at(const cn_nemo *m, size_t i) {
    return i < m->weights.n ? &m->weights.tensors[i] : NULL;
}
const char *cn_nemo_config_yaml(const cn_nemo *m) { return m->config_yaml; }
const char *cn_nemo_timestamps_config_yaml(const cn_nemo *m) { return m->ts_config_yaml; }
const cn_tensor_view *cn_nemo_timestamps_tensor(const cn_nemo *m, const char *name) {
    return m->ts_config_yaml ? cn_checkpoint_find(&m->ts_weights, name) : NULL;
}

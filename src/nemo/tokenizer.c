#include "nemo/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "nemo/sp_model.h"
#include "nemo/tokenizer_load.h"

typedef struct tok_block {
    char name[32]; /* "spl_tokens", "en", ... ("" for the unified model) */
    cn_spm spm;
    int offset;
} tok_block;

typedef struct special {
    const char *text;
    int id;
} special;

struct cn_tokenizer {
    bool aggregate;
    tok_block *blocks;
    size_t n_blocks;
    int vocab;
    int spl_block;      /* aggregate: index of the spl_tokens block */
    uint8_t *is_special; /* per id */
    int *ts_value;      /* per id: N of <|N|>, else -1 */
    special *specials;  /* sorted by text; the lowest id wins for duplicates */
    size_t n_specials;
    int eos, bos, pad;
    char (*langs)[16];
    size_t n_langs;
    int prompt_prefix_id; /* unified: the "▁" piece NeMo's encode puts before the prompt, else -1 */
};

/* canary-1b-v2's languages (model card); the unified tokenizer carries tags for ~183 codes. */
static const char *const V2_LANGS[] = {"bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "it",
                                       "lv", "lt", "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk"};

static cn_status oom(cn_error *err) { return cn_error_set(err, CANARY_ENOMEM, "out of memory loading the tokenizer"); }

static int cmp_special(const void *a, const void *b) {
    const special *x = a, *y = b;
    int r = strcmp(x->text, y->text);
    return r ? r : (x->id > y->id) - (x->id < y->id);
}

static const tok_block *block_of(const cn_tokenizer *t, int id, int *local) {
    size_t lo = 0, hi = t->n_blocks;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (t->blocks[mid].offset <= id)
            lo = mid;
        else
            hi = mid;
    }
    *local = id - t->blocks[lo].offset;
    return &t->blocks[lo];
}

static bool is_special_text(const char *p) {
    size_t n = strlen(p);
    return (n >= 4 && !strncmp(p, "<|", 2) && !strcmp(p + n - 2, "|>")) || !strcmp(p, "<pad>");
}

static int timestamp_of(const char *p) {
    size_t n = strlen(p);
    if (n < 5 || n > 12 || strncmp(p, "<|", 2) || strcmp(p + n - 2, "|>"))
        return -1;
    int v = 0;
    for (size_t i = 2; i < n - 2; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static cn_status finish(cn_tokenizer *t, cn_error *err) {
    t->vocab = 0;
    for (size_t b = 0; b < t->n_blocks; b++) {
        t->blocks[b].offset = t->vocab;
        t->vocab += (int)t->blocks[b].spm.n;
    }
    t->spl_block = -1;
    if (t->aggregate) {
        for (size_t b = 0; b < t->n_blocks; b++)
            if (!strcmp(t->blocks[b].name, "spl_tokens"))
                t->spl_block = (int)b;
        if (t->spl_block < 0)
            return cn_error_set(err, CANARY_EFORMAT,
                                "aggregate tokenizer has no 'spl_tokens' sub-tokenizer (tokenizer.langs.spl_tokens)");
    }
    t->is_special = calloc((size_t)t->vocab, 1);
    t->ts_value = malloc((size_t)t->vocab * sizeof *t->ts_value);
    t->specials = calloc((size_t)t->vocab, sizeof *t->specials);
    if (!t->is_special || !t->ts_value || !t->specials)
        return oom(err);
    for (size_t b = 0; b < t->n_blocks; b++) {
        const tok_block *blk = &t->blocks[b];
        bool spl = (int)b == t->spl_block;
        for (size_t i = 0; i < blk->spm.n; i++) {
            int id = blk->offset + (int)i;
            const cn_spm_piece *p = &blk->spm.pieces[i];
            t->ts_value[id] = -1;
            /* aggregate: the whole spl_tokens block is prompt/control vocabulary; unified: the
             * <|...|> and <pad> pieces */
            bool sp = spl || (!t->aggregate && (p->type == CN_SPM_USER_DEFINED || p->type == CN_SPM_CONTROL) &&
                              is_special_text(p->piece));
            if (!sp)
                continue;
            t->is_special[id] = 1;
            t->ts_value[id] = timestamp_of(p->piece);
            if (is_special_text(p->piece))
                t->specials[t->n_specials++] = (special){p->piece, id};
        }
    }
    qsort(t->specials, t->n_specials, sizeof *t->specials, cmp_special);
    t->eos = cn_tok_special(t, "<|endoftext|>");
    t->bos = cn_tok_special(t, "<|startoftranscript|>");
    t->pad = cn_tok_special(t, "<pad>");
    if (t->eos < 0 || t->bos < 0)
        return cn_error_set(err, CANARY_EFORMAT, "tokenizer lacks %s: not a Canary tokenizer",
                            t->eos < 0 ? "<|endoftext|>" : "<|startoftranscript|>");
    /* languages */
    t->langs = calloc(t->aggregate ? t->n_blocks : t->n_specials + 1, sizeof *t->langs);
    if (!t->langs)
        return oom(err);
    char tag[48];
    if (t->aggregate) {
        for (size_t b = 0; b < t->n_blocks; b++) {
            if ((int)b == t->spl_block)
                continue;
            snprintf(tag, sizeof tag, "<|%s|>", t->blocks[b].name);
            if (cn_tok_special(t, tag) < 0)
                return cn_error_set(err, CANARY_EFORMAT, "tokenizer block '%s' has no language tag %s in spl_tokens",
                                    t->blocks[b].name, tag);
            snprintf(t->langs[t->n_langs++], sizeof t->langs[0], "%s", t->blocks[b].name);
        }
    } else {
        for (size_t i = 0; i < sizeof V2_LANGS / sizeof *V2_LANGS; i++) {
            snprintf(tag, sizeof tag, "<|%s|>", V2_LANGS[i]);
            if (cn_tok_special(t, tag) >= 0)
                snprintf(t->langs[t->n_langs++], sizeof t->langs[0], "%s", V2_LANGS[i]);
        }
        /* a custom unified tokenizer: every two/three-letter tag */
        for (size_t i = 0; t->n_langs == 0 && i < t->n_specials; i++) {
            const char *p = t->specials[i].text;
            size_t n = strlen(p);
            if (n < 6 || n > 7)
                continue;
            bool lower = true;
            for (size_t k = 2; k < n - 2; k++)
                lower = lower && p[k] >= 'a' && p[k] <= 'z';
            if (lower)
                snprintf(t->langs[t->n_langs++], sizeof t->langs[0], "%.*s", (int)(n - 4), p + 2);
        }
    }
    if (t->n_langs == 0)
        return cn_error_set(err, CANARY_EFORMAT, "tokenizer has no language tags");
    t->prompt_prefix_id = -1;
    if (!t->aggregate && t->blocks[0].spm.add_dummy_prefix) {
        t->prompt_prefix_id = cn_spm_piece_id(&t->blocks[0].spm, "\xE2\x96\x81", 3);
        if (t->prompt_prefix_id < 0)
            return cn_error_set(err, CANARY_EFORMAT, "unified tokenizer adds a dummy prefix but has no \"\xE2\x96\x81\" piece");
    }
    return CANARY_OK;
}

cn_status cn_tokenizer_from_models(const char *const *names, const uint8_t *const *data, const size_t *sizes, size_t n,
                                   bool aggregate, cn_tokenizer **out, cn_error *err) {
    *out = NULL;
    if (n == 0 || (!aggregate && n != 1))
        return cn_error_set(err, CANARY_EINVAL, "tokenizer needs one model (unified) or several (aggregate)");
    cn_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return oom(err);
    t->aggregate = aggregate;
    t->blocks = calloc(n, sizeof *t->blocks);
    if (!t->blocks) {
        free(t);
        return oom(err);
    }
    cn_status st = CANARY_OK;
    uint64_t total = 0;
    for (size_t b = 0; b < n && !st; b++) {
        snprintf(t->blocks[b].name, sizeof t->blocks[b].name, "%s", names && names[b] ? names[b] : "");
        char label[96];
        snprintf(label, sizeof label, "tokenizer '%s'", t->blocks[b].name[0] ? t->blocks[b].name : "model");
        st = cn_spm_parse(data[b], sizes[b], label, &t->blocks[b].spm, err);
        if (!st)
            t->n_blocks++;
        total += t->blocks[b].spm.n;
        if (!st && total > (1 << 24))
            st = cn_error_set(err, CANARY_ELIMIT, "tokenizer has more than %d pieces", 1 << 24);
    }
    if (!st)
        st = finish(t, err);
    if (st) {
        cn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return CANARY_OK;
}

cn_status cn_tokenizer_load(const cn_archive *a, const cn_tok_config *cfg, cn_tokenizer **out, cn_error *err) {
    size_t n = cfg->aggregate ? cfg->n_sub : 1;
    const char *names[CN_TOK_MAX_SUB];
    const uint8_t *data[CN_TOK_MAX_SUB];
    size_t sizes[CN_TOK_MAX_SUB];
    for (size_t i = 0; i < n; i++) {
        const cn_archive_member *m;
        const char *ref = cfg->aggregate ? cfg->sub[i].model_ref : cfg->model_ref;
        cn_status st = cn_archive_resolve(a, ref, &m, err);
        if (st)
            return cn_error_prefix(err, "tokenizer%s%s", cfg->aggregate ? " " : "", cfg->aggregate ? cfg->sub[i].lang : "");
        names[i] = cfg->aggregate ? cfg->sub[i].lang : "";
        data[i] = m->data;
        sizes[i] = m->size;
    }
    return cn_tokenizer_from_models(names, data, sizes, n, cfg->aggregate, out, err);
}

void cn_tokenizer_free(cn_tokenizer *t) {
    if (!t)
        return;
    for (size_t b = 0; b < t->n_blocks; b++)
        cn_spm_free(&t->blocks[b].spm);
    free(t->blocks);
    free(t->is_special);
    free(t->ts_value);
    free(t->specials);
    free(t->langs);
    free(t);
}

int cn_tok_vocab_size(const cn_tokenizer *t) { return t->vocab; }
bool cn_tok_is_aggregate(const cn_tokenizer *t) { return t->aggregate; }
int cn_tok_eos(const cn_tokenizer *t) { return t->eos; }
int cn_tok_bos(const cn_tokenizer *t) { return t->bos; }
int cn_tok_pad(const cn_tokenizer *t) { return t->pad; }

int cn_tok_special(const cn_tokenizer *t, const char *text) {
    size_t lo = 0, hi = t->n_specials;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(t->specials[mid].text, text);
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n_specials && !strcmp(t->specials[lo].text, text) ? t->specials[lo].id : -1;
}

bool cn_tok_is_special(const cn_tokenizer *t, int id) { return id >= 0 && id < t->vocab && t->is_special[id]; }

int cn_tok_timestamp_value(const cn_tokenizer *t, int id) { return id >= 0 && id < t->vocab ? t->ts_value[id] : -1; }

const char *cn_tok_piece(const cn_tokenizer *t, int id) {
    if (id < 0 || id >= t->vocab)
        return NULL;
    int local;
    const tok_block *b = block_of(t, id, &local);
    return b->spm.pieces[local].piece;
}

cn_status cn_tok_decode(const cn_tokenizer *t, const int *ids, size_t n, char **text, cn_error *err) {
    *text = NULL;
    cn_strbuf sb;
    cn_sb_init(&sb);
    if (t->aggregate) {
        /* NeMo's AggregateTokenizer.ids_to_text: concatenate the pieces of every block, U+2581 to
         * space (no SentencePiece decode, so <unk> stays literal) */
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= t->vocab || t->is_special[ids[i]])
                continue;
            int local;
            const tok_block *b = block_of(t, ids[i], &local);
            const char *p = b->spm.pieces[local].piece;
            for (const char *q; (q = strstr(p, "\xE2\x96\x81"));) {
                cn_sb_putn(&sb, p, (size_t)(q - p));
                cn_sb_putc(&sb, ' ');
                p = q + 3;
            }
            cn_sb_puts(&sb, p);
        }
    } else {
        cn_spm_decoder d;
        cn_spm_decoder_init(&d, &sb);
        for (size_t i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < t->vocab && !t->is_special[ids[i]])
                cn_spm_decoder_put(&d, &t->blocks[0].spm, ids[i]);
        cn_spm_decoder_finish(&d);
    }
    if (cn_sb_failed(&sb)) {
        cn_sb_free(&sb);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory decoding tokens");
    }
    /* NeMo's output post-processing trims the text (spec §6.7) */
    const char *s = cn_sb_str(&sb);
    size_t start = 0, end = sb.len;
    while (start < end && s[start] == ' ')
        start++;
    while (end > start && s[end - 1] == ' ')
        end--;
    *text = malloc(end - start + 1);
    if (!*text) {
        cn_sb_free(&sb);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory decoding tokens");
    }
    memcpy(*text, s + start, end - start);
    (*text)[end - start] = 0;
    cn_sb_free(&sb);
    return CANARY_OK;
}

size_t cn_tok_language_count(const cn_tokenizer *t) { return t->n_langs; }
const char *cn_tok_language_at(const cn_tokenizer *t, size_t i) { return i < t->n_langs ? t->langs[i] : NULL; }

static bool supports_lang(const cn_tokenizer *t, const char *lang) {
    for (size_t i = 0; i < t->n_langs; i++)
        if (!strcmp(t->langs[i], lang))
            return true;
    return false;
}

static cn_status lang_error(const cn_tokenizer *t, const char *what, const char *lang, cn_error *err) {
    char list[512] = "";
    for (size_t i = 0; i < t->n_langs; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", t->langs[i]);
    return cn_error_set(err, CANARY_ENOTFOUND, "%s language '%.64s' is not supported by this model (supported: %s)",
                        what, lang, list);
}

typedef struct prompt_out {
    int *ids;
    size_t cap, n;
} prompt_out;

static cn_status put_tok(const cn_tokenizer *t, prompt_out *o, const char *text, cn_error *err) {
    int id = cn_tok_special(t, text);
    if (id < 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "this model's tokenizer has no %s token", text);
    if (o->n >= o->cap)
        return cn_error_set(err, CANARY_ELIMIT, "prompt needs more than %zu ids", o->cap);
    o->ids[o->n++] = id;
    return CANARY_OK;
}

cn_status cn_tok_build_prompt(const cn_tokenizer *t, cn_prompt_format fmt, const cn_prompt_opts *opts, int *ids,
                              size_t cap, size_t *n_out, cn_error *err) {
    *n_out = 0;
    const char *src = opts->source_lang;
    if (!src || !src[0])
        return cn_error_set(err, CANARY_EINVAL, "a source language is required");
    const char *tgt = opts->target_lang && opts->target_lang[0] ? opts->target_lang : src;
    if (!supports_lang(t, src))
        return lang_error(t, "source", src, err);
    if (!supports_lang(t, tgt))
        return lang_error(t, "target", tgt, err);
    char tag[64];
    prompt_out o = {ids, cap, 0};
    if (fmt == CN_PROMPT_CANARY) {
        /* <|startoftranscript|> <|SRC|> <|TASK|> <|TGT|> <|PNC|> */
        if (opts->itn || opts->timestamps || opts->diarize || opts->emotion || opts->n_decoder_context)
            return cn_error_set(err, CANARY_EUNSUPPORTED,
                                "the 'canary' prompt format (canary-1b) has no %s slot",
                                opts->itn ? "ITN" : opts->timestamps ? "timestamp" : opts->diarize ? "diarization"
                                : opts->emotion ? "emotion" : "decoder context");
        CN_TRY(put_tok(t, &o, "<|startoftranscript|>", err));
        snprintf(tag, sizeof tag, "<|%s|>", src);
        CN_TRY(put_tok(t, &o, tag, err));
        CN_TRY(put_tok(t, &o, strcmp(src, tgt) ? "<|translate|>" : "<|transcribe|>", err));
        snprintf(tag, sizeof tag, "<|%s|>", tgt);
        CN_TRY(put_tok(t, &o, tag, err));
        CN_TRY(put_tok(t, &o, opts->pnc ? "<|pnc|>" : "<|nopnc|>", err));
    } else if (fmt == CN_PROMPT_CANARY2) {
        /* [▁] <|startofcontext|> [context] <|startoftranscript|> <|EMO|> <|SRC|> <|TGT|> <|PNC|> <|ITN|>
         * <|TIMESTAMP|> <|DIARIZE|>; the unified tokenizer's SentencePiece encode of this string adds
         * the dummy-prefix piece first, as NeMo's _apply_tokenizer does */
        if (t->prompt_prefix_id >= 0) {
            if (o.n >= o.cap)
                return cn_error_set(err, CANARY_ELIMIT, "prompt needs more than %zu ids", o.cap);
            o.ids[o.n++] = t->prompt_prefix_id;
        }
        CN_TRY(put_tok(t, &o, "<|startofcontext|>", err));
        for (size_t i = 0; i < opts->n_decoder_context; i++) {
            int id = opts->decoder_context[i];
            if (id < 0 || id >= t->vocab || t->is_special[id])
                return cn_error_set(err, CANARY_EINVAL, "decoder context id %d is not a text token", id);
            if (o.n >= o.cap)
                return cn_error_set(err, CANARY_ELIMIT, "prompt needs more than %zu ids", o.cap);
            o.ids[o.n++] = id;
        }
        CN_TRY(put_tok(t, &o, "<|startoftranscript|>", err));
        if (opts->emotion && strlen(opts->emotion) > 32)
            return cn_error_set(err, CANARY_EINVAL, "emotion name too long");
        snprintf(tag, sizeof tag, "<|emo:%s|>", opts->emotion ? opts->emotion : "undefined");
        if (cn_tok_special(t, tag) < 0)
            return cn_error_set(err, CANARY_EINVAL,
                                "unknown emotion '%s' (the model knows undefined, neutral, happy, sad, angry)",
                                opts->emotion ? opts->emotion : "undefined");
        CN_TRY(put_tok(t, &o, tag, err));
        snprintf(tag, sizeof tag, "<|%s|>", src);
        CN_TRY(put_tok(t, &o, tag, err));
        snprintf(tag, sizeof tag, "<|%s|>", tgt);
        CN_TRY(put_tok(t, &o, tag, err));
        CN_TRY(put_tok(t, &o, opts->pnc ? "<|pnc|>" : "<|nopnc|>", err));
        CN_TRY(put_tok(t, &o, opts->itn ? "<|itn|>" : "<|noitn|>", err));
        CN_TRY(put_tok(t, &o, opts->timestamps ? "<|timestamp|>" : "<|notimestamp|>", err));
        CN_TRY(put_tok(t, &o, opts->diarize ? "<|diarize|>" : "<|nodiarize|>", err));
    } else {
        return cn_error_set(err, CANARY_EINVAL, "unknown prompt format %d", (int)fmt);
    }
    *n_out = o.n;
    return CANARY_OK;
}

static cn_status encode_block(const cn_tokenizer *t, size_t b, const char *text, int **ids, size_t *n, cn_error *err) {
    CN_TRY(cn_spm_encode(&t->blocks[b].spm, text, ids, n, err));
    for (size_t i = 0; i < *n; i++)
        (*ids)[i] += t->blocks[b].offset;
    return CANARY_OK;
}

cn_status cn_tok_encode(const cn_tokenizer *t, const char *text, int **ids, size_t *n, cn_error *err) {
    *ids = NULL;
    *n = 0;
    if (t->aggregate)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "an aggregate tokenizer encodes text per language: use cn_tok_encode_lang");
    return encode_block(t, 0, text, ids, n, err);
}

cn_status cn_tok_encode_lang(const cn_tokenizer *t, const char *lang, const char *text, int **ids, size_t *n,
                             cn_error *err) {
    *ids = NULL;
    *n = 0;
    if (!t->aggregate)
        return cn_tok_encode(t, text, ids, n, err);
    for (size_t b = 0; b < t->n_blocks; b++)
        if ((int)b != t->spl_block && !strcmp(t->blocks[b].name, lang))
            return encode_block(t, b, text, ids, n, err);
    return lang_error(t, "text", lang, err);
}

#include "nemo/sp_model.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- protobuf wire format ---- */

typedef struct pb {
    const uint8_t *p, *end;
    const char *label;
    cn_error *err;
} pb;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static cn_status pb_fail(const pb *b, const char *what) {
    return cn_error_set(b->err, CANARY_EFORMAT, "%s: malformed SentencePiece model: %s", b->label, what);
}

static cn_status rd_varint(pb *b, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return pb_fail(b, "truncated varint");
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return CANARY_OK;
        }
    }
    return pb_fail(b, "varint longer than 10 bytes");
}

/* Reads a field key; *wt is the wire type. */
static cn_status rd_key(pb *b, uint32_t *field, int *wt) {
    uint64_t k = 0;
    CN_TRY(rd_varint(b, &k));
    *field = (uint32_t)(k >> 3);
    *wt = (int)(k & 7);
    if (*field == 0)
        return pb_fail(b, "field number 0");
    return CANARY_OK;
}

static cn_status rd_len(pb *b, pb *sub) {
    uint64_t n = 0;
    CN_TRY(rd_varint(b, &n));
    if (n > (uint64_t)(b->end - b->p))
        return pb_fail(b, "length-delimited field runs past its message");
    *sub = (pb){b->p, b->p + n, b->label, b->err};
    b->p += n;
    return CANARY_OK;
}

static cn_status skip(pb *b, int wt) {
    uint64_t v = 0;
    pb sub = {0};
    switch (wt) {
    case WT_VARINT:
        return rd_varint(b, &v);
    case WT_I64:
        if (b->end - b->p < 8)
            return pb_fail(b, "truncated fixed64");
        b->p += 8;
        return CANARY_OK;
    case WT_LEN:
        return rd_len(b, &sub);
    case WT_I32:
        if (b->end - b->p < 4)
            return pb_fail(b, "truncated fixed32");
        b->p += 4;
        return CANARY_OK;
    default:
        return pb_fail(b, "unsupported wire type (groups or invalid)");
    }
}

static cn_status expect_wt(const pb *b, int wt, int want, const char *field) {
    if (wt == want)
        return CANARY_OK;
    return cn_error_set(b->err, CANARY_EFORMAT, "%s: malformed SentencePiece model: field %s has wire type %d, expected %d",
                        b->label, field, wt, want);
}

static cn_status rd_bool(pb *b, int wt, const char *field, bool *out) {
    CN_TRY(expect_wt(b, wt, WT_VARINT, field));
    uint64_t v = 0;
    CN_TRY(rd_varint(b, &v));
    *out = v != 0;
    return CANARY_OK;
}

static cn_status rd_int32(pb *b, int wt, const char *field, int *out) {
    CN_TRY(expect_wt(b, wt, WT_VARINT, field));
    uint64_t v = 0;
    CN_TRY(rd_varint(b, &v));
    *out = (int)(int32_t)(uint32_t)v; /* int32 negatives are sign-extended 64-bit varints */
    return CANARY_OK;
}

static cn_status rd_string(pb *b, int wt, const char *field, char **out) {
    CN_TRY(expect_wt(b, wt, WT_LEN, field));
    pb s = {0};
    CN_TRY(rd_len(b, &s));
    size_t n = (size_t)(s.end - s.p);
    if (n > CN_SPM_MAX_PIECE_LEN)
        return pb_fail(b, "string field too long");
    if (memchr(s.p, 0, n))
        return pb_fail(b, "NUL byte in a string field");
    char *str = malloc(n + 1);
    if (!str)
        return cn_error_set(b->err, CANARY_ENOMEM, "out of memory reading %s", b->label);
    memcpy(str, s.p, n);
    str[n] = 0;
    free(*out);
    *out = str;
    return CANARY_OK;
}

/* ---- ModelProto ---- */

static int byte_piece_value(const char *p) {
    /* "<0xNN>" with upper-case hex, as SentencePiece writes it */
    if (strlen(p) != 6 || strncmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static cn_status parse_piece(pb *b, cn_spm_piece *out) {
    out->type = CN_SPM_NORMAL;
    out->byte_value = -1;
    while (b->p < b->end) {
        uint32_t f = 0;
        int wt = 0;
        CN_TRY(rd_key(b, &f, &wt));
        if (f == 1) {
            CN_TRY(rd_string(b, wt, "pieces.piece", &out->piece));
        } else if (f == 2) {
            CN_TRY(expect_wt(b, wt, WT_I32, "pieces.score"));
            if (b->end - b->p < 4)
                return pb_fail(b, "truncated score");
            uint32_t bits = (uint32_t)b->p[0] | ((uint32_t)b->p[1] << 8) | ((uint32_t)b->p[2] << 16) |
                            ((uint32_t)b->p[3] << 24);
            memcpy(&out->score, &bits, 4);
            b->p += 4;
        } else if (f == 3) {
            CN_TRY(rd_int32(b, wt, "pieces.type", &out->type));
            if (out->type < CN_SPM_NORMAL || out->type > CN_SPM_BYTE)
                return pb_fail(b, "unknown piece type");
        } else {
            CN_TRY(skip(b, wt));
        }
    }
    if (!out->piece)
        return pb_fail(b, "piece without text");
    if (out->type == CN_SPM_BYTE && (out->byte_value = byte_piece_value(out->piece)) < 0)
        return pb_fail(b, "BYTE piece not of the form <0xNN>");
    return CANARY_OK;
}

static cn_status parse_trainer(pb *b, cn_spm *m) {
    while (b->p < b->end) {
        uint32_t f = 0;
        int wt = 0;
        CN_TRY(rd_key(b, &f, &wt));
        switch (f) {
        case 3: CN_TRY(rd_int32(b, wt, "trainer_spec.model_type", &m->model_type)); break;
        case 24: CN_TRY(rd_bool(b, wt, "trainer_spec.treat_whitespace_as_suffix", &m->treat_whitespace_as_suffix)); break;
        case 35: CN_TRY(rd_bool(b, wt, "trainer_spec.byte_fallback", &m->byte_fallback)); break;
        case 40: CN_TRY(rd_int32(b, wt, "trainer_spec.unk_id", &m->unk_id)); break;
        case 41: CN_TRY(rd_int32(b, wt, "trainer_spec.bos_id", &m->bos_id)); break;
        case 42: CN_TRY(rd_int32(b, wt, "trainer_spec.eos_id", &m->eos_id)); break;
        case 43: CN_TRY(rd_int32(b, wt, "trainer_spec.pad_id", &m->pad_id)); break;
        case 44: CN_TRY(rd_string(b, wt, "trainer_spec.unk_surface", &m->unk_surface)); break;
        default: CN_TRY(skip(b, wt)); break;
        }
    }
    return CANARY_OK;
}

static cn_status parse_normalizer(pb *b, cn_spm *m) {
    while (b->p < b->end) {
        uint32_t f = 0;
        int wt = 0;
        CN_TRY(rd_key(b, &f, &wt));
        if (f == 1) {
            char *name = NULL;
            cn_status st = rd_string(b, wt, "normalizer_spec.name", &name);
            if (!st)
                snprintf(m->normalizer_name, sizeof m->normalizer_name, "%s", name);
            free(name);
            CN_TRY(st);
        } else if (f == 2) {
            CN_TRY(expect_wt(b, wt, WT_LEN, "normalizer_spec.precompiled_charsmap"));
            pb s = {0};
            CN_TRY(rd_len(b, &s));
            m->has_charsmap = s.end > s.p;
        } else if (f == 3) {
            CN_TRY(rd_bool(b, wt, "normalizer_spec.add_dummy_prefix", &m->add_dummy_prefix));
        } else if (f == 4) {
            CN_TRY(rd_bool(b, wt, "normalizer_spec.remove_extra_whitespaces", &m->remove_extra_whitespaces));
        } else if (f == 5) {
            CN_TRY(rd_bool(b, wt, "normalizer_spec.escape_whitespaces", &m->escape_whitespaces));
        } else {
            CN_TRY(skip(b, wt));
        }
    }
    return CANARY_OK;
}

static int cmp_piece(const void *a, const void *b, void *ctx) {
    const cn_spm *m = ctx;
    return strcmp(m->pieces[*(const uint32_t *)a].piece, m->pieces[*(const uint32_t *)b].piece);
}

cn_status cn_spm_parse(const uint8_t *data, size_t size, const char *label, cn_spm *m, cn_error *err) {
    memset(m, 0, sizeof *m);
    m->model_type = CN_SPM_UNIGRAM;
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    m->add_dummy_prefix = m->remove_extra_whitespaces = m->escape_whitespaces = true;
    pb b = {data, data + size, label, err};
    size_t cap = 0;
    cn_status st = CANARY_OK;
    while (b.p < b.end && !st) {
        uint32_t f = 0;
        int wt = 0;
        if ((st = rd_key(&b, &f, &wt)))
            break;
        pb sub = {0};
        if (f == 1 || f == 2 || f == 3) {
            if ((st = expect_wt(&b, wt, WT_LEN, f == 1 ? "pieces" : f == 2 ? "trainer_spec" : "normalizer_spec")) ||
                (st = rd_len(&b, &sub)))
                break;
        }
        if (f == 1) {
            if (m->n >= CN_SPM_MAX_PIECES) {
                st = cn_error_set(err, CANARY_ELIMIT, "%s: more than %d pieces", label, CN_SPM_MAX_PIECES);
                break;
            }
            if (m->n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                cn_spm_piece *np = realloc(m->pieces, nc * sizeof *np);
                if (!np) {
                    st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading %s", label);
                    break;
                }
                m->pieces = np;
                cap = nc;
            }
            memset(&m->pieces[m->n], 0, sizeof m->pieces[0]);
            m->n++;
            st = parse_piece(&sub, &m->pieces[m->n - 1]);
        } else if (f == 2) {
            st = parse_trainer(&sub, m);
        } else if (f == 3) {
            st = parse_normalizer(&sub, m);
        } else {
            st = skip(&b, wt);
        }
    }
    if (!st && m->n == 0)
        st = cn_error_set(err, CANARY_EFORMAT, "%s: SentencePiece model has no pieces", label);
    if (!st && (m->unk_id < 0 || (size_t)m->unk_id >= m->n || m->pieces[m->unk_id].type != CN_SPM_UNKNOWN))
        st = cn_error_set(err, CANARY_EFORMAT, "%s: unk_id %d is not an UNKNOWN piece", label, m->unk_id);
    if (!st && m->treat_whitespace_as_suffix)
        st = cn_error_set(err, CANARY_EUNSUPPORTED, "%s: treat_whitespace_as_suffix models are not supported", label);
    if (!st && !m->unk_surface && !(m->unk_surface = strdup(" \xE2\x81\x87 ")))
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading %s", label);
    if (!st) {
        m->sorted = malloc(m->n * sizeof *m->sorted);
        if (!m->sorted) {
            st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading %s", label);
        } else {
            for (size_t i = 0; i < m->n; i++)
                m->sorted[i] = (uint32_t)i;
            qsort_r(m->sorted, m->n, sizeof *m->sorted, cmp_piece, m);
        }
    }
    if (st)
        cn_spm_free(m);
    return st;
}

void cn_spm_free(cn_spm *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->pieces[i].piece);
    free(m->pieces);
    free(m->unk_surface);
    free(m->sorted);
    memset(m, 0, sizeof *m);
}

int cn_spm_piece_id(const cn_spm *m, const char *piece, size_t len) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *p = m->pieces[m->sorted[mid]].piece;
        int r = strncmp(p, piece, len);
        if (r == 0 && p[len] != 0)
            r = 1;
        if (r == 0) {
            /* duplicates resolve to the lowest id, as SentencePiece's piece map keeps the first */
            uint32_t best = m->sorted[mid];
            for (size_t k = mid; k-- > lo;) {
                const char *q = m->pieces[m->sorted[k]].piece;
                if (strncmp(q, piece, len) != 0 || q[len] != 0)
                    break;
                if (m->sorted[k] < best)
                    best = m->sorted[k];
            }
            for (size_t k = mid + 1; k < hi; k++) {
                const char *q = m->pieces[m->sorted[k]].piece;
                if (strncmp(q, piece, len) != 0 || q[len] != 0)
                    break;
                if (m->sorted[k] < best)
                    best = m->sorted[k];
            }
            return (int)best;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- decoding ---- */

#define SPACE_SYMBOL "\xE2\x96\x81" /* U+2581 */

/* Length of one valid UTF-8 sequence at s (RFC 3629), or 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void flush_bytes(cn_strbuf *bytes, cn_strbuf *sb) {
    const unsigned char *b = (const unsigned char *)bytes->data;
    size_t i = 0, n = bytes->len;
    while (i < n) {
        size_t l = utf8_valid_len(b + i, n - i);
        if (l == 0) {
            cn_sb_puts(sb, "\xEF\xBF\xBD"); /* U+FFFD for each invalid byte */
            i++;
        } else {
            cn_sb_putn(sb, (const char *)b + i, l);
            i += l;
        }
    }
    cn_sb_reset(bytes);
}

static void put_replacing_space(cn_strbuf *sb, const char *s) {
    while (*s) {
        const char *sp = strstr(s, SPACE_SYMBOL);
        if (!sp) {
            cn_sb_puts(sb, s);
            return;
        }
        cn_sb_putn(sb, s, (size_t)(sp - s));
        cn_sb_putc(sb, ' ');
        s = sp + 3;
    }
}

void cn_spm_decoder_init(cn_spm_decoder *d, cn_strbuf *out) {
    memset(d, 0, sizeof *d);
    d->out = out;
    d->start_len = out->len;
    d->is_bos_ws = true;
    cn_sb_init(&d->bytes);
}

/* SentencePiece's Decode (current releases): the dummy-prefix space is consumed from the first
 * visible piece; once a piece consumed it or any text was produced, no later piece loses it. */
void cn_spm_decoder_put(cn_spm_decoder *d, const cn_spm *m, int id) {
    if (id < 0 || (size_t)id >= m->n)
        return;
    const cn_spm_piece *p = &m->pieces[id];
    if (p->type == CN_SPM_BYTE) {
        cn_sb_putc(&d->bytes, (char)p->byte_value);
        return;
    }
    flush_bytes(&d->bytes, d->out);
    if (d->bos_ws_seen || d->out->len > d->start_len)
        d->is_bos_ws = false;
    d->bos_ws_seen = false;
    if (p->type == CN_SPM_CONTROL)
        return;
    if (p->type == CN_SPM_UNKNOWN) {
        cn_sb_puts(d->out, m->unk_surface);
        return;
    }
    const char *s = p->piece;
    if (d->is_bos_ws && (m->add_dummy_prefix || m->remove_extra_whitespaces) && strncmp(s, SPACE_SYMBOL, 3) == 0) {
        s += 3;
        d->bos_ws_seen = true;
    }
    put_replacing_space(d->out, s);
}

void cn_spm_decoder_finish(cn_spm_decoder *d) {
    flush_bytes(&d->bytes, d->out);
    cn_sb_free(&d->bytes);
}

/* ---- encoding (BPE) ---- */

typedef struct sym {
    size_t start, len; /* bytes of the normalized text */
    int prev, next;
    bool frozen;       /* a user-defined symbol: never merged */
} sym;

/* Normalizes whitespace as SentencePiece's normalizer does with its default flags: trims and
 * collapses runs of whitespace, prefixes one space, and writes spaces as U+2581. */
static cn_status normalize(const cn_spm *m, const char *text, cn_strbuf *out, cn_error *err) {
    const char *p = text;
    if (m->remove_extra_whitespaces)
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
    if (!*p)
        return CANARY_OK;
    const char *ws = m->escape_whitespaces ? SPACE_SYMBOL : " ";
    if (m->add_dummy_prefix)
        cn_sb_puts(out, ws);
    bool pending_space = false;
    for (; *p; p++) {
        bool is_ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
        if (is_ws && m->remove_extra_whitespaces) {
            pending_space = true;
            continue;
        }
        if (pending_space) {
            cn_sb_puts(out, ws);
            pending_space = false;
        }
        if (is_ws)
            cn_sb_puts(out, ws);
        else
            cn_sb_putc(out, *p);
    }
    if (cn_sb_failed(out))
        return cn_error_set(err, CANARY_ENOMEM, "out of memory encoding text");
    return CANARY_OK;
}

/* Longest user-defined piece that starts at s (SentencePiece's prefix matcher), else 0. */
static size_t match_user_defined(const cn_spm *m, const char *s, size_t n) {
    size_t best = 0;
    for (size_t i = 0; i < m->n; i++) {
        const cn_spm_piece *p = &m->pieces[i];
        if (p->type != CN_SPM_USER_DEFINED)
            continue;
        size_t l = strlen(p->piece);
        if (l > best && l <= n && memcmp(p->piece, s, l) == 0)
            best = l;
    }
    return best;
}

/* An id usable as a merge result: NORMAL, USER_DEFINED or UNUSED pieces (SentencePiece's pieces_ map). */
static int mergeable_id(const cn_spm *m, const char *s, size_t n) {
    int id = cn_spm_piece_id(m, s, n);
    if (id < 0)
        return -1;
    int t = m->pieces[id].type;
    return t == CN_SPM_NORMAL || t == CN_SPM_USER_DEFINED || t == CN_SPM_UNUSED ? id : -1;
}

typedef struct ids_out {
    int *ids;
    size_t n, cap;
    bool last_unk;
} ids_out;

static bool push_id(ids_out *o, int id) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 64;
        int *a = realloc(o->ids, nc * sizeof *a);
        if (!a)
            return false;
        o->ids = a;
        o->cap = nc;
    }
    o->ids[o->n++] = id;
    return true;
}

/* Emits a final piece: unknown pieces become bytes (byte_fallback) or one merged <unk>. */
static bool emit(const cn_spm *m, const char *s, size_t n, ids_out *o) {
    int id = cn_spm_piece_id(m, s, n);
    if (id >= 0 && m->pieces[id].type != CN_SPM_UNKNOWN && m->pieces[id].type != CN_SPM_CONTROL &&
        m->pieces[id].type != CN_SPM_BYTE) {
        o->last_unk = false;
        return push_id(o, id);
    }
    if (m->byte_fallback) {
        for (size_t i = 0; i < n; i++) {
            char b[8];
            snprintf(b, sizeof b, "<0x%02X>", (unsigned char)s[i]);
            int bid = cn_spm_piece_id(m, b, 6);
            if (!push_id(o, bid >= 0 ? bid : m->unk_id))
                return false;
        }
        o->last_unk = false;
        return true;
    }
    if (o->last_unk)
        return true; /* runs of unknown pieces become one <unk> */
    o->last_unk = true;
    return push_id(o, m->unk_id);
}

cn_status cn_spm_encode(const cn_spm *m, const char *text, int **ids_out_p, size_t *n_out, cn_error *err) {
    *ids_out_p = NULL;
    *n_out = 0;
    if (m->model_type != CN_SPM_BPE)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "encoding text is implemented for SentencePiece BPE models (this one has model type %d)",
                            m->model_type);
    if (strlen(text) > CN_SPM_MAX_ENCODE)
        return cn_error_set(err, CANARY_ELIMIT, "text to encode is longer than %d bytes", CN_SPM_MAX_ENCODE);
    cn_strbuf norm;
    cn_sb_init(&norm);
    cn_status st = normalize(m, text, &norm, err);
    sym *syms = NULL;
    ids_out o = {0};
    if (st || norm.len == 0)
        goto done;
    const char *s = norm.data;
    size_t n = norm.len, ns = 0;
    syms = malloc(n * sizeof *syms);
    if (!syms) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory encoding text");
        goto done;
    }
    /* characters (whole user-defined symbols frozen) */
    for (size_t i = 0; i < n;) {
        size_t l = match_user_defined(m, s + i, n - i);
        bool frozen = l > 0;
        if (!l) {
            l = utf8_valid_len((const unsigned char *)s + i, n - i);
            if (!l)
                l = 1;
        }
        syms[ns] = (sym){i, l, (int)ns - 1, (int)ns + 1, frozen};
        ns++;
        i += l;
    }
    syms[ns - 1].next = -1;
    /* greedy merges: the adjacent pair whose concatenation is the best-scoring piece, leftmost on ties */
    for (;;) {
        int best_left = -1;
        float best_score = -INFINITY;
        for (int a = 0; a >= 0 && a < (int)ns; a = syms[a].next) {
            int b = syms[a].next;
            if (b < 0)
                break;
            if (syms[a].frozen || syms[b].frozen)
                continue;
            int id = mergeable_id(m, s + syms[a].start, syms[a].len + syms[b].len);
            if (id >= 0 && m->pieces[id].score > best_score) {
                best_score = m->pieces[id].score;
                best_left = a;
            }
        }
        if (best_left < 0)
            break;
        int b = syms[best_left].next;
        syms[best_left].len += syms[b].len;
        syms[best_left].next = syms[b].next;
        if (syms[b].next >= 0)
            syms[syms[b].next].prev = best_left;
    }
    for (int a = 0; a >= 0; a = syms[a].next) {
        if (!emit(m, s + syms[a].start, syms[a].len, &o)) {
            st = cn_error_set(err, CANARY_ENOMEM, "out of memory encoding text");
            goto done;
        }
    }
    *ids_out_p = o.ids;
    *n_out = o.n;
    o.ids = NULL;
done:
    free(o.ids);
    free(syms);
    cn_sb_free(&norm);
    return st;
}

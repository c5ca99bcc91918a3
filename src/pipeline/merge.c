#include "pipeline/merge.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"

typedef struct mword {
    char *text;
    int *ids;
    float *lps;
    size_t ntok;
    double start, end;
    bool approx;
    bool break_before; /* first word after a cut in silence */
} mword;

struct cn_merger {
    cn_merge_params p;
    mword *w;
    size_t n, cap;
    size_t prev_chunk_first; /* index of the previous chunk's first word */
    double prev_chunk_end;   /* seconds */
    bool have_prev;
};

void cn_rec_result_free(cn_rec_result *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->n_tokens; i++)
        free(r->tokens[i].text);
    free(r->tokens);
    r->tokens = NULL;
    r->n_tokens = 0;
}

cn_status cn_merger_create(const cn_merge_params *p, cn_merger **out, cn_error *err) {
    *out = NULL;
    if (p->sample_rate <= 0 || !(p->frame_s > 0) || !(p->overlap_s >= 0) || p->max_segment_chars < 0)
        return cn_error_set(err, CANARY_EINVAL,
                            "merge: bad parameters (sample_rate %d, frame_s %g, overlap_s %g, max_segment_chars %d)",
                            p->sample_rate, p->frame_s, p->overlap_s, p->max_segment_chars);
    cn_merger *m = calloc(1, sizeof *m);
    if (!m)
        return cn_error_set(err, CANARY_ENOMEM, "merge: out of memory");
    m->p = *p;
    *out = m;
    return CANARY_OK;
}

static void mword_free(mword *w) {
    free(w->text);
    free(w->ids);
    free(w->lps);
}

void cn_merger_destroy(cn_merger *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        mword_free(&m->w[i]);
    free(m->w);
    free(m);
}

/* Normalised comparison key: lower-case ASCII letters and digits plus all non-ASCII bytes. */
static void norm_word(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && k + 1 < cap; p++) {
        if (*p >= 0x80 || isalnum(*p))
            out[k++] = (char)tolower(*p);
    }
    out[k] = 0;
}

static bool words_equal(const mword *a, const mword *b) {
    char x[128], y[128];
    norm_word(a->text, x, sizeof x);
    norm_word(b->text, y, sizeof y);
    return x[0] && strcmp(x, y) == 0;
}

/* Removes words [from, to) of the list, keeping order. */
static void drop_words(cn_merger *m, size_t from, size_t to) {
    if (to <= from)
        return;
    for (size_t i = from; i < to; i++)
        mword_free(&m->w[i]);
    memmove(m->w + from, m->w + to, (m->n - to) * sizeof *m->w);
    m->n -= to - from;
}

/* De-duplicates the seam between the previous chunk's words [prev_first, new_first) and the new
 * chunk's words [new_first, n). See merge.h. Returns where the new chunk's words now begin. */
static size_t merge_seam(cn_merger *m, size_t prev_first, size_t new_first, double ov_start, double ov_end) {
    size_t k = (size_t)ceil(m->p.overlap_s * 3) + 4;
    size_t a0 = new_first - prev_first > k ? new_first - k : prev_first;
    size_t na = new_first - a0;
    size_t nb = m->n - new_first < k ? m->n - new_first : k;
    /* longest common contiguous run: dp over (i in A, j in B) */
    size_t best_len = 0, best_i = 0, best_j = 0;
    size_t *row = calloc(nb + 1, sizeof *row), *prev = calloc(nb + 1, sizeof *prev);
    if (row && prev) {
        for (size_t i = 1; i <= na; i++) {
            for (size_t j = 1; j <= nb; j++) {
                row[j] = words_equal(&m->w[a0 + i - 1], &m->w[new_first + j - 1]) ? prev[j - 1] + 1 : 0;
                /* later matches win ties: they sit closer to the seam */
                if (row[j] > 0 && row[j] >= best_len) {
                    best_len = row[j];
                    best_i = i;
                    best_j = j;
                }
            }
            size_t *t = prev;
            prev = row;
            row = t;
        }
    }
    free(row);
    free(prev);
    if (best_len > 0) {
        /* keep A up to the run's end (a0 + best_i), drop B's words up to the run's end */
        size_t drop_b_to = new_first + best_j;
        drop_words(m, new_first, drop_b_to);
        drop_words(m, a0 + best_i, new_first);
        return a0 + best_i;
    }
    double mid = 0.5 * (ov_start + ov_end);
    size_t b_end = new_first;
    while (b_end < m->n && m->w[b_end].start < mid)
        b_end++;
    drop_words(m, new_first, b_end);
    size_t a_cut = new_first;
    while (a_cut > prev_first && m->w[a_cut - 1].start >= mid)
        a_cut--;
    drop_words(m, a_cut, new_first);
    return a_cut;
}

static bool push_word(cn_merger *m, mword *w) {
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        mword *nw = realloc(m->w, cap * sizeof *nw);
        if (!nw)
            return false;
        m->w = nw;
        m->cap = cap;
    }
    m->w[m->n++] = *w;
    return true;
}

static bool word_add_token(mword *w, const cn_rec_token *t, const char *text) {
    size_t old = w->text ? strlen(w->text) : 0, add = strlen(text);
    char *s = realloc(w->text, old + add + 1);
    if (!s)
        return false;
    memcpy(s + old, text, add + 1);
    w->text = s;
    int *ids = realloc(w->ids, (w->ntok + 1) * sizeof *ids);
    if (!ids)
        return false;
    w->ids = ids;
    float *lps = realloc(w->lps, (w->ntok + 1) * sizeof *lps);
    if (!lps)
        return false;
    w->lps = lps;
    w->ids[w->ntok] = t->id;
    w->lps[w->ntok] = t->logprob;
    w->ntok++;
    return true;
}

cn_status cn_merger_add(cn_merger *m, const cn_chunk *chunk, const cn_rec_result *r, cn_error *err) {
    const double sr = m->p.sample_rate;
    const double cs = (double)chunk->start / sr, ce = (double)chunk->end / sr;
    const size_t first = m->n;
    /* 1. tokens -> words, with model times where every token has them */
    mword cur = {0};
    bool cur_timed = true;
    int cur_s = -1, cur_e = -1;
    for (size_t i = 0; i <= r->n_tokens; i++) {
        const cn_rec_token *t = i < r->n_tokens ? &r->tokens[i] : NULL;
        const char *text = t && t->text ? t->text : "";
        bool starts_word = t && text[0] == ' ';
        if ((starts_word || !t) && cur.ntok > 0) {
            /* close the current word */
            if (cur_timed && cur_s >= 0 && cur_e >= cur_s) {
                cur.start = fmin(fmax(cs + cur_s * m->p.frame_s, cs), ce);
                cur.end = fmin(fmax(cs + cur_e * m->p.frame_s, cur.start), ce);
            } else {
                cur.approx = true;
            }
            if (!cur.text[0]) { /* only empty pieces: keep the tokens with the previous word, if any */
                mword_free(&cur);
            } else if (!push_word(m, &cur)) {
                mword_free(&cur);
                return cn_error_set(err, CANARY_ENOMEM, "merge: out of memory");
            }
            memset(&cur, 0, sizeof cur);
            cur_timed = true;
            cur_s = cur_e = -1;
        }
        if (!t)
            break;
        while (*text == ' ')
            text++;
        if (!word_add_token(&cur, t, text)) {
            mword_free(&cur);
            return cn_error_set(err, CANARY_ENOMEM, "merge: out of memory");
        }
        if (t->start_frame < 0 || t->end_frame < 0) {
            cur_timed = false;
        } else {
            if (cur_s < 0 || t->start_frame < cur_s)
                cur_s = t->start_frame;
            if (t->end_frame > cur_e)
                cur_e = t->end_frame;
        }
    }
    /* 2. approximate times: spread the chunk over its words by character count */
    size_t total_chars = 0;
    for (size_t i = first; i < m->n; i++)
        total_chars += strlen(m->w[i].text) + 1;
    double acc = 0;
    for (size_t i = first; i < m->n; i++) {
        double share = (double)(strlen(m->w[i].text) + 1) / (double)total_chars;
        if (m->w[i].approx) {
            m->w[i].start = cs + acc * (ce - cs);
            m->w[i].end = cs + (acc + share) * (ce - cs);
        }
        acc += share;
    }
    if (m->n > first)
        m->w[first].break_before = !chunk->hard_cut_before;
    /* 3. the seam after a hard cut */
    size_t new_first = first;
    if (chunk->hard_cut_before && m->have_prev && m->p.overlap_s > 0 && m->n > first)
        new_first = merge_seam(m, m->prev_chunk_first, first, cs, m->prev_chunk_end);
    m->prev_chunk_first = new_first;
    m->prev_chunk_end = ce;
    m->have_prev = true;
    return CANARY_OK;
}

static bool ends_sentence(const char *s) {
    size_t n = strlen(s);
    if (n == 0)
        return false;
    char c = s[n - 1];
    if (c == '.' || c == '?' || c == '!')
        return true;
    /* 。？！ in UTF-8: E3 80 82, EF BC 9F, EF BC 81 */
    if (n >= 3) {
        const unsigned char *u = (const unsigned char *)s + n - 3;
        if ((u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x82) || (u[0] == 0xEF && u[1] == 0xBC && (u[2] == 0x9F || u[2] == 0x81)))
            return true;
    }
    return false;
}

static void free_segments(canary_segment *segs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(segs[i].text);
        free(segs[i].tokens);
        for (size_t j = 0; j < segs[i].n_words; j++)
            free(segs[i].words[j].text);
        free(segs[i].words);
    }
    free(segs);
}

void canary_transcript_free(canary_transcript *t) {
    if (!t)
        return;
    free(t->task);
    free(t->language);
    free(t->text);
    free_segments(t->segments, t->n_segments);
    memset(t, 0, sizeof *t);
}

/* Builds segment [a, b) of the word list. */
static bool make_segment(const cn_merger *m, size_t a, size_t b, int id, canary_segment *s) {
    memset(s, 0, sizeof *s);
    s->id = id;
    s->start = m->w[a].start;
    s->end = m->w[b - 1].end;
    cn_strbuf sb;
    cn_sb_init(&sb);
    size_t ntok = 0;
    for (size_t i = a; i < b; i++) {
        if (i > a)
            cn_sb_putc(&sb, ' ');
        cn_sb_puts(&sb, m->w[i].text);
        ntok += m->w[i].ntok;
    }
    s->text = cn_sb_steal(&sb);
    s->tokens = malloc((ntok ? ntok : 1) * sizeof *s->tokens);
    s->words = calloc(b - a, sizeof *s->words);
    if (!s->text || !s->tokens || !s->words)
        return false;
    s->n_words = b - a;
    double lp = 0;
    for (size_t i = a; i < b; i++) {
        const mword *w = &m->w[i];
        for (size_t k = 0; k < w->ntok; k++) {
            s->tokens[s->n_tokens++] = w->ids[k];
            lp += w->lps[k];
        }
        s->words[i - a].start = w->start;
        s->words[i - a].end = w->end;
        s->words[i - a].text = strdup(w->text);
        if (!s->words[i - a].text)
            return false;
        if (w->approx)
            s->words_approximate = true;
    }
    s->avg_logprob = ntok ? lp / (double)ntok : 0.0;
    return true;
}

cn_status cn_merger_finish(cn_merger *m, double duration, const char *task, const char *language,
                           canary_transcript *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    /* monotonic times inside the audio */
    double last_start = 0;
    for (size_t i = 0; i < m->n; i++) {
        mword *w = &m->w[i];
        if (w->start < last_start)
            w->start = last_start;
        if (w->start > duration)
            w->start = duration;
        if (w->end > duration)
            w->end = duration;
        if (w->end < w->start)
            w->end = w->start;
        last_start = w->start;
    }
    out->task = strdup(task ? task : "transcribe");
    out->language = strdup(language ? language : "");
    out->duration = duration;
    size_t cap = 0;
    size_t a = 0;
    int chars = 0;
    for (size_t i = 0; i <= m->n; i++) {
        bool cut = i == m->n;
        if (!cut && i > a) {
            const mword *w = &m->w[i], *pw = &m->w[i - 1];
            int len = (int)strlen(w->text) + 1;
            cut = w->break_before || ends_sentence(pw->text) ||
                  (!w->approx && !pw->approx && w->start - pw->end >= 1.0) ||
                  (m->p.max_segment_chars > 0 && chars + len > m->p.max_segment_chars);
        }
        if (cut && i > a) {
            if (out->n_segments == cap) {
                cap = cap ? cap * 2 : 16;
                canary_segment *ns = realloc(out->segments, cap * sizeof *ns);
                if (!ns)
                    goto oom;
                out->segments = ns;
            }
            canary_segment *s = &out->segments[out->n_segments++];
            if (!make_segment(m, a, i, (int)out->n_segments - 1, s))
                goto oom;
            a = i;
            chars = 0;
        }
        if (i < m->n)
            chars += (int)strlen(m->w[i].text) + (i > a ? 1 : 0);
    }
    cn_strbuf sb;
    cn_sb_init(&sb);
    for (size_t i = 0; i < out->n_segments; i++) {
        if (i)
            cn_sb_putc(&sb, ' ');
        cn_sb_puts(&sb, out->segments[i].text);
    }
    out->text = cn_sb_steal(&sb);
    if (!out->text || !out->task || !out->language)
        goto oom;
    return CANARY_OK;
oom:
    canary_transcript_free(out);
    return cn_error_set(err, CANARY_ENOMEM, "merge: out of memory building the transcript");
}

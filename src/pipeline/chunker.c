#include "pipeline/chunker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cn_chunker {
    cn_chunk_params p;
    int64_t max, min, overlap, skip; /* in samples */
    cn_span *q;                      /* regions not yet fully covered, time order */
    size_t n, cap;
    int64_t pos;          /* chunks so far cover everything before pos */
    bool pos_in_speech;   /* the previous chunk ended with a hard cut at pos + overlap */
    int64_t watermark;
    int64_t last_end;     /* end of the last pushed region (order check) */
    bool finished;
    int64_t total;
};

void cn_chunk_params_default(cn_chunk_params *p) {
    p->sample_rate = 16000;
    p->max_s = 40.0;
    p->min_s = 10.0;
    p->overlap_s = 0.0;
    p->skip_silence_s = 2.0;
}

cn_status cn_chunker_create(const cn_chunk_params *p, cn_chunker **out, cn_error *err) {
    *out = NULL;
    if (p->sample_rate < 1000 || p->sample_rate > 192000)
        return cn_error_set(err, CANARY_EINVAL, "chunker: sample rate %d Hz is out of range", p->sample_rate);
    if (!(p->max_s >= 1.0 && p->max_s <= 3600))
        return cn_error_set(err, CANARY_EINVAL, "chunker: maximum chunk length %g s is not in [1, 3600]", p->max_s);
    if (!(p->min_s >= 0 && p->min_s <= p->max_s))
        return cn_error_set(err, CANARY_EINVAL, "chunker: minimum chunk length %g s is not in [0, max %g]", p->min_s,
                            p->max_s);
    if (!(p->overlap_s >= 0 && p->overlap_s <= p->max_s / 4))
        return cn_error_set(err, CANARY_EINVAL, "chunker: overlap %g s is not in [0, max/4 = %g]", p->overlap_s,
                            p->max_s / 4);
    if (!(p->skip_silence_s > 0 && p->skip_silence_s <= 3600))
        return cn_error_set(err, CANARY_EINVAL, "chunker: skip_silence %g s is not in (0, 3600]",
                            p->skip_silence_s);
    cn_chunker *c = calloc(1, sizeof *c);
    if (!c)
        return cn_error_set(err, CANARY_ENOMEM, "chunker: out of memory");
    c->p = *p;
    c->max = (int64_t)floor(p->max_s * p->sample_rate);
    c->min = (int64_t)floor(p->min_s * p->sample_rate);
    c->overlap = (int64_t)floor(p->overlap_s * p->sample_rate);
    c->skip = (int64_t)ceil(p->skip_silence_s * p->sample_rate);
    *out = c;
    return CANARY_OK;
}

void cn_chunker_destroy(cn_chunker *c) {
    if (!c)
        return;
    free(c->q);
    free(c);
}

cn_status cn_chunker_push(cn_chunker *c, cn_span r, cn_error *err) {
    if (c->finished)
        return cn_error_set(err, CANARY_EINVAL, "chunker: region pushed after finish");
    if (r.start < 0 || r.end < r.start || r.start < c->last_end)
        return cn_error_set(err, CANARY_EINVAL,
                            "chunker: region [%lld, %lld) is empty, negative or before the previous one (ends %lld)",
                            (long long)r.start, (long long)r.end, (long long)c->last_end);
    if (r.end == r.start)
        return CANARY_OK;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        cn_span *q = realloc(c->q, cap * sizeof *q);
        if (!q)
            return cn_error_set(err, CANARY_ENOMEM, "chunker: out of memory");
        c->q = q;
        c->cap = cap;
    }
    c->q[c->n++] = r;
    c->last_end = r.end;
    if (r.start > c->watermark)
        c->watermark = r.start;
    return CANARY_OK;
}

void cn_chunker_watermark(cn_chunker *c, int64_t w) {
    if (w > c->watermark)
        c->watermark = w;
}

void cn_chunker_finish(cn_chunker *c, int64_t total) {
    c->finished = true;
    c->total = total;
    /* regions past the end of the audio (VAD padding) are clipped here */
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->q[i].start >= total)
            continue;
        if (c->q[i].end > total)
            c->q[i].end = total;
        c->q[k++] = c->q[i];
    }
    c->n = k;
}

bool cn_chunker_done(const cn_chunker *c) { return c->finished && c->n == 0; }

int64_t cn_chunker_position(const cn_chunker *c) {
    for (size_t i = 0; i < c->n; i++) {
        if (c->q[i].end <= c->pos)
            continue;
        if (c->pos_in_speech && c->q[i].start <= c->pos)
            return c->pos;
        return c->q[i].start > c->pos ? c->q[i].start : c->pos;
    }
    /* nothing queued: the next region starts at the watermark or later */
    int64_t w = c->finished ? c->total : c->watermark;
    return w > c->pos ? w : c->pos;
}

static void drop_covered(cn_chunker *c) {
    size_t k = 0;
    while (k < c->n && c->q[k].end <= c->pos)
        k++;
    if (k) {
        memmove(c->q, c->q + k, (c->n - k) * sizeof *c->q);
        c->n -= k;
    }
}

bool cn_chunker_next(cn_chunker *c, cn_chunk *out) {
    drop_covered(c);
    if (c->n == 0)
        return false;
    bool hard_before = c->pos_in_speech && c->q[0].start <= c->pos;
    int64_t s = hard_before ? c->pos : c->q[0].start;
    const int64_t limit = s + c->max;
    /* everything the decision can look at must be known (the same answer however input arrives) */
    if (!c->finished && c->watermark < limit + c->max + c->skip)
        return false;

    /* candidate cuts: ends of regions inside the window followed by a silence */
    int64_t best_end = -1, best_gap = -1, latest_end = -1;
    bool best_long = false;
    size_t i = 0;
    for (; i < c->n && c->q[i].start < limit; i++) {
        int64_t e = c->q[i].end;
        if (e > limit)
            break;
        int64_t next = i + 1 < c->n ? c->q[i + 1].start : (c->finished ? INT64_MAX : c->watermark);
        int64_t gap = next - e;
        if (gap <= 0)
            continue; /* touching regions: continuous speech */
        bool long_enough = e - s >= c->min;
        /* prefer cuts making a chunk of at least min_s; among them the longest silence, later on ties */
        if (long_enough && (!best_long || gap >= best_gap)) {
            best_end = e;
            best_gap = gap;
            best_long = true;
        }
        latest_end = e;
        if (gap >= c->skip)
            break; /* never bridge a long silence */
    }
    cn_chunk ch = {.start = s, .hard_cut_before = hard_before};
    if (best_long) {
        ch.end = best_end;
    } else if (latest_end >= 0) {
        ch.end = latest_end;
    } else {
        /* a run of speech from s past the limit: find where it ends, if it is known */
        int64_t run_end = c->q[0].end;
        for (size_t j = 1; j < c->n && c->q[j].start <= run_end; j++)
            run_end = c->q[j].end;
        bool run_known = c->finished || run_end < c->watermark;
        int64_t cut = limit;
        if (run_known && run_end - s <= 2 * c->max - c->overlap)
            cut = s + (run_end - s + c->overlap) / 2; /* two even pieces instead of max + a sliver */
        if (c->finished && cut >= c->total)
            cut = c->total;
        ch.end = cut;
        ch.hard_cut_after = cut < run_end;
    }
    if (c->finished && ch.end > c->total)
        ch.end = c->total;
    if (ch.hard_cut_after) {
        c->pos = ch.end - c->overlap;
        if (c->pos <= ch.start) /* overlap never stalls progress */
            c->pos = ch.end;
        c->pos_in_speech = true;
    } else {
        c->pos = ch.end;
        c->pos_in_speech = false;
    }
    *out = ch;
    return true;
}

cn_status cn_chunker_plan_all(const cn_chunk_params *p, const cn_span *regions, size_t n_regions, int64_t total,
                              cn_chunk **out, size_t *n_out, cn_error *err) {
    *out = NULL;
    *n_out = 0;
    cn_chunker *c;
    CN_TRY(cn_chunker_create(p, &c, err));
    for (size_t i = 0; i < n_regions; i++) {
        cn_status st = cn_chunker_push(c, regions[i], err);
        if (st != CANARY_OK) {
            cn_chunker_destroy(c);
            return st;
        }
    }
    cn_chunker_finish(c, total);
    cn_chunk *v = NULL, ch;
    size_t n = 0, cap = 0;
    while (cn_chunker_next(c, &ch)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            cn_chunk *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                cn_chunker_destroy(c);
                return cn_error_set(err, CANARY_ENOMEM, "chunker: out of memory");
            }
            v = nv;
        }
        v[n++] = ch;
    }
    cn_chunker_destroy(c);
    *out = v;
    *n_out = n;
    return CANARY_OK;
}

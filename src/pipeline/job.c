#include "pipeline/job.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline/merge.h"

#define READ_BLOCK 8000

struct cn_pipeline_job {
    const cn_recognizer *rec;
    const cn_pipeline_params *p;
    cn_pcm_source *audio;
    cn_chunk *chunks;
    size_t n_chunks, next;
    int64_t total;
    cn_merger *merger;
    /* audio of the second pass: samples [buf_start, buf_start + buf_len) */
    float *buf;
    size_t buf_len, buf_cap;
    int64_t buf_start;
};

static cn_status push_chunk(cn_pipeline_job *j, size_t *cap, const cn_chunk *c, cn_error *err) {
    if (j->n_chunks == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        cn_chunk *nc = realloc(j->chunks, *cap * sizeof *nc);
        if (!nc)
            return cn_error_set(err, CANARY_ENOMEM, "pipeline job: out of memory");
        j->chunks = nc;
    }
    j->chunks[j->n_chunks++] = *c;
    return CANARY_OK;
}

/* First pass: VAD + planner over the whole input, keeping only the chunk list. */
static cn_status plan(cn_pipeline_job *j, const cn_chunk_params *cp, cn_pcm_source *src, cn_error *err) {
    cn_vad *vad = NULL;
    cn_chunker *ch = NULL;
    float *block = malloc(READ_BLOCK * sizeof *block);
    size_t cap = 0;
    cn_status st = block ? CANARY_OK : cn_error_set(err, CANARY_ENOMEM, "pipeline job: out of memory");
    if (st == CANARY_OK)
        st = cn_vad_create(&j->p->vad, &vad, err);
    if (st == CANARY_OK)
        st = cn_chunker_create(cp, &ch, err);
    while (st == CANARY_OK) {
        size_t got = 0;
        if ((st = src->read(src->self, block, READ_BLOCK, &got, err)) != CANARY_OK) {
            cn_error_prefix(err, "%s", src->name ? src->name : "input");
            break;
        }
        st = got ? cn_vad_feed(vad, block, got, err) : cn_vad_finish(vad, err);
        j->total += (int64_t)got;
        cn_span r[64];
        size_t n;
        while (st == CANARY_OK && (n = cn_vad_take(vad, r, 64)) > 0)
            for (size_t i = 0; i < n && st == CANARY_OK; i++)
                st = cn_chunker_push(ch, r[i], err);
        if (st != CANARY_OK)
            break;
        cn_chunker_watermark(ch, cn_vad_watermark(vad));
        if (got == 0)
            cn_chunker_finish(ch, j->total);
        cn_chunk c;
        while (st == CANARY_OK && cn_chunker_next(ch, &c))
            st = push_chunk(j, &cap, &c, err);
        if (got == 0)
            break;
    }
    free(block);
    cn_vad_destroy(vad);
    cn_chunker_destroy(ch);
    return st;
}

cn_status cn_pipeline_job_open(const cn_recognizer *rec, const cn_pipeline_params *p, cn_pcm_source *plan_src,
                               cn_pcm_source *audio_src, cn_pipeline_job **out, size_t *n_chunks, cn_error *err) {
    *out = NULL;
    cn_chunk_params cp;
    CN_TRY(cn_pipeline_chunk_params(rec, p, &cp, err));
    cn_pipeline_job *j = calloc(1, sizeof *j);
    if (!j)
        return cn_error_set(err, CANARY_ENOMEM, "pipeline job: out of memory");
    j->rec = rec;
    j->p = p;
    j->audio = audio_src;
    cn_merge_params mp = {.sample_rate = rec->sample_rate, .frame_s = rec->frame_s, .overlap_s = cp.overlap_s,
                          .max_segment_chars = p->max_segment_chars};
    cn_status st = cn_merger_create(&mp, &j->merger, err);
    if (st == CANARY_OK)
        st = plan(j, &cp, plan_src, err);
    if (st != CANARY_OK) {
        cn_pipeline_job_destroy(j);
        return st;
    }
    *out = j;
    *n_chunks = j->n_chunks;
    return CANARY_OK;
}

/* Second pass: reads up to `end`, keeping samples from `keep_from` on. */
static cn_status read_until(cn_pipeline_job *j, int64_t keep_from, int64_t end, cn_error *err) {
    if (keep_from > j->buf_start && j->buf_len > 0) { /* drop what no later chunk needs (chunks only move forward) */
        size_t drop = (size_t)(keep_from - j->buf_start);
        if (drop > j->buf_len)
            drop = j->buf_len;
        memmove(j->buf, j->buf + drop, (j->buf_len - drop) * sizeof *j->buf);
        j->buf_len -= drop;
        j->buf_start += (int64_t)drop;
    }
    while (j->buf_start + (int64_t)j->buf_len < end) {
        if (j->buf_len + READ_BLOCK > j->buf_cap) {
            size_t cap = j->buf_cap ? j->buf_cap * 2 : 1 << 16;
            while (cap < j->buf_len + READ_BLOCK)
                cap *= 2;
            float *nb = realloc(j->buf, cap * sizeof *nb);
            if (!nb)
                return cn_error_set(err, CANARY_ENOMEM, "pipeline job: out of memory");
            j->buf = nb;
            j->buf_cap = cap;
        }
        size_t got = 0;
        cn_pcm_source *s = j->audio;
        if (s->read(s->self, j->buf + j->buf_len, READ_BLOCK, &got, err) != CANARY_OK)
            return cn_error_prefix(err, "%s", s->name ? s->name : "input");
        if (got == 0)
            return cn_error_set(err, CANARY_EFORMAT,
                                "%s: the audio ended at %lld samples on the second read, %lld on the first",
                                s->name ? s->name : "input", (long long)(j->buf_start + (int64_t)j->buf_len),
                                (long long)j->total);
        /* samples before keep_from (silence between chunks) are read and dropped at once */
        j->buf_len += got;
        if (j->buf_start + (int64_t)j->buf_len <= keep_from) {
            j->buf_start += (int64_t)j->buf_len;
            j->buf_len = 0;
        }
    }
    return CANARY_OK;
}

cn_status cn_pipeline_job_step(cn_pipeline_job *j, cn_error *err) {
    if (j->next >= j->n_chunks)
        return cn_error_set(err, CANARY_EINVAL, "pipeline job: all %zu chunks are done", j->n_chunks);
    const cn_chunk *c = &j->chunks[j->next];
    CN_TRY(read_until(j, c->start, c->end, err));
    if (c->start < j->buf_start)
        return cn_error_set(err, CANARY_EINTERNAL, "pipeline job: chunk %zu starts before the kept audio", j->next);
    const float *pcm = j->buf + (c->start - j->buf_start);
    size_t len = (size_t)(c->end - c->start);
    cn_rec_result res = {0};
    cn_status st = j->rec->transcribe(j->rec->self, &pcm, &len, 1, &res, err);
    if (st != CANARY_OK)
        return cn_error_prefix(err, "transcribing chunk %zu of %zu", j->next + 1, j->n_chunks);
    st = cn_merger_add(j->merger, c, &res, err);
    cn_rec_result_free(&res);
    if (st == CANARY_OK)
        j->next++;
    return st;
}

size_t cn_pipeline_job_chunks_done(const cn_pipeline_job *j) { return j->next; }
double cn_pipeline_job_duration(const cn_pipeline_job *j) { return (double)j->total / j->rec->sample_rate; }

cn_status cn_pipeline_job_finish(cn_pipeline_job *j, canary_transcript *out, cn_error *err) {
    if (j->next < j->n_chunks)
        return cn_error_set(err, CANARY_EINVAL, "pipeline job: %zu of %zu chunks are still to run",
                            j->n_chunks - j->next, j->n_chunks);
    return cn_merger_finish(j->merger, cn_pipeline_job_duration(j), j->p->task, j->p->language, out, err);
}

void cn_pipeline_job_destroy(cn_pipeline_job *j) {
    if (!j)
        return;
    cn_merger_destroy(j->merger);
    free(j->chunks);
    free(j->buf);
    free(j);
}

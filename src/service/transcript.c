/* Transcripts: ownership, the stored JSON form, and the OpenAI response formats. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "service/transcriber.h"

void cn_transcript_free(cn_transcript *t) {
    if (!t)
        return;
    free(t->text);
    for (size_t i = 0; i < t->n_segments; i++) {
        free(t->segments[i].text);
        free(t->segments[i].tokens);
    }
    for (size_t i = 0; i < t->n_words; i++)
        free(t->words[i].word);
    free(t->segments);
    free(t->words);
    memset(t, 0, sizeof *t);
}

static const char *task_name(cn_task t) { return t == CN_TASK_TRANSLATE ? "translate" : "transcribe"; }

/* Rounds to milliseconds so that the JSON stays short and stable, as the CLI's writers and the
 * SRT/VTT times do (llround of t x 1000: pipeline/writers.c put_secs). */
static double ms(double s) { return isfinite(s) ? (double)llround(s * 1000.0) / 1000.0 : 0.0; }

static json_t *verbose_json(const cn_transcript *t, bool words) {
    json_t *segs = json_array();
    for (size_t i = 0; i < t->n_segments; i++) {
        const cn_segment *s = &t->segments[i];
        json_t *tokens = json_array();
        for (size_t k = 0; k < s->n_tokens; k++)
            json_array_append_new(tokens, json_integer(s->tokens[k]));
        /* OpenAI's shape, as the CLI writes it (pipeline/writers.c): seek in centiseconds */
        json_array_append_new(
            segs, json_pack("{s:I, s:I, s:f, s:f, s:s, s:o, s:f, s:f, s:f, s:f}", "id", (json_int_t)i, "seek",
                            (json_int_t)llround((s->start > 0 ? s->start : 0) * 100.0), "start", ms(s->start), "end",
                            ms(s->end), "text", s->text ? s->text : "", "tokens", tokens, "temperature", 0.0,
                            "avg_logprob", round(s->avg_logprob * 1e6) / 1e6, "compression_ratio", 0.0,
                            "no_speech_prob", 0.0));
    }
    json_t *o = json_pack("{s:s, s:s, s:f, s:s, s:o, s:{s:s, s:f}}", "task", task_name(t->task), "language",
                          t->language, "duration", ms(t->duration), "text", t->text ? t->text : "", "segments",
                          segs, "usage", "type", "duration", "seconds", ms(t->duration));
    if (o && words) {
        json_t *w = json_array();
        for (size_t i = 0; i < t->n_words; i++)
            json_array_append_new(w, json_pack("{s:s, s:f, s:f}", "word", t->words[i].word ? t->words[i].word : "",
                                               "start", ms(t->words[i].start), "end", ms(t->words[i].end)));
        json_object_set_new(o, "words", w);
    }
    return o;
}

char *cn_transcript_to_json(const cn_transcript *t) {
    json_t *o = verbose_json(t, true);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    return s;
}

static char *dup_str(json_t *v) {
    const char *s = json_string_value(v);
    return strdup(s ? s : "");
}

cn_status cn_transcript_from_json(const char *text, cn_transcript *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return cn_error_set(err, CANARY_EFORMAT, "stored transcript is not a JSON object: %s (line %d)", je.text,
                            je.line);
    }
    out->text = dup_str(json_object_get(o, "text"));
    snprintf(out->language, sizeof out->language, "%s",
             json_string_value(json_object_get(o, "language")) ? json_string_value(json_object_get(o, "language"))
                                                               : "");
    const char *task = json_string_value(json_object_get(o, "task"));
    out->task = task && strcmp(task, "translate") == 0 ? CN_TASK_TRANSLATE : CN_TASK_TRANSCRIBE;
    out->duration = json_number_value(json_object_get(o, "duration"));
    json_t *segs = json_object_get(o, "segments"), *words = json_object_get(o, "words");
    size_t ns = json_array_size(segs), nw = json_array_size(words);
    out->segments = ns ? calloc(ns, sizeof *out->segments) : NULL;
    out->words = nw ? calloc(nw, sizeof *out->words) : NULL;
    if ((ns && !out->segments) || (nw && !out->words) || !out->text) {
        json_decref(o);
        cn_transcript_free(out);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory reading a stored transcript");
    }
    for (size_t i = 0; i < ns; i++, out->n_segments++) {
        json_t *s = json_array_get(segs, i);
        out->segments[i] = (cn_segment){json_number_value(json_object_get(s, "start")),
                                        json_number_value(json_object_get(s, "end")),
                                        dup_str(json_object_get(s, "text")), NULL, 0,
                                        json_number_value(json_object_get(s, "avg_logprob"))};
        /* transcripts stored before token ids were kept have none */
        json_t *tokens = json_object_get(s, "tokens");
        size_t nt = json_array_size(tokens);
        if (nt && !(out->segments[i].tokens = malloc(nt * sizeof(int)))) {
            free(out->segments[i].text);
            json_decref(o);
            cn_transcript_free(out);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory reading a stored transcript");
        }
        for (size_t k = 0; k < nt; k++)
            out->segments[i].tokens[out->segments[i].n_tokens++] = (int)json_integer_value(json_array_get(tokens, k));
    }
    for (size_t i = 0; i < nw; i++, out->n_words++) {
        json_t *w = json_array_get(words, i);
        out->words[i] = (cn_word){json_number_value(json_object_get(w, "start")),
                                  json_number_value(json_object_get(w, "end")), dup_str(json_object_get(w, "word"))};
    }
    json_decref(o);
    return CANARY_OK;
}

static const struct {
    cn_format f;
    const char *name, *ctype;
} formats[] = {
    {CN_FMT_JSON, "json", "application/json"},
    {CN_FMT_TEXT, "text", "text/plain; charset=utf-8"},
    {CN_FMT_SRT, "srt", "application/x-subrip; charset=utf-8"},
    {CN_FMT_VTT, "vtt", "text/vtt; charset=utf-8"},
    {CN_FMT_VERBOSE_JSON, "verbose_json", "application/json"},
};

bool cn_format_parse(const char *s, cn_format *out) {
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(s, formats[i].name) == 0) {
            *out = formats[i].f;
            return true;
        }
    return false;
}

const char *cn_format_name(cn_format f) { return formats[f].name; }
const char *cn_format_content_type(cn_format f) { return formats[f].ctype; }

/* "HH:MM:SS,mmm" (SRT) or "HH:MM:SS.mmm" (WebVTT). */
static void put_time(cn_strbuf *sb, double s, char sep) {
    long long total = llround(s < 0 ? 0 : s * 1000.0);
    cn_sb_printf(sb, "%02lld:%02lld:%02lld%c%03lld", total / 3600000, total / 60000 % 60, total / 1000 % 60, sep,
                 total % 1000);
}

/* Caption text: leading/trailing blanks trimmed, since segment texts often start with a space. */
static void put_caption(cn_strbuf *sb, const char *text) {
    const char *b = text ? text : "";
    while (*b == ' ')
        b++;
    size_t n = strlen(b);
    while (n && b[n - 1] == ' ')
        n--;
    cn_sb_putn(sb, b, n);
}

char *cn_transcript_render(const cn_transcript *t, cn_format f, bool words) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    switch (f) {
    case CN_FMT_JSON: {
        json_t *o = json_pack("{s:s, s:{s:s, s:f}}", "text", t->text ? t->text : "", "usage", "type", "duration",
                              "seconds", ms(t->duration));
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        json_decref(o);
        return s;
    }
    case CN_FMT_VERBOSE_JSON: {
        json_t *o = verbose_json(t, words);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        json_decref(o);
        return s;
    }
    case CN_FMT_TEXT:
        cn_sb_puts(&sb, t->text ? t->text : "");
        cn_sb_putc(&sb, '\n');
        break;
    case CN_FMT_SRT:
    case CN_FMT_VTT:
        if (f == CN_FMT_VTT)
            cn_sb_puts(&sb, "WEBVTT\n\n");
        for (size_t i = 0; i < t->n_segments; i++) {
            if (f == CN_FMT_SRT)
                cn_sb_printf(&sb, "%zu\n", i + 1);
            put_time(&sb, t->segments[i].start, f == CN_FMT_SRT ? ',' : '.');
            cn_sb_puts(&sb, " --> ");
            put_time(&sb, t->segments[i].end, f == CN_FMT_SRT ? ',' : '.');
            cn_sb_putc(&sb, '\n');
            put_caption(&sb, t->segments[i].text);
            cn_sb_puts(&sb, "\n\n");
        }
        break;
    }
    return cn_sb_steal(&sb);
}

void cn_transcriber_destroy(cn_transcriber *t) {
    if (t)
        t->ops->destroy(t);
}

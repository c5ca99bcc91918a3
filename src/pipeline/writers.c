/* Output formats for a transcript: text, json, verbose_json (OpenAI's shape), srt, vtt.
 *
 * All output is valid UTF-8: invalid bytes become U+FFFD, control characters become spaces.
 * Subtitles: at most 42 characters (code points) per line and 2 lines per cue, the usual broadcast
 * limits; a longer segment becomes several cues, timed by its words. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "canary/canary_pipeline.h"

#define SUB_LINE_CHARS 42
#define SUB_LINES 2

static const struct {
    const char *name, *ext;
} formats[] = {
    [CANARY_FORMAT_TEXT] = {"text", "txt"},
    [CANARY_FORMAT_JSON] = {"json", "json"},
    [CANARY_FORMAT_VERBOSE_JSON] = {"verbose_json", "json"},
    [CANARY_FORMAT_SRT] = {"srt", "srt"},
    [CANARY_FORMAT_VTT] = {"vtt", "vtt"},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

bool canary_output_format_parse(const char *name, canary_output_format *out) {
    for (size_t i = 0; name && i < N_FORMATS; i++) {
        if (strcmp(name, formats[i].name) == 0) {
            *out = (canary_output_format)i;
            return true;
        }
    }
    return false;
}

const char *canary_output_format_name(canary_output_format f) {
    return (unsigned)f < N_FORMATS ? formats[f].name : "unknown";
}

const char *canary_output_format_ext(canary_output_format f) {
    return (unsigned)f < N_FORMATS ? formats[f].ext : "txt";
}

/* A sanitised copy of s: valid UTF-8, no control characters, spaces collapsed, trimmed. */
static char *clean_text(const char *s) {
    cn_strbuf sb;
    cn_sb_init(&sb);
    bool space = false;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        size_t n = cn_utf8_seq_len(p);
        if (n == 0 || *p < 0x20 || *p == 0x7F || *p == ' ') {
            if (n == 0) {
                if (space && sb.len)
                    cn_sb_putc(&sb, ' ');
                space = false;
                cn_sb_puts(&sb, "\xEF\xBF\xBD");
            } else {
                space = true;
            }
            p++;
            continue;
        }
        if (space && sb.len)
            cn_sb_putc(&sb, ' ');
        space = false;
        cn_sb_putn(&sb, (const char *)p, n);
        p += n;
    }
    return cn_sb_steal(&sb);
}

static size_t count_cp(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            k++;
    return k;
}

static void put_time(cn_strbuf *sb, double t, char frac_sep) {
    if (!(t > 0))
        t = 0;
    long long ms = llround(t * 1000.0);
    long long h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
    cn_sb_printf(sb, "%02lld:%02lld:%02lld%c%03lld", h, m, s, frac_sep, ms % 1000);
}

static void put_num(cn_strbuf *sb, double v, int decimals) {
    if (!isfinite(v))
        v = 0;
    cn_sb_printf(sb, "%.*f", decimals, v);
}

/* Seconds to the millisecond rounded as the SRT/VTT times are (llround of t x 1000), so that a
 * time reads the same in every format, and in the service's responses (service/transcript.c). */
static void put_secs(cn_strbuf *sb, double t) {
    if (!isfinite(t))
        t = 0;
    cn_sb_printf(sb, "%.3f", (double)llround(t * 1000.0) / 1000.0);
}

static void render_text(cn_strbuf *sb, const canary_transcript *t) {
    for (size_t i = 0; i < t->n_segments; i++) {
        char *c = clean_text(t->segments[i].text);
        if (c && c[0]) {
            cn_sb_puts(sb, c);
            cn_sb_putc(sb, '\n');
        }
        free(c);
    }
}

static void render_json(cn_strbuf *sb, const canary_transcript *t) {
    char *c = clean_text(t->text);
    cn_sb_puts(sb, "{\"text\":");
    cn_sb_json_string(sb, c ? c : "");
    cn_sb_puts(sb, "}\n");
    free(c);
}

static void render_verbose_json(cn_strbuf *sb, const canary_transcript *t) {
    char *c = clean_text(t->text);
    cn_sb_puts(sb, "{\"task\":");
    cn_sb_json_string(sb, t->task ? t->task : "transcribe");
    cn_sb_puts(sb, ",\"language\":");
    cn_sb_json_string(sb, t->language ? t->language : "");
    cn_sb_puts(sb, ",\"duration\":");
    put_secs(sb, t->duration);
    cn_sb_puts(sb, ",\"text\":");
    cn_sb_json_string(sb, c ? c : "");
    free(c);
    cn_sb_puts(sb, ",\"segments\":[");
    bool any_words = false, approx = false;
    for (size_t i = 0; i < t->n_segments; i++) {
        const canary_segment *s = &t->segments[i];
        any_words |= s->n_words > 0;
        approx |= s->n_words > 0 && s->words_approximate;
        char *st = clean_text(s->text);
        cn_sb_printf(sb, "%s{\"id\":%d,\"seek\":%lld,\"start\":", i ? "," : "", s->id,
                     (long long)llround((s->start > 0 ? s->start : 0) * 100.0));
        put_secs(sb, s->start);
        cn_sb_puts(sb, ",\"end\":");
        put_secs(sb, s->end);
        cn_sb_puts(sb, ",\"text\":");
        cn_sb_json_string(sb, st ? st : "");
        free(st);
        cn_sb_puts(sb, ",\"tokens\":[");
        for (size_t k = 0; k < s->n_tokens; k++)
            cn_sb_printf(sb, "%s%d", k ? "," : "", s->tokens[k]);
        cn_sb_puts(sb, "],\"temperature\":0.0,\"avg_logprob\":");
        put_num(sb, s->avg_logprob, 6);
        cn_sb_putc(sb, '}');
    }
    cn_sb_putc(sb, ']');
    if (any_words) {
        cn_sb_puts(sb, ",\"words\":[");
        bool first = true;
        for (size_t i = 0; i < t->n_segments; i++) {
            const canary_segment *s = &t->segments[i];
            for (size_t k = 0; k < s->n_words; k++) {
                char *w = clean_text(s->words[k].text);
                cn_sb_printf(sb, "%s{\"word\":", first ? "" : ",");
                cn_sb_json_string(sb, w ? w : "");
                free(w);
                cn_sb_puts(sb, ",\"start\":");
                put_secs(sb, s->words[k].start);
                cn_sb_puts(sb, ",\"end\":");
                put_secs(sb, s->words[k].end);
                cn_sb_putc(sb, '}');
                first = false;
            }
        }
        cn_sb_puts(sb, "]");
        /* not in OpenAI's schema: says whether word times came from the model */
        cn_sb_printf(sb, ",\"words_approximate\":%s", approx ? "true" : "false");
    }
    cn_sb_puts(sb, "}\n");
}

/* Appends subtitle text: escaped for WebVTT; SubRip has no escapes, so its "-->" (the timing
 * arrow, which would confuse parsers) is written "->". */
static void put_sub_text(cn_strbuf *sb, const char *s, size_t n, bool vtt) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!vtt && c == '-' && i + 2 < n && s[i + 1] == '-' && s[i + 2] == '>') {
            cn_sb_puts(sb, "->");
            i += 2;
        } else if (vtt && c == '&')
            cn_sb_puts(sb, "&amp;");
        else if (vtt && c == '<')
            cn_sb_puts(sb, "&lt;");
        else if (vtt && c == '>')
            cn_sb_puts(sb, "&gt;");
        else
            cn_sb_putc(sb, c);
    }
}

typedef struct sub_word {
    const char *s;
    size_t n;      /* bytes */
    size_t cps;    /* code points */
    double start, end;
} sub_word;

static void emit_cue(cn_strbuf *sb, bool vtt, int *cue_no, const sub_word *w, size_t a, size_t b) {
    if (!vtt)
        cn_sb_printf(sb, "%d\n", ++*cue_no);
    double start = w[a].start, end = w[b - 1].end;
    put_time(sb, start, vtt ? '.' : ',');
    cn_sb_puts(sb, " --> ");
    put_time(sb, end > start ? end : start, vtt ? '.' : ',');
    cn_sb_putc(sb, '\n');
    size_t line = 0;
    for (size_t i = a; i < b; i++) {
        if (i > a) {
            if (line + 1 + w[i].cps > SUB_LINE_CHARS) {
                cn_sb_putc(sb, '\n');
                line = 0;
            } else {
                cn_sb_putc(sb, ' ');
                line++;
            }
        }
        put_sub_text(sb, w[i].s, w[i].n, vtt);
        line += w[i].cps;
    }
    cn_sb_puts(sb, "\n\n");
}

static bool render_subtitles(cn_strbuf *sb, const canary_transcript *t, bool vtt) {
    if (vtt)
        cn_sb_puts(sb, "WEBVTT\n\n");
    int cue_no = 0;
    for (size_t i = 0; i < t->n_segments; i++) {
        const canary_segment *s = &t->segments[i];
        char *text = clean_text(s->text);
        if (!text)
            return false;
        if (!text[0]) {
            free(text);
            continue;
        }
        /* split into words; time them by the segment's words when they line up, else by characters */
        size_t nw = 1;
        for (const char *p = text; *p; p++)
            nw += *p == ' ';
        sub_word *w = calloc(nw, sizeof *w);
        if (!w) {
            free(text);
            return false;
        }
        size_t k = 0, total_cps = 0;
        for (char *p = text; *p;) {
            char *e = strchr(p, ' ');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            w[k].s = p;
            w[k].n = n;
            w[k].cps = count_cp(p, n);
            total_cps += w[k].cps + 1;
            k++;
            p += n;
            if (*p == ' ')
                p++;
        }
        nw = k;
        bool by_words = s->n_words == nw;
        double acc = 0, dur = s->end > s->start ? s->end - s->start : 0;
        for (size_t j = 0; j < nw; j++) {
            if (by_words) {
                w[j].start = s->words[j].start;
                w[j].end = s->words[j].end;
            } else {
                double share = (double)(w[j].cps + 1) / (double)total_cps;
                w[j].start = s->start + acc * dur;
                w[j].end = s->start + (acc + share) * dur;
                acc += share;
            }
        }
        w[nw - 1].end = fmax(w[nw - 1].end, s->end);
        w[0].start = fmin(w[0].start, s->start);
        /* greedy: fill up to SUB_LINES lines of SUB_LINE_CHARS, then start a new cue */
        size_t a = 0, lines = 1, line = 0;
        for (size_t j = 0; j < nw; j++) {
            if (j > a) {
                if (line + 1 + w[j].cps > SUB_LINE_CHARS) {
                    if (lines == SUB_LINES) {
                        emit_cue(sb, vtt, &cue_no, w, a, j);
                        a = j;
                        lines = 1;
                        line = w[j].cps;
                        continue;
                    }
                    lines++;
                    line = w[j].cps;
                } else {
                    line += 1 + w[j].cps;
                }
            } else {
                line = w[j].cps;
            }
        }
        emit_cue(sb, vtt, &cue_no, w, a, nw);
        free(w);
        free(text);
    }
    return true;
}

canary_status canary_transcript_render(const canary_transcript *t, canary_output_format f, char **out) {
    *out = NULL;
    if ((unsigned)f >= N_FORMATS)
        return CANARY_EINVAL;
    cn_strbuf sb;
    cn_sb_init(&sb);
    bool ok = true;
    switch (f) {
    case CANARY_FORMAT_TEXT: render_text(&sb, t); break;
    case CANARY_FORMAT_JSON: render_json(&sb, t); break;
    case CANARY_FORMAT_VERBOSE_JSON: render_verbose_json(&sb, t); break;
    case CANARY_FORMAT_SRT: ok = render_subtitles(&sb, t, false); break;
    case CANARY_FORMAT_VTT: ok = render_subtitles(&sb, t, true); break;
    }
    if (!ok || cn_sb_failed(&sb)) {
        cn_sb_free(&sb);
        return CANARY_ENOMEM;
    }
    /* an empty transcript still yields a (possibly empty) string */
    *out = cn_sb_steal(&sb);
    if (!*out)
        *out = calloc(1, 1);
    return *out ? CANARY_OK : CANARY_ENOMEM;
}

/* Fuzzes the output writers with arbitrary transcript text (model output is untrusted bytes) and
 * times: every format must render, and the result must be valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "canary/canary_pipeline.h"

static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        if (!n)
            return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* layout: up to 4 segments separated by 0x00; each segment's first 2 bytes give its start/end */
    canary_segment seg[4];
    canary_word words[4][8];
    char *texts[4] = {0};
    size_t nseg = 0, off = 0;
    memset(seg, 0, sizeof seg);
    while (off < size && nseg < 4) {
        size_t end = off;
        while (end < size && data[end] != 0)
            end++;
        char *t = malloc(end - off + 1);
        if (!t)
            break;
        memcpy(t, data + off, end - off);
        t[end - off] = 0;
        texts[nseg] = t;
        canary_segment *s = &seg[nseg];
        s->id = (int)nseg;
        s->start = end - off > 0 ? (double)data[off] * 37.3 : 0;
        s->end = s->start + (end - off > 1 ? (double)data[off + 1] * 0.7 : 0);
        s->text = t;
        /* words: the text's space-separated pieces (at most 8), timed evenly */
        size_t nw = 0;
        for (char *p = t; *p && nw < 8;) {
            while (*p == ' ')
                p++;
            char *q = p;
            while (*q && *q != ' ')
                q++;
            if (q == p)
                break;
            words[nseg][nw].text = strndup(p, (size_t)(q - p));
            words[nseg][nw].start = s->start + 0.1 * (double)nw;
            words[nseg][nw].end = s->start + 0.1 * (double)(nw + 1);
            nw++;
            p = q;
        }
        s->words = words[nseg];
        s->n_words = nw;
        nseg++;
        off = end + 1;
    }
    canary_transcript tr = {.task = "transcribe", .language = "en", .duration = 3600 * 3.5,
                            .text = nseg ? texts[0] : "", .segments = seg, .n_segments = nseg};
    for (int f = 0; f <= CANARY_FORMAT_VTT; f++) {
        char *out = NULL;
        if (canary_transcript_render(&tr, (canary_output_format)f, &out) == CANARY_OK) {
            if (!valid_utf8(out))
                abort();
            free(out);
        }
    }
    for (size_t i = 0; i < nseg; i++) {
        free(texts[i]);
        for (size_t k = 0; k < seg[i].n_words; k++)
            free(seg[i].words[k].text);
    }
    return 0;
}

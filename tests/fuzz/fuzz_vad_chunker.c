/* Fuzzes the VAD and the chunk planner with arbitrary PCM (any float bit pattern, NaN and Inf
 * included) fed in arbitrary block sizes, and checks the planner's guarantees on the result:
 * chunks in order, inside the audio, never over the limit, covering every speech region. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/chunker.h"
#include "pipeline/vad.h"

#define CHECK(c)                                                       \
    do {                                                               \
        if (!(c)) {                                                    \
            fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #c); \
            abort();                                                   \
        }                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4)
        return 0;
    /* byte 0: block size; byte 1: max chunk (2-17 s); byte 2: overlap; byte 3: repeat count so
     * that small inputs still make minutes of audio */
    size_t block = 1 + data[0] * 37u;
    cn_chunk_params cp;
    cn_chunk_params_default(&cp);
    cp.max_s = 2 + data[1] % 16;
    cp.min_s = cp.max_s / 4;
    cp.overlap_s = (data[2] % 4) * cp.max_s / 16;
    int repeat = 1 + data[3] % 64;
    data += 4;
    size_t n = size - 4;
    size_t ns = n / sizeof(float);
    if (ns == 0)
        return 0;
    float *x = malloc(ns * sizeof *x);
    if (!x)
        return 0;
    memcpy(x, data, ns * sizeof *x);

    cn_vad_params vp;
    cn_vad_params_default(&vp);
    vp.max_region_s = 5;
    cn_vad *v;
    cn_chunker *c;
    cn_error err;
    CHECK(cn_vad_create(&vp, &v, &err) == CANARY_OK);
    CHECK(cn_chunker_create(&cp, &c, &err) == CANARY_OK);
    cn_span regions[4096];
    size_t nr = 0;
    cn_chunk chunks[4096];
    size_t nc = 0;
    int64_t total = 0;
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < ns; i += block) {
            size_t k = ns - i < block ? ns - i : block;
            CHECK(cn_vad_feed(v, x + i, k, &err) == CANARY_OK);
            total += (int64_t)k;
            cn_span got[64];
            size_t g;
            while ((g = cn_vad_take(v, got, 64)) > 0)
                for (size_t j = 0; j < g; j++) {
                    CHECK(cn_chunker_push(c, got[j], &err) == CANARY_OK);
                    if (nr < 4096)
                        regions[nr++] = got[j];
                }
            cn_chunker_watermark(c, cn_vad_watermark(v));
            while (nc < 4096 && cn_chunker_next(c, &chunks[nc]))
                nc++;
        }
    }
    CHECK(cn_vad_finish(v, &err) == CANARY_OK);
    cn_span got[64];
    size_t g;
    while ((g = cn_vad_take(v, got, 64)) > 0)
        for (size_t j = 0; j < g; j++) {
            CHECK(cn_chunker_push(c, got[j], &err) == CANARY_OK);
            if (nr < 4096)
                regions[nr++] = got[j];
        }
    cn_chunker_finish(c, total);
    while (nc < 4096 && cn_chunker_next(c, &chunks[nc]))
        nc++;
    int64_t max = (int64_t)(cp.max_s * 16000);
    for (size_t i = 0; i < nc; i++) {
        CHECK(chunks[i].start >= 0 && chunks[i].end <= total && chunks[i].end > chunks[i].start);
        CHECK(chunks[i].end - chunks[i].start <= max);
        if (i)
            CHECK(chunks[i].start >= chunks[i - 1].start && chunks[i].end > chunks[i - 1].end);
    }
    if (nr < 4096 && nc < 4096) {
        /* coverage: every region sample inside the audio lies in a chunk */
        size_t j = 0;
        for (size_t k = 0; k < nr; k++) {
            int64_t s = regions[k].start, e = regions[k].end < total ? regions[k].end : total;
            while (s < e) {
                while (j < nc && chunks[j].end <= s)
                    j++;
                CHECK(j < nc && chunks[j].start <= s);
                s = chunks[j].end;
            }
        }
    }
    cn_vad_destroy(v);
    cn_chunker_destroy(c);
    free(x);
    return 0;
}

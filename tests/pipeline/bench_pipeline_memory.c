/* Peak-memory probe for the pipeline on synthetic audio generated on the fly (no files):
 *   bench_pipeline_memory SECONDS [MODEL.nemo]
 * Without a model the deterministic recognizer double runs (the pipeline's own memory); with one,
 * the real engine. Measure with: /usr/bin/time -f '%M KiB' bench_pipeline_memory 10800 m.nemo
 * (numbers in README.md). Not a test: it asserts nothing. */
#include <stdio.h>
#include <stdlib.h>

#include "fake_asr.h"
#include "pipeline/engine_recognizer.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SECONDS [MODEL.nemo]\n", argv[0]);
        return 2;
    }
    fake_audio a;
    fake_audio_init(&a, 41, atof(argv[1]), false, true);
    canary_model *m = NULL;
    canary_context *c = NULL;
    char msg[512];
    fake_asr f = {.timestamps = true};
    cn_recognizer rec = fake_asr_recognizer(&f, 40);
    cn_engine_recognizer er = {0};
    if (argc > 2) {
        if (canary_model_load(argv[2], NULL, &m, msg, sizeof msg) != CANARY_OK ||
            canary_context_create(m, 0, &c, msg, sizeof msg) != CANARY_OK) {
            fprintf(stderr, "%s\n", msg);
            return 1;
        }
        er = (cn_engine_recognizer){.model = m, .ctx = c, .params = canary_default_params(m)};
        cn_engine_recognizer_bind(&er, &rec);
    }
    cn_pipeline_params p;
    cn_pipeline_params_default(&p);
    p.overlap_s = 1;
    cn_pcm_source src = fake_audio_source(&a, "synthetic");
    canary_transcript t;
    cn_error err;
    if (cn_pipeline_run(&rec, &p, &src, 1, &t, &err) != CANARY_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t tokens = 0;
    for (size_t i = 0; i < t.n_segments; i++)
        tokens += t.segments[i].n_tokens;
    printf("%.0f s of audio, %zu words spoken, %zu segments, %zu tokens\n", a.duration, a.n_words, t.n_segments,
           tokens);
    canary_transcript_free(&t);
    fake_audio_free(&a);
    canary_context_free(c);
    canary_model_free(m);
    return 0;
}

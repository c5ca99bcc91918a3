/* Resident memory of the engine alone over many calls (no pipeline, no audio decoding):
 *   bench_engine_memory MODEL.nemo CALLS [SEED]
 * Each call transcribes a batch of 1-4 utterances of random lengths from 1 to 40 s (a tone with
 * noise), the way chunks of sparse speech arrive; VmRSS is printed every 50 calls. Tells whether
 * the engine's buffers keep growing as lengths vary (README.md, the memory note). Not a test: it
 * asserts nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canary/canary.h"

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.nemo CALLS [SEED]\n", argv[0]);
        return 2;
    }
    int calls = atoi(argv[2]);
    srand(argc > 3 ? (unsigned)atoi(argv[3]) : 7u);
    canary_model *m = NULL;
    canary_context *c = NULL;
    char msg[512];
    if (canary_model_load(argv[1], NULL, &m, msg, sizeof msg) != CANARY_OK ||
        canary_context_create(m, 0, &c, msg, sizeof msg) != CANARY_OK) {
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    canary_params p = canary_default_params(m);
    const size_t max_len = 40 * 16000;
    float *pcm = malloc(sizeof(float) * max_len);
    if (!pcm)
        return 1;
    for (size_t i = 0; i < max_len; i++)
        pcm[i] = 0.1f * sinf((float)i * 0.05f) + 0.01f * ((float)(rand() % 1000) / 1000.0f - 0.5f);
    double audio_s = 0;
    for (int it = 0; it < calls; it++) {
        int n = 1 + rand() % 4;
        const float *items[4];
        size_t lens[4];
        for (int b = 0; b < n; b++) {
            items[b] = pcm;
            lens[b] = (size_t)(16000 * (1 + rand() % 39) + rand() % 16000);
            audio_s += (double)lens[b] / 16000;
        }
        if (canary_transcribe_batch(c, &p, items, lens, n, msg, sizeof msg) != CANARY_OK) {
            fprintf(stderr, "call %d: %s\n", it, msg);
            return 1;
        }
        if (it % 50 == 0 || it == calls - 1)
            printf("call %d, %.0f s of audio: VmRSS %ld KiB\n", it, audio_s, rss_kib());
        fflush(stdout);
    }
    free(pcm);
    canary_context_free(c);
    canary_model_free(m);
    return 0;
}

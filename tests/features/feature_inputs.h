/* Deterministic test signals for the feature tests. */
#ifndef CN_TEST_FEATURE_INPUTS_H
#define CN_TEST_FEATURE_INPUTS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A chirp plus two tones plus LCG noise: energy in every mel band, nothing periodic in the hop. */
static inline float *make_signal(int64_t n, uint32_t seed, float amplitude) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / 16000.0;
        s = s * 1664525u + 1013904223u;
        double noise = ((double)(s >> 8) / 16777216.0 - 0.5) * 0.2;
        double v = 0.4 * sin(2 * M_PI * (200.0 + 3000.0 * t) * t) + 0.2 * sin(2 * M_PI * 440.0 * t) +
                   0.1 * sin(2 * M_PI * 5500.0 * t + seed) + noise;
        x[i] = (float)(amplitude * v);
    }
    return x;
}

/* pocketsphinx's goforward.raw (s16le, 16 kHz) as float, or NULL when it is not installed. */
static inline float *load_speech(int64_t *n_out) {
    FILE *fp = fopen("/usr/share/pocketsphinx/test/data/goforward.raw", "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long bytes = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    int64_t n = bytes / 2;
    int16_t *raw = malloc((size_t)bytes);
    float *x = malloc((size_t)n * sizeof(float));
    if (fread(raw, 2, (size_t)n, fp) != (size_t)n)
        n = 0;
    fclose(fp);
    for (int64_t i = 0; i < n; i++)
        x[i] = raw[i] / 32768.0f;
    free(raw);
    *n_out = n;
    return x;
}

#endif

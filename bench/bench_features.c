/* Log-mel front-end throughput on one core: features for AUDIO_S seconds of 16 kHz audio, computed
 * in CHUNK_S-second utterances (as the pipeline feeds the model), or in one piece with CHUNK_S = 0.
 *
 *   bench_features [AUDIO_S=3600] [CHUNK_S=30] [nemo-2.5|nemo-2.4]
 *
 * Prints the wall time, the real-time factor and a checksum (so the work cannot be optimized away).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "features/features.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    double audio_s = argc > 1 ? atof(argv[1]) : 3600.0;
    double chunk_s = argc > 2 ? atof(argv[2]) : 30.0;
    cn_feat_semantics sem = CN_FEAT_NEMO_2_5;
    cn_error err = {0};
    if (argc > 3 && cn_feat_semantics_parse(argv[3], &sem, &err) != CANARY_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    int64_t total = (int64_t)(audio_s * 16000);
    int64_t chunk = chunk_s > 0 ? (int64_t)(chunk_s * 16000) : total;
    if (total < 1 || chunk < 1) {
        fprintf(stderr, "usage: bench_features [AUDIO_S] [CHUNK_S] [nemo-2.4|nemo-2.5]\n");
        return 2;
    }
    /* One chunk of signal reused: the work per sample does not depend on the values. */
    float *x = malloc((size_t)chunk * sizeof(float));
    uint32_t s = 12345;
    for (int64_t i = 0; i < chunk; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(0.3 * sin(i * 0.05) + ((double)(s >> 8) / 16777216.0 - 0.5) * 0.1);
    }
    cn_features_config cfg;
    cn_features_config_canary(&cfg, sem);
    cn_features *f;
    if (cn_features_create(&cfg, &f, &err) != CANARY_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    float *out = malloc((size_t)cn_features_columns(f, chunk) * 128 * sizeof(float));
    int64_t valid;
    double checksum = 0;
    cn_features_compute(f, x, chunk < 16000 ? chunk : 16000, out, &valid, &err); /* warm-up */
    double t0 = now_s();
    for (int64_t done = 0; done < total; done += chunk) {
        int64_t n = total - done < chunk ? total - done : chunk;
        if (cn_features_compute(f, x, n, out, &valid, &err) != CANARY_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        checksum += out[valid / 2];
    }
    double dt = now_s() - t0;
    printf("features %s: %.0f s of audio in %.3f s (chunks of %.0f s) = %.0fx real time, %.2f us/frame "
           "[checksum %.4f]\n",
           cn_feat_semantics_name(sem), audio_s, dt, chunk_s > 0 ? chunk_s : audio_s, audio_s / dt,
           dt * 1e6 / (audio_s * 100), checksum);
    free(out);
    free(x);
    cn_features_destroy(f);
    return 0;
}

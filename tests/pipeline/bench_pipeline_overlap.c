/* Read-ahead vs sequential with an inference stage that does not use the host CPU (as a GPU
 * does): the recognizer double sleeps MS_PER_S milliseconds per second of audio in each batch
 * (padded: count x longest), on top of its own small CPU work; the reading side (synthetic audio
 * generated on the fly + VAD + planning) uses the CPU as in production.
 *   bench_pipeline_overlap [SECONDS=1800] [MS_PER_S=2] [RUNS=3]
 * Prints the median wall time of each mode, their ratio, and whether the transcripts are identical.
 * Not a test: it asserts nothing about time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "fake_asr.h"

typedef struct sleepy {
    cn_recognizer inner;
    double ms_per_s;
} sleepy;

static cn_status sleepy_transcribe(void *self, const float *const *pcm, const size_t *lens, size_t n,
                                   cn_rec_result *out, cn_error *err) {
    sleepy *s = self;
    size_t longest = 0;
    for (size_t i = 0; i < n; i++)
        longest = lens[i] > longest ? lens[i] : longest;
    double ms = s->ms_per_s * (double)(n * longest) / 16000.0;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms - 1000 * (double)(time_t)(ms / 1000)) * 1000000L};
    nanosleep(&ts, NULL);
    return s->inner.transcribe(s->inner.self, pcm, lens, n, out, err);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1800, ms_per_s = argc > 2 ? atof(argv[2]) : 2;
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    if (runs < 1 || runs > 50 || !(seconds > 0)) {
        fprintf(stderr, "usage: %s [SECONDS] [MS_PER_S] [RUNS]\n", argv[0]);
        return 2;
    }
    double wall[2][50];
    char *doc[2] = {NULL, NULL};
    for (int r = 0; r < runs; r++)
        for (int mode = 0; mode < 2; mode++) { /* alternate: both modes see the same load */
            fake_audio a;
            fake_audio_init(&a, 41, seconds, true, true);
            fake_asr f = {.timestamps = true};
            sleepy s = {fake_asr_recognizer(&f, 40), ms_per_s};
            cn_recognizer rec = s.inner;
            rec.self = &s;
            rec.transcribe = sleepy_transcribe;
            cn_pipeline_params p;
            cn_pipeline_params_default(&p);
            p.overlap_s = 1;
            p.sequential = mode == 1;
            cn_pcm_source src = fake_audio_source(&a, "synthetic");
            canary_transcript t;
            cn_error err;
            uint64_t t0 = cn_now_ns();
            if (cn_pipeline_run(&rec, &p, &src, 1, &t, &err) != CANARY_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            wall[mode][r] = cn_elapsed_s(t0);
            if (r == 0 && canary_transcript_render(&t, CANARY_FORMAT_VERBOSE_JSON, &doc[mode]) != CANARY_OK)
                return 1;
            canary_transcript_free(&t);
            fake_audio_free(&a);
        }
    qsort(wall[0], (size_t)runs, sizeof(double), cmp_d);
    qsort(wall[1], (size_t)runs, sizeof(double), cmp_d);
    double on = wall[0][runs / 2], off = wall[1][runs / 2];
    printf("%.0f s of audio, inference %.1f ms per s of batch audio: read-ahead %.2f s, sequential %.2f s, "
           "speed-up %.2fx, transcripts %s\n",
           seconds, ms_per_s, on, off, off / on, strcmp(doc[0], doc[1]) == 0 ? "identical" : "DIFFERENT");
    free(doc[0]);
    free(doc[1]);
    return 0;
}

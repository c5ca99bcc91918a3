/* Streaming decode of one file end to end in 1-second blocks: samples, wall time and the peak
 * resident memory of the process (to show that memory does not grow with the file's length).
 *
 *   bench_decode FILE
 */
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "audio/decoder.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bench_decode FILE\n");
        return 2;
    }
    cn_error err = {0};
    cn_audio_decoder *d;
    double t0 = now_s();
    if (cn_audio_open_file(argv[1], NULL, &d, &err) != CANARY_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    static float block[16000];
    size_t got;
    double sum = 0;
    for (;;) {
        if (cn_audio_read(d, block, 16000, &got, &err) != CANARY_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (got == 0)
            break;
        sum += block[got / 2];
    }
    double dt = now_s() - t0;
    const cn_audio_info *info = cn_audio_get_info(d);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s: %s/%s %d Hz %d ch, declared %.1f s, decoded %.1f s in %.2f s (%.0fx real time), "
           "peak RSS %.1f MiB [checksum %.3f]\n",
           argv[1], info->container, info->codec, info->input_rate, info->input_channels,
           info->duration_s, cn_audio_samples_read(d) / 16000.0, dt,
           cn_audio_samples_read(d) / 16000.0 / dt, ru.ru_maxrss / 1024.0, sum);
    cn_audio_close(d);
    return 0;
}

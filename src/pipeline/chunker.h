/* The chunk planner: turns speech regions (from the VAD) into chunks the model can take.
 *
 * Guarantees (tested as properties over random inputs):
 *   - no chunk is longer than max_s (the model's limit);
 *   - every sample of every speech region lies in some chunk (full coverage of speech);
 *   - silence is skipped: a chunk never bridges a silence of skip_silence_s or more, so long
 *     pauses and silent files produce no chunks and no text;
 *   - chunks are cut inside silence whenever the speech allows it. Among the silences that would
 *     end the chunk between min_s and max_s, the longest is chosen (the later one on ties); with
 *     none there, the latest silence before min_s; only a run of speech longer than max_s is cut
 *     inside speech ("hard cut"). A hard cut of a run that fits in two chunks splits it in half,
 *     so no sliver is left over; longer runs are cut at max_s;
 *   - after a hard cut the next chunk starts overlap_s earlier (the seam is de-duplicated when
 *     merging); cuts in silence need no overlap;
 *   - chunks come out in time order, and the result does not depend on how the input was fed.
 *
 * Streaming: push regions as the VAD makes them final and tell the planner the VAD's
 * watermark; it emits a chunk once everything it depends on (2 * max_s + skip_silence_s ahead) is
 * known, or at finish. It keeps only the regions in that window.
 */
#ifndef CN_PIPELINE_CHUNKER_H
#define CN_PIPELINE_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "pipeline/vad.h"

typedef struct cn_chunk_params {
    int sample_rate;
    double max_s;          /* the model's limit (40 s unless its config says otherwise) */
    double min_s;          /* cuts in silence are not made before this, when avoidable */
    double overlap_s;      /* added before a chunk that starts with a hard cut; <= max_s / 4 */
    double skip_silence_s; /* silences at least this long are never inside a chunk */
} cn_chunk_params;

void cn_chunk_params_default(cn_chunk_params *p); /* 16 kHz, 40 s, 10 s, 0 s overlap, 2 s skip */

typedef struct cn_chunk {
    int64_t start, end;   /* samples of the original input, end <= audio length */
    bool hard_cut_before; /* starts inside speech: overlaps the previous chunk by overlap_s */
    bool hard_cut_after;  /* ends inside speech */
} cn_chunk;

typedef struct cn_chunker cn_chunker;

cn_status cn_chunker_create(const cn_chunk_params *p, cn_chunker **out, cn_error *err);
void cn_chunker_destroy(cn_chunker *c);
/* Regions must come in time order and not overlap (touching is fine: that is continuous speech). */
cn_status cn_chunker_push(cn_chunker *c, cn_span region, cn_error *err);
/* No region that starts before `watermark` is still to come. */
void cn_chunker_watermark(cn_chunker *c, int64_t watermark);
/* The input has ended after `total_samples`. */
void cn_chunker_finish(cn_chunker *c, int64_t total_samples);
/* Returns true and fills `out` when a chunk is ready; false when more input is needed or all
 * chunks have been returned (cn_chunker_done tells which). */
bool cn_chunker_next(cn_chunker *c, cn_chunk *out);
bool cn_chunker_done(const cn_chunker *c);
/* Every chunk still to come starts at or after this sample (the audio before it is either in a
 * returned chunk or silence), so callers may drop their audio before it. */
int64_t cn_chunker_position(const cn_chunker *c);

/* Convenience for whole recordings already analysed: plans all chunks of `regions`. `*out` is
 * malloc'd (free it); an empty plan gives *out = NULL, *n_out = 0. */
cn_status cn_chunker_plan_all(const cn_chunk_params *p, const cn_span *regions, size_t n_regions,
                              int64_t total_samples, cn_chunk **out, size_t *n_out, cn_error *err);

#endif

/* Merging chunk results into one transcript per input, in original-audio time.
 *
 * Words: tokens are grouped into words at pieces that start with a space (SentencePiece's word
 * mark). A word's time comes from the model's timestamp frames when every token of it has them
 * (start = chunk start + start_frame * frame_s, end likewise, clipped to the chunk); otherwise the
 * chunk's duration is spread over its words in proportion to their length in characters (+1 for
 * the space) and the word is marked approximate. Times are then made monotonic (a word never
 * starts before the previous one) and clipped to the audio.
 *
 * Seams: only a hard cut (a chunk starting inside speech) overlaps the previous chunk, by
 * overlap_s. There both chunks may have recognised the same words. We compare the last K words
 * of the previous chunk with the first K of the new one (K = 3 words per second of overlap + 4),
 * after normalising them (lower case, punctuation removed), and find their longest common
 * contiguous run of words. When there is one, the previous chunk's words are kept up to the end of
 * the run and the new chunk's words after it (the words of the run are thus kept once). When
 * there is none, the overlap is split at its middle by time. This is NeMo's token-level LCS merge
 * (spec §7.6 (a) 4) done on words, which also works when word times are approximate.
 *
 * Segments: a new segment starts at a cut in silence, after a word ending a sentence (. ? !
 * and their CJK forms), after a pause of 1 s or more between timed words, and before a segment
 * would exceed max_segment_chars. A segment's tokens and avg_logprob are those of its words.
 */
#ifndef CN_PIPELINE_MERGE_H
#define CN_PIPELINE_MERGE_H

#include "base/error.h"
#include "canary/canary_pipeline.h"
#include "pipeline/chunker.h"
#include "pipeline/recognizer.h"

typedef struct cn_merge_params {
    int sample_rate;
    double frame_s;        /* timestamp frame duration (0.08 s) */
    double overlap_s;      /* the planner's overlap at hard cuts */
    int max_segment_chars; /* 0 = no limit */
} cn_merge_params;

typedef struct cn_merger cn_merger;

cn_status cn_merger_create(const cn_merge_params *p, cn_merger **out, cn_error *err);
void cn_merger_destroy(cn_merger *m);
/* Adds the result of the next chunk (chunks must come in the planner's order). Does not take
 * ownership of `r`. */
cn_status cn_merger_add(cn_merger *m, const cn_chunk *chunk, const cn_rec_result *r, cn_error *err);
/* Builds the transcript. `duration_s` is the input's length; task/language are copied. */
cn_status cn_merger_finish(cn_merger *m, double duration_s, const char *task, const char *language,
                           canary_transcript *out, cn_error *err);

#endif

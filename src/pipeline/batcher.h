/* The length-bucketed batch planner.
 *
 * Chunks of similar length are batched together so that little compute goes to padding: the
 * chunks are ordered by length (longest first, original order on ties) and cut greedily into
 * batches of at most max_batch chunks whose padded cost (count x longest length) stays within
 * max_cost. Every chunk lands in exactly one batch; batches come longest first. With
 * equal_only, a batch also ends where the length changes (results that must not depend on
 * padding). */
#ifndef CN_PIPELINE_BATCHER_H
#define CN_PIPELINE_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct cn_batch_plan {
    size_t *order;    /* chunk indices, batch after batch */
    size_t *sizes;    /* sizes[b] = chunks in batch b */
    size_t n_batches;
} cn_batch_plan;

/* `lengths` in any unit (samples, frames); max_cost in the same unit. A chunk longer than
 * max_cost is an error naming it (the caller sizes max_cost to the longest allowed chunk). */
cn_status cn_batch_plan_make(const int64_t *lengths, size_t n, size_t max_batch, int64_t max_cost, bool equal_only,
                             cn_batch_plan *out, cn_error *err);
void cn_batch_plan_free(cn_batch_plan *p);

#endif

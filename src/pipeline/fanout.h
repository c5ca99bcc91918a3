/* One recognizer over several: each batch the pipeline forms is split into contiguous shares, one
 * per part (a model replica on each GPU), run at the same time on threads of their own, and the
 * results put back in order. The pipeline sees one recognizer whose batches are the parts' batches
 * added up, so `canary-stt transcribe` keeps its single streaming run and its output order.
 *
 * Shares follow the parts' weights (their maximum batch): a batch of 10 over weights 64 and 64
 * runs 5 + 5; a batch smaller than the number of parts leaves the last parts idle. A share is a
 * slice of one batch, whose chunks have the same length when the parts ask for equal-length
 * batches, so each part sees what a lone recognizer would have seen in that batch.
 *
 * A part that fails with CANARY_EDEVICE (a GPU that hit an error or fell off the bus) is retired,
 * with a warning: its share runs again on the others, and later batches are split over the parts
 * left, as the service retires a failed device. Any other failure, or the last part failing, fails
 * the batch (the message prefixed with the part's name) and the results the other parts made are
 * freed. The parts must outlive the fan-out and must each be used by one thread at a time, which
 * the fan-out guarantees as long as the pipeline calls it from one thread.
 */
#ifndef CN_PIPELINE_FANOUT_H
#define CN_PIPELINE_FANOUT_H

#include <stddef.h>

#include "base/error.h"
#include "pipeline/recognizer.h"

#define CN_FANOUT_MAX_PARTS 16

typedef struct cn_fanout_part {
    cn_recognizer rec;
    int weight;       /* share of each batch (its maximum batch); >= 1 */
    char name[32];    /* for messages, e.g. "cuda:1" */
    /* counted by the fan-out: what this part ran */
    size_t batches, chunks;
    double busy_s;    /* seconds inside rec.transcribe */
    bool retired;     /* failed with CANARY_EDEVICE: gets no more shares */
} cn_fanout_part;

typedef struct cn_fanout {
    cn_fanout_part parts[CN_FANOUT_MAX_PARTS];
    size_t n_parts;
} cn_fanout;

/* Fills `out` to run batches over f's parts (f must outlive it). The parts must agree on the
 * sample rate and frame duration; the chunk limit is the smallest of theirs, and batches are
 * equal-length when any part asks for it. EINVAL when there are no parts, too many, or they
 * disagree. */
cn_status cn_fanout_bind(cn_fanout *f, cn_recognizer *out, cn_error *err);

/* The shares of a batch of n over the weights of the parts not retired: share[i] chunks for part i
 * (contiguous, in part order), adding up to n (all zero when every part is retired); larger
 * remainders go to the earlier parts. */
void cn_fanout_shares(const cn_fanout *f, size_t n, size_t *share);

#endif

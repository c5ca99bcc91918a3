#include "pipeline/batcher.h"

#include <stdlib.h>
#include <string.h>

/* Stable merge sort of indices by descending length. */
static void sort_desc(size_t *idx, size_t *tmp, size_t n, const int64_t *len) {
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_desc(idx, tmp, h, len);
    sort_desc(idx + h, tmp, n - h, len);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = len[idx[j]] > len[idx[i]] ? idx[j++] : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

cn_status cn_batch_plan_make(const int64_t *lengths, size_t n, size_t max_batch, int64_t max_cost, bool equal_only,
                             cn_batch_plan *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    if (max_batch == 0 || max_cost <= 0)
        return cn_error_set(err, CANARY_EINVAL, "batcher: max_batch (%zu) and max_cost (%lld) must be positive",
                            max_batch, (long long)max_cost);
    for (size_t i = 0; i < n; i++) {
        if (lengths[i] < 0 || lengths[i] > max_cost)
            return cn_error_set(err, CANARY_ELIMIT,
                                "batcher: chunk %zu has length %lld, outside the per-batch budget of %lld", i,
                                (long long)lengths[i], (long long)max_cost);
    }
    if (n == 0)
        return CANARY_OK;
    out->order = malloc(n * sizeof *out->order);
    out->sizes = malloc(n * sizeof *out->sizes);
    size_t *tmp = malloc(n * sizeof *tmp);
    if (!out->order || !out->sizes || !tmp) {
        free(tmp);
        cn_batch_plan_free(out);
        return cn_error_set(err, CANARY_ENOMEM, "batcher: out of memory for %zu chunks", n);
    }
    for (size_t i = 0; i < n; i++)
        out->order[i] = i;
    sort_desc(out->order, tmp, n, lengths);
    free(tmp);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        size_t count = i - start + 1;
        int64_t longest = lengths[out->order[start]];
        if (longest < 1)
            longest = 1;
        if (count > max_batch || (int64_t)count * longest > max_cost ||
            (equal_only && lengths[out->order[i]] != lengths[out->order[start]])) {
            out->sizes[out->n_batches++] = i - start;
            start = i;
        }
    }
    out->sizes[out->n_batches++] = n - start;
    return CANARY_OK;
}

void cn_batch_plan_free(cn_batch_plan *p) {
    free(p->order);
    free(p->sizes);
    memset(p, 0, sizeof *p);
}

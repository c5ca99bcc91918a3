#include "nemo/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/pickle.h"
#include "nemo/zip.h"

size_t cn_dtype_size(cn_dtype dt) {
    static const size_t sizes[CN_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
    return (unsigned)dt < CN_DTYPE_COUNT ? sizes[dt] : 0;
}

const char *cn_dtype_name(cn_dtype dt) {
    static const char *names[CN_DTYPE_COUNT] = {"f32", "f16", "bf16", "f64", "i64", "i32", "i16", "i8", "u8", "bool"};
    return (unsigned)dt < CN_DTYPE_COUNT ? names[dt] : "?";
}

static int cmp_by_name(const void *a, const void *b, void *ctx) {
    const cn_tensor_view *t = ctx;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Checks a tensor against its storage and fills the view. */
static cn_status make_view(const cn_pkl_tensor *t, const uint8_t *storage, uint64_t storage_bytes, const char *label,
                           cn_tensor_view *v, cn_error *err) {
    size_t es = cn_dtype_size(t->dtype);
    if (t->storage_numel > storage_bytes / es)
        return cn_error_set(err, CANARY_EFORMAT,
                            "%s: storage data/%s of tensor '%s' declares %llu %s elements but holds only %llu bytes",
                            label, t->storage_key, t->name, (unsigned long long)t->storage_numel,
                            cn_dtype_name(t->dtype), (unsigned long long)storage_bytes);
    if (t->offset < 0)
        return cn_error_set(err, CANARY_EFORMAT, "%s: tensor '%s' has a negative storage offset", label, t->name);
    uint64_t numel = 1, last = (uint64_t)t->offset; /* index of the last element */
    bool empty = false;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || t->stride[d] < 0)
            return cn_error_set(err, CANARY_EFORMAT, "%s: tensor '%s' has a negative size or stride in dim %d", label,
                                t->name, d);
        if (t->shape[d] == 0)
            empty = true;
    }
    if (!empty) {
        for (int d = 0; d < t->ndim; d++) {
            uint64_t s = (uint64_t)t->shape[d], st = (uint64_t)t->stride[d];
            if (numel > UINT64_MAX / s || (s - 1 && st > (UINT64_MAX - last) / (s - 1)))
                return cn_error_set(err, CANARY_EFORMAT, "%s: tensor '%s' has sizes that overflow", label, t->name);
            numel *= s;
            last += (s - 1) * st;
        }
        if (last >= t->storage_numel)
            return cn_error_set(err, CANARY_EFORMAT,
                                "%s: tensor '%s' reaches element %llu of its storage data/%s, which has %llu elements",
                                label, t->name, (unsigned long long)last, t->storage_key,
                                (unsigned long long)t->storage_numel);
    } else {
        numel = 0;
        if ((uint64_t)t->offset > t->storage_numel)
            return cn_error_set(err, CANARY_EFORMAT, "%s: tensor '%s' starts past the end of its storage", label,
                                t->name);
    }
    memset(v, 0, sizeof *v);
    v->name = t->name;
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    memcpy(v->shape, t->shape, sizeof v->shape);
    memcpy(v->stride, t->stride, sizeof v->stride);
    v->data = storage + (uint64_t)t->offset * es;
    v->nbytes = (size_t)(numel * es);
    v->storage_id = t->storage_index;
    /* row-major contiguous: strides equal the suffix products (size-1 dims may have any stride) */
    bool contiguous = true;
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect)
            contiguous = false;
        expect *= t->shape[d];
    }
    v->contiguous = contiguous || numel == 0;
    return CANARY_OK;
}

cn_status cn_checkpoint_load(const uint8_t *data, size_t size, const char *label, cn_checkpoint *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    cn_zip zip;
    cn_status st = cn_zip_parse(data, size, &zip, err);
    if (st)
        return cn_error_prefix(err, "%s", label);
    cn_pkl_state_dict sd = {0};
    const cn_zip_entry *e = cn_zip_find(&zip, "byteorder");
    const uint8_t *p;
    if (e) {
        st = cn_zip_entry_data(&zip, data, e, &p, err);
        if (st)
            goto done;
        if (!(e->size == 6 && memcmp(p, "little", 6) == 0)) {
            st = cn_error_set(err, CANARY_EUNSUPPORTED, "%s: big-endian checkpoints are not supported", label);
            goto done;
        }
    }
    e = cn_zip_find(&zip, "data.pkl");
    if (!e) {
        st = cn_error_set(err, CANARY_EFORMAT, "%s: no %s/data.pkl: not a PyTorch checkpoint", label, zip.prefix);
        goto done;
    }
    st = cn_zip_entry_data(&zip, data, e, &p, err);
    if (!st)
        st = cn_pickle_state_dict(p, (size_t)e->size, &sd, err);
    if (st) {
        cn_error_prefix(err, "%s", label);
        goto done;
    }
    out->tensors = calloc(sd.n ? sd.n : 1, sizeof *out->tensors);
    out->by_name = calloc(sd.n ? sd.n : 1, sizeof *out->by_name);
    if (!out->tensors || !out->by_name) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading %s", label);
        goto done;
    }
    /* one zip lookup per distinct storage */
    const cn_zip_entry **storages = calloc((size_t)sd.n_storages + 1, sizeof *storages);
    if (!storages) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading %s", label);
        goto done;
    }
    for (size_t i = 0; i < sd.n && !st; i++) {
        cn_pkl_tensor *t = &sd.tensors[i];
        const cn_zip_entry *se = storages[t->storage_index];
        if (!se) {
            char key[80];
            snprintf(key, sizeof key, "data/%s", t->storage_key);
            se = cn_zip_find(&zip, key);
            if (!se) {
                st = cn_error_set(err, CANARY_EFORMAT, "%s: tensor '%s' uses storage %s/%s, which is missing", label,
                                  t->name, zip.prefix, key);
                break;
            }
            storages[t->storage_index] = se;
        }
        const uint8_t *sp;
        st = cn_zip_entry_data(&zip, data, se, &sp, err);
        if (!st)
            st = make_view(t, sp, se->size, label, &out->tensors[i], err);
        if (!st) {
            t->name = NULL; /* ownership moves to the view */
            out->n++;
        }
    }
    free(storages);
    if (st)
        goto done;
    out->n_storages = sd.n_storages;
    for (size_t i = 0; i < out->n; i++)
        out->by_name[i] = i;
    qsort_r(out->by_name, out->n, sizeof *out->by_name, cmp_by_name, out->tensors);
    for (size_t i = 1; i < out->n; i++) {
        if (strcmp(out->tensors[out->by_name[i]].name, out->tensors[out->by_name[i - 1]].name) == 0) {
            st = cn_error_set(err, CANARY_EFORMAT, "%s: tensor '%s' appears twice in the state dict", label,
                              out->tensors[out->by_name[i]].name);
            goto done;
        }
    }
done:
    cn_pkl_state_dict_free(&sd);
    cn_zip_free(&zip);
    if (st)
        cn_checkpoint_free(out);
    return st;
}

void cn_checkpoint_free(cn_checkpoint *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->tensors[i].name);
    free(c->tensors);
    free(c->by_name);
    memset(c, 0, sizeof *c);
}

const cn_tensor_view *cn_checkpoint_find(const cn_checkpoint *c, const char *name) {
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(c->tensors[c->by_name[mid]].name, name);
        if (r == 0)
            return &c->tensors[c->by_name[mid]];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Loading Canary weights from the checkpoint into backend form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

static cn_status cn_w_linear_prec(cn_canary *m, const float *w, const float *b, int n_out, int n_in,
                                  cn_precision prec, bool persistent, cn_linear **out, cn_error *err);

static float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Copies any floating tensor to a new fp32 array (row-major, honouring strides). */
static cn_status tensor_to_f32(const cn_tensor_view *v, float **out, cn_error *err) {
    size_t n = 1;
    for (int i = 0; i < v->ndim; i++)
        n *= (size_t)v->shape[i];
    float *o = malloc((n ? n : 1) * sizeof(float));
    if (!o)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory converting tensor %s", v->name);
    int64_t idx[CN_MAX_DIMS] = {0};
    for (size_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < v->ndim; d++)
            off += idx[d] * v->stride[d];
        switch (v->dtype) {
        case CN_DTYPE_F32: {
            float f;
            memcpy(&f, (const char *)v->data + off * 4, 4);
            o[i] = f;
            break;
        }
        case CN_DTYPE_F16: {
            uint16_t h;
            memcpy(&h, (const char *)v->data + off * 2, 2);
            o[i] = half_to_f32(h);
            break;
        }
        case CN_DTYPE_BF16: {
            uint16_t h;
            memcpy(&h, (const char *)v->data + off * 2, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&o[i], &u, 4);
            break;
        }
        case CN_DTYPE_F64: {
            double dv;
            memcpy(&dv, (const char *)v->data + off * 8, 8);
            o[i] = (float)dv;
            break;
        }
        default:
            free(o);
            return cn_error_set(err, CANARY_EFORMAT, "tensor %s has dtype %s; a floating-point type is required",
                                v->name, cn_dtype_name(v->dtype));
        }
        for (int d = v->ndim - 1; d >= 0; d--) {
            if (++idx[d] < v->shape[d])
                break;
            idx[d] = 0;
        }
    }
    *out = o;
    return CANARY_OK;
}

cn_status cn_w_get(cn_canary *m, const char *name, int ndim, const int64_t *shape, float **out, cn_error *err) {
    const cn_tensor_view *v;
    CN_TRY(cn_nemo_expect(m->nemo, name, ndim, shape, &v, err));
    float *f = NULL;
    CN_TRY(tensor_to_f32(v, &f, err));
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 256;
        float **p = realloc(m->owned, cap * sizeof *p);
        if (!p) {
            free(f);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory loading %s", name);
        }
        m->owned = p;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = f;
    *out = f;
    return CANARY_OK;
}

cn_status cn_w_vec(cn_canary *m, const char *name, int64_t n, float **out, cn_error *err) {
    int64_t shape[1] = {n};
    return cn_w_get(m, name, 1, shape, out, err);
}

cn_status cn_w_linear(cn_canary *m, const char *prefix, int n_out, int n_in, bool bias, cn_linear **out,
                      cn_error *err) {
    int64_t shape[2] = {n_out, n_in};
    return cn_w_linear_nd(m, prefix, 2, shape, n_out, n_in, bias, out, err);
}

cn_status cn_w_linear_nd(cn_canary *m, const char *prefix, int ndim, const int64_t *shape, int n_out, int n_in,
                         bool bias, cn_linear **out, cn_error *err) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    float *b = NULL;
    if (bias) {
        char bname[256];
        snprintf(bname, sizeof bname, "%s.bias", prefix);
        CN_TRY(cn_w_vec(m, bname, n_out, &b, err));
    }
    const cn_tensor_view *v;
    CN_TRY(cn_nemo_expect(m->nemo, name, ndim, shape, &v, err));
    /* fp32 weights are used where the checkpoint maps them (no copy, no conversion) */
    if (v->dtype == CN_DTYPE_F32 && v->contiguous && ((uintptr_t)v->data % sizeof(float)) == 0)
        return cn_w_linear_prec(m, v->data, b, n_out, n_in, m->load_prec, true, out, err);
    float *w;
    CN_TRY(tensor_to_f32(v, &w, err));
    cn_status st = cn_w_linear_prec(m, w, b, n_out, n_in, m->load_prec, false, out, err);
    free(w);
    return st;
}

cn_status cn_w_linear_from(cn_canary *m, const float *w, const float *b, int n_out, int n_in, cn_linear **out,
                           cn_error *err) {
    return cn_w_linear_prec(m, w, b, n_out, n_in, m->load_prec, false, out, err);
}

cn_status cn_w_linear_from_f32(cn_canary *m, const float *w, const float *b, int n_out, int n_in, cn_linear **out,
                               cn_error *err) {
    return cn_w_linear_prec(m, w, b, n_out, n_in, CN_PREC_F32, false, out, err);
}

static cn_status cn_w_linear_prec(cn_canary *m, const float *w, const float *b, int n_out, int n_in, cn_precision prec,
                           bool persistent, cn_linear **out, cn_error *err) {
    CN_TRY(m->be->ops->linear_create(m->be, w, b, n_out, n_in, prec, persistent, out, err));
    if (m->n_linears == m->cap_linears) {
        size_t cap = m->cap_linears ? m->cap_linears * 2 : 128;
        cn_linear **p = realloc(m->linears, cap * sizeof *p);
        if (!p) {
            m->be->ops->linear_destroy(m->be, *out);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory");
        }
        m->linears = p;
        m->cap_linears = cap;
    }
    m->linears[m->n_linears++] = *out;
    return CANARY_OK;
}

/* Fuses several [n_i, n_in] layers into one [sum n_i, n_in] layer (Q|K|V). */
cn_status cn_w_linear_fused(cn_canary *m, const char *const *prefixes, int count, int n_out_each, int n_in,
                            bool bias, cn_linear **out, cn_error *err) {
    size_t each = (size_t)n_out_each * (size_t)n_in;
    float *w = malloc(each * (size_t)count * sizeof(float));
    float *b = bias ? malloc((size_t)n_out_each * (size_t)count * sizeof(float)) : NULL;
    if (!w || (bias && !b)) {
        free(w);
        free(b);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory fusing %s", prefixes[0]);
    }
    cn_status st = CANARY_OK;
    for (int i = 0; i < count && st == CANARY_OK; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.weight", prefixes[i]);
        int64_t shape[2] = {n_out_each, n_in};
        float *bi;
        const cn_tensor_view *v;
        st = cn_nemo_expect(m->nemo, name, 2, shape, &v, err);
        float *wi = NULL;
        if (st == CANARY_OK)
            st = tensor_to_f32(v, &wi, err);
        if (st == CANARY_OK)
            memcpy(w + each * (size_t)i, wi, each * sizeof(float));
        free(wi);
        if (st == CANARY_OK && bias) {
            snprintf(name, sizeof name, "%s.bias", prefixes[i]);
            st = cn_w_vec(m, name, n_out_each, &bi, err);
            if (st == CANARY_OK)
                memcpy(b + (size_t)n_out_each * (size_t)i, bi, (size_t)n_out_each * sizeof(float));
        }
    }
    if (st == CANARY_OK)
        st = cn_w_linear_from(m, w, b, n_out_each * count, n_in, out, err);
    free(w);
    free(b);
    return st;
}

cn_status cn_w_const(cn_canary *m, float **p, size_t n, cn_error *err) {
    const float *dev;
    CN_TRY(m->be->ops->constant(m->be, *p, n, &dev, err));
    *p = (float *)dev; /* backend memory from here on: the model only passes it to operations */
    return CANARY_OK;
}

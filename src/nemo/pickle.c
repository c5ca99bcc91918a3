#include "nemo/pickle.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum vkind { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;
typedef enum gkind { G_ORDEREDDICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE } gkind;

typedef struct tensor_info {
    struct val *storage;
    int64_t offset;
    int ndim;
    int64_t shape[CN_MAX_DIMS];
    int64_t stride[CN_MAX_DIMS];
} tensor_info;

typedef struct val {
    vkind k;
    int64_t i;          /* INT, BOOL; STORAGE: numel */
    char *s;            /* STR (owned, NUL-terminated); STORAGE: key (owned) */
    size_t slen;
    struct val **items; /* TUPLE, LIST, DICT (key, value interleaved) */
    size_t n, cap;
    gkind g;            /* GLOBAL */
    cn_dtype dtype;     /* GLOBAL storage class, STORAGE */
    tensor_info *t;     /* TENSOR */
} val;

typedef struct vm {
    const uint8_t *p, *end, *start;
    val **all; /* every value created, freed at the end (no recursion, cycles are harmless) */
    size_t n_all, cap_all;
    val **stack;
    size_t sp, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    val **memo;
    size_t cap_memo, n_memo; /* n_memo: distinct indices set (MEMOIZE uses it) */
    cn_error *err;
} vm;

static const char *kind_name(vkind k) {
    static const char *names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
    return names[k];
}

#define FAIL(m, ...) cn_error_set((m)->err, CANARY_EFORMAT, "pickle (data.pkl) at byte %zu: " __VA_ARGS__)
#define AT(m) ((size_t)((m)->p - (m)->start))

static bool grow(void **arr, size_t *cap, size_t need, size_t elsize) {
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 8;
    while (nc < need)
        nc *= 2;
    void *a = realloc(*arr, nc * elsize);
    if (!a)
        return false;
    *arr = a;
    *cap = nc;
    return true;
}

static val *new_val(vm *m, vkind k) {
    if (m->n_all >= CN_PKL_MAX_VALUES) {
        cn_error_set(m->err, CANARY_ELIMIT, "pickle (data.pkl) at byte %zu: more than %u objects", AT(m),
                     CN_PKL_MAX_VALUES);
        return NULL;
    }
    if (!grow((void **)&m->all, &m->cap_all, m->n_all + 1, sizeof(val *))) {
        cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
        return NULL;
    }
    val *v = calloc(1, sizeof *v);
    if (!v) {
        cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
        return NULL;
    }
    v->k = k;
    m->all[m->n_all++] = v;
    return v;
}

static cn_status push(vm *m, val *v) {
    if (!v)
        return m->err ? m->err->code : CANARY_ENOMEM;
    if (m->sp >= CN_PKL_MAX_STACK)
        return cn_error_set(m->err, CANARY_ELIMIT, "pickle (data.pkl) at byte %zu: stack deeper than %u", AT(m),
                            CN_PKL_MAX_STACK);
    if (!grow((void **)&m->stack, &m->cap_stack, m->sp + 1, sizeof(val *)))
        return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
    m->stack[m->sp++] = v;
    return CANARY_OK;
}

/* The bottom of the current frame: values above the topmost MARK (or the whole stack). */
static size_t frame_base(const vm *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static cn_status pop(vm *m, val **out) {
    if (m->sp <= frame_base(m))
        return FAIL(m, "stack underflow (malformed pickle)", AT(m));
    *out = m->stack[--m->sp];
    return CANARY_OK;
}

static cn_status top(vm *m, val **out) {
    if (m->sp <= frame_base(m))
        return FAIL(m, "stack underflow (malformed pickle)", AT(m));
    *out = m->stack[m->sp - 1];
    return CANARY_OK;
}

/* Pops the topmost MARK; items above it stay on the stack at [*base, sp). */
static cn_status pop_mark(vm *m, size_t *base) {
    if (!m->n_marks)
        return FAIL(m, "no MARK on the stack (malformed pickle)", AT(m));
    *base = m->marks[--m->n_marks];
    return CANARY_OK;
}

static cn_status need(vm *m, size_t n) {
    if ((size_t)(m->end - m->p) < n)
        return FAIL(m, "truncated (needs %zu more bytes)", AT(m), n);
    return CANARY_OK;
}

static cn_status add_items(vm *m, val *c, val **items, size_t n) {
    if (n == 0)
        return CANARY_OK;
    if (!grow((void **)&c->items, &c->cap, c->n + n, sizeof(val *)))
        return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
    memcpy(c->items + c->n, items, n * sizeof(val *));
    c->n += n;
    return CANARY_OK;
}

static cn_status make_tuple(vm *m, size_t base) {
    val *t = new_val(m, V_TUPLE);
    if (!t)
        return m->err->code;
    if (m->sp > base)
        CN_TRY(add_items(m, t, m->stack + base, m->sp - base));
    m->sp = base;
    return push(m, t);
}

static cn_status push_str(vm *m, uint64_t len) {
    if (len > CN_PKL_MAX_STRING)
        return cn_error_set(m->err, CANARY_ELIMIT, "pickle (data.pkl) at byte %zu: string of %llu bytes exceeds %u",
                            AT(m), (unsigned long long)len, CN_PKL_MAX_STRING);
    CN_TRY(need(m, (size_t)len));
    val *v = new_val(m, V_STR);
    if (!v)
        return m->err->code;
    v->s = malloc((size_t)len + 1);
    if (!v->s)
        return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
    memcpy(v->s, m->p, (size_t)len);
    v->s[len] = 0;
    v->slen = (size_t)len;
    m->p += len;
    return push(m, v);
}

static cn_status push_int(vm *m, int64_t i) {
    val *v = new_val(m, V_INT);
    if (!v)
        return m->err->code;
    v->i = i;
    return push(m, v);
}

static const struct {
    const char *name;
    cn_dtype dt;
} storage_classes[] = {
    {"FloatStorage", CN_DTYPE_F32}, {"HalfStorage", CN_DTYPE_F16},  {"BFloat16Storage", CN_DTYPE_BF16},
    {"DoubleStorage", CN_DTYPE_F64}, {"LongStorage", CN_DTYPE_I64}, {"IntStorage", CN_DTYPE_I32},
    {"ShortStorage", CN_DTYPE_I16},  {"CharStorage", CN_DTYPE_I8},  {"ByteStorage", CN_DTYPE_U8},
    {"BoolStorage", CN_DTYPE_BOOL},
};

static cn_status push_global(vm *m, const char *mod, const char *name) {
    val *g = new_val(m, V_GLOBAL);
    if (!g)
        return m->err->code;
    if (!strcmp(mod, "collections") && !strcmp(name, "OrderedDict")) {
        g->g = G_ORDEREDDICT;
    } else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) {
        g->g = G_REBUILD_V2;
    } else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_parameter")) {
        g->g = G_REBUILD_PARAM;
    } else {
        bool found = false;
        if (!strcmp(mod, "torch")) {
            for (size_t i = 0; i < sizeof storage_classes / sizeof *storage_classes; i++) {
                if (!strcmp(name, storage_classes[i].name)) {
                    g->g = G_STORAGE;
                    g->dtype = storage_classes[i].dt;
                    found = true;
                }
            }
        }
        if (!found)
            return cn_error_set(m->err, CANARY_EUNSUPPORTED,
                                "pickle (data.pkl) at byte %zu: refusing the global '%.200s.%.200s': a PyTorch state "
                                "dict only needs OrderedDict, _rebuild_tensor_v2 and torch storage classes",
                                AT(m), mod, name);
    }
    return push(m, g);
}

/* GLOBAL 'c': "module\nname\n" */
static cn_status op_global(vm *m) {
    const uint8_t *nl1 = memchr(m->p, '\n', (size_t)(m->end - m->p));
    if (!nl1)
        return FAIL(m, "truncated GLOBAL", AT(m));
    const uint8_t *nl2 = memchr(nl1 + 1, '\n', (size_t)(m->end - nl1 - 1));
    if (!nl2)
        return FAIL(m, "truncated GLOBAL", AT(m));
    size_t ml = (size_t)(nl1 - m->p), nlen = (size_t)(nl2 - nl1 - 1);
    if (ml > 255 || nlen > 255)
        return FAIL(m, "GLOBAL name too long", AT(m));
    char mod[256], name[256];
    memcpy(mod, m->p, ml);
    mod[ml] = 0;
    memcpy(name, nl1 + 1, nlen);
    name[nlen] = 0;
    if (strlen(mod) != ml || strlen(name) != nlen)
        return FAIL(m, "NUL byte in GLOBAL name", AT(m));
    m->p = nl2 + 1;
    return push_global(m, mod, name);
}

static bool is_int_tuple(const val *v, int max) {
    if (v->k != V_TUPLE || v->n > (size_t)max)
        return false;
    for (size_t i = 0; i < v->n; i++)
        if (v->items[i]->k != V_INT)
            return false;
    return true;
}

static cn_status op_reduce(vm *m) {
    val *args = NULL, *fn = NULL;
    CN_TRY(pop(m, &args));
    CN_TRY(pop(m, &fn));
    if (fn->k != V_GLOBAL)
        return FAIL(m, "REDUCE of a %s, not a known global", AT(m), kind_name(fn->k));
    if (args->k != V_TUPLE)
        return FAIL(m, "REDUCE arguments are a %s, not a tuple", AT(m), kind_name(args->k));
    switch (fn->g) {
    case G_ORDEREDDICT: {
        if (args->n != 0)
            return FAIL(m, "OrderedDict() called with %zu arguments (expected none)", AT(m), args->n);
        return push(m, new_val(m, V_DICT));
    }
    case G_REBUILD_V2: {
        /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
        if (args->n != 6 && args->n != 7)
            return FAIL(m, "_rebuild_tensor_v2 with %zu arguments (expected 6 or 7)", AT(m), args->n);
        val **a = args->items;
        if (a[0]->k != V_STORAGE || a[1]->k != V_INT || !is_int_tuple(a[2], CN_MAX_DIMS) ||
            !is_int_tuple(a[3], CN_MAX_DIMS) || a[2]->n != a[3]->n)
            return FAIL(m, "_rebuild_tensor_v2 arguments are not (storage, int, shape, stride, ...) with at most %d dims",
                        AT(m), CN_MAX_DIMS);
        val *t = new_val(m, V_TENSOR);
        if (!t)
            return m->err->code;
        t->t = calloc(1, sizeof *t->t);
        if (!t->t)
            return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
        t->t->storage = a[0];
        t->t->offset = a[1]->i;
        t->t->ndim = (int)a[2]->n;
        for (int d = 0; d < t->t->ndim; d++) {
            t->t->shape[d] = a[2]->items[d]->i;
            t->t->stride[d] = a[3]->items[d]->i;
        }
        return push(m, t);
    }
    case G_REBUILD_PARAM: {
        /* (data, requires_grad, backward_hooks): a Parameter is just its tensor for us */
        if (args->n != 3 || args->items[0]->k != V_TENSOR)
            return FAIL(m, "_rebuild_parameter arguments are not (tensor, bool, hooks)%s", AT(m), "");
        return push(m, args->items[0]);
    }
    case G_STORAGE:
        return FAIL(m, "a storage class cannot be called directly%s", AT(m), "");
    }
    return CANARY_EINTERNAL;
}

static cn_status op_persid(vm *m) {
    val *pid = NULL;
    CN_TRY(pop(m, &pid));
    /* ("storage", torch.XxxStorage, key, location, numel) */
    if (pid->k != V_TUPLE || pid->n != 5 || pid->items[0]->k != V_STR || strcmp(pid->items[0]->s, "storage") != 0 ||
        pid->items[1]->k != V_GLOBAL || pid->items[1]->g != G_STORAGE || pid->items[2]->k != V_STR ||
        pid->items[3]->k != V_STR || pid->items[4]->k != V_INT)
        return FAIL(m, "persistent id is not ('storage', torch.<Type>Storage, key, location, numel)%s", AT(m), "");
    if (pid->items[4]->i < 0)
        return FAIL(m, "negative storage size %lld", AT(m), (long long)pid->items[4]->i);
    const val *key = pid->items[2];
    if (key->slen == 0 || key->slen > 64 || strlen(key->s) != key->slen || strchr(key->s, '/'))
        return FAIL(m, "bad storage key%s", AT(m), "");
    val *s = new_val(m, V_STORAGE);
    if (!s)
        return m->err->code;
    s->s = strdup(key->s);
    if (!s->s)
        return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
    s->dtype = pid->items[1]->dtype;
    s->i = pid->items[4]->i;
    return push(m, s);
}

static cn_status memo_put(vm *m, uint64_t idx) {
    if (idx >= CN_PKL_MAX_MEMO)
        return cn_error_set(m->err, CANARY_ELIMIT, "pickle (data.pkl) at byte %zu: memo index %llu exceeds %u", AT(m),
                            (unsigned long long)idx, CN_PKL_MAX_MEMO);
    /* pickle numbers memo slots densely (0, 1, 2, ...), so an index beyond the objects created so
     * far is malformed, and refusing it keeps the memo proportional to the input */
    if (idx > m->n_all)
        return FAIL(m, "memo index %llu is beyond the %zu objects created so far", AT(m), (unsigned long long)idx,
                    m->n_all);
    val *v = NULL;
    CN_TRY(top(m, &v));
    size_t old = m->cap_memo;
    if (!grow((void **)&m->memo, &m->cap_memo, (size_t)idx + 1, sizeof(val *)))
        return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
    if (m->cap_memo > old)
        memset(m->memo + old, 0, (m->cap_memo - old) * sizeof(val *));
    if (!m->memo[idx])
        m->n_memo++;
    m->memo[idx] = v;
    return CANARY_OK;
}

static cn_status memo_get(vm *m, uint64_t idx) {
    if (idx >= m->cap_memo || !m->memo[idx])
        return FAIL(m, "memo reference %llu to nothing", AT(m), (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static cn_status setitems(vm *m, val *d, size_t base) {
    if (d->k != V_DICT)
        return FAIL(m, "SETITEM(S) on a %s", AT(m), kind_name(d->k));
    if ((m->sp - base) % 2)
        return FAIL(m, "SETITEMS with an odd number of values%s", AT(m), "");
    CN_TRY(add_items(m, d, m->stack + base, m->sp - base));
    m->sp = base;
    return CANARY_OK;
}

static uint64_t rdle(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static cn_status run(vm *m, val **result) {
    for (;;) {
        CN_TRY(need(m, 1));
        uint8_t op = *m->p++;
        val *a = NULL, *b = NULL;
        size_t base = 0;
        switch (op) {
        case 0x80: /* PROTO */
            CN_TRY(need(m, 1));
            if (*m->p < 2 || *m->p > 5)
                return FAIL(m, "unsupported pickle protocol %u (torch.save writes 2)", AT(m), (unsigned)*m->p);
            m->p++;
            break;
        case 0x95: /* FRAME */
            CN_TRY(need(m, 8));
            m->p += 8;
            break;
        case '.': /* STOP */
            CN_TRY(pop(m, result));
            return CANARY_OK;
        case '(': /* MARK */
            if (m->n_marks >= CN_PKL_MAX_STACK)
                return cn_error_set(m->err, CANARY_ELIMIT, "pickle (data.pkl): too many MARKs");
            if (!grow((void **)&m->marks, &m->cap_marks, m->n_marks + 1, sizeof(size_t)))
                return cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
            m->marks[m->n_marks++] = m->sp;
            break;
        case ')': /* EMPTY_TUPLE */
            CN_TRY(make_tuple(m, m->sp));
            break;
        case 't': /* TUPLE */
            CN_TRY(pop_mark(m, &base));
            CN_TRY(make_tuple(m, base));
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t n = (size_t)(op - 0x84);
            if (m->sp < frame_base(m) + n)
                return FAIL(m, "stack underflow (malformed pickle)%s", AT(m), "");
            CN_TRY(make_tuple(m, m->sp - n));
            break;
        }
        case ']': /* EMPTY_LIST */
            CN_TRY(push(m, new_val(m, V_LIST)));
            break;
        case '}': /* EMPTY_DICT */
            CN_TRY(push(m, new_val(m, V_DICT)));
            break;
        case 'a': /* APPEND */
            CN_TRY(pop(m, &b));
            CN_TRY(top(m, &a));
            if (a->k != V_LIST)
                return FAIL(m, "APPEND to a %s", AT(m), kind_name(a->k));
            CN_TRY(add_items(m, a, &b, 1));
            break;
        case 'e': /* APPENDS */
            CN_TRY(pop_mark(m, &base));
            if (base == 0 || base <= frame_base(m))
                return FAIL(m, "APPENDS without a list%s", AT(m), "");
            a = m->stack[base - 1];
            if (a->k != V_LIST)
                return FAIL(m, "APPENDS to a %s", AT(m), kind_name(a->k));
            CN_TRY(add_items(m, a, m->stack + base, m->sp - base));
            m->sp = base;
            break;
        case 's': /* SETITEM */
            if (m->sp < frame_base(m) + 3)
                return FAIL(m, "stack underflow (malformed pickle)%s", AT(m), "");
            CN_TRY(setitems(m, m->stack[m->sp - 3], m->sp - 2));
            break;
        case 'u': /* SETITEMS */
            CN_TRY(pop_mark(m, &base));
            if (base == 0 || base <= frame_base(m))
                return FAIL(m, "SETITEMS without a dict%s", AT(m), "");
            CN_TRY(setitems(m, m->stack[base - 1], base));
            break;
        case 'X': /* BINUNICODE */
            CN_TRY(need(m, 4));
            m->p += 4;
            CN_TRY(push_str(m, rdle(m->p - 4, 4)));
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
            CN_TRY(need(m, 1));
            m->p += 1;
            CN_TRY(push_str(m, m->p[-1]));
            break;
        case 0x8d: /* BINUNICODE8 */
            CN_TRY(need(m, 8));
            m->p += 8;
            CN_TRY(push_str(m, rdle(m->p - 8, 8)));
            break;
        case 'T': { /* BINSTRING: signed 32-bit length */
            CN_TRY(need(m, 4));
            int32_t len = (int32_t)(uint32_t)rdle(m->p, 4);
            m->p += 4;
            if (len < 0)
                return FAIL(m, "negative BINSTRING length%s", AT(m), "");
            CN_TRY(push_str(m, (uint64_t)len));
            break;
        }
        case 'J': /* BININT */
            CN_TRY(need(m, 4));
            CN_TRY(push_int(m, (int32_t)(uint32_t)rdle(m->p, 4)));
            m->p += 4;
            break;
        case 'K': /* BININT1 */
            CN_TRY(need(m, 1));
            CN_TRY(push_int(m, *m->p));
            m->p += 1;
            break;
        case 'M': /* BININT2 */
            CN_TRY(need(m, 2));
            CN_TRY(push_int(m, (int64_t)rdle(m->p, 2)));
            m->p += 2;
            break;
        case 0x8a: { /* LONG1: little-endian two's complement */
            CN_TRY(need(m, 1));
            int n = *m->p++;
            if (n > 8)
                return FAIL(m, "integer of %d bytes does not fit 64 bits", AT(m), n);
            CN_TRY(need(m, (size_t)n));
            uint64_t v = n ? rdle(m->p, n) : 0;
            if (n && n < 8 && (m->p[n - 1] & 0x80))
                v |= ~(uint64_t)0 << (8 * n);
            m->p += n;
            CN_TRY(push_int(m, (int64_t)v));
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            CN_TRY(need(m, 8));
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = (bits << 8) | m->p[i];
            m->p += 8;
            val *f = new_val(m, V_FLOAT);
            if (!f)
                return m->err->code;
            f->i = (int64_t)bits; /* kept as bits: state dicts never need the value */
            CN_TRY(push(m, f));
            break;
        }
        case 'N': /* NONE */
            CN_TRY(push(m, new_val(m, V_NONE)));
            break;
        case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
            val *v = new_val(m, V_BOOL);
            if (!v)
                return m->err->code;
            v->i = op == 0x88;
            CN_TRY(push(m, v));
            break;
        }
        case 'c': /* GLOBAL */
            CN_TRY(op_global(m));
            break;
        case 0x93: /* STACK_GLOBAL */
            CN_TRY(pop(m, &b));
            CN_TRY(pop(m, &a));
            if (a->k != V_STR || b->k != V_STR || a->slen > 255 || b->slen > 255)
                return FAIL(m, "STACK_GLOBAL needs two short strings%s", AT(m), "");
            CN_TRY(push_global(m, a->s, b->s));
            break;
        case 'R': /* REDUCE */
            CN_TRY(op_reduce(m));
            break;
        case 'b': /* BUILD: only the attribute dict of an OrderedDict (_metadata), which we drop */
            CN_TRY(pop(m, &b));
            CN_TRY(top(m, &a));
            if (a->k != V_DICT)
                return FAIL(m, "BUILD on a %s (only state-dict attributes are expected)", AT(m), kind_name(a->k));
            break;
        case 'Q': /* BINPERSID */
            CN_TRY(op_persid(m));
            break;
        case 'q': /* BINPUT */
            CN_TRY(need(m, 1));
            m->p += 1;
            CN_TRY(memo_put(m, m->p[-1]));
            break;
        case 'r': /* LONG_BINPUT */
            CN_TRY(need(m, 4));
            m->p += 4;
            CN_TRY(memo_put(m, rdle(m->p - 4, 4)));
            break;
        case 0x94: /* MEMOIZE */
            CN_TRY(memo_put(m, m->n_memo));
            break;
        case 'h': /* BINGET */
            CN_TRY(need(m, 1));
            m->p += 1;
            CN_TRY(memo_get(m, m->p[-1]));
            break;
        case 'j': /* LONG_BINGET */
            CN_TRY(need(m, 4));
            m->p += 4;
            CN_TRY(memo_get(m, rdle(m->p - 4, 4)));
            break;
        case '0': /* POP */
            CN_TRY(pop(m, &a));
            break;
        case '1': /* POP_MARK */
            CN_TRY(pop_mark(m, &base));
            m->sp = base;
            break;
        case '2': /* DUP */
            CN_TRY(top(m, &a));
            CN_TRY(push(m, a));
            break;
        default:
            m->p--;
            return cn_error_set(m->err, CANARY_EUNSUPPORTED,
                                "pickle (data.pkl) at byte %zu: opcode 0x%02x is not part of what torch.save writes "
                                "for a state dict; refusing it",
                                AT(m), (unsigned)op);
        }
    }
}

/* ---- from the unpickled object to the tensor table ---- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static cn_status extract(vm *m, val *root, cn_pkl_state_dict *out) {
    if (root->k != V_DICT)
        return cn_error_set(m->err, CANARY_EFORMAT, "checkpoint pickle holds a %s, not a state dict",
                            kind_name(root->k));
    size_t n = root->n / 2;
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    /* storage key -> index, open addressing */
    size_t hcap = 16;
    while (hcap < 2 * n + 2)
        hcap *= 2;
    const char **hkeys = calloc(hcap, sizeof *hkeys);
    int *hidx = calloc(hcap, sizeof *hidx);
    cn_status st = CANARY_OK;
    if (!out->tensors || !hkeys || !hidx) {
        st = cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        val *k = root->items[2 * i], *v = root->items[2 * i + 1];
        if (k->k != V_STR || strlen(k->s) != k->slen) {
            st = cn_error_set(m->err, CANARY_EFORMAT, "state dict entry %zu has a %s key, not a string", i,
                              kind_name(k->k));
            goto done;
        }
        if (v->k != V_TENSOR) {
            st = cn_error_set(m->err, CANARY_EFORMAT, "state dict entry '%.200s' is a %s, not a tensor", k->s,
                              kind_name(v->k));
            goto done;
        }
        cn_pkl_tensor *t = &out->tensors[out->n];
        const tensor_info *ti = v->t;
        t->name = strdup(k->s);
        t->storage_key = strdup(ti->storage->s);
        out->n++;
        if (!t->name || !t->storage_key) {
            st = cn_error_set(m->err, CANARY_ENOMEM, "out of memory reading the checkpoint pickle");
            goto done;
        }
        t->dtype = ti->storage->dtype;
        t->storage_numel = (uint64_t)ti->storage->i;
        t->offset = ti->offset;
        t->ndim = ti->ndim;
        memcpy(t->shape, ti->shape, sizeof t->shape);
        memcpy(t->stride, ti->stride, sizeof t->stride);
        size_t h = hash_str(t->storage_key) & (hcap - 1);
        while (hkeys[h] && strcmp(hkeys[h], t->storage_key) != 0)
            h = (h + 1) & (hcap - 1);
        if (!hkeys[h]) {
            hkeys[h] = t->storage_key;
            hidx[h] = out->n_storages++;
        }
        t->storage_index = hidx[h];
    }
done:
    free(hkeys);
    free(hidx);
    return st;
}

cn_status cn_pickle_state_dict(const uint8_t *data, size_t size, cn_pkl_state_dict *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    cn_error local;
    if (!err)
        err = &local;
    vm m = {.p = data, .end = data + size, .start = data, .err = err};
    val *root = NULL;
    cn_status st = run(&m, &root);
    if (st == CANARY_OK)
        st = extract(&m, root, out);
    for (size_t i = 0; i < m.n_all; i++) {
        free(m.all[i]->s);
        free(m.all[i]->items);
        free(m.all[i]->t);
        free(m.all[i]);
    }
    free(m.all);
    free(m.stack);
    free(m.marks);
    free(m.memo);
    if (st != CANARY_OK)
        cn_pkl_state_dict_free(out);
    return st;
}

void cn_pkl_state_dict_free(cn_pkl_state_dict *sd) {
    if (!sd)
        return;
    for (size_t i = 0; i < sd->n; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage_key);
    }
    free(sd->tensors);
    memset(sd, 0, sizeof *sd);
}

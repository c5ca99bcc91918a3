/* Corrupt, truncated and hostile inputs fail cleanly (under ASan) with messages that say what is
 * wrong: tar headers, zip offsets and sizes, pickles with other globals or absurd sizes, tensors
 * outside their storage, SentencePiece protobufs with wrong wire types. */
#include "test_util.h"

#include "nemo/archive.h"
#include "nemo/checkpoint.h"
#include "nemo/pickle.h"
#include "nemo/sp_model.h"
#include "nemo/tar.h"
#include "nemo/zip.h"

#define CONTAINS(msg, s) \
    do { if (!strstr((msg), (s))) fail_msg("message '%s' lacks '%s'", (msg), (s)); } while (0)

/* ---------------- tar ---------------- */

static void fix_checksum(uint8_t *h) {
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static void tar_header(uint8_t *h, const char *name, uint64_t size, char type) {
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static cn_status tar_parse(const uint8_t *d, size_t n, cn_error *err) {
    cn_tar t;
    cn_status st = cn_tar_parse(d, n, &t, err);
    if (!st)
        cn_tar_free(&t);
    return st;
}

static void test_tar_hostile(void **s) {
    static uint8_t buf[4096];
    cn_error err;
    /* a good one first */
    tar_header(buf, "./model_config.yaml", 5, '0');
    memcpy(buf + 512, "a: 1\n", 5);
    memset(buf + 1024, 0, 1024);
    assert_int_equal(tar_parse(buf, 2048, &err), CANARY_OK);
    /* a flipped byte breaks the checksum */
    buf[10] ^= 1;
    assert_int_equal(tar_parse(buf, 2048, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "checksum");
    /* a size past the end of the file */
    tar_header(buf, "./model_weights.ckpt", 1u << 30, '0');
    assert_int_equal(tar_parse(buf, 2048, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "declares 1073741824 bytes");
    /* base-256 size field near 2^63 */
    tar_header(buf, "x", 0, '0');
    memset(buf + 124, 0xff, 12);
    buf[124] = 0x80 | 0x3f;
    memset(buf + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += buf[i];
    snprintf((char *)buf + 148, 8, "%06o", sum);
    assert_int_not_equal(tar_parse(buf, 2048, &err), CANARY_OK);
    /* a non-octal size */
    tar_header(buf, "x", 0, '0');
    memcpy(buf + 124, "12345678x012", 12);
    memset(buf + 148, ' ', 8);
    sum = 0;
    for (int i = 0; i < 512; i++)
        sum += buf[i];
    snprintf((char *)buf + 148, 8, "%06o", sum);
    assert_int_equal(tar_parse(buf, 2048, &err), CANARY_EFORMAT);
    /* malformed PAX records */
    const char *bad_pax[] = {"99999 path=x\n", "5 path=abcdef\n", "12 pathxyzw\n", "abc\n", "13 size=12a4\n"};
    for (size_t i = 0; i < sizeof bad_pax / sizeof *bad_pax; i++) {
        size_t l = strlen(bad_pax[i]);
        tar_header(buf, "pax", l, 'x');
        memcpy(buf + 512, bad_pax[i], l);
        tar_header(buf + 1024, "y", 0, '0');
        memset(buf + 1536, 0, 1024);
        if (tar_parse(buf, 2560, &err) != CANARY_EFORMAT)
            fail_msg("PAX record '%s' accepted", bad_pax[i]);
    }
    /* a PAX size that points past the end */
    tar_header(buf, "pax", 20, 'x');
    memcpy(buf + 512, "20 size=999999999\n\n\n", 20);
    tar_header(buf + 1024, "y", 0, '0');
    assert_int_equal(tar_parse(buf, 2560, &err), CANARY_EFORMAT);
    /* a GNU long name longer than the limit */
    tar_header(buf, "././@LongLink", 100000, 'L');
    assert_int_equal(tar_parse(buf, 2048, &err), CANARY_EFORMAT);
    /* truncated inside a header; too small; nothing but the end marker */
    tar_header(buf, "a", 0, '0');
    assert_int_equal(tar_parse(buf, 700, &err), CANARY_EFORMAT);
    assert_int_equal(tar_parse(buf, 100, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "not a tar archive");
    memset(buf, 0, 1024);
    assert_int_equal(tar_parse(buf, 1024, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "no files");
    /* links and directories are listed nowhere, never followed */
    tar_header(buf, "./model_config.yaml", 0, '2');
    memcpy(buf + 157, "/etc/passwd", 11);
    fix_checksum(buf);
    tar_header(buf + 512, "./real", 0, '0');
    memset(buf + 1024, 0, 1024);
    cn_tar t;
    assert_int_equal(cn_tar_parse(buf, 2048, &t, &err), CANARY_OK);
    assert_int_equal(t.n, 1);
    assert_null(cn_tar_find(&t, "model_config.yaml"));
    cn_tar_free(&t);
    /* duplicate names: the later member wins, as extraction would leave it */
    tar_header(buf, "./model_config.yaml", 3, '0');
    memcpy(buf + 512, "old", 3);
    tar_header(buf + 1024, "model_config.yaml", 3, '0');
    memcpy(buf + 1536, "new", 3);
    memset(buf + 2048, 0, 1024);
    cn_archive a;
    memset(&a, 0, sizeof a);
    assert_int_equal(cn_archive_from_tar(buf, 3072, &a, &err), CANARY_OK);
    assert_int_equal(a.n, 2);
    assert_memory_equal(cn_archive_find(&a, "model_config.yaml")->data, "new", 3);
    cn_archive_close(&a);
}

/* ---------------- zip ---------------- */

static uint8_t *read_fixture(const char *name, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/nemo_fixtures/%s", cn_test_binary_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("missing %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Central-directory record of the entry whose name ends with `suffix`. */
static uint8_t *cd_entry(uint8_t *z, size_t n, const char *suffix) {
    uint8_t *eocd = z + n - 22;
    assert_int_equal(rd32(eocd), 0x06054b50);
    uint8_t *p = z + rd32(eocd + 16);
    for (unsigned k = 0; k < rd16(eocd + 10); k++) {
        size_t nl = rd16(p + 28), sl = strlen(suffix);
        if (nl >= sl && !memcmp(p + 46 + nl - sl, suffix, sl))
            return p;
        p += 46 + nl + rd16(p + 30) + rd16(p + 32);
    }
    fail_msg("no zip entry %s", suffix);
    return NULL;
}

static cn_status load_ckpt(const uint8_t *z, size_t n, cn_error *err) {
    cn_checkpoint ck;
    cn_status st = cn_checkpoint_load(z, n, "bad.ckpt", &ck, err);
    if (!st)
        cn_checkpoint_free(&ck);
    return st;
}

static void test_zip_hostile(void **s) {
    size_t n;
    uint8_t *orig = read_fixture("basic.ckpt", &n);
    uint8_t *z = malloc(n);
    cn_error err;
    memcpy(z, orig, n);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_OK);
    /* central directory offset outside the file */
    wr32(z + n - 22 + 16, 0xFFFFFFF0u - 1);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "outside");
    CONTAINS(err.msg, "bad.ckpt");
    /* local header offset outside the file */
    memcpy(z, orig, n);
    wr32(cd_entry(z, n, "data.pkl") + 42, (uint32_t)n + 1000);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "local header offset");
    /* entry data running past the end */
    memcpy(z, orig, n);
    uint8_t *e = cd_entry(z, n, "data/0");
    wr32(e + 20, 0x7FFFFFFF);
    wr32(e + 24, 0x7FFFFFFF);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "runs past the end");
    /* a storage smaller than its tensor */
    memcpy(z, orig, n);
    e = cd_entry(z, n, "data/0");
    wr32(e + 20, 4);
    wr32(e + 24, 4);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "holds only 4 bytes");
    /* a compressed data.pkl is refused, not misread */
    memcpy(z, orig, n);
    e = cd_entry(z, n, "data.pkl");
    e[10] = 8;
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EUNSUPPORTED);
    CONTAINS(err.msg, "compressed");
    /* implausible entry count */
    memcpy(z, orig, n);
    z[n - 22 + 10] = 0xfe;
    z[n - 22 + 11] = 0xff;
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    /* torch writes ZIP64 end records: a locator pointing outside the file */
    memcpy(z, orig, n);
    assert_int_equal(rd32(z + n - 22 - 20), 0x07064b50);
    wr32(z + n - 22 + 16, 0xFFFFFFFFu);
    wr32(z + n - 22 - 20 + 8, (uint32_t)n + 5);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "ZIP64 end record offset");
    /* saturated fields without a ZIP64 locator */
    memcpy(z, orig, n);
    wr32(z + n - 22 - 20, 0);
    wr32(z + n - 22 + 16, 0xFFFFFFFFu);
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "no ZIP64 locator");
    /* truncations at every 97th length never crash */
    for (size_t len = 0; len < n; len += 97)
        assert_int_not_equal(load_ckpt(orig, len, &err), CANARY_OK);
    /* a missing storage entry */
    memcpy(z, orig, n);
    e = cd_entry(z, n, "data/0");
    e[46 + rd16(e + 28) - 1] = 'X'; /* rename data/0 -> data/X */
    assert_int_equal(load_ckpt(z, n, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "missing");
    free(z);
    free(orig);
}

/* ---------------- pickle ---------------- */

typedef struct pk {
    uint8_t b[4096];
    size_t n;
} pk;

static void put(pk *p, const void *d, size_t n) {
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void op(pk *p, uint8_t c) { p->b[p->n++] = c; }
static void str(pk *p, const char *s) {
    uint32_t l = (uint32_t)strlen(s);
    op(p, 'X');
    uint8_t le[4] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24)};
    put(p, le, 4);
    put(p, s, l);
}
static void glob(pk *p, const char *mod, const char *name) {
    op(p, 'c');
    put(p, mod, strlen(mod));
    op(p, '\n');
    put(p, name, strlen(name));
    op(p, '\n');
}
static void intk(pk *p, int v) {
    op(p, 'J');
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(p, le, 4);
}

/* {name: tensor(storage "0" of `numel` floats, offset, shape (dim,), stride (st,))} */
static void state_dict(pk *p, int numel, int offset, int dim, int st, const char *storage_cls) {
    p->n = 0;
    op(p, 0x80);
    op(p, 2);
    glob(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    str(p, "w");
    glob(p, "torch._utils", "_rebuild_tensor_v2");
    op(p, '(');
    op(p, '(');
    str(p, "storage");
    glob(p, "torch", storage_cls);
    str(p, "0");
    str(p, "cpu");
    intk(p, numel);
    op(p, 't');
    op(p, 'Q');
    intk(p, offset);
    intk(p, dim);
    op(p, 0x85);
    intk(p, st);
    op(p, 0x85);
    op(p, 0x89);
    glob(p, "collections", "OrderedDict");
    op(p, ')');
    op(p, 'R');
    op(p, 't');
    op(p, 'R');
    op(p, 's');
    op(p, '.');
}

static cn_status unpickle(const pk *p, cn_pkl_state_dict *sd, cn_error *err) {
    return cn_pickle_state_dict(p->b, p->n, sd, err);
}

static void test_pickle_hostile(void **s) {
    pk p;
    cn_pkl_state_dict sd;
    cn_error err;
    state_dict(&p, 16, 2, 4, 3, "FloatStorage");
    assert_int_equal(unpickle(&p, &sd, &err), CANARY_OK);
    assert_int_equal(sd.n, 1);
    assert_string_equal(sd.tensors[0].name, "w");
    assert_int_equal(sd.tensors[0].offset, 2);
    assert_int_equal(sd.tensors[0].stride[0], 3);
    cn_pkl_state_dict_free(&sd);
    /* any other global is refused by name, before anything could run */
    const char *evil[][2] = {{"os", "system"}, {"builtins", "eval"}, {"torch", "load"}, {"torch._utils", "_rebuild_qtensor"},
                             {"collections", "defaultdict"}};
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        p.n = 0;
        op(&p, 0x80);
        op(&p, 2);
        glob(&p, evil[i][0], evil[i][1]);
        str(&p, "echo hi");
        op(&p, 0x85);
        op(&p, 'R');
        op(&p, '.');
        assert_int_equal(unpickle(&p, &sd, &err), CANARY_EUNSUPPORTED);
        CONTAINS(err.msg, evil[i][1]);
    }
    /* same through STACK_GLOBAL */
    p.n = 0;
    op(&p, 0x80);
    op(&p, 4);
    str(&p, "posix");
    str(&p, "system");
    op(&p, 0x93);
    op(&p, '.');
    assert_int_equal(unpickle(&p, &sd, &err), CANARY_EUNSUPPORTED);
    CONTAINS(err.msg, "posix.system");
    /* an unknown storage class */
    state_dict(&p, 16, 0, 4, 1, "QUInt8Storage");
    assert_int_equal(unpickle(&p, &sd, &err), CANARY_EUNSUPPORTED);
    /* unknown opcodes (INST 'i', OBJ 'o', EXT1 0x82) */
    const uint8_t bad_ops[] = {'i', 'o', 0x82, 'P', 'S', 'I'};
    for (size_t i = 0; i < sizeof bad_ops; i++) {
        uint8_t b[] = {0x80, 2, bad_ops[i], '.'};
        assert_int_equal(cn_pickle_state_dict(b, sizeof b, &sd, &err), CANARY_EUNSUPPORTED);
        CONTAINS(err.msg, "opcode");
    }
    /* huge declared string: refused before allocating */
    uint8_t huge[] = {0x80, 2, 'X', 0xff, 0xff, 0xff, 0x7f, 'a', '.'};
    assert_int_equal(cn_pickle_state_dict(huge, sizeof huge, &sd, &err), CANARY_ELIMIT);
    uint8_t huge8[] = {0x80, 2, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '.'};
    assert_int_equal(cn_pickle_state_dict(huge8, sizeof huge8, &sd, &err), CANARY_ELIMIT);
    /* memo index beyond the limit, memo reference to nothing */
    uint8_t memo[] = {0x80, 2, 'N', 'r', 0xff, 0xff, 0xff, 0xff, '.'};
    assert_int_equal(cn_pickle_state_dict(memo, sizeof memo, &sd, &err), CANARY_ELIMIT);
    uint8_t sparse[] = {0x80, 2, 'N', 'r', 0xe8, 0x03, 0, 0, '.'};
    assert_int_equal(cn_pickle_state_dict(sparse, sizeof sparse, &sd, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "memo index 1000");
    uint8_t get[] = {0x80, 2, 'h', 7, '.'};
    assert_int_equal(cn_pickle_state_dict(get, sizeof get, &sd, &err), CANARY_EFORMAT);
    /* deep nesting: a million MARKs and EMPTY_LISTs are bounded, not recursed */
    size_t deep_n = 2 + 2 * 1100000 + 1;
    uint8_t *deep = malloc(deep_n);
    deep[0] = 0x80;
    deep[1] = 2;
    for (size_t i = 0; i < 1100000; i++) {
        deep[2 + 2 * i] = ']';
        deep[3 + 2 * i] = '(';
    }
    deep[deep_n - 1] = '.';
    assert_int_equal(cn_pickle_state_dict(deep, deep_n, &sd, &err), CANARY_ELIMIT);
    free(deep);
    /* a list appended to itself (a cycle) is freed without recursion */
    uint8_t cyc[] = {0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'};
    assert_int_equal(cn_pickle_state_dict(cyc, sizeof cyc, &sd, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "not a state dict");
    /* stack underflow, missing STOP, truncated operands */
    uint8_t under[] = {0x80, 2, 'R', '.'};
    assert_int_equal(cn_pickle_state_dict(under, sizeof under, &sd, &err), CANARY_EFORMAT);
    uint8_t nostop[] = {0x80, 2, 'N'};
    assert_int_equal(cn_pickle_state_dict(nostop, sizeof nostop, &sd, &err), CANARY_EFORMAT);
    uint8_t trunc[] = {0x80, 2, 'J', 1, 2};
    assert_int_equal(cn_pickle_state_dict(trunc, sizeof trunc, &sd, &err), CANARY_EFORMAT);
    uint8_t proto9[] = {0x80, 9, '.'};
    assert_int_equal(cn_pickle_state_dict(proto9, sizeof proto9, &sd, &err), CANARY_EFORMAT);
    /* values that are not tensors, keys that are not strings */
    uint8_t notensor[] = {0x80, 2, '}', 'X', 1, 0, 0, 0, 'k', 'K', 5, 's', '.'};
    assert_int_equal(cn_pickle_state_dict(notensor, sizeof notensor, &sd, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "'k' is a int");
    /* a malformed persistent id */
    uint8_t pid[] = {0x80, 2, 'K', 1, 0x85, 'Q', '.'};
    assert_int_equal(cn_pickle_state_dict(pid, sizeof pid, &sd, &err), CANARY_EFORMAT);
    /* for every prefix of a valid pickle: a clean error */
    state_dict(&p, 16, 2, 4, 3, "FloatStorage");
    for (size_t len = 0; len < p.n; len++)
        assert_int_not_equal(cn_pickle_state_dict(p.b, len, &sd, &err), CANARY_OK);
}

/* A stored zip of two entries, as torch.save lays it out (no alignment needed here). */
static size_t make_zip(uint8_t *out, const pk *pkl, const uint8_t *storage, size_t storage_n) {
    const char *names[2] = {"archive/data.pkl", "archive/data/0"};
    const uint8_t *data[2] = {pkl->b, storage};
    size_t sizes[2] = {pkl->n, storage_n}, offs[2], n = 0;
    for (int i = 0; i < 2; i++) {
        offs[i] = n;
        size_t nl = strlen(names[i]);
        memset(out + n, 0, 30);
        wr32(out + n, 0x04034b50);
        wr32(out + n + 18, (uint32_t)sizes[i]);
        wr32(out + n + 22, (uint32_t)sizes[i]);
        out[n + 26] = (uint8_t)nl;
        memcpy(out + n + 30, names[i], nl);
        memcpy(out + n + 30 + nl, data[i], sizes[i]);
        n += 30 + nl + sizes[i];
    }
    size_t cd = n;
    for (int i = 0; i < 2; i++) {
        size_t nl = strlen(names[i]);
        memset(out + n, 0, 46);
        wr32(out + n, 0x02014b50);
        wr32(out + n + 20, (uint32_t)sizes[i]);
        wr32(out + n + 24, (uint32_t)sizes[i]);
        out[n + 28] = (uint8_t)nl;
        wr32(out + n + 42, (uint32_t)offs[i]);
        memcpy(out + n + 46, names[i], nl);
        n += 46 + nl;
    }
    memset(out + n, 0, 22);
    wr32(out + n, 0x06054b50);
    out[n + 8] = out[n + 10] = 2;
    wr32(out + n + 12, (uint32_t)(n - cd));
    wr32(out + n + 16, (uint32_t)cd);
    return n + 22;
}

/* Tensors whose offsets/strides reach outside their storage are refused by the view builder. */
static void test_tensor_bounds(void **s) {
    static uint8_t z[8192];
    float storage[16];
    for (int i = 0; i < 16; i++)
        storage[i] = (float)i;
    pk p;
    cn_error err;
    cn_checkpoint ck;
    /* in bounds: elements 12..15 */
    state_dict(&p, 16, 12, 4, 1, "FloatStorage");
    size_t n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_OK);
    float last;
    memcpy(&last, (const uint8_t *)ck.tensors[0].data + 12, 4); /* this hand-made zip is unaligned */
    assert_true(last == 15.0f);
    cn_checkpoint_free(&ck);
    /* one element past the end */
    state_dict(&p, 16, 13, 4, 1, "FloatStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "reaches element 16");
    CONTAINS(err.msg, "'w'");
    /* a stride that walks out */
    state_dict(&p, 16, 0, 4, 6, "FloatStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_EFORMAT);
    /* negative stride and offset */
    state_dict(&p, 16, 8, 4, -1, "FloatStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "negative");
    state_dict(&p, 16, -1, 4, 1, "FloatStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_EFORMAT);
    /* a storage that declares more elements than its entry holds */
    state_dict(&p, 17, 0, 4, 1, "FloatStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "declares 17 f32 elements but holds only 64 bytes");
    /* the same bytes as f64: 8 elements */
    state_dict(&p, 8, 0, 8, 1, "DoubleStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_OK);
    assert_int_equal(ck.tensors[0].dtype, CN_DTYPE_F64);
    assert_int_equal(ck.tensors[0].nbytes, 64);
    cn_checkpoint_free(&ck);
    /* a huge shape whose element count overflows */
    state_dict(&p, 16, 0, 0x7fffffff, 0x7fffffff, "FloatStorage");
    n = make_zip(z, &p, (const uint8_t *)storage, sizeof storage);
    assert_int_equal(cn_checkpoint_load(z, n, "t.ckpt", &ck, &err), CANARY_EFORMAT);
}

/* ---------------- SentencePiece protobuf ---------------- */

static cn_status spm(const uint8_t *b, size_t n, cn_error *err) {
    cn_spm m;
    cn_status st = cn_spm_parse(b, n, "bad.model", &m, err);
    if (!st)
        cn_spm_free(&m);
    return st;
}

static void test_protobuf_hostile(void **s) {
    cn_error err;
    /* a minimal valid model: pieces {"<unk>", type UNKNOWN}, {"a", score 0} */
    uint8_t ok[] = {0x0a, 9, 0x0a, 5, '<', 'u', 'n', 'k', '>', 0x18, 2, 0x0a, 3, 0x0a, 1, 'a'};
    assert_int_equal(spm(ok, sizeof ok, &err), CANARY_OK);
    /* pieces (field 1) sent as a varint */
    uint8_t wt1[] = {0x08, 5};
    assert_int_equal(spm(wt1, sizeof wt1, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "wire type");
    /* piece text sent as fixed32 */
    uint8_t wt2[] = {0x0a, 5, 0x0d, 1, 2, 3, 4};
    assert_int_equal(spm(wt2, sizeof wt2, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "pieces.piece");
    /* score sent as a varint */
    uint8_t wt3[] = {0x0a, 5, 0x0a, 1, 'a', 0x10, 1};
    assert_int_equal(spm(wt3, sizeof wt3, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "pieces.score");
    /* trainer_spec.byte_fallback as a string */
    uint8_t wt4[] = {0x12, 4, 0x9a, 0x02, 1, 'x'};
    assert_int_equal(spm(wt4, sizeof wt4, &err), CANARY_EFORMAT);
    /* groups, field 0, a 11-byte varint, a length past the end */
    uint8_t grp[] = {0x0b, 0x0c};
    assert_int_equal(spm(grp, sizeof grp, &err), CANARY_EFORMAT);
    uint8_t f0[] = {0x02, 0};
    assert_int_equal(spm(f0, sizeof f0, &err), CANARY_EFORMAT);
    uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(spm(longv, sizeof longv, &err), CANARY_EFORMAT);
    uint8_t past[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'};
    assert_int_equal(spm(past, sizeof past, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "past");
    /* an unknown piece type, a BYTE piece that is not <0xNN>, no <unk>, nothing at all */
    uint8_t badtype[] = {0x0a, 5, 0x0a, 1, 'a', 0x18, 9};
    assert_int_equal(spm(badtype, sizeof badtype, &err), CANARY_EFORMAT);
    uint8_t badbyte[] = {0x0a, 9, 0x0a, 5, '<', '0', 'x', 'Z', '>', 0x18, 6};
    assert_int_equal(spm(badbyte, sizeof badbyte, &err), CANARY_EFORMAT);
    uint8_t nounk[] = {0x0a, 3, 0x0a, 1, 'a'};
    assert_int_equal(spm(nounk, sizeof nounk, &err), CANARY_EFORMAT);
    CONTAINS(err.msg, "unk_id");
    assert_int_equal(spm(ok, 0, &err), CANARY_EFORMAT);
    /* every truncation of the valid model: a clean result (a cut at a message boundary is valid) */
    for (size_t len = 1; len < sizeof ok; len++)
        spm(ok, len, &err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tar_hostile),
        cmocka_unit_test(test_zip_hostile),
        cmocka_unit_test(test_pickle_hostile),
        cmocka_unit_test(test_tensor_bounds),
        cmocka_unit_test(test_protobuf_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

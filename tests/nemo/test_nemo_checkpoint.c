/* The .nemo container and torch.save checkpoint readers against files written by real torch.save
 * (tests/nemo/make_fixtures.py): every tensor's name, dtype, shape, storage sharing and bytes. */
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#include "nemo/archive.h"
#include "nemo/checkpoint.h"

typedef struct expected {
    char name[256], dtype[8];
    int group, ndim;
    long long shape[CN_MAX_DIMS];
} expected;

static char fixture_dir[1024];

static const char *fx(const char *name) {
    static char path[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", fixture_dir, name);
    return path[k];
}

static int setup(void **state) {
    snprintf(fixture_dir, sizeof fixture_dir, "%s/nemo_fixtures", cn_test_binary_dir());
    char done[1200];
    snprintf(done, sizeof done, "%s/DONE", fixture_dir);
    if (access(done, R_OK) != 0) {
        fprintf(stderr, "fixtures missing in %s (run the nemo_fixtures ctest fixture)\n", fixture_dir);
        return -1;
    }
    return 0;
}

static size_t read_expect(const char *cs, expected *e, size_t cap, unsigned char **bin, size_t *bin_len) {
    char p[64];
    snprintf(p, sizeof p, "%s.expect", cs);
    FILE *f = fopen(fx(p), "r");
    assert_non_null(f);
    size_t n = 0;
    char line[2048];
    while (fgets(line, sizeof line, f) && n < cap) {
        expected *x = &e[n++];
        int off = 0;
        assert_int_equal(sscanf(line, "%255s %7s %d %d%n", x->name, x->dtype, &x->group, &x->ndim, &off), 4);
        for (int d = 0; d < x->ndim; d++) {
            int used = 0;
            assert_int_equal(sscanf(line + off, "%lld%n", &x->shape[d], &used), 1);
            off += used;
        }
    }
    fclose(f);
    snprintf(p, sizeof p, "%s.bin", cs);
    f = fopen(fx(p), "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *bin_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *bin = malloc(*bin_len + 1);
    assert_int_equal(fread(*bin, 1, *bin_len, f), *bin_len);
    fclose(f);
    return n;
}

/* Gathers a (possibly strided) tensor into row-major order. */
static void gather(const cn_tensor_view *t, unsigned char *dst) {
    size_t es = cn_dtype_size(t->dtype);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= t->shape[d];
    int64_t idx[CN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < numel; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * t->stride[d];
        memcpy(dst + (size_t)i * es, (const unsigned char *)t->data + off * (int64_t)es, es);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

static void check_against(const cn_checkpoint *ck, const char *cs) {
    expected e[64];
    unsigned char *bin;
    size_t bin_len;
    size_t n = read_expect(cs, e, 64, &bin, &bin_len);
    assert_int_equal(ck->n, n);
    int group_to_storage[64], storage_to_group[64];
    memset(group_to_storage, -1, sizeof group_to_storage);
    memset(storage_to_group, -1, sizeof storage_to_group);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const cn_tensor_view *t = &ck->tensors[i];
        assert_string_equal(t->name, e[i].name);
        assert_string_equal(cn_dtype_name(t->dtype), e[i].dtype);
        assert_int_equal(t->ndim, e[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], e[i].shape[d]);
            numel *= t->shape[d];
        }
        assert_int_equal(t->nbytes, (size_t)numel * cn_dtype_size(t->dtype));
        /* same storage in torch <=> same storage_id here */
        assert_true(t->storage_id >= 0 && t->storage_id < 64);
        if (group_to_storage[e[i].group] < 0) {
            assert_int_equal(storage_to_group[t->storage_id], -1);
            group_to_storage[e[i].group] = t->storage_id;
            storage_to_group[t->storage_id] = e[i].group;
        }
        assert_int_equal(group_to_storage[e[i].group], t->storage_id);
        assert_true(pos + t->nbytes <= bin_len);
        unsigned char *got = malloc(t->nbytes + 1);
        gather(t, got);
        assert_memory_equal(got, bin + pos, t->nbytes);
        free(got);
        pos += t->nbytes;
        assert_ptr_equal(cn_checkpoint_find(ck, t->name), t);
    }
    assert_int_equal(pos, bin_len);
    assert_null(cn_checkpoint_find(ck, "no.such.tensor"));
    free(bin);
}

static void check_ckpt_file(const char *file, const char *cs) {
    cn_mapped_file mf;
    cn_error err;
    assert_int_equal(cn_map_file(fx(file), &mf, &err), CANARY_OK);
    cn_checkpoint ck;
    cn_status st = cn_checkpoint_load(mf.data, mf.size, file, &ck, &err);
    if (st)
        fail_msg("%s", err.msg);
    check_against(&ck, cs);
    cn_checkpoint_free(&ck);
    cn_unmap_file(&mf);
}

static void check_nemo_archive(const char *file, const char *cache_dir) {
    cn_archive a;
    cn_error err;
    cn_status st = cn_archive_open(fx(file), cache_dir, &a, &err);
    if (st)
        fail_msg("%s", err.msg);
    const cn_archive_member *w = cn_archive_find(&a, "model_weights.ckpt");
    assert_non_null(w);
    assert_non_null(cn_archive_find(&a, "./model_config.yaml"));
    const cn_archive_member *tok;
    assert_int_equal(cn_archive_resolve(&a, "nemo:0123456789abcdef0123456789abcdef_tokenizer.model", &tok, &err),
                     CANARY_OK);
    assert_int_equal(tok->size, strlen("not used here"));
    assert_memory_equal(tok->data, "not used here", tok->size);
    assert_int_equal(cn_archive_resolve(&a, "nemo:ffffffffffffffffffffffffffffffff_tokenizer.model", &tok, &err),
                     CANARY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "ffffffffffffffffffffffffffffffff_tokenizer.model"));
    cn_checkpoint ck;
    st = cn_checkpoint_load(w->data, w->size, "model_weights.ckpt", &ck, &err);
    if (st)
        fail_msg("%s", err.msg);
    check_against(&ck, "basic");
    /* in place: storages start 64-byte aligned in the file (tar data is 512-aligned, torch pads
     * zip entries to 64), so tensors with storage offset 0 can be used directly */
    for (size_t i = 0; i < ck.n; i++) {
        const cn_tensor_view *t = &ck.tensors[i];
        if (a.n_maps == 1)
            assert_true((const uint8_t *)t->data >= a.maps[0].data &&
                        (const uint8_t *)t->data + t->nbytes <= a.maps[0].data + a.maps[0].size);
        assert_int_equal(((uintptr_t)t->data) % 64, 0);
    }
    cn_checkpoint_free(&ck);
    cn_archive_close(&a);
}

static void test_basic_ckpt(void **s) { check_ckpt_file("basic.ckpt", "basic"); }
static void test_views_shared_storage(void **s) { check_ckpt_file("views.ckpt", "views"); }
static void test_other_prefix(void **s) { check_ckpt_file("weights_v7.pt", "weights_v7"); }
static void test_zip64(void **s) { check_ckpt_file("basic_zip64.ckpt", "basic"); }
static void test_protocol4(void **s) { check_ckpt_file("proto4.ckpt", "proto4"); }

static void test_tied_and_scalar(void **s) {
    cn_mapped_file mf;
    cn_error err;
    assert_int_equal(cn_map_file(fx("basic.ckpt"), &mf, &err), CANARY_OK);
    cn_checkpoint ck;
    assert_int_equal(cn_checkpoint_load(mf.data, mf.size, "basic.ckpt", &ck, &err), CANARY_OK);
    const cn_tensor_view *emb = cn_checkpoint_find(&ck, "emb.weight"), *head = cn_checkpoint_find(&ck, "head.weight");
    assert_non_null(emb);
    assert_non_null(head);
    assert_int_equal(emb->storage_id, head->storage_id);
    assert_ptr_equal(emb->data, head->data);
    const cn_tensor_view *nbt = cn_checkpoint_find(&ck, "bn.num_batches_tracked");
    assert_non_null(nbt);
    assert_int_equal(nbt->ndim, 0);
    assert_int_equal(nbt->dtype, CN_DTYPE_I64);
    int64_t v;
    memcpy(&v, nbt->data, 8);
    assert_int_equal(v, 7);
    const cn_tensor_view *sc = cn_checkpoint_find(&ck, "extra.scalar_f32");
    float f;
    memcpy(&f, sc->data, 4);
    assert_true(f == 3.5f);
    assert_true(cn_checkpoint_find(&ck, "extra.empty")->nbytes == 0);
    assert_true(cn_checkpoint_find(&ck, "conv.weight")->contiguous);
    cn_checkpoint_free(&ck);
    cn_unmap_file(&mf);

    assert_int_equal(cn_map_file(fx("views.ckpt"), &mf, &err), CANARY_OK);
    assert_int_equal(cn_checkpoint_load(mf.data, mf.size, "views.ckpt", &ck, &err), CANARY_OK);
    assert_false(cn_checkpoint_find(&ck, "transposed")->contiguous);
    assert_true(cn_checkpoint_find(&ck, "rows_2_to_5")->contiguous);
    assert_ptr_equal(cn_checkpoint_find(&ck, "rows_2_to_5")->data,
                     (const float *)cn_checkpoint_find(&ck, "base")->data + 8);
    assert_int_equal(ck.n_storages, 1);
    cn_checkpoint_free(&ck);
    cn_unmap_file(&mf);
}

static void test_nemo_tar(void **s) { check_nemo_archive("basic.nemo", NULL); }
static void test_nemo_gnu_tar(void **s) { check_nemo_archive("basic_gnu.nemo", NULL); }
static void test_nemo_dir(void **s) { check_nemo_archive("basic_dir", NULL); }

static void test_nemo_gzip_cached(void **s) {
    char cache[1200];
    snprintf(cache, sizeof cache, "%s/gzcache", cn_test_tmpdir());
    check_nemo_archive("basic.nemo.gz", cache);
    /* unpacked once: the cache file exists and a second open reuses it */
    cn_archive a;
    cn_error err;
    assert_int_equal(cn_archive_open(fx("basic.nemo.gz"), cache, &a, &err), CANARY_OK);
    assert_non_null(a.unpacked_path);
    struct stat sb1, sb2;
    assert_int_equal(stat(a.unpacked_path, &sb1), 0);
    cn_archive_close(&a);
    check_nemo_archive("basic.nemo.gz", cache);
    assert_int_equal(cn_archive_open(fx("basic.nemo.gz"), cache, &a, &err), CANARY_OK);
    assert_int_equal(stat(a.unpacked_path, &sb2), 0);
    assert_int_equal(sb1.st_ino, sb2.st_ino);
    cn_archive_close(&a);
}

static void test_long_names(void **s) {
    const char *files[] = {"longname_pax.nemo", "longname_gnu.nemo"};
    char want[256];
    memset(want, 'x', 150);
    want[150] = 0;
    char name[300];
    snprintf(name, sizeof name, "sub/%s_vocab.txt", want);
    for (int i = 0; i < 2; i++) {
        cn_archive a;
        cn_error err;
        cn_status st = cn_archive_open(fx(files[i]), NULL, &a, &err);
        if (st)
            fail_msg("%s: %s", files[i], err.msg);
        const cn_archive_member *m = cn_archive_find(&a, name);
        assert_non_null(m);
        assert_int_equal(m->size, 16);
        assert_memory_equal(m->data, "long name member", 16);
        const cn_archive_member *r;
        assert_int_equal(cn_archive_resolve(&a, strrchr(name, '/') + 1, &r, &err), CANARY_OK);
        assert_ptr_equal(r, m);
        cn_archive_close(&a);
    }
}

static void test_refuses_other_globals(void **s) {
    cn_mapped_file mf;
    cn_error err;
    assert_int_equal(cn_map_file(fx("evil.ckpt"), &mf, &err), CANARY_OK);
    cn_checkpoint ck;
    assert_int_equal(cn_checkpoint_load(mf.data, mf.size, "evil.ckpt", &ck, &err), CANARY_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "system"));
    assert_non_null(strstr(err.msg, "evil.ckpt"));
    assert_int_not_equal(access(fx("PWNED"), F_OK), 0);
    cn_unmap_file(&mf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_ckpt),
        cmocka_unit_test(test_views_shared_storage),
        cmocka_unit_test(test_other_prefix),
        cmocka_unit_test(test_zip64),
        cmocka_unit_test(test_protocol4),
        cmocka_unit_test(test_tied_and_scalar),
        cmocka_unit_test(test_nemo_tar),
        cmocka_unit_test(test_nemo_gnu_tar),
        cmocka_unit_test(test_nemo_dir),
        cmocka_unit_test(test_nemo_gzip_cached),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_refuses_other_globals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

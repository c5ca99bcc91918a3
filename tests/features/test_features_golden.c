/* Feature parity with the reference goldens (fixture `goldens`): for every
 * golden/<layout>/<case>/manifest.json, the features of its "input" (or "input_<i>" for a batch)
 * computed with the manifest's semantics and the model's own filterbank and window must be within
 * 1e-4 (max abs) of its "features" ("features_<i>"). Skipped when no goldens were generated. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "features/features.h"
#include "test_util.h"

#define TOL 1e-4

static float *read_f32(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long bytes = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    float *x = malloc((size_t)bytes + 4);
    if (fread(x, 1, (size_t)bytes, fp) != (size_t)bytes) {
        fclose(fp);
        free(x);
        return NULL;
    }
    fclose(fp);
    *n = (size_t)bytes / sizeof(float);
    return x;
}

/* The model's featurizer buffers via the reference loader; false when unavailable. */
static bool model_buffers(const char *layout, float **fb, float **win) {
    char model[1024], fbp[1024], winp[1024], cmd[4096];
    snprintf(model, sizeof model, "%s/models/%s-tiny.nemo", cn_test_binary_dir(), layout);
    struct stat sb;
    if (stat(model, &sb) != 0)
        return false;
    snprintf(fbp, sizeof fbp, "%s/%s.fb.f32", cn_test_tmpdir(), layout);
    snprintf(winp, sizeof winp, "%s/%s.window.f32", cn_test_tmpdir(), layout);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/features/dump_featurizer.py' '%s' '%s' '%s'",
             cn_test_source_dir(), model, fbp, winp);
    if (system(cmd) != 0)
        fail_msg("could not read the featurizer buffers of %s", model);
    size_t nfb, nwin;
    *fb = read_f32(fbp, &nfb);
    *win = read_f32(winp, &nwin);
    assert_non_null(*fb);
    assert_non_null(*win);
    assert_int_equal(nfb, 128 * 257);
    assert_int_equal(nwin, 400);
    return true;
}

static float *load_array(const char *dir, json_t *arrays, const char *name, size_t *n, json_t **shape) {
    json_t *a = json_object_get(arrays, name);
    if (!a)
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(a, "file")));
    float *x = read_f32(path, n);
    if (!x)
        fail_msg("golden array %s is missing", path);
    *shape = json_object_get(a, "shape");
    return x;
}

/* Returns the number of cases checked; counts failures. */
static int check_case(const char *dir, const char *layout, const char *cs, int *failures) {
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *man = json_load_file(path, 0, &jerr);
    if (!man)
        fail_msg("%s: %s", path, jerr.text);
    json_t *arrays = json_object_get(man, "arrays");
    cn_feat_semantics sem;
    cn_error err = {0};
    assert_int_equal(cn_feat_semantics_parse(json_string_value(json_object_get(man, "semantics")), &sem, &err),
                     CANARY_OK);
    int batch = json_object_get(man, "batch_size") ? (int)json_integer_value(json_object_get(man, "batch_size")) : 1;
    if (batch < 1 || batch > 64)
        fail_msg("%s: batch_size %d", path, batch);

    cn_features_config cfg;
    cn_features_config_canary(&cfg, sem);
    float *fb = NULL, *win = NULL;
    bool given = model_buffers(layout, &fb, &win);
    cfg.filterbank = fb;
    cfg.window_values = win;
    cn_features *f;
    assert_int_equal(cn_features_create(&cfg, &f, &err), CANARY_OK);

    float *in[64] = {0}, *ref[64] = {0};
    int64_t lens[64], valid[64], lmax = 0;
    int64_t ref_cols = -1;
    for (int i = 0; i < batch; i++) {
        char name[64];
        size_t n;
        json_t *shape = NULL;
        snprintf(name, sizeof name, batch > 1 ? "input_%d" : "input", i);
        in[i] = load_array(dir, arrays, name, &n, &shape);
        if (!in[i])
            fail_msg("%s: no array %s", path, name);
        lens[i] = (int64_t)n;
        if (lens[i] > lmax)
            lmax = lens[i];
        snprintf(name, sizeof name, batch > 1 ? "features_%d" : "features", i);
        ref[i] = load_array(dir, arrays, name, &n, &shape);
        if (!ref[i])
            fail_msg("%s: no array %s", path, name);
        assert_int_equal(json_integer_value(json_array_get(shape, 0)), 128);
        ref_cols = json_integer_value(json_array_get(shape, 1));
    }
    int64_t cols = cn_features_columns(f, lmax);
    assert_int_equal(cols, ref_cols);
    float *out = malloc((size_t)batch * 128 * (size_t)cols * sizeof(float));
    assert_int_equal(cn_features_compute_batch(f, (const float *const *)in, lens, batch, out, valid, &err),
                     CANARY_OK);
    for (int i = 0; i < batch; i++) {
        json_t *len = batch > 1 ? json_array_get(json_object_get(man, "lengths"), (size_t)i)
                                : json_object_get(man, "lengths");
        if (len && json_object_get(len, "features"))
            assert_int_equal(valid[i], json_integer_value(json_object_get(len, "features")));
        double maxdiff = 0;
        const float *o = out + (size_t)i * 128 * (size_t)cols;
        for (size_t k = 0; k < (size_t)128 * (size_t)cols; k++)
            maxdiff = fmax(maxdiff, fabs((double)o[k] - ref[i][k]) + (isnan(o[k]) ? 1 : 0));
        print_message("%s/%s[%d] %s (%s fb/window): T=%lld valid=%lld max|diff|=%.3g\n", layout, cs, i,
                      cn_feat_semantics_name(sem), given ? "model" : "computed", (long long)cols,
                      (long long)valid[i], maxdiff);
        if (!(maxdiff <= TOL))
            (*failures)++;
        free(in[i]);
        free(ref[i]);
    }
    free(out);
    free(fb);
    free(win);
    cn_features_destroy(f);
    json_decref(man);
    return batch;
}

static void test_goldens(void **state) {
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s/golden", cn_test_binary_dir());
    DIR *layouts = opendir(root);
    if (!layouts) {
        print_message("no goldens under %s (fixture `goldens` not built): skipped\n", root);
        skip();
    }
    int checked = 0, failures = 0;
    struct dirent *le;
    while ((le = readdir(layouts))) {
        if (le->d_name[0] == '.')
            continue;
        char ldir[1024];
        snprintf(ldir, sizeof ldir, "%s/%s", root, le->d_name);
        DIR *cases = opendir(ldir);
        if (!cases)
            continue;
        struct dirent *ce;
        while ((ce = readdir(cases))) {
            char cdir[1280], man[1400];
            snprintf(cdir, sizeof cdir, "%s/%s", ldir, ce->d_name);
            snprintf(man, sizeof man, "%s/manifest.json", cdir);
            struct stat sb;
            if (ce->d_name[0] == '.' || stat(man, &sb) != 0)
                continue;
            checked += check_case(cdir, le->d_name, ce->d_name, &failures);
        }
        closedir(cases);
    }
    closedir(layouts);
    print_message("%d golden inputs checked, %d beyond %.0e\n", checked, failures, TOL);
    if (checked == 0)
        skip();
    assert_int_equal(failures, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_goldens)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Backend selection without a GPU: cn_cuda_backend_open explains why there is no CUDA backend
 * (here: a plugin without one, the hw tests' CPU stand-in), and the CPU backend's side of the
 * interface additions (f16 refused with a reason, constant() is the identity, sync, copy_2d). */
#include "nn/backend.h"
#include "nn/cuda_plugin.h"
#include "test_util.h"

static void test_plugin_without_backend(void **state) {
    (void)state;
    char path[1024];
    const char *bin = getenv("CANARY_BINARY_DIR");
    snprintf(path, sizeof path, "%s/tests/hw/libfake_cuda_plugin.so", bin ? bin : ".");
    setenv("CANARY_CUDA_PLUGIN", path, 1);
    cn_backend *be = NULL;
    cn_error err = {0};
    assert_int_equal(cn_cuda_backend_open(0, CN_PREC_BF16, &be, &err), CANARY_EDEVICE);
    assert_null(be);
    assert_non_null(strstr(err.msg, "libfake_cuda_plugin.so has no backend (cn_cuda_backend_create)"));
}

/* engine.device values (the plugin here is the stand-in without a backend, set by the test above) */
static void test_backend_for_device(void **state) {
    (void)state;
    cn_backend *be = NULL;
    cn_error err = {0};
    char why[512];
    assert_int_equal(cn_backend_open("cpu", CN_PREC_F32, &be, why, sizeof why, &err), CANARY_OK);
    assert_string_equal(be->ops->name, "cpu");
    assert_string_equal(why, "");
    cn_backend_destroy(be);
    be = NULL;
    assert_int_equal(cn_backend_open("auto", CN_PREC_BF16, &be, why, sizeof why, &err), CANARY_OK);
    assert_string_equal(be->ops->name, "cpu");
    assert_non_null(strstr(why, "has no backend"));
    cn_backend_destroy(be);
    be = NULL;
    assert_int_equal(cn_backend_open("cuda:1,2", CN_PREC_BF16, &be, why, sizeof why, &err), CANARY_EDEVICE);
    assert_null(be);
    assert_non_null(strstr(err.msg, "engine.device 'cuda:1,2': CUDA plugin "));
    assert_int_equal(cn_backend_open("cuda:x", CN_PREC_BF16, &be, why, sizeof why, &err), CANARY_EINVAL);
    assert_string_equal(err.msg, "engine.device 'cuda:x': expected cuda:N with N a GPU index");
    assert_int_equal(cn_backend_open("gpu", CN_PREC_BF16, &be, why, sizeof why, &err), CANARY_EINVAL);
    assert_string_equal(err.msg, "engine.device 'gpu': expected auto, cpu, cuda or cuda:N");
}

static void test_cpu_interface_additions(void **state) {
    (void)state;
    cn_backend *be = NULL;
    cn_error err = {0};
    assert_int_equal(cn_cpu_backend_create(&be, &err), CANARY_OK);
    const cn_backend_ops *o = be->ops;
    float w[6] = {1, 2, 3, 4, 5, 6};
    cn_linear *l = NULL;
    assert_int_equal(o->linear_create(be, w, NULL, 2, 3, CN_PREC_F16, false, &l, &err), CANARY_EUNSUPPORTED);
    assert_string_equal(err.msg, "precision f16 needs the CUDA backend; the CPU backend supports f32 and bf16");
    /* TF32 is exact fp32 on the CPU */
    assert_int_equal(o->linear_create(be, w, NULL, 2, 3, CN_PREC_TF32, false, &l, &err), CANARY_OK);
    cn_exec *ex = NULL;
    assert_int_equal(o->exec_create(be, 1, &ex, &err), CANARY_OK);
    float x[3] = {1, -1, 0.5f}, y[2];
    o->linear(ex, l, x, 3, 1, y, 2, CN_ACT_NONE, false, 0);
    assert_true(y[0] == 1 - 2 + 1.5f && y[1] == 4 - 5 + 3.0f);
    const float *k = NULL;
    assert_int_equal(o->constant(be, w, 6, &k, &err), CANARY_OK);
    assert_ptr_equal(k, w);
    float dst[3 * 4] = {0};
    o->copy_2d(ex, dst, 4 * sizeof(float), w, 2 * sizeof(float), 2 * sizeof(float), 3);
    const float want[12] = {1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0};
    assert_memory_equal(dst, want, sizeof want);
    assert_int_equal(o->sync(ex, &err), CANARY_OK);
    o->exec_destroy(ex);
    o->linear_destroy(be, l);
    cn_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_without_backend),
        cmocka_unit_test(test_backend_for_device),
        cmocka_unit_test(test_cpu_interface_additions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The CUDA profile's bounds and report paths on a plugin (ctest cuda_emu_profile_keys, on the CPU
 * emulation): 400 layer_norms of distinct widths after an alloc and an upload fill the key table
 * (384 keys), so the last 18 land in "layer_norm other" and the closing sync in "sync other";
 * layer_norms run while cn_cuda_profile_pause(1) holds are not recorded;
 * cn_cuda_exec_profile_write gives the report that exec destroy then appends to the file named
 * by CANARY_CUDA_PROFILE, byte for byte.
 *
 *   profile_keys_check PLUGIN.so REPORT.jsonl        exit 0 pass, 1 fail */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/backend.h"
#include "nn/cuda_plugin_abi.h"

#define D 8
#define N_NORMS 400
#define KEYS 384 /* profile.cu's PROF_KEYS */

static int g_fail;

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL: %s\n", what);
        g_fail = 1;
    }
}

static int count_lines_with(const char *text, const char *needle) {
    int n = 0;
    for (const char *l = text; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        const char *hit = strstr(l, needle);
        if (hit && hit < l + len)
            n++;
        l = end ? end + 1 : NULL;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: profile_keys_check PLUGIN.so REPORT.jsonl\n");
        return 2;
    }
    const char *report_path = argv[2];
    unlink(report_path);
    setenv("CANARY_CUDA_PROFILE", report_path, 1); /* read at exec creation and destroy */
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("FAIL: %s\n", dlerror());
        return 1;
    }
    cn_cuda_backend_create_fn create = (cn_cuda_backend_create_fn)dlsym(h, "cn_cuda_backend_create");
    void (*pause_fn)(int) = (void (*)(int))dlsym(h, "cn_cuda_profile_pause");
    void (*write_fn)(cn_exec *, FILE *) = (void (*)(cn_exec *, FILE *))dlsym(h, "cn_cuda_exec_profile_write");
    if (!create || !pause_fn || !write_fn) {
        printf("FAIL: the plugin lacks cn_cuda_backend_create, cn_cuda_profile_pause or cn_cuda_exec_profile_write\n");
        return 1;
    }
    cn_backend *be = NULL;
    cn_exec *ex = NULL;
    cn_error err = {0};
    if (create(0, CN_PREC_F32, &be, &err) != CANARY_OK || be->ops->exec_create(be, 1, &ex, &err) != CANARY_OK) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    const cn_backend_ops *o = be->ops;
    static float host[N_NORMS * D], ones[N_NORMS], zeros[N_NORMS];
    for (int i = 0; i < N_NORMS * D; i++)
        host[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < N_NORMS; i++)
        ones[i] = 1.0f;
    const float *g = NULL, *b = NULL;
    if (o->constant(be, ones, N_NORMS, &g, &err) != CANARY_OK ||
        o->constant(be, zeros, N_NORMS, &b, &err) != CANARY_OK) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    float *x = o->alloc(ex, sizeof host), *y = o->alloc(ex, sizeof host); /* one key: 2 calls */
    o->upload(ex, x, host, sizeof host);
    pause_fn(1);
    for (int i = 0; i < 5; i++)
        o->layer_norm(ex, x, y, 1, 1, g, b, 1e-5f);
    pause_fn(0);
    for (int d = 1; d <= N_NORMS; d++) /* one row of d: 2 keys so far, then 382 new ones, then "other" */
        o->layer_norm(ex, x, y, 1, d, g, b, 1e-5f);
    check(o->sync(ex, &err) == CANARY_OK, "sync");

    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = open_memstream(&text, &text_len);
    write_fn(ex, mem);
    fclose(mem);
    int key_lines = count_lines_with(text, "{\"cuda_profile\":");
    printf("%d key lines\n", key_lines);
    check(key_lines == KEYS + 2, "384 keys + 'layer_norm other' + 'sync other'");
    check(count_lines_with(text, "{\"cuda_profile\":\"layer_norm rows=") == KEYS - 2, "382 layer_norm shape keys");
    check(count_lines_with(text, "{\"cuda_profile\":\"layer_norm other\",\"calls\":18,") == 1,
          "the 18 layer_norms past the table in 'layer_norm other'");
    check(count_lines_with(text, "{\"cuda_profile\":\"sync other\",\"calls\":1,") == 1, "the sync in 'sync other'");
    check(count_lines_with(text, "{\"cuda_profile\":\"layer_norm rows=1 d=1\",\"calls\":1,") == 1,
          "the paused layer_norms not recorded");
    check(count_lines_with(text, "{\"cuda_profile\":\"alloc bytes<=16384\",\"calls\":2,") == 1, "two allocs, one key");
    check(count_lines_with(text, "{\"cuda_profile_summary\":\"all\",\"windows\":1,\"ops\":403,") == 1,
          "one window of 403 operations (2 allocs, 1 upload, 400 layer_norms)");
    check(count_lines_with(text, "\"stopped\":\"\"") == 1, "not stopped");

    o->exec_destroy(ex); /* appends the same report to REPORT.jsonl */
    FILE *f = fopen(report_path, "r");
    char *file_text = calloc(1, text_len + 2);
    size_t got = f && file_text ? fread(file_text, 1, text_len + 1, f) : 0;
    if (f)
        fclose(f);
    check(got == text_len && memcmp(file_text, text, text_len) == 0,
          "exec destroy appended the report cn_cuda_exec_profile_write gave");
    free(file_text);
    free(text);
    o->destroy(be);
    printf(g_fail ? "profile keys check failed\n" : "profile keys check passed\n");
    return g_fail;
}

#include "nn/cuda_plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CANARY_PLUGIN_DIR
#define CANARY_PLUGIN_DIR ""
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static cn_cuda_plugin g_plugin;
static cn_error g_err;

static int try_open(const char *path, char *why, size_t why_len) {
    if (access(path, R_OK) != 0)
        return 0;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, why_len, "%s", dlerror());
        return -1;
    }
    cn_cuda_abi_version_fn abi = (cn_cuda_abi_version_fn)dlsym(h, "cn_cuda_abi_version");
    if (!abi || abi() != CN_CUDA_PLUGIN_ABI) {
        snprintf(why, why_len, "%s: plugin ABI %d, this program needs %d", path, abi ? abi() : -1,
                 CN_CUDA_PLUGIN_ABI);
        dlclose(h);
        return -1;
    }
    g_plugin.handle = h;
    snprintf(g_plugin.path, sizeof g_plugin.path, "%s", path);
    g_plugin.enumerate = (cn_cuda_enumerate_fn)dlsym(h, "cn_cuda_enumerate");
    g_plugin.versions = (cn_cuda_versions_fn)dlsym(h, "cn_cuda_versions");
    g_plugin.selftest = (cn_cuda_selftest_fn)dlsym(h, "cn_cuda_selftest");
    g_plugin.backend_create = (cn_cuda_backend_create_fn)dlsym(h, "cn_cuda_backend_create");
    if (!g_plugin.enumerate || !g_plugin.versions || !g_plugin.selftest) {
        snprintf(why, why_len, "%s lacks required symbols", path);
        dlclose(h);
        memset(&g_plugin, 0, sizeof g_plugin);
        return -1;
    }
    return 1;
}

static void load_once(void) {
    char candidates[4][PATH_MAX];
    int n = 0;
    const char *env = getenv("CANARY_CUDA_PLUGIN");
    if (env && *env)
        snprintf(candidates[n++], PATH_MAX, "%s", env);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *dir = dirname(exe);
        snprintf(candidates[n++], PATH_MAX, "%.3800s/libcanary_cuda.so", dir);
        snprintf(candidates[n++], PATH_MAX, "%.3800s/../lib/libcanary_cuda.so", dir);
    }
    if (CANARY_PLUGIN_DIR[0])
        snprintf(candidates[n++], PATH_MAX, "%s/libcanary_cuda.so", CANARY_PLUGIN_DIR);
    /* Without the NVIDIA driver there is nothing the plugin can do, and loading it maps the CUDA
     * runtime and cuBLAS (about 200 MB of resident memory) into every CPU-only process. A plugin
     * named explicitly (CANARY_CUDA_PLUGIN: tests, emulation) is loaded regardless. */
    if (!(env && *env)) {
        void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
        if (!driver) {
            cn_error_set(&g_err, CANARY_EDEVICE, "no NVIDIA driver (libcuda.so.1 not found): no GPU can be used");
            return;
        }
        dlclose(driver);
    }
    char why[600] = "";
    for (int i = 0; i < n; i++) {
        int r = try_open(candidates[i], why, sizeof why);
        if (r == 1)
            return;
        if (r < 0) {
            cn_error_set(&g_err, CANARY_EDEVICE, "CUDA plugin could not be loaded: %s", why);
            return;
        }
    }
    cn_error_set(&g_err, CANARY_EDEVICE,
                 "CUDA plugin libcanary_cuda.so not found (this build has no CUDA backend, or set "
                 "CANARY_CUDA_PLUGIN to its path)");
}

cn_status cn_cuda_plugin_get(const cn_cuda_plugin **out, cn_error *err) {
    pthread_once(&g_once, load_once);
    if (!g_plugin.handle) {
        *out = NULL;
        return cn_error_set(err, g_err.code ? g_err.code : CANARY_EDEVICE, "%s", g_err.msg);
    }
    *out = &g_plugin;
    return CANARY_OK;
}

cn_status cn_cuda_backend_open(int device, cn_precision prec, cn_backend **out, cn_error *err) {
    const cn_cuda_plugin *p;
    CN_TRY(cn_cuda_plugin_get(&p, err));
    if (!p->backend_create)
        return cn_error_set(err, CANARY_EDEVICE, "CUDA plugin %s has no backend (cn_cuda_backend_create)", p->path);
    return (cn_status)p->backend_create(device, (int)prec, out, err);
}

cn_status cn_backend_open(const char *device, cn_precision prec, cn_backend **out, char *fallback,
                          size_t fallback_len, cn_error *err) {
    if (fallback && fallback_len)
        fallback[0] = '\0';
    if (!device || !*device || strcmp(device, "auto") == 0) {
        cn_error why = {0};
        if (cn_cuda_backend_open(0, prec, out, &why) == CANARY_OK)
            return CANARY_OK;
        if (fallback && fallback_len)
            snprintf(fallback, fallback_len, "%s", why.msg);
        return cn_cpu_backend_create(out, err);
    }
    if (strcmp(device, "cpu") == 0)
        return cn_cpu_backend_create(out, err);
    if (strncmp(device, "cuda", 4) == 0 && (device[4] == '\0' || device[4] == ':')) {
        int n = 0;
        if (device[4] == ':') {
            char *end = NULL;
            long v = strtol(device + 5, &end, 10);
            if (end == device + 5 || (*end && *end != ',') || v < 0 || v > 1024)
                return cn_error_set(err, CANARY_EINVAL, "engine.device '%s': expected cuda:N with N a GPU index",
                                    device);
            n = (int)v;
        }
        cn_status st = cn_cuda_backend_open(n, prec, out, err);
        if (st != CANARY_OK)
            cn_error_prefix(err, "engine.device '%s'", device);
        return st;
    }
    return cn_error_set(err, CANARY_EINVAL, "engine.device '%s': expected auto, cpu, cuda or cuda:N", device);
}

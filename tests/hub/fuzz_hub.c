/* Fuzzes what the hub (or anything pretending to be it) sends: header lines, the model-info JSON,
 * LFS pointers, and repository names. The first byte picks the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    int mode = data[0] % 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char *z = malloc(len + 1);
    if (!z)
        return 0;
    memcpy(z, text, len);
    z[len] = '\0';
    switch (mode) {
    case 0: {
        cn_hub_file_meta m;
        memset(&m, 0, sizeof m);
        const char *p = text, *end = text + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ll = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
            cn_hub_parse_header(p, ll, &m);
            p += ll;
        }
        break;
    }
    case 1: {
        cn_hub_repo_info info;
        cn_error err;
        cn_hub_parse_repo_info(text, len, "nvidia/canary-180m-flash", &info, &err);
        break;
    }
    case 2: {
        char sha[65];
        uint64_t sz;
        cn_hub_parse_lfs_pointer(text, len, sha, &sz);
        break;
    }
    default:
        cn_hub_is_repo_name(z);
        break;
    }
    free(z);
    return 0;
}

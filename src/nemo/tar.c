#include "nemo/tar.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512

const char *cn_tar_normalize_name(const char *name) {
    for (;;) {
        if (name[0] == '.' && name[1] == '/')
            name += 2;
        else if (name[0] == '/')
            name += 1;
        else
            return name;
    }
}

/* Octal (NUL/space terminated) or GNU base-256 (high bit of the first byte set) numeric field. */
static bool parse_number(const uint8_t *f, size_t len, uint64_t *out) {
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] & 0x40)
            return false; /* negative */
        v = f[0] & 0x3f;
        for (size_t i = 1; i < len; i++) {
            if (v >> 56)
                return false;
            v = (v << 8) | f[i];
        }
        *out = v;
        return true;
    }
    size_t i = 0;
    while (i < len && f[i] == ' ')
        i++;
    bool any = false;
    for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
        any = true;
    }
    for (; i < len; i++)
        if (f[i] != ' ' && f[i] != 0)
            return false;
    *out = any ? v : 0;
    return true;
}

static bool checksum_ok(const uint8_t *h) {
    uint64_t stored;
    if (!parse_number(h + 148, 8, &stored))
        return false;
    uint64_t u = 0;
    int64_t s = 0;
    for (int i = 0; i < BLOCK; i++) {
        uint8_t b = (i >= 148 && i < 156) ? ' ' : h[i];
        u += b;
        s += (int8_t)b; /* some old writers summed signed chars */
    }
    return stored == u || (int64_t)stored == s;
}

static bool all_zero(const uint8_t *h) {
    for (int i = 0; i < BLOCK; i++)
        if (h[i])
            return false;
    return true;
}

static char *dup_field(const uint8_t *f, size_t max) {
    size_t n = 0;
    while (n < max && f[n])
        n++;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, f, n);
        s[n] = 0;
    }
    return s;
}

static char *dup_bytes(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* Parses the records of a PAX extended header ("<len> <key>=<value>\n"); keeps path and size. */
static cn_status parse_pax(const uint8_t *p, size_t n, uint64_t hdr_off, char **path, bool *has_size,
                           uint64_t *size, cn_error *err) {
    size_t i = 0;
    while (i < n) {
        if (p[i] == 0)
            break; /* padding */
        size_t len = 0, j = i;
        while (j < n && p[j] >= '0' && p[j] <= '9') {
            if (len > n)
                break;
            len = len * 10 + (size_t)(p[j] - '0');
            j++;
        }
        if (j >= n || p[j] != ' ' || len <= j - i + 1 || len > n - i || p[i + len - 1] != '\n')
            return cn_error_set(err, CANARY_EFORMAT, "malformed PAX record in the header at offset %llu",
                                (unsigned long long)hdr_off);
        const uint8_t *kv = p + j + 1, *end = p + i + len - 1;
        const uint8_t *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq)
            return cn_error_set(err, CANARY_EFORMAT, "PAX record without '=' in the header at offset %llu",
                                (unsigned long long)hdr_off);
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
        if (klen == 4 && memcmp(kv, "path", 4) == 0) {
            if (vlen == 0 || vlen > CN_TAR_MAX_NAME || memchr(eq + 1, 0, vlen))
                return cn_error_set(err, CANARY_EFORMAT, "bad PAX path in the header at offset %llu",
                                    (unsigned long long)hdr_off);
            free(*path);
            *path = dup_bytes(eq + 1, vlen);
            if (!*path)
                return cn_error_set(err, CANARY_ENOMEM, "out of memory reading tar");
        } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
            uint64_t v = 0;
            if (vlen == 0 || vlen > 19)
                return cn_error_set(err, CANARY_EFORMAT, "bad PAX size in the header at offset %llu",
                                    (unsigned long long)hdr_off);
            for (size_t k = 0; k < vlen; k++) {
                uint8_t c = eq[1 + k];
                if (c < '0' || c > '9')
                    return cn_error_set(err, CANARY_EFORMAT, "bad PAX size in the header at offset %llu",
                                        (unsigned long long)hdr_off);
                v = v * 10 + (uint64_t)(c - '0');
            }
            *has_size = true;
            *size = v;
        }
        i += len;
    }
    return CANARY_OK;
}

static cn_status add_member(cn_tar *t, size_t *cap, char *name, uint64_t off, uint64_t size, cn_error *err) {
    if (t->n >= CN_TAR_MAX_MEMBERS) {
        free(name);
        return cn_error_set(err, CANARY_ELIMIT, "tar has more than %d members", CN_TAR_MAX_MEMBERS);
    }
    if (t->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        cn_tar_member *m = realloc(t->members, nc * sizeof *m);
        if (!m) {
            free(name);
            return cn_error_set(err, CANARY_ENOMEM, "out of memory reading tar");
        }
        t->members = m;
        *cap = nc;
    }
    const char *norm = cn_tar_normalize_name(name);
    if (norm != name)
        memmove(name, norm, strlen(norm) + 1);
    t->members[t->n++] = (cn_tar_member){name, off, size};
    return CANARY_OK;
}

cn_status cn_tar_parse(const uint8_t *data, size_t size, cn_tar *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    uint64_t pos = 0;
    char *long_name = NULL; /* from a GNU 'L' or PAX header, applies to the next member */
    bool pax_has_size = false;
    uint64_t pax_size = 0;
    bool saw_end = false;
    cn_status st = CANARY_OK;

    while (pos + BLOCK <= size) {
        const uint8_t *h = data + pos;
        if (all_zero(h)) {
            saw_end = true;
            break;
        }
        if (!checksum_ok(h)) {
            st = cn_error_set(err, CANARY_EFORMAT,
                              "bad tar header checksum at offset %llu (not a tar file, or corrupt)",
                              (unsigned long long)pos);
            goto fail;
        }
        uint64_t msize;
        if (!parse_number(h + 124, 12, &msize)) {
            st = cn_error_set(err, CANARY_EFORMAT, "bad size field in the tar header at offset %llu",
                              (unsigned long long)pos);
            goto fail;
        }
        char type = (char)h[156];
        if (pax_has_size && type != 'x' && type != 'g' && type != 'L') {
            msize = pax_size;
        }
        uint64_t data_off = pos + BLOCK;
        if (msize > size - data_off) {
            st = cn_error_set(err, CANARY_EFORMAT,
                              "tar member at offset %llu declares %llu bytes but only %llu remain (truncated file?)",
                              (unsigned long long)pos, (unsigned long long)msize,
                              (unsigned long long)(size - data_off));
            goto fail;
        }
        const uint8_t *body = data + data_off;
        if (type == 'x') {
            st = parse_pax(body, (size_t)msize, pos, &long_name, &pax_has_size, &pax_size, err);
            if (st)
                goto fail;
        } else if (type == 'g' || type == 'K') {
            /* global PAX header, GNU long link name: nothing we need */
        } else if (type == 'L') {
            if (msize == 0 || msize > CN_TAR_MAX_NAME) {
                st = cn_error_set(err, CANARY_EFORMAT, "bad GNU long name length %llu at offset %llu",
                                  (unsigned long long)msize, (unsigned long long)pos);
                goto fail;
            }
            free(long_name);
            long_name = dup_field(body, (size_t)msize);
            if (!long_name) {
                st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading tar");
                goto fail;
            }
        } else {
            if (type == '0' || type == 0 || type == '7') {
                char *name = long_name;
                long_name = NULL;
                if (!name) {
                    bool ustar = memcmp(h + 257, "ustar", 5) == 0;
                    char full[256 + 1 + 155];
                    size_t np = 0;
                    if (ustar && h[345]) {
                        size_t pl = strnlen((const char *)h + 345, 155);
                        memcpy(full, h + 345, pl);
                        full[pl] = '/';
                        np = pl + 1;
                    }
                    size_t nl = strnlen((const char *)h, 100);
                    memcpy(full + np, h, nl);
                    full[np + nl] = 0;
                    name = strdup(full);
                    if (!name) {
                        st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading tar");
                        goto fail;
                    }
                }
                st = add_member(out, &cap, name, data_off, msize, err);
                if (st)
                    goto fail;
            } else {
                /* directories, links, devices: not needed, and never followed */
                free(long_name);
                long_name = NULL;
            }
            pax_has_size = false;
        }
        uint64_t padded = (msize + BLOCK - 1) / BLOCK * BLOCK;
        pos = data_off + padded;
    }
    if (pos == 0 && size < BLOCK) {
        st = cn_error_set(err, CANARY_EFORMAT, "not a tar archive: only %zu bytes", size);
        goto fail;
    }
    if (!saw_end && pos != size && pos < size) {
        st = cn_error_set(err, CANARY_EFORMAT, "tar ends inside a header at offset %llu (truncated file?)",
                          (unsigned long long)pos);
        goto fail;
    }
    if (out->n == 0) {
        st = cn_error_set(err, CANARY_EFORMAT, "tar archive holds no files");
        goto fail;
    }
    free(long_name);
    return CANARY_OK;
fail:
    free(long_name);
    cn_tar_free(out);
    return st;
}

void cn_tar_free(cn_tar *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->members[i].name);
    free(t->members);
    t->members = NULL;
    t->n = 0;
}

const cn_tar_member *cn_tar_find(const cn_tar *t, const char *name) {
    name = cn_tar_normalize_name(name);
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->members[i].name, name) == 0)
            return &t->members[i];
    return NULL;
}

#include "nemo/zip.h"

#include <stdlib.h>
#include <string.h>

#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define SIG_CDIR 0x02014b50u
#define SIG_LOCAL 0x04034b50u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* true when [off, off+len) lies within size */
static bool in_range(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

/* Applies the ZIP64 extended-information extra field to the fields that are saturated. */
static cn_status apply_zip64_extra(const uint8_t *extra, size_t elen, uint64_t *usize, uint64_t *csize,
                                   uint64_t *loff, const char *name, cn_error *err) {
    size_t i = 0;
    while (i + 4 <= elen) {
        uint16_t id = rd16(extra + i), len = rd16(extra + i + 2);
        if (len > elen - i - 4)
            break;
        if (id == 0x0001) {
            const uint8_t *p = extra + i + 4;
            size_t left = len;
            uint64_t *fields[3] = {usize, csize, loff};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xFFFFFFFFu)
                    continue;
                if (left < 8)
                    return cn_error_set(err, CANARY_EFORMAT, "zip entry '%s': ZIP64 extra field too short", name);
                *fields[k] = rd64(p);
                p += 8;
                left -= 8;
            }
            return CANARY_OK;
        }
        i += 4 + (size_t)len;
    }
    if (*usize == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *loff == 0xFFFFFFFFu)
        return cn_error_set(err, CANARY_EFORMAT, "zip entry '%s': saturated size/offset without a ZIP64 extra field",
                            name);
    return CANARY_OK;
}

cn_status cn_zip_parse(const uint8_t *data, size_t size, cn_zip *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    if (size < 22)
        return cn_error_set(err, CANARY_EFORMAT, "not a zip archive: only %zu bytes", size);
    /* The end-of-central-directory record: last 22 bytes plus at most a 65535-byte comment. */
    size_t min = size > 22 + 65535 ? size - 22 - 65535 : 0;
    size_t eocd = SIZE_MAX;
    for (size_t i = size - 22 + 1; i-- > min;) {
        if (rd32(data + i) == SIG_EOCD && (size_t)rd16(data + i + 20) == size - i - 22) {
            eocd = i;
            break;
        }
    }
    if (eocd == SIZE_MAX)
        return cn_error_set(err, CANARY_EFORMAT, "not a zip archive (no end-of-central-directory record)");
    uint64_t n_entries = rd16(data + eocd + 10);
    uint64_t cd_size = rd32(data + eocd + 12);
    uint64_t cd_off = rd32(data + eocd + 16);
    if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(data + eocd - 20) != SIG_LOC64)
            return cn_error_set(err, CANARY_EFORMAT, "zip: saturated directory fields but no ZIP64 locator");
        uint64_t e64 = rd64(data + eocd - 20 + 8);
        if (!in_range(e64, 56, size) || rd32(data + e64) != SIG_EOCD64)
            return cn_error_set(err, CANARY_EFORMAT, "zip: ZIP64 end record offset %llu is outside the file",
                                (unsigned long long)e64);
        n_entries = rd64(data + e64 + 32);
        cd_size = rd64(data + e64 + 40);
        cd_off = rd64(data + e64 + 48);
    }
    if (!in_range(cd_off, cd_size, size))
        return cn_error_set(err, CANARY_EFORMAT,
                            "zip: central directory (offset %llu, %llu bytes) lies outside the %zu-byte archive",
                            (unsigned long long)cd_off, (unsigned long long)cd_size, size);
    if (n_entries > CN_ZIP_MAX_ENTRIES || n_entries > cd_size / 46 + 1)
        return cn_error_set(err, CANARY_EFORMAT, "zip: implausible entry count %llu", (unsigned long long)n_entries);
    if (n_entries == 0)
        return cn_error_set(err, CANARY_EFORMAT, "zip archive is empty");
    out->entries = calloc((size_t)n_entries, sizeof *out->entries);
    if (!out->entries)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory reading zip directory");

    cn_status st = CANARY_OK;
    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t k = 0; k < n_entries; k++) {
        if (!in_range(p, 46, end) || rd32(data + p) != SIG_CDIR) {
            st = cn_error_set(err, CANARY_EFORMAT, "zip: bad central directory entry %llu at offset %llu",
                              (unsigned long long)k, (unsigned long long)p);
            goto fail;
        }
        const uint8_t *c = data + p;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), loff = rd32(c + 42);
        size_t nlen = rd16(c + 28), elen = rd16(c + 30), clen = rd16(c + 32);
        if (!in_range(p + 46, (uint64_t)nlen + elen + clen, end)) {
            st = cn_error_set(err, CANARY_EFORMAT, "zip: central directory entry %llu overruns the directory",
                              (unsigned long long)k);
            goto fail;
        }
        char *name = malloc(nlen + 1);
        if (!name) {
            st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading zip directory");
            goto fail;
        }
        memcpy(name, c + 46, nlen);
        name[nlen] = 0;
        cn_zip_entry *e = &out->entries[out->n++];
        e->name = name;
        st = apply_zip64_extra(c + 46 + nlen, elen, &usize, &csize, &loff, name, err);
        if (st)
            goto fail;
        /* the local header repeats name and extra with possibly different lengths */
        if (!in_range(loff, 30, size) || rd32(data + loff) != SIG_LOCAL) {
            st = cn_error_set(err, CANARY_EFORMAT, "zip entry '%s': local header offset %llu is outside the file or invalid",
                              name, (unsigned long long)loff);
            goto fail;
        }
        uint64_t doff = loff + 30 + rd16(data + loff + 26) + rd16(data + loff + 28);
        if (!in_range(doff, csize, size)) {
            st = cn_error_set(err, CANARY_EFORMAT,
                              "zip entry '%s': data (offset %llu, %llu bytes) runs past the end of the %zu-byte archive",
                              name, (unsigned long long)doff, (unsigned long long)csize, size);
            goto fail;
        }
        if (method == 0 && csize != usize) {
            st = cn_error_set(err, CANARY_EFORMAT, "zip entry '%s': stored entry with differing sizes (%llu vs %llu)",
                              name, (unsigned long long)csize, (unsigned long long)usize);
            goto fail;
        }
        e->data_offset = doff;
        e->size = method == 0 ? usize : csize;
        e->method = method;
        e->encrypted = (flags & 1) != 0;
        p += 46 + nlen + elen + clen;
    }
    /* PyTorch takes the archive prefix from the first entry, up to the first '/'. */
    const char *slash = strchr(out->entries[0].name, '/');
    size_t plen = slash ? (size_t)(slash - out->entries[0].name) : 0;
    out->prefix = malloc(plen + 1);
    if (!out->prefix) {
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory reading zip directory");
        goto fail;
    }
    memcpy(out->prefix, out->entries[0].name, plen);
    out->prefix[plen] = 0;
    return CANARY_OK;
fail:
    cn_zip_free(out);
    return st;
}

void cn_zip_free(cn_zip *z) {
    if (!z)
        return;
    for (size_t i = 0; i < z->n; i++)
        free(z->entries[i].name);
    free(z->entries);
    free(z->prefix);
    memset(z, 0, sizeof *z);
}

const cn_zip_entry *cn_zip_find(const cn_zip *z, const char *name) {
    size_t plen = strlen(z->prefix);
    for (size_t i = 0; i < z->n; i++) {
        const char *en = z->entries[i].name;
        if (plen) {
            if (strncmp(en, z->prefix, plen) != 0 || en[plen] != '/')
                continue;
            en += plen + 1;
        }
        if (strcmp(en, name) == 0)
            return &z->entries[i];
    }
    return NULL;
}

cn_status cn_zip_entry_data(const cn_zip *z, const uint8_t *base, const cn_zip_entry *e, const uint8_t **out,
                            cn_error *err) {
    if (e->encrypted)
        return cn_error_set(err, CANARY_EUNSUPPORTED, "zip entry '%s' is encrypted", e->name);
    if (e->method != 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "zip entry '%s' is compressed (method %u); PyTorch checkpoints store entries "
                            "uncompressed, re-save it with torch.save",
                            e->name, (unsigned)e->method);
    *out = base + e->data_offset;
    return CANARY_OK;
}

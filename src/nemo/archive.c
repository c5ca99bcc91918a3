#include "nemo/archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"
#include "nemo/tar.h"

static cn_status oom(cn_error *err) { return cn_error_set(err, CANARY_ENOMEM, "out of memory opening the model"); }

cn_status cn_archive_from_tar(const uint8_t *data, size_t size, cn_archive *out, cn_error *err) {
    cn_tar tar;
    CN_TRY(cn_tar_parse(data, size, &tar, err));
    out->members = calloc(tar.n, sizeof *out->members);
    if (!out->members) {
        cn_tar_free(&tar);
        return oom(err);
    }
    for (size_t i = 0; i < tar.n; i++) {
        out->members[i].name = tar.members[i].name; /* ownership moves */
        tar.members[i].name = NULL;
        out->members[i].data = data + tar.members[i].offset;
        out->members[i].size = (size_t)tar.members[i].size;
    }
    out->n = tar.n;
    cn_tar_free(&tar);
    return CANARY_OK;
}

static cn_status open_dir(const char *path, cn_archive *a, cn_error *err) {
    DIR *d = opendir(path);
    if (!d)
        return cn_error_errno(err, errno, "opening model directory %s", path);
    cn_status st = CANARY_OK;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *full = NULL;
        if (asprintf(&full, "%s/%s", path, de->d_name) < 0) {
            st = oom(err);
            break;
        }
        struct stat sb;
        if (stat(full, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            free(full);
            continue;
        }
        if (a->n >= CN_ARCHIVE_MAX_DIR_FILES) {
            free(full);
            st = cn_error_set(err, CANARY_ELIMIT, "model directory %s has more than %d files", path,
                              CN_ARCHIVE_MAX_DIR_FILES);
            break;
        }
        if (a->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            cn_archive_member *m = realloc(a->members, nc * sizeof *m);
            cn_mapped_file *f = realloc(a->maps, nc * sizeof *f);
            if (m)
                a->members = m;
            if (f)
                a->maps = f;
            if (!m || !f) {
                free(full);
                st = oom(err);
                break;
            }
            cap = nc;
        }
        cn_mapped_file mf;
        st = cn_map_file(full, &mf, err);
        free(full);
        if (st)
            break;
        char *name = strdup(de->d_name);
        if (!name) {
            cn_unmap_file(&mf);
            st = oom(err);
            break;
        }
        a->maps[a->n_maps++] = mf;
        a->members[a->n++] = (cn_archive_member){name, mf.data, mf.size};
    }
    closedir(d);
    return st;
}

/* Streams a gzip'd file into `dst` through a temporary file and rename(2), so a cache file either
 * is complete or does not exist. */
static cn_status gunzip_to(const char *src, const char *dst, cn_error *err) {
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%ld", dst, (long)getpid()) < 0)
        return oom(err);
    cn_status st = CANARY_OK;
    gzFile gz = gzopen(src, "rb");
    FILE *f = gz ? fopen(tmp, "wb") : NULL;
    if (!gz) {
        st = cn_error_errno(err, errno ? errno : EIO, "opening %s", src);
        goto out;
    }
    if (!f) {
        st = cn_error_errno(err, errno, "creating the unpack cache file %s", tmp);
        goto out;
    }
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        st = oom(err);
        goto out;
    }
    for (;;) {
        int n = gzread(gz, buf, CHUNK);
        if (n < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            st = cn_error_set(err, CANARY_EFORMAT, "decompressing %s: %s (corrupt or truncated gzip)", src, msg);
            break;
        }
        if (n == 0) {
            /* gzread returns 0 both at a clean end and on a truncated stream */
            int zerr;
            gzerror(gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END)
                st = cn_error_set(err, CANARY_EFORMAT, "decompressing %s: truncated gzip stream", src);
            break;
        }
        if (fwrite(buf, 1, (size_t)n, f) != (size_t)n) {
            st = cn_error_errno(err, errno, "writing the unpack cache file %s", tmp);
            break;
        }
    }
    free(buf);
    if (fclose(f) != 0 && st == CANARY_OK)
        st = cn_error_errno(err, errno, "writing the unpack cache file %s", tmp);
    f = NULL;
    if (st == CANARY_OK && rename(tmp, dst) != 0)
        st = cn_error_errno(err, errno, "renaming %s to %s", tmp, dst);
out:
    if (f)
        fclose(f);
    if (gz)
        gzclose(gz);
    if (st != CANARY_OK)
        unlink(tmp);
    free(tmp);
    return st;
}

static cn_status default_cache_dir(char **out, cn_error *err) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int r;
    if (xdg && xdg[0])
        r = asprintf(out, "%s/canary-stt/unpacked", xdg);
    else if (home && home[0])
        r = asprintf(out, "%s/.cache/canary-stt/unpacked", home);
    else
        r = asprintf(out, "/tmp/canary-stt-unpacked");
    return r < 0 ? oom(err) : CANARY_OK;
}

/* The cache file name identifies the source by basename, size and mtime, so a replaced file is
 * unpacked again. */
static cn_status unpack_gzip(const char *path, const struct stat *sb, const char *cache_dir, char **out,
                             cn_error *err) {
    char *dir = NULL;
    if (cache_dir)
        dir = strdup(cache_dir);
    else
        CN_TRY(default_cache_dir(&dir, err));
    if (!dir)
        return oom(err);
    cn_status st = cn_mkdirs(dir, err);
    if (st) {
        free(dir);
        return st;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int r = asprintf(out, "%s/%s-%lld-%lld.tar", dir, base, (long long)sb->st_size, (long long)sb->st_mtime);
    free(dir);
    if (r < 0)
        return oom(err);
    if (access(*out, R_OK) == 0)
        return CANARY_OK;
    CN_INFO("nemo", "unpacking gzip'd %s into %s (once)", path, *out);
    st = gunzip_to(path, *out, err);
    if (st) {
        free(*out);
        *out = NULL;
    }
    return st;
}

cn_status cn_archive_open(const char *path, const char *cache_dir, cn_archive *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cn_error_errno(err, errno, "model %s", path);
    out->source = strdup(path);
    if (!out->source)
        return oom(err);
    cn_status st;
    if (S_ISDIR(sb.st_mode)) {
        st = open_dir(path, out, err);
        if (st == CANARY_OK && out->n == 0)
            st = cn_error_set(err, CANARY_EFORMAT, "model directory %s is empty", path);
    } else {
        out->maps = calloc(1, sizeof *out->maps);
        if (!out->maps) {
            cn_archive_close(out);
            return oom(err);
        }
        st = cn_map_file(path, &out->maps[0], err);
        if (st == CANARY_OK) {
            out->n_maps = 1;
            if (out->maps[0].size >= 2 && out->maps[0].data[0] == 0x1f && out->maps[0].data[1] == 0x8b) {
                cn_unmap_file(&out->maps[0]);
                out->n_maps = 0;
                st = unpack_gzip(path, &sb, cache_dir, &out->unpacked_path, err);
                if (st == CANARY_OK)
                    st = cn_map_file(out->unpacked_path, &out->maps[0], err);
                if (st == CANARY_OK)
                    out->n_maps = 1;
            }
        }
        if (st == CANARY_OK)
            st = cn_archive_from_tar(out->maps[0].data, out->maps[0].size, out, err);
    }
    if (st != CANARY_OK) {
        cn_error_prefix(err, "reading %s", path);
        cn_archive_close(out);
    }
    return st;
}

void cn_archive_close(cn_archive *a) {
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->members[i].name);
    free(a->members);
    for (size_t i = 0; i < a->n_maps; i++)
        cn_unmap_file(&a->maps[i]);
    free(a->maps);
    free(a->source);
    free(a->unpacked_path);
    memset(a, 0, sizeof *a);
}

const cn_archive_member *cn_archive_find(const cn_archive *a, const char *name) {
    name = cn_tar_normalize_name(name);
    /* the last of equal names wins, as when the tar is extracted */
    for (size_t i = a->n; i-- > 0;)
        if (strcmp(a->members[i].name, name) == 0)
            return &a->members[i];
    return NULL;
}

cn_status cn_archive_resolve(const cn_archive *a, const char *ref, const cn_archive_member **out, cn_error *err) {
    const char *want = strncmp(ref, "nemo:", 5) == 0 ? ref + 5 : ref;
    const char *slash = strrchr(want, '/');
    if (slash)
        want = slash + 1;
    for (size_t i = a->n; i-- > 0;) {
        const char *b = strrchr(a->members[i].name, '/');
        b = b ? b + 1 : a->members[i].name;
        if (strcmp(b, want) == 0) {
            *out = &a->members[i];
            return CANARY_OK;
        }
    }
    return cn_error_set(err, CANARY_ENOTFOUND, "the config refers to '%s' but the archive has no member named '%s'",
                        ref, want);
}

#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

cn_status cn_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, cn_error *err) {
    *out = NULL;
    if (out_len)
        *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cn_error_errno(err, errno, "cannot open '%s'", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cn_error_errno(err, e, "cannot stat '%s'", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cn_error_set(err, CANARY_EINVAL, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return cn_error_set(err, CANARY_ELIMIT, "'%s' is %lld bytes, more than the %zu allowed", path,
                            (long long)st.st_size, max_bytes);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    if (!buf) {
        close(fd);
        return cn_error_set(err, CANARY_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return cn_error_errno(err, e, "cannot read '%s'", path);
        }
        got += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    if (out_len)
        *out_len = len;
    return CANARY_OK;
}

cn_status cn_map_file(const char *path, cn_mapped_file *out, cn_error *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cn_error_errno(err, errno, "cannot open '%s'", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cn_error_errno(err, e, "cannot stat '%s'", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cn_error_set(err, CANARY_EINVAL, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return CANARY_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return cn_error_errno(err, e, "cannot map '%s'", path);
    out->data = p;
    out->size = (size_t)st.st_size;
    return CANARY_OK;
}

void cn_unmap_file(cn_mapped_file *m) {
    if (m->data)
        munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

cn_status cn_write_file_atomic(const char *path, const void *data, size_t len, cn_error *err) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return cn_error_set(err, CANARY_EINVAL, "path too long: '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cn_error_errno(err, errno, "cannot create '%s'", tmp);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return cn_error_errno(err, e, "cannot write '%s'", tmp);
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return cn_error_errno(err, e, "cannot flush '%s'", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cn_error_errno(err, e, "cannot rename '%s' to '%s'", tmp, path);
    }
    return CANARY_OK;
}

cn_status cn_mkdirs(const char *path, cn_error *err) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return cn_error_set(err, CANARY_EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return cn_error_errno(err, errno, "cannot create directory '%s'", buf);
            buf[i] = c;
        }
    }
    return CANARY_OK;
}

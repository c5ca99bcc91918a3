/* Small file helpers: read a whole (small) file, map a file read-only, write atomically. */
#ifndef CN_BASE_FILE_H
#define CN_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Reads at most max_bytes (refuses larger files with CANARY_ELIMIT). Result is NUL-terminated;
 * free() it. */
cn_status cn_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, cn_error *err);

/* A read-only memory mapping of a whole file. Zero-length files map to data == NULL, size 0. */
typedef struct cn_mapped_file {
    const uint8_t *data;
    size_t size;
} cn_mapped_file;

cn_status cn_map_file(const char *path, cn_mapped_file *out, cn_error *err);
void cn_unmap_file(cn_mapped_file *m);

/* Writes data to path via a temporary file in the same directory and rename(2). */
cn_status cn_write_file_atomic(const char *path, const void *data, size_t len, cn_error *err);

/* mkdir -p */
cn_status cn_mkdirs(const char *path, cn_error *err);

#endif

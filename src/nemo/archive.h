/* The files of a .nemo checkpoint, whichever way it is stored: an uncompressed tar (mapped once,
 * members are ranges of the mapping), a gzip'd tar (unpacked once into a cache file, then mapped)
 * or an unpacked directory (each file mapped). */
#ifndef CN_NEMO_ARCHIVE_H
#define CN_NEMO_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/file.h"

typedef struct cn_archive_member {
    char *name; /* path inside the archive, without leading "./" */
    const uint8_t *data;
    size_t size;
} cn_archive_member;

typedef struct cn_archive {
    cn_archive_member *members;
    size_t n;
    cn_mapped_file *maps; /* one for a tar, one per file for a directory */
    size_t n_maps;
    char *source;         /* the path given, for messages */
    char *unpacked_path;  /* the cache file of a gzip'd .nemo, else NULL */
} cn_archive;

#define CN_ARCHIVE_MAX_DIR_FILES 4096

cn_status cn_archive_open(const char *path, const char *cache_dir, cn_archive *out, cn_error *err);
/* Parses an in-memory tar (no file, no gzip) into a zeroed `out`: for tests and fuzzers. `data`
 * must outlive `out`. */
cn_status cn_archive_from_tar(const uint8_t *data, size_t size, cn_archive *out, cn_error *err);
void cn_archive_close(cn_archive *a);

/* A member by exact name (leading "./" ignored; the last of duplicates, as extraction would
 * leave it); NULL if absent. */
const cn_archive_member *cn_archive_find(const cn_archive *a, const char *name);
/* Resolves a config reference: "nemo:<32hex>_tokenizer.model" names the member with that basename;
 * a plain name is looked up as a basename too. Fails naming the reference when absent. */
cn_status cn_archive_resolve(const cn_archive *a, const char *ref, const cn_archive_member **out, cn_error *err);

#endif

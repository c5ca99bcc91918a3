/* A reader for the ZIP archives that torch.save writes (model_weights.ckpt), held in memory.
 *
 * Reads the central directory (ZIP64 included) and each entry's local header to find where its
 * data starts. Only stored (uncompressed) entries can be read in place, which is what PyTorch
 * writes; compressed or encrypted entries are listed but refused on access. Every offset and size
 * is checked against the buffer. */
#ifndef CN_NEMO_ZIP_H
#define CN_NEMO_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct cn_zip_entry {
    char *name;
    uint64_t data_offset; /* of the (stored) bytes within the archive */
    uint64_t size;
    uint16_t method;      /* 0 = stored */
    bool encrypted;
} cn_zip_entry;

typedef struct cn_zip {
    cn_zip_entry *entries;
    size_t n;
    char *prefix; /* the archive's top directory ("archive", "model_weights", ...), "" if none */
} cn_zip;

#define CN_ZIP_MAX_ENTRIES 1000000

cn_status cn_zip_parse(const uint8_t *data, size_t size, cn_zip *out, cn_error *err);
void cn_zip_free(cn_zip *z);
/* Finds "<prefix>/<name>"; NULL if absent. */
const cn_zip_entry *cn_zip_find(const cn_zip *z, const char *name);
/* Returns the bytes of a stored entry, or fails naming the entry if it is compressed/encrypted. */
cn_status cn_zip_entry_data(const cn_zip *z, const uint8_t *base, const cn_zip_entry *e, const uint8_t **out,
                            cn_error *err);

#endif

/* A reader for POSIX tar archives held in memory (the outer container of a .nemo file).
 *
 * Understands ustar headers (with the name prefix field), PAX extended headers (`path`, `size`),
 * GNU long names ('L') and base-256 sizes. Only regular files are listed; every size and offset is
 * checked against the buffer. Nothing is copied: members are (offset, size) ranges of the buffer. */
#ifndef CN_NEMO_TAR_H
#define CN_NEMO_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct cn_tar_member {
    char *name;      /* with any leading "./" removed */
    uint64_t offset; /* of the member's data within the archive */
    uint64_t size;
} cn_tar_member;

typedef struct cn_tar {
    cn_tar_member *members;
    size_t n;
} cn_tar;

#define CN_TAR_MAX_MEMBERS 100000
#define CN_TAR_MAX_NAME 4096

cn_status cn_tar_parse(const uint8_t *data, size_t size, cn_tar *out, cn_error *err);
void cn_tar_free(cn_tar *t);
/* Finds a member by name (leading "./" ignored on both sides); NULL if absent. */
const cn_tar_member *cn_tar_find(const cn_tar *t, const char *name);

/* Strips leading "./" (repeatedly) and "/" from a member name. */
const char *cn_tar_normalize_name(const char *name);

#endif

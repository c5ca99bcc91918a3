/* model_config.yaml as a small tree (libyaml events -> maps, sequences, scalars with their line
 * numbers), so that settings can be looked up by dotted path with precise errors. */
#ifndef CN_NEMO_YAML_TREE_H
#define CN_NEMO_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

typedef enum cn_ynode_kind { CN_Y_SCALAR, CN_Y_MAP, CN_Y_SEQ } cn_ynode_kind;

typedef struct cn_ynode {
    cn_ynode_kind kind;
    char *value;             /* scalar text */
    bool plain;              /* unquoted scalar (null/true/numbers are only recognised unquoted) */
    int line;                /* 1-based */
    struct cn_ynode **items; /* SEQ: n items; MAP: 2n (key scalar, value) */
    size_t n;
} cn_ynode;

typedef struct cn_ytree {
    cn_ynode *root;
    cn_ynode **all; /* every node, for freeing without recursion */
    size_t n_all, cap_all;
} cn_ytree;

#define CN_YAML_MAX_DEPTH 64
#define CN_YAML_MAX_NODES 200000

/* `label` names the document in errors ("model_config.yaml"). */
cn_status cn_ytree_parse(const char *text, size_t len, const char *label, cn_ytree *out, cn_error *err);
void cn_ytree_free(cn_ytree *t);

/* Child of a map by key; NULL if absent or `map` is not a map. */
const cn_ynode *cn_ymap_get(const cn_ynode *map, const char *key);
/* Follows a dotted path from `root` ("encoder.n_layers"); NULL if any part is absent. */
const cn_ynode *cn_ypath(const cn_ynode *root, const char *path);
bool cn_ynode_is_null(const cn_ynode *n); /* absent, "~", "null" or empty plain scalar */

#endif

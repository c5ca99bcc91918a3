#include "nemo/yaml_tree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static cn_ynode *new_node(cn_ytree *t, cn_ynode_kind kind, int line, cn_error *err) {
    if (t->n_all >= CN_YAML_MAX_NODES) {
        cn_error_set(err, CANARY_ELIMIT, "more than %d YAML nodes", CN_YAML_MAX_NODES);
        return NULL;
    }
    if (t->n_all == t->cap_all) {
        size_t nc = t->cap_all ? t->cap_all * 2 : 64;
        cn_ynode **a = realloc(t->all, nc * sizeof *a);
        if (!a) {
            cn_error_set(err, CANARY_ENOMEM, "out of memory parsing YAML");
            return NULL;
        }
        t->all = a;
        t->cap_all = nc;
    }
    cn_ynode *n = calloc(1, sizeof *n);
    if (!n) {
        cn_error_set(err, CANARY_ENOMEM, "out of memory parsing YAML");
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    t->all[t->n_all++] = n;
    return n;
}

static bool add_child(cn_ynode *parent, cn_ynode *child, size_t *cap) {
    if (parent->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        cn_ynode **a = realloc(parent->items, nc * sizeof *a);
        if (!a)
            return false;
        parent->items = a;
        *cap = nc;
    }
    parent->items[parent->n++] = child;
    return true;
}

cn_status cn_ytree_parse(const char *text, size_t len, const char *label, cn_ytree *out, cn_error *err) {
    memset(out, 0, sizeof *out);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return cn_error_set(err, CANARY_ENOMEM, "out of memory parsing %s", label);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    cn_ynode *stack[CN_YAML_MAX_DEPTH];
    size_t caps[CN_YAML_MAX_DEPTH];
    int depth = 0;
    cn_status st = CANARY_OK;
    bool done = false;
    int docs = 0;
    while (!done && st == CANARY_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            st = cn_error_set(err, CANARY_EFORMAT, "%s line %zu: YAML syntax error: %s", label,
                              (size_t)p.problem_mark.line + 1, p.problem ? p.problem : "unknown");
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        cn_ynode *node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                st = cn_error_set(err, CANARY_EFORMAT, "%s line %d: more than one YAML document", label, line);
            break;
        case YAML_ALIAS_EVENT:
            /* anchors/aliases are never written by OmegaConf; refusing them also rules out
             * exponential "billion laughs" expansion */
            st = cn_error_set(err, CANARY_EUNSUPPORTED, "%s line %d: YAML aliases are not supported", label, line);
            break;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            cn_ynode_kind k = ev.type == YAML_SCALAR_EVENT ? CN_Y_SCALAR
                              : ev.type == YAML_MAPPING_START_EVENT ? CN_Y_MAP : CN_Y_SEQ;
            node = new_node(out, k, line, err);
            if (!node) {
                st = err ? err->code : CANARY_ENOMEM;
                break;
            }
            if (k == CN_Y_SCALAR) {
                node->value = malloc(ev.data.scalar.length + 1);
                if (!node->value) {
                    st = cn_error_set(err, CANARY_ENOMEM, "out of memory parsing %s", label);
                    break;
                }
                memcpy(node->value, ev.data.scalar.value, ev.data.scalar.length);
                node->value[ev.data.scalar.length] = 0;
                node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            }
            if (depth > 0) {
                if (!add_child(stack[depth - 1], node, &caps[depth - 1])) {
                    st = cn_error_set(err, CANARY_ENOMEM, "out of memory parsing %s", label);
                    break;
                }
            } else if (out->root) {
                st = cn_error_set(err, CANARY_EFORMAT, "%s line %d: more than one top-level node", label, line);
                break;
            } else {
                out->root = node;
            }
            if (k != CN_Y_SCALAR) {
                if (depth >= CN_YAML_MAX_DEPTH) {
                    st = cn_error_set(err, CANARY_ELIMIT, "%s line %d: nested deeper than %d levels", label, line,
                                      CN_YAML_MAX_DEPTH);
                    break;
                }
                stack[depth] = node;
                caps[depth] = 0;
                depth++;
            }
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0)
                depth--;
            if (ev.type == YAML_MAPPING_END_EVENT) {
                cn_ynode *m = stack[depth];
                for (size_t i = 0; i < m->n; i += 2) {
                    if (m->items[i]->kind != CN_Y_SCALAR) {
                        st = cn_error_set(err, CANARY_EUNSUPPORTED, "%s line %d: non-scalar mapping key", label,
                                          m->items[i]->line);
                        break;
                    }
                }
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (st == CANARY_OK && (!out->root || out->root->kind != CN_Y_MAP))
        st = cn_error_set(err, CANARY_EFORMAT, "%s is not a YAML mapping", label);
    if (st != CANARY_OK)
        cn_ytree_free(out);
    return st;
}

void cn_ytree_free(cn_ytree *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n_all; i++) {
        free(t->all[i]->value);
        free(t->all[i]->items);
        free(t->all[i]);
    }
    free(t->all);
    memset(t, 0, sizeof *t);
}

const cn_ynode *cn_ymap_get(const cn_ynode *map, const char *key) {
    if (!map || map->kind != CN_Y_MAP)
        return NULL;
    /* the last occurrence wins, as in PyYAML/OmegaConf */
    const cn_ynode *found = NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (strcmp(map->items[i]->value, key) == 0)
            found = map->items[i + 1];
    return found;
}

const cn_ynode *cn_ypath(const cn_ynode *root, const char *path) {
    char part[128];
    const cn_ynode *n = root;
    while (n && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof part)
            return NULL;
        memcpy(part, path, len);
        part[len] = 0;
        n = cn_ymap_get(n, part);
        path += len + (dot ? 1 : 0);
    }
    return n;
}

bool cn_ynode_is_null(const cn_ynode *n) {
    if (!n)
        return true;
    if (n->kind != CN_Y_SCALAR || !n->plain)
        return false;
    return !n->value[0] || !strcmp(n->value, "~") || !strcmp(n->value, "null") || !strcmp(n->value, "Null") ||
           !strcmp(n->value, "NULL");
}

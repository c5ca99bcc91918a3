/* Parsers for what the hub sends: response headers, the model-info JSON, Git LFS pointers. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hub/hub.h"

static bool is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return s[n] == '\0';
}

void cn_hub_normalize_etag(const char *in, char *out, size_t n) {
    while (*in == ' ' || *in == '\t')
        in++;
    if (strncmp(in, "W/", 2) == 0)
        in += 2;
    size_t len = strlen(in);
    while (len && (in[len - 1] == ' ' || in[len - 1] == '\t'))
        len--;
    if (len >= 2 && in[0] == '"' && in[len - 1] == '"') {
        in++;
        len -= 2;
    }
    if (len >= n)
        len = n - 1;
    memcpy(out, in, len);
    out[len] = '\0';
}

static void copy_value(char *dst, size_t n, const char *v, size_t len) {
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= n)
        len = n - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

void cn_hub_parse_header(const char *line, size_t len, cn_hub_file_meta *m) {
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after a redirect or a 100-continue): start over */
        memset(m, 0, sizeof *m);
        const char *sp = memchr(line, ' ', len);
        if (sp) {
            char code[8];
            copy_value(code, sizeof code, sp + 1, (size_t)(line + len - sp - 1));
            m->status = strtol(code, NULL, 10);
        }
        return;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return;
    size_t nl = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    char value[2048];
    copy_value(value, sizeof value, v, vl);
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(line, name, nl) == 0)
    if (IS("ETag"))
        cn_hub_normalize_etag(value, m->etag, sizeof m->etag);
    else if (IS("X-Linked-Etag"))
        cn_hub_normalize_etag(value, m->linked_etag, sizeof m->linked_etag);
    else if (IS("X-Repo-Commit"))
        copy_value(m->commit, sizeof m->commit, value, strlen(value));
    else if (IS("X-Linked-Size"))
        m->linked_size = strtoull(value, NULL, 10);
    else if (IS("Content-Length"))
        m->content_length = strtoull(value, NULL, 10);
    else if (IS("Location"))
        copy_value(m->location, sizeof m->location, value, strlen(value));
    else if (IS("X-Error-Code"))
        copy_value(m->error_code, sizeof m->error_code, value, strlen(value));
    else if (IS("X-Error-Message"))
        copy_value(m->error_message, sizeof m->error_message, value, strlen(value));
#undef IS
}

cn_status cn_hub_parse_repo_info(const char *json, size_t len, const char *repo, cn_hub_repo_info *out,
                                 cn_error *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cn_error_set(err, CANARY_EFORMAT, "the hub's model info for %s is not JSON (%s, line %d)", repo, je.text,
                            je.line);
    cn_status st = CANARY_OK;
    json_t *sha = json_object_get(root, "sha");
    json_t *sib = json_object_get(root, "siblings");
    if (!json_is_string(sha) || !json_is_array(sib)) {
        st = cn_error_set(err, CANARY_EFORMAT, "the hub's model info for %s lacks \"sha\" or \"siblings\"", repo);
        goto out;
    }
    const char *commit = json_string_value(sha);
    if (strlen(commit) >= sizeof out->commit || strchr(commit, '/') || strstr(commit, "..") || !commit[0]) {
        st = cn_error_set(err, CANARY_EFORMAT, "the hub's model info for %s has an invalid commit \"%.80s\"", repo,
                          commit);
        goto out;
    }
    snprintf(out->commit, sizeof out->commit, "%s", commit);
    /* preferred: "<name>.nemo" for "org/<name>" */
    const char *slash = strrchr(repo, '/');
    char want[300];
    snprintf(want, sizeof want, "%s.nemo", slash ? slash + 1 : repo);
    char *at = strchr(want, '@');
    if (at)
        strcpy(at, ".nemo");
    json_t *chosen = NULL;
    int n_nemo = 0;
    char names[512] = "";
    size_t i;
    json_t *s;
    json_array_foreach(sib, i, s) {
        const char *f = json_string_value(json_object_get(s, "rfilename"));
        size_t fl = f ? strlen(f) : 0;
        if (fl < 6 || strcmp(f + fl - 5, ".nemo") != 0)
            continue;
        n_nemo++;
        if (strlen(names) + fl + 3 < sizeof names) {
            if (names[0])
                strcat(names, ", ");
            strcat(names, f);
        }
        if (strcmp(f, want) == 0 || (!chosen && n_nemo == 1))
            chosen = s;
        if (strcmp(f, want) == 0)
            break;
    }
    if (!chosen) {
        st = cn_error_set(err, CANARY_ENOTFOUND, "repository %s has no .nemo file at revision %s", repo, out->commit);
        goto out;
    }
    const char *f = json_string_value(json_object_get(chosen, "rfilename"));
    if (n_nemo > 1 && strcmp(f, want) != 0) {
        st = cn_error_set(err, CANARY_EUNSUPPORTED,
                          "repository %s has several .nemo files (%s) and none is named %s: download the one you "
                          "want and pass its path to --model",
                          repo, names, want);
        goto out;
    }
    if (strlen(f) >= sizeof out->file || strstr(f, "..") || f[0] == '/' || strchr(f, '/')) {
        st = cn_error_set(err, CANARY_EUNSUPPORTED, "repository %s: file name \"%.100s\" is not a plain file name",
                          repo, f);
        goto out;
    }
    snprintf(out->file, sizeof out->file, "%s", f);
    json_t *size = json_object_get(chosen, "size");
    json_t *lfs = json_object_get(chosen, "lfs");
    if (json_is_integer(size) && json_integer_value(size) > 0)
        out->size = (uint64_t)json_integer_value(size);
    if (json_is_object(lfs)) {
        const char *ls = json_string_value(json_object_get(lfs, "sha256"));
        if (ls && strlen(ls) == 64 && is_hex(ls, 64))
            snprintf(out->lfs_sha256, sizeof out->lfs_sha256, "%s", ls);
        json_t *lsz = json_object_get(lfs, "size");
        if (json_is_integer(lsz) && json_integer_value(lsz) > 0)
            out->size = (uint64_t)json_integer_value(lsz);
    }
out:
    json_decref(root);
    return st;
}

bool cn_hub_parse_lfs_pointer(const char *text, size_t len, char sha256[65], uint64_t *size) {
    static const char head[] = "version https://git-lfs.github.com/spec/v1\n";
    if (len < sizeof head - 1 || len > 1024 || memcmp(text, head, sizeof head - 1) != 0)
        return false;
    bool have_oid = false, have_size = false;
    const char *p = text + sizeof head - 1, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        size_t ll = (size_t)(eol - p);
        if (ll == 4 + 7 + 64 && memcmp(p, "oid sha256:", 11) == 0) {
            memcpy(sha256, p + 11, 64);
            sha256[64] = '\0';
            have_oid = is_hex(sha256, 64);
        } else if (ll > 5 && ll < 26 && memcmp(p, "size ", 5) == 0) {
            char num[24];
            memcpy(num, p + 5, ll - 5);
            num[ll - 5] = '\0';
            char *e;
            unsigned long long v = strtoull(num, &e, 10);
            have_size = *e == '\0' && e != num;
            *size = v;
        }
        p = eol + 1;
    }
    return have_oid && have_size;
}

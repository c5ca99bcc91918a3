/* Model management: Canary checkpoints from the Hugging Face hub (or any server with its HTTP
 * layout), cached and verified on disk, and the one function that turns a --model value (a .nemo
 * path, an unpacked directory or a hub name) into a local path.
 *
 * Protocol (as huggingface_hub uses it):
 *   GET  {endpoint}/api/models/{repo}/revision/{rev}?blobs=true   commit sha + file list (+ LFS sha256)
 *   HEAD {endpoint}/{repo}/resolve/{commit}/{file}                 no redirects: X-Linked-Etag (the
 *        LFS sha256), X-Linked-Size, X-Repo-Commit, ETag (git blob sha1 for non-LFS files)
 *   GET  same URL, following the redirect to the CDN, with Range: bytes=N- to resume.
 * Cache (same layout as huggingface_hub's, so it is familiar):
 *   {cache}/models--{org}--{name}/blobs/{sha256}            verified content
 *                                 blobs/{sha256}.incomplete  partial download (resumed)
 *                                 snapshots/{commit}/{file}  symlink to ../../blobs/{sha256}
 *                                 refs/{revision}            commit hash
 *                                 .lock                      flock() while pulling
 */
#ifndef CN_HUB_HUB_H
#define CN_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define CN_HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define CN_HUB_DEFAULT_MODEL "nvidia/canary-180m-flash"

typedef struct cn_hub_opts {
    const char *endpoint;  /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *token;     /* NULL: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, then the file $HF_HOME/token */
    const char *cache_dir; /* NULL or "": $XDG_CACHE_HOME/canary-stt, else ~/.cache/canary-stt */
    const char *revision;  /* NULL: "main" (a "repo@rev" name overrides) */
    int offline;           /* -1: from $HF_HUB_OFFLINE; 0 or 1 */
    bool progress;         /* progress bar on stderr when stderr is a terminal */
    int retries;           /* resumptions after a broken transfer; -1: 5 */
} cn_hub_opts;

void cn_hub_opts_init(cn_hub_opts *o);
struct cn_config;
/* Defaults plus the configuration's cache_dir, and a progress bar when stderr is a terminal: what
 * a command that takes --model (serve, transcribe) passes to cn_hub_resolve_model. `o` borrows
 * strings from `cfg`. */
void cn_hub_opts_from_config(cn_hub_opts *o, const struct cn_config *cfg);

/* True for "org/name" (optionally "@revision"): letters, digits, '.', '_', '-'; no "..". */
bool cn_hub_is_repo_name(const char *s);

/* The cache directory in effect. */
cn_status cn_hub_cache_dir(const cn_hub_opts *o, char *out, size_t n, cn_error *err);

/* Downloads (or finds up to date in the cache) the repository's .nemo file; *out_path (malloc'd)
 * is the snapshot path. Offline: the cached copy or a clear error. */
cn_status cn_hub_pull(const cn_hub_opts *o, const char *repo, char **out_path, cn_error *err);

/* The cached .nemo for repo at the revision, without any network. CANARY_ENOTFOUND if absent. */
cn_status cn_hub_find_cached(const cn_hub_opts *o, const char *repo, char **out_path, cn_error *err);

/* --model resolution, for every module: an existing file or directory is used as it is (an LFS
 * pointer file is refused with advice); "org/name" is pulled on first use. When neither network
 * nor cache has the model, the error is the paragraph that tells a user how to go on. */
cn_status cn_hub_resolve_model(const char *spec, const cn_hub_opts *o, char **out_path, cn_error *err);

typedef struct cn_hub_cached {
    char repo[256];
    char revision[64];
    char commit[64];
    char file[256];
    char path[1024];      /* snapshot path */
    uint64_t size;        /* bytes of the verified blob, or of the partial download */
    bool complete;        /* false: only an .incomplete download exists */
} cn_hub_cached;

/* Everything in the cache; *out is malloc'd (free it). */
cn_status cn_hub_list(const cn_hub_opts *o, cn_hub_cached **out, size_t *n, cn_error *err);
/* Removes a repository's cache folder (waits for a pull in progress). */
cn_status cn_hub_remove(const cn_hub_opts *o, const char *repo, cn_error *err);

/* ---- parsers, exposed for tests and fuzzing (input is untrusted network data) ---- */

typedef struct cn_hub_file_meta {
    long status;
    char etag[96];         /* normalized: no W/ prefix, no quotes */
    char linked_etag[96];
    char commit[64];
    uint64_t linked_size, content_length;
    char location[2048];
    char error_code[64];   /* X-Error-Code: RepoNotFound, EntryNotFound, RevisionNotFound, GatedRepo */
    char error_message[256];
} cn_hub_file_meta;

/* Feeds one raw header line ("Name: value\r\n" or a status line, which resets the struct). */
void cn_hub_parse_header(const char *line, size_t len, cn_hub_file_meta *m);
/* Strips a W/ prefix and surrounding quotes. */
void cn_hub_normalize_etag(const char *in, char *out, size_t n);

typedef struct cn_hub_repo_info {
    char commit[64];
    char file[256];        /* the chosen .nemo */
    uint64_t size;         /* 0 when the listing has no sizes */
    char lfs_sha256[65];   /* "" when the listing has no LFS data */
} cn_hub_repo_info;

/* Parses {endpoint}/api/models/... JSON and picks the .nemo: "<name>.nemo" if present, else the
 * only .nemo. */
cn_status cn_hub_parse_repo_info(const char *json, size_t len, const char *repo, cn_hub_repo_info *out,
                                 cn_error *err);

/* A Git LFS pointer ("version https://git-lfs.github.com/spec/v1\noid sha256:...\nsize N\n"). */
bool cn_hub_parse_lfs_pointer(const char *text, size_t len, char sha256[65], uint64_t *size);

#endif

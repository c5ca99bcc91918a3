/* Hub downloads, the cache and --model resolution (see hub.h). */
#include "hub/hub.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strbuf.h"

#define PATH_MAX_ 4096

void cn_hub_opts_init(cn_hub_opts *o) {
    memset(o, 0, sizeof *o);
    o->offline = -1;
    o->retries = -1;
}

void cn_hub_opts_from_config(cn_hub_opts *o, const cn_config *cfg) {
    cn_hub_opts_init(o);
    if (cfg)
        o->cache_dir = cfg->cache_dir;
    o->progress = true; /* drawn only when stderr is a terminal */
}

/* ------------------------------------------------------------------------------------------ */
/* names, settings                                                                             */
/* ------------------------------------------------------------------------------------------ */

static bool name_part_ok(const char *s, size_t n) {
    if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-'))
            return false;
        if (c == '.' && i + 1 < n && s[i + 1] == '.')
            return false;
    }
    return true;
}

bool cn_hub_is_repo_name(const char *s) {
    if (!s)
        return false;
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    const char *at = strchr(slash + 1, '@');
    const char *name_end = at ? at : s + strlen(s);
    if (!name_part_ok(s, (size_t)(slash - s)) || !name_part_ok(slash + 1, (size_t)(name_end - slash - 1)))
        return false;
    if (at) {
        /* revisions: branch, tag or commit; '/' would escape the refs folder */
        const char *r = at + 1;
        if (!*r || strlen(r) > 60 || strstr(r, ".."))
            return false;
        for (; *r; r++)
            if (!(isalnum((unsigned char)*r) || *r == '.' || *r == '_' || *r == '-'))
                return false;
    }
    return true;
}

/* "org/name@rev" -> repo "org/name", revision "rev" (or opts/default). */
static void split_repo(const char *spec, const cn_hub_opts *o, char *repo, size_t rn, char *rev, size_t vn) {
    snprintf(repo, rn, "%s", spec);
    char *at = strchr(repo, '@');
    if (at) {
        *at = '\0';
        snprintf(rev, vn, "%s", at + 1);
    } else {
        snprintf(rev, vn, "%s", o && o->revision && o->revision[0] ? o->revision : "main");
    }
}

cn_status cn_hub_cache_dir(const cn_hub_opts *o, char *out, size_t n, cn_error *err) {
    if (o && o->cache_dir && o->cache_dir[0]) {
        snprintf(out, n, "%s", o->cache_dir);
        return CANARY_OK;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && xdg[0] == '/') {
        snprintf(out, n, "%s/canary-stt", xdg);
        return CANARY_OK;
    }
    const char *home = getenv("HOME");
    if (home && home[0]) {
        snprintf(out, n, "%s/.cache/canary-stt", home);
        return CANARY_OK;
    }
    return cn_error_set(err, CANARY_EINVAL, "no model cache directory: set cache_dir, XDG_CACHE_HOME or HOME");
}

static void repo_dir(const char *cache, const char *repo, char *out, size_t n) {
    char flat[300];
    snprintf(flat, sizeof flat, "%s", repo);
    for (char *p = flat; *p; p++)
        if (*p == '/') {
            memmove(p + 2, p + 1, strlen(p + 1) + 1);
            p[0] = p[1] = '-';
            p++;
        }
    snprintf(out, n, "%s/models--%s", cache, flat);
}

static bool offline_mode(const cn_hub_opts *o) {
    if (o && o->offline >= 0)
        return o->offline != 0;
    const char *v = getenv("HF_HUB_OFFLINE");
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
                 strcasecmp(v, "on") == 0);
}

static void endpoint_of(const cn_hub_opts *o, char *out, size_t n) {
    const char *e = o && o->endpoint && o->endpoint[0] ? o->endpoint : getenv("HF_ENDPOINT");
    snprintf(out, n, "%s", e && e[0] ? e : CN_HUB_DEFAULT_ENDPOINT);
    size_t l = strlen(out);
    while (l && out[l - 1] == '/')
        out[--l] = '\0';
}

static void token_of(const cn_hub_opts *o, char *out, size_t n) {
    out[0] = '\0';
    const char *t = o && o->token ? o->token : NULL;
    if (!t || !t[0])
        t = getenv("HF_TOKEN");
    if (!t || !t[0])
        t = getenv("HUGGING_FACE_HUB_TOKEN");
    if (t && t[0]) {
        snprintf(out, n, "%s", t);
    } else {
        /* where `huggingface-cli login` stores it */
        char path[PATH_MAX_];
        const char *hf_home = getenv("HF_HOME");
        const char *home = getenv("HOME");
        if (hf_home && hf_home[0])
            snprintf(path, sizeof path, "%s/token", hf_home);
        else if (home)
            snprintf(path, sizeof path, "%s/.cache/huggingface/token", home);
        else
            return;
        char *text = NULL;
        size_t len;
        cn_error e;
        if (cn_read_file(path, 4096, &text, &len, &e) != CANARY_OK)
            return;
        snprintf(out, n, "%s", text);
        free(text);
    }
    size_t l = strlen(out);
    while (l && isspace((unsigned char)out[l - 1]))
        out[--l] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct http {
    CURL *c;
    struct curl_slist *headers;
    char curl_err[CURL_ERROR_SIZE];
    cn_hub_file_meta meta;
} http;

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    cn_hub_parse_header(buf, size * n, &((http *)ud)->meta);
    return size * n;
}

static cn_status http_open(http *h, const char *token, cn_error *err) {
    pthread_once(&curl_once, curl_init_once);
    memset(h, 0, sizeof *h);
    h->c = curl_easy_init();
    if (!h->c)
        return cn_error_set(err, CANARY_ENOMEM, "cannot create a libcurl handle");
    char ua[128];
    snprintf(ua, sizeof ua, "canary-stt/%s; %s", CANARY_VERSION, curl_version());
    curl_easy_setopt(h->c, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(h->c, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(h->c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h->c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->c, CURLOPT_CONNECTTIMEOUT, 15L);
    /* a stalled transfer (under 1 KiB/s for 60 s) is broken: resume it instead of hanging */
    curl_easy_setopt(h->c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h->c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h->c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* http_proxy / https_proxy / no_proxy are honoured by libcurl itself */
    h->headers = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (token && token[0]) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        /* libcurl does not forward a custom Authorization header to another host on redirect,
         * so the token never reaches the CDN */
        h->headers = curl_slist_append(h->headers, auth);
    }
    curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, h->headers);
    return CANARY_OK;
}

static void http_close(http *h) {
    if (h->c)
        curl_easy_cleanup(h->c);
    curl_slist_free_all(h->headers);
    memset(h, 0, sizeof *h);
}

typedef struct membuf {
    cn_strbuf sb;
    size_t cap;
} membuf;

static size_t on_body_mem(char *buf, size_t size, size_t n, void *ud) {
    membuf *m = ud;
    if (m->sb.len + size * n > m->cap)
        return 0; /* abort: larger than any model listing */
    cn_sb_putn(&m->sb, buf, size * n);
    return size * n;
}

/* The message for a transport failure (no HTTP status). */
static cn_status net_error(cn_error *err, const char *url, CURLcode rc, const char *detail) {
    return cn_error_set(err, CANARY_EIO, "cannot reach %s: %s", url, detail && detail[0] ? detail : curl_easy_strerror(rc));
}

/* Turns an HTTP error status into the message a user can act on. */
static cn_status http_status_error(cn_error *err, long status, const cn_hub_file_meta *m, const char *endpoint,
                                   const char *repo, const char *rev, const char *file, bool have_token) {
    const char *code = m->error_code;
    if (status == 401 || (status == 403 && strcmp(code, "GatedRepo") != 0)) {
        if (have_token)
            return cn_error_set(err, CANARY_EIO,
                                "the hub at %s refused the token for %s (HTTP %ld%s%s): check that HF_TOKEN is a "
                                "valid access token with read access, or that the repository name is right",
                                endpoint, repo, status, code[0] ? ", " : "", code);
        return cn_error_set(err, CANARY_EIO,
                            "the hub at %s answered %ld Unauthorized for %s: the repository does not exist, or it "
                            "is private or gated and needs a login: set HF_TOKEN to an access token "
                            "(https://huggingface.co/settings/tokens)",
                            endpoint, status, repo);
    }
    if (status == 403)
        return cn_error_set(err, CANARY_EIO,
                            "%s is a gated repository: accept its terms at %s/%s while logged in, then set HF_TOKEN",
                            repo, endpoint, repo);
    if (status == 404) {
        if (strcmp(code, "RevisionNotFound") == 0)
            return cn_error_set(err, CANARY_ENOTFOUND, "repository %s has no revision '%s' at %s", repo, rev, endpoint);
        if (strcmp(code, "EntryNotFound") == 0 && file)
            return cn_error_set(err, CANARY_ENOTFOUND, "repository %s has no file %s at revision %s", repo, file, rev);
        return cn_error_set(err, CANARY_ENOTFOUND, "repository %s was not found at %s (HTTP 404%s%s)", repo, endpoint,
                            code[0] ? ", " : "", code);
    }
    if (status == 429)
        return cn_error_set(err, CANARY_EIO, "the hub at %s is rate-limiting requests (HTTP 429): try again later",
                            endpoint);
    return cn_error_set(err, CANARY_EIO, "the hub at %s answered HTTP %ld for %s%s%s%s", endpoint, status, repo,
                        file ? "/" : "", file ? file : "", m->error_message[0] ? m->error_message : "");
}

/* ------------------------------------------------------------------------------------------ */
/* cache helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

static bool file_size(const char *path, uint64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    *size = (uint64_t)st.st_size;
    return true;
}

static cn_status hash_file(const char *path, const char *algo, uint64_t git_blob_size, char *hex, size_t hn,
                           cn_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return cn_error_errno(err, errno, "opening %s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = strcmp(algo, "sha1") == 0 ? EVP_sha1() : EVP_sha256();
    if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        fclose(f);
        EVP_MD_CTX_free(ctx);
        return cn_error_set(err, CANARY_EINTERNAL, "OpenSSL digest init failed");
    }
    if (strcmp(algo, "sha1") == 0) {
        /* git blob id: sha1("blob <size>\0" + content) */
        char hdr[40];
        int hl = snprintf(hdr, sizeof hdr, "blob %llu", (unsigned long long)git_blob_size);
        EVP_DigestUpdate(ctx, hdr, (size_t)hl + 1);
    }
    static const size_t chunk = 1 << 20;
    unsigned char *buf = malloc(chunk);
    size_t n;
    cn_status st = CANARY_OK;
    while (buf && (n = fread(buf, 1, chunk, f)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    if (!buf)
        st = cn_error_set(err, CANARY_ENOMEM, "out of memory hashing %s", path);
    else if (ferror(f))
        st = cn_error_errno(err, errno, "reading %s", path);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    EVP_DigestFinal_ex(ctx, d, &dl);
    for (unsigned i = 0; i < dl && 2 * i + 2 < hn; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    free(buf);
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return st;
}

static bool is_hex_n(const char *s, size_t n) {
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* flock()s {repo_dir}/.lock; waits (saying so) when another process is pulling. */
static cn_status lock_repo(const char *rdir, const char *repo, int *fd_out, cn_error *err) {
    CN_TRY(cn_mkdirs(rdir, err));
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s/.lock", rdir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return cn_error_errno(err, errno, "opening the cache lock %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        CN_INFO("hub", "another canary-stt is downloading %s; waiting for it", repo);
        if (flock(fd, LOCK_EX) != 0) {
            close(fd);
            return cn_error_errno(err, errno, "locking %s", path);
        }
    }
    *fd_out = fd;
    return CANARY_OK;
}

static void unlock_repo(int fd) {
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

/* snapshots/{commit}/{file} -> ../../blobs/{sha}, replaced atomically; refs/{rev} = commit. */
static cn_status publish(const char *rdir, const char *rev, const char *commit, const char *file, const char *sha,
                         char **out_path, cn_error *err) {
    char dir[PATH_MAX_], link[PATH_MAX_], tmp[PATH_MAX_ + 32], target[PATH_MAX_];
    snprintf(dir, sizeof dir, "%s/snapshots/%s", rdir, commit);
    CN_TRY(cn_mkdirs(dir, err));
    snprintf(link, sizeof link, "%s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", link, (int)getpid());
    snprintf(target, sizeof target, "../../blobs/%s", sha);
    unlink(tmp);
    if (symlink(target, tmp) != 0)
        return cn_error_errno(err, errno, "creating the cache link %s", tmp);
    if (rename(tmp, link) != 0) {
        int e = errno;
        unlink(tmp);
        return cn_error_errno(err, e, "renaming %s", tmp);
    }
    char refs[PATH_MAX_], ref[PATH_MAX_];
    snprintf(refs, sizeof refs, "%s/refs", rdir);
    CN_TRY(cn_mkdirs(refs, err));
    snprintf(ref, sizeof ref, "%s/%s", refs, rev);
    if (strcmp(rev, commit) != 0)
        CN_TRY(cn_write_file_atomic(ref, commit, strlen(commit), err));
    *out_path = strdup(link);
    return *out_path ? CANARY_OK : cn_error_set(err, CANARY_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------------------------------------ */
/* download                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct dl {
    FILE *f;
    uint64_t offset;        /* bytes already on disk when this request started */
    uint64_t written;       /* bytes written by this request */
    uint64_t total;         /* expected size */
    bool restarted;         /* the server ignored Range: we truncated */
    bool error_body;        /* an HTTP error: body discarded */
    CURL *c;
    bool progress;
    uint64_t last_draw_ns;
    uint64_t t0;
    const char *label;
} dl;

static size_t on_body_file(char *buf, size_t size, size_t n, void *ud) {
    dl *d = ud;
    size_t len = size * n;
    if (d->written == 0 && !d->error_body) {
        long code = 0;
        curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 400) {
            d->error_body = true;
        } else if (code == 200 && d->offset > 0) {
            /* the server ignored the Range header: start over */
            if (ftruncate(fileno(d->f), 0) != 0 || fseek(d->f, 0, SEEK_SET) != 0)
                return 0;
            d->offset = 0;
            d->restarted = true;
        }
    }
    if (d->error_body)
        return len;
    if (d->offset + d->written + len > d->total && d->total)
        return 0; /* more than the hub announced: refuse to fill the disk */
    if (fwrite(buf, 1, len, d->f) != len)
        return 0;
    d->written += len;
    return len;
}

static void draw_progress(dl *d, uint64_t dlnow, bool force) {
    uint64_t now = cn_now_ns();
    if (!force && now - d->last_draw_ns < 200000000ull)
        return;
    d->last_draw_ns = now;
    double done = (double)(d->offset + dlnow), total = (double)d->total;
    double secs = (double)(now - d->t0) * 1e-9;
    double rate = secs > 0 ? (double)dlnow / secs : 0;
    int width = 30, fill = total > 0 ? (int)(width * done / total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %5.1f%% %.1f/%.1f MiB %.1f MiB/s ", d->label, bar, total > 0 ? 100.0 * done / total : 0,
            done / 1048576.0, total / 1048576.0, rate / 1048576.0);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    dl *d = ud;
    if (d->progress && dlnow > 0)
        draw_progress(d, (uint64_t)dlnow, false);
    return 0;
}

static bool transient(CURLcode rc) {
    switch (rc) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Downloads url into `part` (resuming), until it holds `total` bytes. */
static cn_status download(const cn_hub_opts *o, const char *token, const char *url, const char *part,
                          uint64_t total, const char *label, const char *endpoint, const char *repo,
                          const char *rev, const char *file, cn_error *err) {
    int retries = o && o->retries >= 0 ? o->retries : 5;
    for (int attempt = 0;; attempt++) {
        uint64_t have = 0;
        file_size(part, &have);
        if (have > total) { /* not ours: start over */
            unlink(part);
            have = 0;
        }
        if (have == total && total > 0)
            return CANARY_OK;
        FILE *f = fopen(part, "ab");
        if (!f)
            return cn_error_errno(err, errno, "opening %s", part);
        http h;
        cn_status st = http_open(&h, token, err);
        if (st) {
            fclose(f);
            return st;
        }
        dl d = {f, have, 0, total, false, false, h.c, o && o->progress && isatty(2), 0, cn_now_ns(), label};
        char range[48];
        snprintf(range, sizeof range, "%llu-", (unsigned long long)have);
        curl_easy_setopt(h.c, CURLOPT_URL, url);
        curl_easy_setopt(h.c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h.c, CURLOPT_MAXREDIRS, 10L);
        if (have > 0) {
            curl_easy_setopt(h.c, CURLOPT_RANGE, range);
            CN_INFO("hub", "resuming %s at byte %llu", label, (unsigned long long)have);
        }
        curl_easy_setopt(h.c, CURLOPT_WRITEFUNCTION, on_body_file);
        curl_easy_setopt(h.c, CURLOPT_WRITEDATA, &d);
        curl_easy_setopt(h.c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h.c, CURLOPT_XFERINFODATA, &d);
        curl_easy_setopt(h.c, CURLOPT_NOPROGRESS, 0L);
        CURLcode rc = curl_easy_perform(h.c);
        long status = 0;
        curl_easy_getinfo(h.c, CURLINFO_RESPONSE_CODE, &status);
        bool flushed = fflush(f) == 0 && fsync(fileno(f)) == 0;
        fclose(f);
        if (d.progress) {
            draw_progress(&d, d.written, true); /* the final state, however fast it went */
            fputc('\n', stderr);
        }
        cn_hub_file_meta meta = h.meta;
        char cerr[CURL_ERROR_SIZE];
        snprintf(cerr, sizeof cerr, "%s", h.curl_err);
        http_close(&h);
        if (!flushed)
            return cn_error_errno(err, errno, "writing %s", part);
        if (status == 416) {
            /* our partial file is not a prefix the server agrees with */
            unlink(part);
            if (attempt < retries)
                continue;
            return cn_error_set(err, CANARY_EIO, "the server refused to resume %s (HTTP 416)", label);
        }
        if (status >= 500 && attempt < retries) {
            /* the hub or CDN hiccuped (502/503/504): wait and resume */
            CN_WARN("hub", "HTTP %ld while downloading %s; retrying", status, label);
            struct timespec ts = {0, 200000000L * (attempt + 1)};
            nanosleep(&ts, NULL);
            continue;
        }
        if (status >= 400)
            return http_status_error(err, status, &meta, endpoint, repo, rev, file, token[0] != '\0');
        uint64_t now_have = 0;
        file_size(part, &now_have);
        if (rc == CURLE_OK && now_have == total)
            return CANARY_OK;
        if (rc == CURLE_WRITE_ERROR && now_have >= total)
            return cn_error_set(err, CANARY_EFORMAT, "the server sent more than the %llu bytes the hub announced for %s",
                                (unsigned long long)total, label);
        bool retry = rc == CURLE_OK || transient(rc); /* a short body on a clean close is also a cut */
        if (!retry || attempt >= retries) {
            if (rc == CURLE_OK)
                return cn_error_set(err, CANARY_EIO,
                                    "download of %s ended at %llu of %llu bytes; run the command again to resume",
                                    label, (unsigned long long)now_have, (unsigned long long)total);
            net_error(err, url, rc, cerr);
            return cn_error_prefix(err, "download of %s stopped at %llu of %llu bytes (run the command again to "
                                        "resume)",
                                   label, (unsigned long long)now_have, (unsigned long long)total);
        }
        CN_WARN("hub", "download of %s interrupted at %llu of %llu bytes (%s); resuming", label,
                (unsigned long long)now_have, (unsigned long long)total,
                rc == CURLE_OK ? "connection closed early" : cerr[0] ? cerr : curl_easy_strerror(rc));
        struct timespec ts = {0, 200000000L * (attempt + 1)};
        nanosleep(&ts, NULL);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* pull                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static cn_status find_cached_in(const char *rdir, const char *rev, char **out_path, cn_error *err) {
    char commit[128] = "";
    if (is_hex_n(rev, 40)) {
        snprintf(commit, sizeof commit, "%s", rev);
    } else {
        char ref[PATH_MAX_];
        snprintf(ref, sizeof ref, "%s/refs/%s", rdir, rev);
        char *text = NULL;
        size_t len;
        cn_error e;
        if (cn_read_file(ref, 256, &text, &len, &e) != CANARY_OK)
            return cn_error_set(err, CANARY_ENOTFOUND, "not cached");
        snprintf(commit, sizeof commit, "%s", text);
        free(text);
        size_t l = strlen(commit);
        while (l && isspace((unsigned char)commit[l - 1]))
            commit[--l] = '\0';
        if (!commit[0] || strchr(commit, '/') || strstr(commit, ".."))
            return cn_error_set(err, CANARY_EFORMAT, "the cache ref %s is corrupt", ref);
    }
    char dir[PATH_MAX_];
    snprintf(dir, sizeof dir, "%s/snapshots/%s", rdir, commit);
    DIR *d = opendir(dir);
    if (!d)
        return cn_error_set(err, CANARY_ENOTFOUND, "not cached");
    struct dirent *e;
    cn_status st = cn_error_set(err, CANARY_ENOTFOUND, "not cached");
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".nemo") != 0)
            continue;
        char path[PATH_MAX_];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint64_t sz;
        if (!file_size(path, &sz)) /* stat follows the link: the blob must exist */
            continue;
        *out_path = strdup(path);
        st = *out_path ? CANARY_OK : cn_error_set(err, CANARY_ENOMEM, "out of memory");
        break;
    }
    closedir(d);
    return st;
}

cn_status cn_hub_find_cached(const cn_hub_opts *o, const char *spec, char **out_path, cn_error *err) {
    *out_path = NULL;
    if (!cn_hub_is_repo_name(spec))
        return cn_error_set(err, CANARY_EINVAL, "'%s' is not a hub repository name (org/name)", spec);
    char cache[PATH_MAX_], rdir[PATH_MAX_ + 300], repo[300], rev[80];
    CN_TRY(cn_hub_cache_dir(o, cache, sizeof cache, err));
    split_repo(spec, o, repo, sizeof repo, rev, sizeof rev);
    repo_dir(cache, repo, rdir, sizeof rdir);
    cn_status st = find_cached_in(rdir, rev, out_path, err);
    if (st == CANARY_ENOTFOUND)
        cn_error_set(err, CANARY_ENOTFOUND, "%s (revision %s) is not in the model cache %s", repo, rev, cache);
    return st;
}

/* The paragraph for "no network and nothing cached" (what `make run` shows on an offline machine).
 * It must stay under CN_ERROR_MSG_MAX with a long cache path and curl message. */
static cn_status unavailable(cn_error *err, const char *repo, const char *cache, const char *why) {
    const char *slash = strrchr(repo, '/');
    const char *name = slash ? slash + 1 : repo;
    return cn_error_set(err, CANARY_EIO,
                        "cannot get the model %s: it is not in the model cache (%.200s) and the download failed "
                        "(%.240s).\n"
                        "To go on: (1) download %s.nemo from https://huggingface.co/%s on a machine with "
                        "network and start with --model /path/to/%s.nemo; (2) behind a proxy set https_proxy, or "
                        "set HF_ENDPOINT to a mirror; (3) for a smoke run without real weights, make a "
                        "random-weight test model: /usr/bin/python3 tools/make-test-model --layout "
                        "canary-180m-flash --out /tmp/m, then --model /tmp/m/canary-180m-flash-tiny.nemo.",
                        repo, cache, why, name, repo, name);
}

cn_status cn_hub_pull(const cn_hub_opts *o, const char *spec, char **out_path, cn_error *err) {
    *out_path = NULL;
    if (!cn_hub_is_repo_name(spec))
        return cn_error_set(err, CANARY_EINVAL, "'%s' is not a hub repository name (org/name[@revision])", spec);
    char cache[PATH_MAX_], rdir[PATH_MAX_ + 300], repo[300], rev[80], endpoint[1024], token[512];
    CN_TRY(cn_hub_cache_dir(o, cache, sizeof cache, err));
    split_repo(spec, o, repo, sizeof repo, rev, sizeof rev);
    repo_dir(cache, repo, rdir, sizeof rdir);
    endpoint_of(o, endpoint, sizeof endpoint);
    token_of(o, token, sizeof token);

    if (offline_mode(o)) {
        if (find_cached_in(rdir, rev, out_path, err) == CANARY_OK)
            return CANARY_OK;
        return cn_error_set(err, CANARY_ENOTFOUND,
                            "HF_HUB_OFFLINE is set and %s (revision %s) is not in the model cache %s: run "
                            "`canary-stt models pull %s` with network access first, or pass a local .nemo to --model",
                            repo, rev, cache, repo);
    }

    /* 1. the listing: commit and file name (+ LFS sha256 and size) */
    char url[4096];
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", endpoint, repo, rev);
    http h;
    CN_TRY(http_open(&h, token, err));
    membuf body = {{0}, 16u << 20};
    cn_sb_init(&body.sb);
    curl_easy_setopt(h.c, CURLOPT_URL, url);
    curl_easy_setopt(h.c, CURLOPT_WRITEFUNCTION, on_body_mem);
    curl_easy_setopt(h.c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h.c, CURLOPT_TIMEOUT, 60L);
    CURLcode rc = curl_easy_perform(h.c);
    long status = 0;
    curl_easy_getinfo(h.c, CURLINFO_RESPONSE_CODE, &status);
    cn_hub_file_meta meta = h.meta;
    char cerr[CURL_ERROR_SIZE];
    snprintf(cerr, sizeof cerr, "%s", h.curl_err);
    http_close(&h);
    cn_status st = CANARY_OK;
    if (rc != CURLE_OK || status == 0) {
        cn_sb_free(&body.sb);
        /* no network: a cached copy of this revision is good enough (as huggingface_hub does) */
        if (find_cached_in(rdir, rev, out_path, err) == CANARY_OK) {
            CN_WARN("hub", "cannot reach %s (%s); using the cached %s", endpoint,
                    cerr[0] ? cerr : curl_easy_strerror(rc), *out_path);
            return CANARY_OK;
        }
        char why[1400];
        snprintf(why, sizeof why, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
        return unavailable(err, repo, cache, why);
    }
    if (status >= 300) {
        cn_sb_free(&body.sb);
        return http_status_error(err, status, &meta, endpoint, repo, rev, NULL, token[0] != '\0');
    }
    cn_hub_repo_info info;
    st = cn_hub_parse_repo_info(cn_sb_str(&body.sb), body.sb.len, repo, &info, err);
    cn_sb_free(&body.sb);
    CN_TRY(st);

    /* 2. HEAD without redirects: the hub's own headers carry the checksum and size */
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", endpoint, repo, info.commit, info.file);
    CN_TRY(http_open(&h, token, err));
    curl_easy_setopt(h.c, CURLOPT_URL, url);
    curl_easy_setopt(h.c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h.c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h.c, CURLOPT_TIMEOUT, 60L);
    rc = curl_easy_perform(h.c);
    curl_easy_getinfo(h.c, CURLINFO_RESPONSE_CODE, &status);
    meta = h.meta;
    snprintf(cerr, sizeof cerr, "%s", h.curl_err);
    http_close(&h);
    if (rc != CURLE_OK)
        return net_error(err, url, rc, cerr);
    if (status >= 400)
        return http_status_error(err, status, &meta, endpoint, repo, rev, info.file, token[0] != '\0');
    if (meta.commit[0] && strcmp(meta.commit, info.commit) != 0)
        return cn_error_set(err, CANARY_EFORMAT, "the hub's commit for %s changed during the download (%s vs %s): retry",
                            repo, meta.commit, info.commit);
    /* LFS files: X-Linked-Etag is the sha256 of the content; ETag on a non-LFS file is the git
     * blob sha1; the listing's lfs.sha256 must agree with the headers when both exist */
    char sha256[80] = "", sha1[48] = "";
    if (is_hex_n(meta.linked_etag, 64))
        snprintf(sha256, sizeof sha256, "%s", meta.linked_etag);
    else if (is_hex_n(meta.etag, 64))
        snprintf(sha256, sizeof sha256, "%s", meta.etag);
    else if (is_hex_n(meta.etag, 40) && !meta.linked_etag[0])
        snprintf(sha1, sizeof sha1, "%s", meta.etag);
    if (info.lfs_sha256[0]) {
        if (sha256[0] && strcasecmp(sha256, info.lfs_sha256) != 0)
            return cn_error_set(err, CANARY_EFORMAT,
                                "the hub reports two checksums for %s/%s (header %s, listing %s): refusing to download",
                                repo, info.file, sha256, info.lfs_sha256);
        if (!sha256[0])
            snprintf(sha256, sizeof sha256, "%s", info.lfs_sha256);
    }
    uint64_t total = meta.linked_size ? meta.linked_size : (status == 200 ? meta.content_length : 0);
    if (!total)
        total = info.size;
    if (!total)
        return cn_error_set(err, CANARY_EFORMAT, "the hub did not report the size of %s/%s", repo, info.file);
    if (!sha256[0] && !sha1[0])
        return cn_error_set(err, CANARY_EFORMAT,
                            "the hub reported no checksum for %s/%s (no X-Linked-Etag, ETag or LFS sha256): refusing "
                            "an unverifiable download",
                            repo, info.file);
    for (char *p = sha256; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *blob_id = sha256[0] ? sha256 : sha1;

    /* 3. download under the repository lock */
    int lock = -1;
    CN_TRY(lock_repo(rdir, repo, &lock, err));
    char blobs[PATH_MAX_ + 320], blob[PATH_MAX_ + 400], part[PATH_MAX_ + 420];
    snprintf(blobs, sizeof blobs, "%s/blobs", rdir);
    snprintf(blob, sizeof blob, "%s/%s", blobs, blob_id);
    snprintf(part, sizeof part, "%s.incomplete", blob);
    uint64_t have = 0;
    if (file_size(blob, &have) && have == total) {
        st = publish(rdir, rev, info.commit, info.file, blob_id, out_path, err);
        unlock_repo(lock);
        return st;
    }
    st = cn_mkdirs(blobs, err);
    if (!st) {
        /* fail before the transfer, not at 95 %, when the cache's file system is too small */
        uint64_t part_have = 0;
        file_size(part, &part_have);
        struct statvfs fs;
        if (statvfs(blobs, &fs) == 0) {
            uint64_t free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
            if (free_bytes + part_have < total)
                st = cn_error_set(err, CANARY_EIO,
                                  "not enough space for %s/%s in %s: it needs %.1f MiB, %.1f MiB are free (set "
                                  "cache_dir / --cache-dir to another disk)",
                                  repo, info.file, blobs, (double)(total - part_have) / 1048576.0,
                                  (double)free_bytes / 1048576.0);
        }
    }
    char label[300];
    snprintf(label, sizeof label, "%s", info.file);
    if (!st)
        st = download(o, token, url, part, total, label, endpoint, repo, rev, info.file, err);
    if (!st) {
        char got[130] = "";
        st = hash_file(part, sha256[0] ? "sha256" : "sha1", total, got, sizeof got, err);
        if (!st && strcasecmp(got, blob_id) != 0) {
            unlink(part);
            st = cn_error_set(err, CANARY_EFORMAT,
                              "checksum mismatch for %s/%s: the hub reported %s %s, the downloaded file has %s; the "
                              "partial file was removed: run the command again (if it repeats, the mirror or proxy "
                              "is serving a different file)",
                              repo, info.file, sha256[0] ? "sha256" : "git blob sha1", blob_id, got);
        }
    }
    if (!st && rename(part, blob) != 0)
        st = cn_error_errno(err, errno, "renaming %s", part);
    if (!st)
        st = publish(rdir, rev, info.commit, info.file, blob_id, out_path, err);
    unlock_repo(lock);
    if (!st)
        CN_INFO("hub", "%s: %s verified (%llu bytes)", repo, info.file, (unsigned long long)total);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* --model                                                                                     */
/* ------------------------------------------------------------------------------------------ */

cn_status cn_hub_resolve_model(const char *spec, const cn_hub_opts *o, char **out_path, cn_error *err) {
    *out_path = NULL;
    if (!spec || !spec[0])
        spec = CN_HUB_DEFAULT_MODEL;
    struct stat st;
    if (stat(spec, &st) == 0) {
        if (S_ISREG(st.st_mode) && st.st_size < 1024) {
            char *text = NULL;
            size_t len;
            char sha[65];
            uint64_t size;
            if (cn_read_file(spec, 1024, &text, &len, err) == CANARY_OK && cn_hub_parse_lfs_pointer(text, len, sha, &size)) {
                free(text);
                return cn_error_set(err, CANARY_EFORMAT,
                                    "%s is a Git LFS pointer (the real file is %llu bytes, sha256 %s), not the model: "
                                    "run `git lfs pull` in that clone, or use the hub name with --model",
                                    spec, (unsigned long long)size, sha);
            }
            free(text);
        }
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            return cn_error_set(err, CANARY_EINVAL, "--model %s is neither a file nor a directory", spec);
        char *real = realpath(spec, NULL);
        if (!real)
            return cn_error_errno(err, errno, "resolving %s", spec);
        *out_path = real;
        return CANARY_OK;
    }
    if (cn_hub_is_repo_name(spec))
        return cn_hub_pull(o, spec, out_path, err);
    if (strstr(spec, ".nemo") || strchr(spec, '/') == spec || spec[0] == '.')
        return cn_error_set(err, CANARY_ENOTFOUND, "--model %s: no such file or directory", spec);
    return cn_error_set(err, CANARY_EINVAL,
                        "--model '%s' is neither an existing file or directory nor a hub name like %s", spec,
                        CN_HUB_DEFAULT_MODEL);
}

/* ------------------------------------------------------------------------------------------ */
/* list, rm                                                                                    */
/* ------------------------------------------------------------------------------------------ */

cn_status cn_hub_list(const cn_hub_opts *o, cn_hub_cached **out, size_t *n, cn_error *err) {
    *out = NULL;
    *n = 0;
    char cache[PATH_MAX_];
    CN_TRY(cn_hub_cache_dir(o, cache, sizeof cache, err));
    DIR *d = opendir(cache);
    if (!d)
        return errno == ENOENT ? CANARY_OK : cn_error_errno(err, errno, "reading the model cache %s", cache);
    size_t cap = 0;
    struct dirent *e;
    cn_status st = CANARY_OK;
    while ((e = readdir(d)) && !st) {
        if (strncmp(e->d_name, "models--", 8) != 0 || strstr(e->d_name, ".removing."))
            continue; /* .removing.PID: an rm that was interrupted */
        /* models--org--name -> org/name */
        char repo[256];
        snprintf(repo, sizeof repo, "%s", e->d_name + 8);
        char *sep = strstr(repo, "--");
        if (!sep)
            continue;
        sep[0] = '/';
        memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
        char rdir[PATH_MAX_ + 300];
        snprintf(rdir, sizeof rdir, "%s/%s", cache, e->d_name);
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            cn_hub_cached *nb = realloc(*out, cap * sizeof **out);
            if (!nb) {
                st = cn_error_set(err, CANARY_ENOMEM, "out of memory");
                break;
            }
            *out = nb;
        }
        cn_hub_cached *c = &(*out)[*n];
        memset(c, 0, sizeof *c);
        snprintf(c->repo, sizeof c->repo, "%s", repo);
        /* the refs tell which revisions are complete */
        char refs[PATH_MAX_ + 310];
        snprintf(refs, sizeof refs, "%s/refs", rdir);
        DIR *rd = opendir(refs);
        struct dirent *re;
        while (rd && (re = readdir(rd))) {
            if (re->d_name[0] == '.')
                continue;
            char *path = NULL;
            cn_error e2;
            if (find_cached_in(rdir, re->d_name, &path, &e2) == CANARY_OK) {
                snprintf(c->revision, sizeof c->revision, "%s", re->d_name);
                snprintf(c->path, sizeof c->path, "%s", path);
                const char *slash = strrchr(path, '/');
                snprintf(c->file, sizeof c->file, "%s", slash ? slash + 1 : path);
                char ref[PATH_MAX_ + 400];
                snprintf(ref, sizeof ref, "%s/%s", refs, re->d_name);
                char *text = NULL;
                size_t len;
                if (cn_read_file(ref, 128, &text, &len, &e2) == CANARY_OK) {
                    snprintf(c->commit, sizeof c->commit, "%.*s", (int)strcspn(text, "\r\n"), text);
                    free(text);
                }
                file_size(path, &c->size);
                c->complete = true;
                free(path);
                break;
            }
            free(path);
        }
        if (rd)
            closedir(rd);
        if (!c->complete) {
            /* pulled by commit ("org/name@<sha>"): no ref points at the snapshot */
            char snaps[PATH_MAX_ + 310];
            snprintf(snaps, sizeof snaps, "%s/snapshots", rdir);
            DIR *sd = opendir(snaps);
            struct dirent *se;
            while (sd && !c->complete && (se = readdir(sd))) {
                char *path = NULL;
                cn_error e2;
                if (is_hex_n(se->d_name, 40) && find_cached_in(rdir, se->d_name, &path, &e2) == CANARY_OK) {
                    snprintf(c->revision, sizeof c->revision, "%s", se->d_name);
                    snprintf(c->commit, sizeof c->commit, "%s", se->d_name);
                    snprintf(c->path, sizeof c->path, "%s", path);
                    const char *slash = strrchr(path, '/');
                    snprintf(c->file, sizeof c->file, "%s", slash ? slash + 1 : path);
                    file_size(path, &c->size);
                    c->complete = true;
                }
                free(path);
            }
            if (sd)
                closedir(sd);
        }
        if (!c->complete) {
            /* a partial download: report its size so users see resumable progress */
            char blobs[PATH_MAX_ + 310];
            snprintf(blobs, sizeof blobs, "%s/blobs", rdir);
            DIR *bd = opendir(blobs);
            struct dirent *be;
            while (bd && (be = readdir(bd))) {
                uint64_t sz;
                char p[PATH_MAX_ + 600];
                snprintf(p, sizeof p, "%s/%s", blobs, be->d_name);
                if (strstr(be->d_name, ".incomplete") && file_size(p, &sz))
                    c->size += sz;
            }
            if (bd)
                closedir(bd);
        }
        (*n)++;
    }
    closedir(d);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

static int rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[PATH_MAX_];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        if (rm_tree(child) != 0)
            rc = -1;
    }
    closedir(d);
    return rc == 0 ? rmdir(path) : rc;
}

cn_status cn_hub_remove(const cn_hub_opts *o, const char *spec, cn_error *err) {
    if (!cn_hub_is_repo_name(spec))
        return cn_error_set(err, CANARY_EINVAL, "'%s' is not a hub repository name (org/name)", spec);
    char cache[PATH_MAX_], rdir[PATH_MAX_ + 300], repo[300], rev[80];
    CN_TRY(cn_hub_cache_dir(o, cache, sizeof cache, err));
    split_repo(spec, o, repo, sizeof repo, rev, sizeof rev);
    repo_dir(cache, repo, rdir, sizeof rdir);
    struct stat st;
    if (stat(rdir, &st) != 0)
        return cn_error_set(err, CANARY_ENOTFOUND, "%s is not in the model cache %s", repo, cache);
    int lock = -1;
    CN_TRY(lock_repo(rdir, repo, &lock, err));
    /* move aside first so that a reader never sees a half-deleted tree */
    char trash[PATH_MAX_ + 340];
    snprintf(trash, sizeof trash, "%s.removing.%d", rdir, (int)getpid());
    cn_status s = CANARY_OK;
    if (rename(rdir, trash) != 0)
        s = cn_error_errno(err, errno, "removing %s", rdir);
    unlock_repo(lock);
    if (!s && rm_tree(trash) != 0)
        s = cn_error_errno(err, errno, "removing %s", trash);
    return s;
}

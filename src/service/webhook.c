/* Webhooks: when a job with a webhook_url finishes, its job object is POSTed there, signed with
 * HMAC-SHA256 over "<timestamp>.<body>" (headers X-Canary-Timestamp, X-Canary-Signature:
 * sha256=<hex>). Failed deliveries are retried with exponential backoff up to a bounded number of
 * attempts; the delivery state is in the store so that pending ones resume after a restart. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "service/internal.h"

cn_status webhook_load_secret(cn_service *s, cn_error *err) {
    if (s->opt.webhook_secret && s->opt.webhook_secret[0]) {
        snprintf(s->webhook_secret, sizeof s->webhook_secret, "%s", s->opt.webhook_secret);
        return CANARY_OK;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/webhook_secret", s->data_dir);
    char *text = NULL;
    size_t len = 0;
    cn_error e2;
    cn_error_clear(&e2);
    if (cn_read_file(path, 4096, &text, &len, &e2) == CANARY_OK && len >= 16) {
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            text[--len] = 0;
        snprintf(s->webhook_secret, sizeof s->webhook_secret, "%s", text);
        free(text);
        return CANARY_OK;
    }
    free(text);
    unsigned char raw[24];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return cn_error_errno(err, errno, "generating a webhook secret");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->webhook_secret + 2 * i, 3, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return cn_error_errno(err, errno, "creating %s", path);
    ssize_t w = write(fd, s->webhook_secret, strlen(s->webhook_secret));
    fsync(fd);
    close(fd);
    if (w != (ssize_t)strlen(s->webhook_secret))
        return cn_error_set(err, CANARY_EIO, "writing %s failed", path);
    CN_INFO("webhook", "generated a webhook signing secret in %s", path);
    return CANARY_OK;
}

void webhook_enqueue(cn_service *s, const char *id) {
    webhook_item *w = calloc(1, sizeof *w);
    if (!w)
        return;
    snprintf(w->id, sizeof w->id, "%s", id);
    w->due = cn_now_s();
    pthread_mutex_lock(&s->wmu);
    w->next = s->wq;
    s->wq = w;
    pthread_cond_signal(&s->wcond);
    pthread_mutex_unlock(&s->wmu);
}

static size_t discard(char *p, size_t sz, size_t n, void *u) { return sz * n; }

/* One delivery attempt: true when the receiver answered 2xx. 4xx answers are final too (the
 * receiver rejected the payload; retrying would not help), reported through *final. */
static bool deliver(cn_service *s, const char *url, const char *body, bool *final, long *code) {
    char ts[32], sig[80] = "sha256=", hdr_ts[64], hdr_sig[128];
    snprintf(ts, sizeof ts, "%lld", (long long)(cn_unix_ms() / 1000));
    cn_strbuf msg;
    cn_sb_init(&msg);
    cn_sb_printf(&msg, "%s.%s", ts, body);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), s->webhook_secret, (int)strlen(s->webhook_secret), (const unsigned char *)cn_sb_str(&msg),
         msg.len, mac, &mac_len);
    cn_sb_free(&msg);
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
    snprintf(hdr_ts, sizeof hdr_ts, "X-Canary-Timestamp: %s", ts);
    snprintf(hdr_sig, sizeof hdr_sig, "X-Canary-Signature: %s", sig);
    CURL *c = curl_easy_init();
    if (!c)
        return false;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, hdr_ts);
    h = curl_slist_append(h, hdr_sig);
    h = curl_slist_append(h, "User-Agent: canary-stt-webhook");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(c);
    *code = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *final = *code >= 400 && *code < 500 && *code != 408 && *code != 429;
    return rc == CURLE_OK && *code >= 200 && *code < 300;
}

static void attempt(cn_service *s, webhook_item *w) {
    cn_error err;
    cn_error_clear(&err);
    cn_job_record r;
    if (s->store->ops->get(s->store, w->id, NULL, false, &r, &err) != CANARY_OK) {
        free(w); /* deleted meanwhile: nothing to report */
        return;
    }
    char *job = job_json_text(s, &r);
    cn_strbuf body;
    cn_sb_init(&body);
    cn_sb_printf(&body, "{\"type\":\"job.%s\",\"job\":%s}", cn_job_status_name(r.status), job ? job : "null");
    free(job);
    bool final = false;
    long code = 0;
    bool ok = r.webhook_url && deliver(s, r.webhook_url, cn_sb_str(&body), &final, &code);
    cn_sb_free(&body);
    w->attempt++;
    if (ok || final || w->attempt >= s->opt.webhook_attempts) {
        cn_webhook_state st = ok ? CN_WEBHOOK_DELIVERED : CN_WEBHOOK_GAVE_UP;
        if (s->store->ops->set_webhook_state(s->store, w->id, st, &err) != CANARY_OK)
            CN_WARN("webhook", "job %s: %s", w->id, err.msg);
        pthread_mutex_lock(&s->m.mu);
        if (ok)
            s->m.webhooks_ok++;
        else
            s->m.webhooks_failed++;
        pthread_mutex_unlock(&s->m.mu);
        if (ok)
            CN_INFO("webhook", "job %s: delivered to %s (attempt %d)", w->id, r.webhook_url, w->attempt);
        else
            CN_WARN("webhook", "job %s: giving up on %s after %d attempt(s) (last HTTP status %ld)", w->id,
                    r.webhook_url ? r.webhook_url : "?", w->attempt, code);
        free(w);
    } else {
        double delay = s->opt.webhook_backoff_s * (double)(1 << (w->attempt - 1 < 16 ? w->attempt - 1 : 16));
        CN_INFO("webhook", "job %s: attempt %d to %s failed (HTTP %ld); retrying in %.1f s", w->id, w->attempt,
                r.webhook_url, code, delay);
        w->due = cn_now_s() + delay;
        pthread_mutex_lock(&s->wmu);
        w->next = s->wq;
        s->wq = w;
        pthread_mutex_unlock(&s->wmu);
    }
    cn_job_record_free(&r);
}

static void *webhook_main(void *arg) {
    cn_service *s = arg;
    pthread_mutex_lock(&s->wmu);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        double now = cn_now_s(), next = now + 0.5;
        webhook_item **pp = &s->wq, *due = NULL;
        for (; *pp; pp = &(*pp)->next) {
            if ((*pp)->due <= now) {
                due = *pp;
                *pp = due->next;
                break;
            }
            if ((*pp)->due < next)
                next = (*pp)->due;
        }
        if (due) {
            pthread_mutex_unlock(&s->wmu);
            attempt(s, due);
            pthread_mutex_lock(&s->wmu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double wait = next - now;
        ts.tv_sec += (time_t)wait;
        ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->wcond, &s->wmu, &ts);
    }
    while (s->wq) { /* undelivered ones stay pending in the store */
        webhook_item *w = s->wq;
        s->wq = w->next;
        free(w);
    }
    pthread_mutex_unlock(&s->wmu);
    return NULL;
}

cn_status webhook_start(cn_service *s, cn_error *err) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&s->wmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wcond, &ca);
    pthread_condattr_destroy(&ca);
    cn_job_record *recs;
    int n;
    if (s->store->ops->list_pending_webhooks(s->store, &recs, &n, err) != CANARY_OK)
        return cn_error_prefix(err, "loading pending webhooks");
    for (int i = 0; i < n; i++)
        webhook_enqueue(s, recs[i].id);
    cn_records_free(recs, n);
    if (pthread_create(&s->webhook_thread, NULL, webhook_main, s) != 0)
        return cn_error_set(err, CANARY_EIO, "cannot start the webhook thread");
    return CANARY_OK;
}

void webhook_stop(cn_service *s) {
    pthread_mutex_lock(&s->wmu);
    pthread_cond_signal(&s->wcond);
    pthread_mutex_unlock(&s->wmu);
    pthread_join(s->webhook_thread, NULL);
    pthread_cond_destroy(&s->wcond);
    pthread_mutex_destroy(&s->wmu);
    curl_global_cleanup();
}

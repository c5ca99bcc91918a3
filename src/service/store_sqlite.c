/* The job store on SQLite: one connection in WAL mode, serialised by a mutex (the service's write
 * rate is a few rows per job, far below what one connection sustains). synchronous=FULL so that a
 * job answered with 202 survives a crash or power loss. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/store.h"

typedef struct sqlite_store {
    cn_store base;
    sqlite3 *db;
    pthread_mutex_t mu;
    char path[4096];
} sqlite_store;

static const char *status_names[CN_JOB_N_STATUS] = {"queued", "processing", "completed", "failed", "canceled"};

const char *cn_job_status_name(cn_job_status s) { return s < CN_JOB_N_STATUS ? status_names[s] : "unknown"; }

bool cn_job_status_parse(const char *s, cn_job_status *out) {
    for (int i = 0; i < CN_JOB_N_STATUS; i++)
        if (strcmp(s, status_names[i]) == 0) {
            *out = (cn_job_status)i;
            return true;
        }
    return false;
}

void cn_job_record_free(cn_job_record *r) {
    if (!r)
        return;
    free(r->idempotency_key);
    free(r->options_json);
    free(r->audio_path);
    free(r->filename);
    free(r->webhook_url);
    free(r->device);
    free(r->error);
    free(r->error_code);
    free(r->result_json);
    memset(r, 0, sizeof *r);
}

void cn_records_free(cn_job_record *r, int n) {
    for (int i = 0; i < n; i++)
        cn_job_record_free(&r[i]);
    free(r);
}

static cn_status db_error(sqlite_store *s, cn_error *err, const char *what) {
    return cn_error_set(err, CANARY_EIO, "job store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

#define COLS                                                                                                      \
    "id, owner, idem_key, status, options, audio_path, filename, webhook_url, webhook_state, audio_seconds, "      \
    "chunks_done, chunks_total, device, error, error_code, created_ms, started_ms, finished_ms"

static char *col_str(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void read_row(sqlite3_stmt *st, cn_job_record *r, bool with_result) {
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(r->owner, sizeof r->owner, "%s", (const char *)sqlite3_column_text(st, 1));
    r->idempotency_key = col_str(st, 2);
    r->status = (cn_job_status)sqlite3_column_int(st, 3);
    r->options_json = col_str(st, 4);
    r->audio_path = col_str(st, 5);
    r->filename = col_str(st, 6);
    r->webhook_url = col_str(st, 7);
    r->webhook_state = (cn_webhook_state)sqlite3_column_int(st, 8);
    r->audio_seconds = sqlite3_column_double(st, 9);
    r->chunks_done = sqlite3_column_int(st, 10);
    r->chunks_total = sqlite3_column_int(st, 11);
    r->device = col_str(st, 12);
    r->error = col_str(st, 13);
    r->error_code = col_str(st, 14);
    r->created_ms = sqlite3_column_int64(st, 15);
    r->started_ms = sqlite3_column_int64(st, 16);
    r->finished_ms = sqlite3_column_int64(st, 17);
    if (with_result)
        r->result_json = col_str(st, 18);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a SELECT returning full rows into a growing array. */
static cn_status select_rows(sqlite_store *s, sqlite3_stmt *st, bool with_result, int max, cn_job_record **out,
                             int *n, cn_error *err) {
    *out = NULL;
    *n = 0;
    int cap = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (max >= 0 && *n >= max)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            cn_job_record *g = realloc(*out, (size_t)cap * sizeof **out);
            if (!g) {
                cn_records_free(*out, *n);
                *out = NULL;
                *n = 0;
                return cn_error_set(err, CANARY_ENOMEM, "out of memory listing jobs");
            }
            *out = g;
        }
        read_row(st, &(*out)[(*n)++], with_result);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        cn_records_free(*out, *n);
        *out = NULL;
        *n = 0;
        return db_error(s, err, "reading jobs");
    }
    return CANARY_OK;
}

static cn_status st_get_locked(sqlite_store *s, const char *id, const char *owner, bool with_result,
                               cn_job_record *out, cn_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT " COLS ", result FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(s, err, "preparing get");
    bind_text(st, 1, id);
    bind_text(st, 2, owner);
    cn_status rc = CANARY_OK;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        read_row(st, out, with_result);
    else if (r == SQLITE_DONE)
        rc = cn_error_set(err, CANARY_ENOTFOUND, "no job with id '%s'", id);
    else
        rc = db_error(s, err, "reading a job");
    sqlite3_finalize(st);
    return rc;
}

static cn_status st_insert(cn_store *base, const cn_job_record *r, bool *duplicate, cn_job_record *existing,
                           cn_error *err) {
    sqlite_store *s = (sqlite_store *)base;
    *duplicate = false;
    pthread_mutex_lock(&s->mu);
    cn_status rc = CANARY_OK;
    if (r->idempotency_key) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, "SELECT id FROM jobs WHERE owner = ?1 AND idem_key = ?2", -1, &q, NULL) !=
            SQLITE_OK) {
            rc = db_error(s, err, "preparing idempotency lookup");
            goto out;
        }
        bind_text(q, 1, r->owner);
        bind_text(q, 2, r->idempotency_key);
        char found[40] = "";
        if (sqlite3_step(q) == SQLITE_ROW)
            snprintf(found, sizeof found, "%s", (const char *)sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
        if (found[0]) {
            *duplicate = true;
            rc = st_get_locked(s, found, NULL, false, existing, err);
            goto out;
        }
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO jobs (" COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                           "?13, ?14, ?15, ?16, ?17, ?18)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(s, err, "preparing insert");
        goto out;
    }
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->owner);
    bind_text(st, 3, r->idempotency_key);
    sqlite3_bind_int(st, 4, (int)r->status);
    bind_text(st, 5, r->options_json);
    bind_text(st, 6, r->audio_path);
    bind_text(st, 7, r->filename);
    bind_text(st, 8, r->webhook_url);
    sqlite3_bind_int(st, 9, (int)r->webhook_state);
    sqlite3_bind_double(st, 10, r->audio_seconds);
    sqlite3_bind_int(st, 11, r->chunks_done);
    sqlite3_bind_int(st, 12, r->chunks_total);
    bind_text(st, 13, r->device);
    bind_text(st, 14, r->error);
    bind_text(st, 15, r->error_code);
    sqlite3_bind_int64(st, 16, r->created_ms);
    sqlite3_bind_int64(st, 17, r->started_ms);
    sqlite3_bind_int64(st, 18, r->finished_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_error(s, err, "inserting a job");
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static cn_status st_get(cn_store *base, const char *id, const char *owner, bool with_result, cn_job_record *out,
                        cn_error *err) {
    sqlite_store *s = (sqlite_store *)base;
    pthread_mutex_lock(&s->mu);
    cn_status rc = st_get_locked(s, id, owner, with_result, out, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static cn_status st_list(cn_store *base, const char *owner, int status, const char *after_id, int limit,
                         cn_job_record **out, int *n, bool *has_more, cn_error *err) {
    sqlite_store *s = (sqlite_store *)base;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    cn_status rc;
    /* seq (rowid) orders by submission; the cursor is the last id of the previous page. */
    if (sqlite3_prepare_v2(s->db,
                           "SELECT " COLS " FROM jobs WHERE (?1 IS NULL OR owner = ?1) AND (?2 < 0 OR status = ?2) "
                           "AND (?3 IS NULL OR rowid < (SELECT rowid FROM jobs WHERE id = ?3)) "
                           "ORDER BY rowid DESC LIMIT ?4",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(s, err, "preparing list");
        goto out;
    }
    bind_text(st, 1, owner);
    sqlite3_bind_int(st, 2, status);
    bind_text(st, 3, after_id);
    sqlite3_bind_int(st, 4, limit + 1);
    rc = select_rows(s, st, false, limit + 1, out, n, err);
    sqlite3_finalize(st);
    *has_more = false;
    if (rc == CANARY_OK && *n > limit) {
        *has_more = true;
        cn_job_record_free(&(*out)[limit]);
        *n = limit;
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Executes one parameterised UPDATE/DELETE. */
static cn_status exec_update(sqlite_store *s, const char *sql, const char *what, cn_error *err,
                             void (*bind)(sqlite3_stmt *, const void *), const void *ctx) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    cn_status rc = CANARY_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(s, err, what);
    } else {
        bind(st, ctx);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_error(s, err, what);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

typedef struct {
    const char *id;
    int64_t ms;
    double secs;
    int i;
    const char *a, *b, *c;
} upd_args;

static void bind_processing(sqlite3_stmt *st, const void *p) {
    const upd_args *a = p;
    bind_text(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->ms);
    sqlite3_bind_double(st, 3, a->secs);
    sqlite3_bind_int(st, 4, a->i);
    bind_text(st, 5, a->a);
}
static cn_status st_set_processing(cn_store *base, const char *id, int64_t started_ms, double audio_seconds,
                                   int chunks_total, const char *device, cn_error *err) {
    upd_args a = {.id = id, .ms = started_ms, .secs = audio_seconds, .i = chunks_total, .a = device};
    return exec_update((sqlite_store *)base,
                       "UPDATE jobs SET status = 1, started_ms = ?2, audio_seconds = ?3, chunks_total = ?4, "
                       "chunks_done = 0, device = ?5 WHERE id = ?1",
                       "marking a job processing", err, bind_processing, &a);
}

static void bind_progress(sqlite3_stmt *st, const void *p) {
    const upd_args *a = p;
    bind_text(st, 1, a->id);
    sqlite3_bind_int(st, 2, a->i);
}
static void bind_progress2(sqlite3_stmt *st, const void *p) {
    const upd_args *a = p;
    bind_text(st, 1, a->id);
    sqlite3_bind_int(st, 2, a->i);
    sqlite3_bind_int(st, 3, (int)a->ms);
    bind_text(st, 4, a->a);
}
static cn_status st_set_progress(cn_store *base, const char *id, int chunks_done, int chunks_total,
                                 const char *devices, cn_error *err) {
    upd_args a = {.id = id, .i = chunks_done, .ms = chunks_total, .a = devices};
    return exec_update((sqlite_store *)base,
                       "UPDATE jobs SET chunks_done = ?2, chunks_total = ?3, device = ?4 WHERE id = ?1",
                       "saving progress", err, bind_progress2, &a);
}

static void bind_finished(sqlite3_stmt *st, const void *p) {
    const upd_args *a = p;
    bind_text(st, 1, a->id);
    sqlite3_bind_int(st, 2, a->i);
    sqlite3_bind_int64(st, 3, a->ms);
    bind_text(st, 4, a->a);
    bind_text(st, 5, a->b);
    bind_text(st, 6, a->c);
}
static cn_status st_set_finished(cn_store *base, const char *id, cn_job_status status, int64_t finished_ms,
                                 const char *result, const char *error, const char *error_code, cn_error *err) {
    upd_args a = {.id = id, .i = (int)status, .ms = finished_ms, .a = result, .b = error, .c = error_code};
    return exec_update((sqlite_store *)base,
                       "UPDATE jobs SET status = ?2, finished_ms = ?3, result = ?4, error = ?5, error_code = ?6, "
                       "audio_path = NULL, chunks_done = CASE WHEN ?2 = 2 THEN chunks_total ELSE chunks_done END "
                       "WHERE id = ?1",
                       "finishing a job", err, bind_finished, &a);
}

static cn_status st_set_webhook_state(cn_store *base, const char *id, cn_webhook_state ws, cn_error *err) {
    upd_args a = {.id = id, .i = (int)ws};
    return exec_update((sqlite_store *)base, "UPDATE jobs SET webhook_state = ?2 WHERE id = ?1",
                       "saving webhook state", err, bind_progress, &a);
}

static void bind_id(sqlite3_stmt *st, const void *p) { bind_text(st, 1, p); }
static cn_status st_remove(cn_store *base, const char *id, cn_error *err) {
    return exec_update((sqlite_store *)base, "DELETE FROM jobs WHERE id = ?1", "deleting a job", err, bind_id, id);
}

static cn_status st_requeue(cn_store *base, int *n, cn_error *err) {
    sqlite_store *s = (sqlite_store *)base;
    pthread_mutex_lock(&s->mu);
    cn_status rc = CANARY_OK;
    if (sqlite3_exec(s->db, "UPDATE jobs SET status = 0, chunks_done = 0 WHERE status = 1", NULL, NULL, NULL) !=
        SQLITE_OK)
        rc = db_error(s, err, "requeueing interrupted jobs");
    *n = sqlite3_changes(s->db);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static cn_status query_rows(sqlite_store *s, const char *sql, cn_job_record **out, int *n, cn_error *err) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    cn_status rc;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(s, err, "preparing a query");
    } else {
        rc = select_rows(s, st, false, -1, out, n, err);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static cn_status st_list_queued(cn_store *base, cn_job_record **out, int *n, cn_error *err) {
    return query_rows((sqlite_store *)base, "SELECT " COLS " FROM jobs WHERE status = 0 ORDER BY rowid", out, n,
                      err);
}

static cn_status st_list_pending_webhooks(cn_store *base, cn_job_record **out, int *n, cn_error *err) {
    return query_rows((sqlite_store *)base,
                      "SELECT " COLS " FROM jobs WHERE status >= 2 AND webhook_state = 1 ORDER BY rowid", out, n,
                      err);
}

static cn_status st_expire(cn_store *base, int64_t before_ms, char ***paths, int *n, cn_error *err) {
    sqlite_store *s = (sqlite_store *)base;
    *paths = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    cn_status rc = CANARY_OK;
    if (sqlite3_prepare_v2(s->db,
                           "DELETE FROM jobs WHERE status >= 2 AND finished_ms > 0 AND finished_ms < ?1 "
                           "RETURNING audio_path",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(s, err, "preparing expiry");
        goto out;
    }
    sqlite3_bind_int64(st, 1, before_ms);
    int r, cap = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *p = sqlite3_column_text(st, 0);
        if (!p)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            char **g = realloc(*paths, (size_t)cap * sizeof *g);
            if (!g)
                break;
            *paths = g;
        }
        (*paths)[(*n)++] = strdup((const char *)p);
    }
    sqlite3_finalize(st);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static cn_status st_count(cn_store *base, long counts[CN_JOB_N_STATUS], cn_error *err) {
    sqlite_store *s = (sqlite_store *)base;
    memset(counts, 0, sizeof(long) * CN_JOB_N_STATUS);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    cn_status rc = CANARY_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT status, count(*) FROM jobs GROUP BY status", -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(s, err, "preparing count");
    } else {
        while (sqlite3_step(st) == SQLITE_ROW) {
            int k = sqlite3_column_int(st, 0);
            if (k >= 0 && k < CN_JOB_N_STATUS)
                counts[k] = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void st_close(cn_store *base) {
    sqlite_store *s = (sqlite_store *)base;
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const cn_store_ops sqlite_ops = {st_insert,          st_get,         st_list,          st_set_processing,
                                        st_set_progress,    st_set_finished, st_set_webhook_state, st_remove,
                                        st_requeue,         st_list_queued, st_list_pending_webhooks, st_expire,
                                        st_count,           st_close};

static const char *schema =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id TEXT PRIMARY KEY, owner TEXT NOT NULL, idem_key TEXT, status INTEGER NOT NULL, options TEXT,"
    "  audio_path TEXT, filename TEXT, webhook_url TEXT, webhook_state INTEGER NOT NULL DEFAULT 0,"
    "  audio_seconds REAL NOT NULL DEFAULT 0, chunks_done INTEGER NOT NULL DEFAULT 0,"
    "  chunks_total INTEGER NOT NULL DEFAULT 0, device TEXT, error TEXT, error_code TEXT, result TEXT,"
    "  created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem ON jobs(owner, idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);";

cn_status cn_store_open_sqlite(const char *dir, cn_store **out, cn_error *err) {
    sqlite_store *s = calloc(1, sizeof *s);
    if (!s)
        return cn_error_set(err, CANARY_ENOMEM, "out of memory");
    s->base.ops = &sqlite_ops;
    snprintf(s->path, sizeof s->path, "%s/jobs.db", dir);
    pthread_mutex_init(&s->mu, NULL);
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        cn_status rc = cn_error_set(err, CANARY_EIO, "cannot open job store %s: %s", s->path,
                                    s->db ? sqlite3_errmsg(s->db) : "out of memory");
        st_close(&s->base);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        cn_status rc = cn_error_set(err, CANARY_EIO, "job store %s: creating tables: %s", s->path, msg ? msg : "?");
        sqlite3_free(msg);
        st_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return CANARY_OK;
}

cn_status cn_store_open(const char *database, const char *data_dir, cn_store **out, cn_error *err) {
    if (!database || !database[0])
        return cn_store_open_sqlite(data_dir, out, err);
    if (strncmp(database, "postgresql://", 13) == 0 || strncmp(database, "postgres://", 11) == 0)
        return cn_error_set(err, CANARY_EUNSUPPORTED,
                            "server.database = '%s': the PostgreSQL job store is not implemented yet; leave "
                            "server.database empty to use SQLite in server.data_dir",
                            database);
    return cn_error_set(err, CANARY_EINVAL,
                        "server.database = '%s': expected empty (SQLite in data_dir) or a postgresql:// URL",
                        database);
}
